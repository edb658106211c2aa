#!/usr/bin/env bash
# Cluster traffic at scale (issue 20): a real redis-server on a free port, one ingest node and one edge node
# (release build), N simulated symbols at 1 trade/s each, no backfill (the run is about live traffic), no clients.
# Once the ingest runs every symbol's feed and the edge has synced them, over WINDOW_SECS it measures:
#   Redis        commands/s (total_commands_processed delta), PUBLISH calls/s (INFO commandstats), CPU as % of
#                one core (/proc/<pid>/stat utime+stime delta), bytes/s in (total_net_input_bytes delta: the frames
#                and the cache writes), bytes/s out (total_net_output_bytes delta: mostly the frames delivered to
#                the two subscribed nodes, what Redis's pub/sub output-buffer limit is about), memory
#   nodes        CPU (% of one core) and RSS of the ingest and of the edge
# and then whether the edge's bars equal the ingest's: GET /api/historical on both for SAMPLE symbols:
#   closed bars of 1s, 5s, 15s (the run has no backfill): every bar the edge has closed must equal the ingest's
#                field by field, and none may be missing up to the edge's newest closed bar (bars newer than that
#                are still on their way: that is the edge's lag, measured on its own);
#   lag          the ingest's newest closed 1s bar minus the edge's, sampled once a second over LAG_SECS (20):
#                median and max, and the median of the first and of the last quarter (growing = falling behind);
#   forming bars of 1m, 5m, 1h (the edge derives these from the 1s bars): polled on both until the edge serves
#                a state the ingest was seen serving (same open time and trade count), which must be equal field
#                by field (the edge lags, so a state is only compared with the same state).
# Retried a few times (the edge may lag). Also counted: the edge's resyncs and gaps, each node's reconnects of
# its command and pub/sub connections, and the connections Redis closed for their output buffer (its log).
# PAUSES=K (default 0) makes a backlog on purpose before the window: Redis paused K times for PAUSE_MS ms each
# (CLIENT PAUSE; 1500 by default, below the nodes' command timeout), so the ingest's writer must catch up from
# behind; the lag then says whether it does. STRESS_SECS=S (default 0) runs two busy loops beside the nodes
# for their first S seconds (a start on a busy machine: the case where an ingest fell behind for good before
# the publisher deferred its cache flushes). The ingest writer's busy time per second over the window, its
# queue at the end and its deferred cache flushes go to stderr.
# Prints a markdown table row per N (for docs/BENCHMARKS.md, "Scale-out traffic").
# Usage: scripts/bench_cluster.sh [symbol counts...]     (default: 6 1000)
# BIN=path/to/candlecast runs another build (e.g. main's, for the before column); LABEL names it in the table.
set -euo pipefail
cd "$(dirname "$0")/.."

