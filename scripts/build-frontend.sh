#!/usr/bin/env bash
# Builds the dashboard into frontend/dist if it is missing or older than its sources.
set -euo pipefail
cd "$(dirname "$0")/../frontend"
if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: skipping the dashboard build (install nodejs and npm to get it); the API still runs." >&2
  exit 0
fi
stamp=dist/index.html
if [ -f "$stamp" ] && [ -z "$(find src index.html package.json package-lock.json vite.config.ts -newer "$stamp" 2>/dev/null | head -n1)" ]; then
  exit 0
fi
echo "building the dashboard (frontend/dist)..."
npm ci --no-audit --no-fund --loglevel=error
npm run build
