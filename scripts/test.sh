#!/usr/bin/env bash
# Every test candlecast has. Installs what the tests need first (Debian packages, npm packages), so it
# works the same on a fresh machine and in CI.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# InfluxDB 1.x, which tests/persist_influx.rs starts on a free port in a temporary directory.
command -v influxd >/dev/null 2>&1 || need_apt+=(influxdb)
if [ -d tests/browser ]; then
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

echo "== Socket.IO clients the integration tests run: python-socketio (venv), socket.io-client (npm)"
if ! target/pyenv-tests/bin/python -c 'import socketio, requests' >/dev/null 2>&1; then
  python3 -m venv target/pyenv-tests
  target/pyenv-tests/bin/pip install --quiet --disable-pip-version-check -r tests/socketio/requirements.txt
fi
(cd tests/socketio && npm ci --no-audit --no-fund --loglevel=error)

echo "== Rust: unit, property and integration tests"
cargo test --workspace --all-targets

echo "== Front end: build and unit tests (Vitest)"
(cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build && npm test)

if [ -d tests/browser ]; then
  echo "== Browser: Playwright driving Debian's chromium against the real server"
  cargo build --bin candlecast
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && node --test)
fi
