# Sourced by the fan-out benchmarks (bench.sh, bench_flush_window.sh): the server they start, as `make bench`
# measures it. Every topic must update 10 times a second: 200 trades/s per symbol, one-second bars.
export CANDLECAST__SERVER__HOST=127.0.0.1 CANDLECAST__SERVER__PORT=0
export CANDLECAST__FEED__SIMULATED__TRADES_PER_SECOND=200 CANDLECAST__FEED__SIMULATED__TICK_MS=20
export CANDLECAST__FEED__SIMULATED__BACKFILL_DAYS=1 CANDLECAST__FEED__SIMULATED__BACKFILL_FINE_HOURS=1
export CANDLECAST__LOG__LEVEL=warn
