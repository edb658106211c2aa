#!/usr/bin/env bash
# What the tests need besides Rust, installed when missing: Debian packages (Node.js, npm, chromium,
# redis-server, influxdb, prometheus, python3-venv, curl), python-socketio in a venv and socket.io-client from npm.
# Used by scripts/test.sh and scripts/test-clock.sh.
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
# Prometheus and promtool: tests/prometheus.rs scrapes a test server and checks deploy/prometheus/.
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || need_apt+=(prometheus)
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
echo "== Schemathesis (tests/openapi.rs fuzzes the REST API against /api/openapi.json)"
target/pyenv-tests/bin/python -c 'import schemathesis, jsonschema_rs' >/dev/null 2>&1 \
  || target/pyenv-tests/bin/python -m pip install --quiet --disable-pip-version-check -r tests/openapi/requirements.txt
(cd tests/socketio && npm ci --no-audit --no-fund --loglevel=error)
echo "== The AsyncAPI 3.0 JSON schema (@asyncapi/specs; tests/asyncapi.rs validates /api/asyncapi.json against it)"
(cd tests/asyncapi && npm ci --no-audit --no-fund --loglevel=error)
