#!/usr/bin/env bash
# Per-symbol cost (issue 20), a skeleton: candlecast (release) with N simulated symbols at 1 trade/s each,
# a 1-day backfill with 1 hour of 1s bars, the default store (or STORE_KIND) in a fresh temporary directory, no
# clients. Per N it measures:
#   backfill     start -> the backfill's bars all written (persistence: written_bars >= N x 7,000, every
#                backfill handed over (none pending, running or waiting), nothing buffered beyond one batch,
#                nothing journaled), and the write throughput over it
#   RSS, CPU     after the backfill, idle: RSS, and CPU over SAMPLE_SECS as % of one core (/proc/<pid>/stat)
#   store        file size, bars (/api/stats store.bars) and bytes per bar
#   first chart  the slowest of GET /api/historical/<symbol>?interval=1m&limit=1000 (curl time_total) for the
#                first, middle and last symbol: with memory tiers most of the 1,000 bars come from the store
#   late dropped trades dropped as older than the grace window (/api/stats late_dropped), over the whole run
# Prints a markdown table (for docs/BENCHMARKS.md, "## Store") and keeps bench/results/symbols-<N>.json; with
# WRITE_DOC=1 also puts it between <!-- bench-symbols --> and <!-- /bench-symbols --> in docs/BENCHMARKS.md.
# Usage: scripts/bench_symbols.sh [symbol counts...]   (default: 100 1000; add 10000 for issue 20's row)
# SERVER_BIN=<path> runs that binary instead of building this checkout's (to measure an earlier design in the
# same session). While the backfill runs, a progress line (written, buffered, journaled, dropped, backfills
# pending, RSS) goes to stderr every PROGRESS_SECS (default 15); the peak RSS seen is kept in the JSON.
# STORE_KIND=embedded|segments picks the store (default: the config's default); it is printed per row and
# kept in the file name: bench/results/symbols-<N>[-<kind>].json. TRADES_PER_SECOND (per symbol, default 1.0)
# and HOT_BARS ([aggregator] hot_bars, default: the config's) vary the run; issue 20's ingestion row is
# TRADES_PER_SECOND=2 SAMPLE_SECS=60 BACKFILL=0 scripts/bench_symbols.sh 10000 (20,000 trades/s in all: the
# late dropped column must stay 0). MALLOC_PROBE=1 (needs gdb) prints
# glibc's malloc_stats totals and the anonymous/file RSS split per row on stderr.
# SERVER_BIN runs that binary instead of building this checkout's (to compare with another build in the same
# session). BACKFILL=0 starts without a backfill (backfill_days = backfill_fine_hours = 0): the idle figures
# are then taken once the server is ready, which lets 10,000 symbols be measured while their backfill does
# not finish. IDLE_AFTER_SECS (default 0) waits that long after the backfill before the idle figures: after
# 10,000 symbols' backfill the store is still merging its segments for a while, which is not idle CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

