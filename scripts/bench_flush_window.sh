#!/usr/bin/env bash
# How long may an update wait to share a write? (issue 16) Runs the dashboard row of `make bench` (2,000 clients,
# each subscribed to the six symbols' 1s topics) and the single-topic row against servers with different
# `[hub] flush_window_ms`, one after the other, and prints a table: delivered msgs/s, server CPU per delivered
# message (and its user-space part), p50/p99/max latency and frames per write.
# Usage: scripts/bench_flush_window.sh [windows in ms...]   (default: 5 10 25)
# SERVER_BIN=path measures another server binary (an older build, for A/B) with this tree's generator; TOPICS
# ("6 1") picks the rows, CLIENTS (2000) their size; RESULTS the directory. Every server starts on an empty
# store of its own (a temporary directory), so a run never inherits, or migrates, another run's store.
set -euo pipefail
cd "$(dirname "$0")/.."

windows=("$@"); [ ${#windows[@]} -gt 0 ] || windows=(5 10 25)
clients=${CLIENTS:-2000}
procs=$(( (clients + 8999) / 9000 ))   # as scripts/bench.sh: at most 9,000 clients per generator process
duration=${BENCH_DURATION:-15}
rounds=${ROUNDS:-1}
read -r -a topic_rows <<< "${TOPICS:-6 1}"
results=${RESULTS:-bench/results/flush-window}; mkdir -p "$results"

[ -n "${NO_BUILD:-}" ] || cargo build --release --bins -p candlecast -p candlecast-loadgen
server_bin=${SERVER_BIN:-${CARGO_TARGET_DIR:-target}/release/candlecast}
loadgen=${CARGO_TARGET_DIR:-target}/release/candlecast-loadgen

source scripts/bench_server_env.sh

server_pid=""
store=$(mktemp -d)
stop_server() { [ -z "$server_pid" ] || { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }; }
trap 'stop_server; rm -rf "$store"' EXIT

rows=()
for round in $(seq "$rounds"); do
  for w in "${windows[@]}"; do
    for topics in "${topic_rows[@]}"; do
      name="w${w}-x${topics}-r${round}"
      rm -rf "${store:?}"/* && echo "$server_bin" > "$results/$name.server.bin"
      CANDLECAST__HUB__FLUSH_WINDOW_MS=$w CANDLECAST__STORE__PATH=$store "$server_bin" > "$results/$name.server.out" 2> "$results/$name.server.err" &
      server_pid=$!
      port=""
      for _ in $(seq 100); do
        port=$(grep -o 'http://127.0.0.1:[0-9]*' "$results/$name.server.out" 2>/dev/null | head -1 | cut -d: -f3) && [ -n "$port" ] && break
        sleep 0.1
      done
      [ -n "$port" ] || { echo "server did not start" >&2; exit 1; }
      for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/api/price/SOLUSDT" >/dev/null && break; sleep 0.1; done
      "$loadgen" --url "ws://127.0.0.1:$port/ws" --clients "$clients" --processes "$procs" --connect-rate 2000 \
        --duration "$duration" --warmup 5 --interval 1s --topics-per-client "$topics" --server-pid "$server_pid" \
        --json "$results/$name.json" > "$results/$name.txt"
      curl -s "http://127.0.0.1:$port/api/stats" > "$results/$name.stats.json" || true
      stop_server; server_pid=""
      rows+=("$name")
    done
  done
done

python3 - "$results" "${rows[@]}" <<'EOF'
import json, sys
results, rows = sys.argv[1], sys.argv[2:]
print("| flush_window_ms | clients × topics | msgs/s delivered | server CPU % of a core | server CPU per delivered msg | of which user space | generator CPU per msg | server ÷ generator | p50 / p99 / max ms | frames per write |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name in rows:
    w, x, r = name.split("-")
    d = json.load(open(f"{results}/{name}.json"))
    stats = json.load(open(f"{results}/{name}.stats.json")).get("stats", {})
    cpu = d["server"]["cpu_percent"]
    per_msg = cpu / 100 / d["messages_per_second"] * 1e6
    # The server's own code; the rest is the kernel's (over loopback, the receiving side of every send too).
    user = d["server"].get("user_cpu_percent")
    user_per_msg = f"{user / 100 / d['messages_per_second'] * 1e6:.2f} µs" if user is not None else "–"
    # The generator does the same work per message whichever server it reads, so its CPU per message moves
    # only with the machine's speed (this VM's varies by half between rounds minutes apart): the ratio of the
    # two compares servers measured at different moments.
    gen = d["loadgen_cpu_percent"]
    gen_per_msg = gen / 100 / d["messages_per_second"] * 1e6
    ratio = f"{cpu / gen:.2f}" if gen > 0 else "–"
    writes, frames = stats.get("ws_writes"), stats.get("ws_frames")
    fpw = f"{frames / writes:.2f}" if writes else "–"
    lat = d["latency_ms"]
    print(f"| {w[1:]} | {d['clients']:,} × {x[1:]} | {d['messages_per_second']:,.0f} | {cpu:.1f} | **{per_msg:.2f} µs** | {user_per_msg} | {gen_per_msg:.2f} µs | {ratio} | "
          f"{lat['p50']:.2f} / {lat['p99']:.2f} / {lat['max']:.1f} | {fpw} |")
EOF
