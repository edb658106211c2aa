#!/usr/bin/env bash
# Runs the Rust test suite as if the wall clock read a given time of day, to prove no test depends on the hour:
# 00:00:30, 09:59:00, 10:01:00 and 23:59:30 UTC on a Wednesday, and Sunday 23:59:30 (the week boundary).
#
#   scripts/test-clock.sh                       every instant above
#   scripts/test-clock.sh "2026-12-09 10:01:00" one instant (UTC)
#   TEST_CLOCK_FILTER=cluster_redis scripts/test-clock.sh   only test binaries whose name contains it
#
# How: libfaketime (Debian package `faketime`) shifts the wall clock of the built test binaries (not of cargo,
# which would rebuild everything under a shifted clock) by an offset computed just before each binary starts,
# so each starts at the chosen instant; monotonic clocks stay real (FAKETIME_DONT_FAKE_MONOTONIC=1), so
# timeouts are unaffected. The candlecast servers the tests start inherit the shifted clock; redis-server and
# influxd do not (tests/common strips LD_PRELOAD from them: they fail to start under libfaketime).
# Not part of `make test`: it runs the suite five times (about 5 x 5 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

lib=$(find /usr/lib -name 'libfaketime.so.1' -path '*faketime*' 2>/dev/null | grep -v MT | head -n1 || true)
if [ -z "$lib" ]; then
  echo "installing libfaketime (Debian package faketime)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends faketime
  lib=$(find /usr/lib -name 'libfaketime.so.1' -path '*faketime*' | grep -v MT | head -n1)
fi

instants=("$@")
if [ ${#instants[@]} -eq 0 ]; then
  instants=("2026-12-09 00:00:30" "2026-12-09 09:59:00" "2026-12-09 10:01:00" "2026-12-09 23:59:30" "2026-12-06 23:59:30")
fi

scripts/test-deps.sh
echo "== building the test binaries"
mapfile -t binaries < <(cargo test --workspace --all-targets --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        # criterion benches take --test (one quick run of each, as cargo test does); test harnesses take -q.
        flag = "--test" if "bench" in m["target"]["kind"] else "-q"
        print(m["executable"] + "\t" + m["manifest_path"].rsplit("/", 1)[0] + "\t" + flag)')

failed=()
for instant in "${instants[@]}"; do
  target=$(date -u -d "$instant UTC" +%s)
  tag=$(date -u -d "@$target" +%a-%H%M%S)
  echo "== as if it were $(date -u -d "@$target" '+%A %Y-%m-%d %H:%M:%S UTC')"
  for entry in "${binaries[@]}"; do
    IFS=$'\t' read -r bin dir flag <<<"$entry"
    name=$(basename "$bin")
    [[ -n "${TEST_CLOCK_FILTER:-}" && "$name" != *"$TEST_CLOCK_FILTER"* ]] && continue
    offset=$((target - $(date -u +%s)))
    # Integration tests read CARGO_BIN_EXE_* at build time; unit tests run from their crate's directory.
    if ! (cd "$dir" && LD_PRELOAD="$lib" FAKETIME="${offset:+$( [ "$offset" -ge 0 ] && echo + )}$offset" \
          FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_NO_CACHE=1 "$bin" "$flag" >"/tmp/test-clock-$name-$tag.log" 2>&1); then
      echo "   FAILED: $name ($instant), log: /tmp/test-clock-$name-$tag.log"
      failed+=("$name @ $instant")
    else
      echo "   ok: $name $(grep -E '^test result' "/tmp/test-clock-$name-$tag.log" | tail -n1)"
    fi
  done
done
if [ ${#failed[@]} -gt 0 ]; then
  printf 'failed:\n'; printf '  %s\n' "${failed[@]}"
  exit 1
fi
echo "every test binary passed at every instant"
