#!/usr/bin/env bash
# Connection storms (issue 16): candlecast (release) and candlecast-loadgen --mode storm / --mode restart.
# Rows, each with the previous accept-path settings ("before") and the current defaults ("after") in the
# same run:
#   start    N clients at RATE/s the moment the server answers (its backfill just done, the store writing it)
#   steady   the same, STEADY_SECS seconds after the start
#   restart  N clients subscribed to 1s bars; the server is stopped (SIGTERM) and started again on the same
#            port and store; every client reconnects with the dashboard's backoff, resubscribes and refetches
#            its gap; the loadgen then compares each client's closed bars with the server's history.
# Results: bench/results/storm-*.json and .txt; the table for docs/BENCHMARKS.md "Connection storms" is
# printed at the end. Usage: scripts/bench_storm.sh [clients] [rate]   (defaults 19000 20000)
# SOURCE_IPS=N (default 32): the generator's clients connect from 127.0.0.1..127.0.0.N, counted as unlimited
#   hosts by the server, as dashboards come from many hosts; SOURCE_IPS=1 is the generator as it was (one
#   address: every connect() searches the ephemeral ports, which took most of the generator's CPU and showed
#   up as TCP connects of seconds, see docs/BENCHMARKS.md "Connection storms").
# STORM_PIN="S G": the server on CPU S, the generator on CPU G (taskset), e.g. STORM_PIN="0 1".
# SOMAXCONN=N: raise net.core.somaxconn to N for the run where this user may (root on the host, or a container
#   with its own network namespace; restored at exit) and run the "after" rows with [server] backlog = N: the
#   listen queue a restart's reconnect wave lands in (docs/OPERATIONS.md, "Connection storms").
# Each row also records the kernel's listen-queue counters (nstat deltas: ListenOverflows, ListenDrops,
# TCPReqQFullDrop, TCPSynRetrans) in bench/results/storm-*.nstat: a dropped SYN costs a client 1 s.
# Also run by `make bench` with BENCH_STORM=1 (scripts/bench.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-19000}
rate=${2:-20000}
steady_secs=${STEADY_SECS:-20}
results=bench/results; mkdir -p "$results"

# At idle priority: run under the bench lock, a rebuild here must not take the cores from a benchmark.
nice -n 19 cargo build --release --bins -p candlecast -p candlecast-loadgen
server_bin=${CARGO_TARGET_DIR:-target}/release/candlecast
loadgen=${CARGO_TARGET_DIR:-target}/release/candlecast-loadgen

# 19,000 sockets in the server and as many in the generators: every process takes the hard open-file limit.
ulimit -n "$(ulimit -Hn)"
procs=$(( (n + 8999) / 9000 ))

export CANDLECAST__SERVER__HOST=127.0.0.1
export CANDLECAST__FEED__SIMULATED__TRADES_PER_SECOND=200 CANDLECAST__FEED__SIMULATED__TICK_MS=20
export CANDLECAST__FEED__SIMULATED__BACKFILL_DAYS=1 CANDLECAST__FEED__SIMULATED__BACKFILL_FINE_HOURS=1
export CANDLECAST__LOG__LEVEL=warn

source_ips=${SOURCE_IPS:-32}
hosts=$(python3 -c "print('[' + ', '.join(['\"::1\"'] + [f'\"127.0.0.{i}\"' for i in range(1, $source_ips + 1)]) + ']')")
export CANDLECAST__HTTP__UNLIMITED_HOSTS="$hosts" CANDLECAST__WS__UNLIMITED_HOSTS="$hosts"
after_env=()
if [ -n "${SOMAXCONN:-}" ]; then
  old_somaxconn=$(cat /proc/sys/net/core/somaxconn)
  if [ "$old_somaxconn" -lt "$SOMAXCONN" ]; then
    sysctl -qw net.core.somaxconn="$SOMAXCONN" || echo "could not raise net.core.somaxconn: the kernel keeps $old_somaxconn" >&2
  fi
  after_env=(CANDLECAST__SERVER__BACKLOG="$SOMAXCONN")
fi
pin_server=(); pin_gen=()
if [ -n "${STORM_PIN:-}" ]; then read -r s g <<< "$STORM_PIN"; pin_server=(taskset -c "$s"); pin_gen=(taskset -c "$g"); fi
# The kernel's counters of the accept path, per row (this network namespace; a private history file, so
# nobody else's nstat resets it).
export NSTAT_HISTORY=$results/storm.nstat-history
nstat_start() { nstat -n; }
nstat_row() { nstat -z TcpExtListenOverflows TcpExtListenDrops TcpExtTCPReqQFullDrop TcpExtTCPSynRetrans | awk 'NR>1 {print $1, $2}' > "$1"; }

# The accept path before issue 16's storm work: the backlog of 4096 and actix's own 25,000 connections per
# worker; what the "after" rows change is whatever config/default.toml now says.
before_env=(CANDLECAST__SERVER__BACKLOG=4096 CANDLECAST__SERVER__MAX_CONNECTIONS_PER_WORKER=25000)
# BEFORE_BIN=path/to/candlecast: the "before" rows run that binary (e.g. main's release build) with its own
# defaults instead, the previous design side by side with this one.
before_bin=${BEFORE_BIN:-}
if [ -n "$before_bin" ]; then before_env=(CANDLECAST__BEFORE=1); fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

