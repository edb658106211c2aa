#!/usr/bin/env bash
# Fuzzes every parser that reads outside input: builds the targets of fuzz/ (cargo-fuzz, libFuzzer, on
# the nightly toolchain) and runs each for a fixed time from its committed seeds in fuzz/corpus/<target>/.
# Prints per target the inputs tried and the crashes found; a crash's input is kept in
# fuzz/artifacts/<target>/ (turn it into a regression test next to the parser: see docs/RELIABILITY.md).
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     (default 60 s, every target)
#
# Not part of `make test` (it needs nightly); the regression tests of what it found are.
set -uo pipefail

secs="${1:-60}"
shift || true
cd "$(dirname "$0")/.."

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: rustup toolchain install nightly && cargo install cargo-fuzz" >&2
    exit 2
fi

# No sanitizer: the code is safe Rust, and without ASan twice as many inputs are tried. Debug assertions
# (overflow checks included) stay on, so an arithmetic overflow is a crash as it is in `cargo test`.
build_flags=(--sanitizer none --debug-assertions)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

if [ $# -eq 1 ]; then
    cargo +nightly fuzz build "${build_flags[@]}" "$1" || exit 1
else
    cargo +nightly fuzz build "${build_flags[@]}" || exit 1
fi

mkdir -p fuzz/logs
printf '%-18s %12s %8s\n' target inputs crashes
failed=0
for t in "${targets[@]}"; do
    # New inputs go to a scratch corpus (ignored by git); the committed seeds stay as they are.
    mkdir -p "fuzz/scratch/$t" "fuzz/artifacts/$t"
    before=$(find "fuzz/artifacts/$t" -type f | wc -l)
    # -timeout: an input taking 10 s is a hang; -rss_limit_mb/-malloc_limit_mb: 2 GB is unbounded memory.
    cargo +nightly fuzz run "${build_flags[@]}" "$t" "fuzz/scratch/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
        -print_final_stats=1 >"fuzz/logs/$t.log" 2>&1
    inputs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/logs/$t.log" | grep -o '[0-9]*$' | tail -1)
    if [ -z "$inputs" ]; then
        # A crash stops libFuzzer before its final stats; its last status line still counts the inputs.
        inputs=$(grep -o '^#[0-9]*' "fuzz/logs/$t.log" | tail -1 | tr -d '#')
    fi
    crashes=$(( $(find "fuzz/artifacts/$t" -type f | wc -l) - before ))
    [ "$crashes" -gt 0 ] && failed=1
    printf '%-18s %12s %8s\n' "$t" "${inputs:-?}" "$crashes"
    if [ "$crashes" -gt 0 ]; then
        grep -m1 -A3 "panicked at\|ERROR: libFuzzer" "fuzz/logs/$t.log" | sed 's/^/    /'
        grep -o 'Test unit written to .*' "fuzz/logs/$t.log" | sed 's/^/    /'
    fi
done
exit "$failed"
