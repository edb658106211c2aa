//! The simulated market: the default feed, so candlecast runs with no outside service.
//!
//! Trades arrive as a Poisson process; the price follows a geometric random walk whose volatility
//! switches between a calm and a burst regime. Everything is drawn from one seeded generator per
//! symbol, so a run is reproducible from its seed (live timing aside). At start it backfills history:
//! 1m bars for the last `backfill_days`, 1s bars for the last `backfill_fine_hours`, and every other
//! interval resampled from those, so charts have depth at once and all intervals agree.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, LogNormal, Poisson, StandardNormal};
use serde::Deserialize;

use super::{Connector, FeedError};
use crate::model::{now_ms, resample, Bar, Interval, Side, Symbol, Trade};

/// Settings of the simulated feed (`[feed.simulated]` in the config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedSettings {
    /// Seed of the random generators (each symbol mixes in its name).
    pub seed: u64,
    /// Mean trades per second per symbol.
    pub trades_per_second: f64,
    /// Days of 1m history generated at start (0: none).
    pub backfill_days: u32,
    /// Hours of 1s history generated at start, for the sub-minute intervals.
    pub backfill_fine_hours: u32,
    /// How often trades are emitted, in ms (each tick carries the trades that arrived during it).
    pub tick_ms: u64,
    /// Volatility per square-root second in the calm regime (0.0002 ≈ 110 % a year).
    pub volatility: f64,
    /// Starting prices; symbols not listed start from a built-in table of realistic prices, or 100.
    #[serde(default)]
    pub start_prices: BTreeMap<String, f64>,
}

impl Default for SimulatedSettings {
    fn default() -> Self {
        SimulatedSettings {
            seed: 42,
            trades_per_second: 20.0,
            backfill_days: 7,
            backfill_fine_hours: 24,
            tick_ms: 50,
            volatility: 0.0002,
            start_prices: BTreeMap::new(),
        }
    }
}

/// Realistic starting points for the default symbols.
fn default_price(symbol: &str) -> f64 {
    match symbol {
        "BTCUSDT" => 67_000.0,
        "ETHUSDT" => 3_400.0,
        "BNBUSDT" => 590.0,
        "SOLUSDT" => 150.0,
        "XRPUSDT" => 0.52,
        "ADAUSDT" => 0.45,
        "DOGEUSDT" => 0.12,
        _ => 100.0,
    }
}

/// Burst regime: volatility multiplier, and mean seconds between bursts and of a burst.
const BURST_FACTOR: f64 = 4.0;
const SECONDS_BETWEEN_BURSTS: f64 = 600.0;
const BURST_SECONDS: f64 = 30.0;
/// Trade sizes: log-normal notional around this many quote units.
const MEDIAN_NOTIONAL: f64 = 300.0;

/// The simulated venue for one symbol.
#[derive(Clone)]
pub struct SimulatedConnector {
    symbol: Symbol,
    rng: SmallRng,
    price: f64,
    trades_per_second: f64,
    volatility: f64,
    in_burst: bool,
    tick: Duration,
    backfill_days: u32,
    backfill_fine_hours: u32,
    /// Exchange time (ms, fractional) of the last generated trade.
    clock: f64,
    next_id: u64,
}

impl SimulatedConnector {
    pub fn new(symbol: Symbol, settings: &SimulatedSettings) -> SimulatedConnector {
        let name_hash = symbol.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        let price = settings.start_prices.get(&*symbol).copied().unwrap_or_else(|| default_price(&symbol));
        SimulatedConnector {
            rng: SmallRng::seed_from_u64(settings.seed ^ name_hash),
            symbol,
            price,
            trades_per_second: settings.trades_per_second.max(0.001),
            volatility: settings.volatility.max(0.0),
            in_burst: false,
            tick: Duration::from_millis(settings.tick_ms.max(1)),
            backfill_days: settings.backfill_days,
            backfill_fine_hours: settings.backfill_fine_hours,
            clock: 0.0,
            next_id: 1,
        }
    }

