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

echo "== Python client (clients/python): installed from its directory, mypy --strict, pytest against the real server"
cargo build --bin candlecast
[ -x target/pyenv-client/bin/python ] || python3 -m venv target/pyenv-client
target/pyenv-client/bin/pip install --quiet --disable-pip-version-check "./clients/python[pandas,test]"
# Its dependencies stay; the package itself is rebuilt from the current sources every run.
target/pyenv-client/bin/pip install --quiet --disable-pip-version-check --no-deps --force-reinstall ./clients/python
(cd clients/python && ../../target/pyenv-client/bin/mypy --strict src tests \
  && ../../target/pyenv-client/bin/pytest -q -p no:cacheprovider)

echo "== Front end: build and unit tests (Vitest)"
(cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build && npm run build:test && npm test)

if [ -d tests/browser ]; then
  echo "== Browser: Playwright driving Debian's chromium against the real server"
  cargo build --bin candlecast
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && node --test)
fi