counts=("$@"); [ ${#counts[@]} -gt 0 ] || counts=(100 1000)
rate=${TRADES_PER_SECOND:-1.0}
hot=${HOT_BARS:-}
sample=${SAMPLE_SECS:-30}
kind=${STORE_KIND:-}
results=bench/results; mkdir -p "$results"

backfill=${BACKFILL:-1}
if [ -n "${SERVER_BIN:-}" ]; then
  server_bin=$SERVER_BIN
else
  cargo build --release --bin candlecast
  server_bin=${CARGO_TARGET_DIR:-target}/release/candlecast
fi
progress_every=${PROGRESS_SECS:-15}
ticks=$(getconf CLK_TCK)

server_pid=""; data=""
stop_server() { [ -z "$server_pid" ] || { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }; server_pid=""; }
# A run stopped by its timeout leaves no store of gigabytes behind.
trap 'stop_server; [ -z "$data" ] || rm -rf "$data"' EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

table=$(mktemp)
{
  echo "| store kind | symbols | trades/s | backfill | bars written | write throughput | RSS idle | CPU idle | store | bytes per bar | first chart (1m, 1,000 bars) | late dropped |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
} | tee "$table"
for n in "${counts[@]}"; do
  data=$(mktemp -d)
  config="$data/bench.toml"
  {
    printf '[server]\nhost = "127.0.0.1"\nport = 0\n[log]\nlevel = "warn"\n[store]\npath = "%s/store"\n' "$data"
    [ -z "$kind" ] || printf 'kind = "%s"\n' "$kind"
    [ -z "$hot" ] || printf '[aggregator]\nhot_bars = %s\n' "$hot"
    printf '[feed]\nsource = "simulated"\nsymbols = ['
    for i in $(seq 1 "$n"); do printf '"S%05dUSDT",' "$i"; done
    printf ']\n[feed.simulated]\ntrades_per_second = %s\nbackfill_days = %s\nbackfill_fine_hours = %s\n' "$rate" "$backfill" "$backfill"
  } > "$config"
  started=$(date +%s.%N)
  "$server_bin" --config "$config" > "$data/server.out" 2> "$data/server.err" &
  server_pid=$!
  port=""
  for _ in $(seq 600); do
    port=$(grep -o 'http://127.0.0.1:[0-9]*' "$data/server.out" 2>/dev/null | head -1 | cut -d: -f3) && [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "server did not start: $(tail -5 "$data/server.err")" >&2; exit 1; }
  stats() { curl -sf "http://127.0.0.1:$port/api/stats"; }
  want=$((n * 7000 * backfill))
  deadline=$(( $(date +%s) + ${BACKFILL_TIMEOUT_SECS:-1800} ))
  peak_rss=0; next_progress=$(( $(date +%s) + progress_every ))
  while :; do
    kill -0 "$server_pid" 2>/dev/null || { echo "server exited: $(tail -5 "$data/server.err")" >&2; exit 1; }
    s=$(stats || echo '{}')
    written=$(jq -r '.stats.persistence.written_bars // 0' <<<"$s")
    buffered=$(jq -r '.stats.persistence.buffered_bars // 0' <<<"$s")
    journal=$(jq -r '.stats.persistence.journal_bars // 0' <<<"$s")
    now_rss=$(rss_mb "$server_pid"); [ "$now_rss" -le "$peak_rss" ] || peak_rss=$now_rss
    if [ "$(date +%s)" -ge "$next_progress" ] || [ "$(date +%s)" -ge "$deadline" ]; then
      next_progress=$(( $(date +%s) + progress_every ))
      echo "symbols $n, $(echo "$(date +%s.%N) - $started" | bc | cut -d. -f1) s: written $written of $want, buffered $buffered, journal $journal, dropped $(jq -r '.stats.persistence.dropped_bars // 0' <<<"$s"), waiting $(jq -r '.stats.persistence.backfill_waiting_bars // 0' <<<"$s"), backfills pending $(jq -r '.stats.persistence.backfills_pending // "-"' <<<"$s"), RSS $now_rss MB (peak $peak_rss MB)" >&2
    fi
    [ "$(date +%s)" -lt "$deadline" ] || { echo "backfill of $n symbols not written within the timeout" >&2; exit 1; }
    # Live bars count in written_bars too: the backfills themselves must also be over (all handed over).
    backfills=$(jq -r '(.stats.persistence.backfills_pending // 0) + (.stats.persistence.backfills_running // 0) + (.stats.persistence.backfill_waiting_bars // 0)' <<<"$s")
    [ "$written" -ge "$want" ] && [ "$buffered" -le 1000 ] && [ "$journal" -eq 0 ] && [ "$backfills" -eq 0 ] && break
    sleep 1
  done
  if [ "$backfill" = 0 ]; then
    # No backfill to wait for: every feed started, then a few seconds for the start-up to settle.
    until curl -sf -o /dev/null "http://127.0.0.1:$port/ready"; do sleep 1; done
    sleep 5
  fi
  took=$(echo "$(date +%s.%N) - $started" | bc)
  # Steady, not just after: the store merges what a large backfill wrote for a while after it (IDLE_AFTER_SECS).
  sleep "${IDLE_AFTER_SECS:-0}"
  t0=$(stats | jq -r '.stats.trades_total')
  c0=$(cpu_ticks "$server_pid"); sleep "$sample"; c1=$(cpu_ticks "$server_pid")
  trades_per_s=$(( ($(stats | jq -r '.stats.trades_total') - t0) / sample ))
  cpu=$(echo "scale=1; ($c1 - $c0) * 100 / $ticks / $sample" | bc)
  rss=$(rss_mb "$server_pid")
  chart=0
  for i in 1 $(( (n + 1) / 2 )) "$n"; do
    t=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/api/historical/$(printf 'S%05dUSDT' "$i")?interval=1m&limit=1000")
    chart=$(echo "if ($t > $chart) $t else $chart" | bc)
  done
  s=$(stats)
  bars=$(jq -r '.stats.store.bars' <<<"$s")
  bytes=$(jq -r '.stats.store.file_bytes' <<<"$s")
  if [ -n "${MALLOC_PROBE:-}" ]; then
    # Where the RSS is: glibc's own count of the bytes in use (vs taken from the system), printed on the
    # server's stderr, and the anonymous / file-backed split. Needs gdb.
    gdb -p "$server_pid" -batch -ex 'call (void)malloc_stats()' > /dev/null 2>&1 || true
    echo "symbols $n: $(grep -E 'RssAnon|RssFile' "/proc/$server_pid/status" | tr -s ' \t\n' ' '); malloc_stats total: $(grep -A2 '^Total' "$data/server.err" | tr -s ' \n' ' ')" >&2
  fi
  jq --argjson n "$n" --arg backfill "$took" --arg cpu "$cpu" --argjson rss "$rss" --arg chart "$chart" \
    --argjson peak "$peak_rss" \
    '{symbols: $n, backfill_s: ($backfill|tonumber), cpu_percent: ($cpu|tonumber), rss_mb: $rss, peak_rss_mb: $peak, first_chart_s: ($chart|tonumber), stats: .stats}' \
    <<<"$s" > "$results/symbols-$n${kind:+-$kind}$([ "$backfill" = 1 ] || echo -nobackfill).json"
  printf '| %s | %s | %s | %.0f s | %s | %.0f K bars/s | %s MB | %s %% | %.0f MB | %.0f B | %.0f ms | %s |\n' \
    "$(jq -r '.stats.store.kind' <<<"$s")" "$n" "$trades_per_s" "$took" "$written" \
    "$(echo "$written / $took / 1000" | bc -l)" "$rss" "$cpu" "$(echo "$bytes / 1000000" | bc -l)" \
    "$(echo "if ($bars > 0) $bytes / $bars else 0" | bc -l)" "$(echo "$chart * 1000" | bc -l)" "$(jq -r '.stats.late_dropped' <<<"$s")" | tee -a "$table"
  stop_server
  rm -rf "$data"
done

if [ -n "${WRITE_DOC:-}" ]; then
  # The table between the markers, then the command that made it.
  doc=docs/BENCHMARKS.md
  note="Made $(date -u '+%Y-%m-%d %H:%M UTC') by \`scripts/bench_symbols.sh ${counts[*]}\` (load average $(cut -d' ' -f1-3 /proc/loadavg))."
  awk -v table="$table" -v note="$note" '
    /<!-- bench-symbols -->/ { print; while ((getline line < table) > 0) print line; print ""; print note; skip = 1; next }
    /<!-- \/bench-symbols -->/ { skip = 0 }
    !skip { print }
  ' "$doc" > "$doc.tmp" && mv "$doc.tmp" "$doc"
fi
rm -f "$table"
