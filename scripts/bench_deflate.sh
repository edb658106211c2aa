#!/usr/bin/env bash
# Bytes on the wire (issue 16): plain JSON against permessage-deflate, the same release binary and server
# settings ([ws] permessage_deflate = true for every run), a fresh server per run; the only difference is
# whether the generator's clients offer the extension (--deflate). 2,000 clients x 1 topic and x 6 topics on
# the 1s interval, as the multi-topic section of docs/BENCHMARKS.md. Then the size of one 5,000-bar history
# reply as the server sends it, plain and compressed (its compression time: `cargo bench -p candlecast-actors
# --bench deflate`). Writes bench/results/deflate/; the table in docs/BENCHMARKS.md is copied by hand.
# Usage: scripts/bench_deflate.sh   (BENCH_CLIENTS=2000 BENCH_DURATION=15)
set -euo pipefail
cd "$(dirname "$0")/.."

n=${BENCH_CLIENTS:-2000}
duration=${BENCH_DURATION:-15}
results=bench/results/deflate; mkdir -p "$results"
server_bin=${CARGO_TARGET_DIR:-target}/release/candlecast
loadgen=${CARGO_TARGET_DIR:-target}/release/candlecast-loadgen
[ -x "$server_bin" ] && [ -x "$loadgen" ] || cargo build --release -p candlecast -p candlecast-loadgen

# As scripts/bench.sh: every topic updates 10 times a second.
export CANDLECAST__SERVER__HOST=127.0.0.1 CANDLECAST__SERVER__PORT=0
export CANDLECAST__FEED__SIMULATED__TRADES_PER_SECOND=200 CANDLECAST__FEED__SIMULATED__TICK_MS=20
export CANDLECAST__FEED__SIMULATED__BACKFILL_DAYS=1 CANDLECAST__FEED__SIMULATED__BACKFILL_FINE_HOURS=1
export CANDLECAST__LOG__LEVEL=warn CANDLECAST__WS__PERMESSAGE_DEFLATE=true

start_server() {
  port=""
  "$server_bin" > "$results/server.out" 2> "$results/server.err" &
  server_pid=$!
  for _ in $(seq 100); do
    port=$(grep -o 'http://127.0.0.1:[0-9]*' "$results/server.out" 2>/dev/null | head -1 | cut -d: -f3) && [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "${port:-}" ] || { echo "server did not start" >&2; exit 1; }
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/api/price/SOLUSDT" >/dev/null && break; sleep 0.1; done
}

stop_server() { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
trap stop_server EXIT

run() { # name topics extra-args...
  local name=$1 topics=$2; shift 2
  start_server
  local cmd=("$loadgen" --url "ws://127.0.0.1:$port/ws" --clients "$n" --processes 1 --connect-rate 2000
             --duration "$duration" --warmup 5 --interval 1s --topics-per-client "$topics"
             --server-pid "$server_pid" --json "$results/$name.json" "$@")
  echo "+ ${cmd[*]}"
  "${cmd[@]}" | tee "$results/$name.txt"
  curl -s "http://127.0.0.1:$port/api/stats" > "$results/$name.stats.json" || true
  stop_server
}

for topics in 1 6; do
  run "plain-${n}x${topics}" "$topics"
  run "deflate-${n}x${topics}" "$topics" --deflate
done

# One 5,000-bar history reply (BTCUSDT 1m: four days of backfill), as JSON and raw-deflated at level 1 with the
# sync tail stripped (what the server sends a deflate client: actors/src/deflate.rs).
# A store of its own: a server continues the history already stored instead of backfilling it again.
history_store=$(mktemp -d)
export CANDLECAST__FEED__SIMULATED__BACKFILL_DAYS=4 CANDLECAST__STORE__PATH=$history_store
start_server
curl -s "http://127.0.0.1:$port/api/historical/BTCUSDT?interval=1m&limit=5000" > "$results/history-5000.json"
stop_server
rm -rf "$history_store"
python3 - "$results/history-5000.json" <<'PY' | tee "$results/history-5000.txt"
import json, sys, zlib
body = open(sys.argv[1], 'rb').read()
bars = len(json.loads(body).get('data', []))
def deflated(level):
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    out = c.compress(body) + c.flush(zlib.Z_SYNC_FLUSH)
    return len(out) - 4
print(f"history reply: {bars} bars, {len(body)} bytes plain, {deflated(1)} deflated at level 1, {deflated(6)} at level 6")
PY