    /// Moves the price over `dt` seconds and flips the regime with the right probabilities.
    fn step(&mut self, dt: f64) -> f64 {
        let switch = if self.in_burst { dt / BURST_SECONDS } else { dt / SECONDS_BETWEEN_BURSTS };
        if self.rng.random::<f64>() < switch {
            self.in_burst = !self.in_burst;
        }
        let sigma = self.volatility * if self.in_burst { BURST_FACTOR } else { 1.0 };
        let z: f64 = StandardNormal.sample(&mut self.rng);
        self.price *= (sigma * dt.sqrt() * z).exp();
        round_to_tick(self.price)
    }

    fn qty(&mut self, price: f64) -> f64 {
        let notional = LogNormal::new(MEDIAN_NOTIONAL.ln(), 1.0).map(|d| d.sample(&mut self.rng)).unwrap_or(MEDIAN_NOTIONAL);
        round_sig(notional / price, 6)
    }

    /// One synthetic bar of `len_s` seconds starting at the current price.
    fn synth_bar(&mut self, interval: Interval, open_time: i64) -> Bar {
        let len_s = interval.millis() as f64 / 1000.0;
        let expected = self.trades_per_second * len_s;
        let trades = Poisson::new(expected).map(|d| d.sample(&mut self.rng) as u64).unwrap_or(0);
        let open = round_to_tick(self.price);
        if trades == 0 {
            let _ = self.step(len_s);
            let mut flat = Bar::flat(self.symbol.clone(), interval, open_time, open);
            flat.closed = true;
            return flat;
        }
        let mut bar = Bar::from_trade(self.symbol.clone(), interval, open_time, open, 0.0);
        bar.trades = 0;
        bar.volume = 0.0;
        const STEPS: u32 = 4;
        for _ in 0..STEPS {
            let p = self.step(len_s / STEPS as f64);
            bar.apply_trade(p, 0.0);
        }
        bar.open = open;
        bar.low = bar.low.min(open);
        bar.high = bar.high.max(open);
        bar.trades = trades;
        bar.volume = round_sig((0..trades.min(8)).map(|_| self.qty(open)).sum::<f64>() * trades as f64 / trades.min(8) as f64, 8);
        bar.closed = true;
        bar
    }
}

fn round_sig(v: f64, digits: i32) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(digits - 1 - v.log10().floor() as i32);
    (v * scale).round() / scale
}

/// Prices move in ticks of about six significant digits, like a real order book's.
fn round_to_tick(p: f64) -> f64 {
    round_sig(p, 6).max(f64::MIN_POSITIVE)
}

impl Connector for SimulatedConnector {
    fn source(&self) -> &'static str {
        "simulated"
    }

    fn symbol(&self) -> &Symbol {
        &self.symbol
    }

    async fn backfill(&mut self, now: i64, intervals: &[Interval]) -> Result<Vec<(Interval, Vec<Bar>)>, FeedError> {
        // Hundreds of thousands of synthetic bars are CPU work: do it on the blocking pool, so the arbiter
        // that runs the aggregators stays responsive and the symbols' backfills run side by side.
        let mut worker = self.clone();
        let intervals = intervals.to_vec();
        let (bars, worker) = tokio::task::spawn_blocking(move || {
            let bars = worker.generate_history(now, &intervals);
            (bars, worker)
        })
        .await
        .map_err(|e| FeedError::Ended(format!("backfill task failed: {e}")))?;
        *self = worker;
        Ok(bars)
    }

    async fn connect(&mut self) -> Result<(), FeedError> {
        // Live trades start now; the time since the backfill ended is flat bars, not invented trades.
        self.clock = self.clock.max(now_ms() as f64);
        Ok(())
    }

    async fn next_trades(&mut self) -> Result<Vec<Trade>, FeedError> {
        self.live_trades().await
    }
}

impl SimulatedConnector {
    /// The backfill itself (synchronous).
    fn generate_history(&mut self, now: i64, intervals: &[Interval]) -> Vec<(Interval, Vec<Bar>)> {
        let fine_end = Interval::S1.align(now);
        let fine_start = Interval::M1.align(fine_end - self.backfill_fine_hours as i64 * 3_600_000);
        let coarse_start = Interval::M1.align(fine_start - self.backfill_days as i64 * 86_400_000);
        if self.backfill_days == 0 && self.backfill_fine_hours == 0 {
            return Vec::new();
        }
        let mut minutes = Vec::new();
        let mut t = coarse_start;
        while t < fine_start {
            minutes.push(self.synth_bar(Interval::M1, t));
            t += Interval::M1.millis();
        }
        let mut seconds = Vec::new();
        let mut t = fine_start;
        while t < fine_end {
            seconds.push(self.synth_bar(Interval::S1, t));
            t += Interval::S1.millis();
        }
        minutes.extend(resample(&seconds, Interval::M1));
        let mut out = Vec::new();
        for &iv in intervals {
            let bars = if iv == Interval::S1 {
                seconds.clone()
            } else if iv < Interval::M1 {
                resample(&seconds, iv)
            } else if iv == Interval::M1 {
                minutes.clone()
            } else {
                resample(&minutes, iv)
            };
            out.push((iv, bars));
        }
        self.clock = fine_end as f64;
        out
    }

