#!/bin/sh
# The eight-live-charts browser test (tests/browser/performance.test.mjs) on two dashboards in one session:
# the test bundle of BASE (a commit) and this tree's, alternating, ROUNDS times each, so both see the same
# machine load. Prints one `# performance:` line per run. Needs target/debug/candlecast (cargo build --bin
# candlecast) and npm ci in frontend/ and tests/browser/. Leaves this tree's frontend/dist-test in place.
#   scripts/chart-perf-ab.sh <base-commit> [rounds]
set -eu
base=$1
rounds=${2:-3}
root=$(git rev-parse --show-toplevel)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$root"
git archive "$base" frontend | tar -x -C "$tmp"
ln -s "$root/frontend/node_modules" "$tmp/frontend/node_modules"
(cd "$tmp/frontend" && npx vite build --mode browsertest --outDir "$tmp/dist-base" --logLevel warn)
(cd frontend && npx vite build --mode browsertest --outDir "$tmp/dist-head" --logLevel warn)
for _ in $(seq 1 "$rounds"); do
  for v in base head; do
    rm -rf frontend/dist-test
    cp -r "$tmp/dist-$v" frontend/dist-test
    # The tests refuse a bundle older than frontend/src.
    touch frontend/dist-test
    out=$(cd tests/browser && node --test performance.test.mjs 2>&1 || true)
    line=$(printf '%s\n' "$out" | grep '^# performance:' || true)
    # A run that failed (e.g. the server did not start in time) says so instead of printing nothing.
    echo "$v ${line:-run failed: $(printf '%s\n' "$out" | grep -m1 -i 'error' || echo 'no performance line')}"
  done
done
rm -rf frontend/dist-test
cp -r "$tmp/dist-head" frontend/dist-test
touch frontend/dist-test
