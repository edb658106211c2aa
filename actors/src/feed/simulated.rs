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
use crate::persist::history::Held;

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
    /// How often trades are emitted at most, in ms (each batch carries the trades that arrived since the
    /// last). A quiet symbol's feed sleeps until its next trade instead (at most a second).
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
    /// Exchange time of the next trade, drawn ahead so that the feed can sleep until it.
    next_arrival: Option<f64>,
    next_id: u64,
}

impl SimulatedConnector {
    pub fn new(symbol: Symbol, settings: &SimulatedSettings) -> SimulatedConnector {
        let name_hash =
            symbol.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
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
            next_arrival: None,
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
        let notional =
            LogNormal::new(MEDIAN_NOTIONAL.ln(), 1.0).map(|d| d.sample(&mut self.rng)).unwrap_or(MEDIAN_NOTIONAL);
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
        bar.volume = round_sig(
            (0..trades.min(8)).map(|_| self.qty(open)).sum::<f64>() * trades as f64 / trades.min(8) as f64,
            8,
        );
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
    fn source(&self) -> super::FeedSource {
        super::FeedSource::Simulated
    }

    fn symbol(&self) -> &Symbol {
        &self.symbol
    }

    /// Generates what the store does not hold (all of the configured span on a first start).
    async fn backfill(
        &mut self,
        now: i64,
        intervals: &[Interval],
        held: &Held,
    ) -> Result<Vec<(Interval, Vec<Bar>)>, FeedError> {
        let span = self.span(now);
        let resume = Resume::read(held, intervals, &span)
            .await
            .map_err(|e| FeedError::Ended(format!("cannot read stored history: {e}")))?;
        // Hundreds of thousands of synthetic bars are CPU work: do it on the blocking pool, so the arbiter
        // that runs the aggregators stays responsive and the symbols' backfills run side by side.
        let mut worker = self.clone();
        let intervals = intervals.to_vec();
        let (bars, worker) = tokio::task::spawn_blocking(move || {
            let bars = worker.generate_history(&span, &intervals, &resume);
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
        self.next_arrival = None;
        Ok(())
    }

    async fn next_trades(&mut self) -> Result<Vec<Trade>, FeedError> {
        self.live_trades().await
    }
}

/// When a feed that asked for trades at wall-clock ms `started`, whose next trade arrives at `next`, wakes:
/// on the wall-clock grid of `tick_ms` (every feed's wakes in the same instants), at least a tick after
/// `started`, at most [`QUIET_WAKE_MS`] (a quiet feed still wakes to tell it is alive), and after the
/// arrival, with a whole ms more: woken at the arrival's ms, the wall clock (in whole ms) may still be short of it.
fn planned_wake(started: f64, next: f64, tick_ms: f64) -> f64 {
    let wait_ms = ((next - started).ceil() + 1.0).clamp(tick_ms, tick_ms.max(QUIET_WAKE_MS));
    ((started + wait_ms) / tick_ms).ceil() * tick_ms
}

/// The backfilled span: 1m bars over `[coarse_start, fine_start)`, 1s bars over `[fine_start, fine_end)`.
#[derive(Debug, Clone, Copy)]
struct Span {
    coarse_start: i64,
    fine_start: i64,
    fine_end: i64,
}

/// What the store already holds, as generation needs it: where each interval's missing bars start, and
/// the stored base bars (1s, 1m) of every bucket still in progress there, so that the bar of such a
/// bucket is the stored part plus the generated part, as the live aggregator would have built it.
#[derive(Debug, Default)]
struct Resume {
    /// Open time of the first bar not stored, per interval that has any stored.
    next_open: BTreeMap<Interval, i64>,
    stored_seconds: Vec<Bar>,
    stored_minutes: Vec<Bar>,
    /// Close of the newest stored base bar: the generated path starts there.
    last_close: Option<f64>,
}

impl Resume {
    async fn read(held: &Held, intervals: &[Interval], span: &Span) -> Result<Resume, crate::persist::StoreError> {
        let next_open: BTreeMap<Interval, i64> =
            Interval::ALL.iter().filter_map(|iv| held.last(*iv).map(|b| (*iv, b.close_time()))).collect();
        if next_open.is_empty() {
            return Ok(Resume::default());
        }
        let from = |iv: &Interval, none: i64| next_open.get(iv).copied().unwrap_or(none);
        let minutes_next = from(&Interval::M1, span.coarse_start);
        // Seconds build the sub-minute bars and, in the fine span, the minutes from `minutes_next` on.
        let seconds_from = intervals
            .iter()
            .filter(|iv| **iv < Interval::M1)
            .map(|iv| from(iv, span.fine_start))
            .chain([minutes_next.max(span.fine_start)])
            .min()
            .unwrap_or(span.fine_start);
        let minutes_from = intervals
            .iter()
            .filter(|iv| **iv > Interval::M1)
            .map(|iv| from(iv, span.coarse_start))
            .min()
            .unwrap_or(minutes_next);
        let stored_seconds = if next_open.contains_key(&Interval::S1) {
            held.since(Interval::S1, seconds_from).await?
        } else {
            Vec::new()
        };
        let stored_minutes = if next_open.contains_key(&Interval::M1) {
            held.since(Interval::M1, minutes_from).await?
        } else {
            Vec::new()
        };
        let last_close = [held.last(Interval::S1), held.last(Interval::M1)]
            .into_iter()
            .flatten()
            .max_by_key(|b| b.close_time())
            .map(|b| b.close);
        Ok(Resume { next_open, stored_seconds, stored_minutes, last_close })
    }

    fn next_open(&self, interval: Interval) -> Option<i64> {
        self.next_open.get(&interval).copied()
    }
}

impl SimulatedConnector {
    fn span(&self, now: i64) -> Span {
        let fine_end = Interval::S1.align(now);
        let fine_start = Interval::M1.align(fine_end - self.backfill_fine_hours as i64 * 3_600_000);
        let coarse_start = Interval::M1.align(fine_start - self.backfill_days as i64 * 86_400_000);
        Span { coarse_start, fine_start, fine_end }
    }

    /// The backfill itself (synchronous): what `resume` says is missing, continuing its stored bars.
    fn generate_history(&mut self, span: &Span, intervals: &[Interval], resume: &Resume) -> Vec<(Interval, Vec<Bar>)> {
        if self.backfill_days == 0 && self.backfill_fine_hours == 0 {
            return Vec::new();
        }
        if let Some(close) = resume.last_close {
            self.price = close;
        }
        let minutes_next = resume.next_open(Interval::M1).unwrap_or(span.coarse_start).max(span.coarse_start);
        let seconds_next = resume.next_open(Interval::S1).unwrap_or(minutes_next).max(span.fine_start);
        let mut minutes = resume.stored_minutes.clone();
        let mut t = minutes_next;
        while t < span.fine_start {
            minutes.push(self.synth_bar(Interval::M1, t));
            t += Interval::M1.millis();
        }
        let mut seconds = resume.stored_seconds.clone();
        let mut t = seconds_next;
        while t < span.fine_end {
            seconds.push(self.synth_bar(Interval::S1, t));
            t += Interval::S1.millis();
        }
        let fine_minutes_from = minutes_next.max(span.fine_start);
        let fine: Vec<Bar> = seconds.iter().filter(|b| b.open_time >= fine_minutes_from).cloned().collect();
        minutes.extend(resample(&fine, Interval::M1));
        let mut out = Vec::new();
        for &iv in intervals {
            let mut bars = if iv == Interval::S1 {
                seconds.clone()
            } else if iv < Interval::M1 {
                resample(&seconds, iv)
            } else if iv == Interval::M1 {
                minutes.clone()
            } else {
                resample(&minutes, iv)
            };
            if let Some(next) = resume.next_open(iv) {
                bars.retain(|b| b.open_time >= next);
            }
            out.push((iv, bars));
        }
        self.clock = span.fine_end as f64;
        out
    }

    /// Waits until the next trade arrives (but at least a tick, at most [`QUIET_WAKE_MS`]) and returns the
    /// trades that arrived meanwhile: at a high rate a batch every tick, as before; at 1 trade a second one
    /// wake a second, where waking every tick cost 1,000 symbols 20,000 wake-ups a second for nothing
    /// (docs/BENCHMARKS.md, "Per-symbol cost"). An empty batch now and then keeps the feed seen alive.
    /// Wakes fall on the wall-clock grid of whole ticks, the same for every simulated feed: 10,000 symbols'
    /// feeds wake the market thread 1,000 / `tick_ms` times a second, not once per trade at scattered
    /// instants (a trade reaches its aggregator at most a tick after it arrived).
    async fn live_trades(&mut self) -> Result<Vec<Trade>, FeedError> {
        let per_ms = self.trades_per_second / 1000.0;
        let gap = Exp::new(per_ms).map_err(|e| FeedError::Ended(format!("bad trade rate: {e}")))?;
        let next = match self.next_arrival {
            Some(next) => next,
            None => self.clock + gap.sample(&mut self.rng),
        };
        let tick_ms = self.tick.as_millis() as f64;
        let started = crate::model::wall_ms();
        let planned = planned_wake(started, next, tick_ms);
        // From `started`, not from the moment the sleep begins: never less than a tick, and aimed at the grid.
        tokio::time::sleep(Duration::from_secs_f64((planned - started) / 1e3)).await;
        let now = now_ms();
        let mut next = Some(next);
        // Woken much later than planned (a suspended machine): do not replay the gap.
        if now as f64 - planned > 10.0 * tick_ms {
            self.clock = self.clock.max(now as f64 - 10.0 * tick_ms);
            next = next.filter(|n| *n >= self.clock);
        }
        let mut trades = Vec::new();
        loop {
            let next = next.take().unwrap_or_else(|| self.clock + gap.sample(&mut self.rng));
            if next > now as f64 {
                self.next_arrival = Some(next);
                break;
            }
            let dt = (next - self.clock) / 1000.0;
            self.clock = next;
            let price = self.step(dt);
            let qty = self.qty(price);
            let side = if self.rng.random::<bool>() { Side::Buy } else { Side::Sell };
            trades.push(Trade {
                symbol: self.symbol.clone(),
                price,
                qty,
                side,
                exchange_ts: next as i64,
                received_ts: now,
                id: self.next_id,
            });
            self.next_id += 1;
        }
        Ok(trades)
    }
}

/// The longest a simulated feed sleeps without a trade to emit.
const QUIET_WAKE_MS: f64 = 1_000.0;

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
        let a =
            SimulatedConnector::new("BTCUSDT".into(), &settings()).backfill(now, &all, &Held::nothing()).await.unwrap();
        let b =
            SimulatedConnector::new("BTCUSDT".into(), &settings()).backfill(now, &all, &Held::nothing()).await.unwrap();
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
        assert_eq!(
            h1.iter().rev().map(|b| b.closed).take(2).collect::<Vec<_>>(),
            [false, true],
            "only the current hour is forming"
        );
        assert_eq!(m1.last().map(|b| b.closed), Some(false), "the current minute is still forming");
        let s1 = &by_iv[&Interval::S1];
        assert_eq!(s1.len(), 3_600 + 12, "one hour and 12 seconds of seconds, all closed");
    }

    #[actix_rt::test]
    async fn a_resumed_backfill_continues_stored_history_without_regenerating_it() {
        let all = Interval::ALL.to_vec();
        let t0 = 1_704_067_200_000 + 25 * 60_000 + 12_345;
        let first =
            SimulatedConnector::new("BTCUSDT".into(), &settings()).backfill(t0, &all, &Held::nothing()).await.unwrap();
        // The store holds the first run's closed bars (forming bars never reach it).
        let stored: BTreeMap<Interval, Vec<Bar>> =
            first.iter().map(|(iv, bars)| (*iv, bars.iter().filter(|b| b.closed).cloned().collect())).collect();
        let t1 = t0 + 37 * 60_000 + 4_321;
        let mut second = SimulatedConnector::new("BTCUSDT".into(), &SimulatedSettings { seed: 7, ..settings() });
        let resumed: BTreeMap<Interval, Vec<Bar>> =
            second.backfill(t1, &all, &Held::from_window(stored.clone())).await.unwrap().into_iter().collect();
        for (iv, bars) in &resumed {
            let last = stored[iv].last().unwrap();
            assert_eq!(
                bars.first().map(|b| b.open_time),
                Some(last.close_time()),
                "{iv}: starts right after the stored bars"
            );
            assert!(bars.windows(2).all(|w| w[1].open_time == w[0].close_time()), "{iv}: no gaps");
            assert!(bars.iter().all(Bar::is_consistent), "{iv}");
            assert!(bars.last().unwrap().open_time <= t1);
        }
        assert_eq!(
            resumed[&Interval::S1].first().unwrap().open,
            stored[&Interval::S1].last().unwrap().close,
            "prices continue from the stored close"
        );
        // A coarse bucket in progress at the restart (00:00-01:00, stopped at 00:25) holds its stored part
        // and its new part: it equals the stored and resumed finer bars resampled.
        let series = |iv: Interval| -> Vec<Bar> { stored[&iv].iter().chain(&resumed[&iv]).cloned().collect() };
        for (finer, coarse) in [
            (Interval::M1, Interval::M15),
            (Interval::M1, Interval::H1),
            (Interval::M1, Interval::D1),
            (Interval::S1, Interval::S30),
        ] {
            let expected = resample(&series(finer), coarse);
            for b in &resumed[&coarse] {
                let e = expected.iter().find(|e| e.open_time == b.open_time).unwrap();
                assert_eq!(
                    (b.open, b.high, b.low, b.close, b.trades, b.closed),
                    (e.open, e.high, e.low, e.close, e.trades, e.closed),
                    "{coarse} at {}",
                    b.open_time
                );
                assert!((b.volume - e.volume).abs() <= 1e-9 * e.volume.max(1.0));
            }
        }
        let hour = resumed[&Interval::H1].first().unwrap();
        let stored_minutes: u64 = stored[&Interval::M1]
            .iter()
            .filter(|m| Interval::H1.align(m.open_time) == hour.open_time)
            .map(|m| m.trades)
            .sum();
        assert!(stored_minutes > 0 && hour.trades > stored_minutes, "the boundary hour holds stored and new trades");
    }

    #[actix_rt::test]
    async fn a_quiet_feed_wakes_for_its_trades_not_every_tick() {
        let mut s = SimulatedConnector::new(
            "ETHUSDT".into(),
            &SimulatedSettings { trades_per_second: 4.0, tick_ms: 20, ..settings() },
        );
        s.connect().await.unwrap();
        let mut all = Vec::new();
        for _ in 0..8 {
            let asked = std::time::Instant::now();
            let trades = s.next_trades().await.unwrap();
            // Timers never fire early: these are lower bounds, whatever the machine's speed.
            assert!(asked.elapsed() >= Duration::from_millis(20), "at most a batch a tick");
            if trades.is_empty() {
                assert!(asked.elapsed() >= Duration::from_secs(1), "woken with nothing to send before a second");
            }
            all.extend(trades);
        }
        assert!(all.len() >= 4, "{} trades", all.len());
        assert!(all.windows(2).all(|w| w[0].exchange_ts <= w[1].exchange_ts && w[0].id < w[1].id));
        assert!(all.iter().all(|t| t.validate().is_ok() && t.exchange_ts <= t.received_ts));
        // That the wakes are on the grid is `planned_wake`'s test: a wake here may come late on a busy
        // machine and then also send what arrived after its grid instant (a full run saw a trade of
        // ...820.x sent at ...821 by the wake planned for ...820).
    }

    /// Wakes on the tick grid, at least a tick after asking, after the next trade's arrival (by a whole
    /// ms), and at most a quiet wake (plus the grid's rounding) after asking.
    #[test]
    fn a_wake_is_planned_on_the_grid_after_the_next_arrival() {
        let tick = 20.0;
        for (started, next) in
            [(1_000.0, 1_000.5), (1_000.0, 1_019.2), (1_003.0, 1_040.0), (1_019.9, 1_020.0), (1_000.0, 9_000.0)]
        {
            let planned = planned_wake(started, next, tick);
            assert_eq!(planned % tick, 0.0, "on the grid: {started} {next} -> {planned}");
            assert!(planned >= started + tick, "a tick at least: {started} {next} -> {planned}");
            assert!(
                planned >= (next.ceil() + 1.0).min(started + QUIET_WAKE_MS),
                "after the arrival: {started} {next} -> {planned}"
            );
            assert!(
                planned <= started + QUIET_WAKE_MS + tick,
                "a quiet feed still wakes: {started} {next} -> {planned}"
            );
        }
    }

    #[actix_rt::test]
    async fn live_trades_are_ordered_and_valid() {
        let mut s = SimulatedConnector::new(
            "ETHUSDT".into(),
            &SimulatedSettings { trades_per_second: 2_000.0, tick_ms: 20, ..settings() },
        );
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