    /// Waits one tick and returns the trades that arrived during it.
    async fn live_trades(&mut self) -> Result<Vec<Trade>, FeedError> {
        tokio::time::sleep(self.tick).await;
        let now = now_ms();
        // After a pause longer than a few ticks (a suspended machine), do not replay the gap.
        self.clock = self.clock.max(now as f64 - 10.0 * self.tick.as_millis() as f64);
        let per_ms = self.trades_per_second / 1000.0;
        let gap = Exp::new(per_ms).map_err(|e| FeedError::Ended(format!("bad trade rate: {e}")))?;
        let mut trades = Vec::new();
        loop {
            let next = self.clock + gap.sample(&mut self.rng);
            if next > now as f64 {
                // Memorylessness: the next arrival is drawn afresh from `now` at the next tick.
                self.clock = now as f64;
                break;
            }
            let dt = (next - self.clock) / 1000.0;
            self.clock = next;
            let price = self.step(dt);
            let qty = self.qty(price);
            let side = if self.rng.random::<bool>() { Side::Buy } else { Side::Sell };
            trades.push(Trade { symbol: self.symbol.clone(), price, qty, side, exchange_ts: next as i64, received_ts: now, id: self.next_id });
            self.next_id += 1;
        }
        Ok(trades)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SimulatedSettings {
        SimulatedSettings { backfill_days: 1, backfill_fine_hours: 1, ..Default::default() }
    }

    #[actix_rt::test]
    async fn backfill_is_reproducible_consistent_and_ends_now() {
        let now = 1_704_067_200_000 + 12_345;
        let all = Interval::ALL.to_vec();
        let a = SimulatedConnector::new("BTCUSDT".into(), &settings()).backfill(now, &all).await.unwrap();
        let b = SimulatedConnector::new("BTCUSDT".into(), &settings()).backfill(now, &all).await.unwrap();
        assert_eq!(a, b, "same seed, same history");
        let by_iv: BTreeMap<Interval, Vec<Bar>> = a.into_iter().collect();
        let m1 = &by_iv[&Interval::M1];
        assert_eq!(m1.len(), 25 * 60 + 1, "1 day + 1 hour of minutes, plus the forming one");
        assert!(m1.windows(2).all(|w| w[1].open_time - w[0].open_time == 60_000), "no gaps");
        for bars in by_iv.values() {
            assert!(bars.iter().all(Bar::is_consistent));
            assert!(bars.last().unwrap().open_time <= now);
        }
        let h1 = &by_iv[&Interval::H1];
        assert_eq!(h1.iter().rev().map(|b| b.closed).take(2).collect::<Vec<_>>(), [false, true], "only the current hour is forming");
        assert_eq!(m1.last().map(|b| b.closed), Some(false), "the current minute is still forming");
        let s1 = &by_iv[&Interval::S1];
        assert_eq!(s1.len(), 3_600 + 12, "one hour and 12 seconds of seconds, all closed");
    }

    #[actix_rt::test]
    async fn live_trades_are_ordered_and_valid() {
        let mut s = SimulatedConnector::new("ETHUSDT".into(), &SimulatedSettings { trades_per_second: 2_000.0, tick_ms: 20, ..settings() });
        s.connect().await.unwrap();
        let mut all = Vec::new();
        for _ in 0..5 {
            all.extend(s.next_trades().await.unwrap());
        }
        assert!(all.len() > 50, "{}", all.len());
        assert!(all.windows(2).all(|w| w[0].exchange_ts <= w[1].exchange_ts && w[0].id < w[1].id));
        assert!(all.iter().all(|t| t.validate().is_ok() && t.exchange_ts <= t.received_ts));
    }
}
