# candlecast: the two commands of the README, and their parts.
#   make run   - build the dashboard when needed and run candlecast on http://localhost:8000
#   make test  - install what the tests need (apt, npm), then run every test

.PHONY: run test bench bench-symbols abuse frontend test-rust test-frontend test-browser

run: frontend
	cargo run --release --bin candlecast -- $(ARGS)

# Builds frontend/dist when its sources changed; without npm, the server shows a placeholder page.
frontend:
	@scripts/build-frontend.sh

test:
	@scripts/test.sh

# Fan-out benchmark (release build, 1k..19k clients); writes docs/BENCHMARKS.md. Takes ~5 minutes.
bench:
	@scripts/bench.sh

# Per-symbol cost (issue 20): 100 and 1,000 simulated symbols, RSS, CPU, backfill time, store size and bytes
# per bar; prints the table for docs/BENCHMARKS.md ("## Store"). Counts: make bench-symbols ARGS="100 1000 10000".
bench-symbols:
	@scripts/bench_symbols.sh $(ARGS)

# Abuse benchmark (release build): each attack against 1,000 healthy /ws clients; writes the table to
# docs/RELIABILITY.md ("## Abuse benchmark"). Takes ~7 minutes. Rows: make abuse ARGS="--only jobs,keys";
# make abuse ARGS="--pin" runs the attacker on its own core, as if it were another machine.
abuse:
	@scripts/abuse.sh $(ARGS)

test-rust:
	cargo test --workspace --all-targets

test-frontend:
	cd frontend && npm ci --no-audit --no-fund && npm test

test-browser: frontend
	cd frontend && npm run build:test
	cargo build --bin candlecast
	cd tests/browser && npm ci --no-audit --no-fund && node --test
