#!/usr/bin/env bash
# A/B of server builds on the fan-out rows (issue 16): every binary × every row of scripts/bench_flush_window.sh
# at one flush window, one fresh server per run, this tree's generator for all. Each round runs inside one hold
# of the shared benchmark lock with the compilers stopped (BENCH_LOCK, FREEZE; see docs/BENCHMARKS.md); the
# binaries' order flips every other round so that neither always runs first.
# Usage: scripts/bench_fanout_ab.sh OUTDIR ROUNDS label=server-binary... (ROWS="6 1", WINDOW=10)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1 rounds=$2; shift 2; bins=("$@")
read -r -a rows <<< "${ROWS:-6 1}"
window=${WINDOW:-10} lock=${BENCH_LOCK:-/tmp/bench.lock} freeze=${FREEZE:-/tmp/prof/freeze.sh}
mkdir -p "$out"
for r in $(seq "$rounds"); do
  order=("${bins[@]}")
  if [ $((r % 2)) -eq 0 ]; then mapfile -t order < <(printf '%s\n' "${bins[@]}" | tac); fi
  cmds=""
  for t in "${rows[@]}"; do
    for lb in "${order[@]}"; do
      label=${lb%%=*} bin=${lb#*=}
      cmds+="echo \"\$(date -u +%T) $label x$t r$r load \$(cut -d' ' -f1 /proc/loadavg)\" >> $out/runs.log; "
      cmds+="NO_BUILD=1 SERVER_BIN=$bin TOPICS=$t RESULTS=$out/$label-r$r scripts/bench_flush_window.sh $window"
      cmds+=" > $out/$label-x$t-r$r.table 2>&1; "
    done
  done
  flock "$lock" bash -c "[ ! -x $freeze ] || $freeze stop; $cmds [ ! -x $freeze ] || $freeze cont"
  echo "$(date -u +%T) round $r done" >> "$out/runs.log"
done
for f in "$out"/*.table; do echo "$(basename "$f" .table): $(tail -1 "$f")"; done
