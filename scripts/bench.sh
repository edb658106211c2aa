#!/usr/bin/env bash
# Fan-out benchmark: candlecast (release) with a fast simulated feed, and candlecast-loadgen at several
# client counts, on this machine. Writes one JSON per run to bench/results/ and the table to
# docs/BENCHMARKS.md (between the markers). Usage: scripts/bench.sh [client counts...]
set -euo pipefail
cd "$(dirname "$0")/.."

counts=("$@"); [ ${#counts[@]} -gt 0 ] || counts=(1000 5000 10000 19000)
duration=${BENCH_DURATION:-20}
results=bench/results; mkdir -p "$results"

cargo build --release --bins -p candlecast -p candlecast-loadgen
server_bin=${CARGO_TARGET_DIR:-target}/release/candlecast
loadgen=${CARGO_TARGET_DIR:-target}/release/candlecast-loadgen

source scripts/bench_server_env.sh

start_server() {
  "$server_bin" > "$results/server.out" 2> "$results/server.err" &
  server_pid=$!
  for _ in $(seq 100); do
    port=$(grep -o 'http://127.0.0.1:[0-9]*' "$results/server.out" 2>/dev/null | head -1 | cut -d: -f3) && [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "${port:-}" ] || { echo "server did not start" >&2; exit 1; }
  # Wait for the backfill: every symbol has a price.
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/api/price/SOLUSDT" >/dev/null && break; sleep 0.1; done
}

stop_server() { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
trap stop_server EXIT

run() { # name clients extra-args...
  local name=$1 n=$2; shift 2
  start_server
  local procs=$(( (n + 8999) / 9000 ))
  local cmd=("$loadgen" --url "ws://127.0.0.1:$port/ws" --clients "$n" --processes "$procs" --connect-rate 2000
             --duration "$duration" --warmup 5 --interval 1s --server-pid "$server_pid" --json "$results/$name.json" "$@")
  echo "+ ${cmd[*]}"
  "${cmd[@]}" | tee "$results/$name.txt"
  curl -s "http://127.0.0.1:$port/api/stats" > "$results/$name.stats.json" || true
  stop_server
}

run_peer() { # name clients
  local name=$1 n=$2
  (cd bench/peers/socketio && [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error)
  node bench/peers/socketio/server.mjs > "$results/peer.out" 2>&1 &
  local peer_pid=$! peer_port=""
  for _ in $(seq 100); do
    peer_port=$(grep -o 'http://127.0.0.1:[0-9]*' "$results/peer.out" 2>/dev/null | head -1 | cut -d: -f3) && [ -n "$peer_port" ] && break
    sleep 0.1
  done
  local procs=$(( (n + 8999) / 9000 ))
  local cmd=("$loadgen" --protocol socketio --url "ws://127.0.0.1:$peer_port" --clients "$n" --processes "$procs" --connect-rate 2000
             --duration "$duration" --warmup 5 --interval 1s --server-pid "$peer_pid" --json "$results/$name.json")
  echo "+ ${cmd[*]}"
  "${cmd[@]}" | tee "$results/$name.txt" || true
  kill "$peer_pid" 2>/dev/null || true; wait "$peer_pid" 2>/dev/null || true
}

for n in "${counts[@]}"; do run "candlecast-$n" "$n"; done
run "candlecast-10000-stalled" 10000 --stalled 0.1
# Dashboards (issue 16): every client subscribes to the six symbols' 1s topics in one request.
for n in ${BENCH_MULTI_COUNTS:-2000 3000}; do run "candlecast-${n}x6" "$n" --topics-per-client 6; done
if [ -z "${BENCH_NO_PEER:-}" ]; then
  for n in "${counts[@]}"; do run_peer "socketio-peer-$n" "$n"; done
fi

python3 scripts/bench_table.py "$results" docs/BENCHMARKS.md
# Connection storms (issue 16): 19,000 clients at 20,000/s right after start, in steady state and through a
# restart, before/after the accept-path settings. About 6 minutes more, so only on request: BENCH_STORM=1.
if [ -n "${BENCH_STORM:-}" ]; then scripts/bench_storm.sh "${BENCH_STORM_CLIENTS:-19000}" "${BENCH_STORM_RATE:-20000}"; fi
