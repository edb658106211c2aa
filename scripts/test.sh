#!/usr/bin/env bash
# Every test candlecast has. Installs what the tests need first (Debian packages, npm packages), so it
# works the same on a fresh machine and in CI.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/test-deps.sh

echo "== Rust: formatting (rustfmt.toml)"
cargo fmt --all -- --check

echo "== Rust: unit, property and integration tests"
cargo test --workspace --all-targets

echo "== Front end: build and unit tests (Vitest)"
(cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build && npm run build:test && npm test)

if [ -d tests/browser ]; then
  echo "== Browser: Playwright driving Debian's chromium against the real server"
  cargo build --bin candlecast
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && node --test)
fi