server_pid=""
start_server() { # port store-dir env...
  local port=$1 dir=$2; shift 2
  local bin=$server_bin
  if [ "${1:-}" = CANDLECAST__BEFORE=1 ]; then bin=$before_bin; shift; fi
  env "$@" CANDLECAST__SERVER__PORT="$port" CANDLECAST__STORE__PATH="$dir" "${pin_server[@]}" "$bin" \
    > "$results/storm-server.out" 2>> "$results/storm-server.err" &
  server_pid=$!
  for _ in $(seq 300); do grep -q 'listening on' "$results/storm-server.out" 2>/dev/null && break; sleep 0.1; done
  # Ready as bench.sh counts it: every symbol has a price (the backfill is done).
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/api/price/SOLUSDT" >/dev/null && return; sleep 0.1; done
  echo "server did not start" >&2; exit 1
}
stop_server() { [ -n "$server_pid" ] && { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }; server_pid=""; }
trap 'stop_server; [ -n "${old_somaxconn:-}" ] && sysctl -qw net.core.somaxconn="$old_somaxconn"' EXIT

storm() { # name wait-secs env...
  local name=$1 wait=$2; shift 2
  local port dir; port=$(free_port); dir=$(mktemp -d)
  start_server "$port" "$dir" "$@"
  sleep "$wait"
  local cmd=("${pin_gen[@]}" "$loadgen" --mode storm --url "ws://127.0.0.1:$port/ws" --clients "$n" --storm-rate "$rate"
             --processes "$procs" --interval 1s --source-ips "$source_ips" --json "$results/$name.json")
  echo "+ ${*:-} ${cmd[*]}" | tee "$results/$name.txt"
  nstat_start
  "${cmd[@]}" | tee -a "$results/$name.txt"
  nstat_row "$results/$name.nstat"
  stop_server; rm -rf "$dir"
  sleep 5 # the closed sockets' TIME_WAIT is the client's; a pause keeps one row's teardown out of the next
}

restart() { # name env...
  local name=$1; shift
  local port dir ready; port=$(free_port); dir=$(mktemp -d); ready="$results/$name.ready"
  rm -f "$ready"*
  start_server "$port" "$dir" "$@"
  # The clients arrive at the storm rate too; then the restart.
  local cmd=("${pin_gen[@]}" "$loadgen" --mode restart --url "ws://127.0.0.1:$port/ws" --clients "$n"
             --storm-rate "$rate" --processes "$procs" --interval 1s --source-ips "$source_ips" --ready-file "$ready"
             --restart-wait 180 --json "$results/$name.json")
  echo "+ ${*:-} ${cmd[*]}" | tee "$results/$name.txt"
  nstat_start
  "${cmd[@]}" >> "$results/$name.txt" &
  local gen=$!
  for _ in $(seq 1200); do [ -f "$ready" ] && break; sleep 0.1; done
  sleep 3 # a few closed bars live before the restart
  local t0; t0=$(date +%s.%N)
  kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true
  start_server "$port" "$dir" "$@"
  local t1; t1=$(date +%s.%N)
  echo "server down and up again in $(python3 -c "print(round($t1-$t0,2))") s (stop, start, backfill check)" | tee -a "$results/$name.txt"
  wait "$gen" || true
  nstat_row "$results/$name.nstat"
  tail -1 "$results/$name.txt"
  stop_server; rm -rf "$dir"
  sleep 5
}

rows=${STORM_ROWS:-start steady restart}
for row in $rows; do
  case $row in
    start) storm storm-start-before 0 "${before_env[@]}"; storm storm-start-after 0 "${after_env[@]}" ;;
    steady) storm storm-steady-before "$steady_secs" "${before_env[@]}"; storm storm-steady-after "$steady_secs" "${after_env[@]}" ;;
    restart) restart storm-restart-before "${before_env[@]}"; restart storm-restart-after "${after_env[@]}" ;;
  esac
done
# The table for docs/BENCHMARKS.md "Connection storms".
python3 - "$results" <<'PY'
import json, os, sys
d = sys.argv[1]
print("| row | accept path | updated of clients | not updated (why) | first update within 5 s | first update p50 / p99 / max | TCP connect p99 / max | listen overflows / SYN retransmits | back after restart | missed closed bars (of checked) | back p50 / p99 / max | refetched max |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for row in ["start", "steady", "restart"]:
    for side in ["before", "after"]:
        path = os.path.join(d, f"storm-{row}-{side}.json")
        if not os.path.exists(path):
            continue
        r = json.load(open(path))
        why = ", ".join(f"{k} {v:,}" for k, v in r["outcomes"].items() if k != "updated") or "none"
        f, t = r["first_update_ms"], r["tcp_connect_ms"]
        ms = lambda p: " / ".join(f"{p[k]:,.0f} ms" for k in ("p50", "p99", "max"))
        restart = ("—",) * 4
        if r["mode"] == "restart":
            b = r["back_after_ms"]
            restart = (f"{r['back']:,} of {r['saw_restart']:,} (caught up {r['caught_up']:,})",
                       f"{r['missed_bars']:,} in {r['clients_missing']:,} clients (of {r['checked_bars']:,})",
                       ms(b), f"{r['refetched_after_ms']['max']:,.0f} ms")
        kernel = {}
        nstat = os.path.join(d, f"storm-{row}-{side}.nstat")
        if os.path.exists(nstat):
            kernel = dict((k, int(v)) for k, v in (l.split() for l in open(nstat) if l.strip()))
        queue = (f"{kernel.get('TcpExtListenOverflows', 0):,} / {kernel.get('TcpExtTCPSynRetrans', 0):,}"
                 if kernel else "—")
        print(f"| {row} | {side} | {r['updated']:,} of {r['clients']:,} | {why} | {r['within']:,} | {ms(f)} | "
              f"{t['p99']:,.0f} / {t['max']:,.0f} ms | {queue} | {restart[0]} | {restart[1]} | {restart[2]} | {restart[3]} |")
PY
