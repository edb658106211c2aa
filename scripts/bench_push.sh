#!/usr/bin/env bash
# Push benchmark (issue 5): trades per second accepted through Socket.IO on WebSocket with the `trades`
# batch event, from 1 and from 10 scripts (candlecast-loadgen --mode push against a release build, feed
# "none" so only the scripts' trades are folded). Prints one summary line per run and keeps the JSON and
# the server's /api/stats in bench/results/. Usage: scripts/bench_push.sh [script counts...]
set -euo pipefail
cd "$(dirname "$0")/.."

counts=("$@"); [ ${#counts[@]} -gt 0 ] || counts=(1 10)
duration=${BENCH_DURATION:-20}
batch=${BENCH_BATCH:-2000}
results=bench/results; mkdir -p "$results"

cargo build --release --bins -p candlecast -p candlecast-loadgen
target=${CARGO_TARGET_DIR:-target}/release

# A batch is one event: allow 1,000 a second per connection so the limit is not what is measured.
export CANDLECAST__SERVER__HOST=127.0.0.1 CANDLECAST__SERVER__PORT=0 CANDLECAST__LOG__LEVEL=warn
export CANDLECAST__FEED__SOURCE=none CANDLECAST__STRATEGIES__LIVE='[]'
export CANDLECAST__SCRIPTS__KEYS='["bench-key"]' CANDLECAST__SCRIPTS__MAX_EVENTS_PER_SECOND=1000

for n in "${counts[@]}"; do
  "$target/candlecast" > "$results/push-server.out" 2> "$results/push-server.err" &
  server_pid=$!
  port=""
  for _ in $(seq 100); do
    port=$(grep -o 'http://127.0.0.1:[0-9]*' "$results/push-server.out" 2>/dev/null | head -1 | cut -d: -f3) && [ -n "$port" ] && break
    sleep 0.1
  done
  symbols=$(seq -s, -f 'PUSH%g' 0 $((n - 1)))
  cmd=("$target/candlecast-loadgen" --mode push --url "ws://127.0.0.1:$port" --token bench-key --clients "$n" --threads 1
       --batch "$batch" --window 4 --symbols "$symbols" --warmup 3 --duration "$duration" --json "$results/push-$n.json")
  echo "+ ${cmd[*]}"
  "${cmd[@]}" | tee "$results/push-$n.txt" || true
  curl -s "http://127.0.0.1:$port/api/stats" > "$results/push-$n.stats.json" || true
  kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true
done
