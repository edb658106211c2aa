#!/usr/bin/env bash
# Abuse benchmark: candlecast (release) under each anonymous attack while 1,000 healthy /ws clients are
# measured with candlecast-loadgen; writes the table to docs/RELIABILITY.md ("## Abuse benchmark") and raw
# results to bench/results/abuse/. About 7 minutes. Usage: scripts/abuse.sh [--only jobs,keys] [--window 15]
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_INCREMENTAL=0 cargo build --release -p candlecast -p candlecast-loadgen --bin candlecast --bin candlecast-loadgen
target=${CARGO_TARGET_DIR:-target}/release

python3 scripts/abuse.py --server "$target/candlecast" --loadgen "$target/candlecast-loadgen" \
  --out bench/results/abuse --doc docs/RELIABILITY.md --commit "$(git rev-parse --short HEAD)" \
  --command "make abuse" "$@"