counts=("$@"); [ ${#counts[@]} -gt 0 ] || counts=(6 1000)
window=${WINDOW_SECS:-30}
sample=${SAMPLE:-5}
label=${LABEL:-this branch}
if [ -z "${BIN:-}" ]; then
  cargo build --release --bin candlecast >&2
  BIN=${CARGO_TARGET_DIR:-target}/release/candlecast
fi
ticks=$(getconf CLK_TCK)

pids=()
data=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
  [ -z "$data" ] || rm -rf "$data"
  data=""
}
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Per-thread CPU ticks of a process, one "tid ticks name" line per thread (utime + stime; the name, which may
# hold spaces, is between the parentheses of /proc/<pid>/task/<tid>/stat).
thread_ticks() {
  local t stat name rest
  for t in /proc/"$1"/task/*; do
    stat=$(cat "$t/stat" 2>/dev/null) || continue
    name=${stat#*(}; name=${name%)*}; rest=${stat##*) }
    # shellcheck disable=SC2086
    set -- $rest
    echo "${t##*/} $(( ${12} + ${13} )) $name"
  done
}
# The six busiest threads of a process between two thread_ticks files, as % of one core over the window:
# where a single thread saturates while the process as a whole does not.
busiest_threads() {
  awk -v hz="$ticks" -v w="$window" 'NR == FNR {b[$1] = $2; next}
    {name = $3; for (i = 4; i <= NF; i++) name = name " " $i; d = $2 - b[$1];
     if (d > 0) printf "%.0f%% %s[%s]\n", d * 100 / hz / w, name, $1}' "$1" "$2" | sort -rn | head -6 | paste -sd, -
}
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
info() { redis-cli -p "$rport" INFO "$1" | tr -d '\r'; }
info_field() { info "$1" | awk -F: -v k="$2" '$1 == k {print $2}'; }
publish_calls() { info commandstats | sed -n 's/^cmdstat_publish:calls=\([0-9]*\),.*/\1/p' | grep . || echo 0; }

# Writes the config of one node: role, id, HTTP port 0 (read back from its log), the N symbols.
node_config() {
  local role=$1 id=$2 n=$3
  printf '[server]\nhost = "127.0.0.1"\nport = 0\n[log]\nlevel = "warn"\n[store]\npath = "%s/store-%s"\n' "$data" "$id"
  printf '[node]\nrole = "%s"\nid = "%s"\n[redis]\nurl = "redis://127.0.0.1:%s"\n' "$role" "$id" "$rport"
  # The sub-minute intervals capped as README suggests for many symbols (Redis memory).
  printf 'cache_max_bars = { "1s" = 3600, "5s" = 720, "15s" = 240, "30s" = 120 }\n'
  printf 'max_followed_symbols = %s\n' "$((n > 10000 ? n : 10000))"
  printf '[feed]\nsource = "simulated"\nsymbols = ['
  for i in $(seq 1 "$n"); do printf '"S%05dUSDT",' "$i"; done
  printf ']\n[feed.simulated]\ntrades_per_second = 1.0\nbackfill_days = 0\nbackfill_fine_hours = 0\n'
}

start_node() {
  local role=$1 id=$2 n=$3
  node_config "$role" "$id" "$n" > "$data/$id.toml"
  "$BIN" --config "$data/$id.toml" > "$data/$id.out" 2> "$data/$id.err" &
  pids+=($!)
  eval "${id}_pid=$!"
  local port=""
  for _ in $(seq 600); do
    port=$(grep -o 'http://127.0.0.1:[0-9]*' "$data/$id.out" 2>/dev/null | head -1 | cut -d: -f3) && [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "$id did not start: $(tail -5 "$data/$id.err")" >&2; exit 1; }
  eval "${id}_port=$port"
}

redis_stat() { curl -sf "http://127.0.0.1:$1/api/stats" | jq -r ".stats.redis.$2 // 0"; }

# Compares the closed bars of one symbol and interval on both nodes; prints nothing when equal.
# Prints nothing when the edge serves a forming bar of SYMBOL and INTERVAL that the ingest was seen serving in the
# same state (open time and trade count) and both are equal; else what differs or that no state was seen on both.
compare_forming() {
  python3 - "$ingest_port" "$edge_port" "$1" "$2" <<'EOF'
import json, sys, time, urllib.request
ingest, edge, sym, iv = sys.argv[1:]
def forming(port):
    url = f"http://127.0.0.1:{port}/api/historical/{sym}?interval={iv}&limit=1"
    try:
        bars = json.load(urllib.request.urlopen(url, timeout=5))["data"]
    except Exception:
        return None
    return bars[-1] if bars and not bars[-1]["closed"] else None
seen = {}
for _ in range(200):
    a = forming(ingest)
    if a:
        seen[(a["timestamp"], a["trades"])] = a
    e = forming(edge)
    if e and (e["timestamp"], e["trades"]) in seen:
        a = seen[(e["timestamp"], e["trades"])]
        if a != e:
            print(f"{sym} forming {iv}: ingest {a} edge {e}")
        sys.exit()
    time.sleep(0.05)
print(f"{sym} forming {iv}: no state seen on both nodes")
EOF
}

compare_bars() {
  local sym=$1 iv=$2
  curl -sf "http://127.0.0.1:$ingest_port/api/historical/$sym?interval=$iv&limit=300" > "$data/a.json"
  curl -sf "http://127.0.0.1:$edge_port/api/historical/$sym?interval=$iv&limit=300" > "$data/b.json"
  python3 - "$data/a.json" "$data/b.json" "$sym" "$iv" <<'EOF'
import json, sys
a = [b for b in json.load(open(sys.argv[1]))["data"] if b["closed"]]
e = {b["timestamp"]: b for b in json.load(open(sys.argv[2]))["data"] if b["closed"]}
if len(a) < 3:
    print(f"{sys.argv[3]} {sys.argv[4]}: only {len(a)} closed bars on the ingest"); sys.exit()
# Bars still on their way to the edge (newer than its newest closed bar) are the lag, measured apart
# (measure_lag); the oldest one may have left the window. Every bar the edge has closed must be the ingest's.
newest = max(e) if e else None
for bar in a[1:]:
    if newest is None or bar["timestamp"] > newest:
        break
    if e.get(bar["timestamp"]) != bar:
        print(f"{sys.argv[3]} {sys.argv[4]} at {bar['timestamp']}: ingest {bar} edge {e.get(bar['timestamp'])}"); sys.exit()
EOF
}

# How far the edge's closed 1s bars are behind the ingest's, sampled for SAMPLE symbols once a second over
# LAG_SECS (default 20): per sample, the ingest's newest closed 1s bar minus the edge's, in seconds. Prints
# "median / max over the window; median of the first and of the last quarter of the samples" (a lag that
# grows from the first quarter to the last is an edge falling behind, not a delay).
measure_lag() {
  python3 - "$ingest_port" "$edge_port" "$1" "$2" "${LAG_SECS:-20}" <<'EOF'
import json, statistics, sys, time, urllib.request
ingest, edge, n, sample, secs = sys.argv[1:]
n, sample, secs = int(n), int(sample), int(secs)
syms = [f"S{(k * n // sample) + 1:05d}USDT" for k in range(sample)]
def newest_closed(port, sym):
    url = f"http://127.0.0.1:{port}/api/historical/{sym}?interval=1s&limit=3"
    try:
        bars = json.load(urllib.request.urlopen(url, timeout=5))["data"]
    except Exception:
        return None
    closed = [b["timestamp"] for b in bars if b["closed"]]
    return max(closed) if closed else None
lags = []
end = time.time() + secs
while time.time() < end:
    for sym in syms:
        a, e = newest_closed(ingest, sym), newest_closed(edge, sym)
        if a is not None and e is not None:
            lags.append((a - e) / 1000)
    time.sleep(1)
if not lags:
    print("n/a"); sys.exit()
q = max(1, len(lags) // 4)
print(f"{statistics.median(lags):.0f} / {max(lags):.0f} s; {statistics.median(lags[:q]):.0f} s then {statistics.median(lags[-q:]):.0f} s")
EOF
}

echo "| build | symbols | Redis commands/s | PUBLISH/s | Redis CPU (% of a core) | Redis bytes in/s | Redis bytes out/s | Redis memory | ingest CPU / RSS | edge CPU / RSS | reconnects ingest / edge (commands, pub/sub) | output-buffer closes | edge resyncs | edge bars = ingest bars | edge lag, closed 1s: median / max; first then last quarter |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for n in "${counts[@]}"; do
  data=$(mktemp -d)
  rport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$data" --daemonize no \
    > "$data/redis.out" 2>&1 &
  pids+=($!); redis_pid=$!
  for _ in $(seq 100); do redis-cli -p "$rport" PING >/dev/null 2>&1 && break; sleep 0.1; done
  if [ "${STRESS_SECS:-0}" -gt 0 ]; then
    for _ in 1 2; do timeout "$STRESS_SECS" yes > /dev/null & done
  fi
  start_node ingest ingest "$n"
  start_node edge edge "$n"
  # Ready: the ingest holds every lease and the edge has synced every symbol at least once.
  deadline=$(( $(date +%s) + ${READY_TIMEOUT_SECS:-600} ))
  while :; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "cluster of $n symbols not ready in time" >&2; exit 1; }
    leases=$(curl -sf "http://127.0.0.1:$ingest_port/api/stats" | jq -r '.stats.redis.leases | length' || echo 0)
    resyncs=$(redis_stat "$edge_port" resyncs || echo 0)
    [ "$leases" -ge "$n" ] && [ "$resyncs" -ge "$n" ] && break
    sleep 1
  done
  # Steady: the ingest's first cache rewrites done (their notices make the edge read again) and the edge
  # resyncing no more, over 5 s (at most STEADY_TIMEOUT_SECS; a cluster that never settles is measured as it is).
  steady_deadline=$(( $(date +%s) + ${STEADY_TIMEOUT_SECS:-300} ))
  last=""
  while [ "$(date +%s)" -lt "$steady_deadline" ]; do
    now="$(redis_stat "$edge_port" resyncs) $(redis_stat "$edge_port" receive_gaps)"
    [ "$now" = "$last" ] && break
    last=$now
    sleep 5
  done
  sleep "${SETTLE_SECS:-10}"
  for _ in $(seq 1 "${PAUSES:-0}"); do
    redis-cli -p "$rport" CLIENT PAUSE "${PAUSE_MS:-1500}" ALL > /dev/null
    sleep "$(echo "${PAUSE_MS:-1500} / 1000 + 0.1" | bc -l)"
  done
  busy0=$(redis_stat "$ingest_port" writer_busy_ms)
  c0=$(info_field stats total_commands_processed); p0=$(publish_calls); b0=$(info_field stats total_net_input_bytes)
  o0=$(info_field stats total_net_output_bytes)
  r0=$(cpu_ticks "$redis_pid"); i0=$(cpu_ticks "$ingest_pid"); e0=$(cpu_ticks "$edge_pid")
  thread_ticks "$ingest_pid" > "$data/ingest.t0"; thread_ticks "$edge_pid" > "$data/edge.t0"
  sleep "$window"
  thread_ticks "$ingest_pid" > "$data/ingest.t1"; thread_ticks "$edge_pid" > "$data/edge.t1"
  busy1=$(redis_stat "$ingest_port" writer_busy_ms)
  c1=$(info_field stats total_commands_processed); p1=$(publish_calls); b1=$(info_field stats total_net_input_bytes)
  o1=$(info_field stats total_net_output_bytes)
  r1=$(cpu_ticks "$redis_pid"); i1=$(cpu_ticks "$ingest_pid"); e1=$(cpu_ticks "$edge_pid")
  mem=$(info_field memory used_memory_human)
  pct() { echo "scale=1; ($2 - $1) * 100 / $ticks / $window" | bc; }
  # Bars: a sample of symbols spread over the list, three intervals; up to 15 tries for the edge to catch up.
  lag=$(measure_lag "$n" "$sample")
  verdict="yes"
  for k in $(seq 1 "$sample"); do
    sym=$(printf 'S%05dUSDT' $(( (k - 1) * n / sample + 1 )))
    for iv in 1s 5s 15s; do
      diff=""
      # Once one pair differs for good, the others get one try each (the row says NO either way).
      tries=15; [ "$verdict" = "yes" ] || tries=1
      for _ in $(seq "$tries"); do diff=$(compare_bars "$sym" "$iv"); [ -z "$diff" ] && break; sleep 2; done
      [ -z "$diff" ] || { verdict="NO: $diff"; echo "$diff" >&2; }
    done
    for iv in 1m 5m 1h; do
      diff=""
      tries=15; [ "$verdict" = "yes" ] || tries=1
      for _ in $(seq "$tries"); do diff=$(compare_forming "$sym" "$iv"); [ -z "$diff" ] && break; sleep 1; done
      [ -z "$diff" ] || { verdict="NO: $diff"; echo "$diff" >&2; }
    done
  done
  [ "$verdict" != "yes" ] || verdict="yes (closed 1s/5s/15s, forming 1m/5m/1h of $sample symbols)"
  gaps=$(redis_stat "$edge_port" receive_gaps)
  edge_resyncs=$(redis_stat "$edge_port" resyncs)
  # A build before the second connection has no pub/sub counter: "-".
  reconnects() {
    curl -sf "http://127.0.0.1:$1/api/stats" | jq -r '"\(.stats.redis.reconnects // "-"), \(.stats.redis.pubsub_reconnects // "-")"'
  }
  closes=$(grep -c "output buffer limits" "$data/redis.out" || true)
  # What went wrong, if anything: to stderr, beside the table.
  for node in ingest edge; do
    port_var="${node}_port"
    echo "$n $node: $(curl -sf "http://127.0.0.1:${!port_var}/api/stats" | jq -c '.stats.redis | del(.leases)')" >&2
  done
  echo "$n ingest's writer: busy $(( (busy1 - busy0) / window )) ms a second over the window, queued $(redis_stat "$ingest_port" writer_queued) at the end, $(redis_stat "$ingest_port" cache_flushes_deferred) cache flushes deferred" >&2
  echo "$n ingest's busiest threads over the window: $(busiest_threads "$data/ingest.t0" "$data/ingest.t1")" >&2
  echo "$n edge's busiest threads over the window: $(busiest_threads "$data/edge.t0" "$data/edge.t1")" >&2
  echo "$n redis: $(info stats | grep -E 'output_buffer|rejected|evicted' | tr '\n' ' ')" >&2
  grep -i "output buffer\|closed" "$data/redis.out" | tail -3 >&2 || true
  printf '| %s | %s | %.0f | %.1f | %s %% | %.0f KB/s | %.0f KB/s | %s | %s %% / %s MB | %s %% / %s MB | %s / %s | %s | %s | %s (edge gaps %s) | %s |\n' \
    "$label" "$n" "$(echo "($c1 - $c0) / $window" | bc -l)" "$(echo "($p1 - $p0) / $window" | bc -l)" \
    "$(pct "$r0" "$r1")" "$(echo "($b1 - $b0) / $window / 1000" | bc -l)" \
    "$(echo "($o1 - $o0) / $window / 1000" | bc -l)" "$mem" \
    "$(pct "$i0" "$i1")" "$(rss_mb "$ingest_pid")" "$(pct "$e0" "$e1")" "$(rss_mb "$edge_pid")" \
    "$(reconnects "$ingest_port")" "$(reconnects "$edge_port")" "$closes" "$edge_resyncs" "$verdict" "$gaps" "$lag"
  cleanup
done
