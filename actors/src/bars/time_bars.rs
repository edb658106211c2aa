//! Time bars for every configured interval of one symbol.
//!
//! A bar closes when the clock (the later of the wall clock and the newest trade) passes its end, even
//! without trades: the next bucket starts as a flat bar at the last close. A trade that belongs to a bar
//! already closed is still accepted for `grace_ms` after that bar's end and re-emits it as a correction;
//! later than that it is dropped and counted.
//!
//! Lateness is decided once per trade against the *finest* interval, so a trade is either in every
//! interval's bars or in none: this is what keeps coarse bars equal to resampled fine bars.

use std::collections::VecDeque;

use serde::Serialize;

use crate::model::{Bar, Calendar, Interval, Symbol, Trade, TradeSpan};

/// What happened to a bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateKind {
    /// The forming bar changed.
    Partial,
    /// The bar's bucket ended; this is its final state unless corrected.
    Closed,
    /// A late trade revised a bar that had already closed.
    Correction,
}

/// A bar and what happened to it.
#[derive(Debug, Clone, PartialEq)]
pub struct BarUpdate {
    pub kind: UpdateKind,
    pub bar: Bar,
}

/// What [`TimeBars::apply`] did with a trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Folded into the forming bars.
    Live,
    /// Folded in, and at least one closed bar was corrected.
    Corrected,
    /// Older than the grace window allows; not folded anywhere.
    TooLate,
}

struct Slot {
    interval: Interval,
    /// The forming bar; `None` only before the first trade or seed.
    current: Option<Bar>,
    /// Cached `current.close_time()`, so the hot path needs no division.
    current_end: i64,
    current_span: TradeSpan,
    /// Trade spans of the newest closed bars: the only ones a late trade can still reach.
    recent_spans: VecDeque<(i64, TradeSpan)>,
    /// Closed bars, oldest first, at most `history_cap`.
    history: VecDeque<Bar>,
    /// The forming bar changed since the last [`TimeBars::take_partials`].
    dirty: bool,
}

/// The bars of one symbol for a fixed set of intervals.
pub struct TimeBars {
    symbol: Symbol,
    slots: Vec<Slot>,
    grace_ms: i64,
    history_cap: usize,
    /// Closed bars kept per interval once the store has the older ones (see [`TimeBars::release`]).
    hot: usize,
    /// A closed bar older than the newest `hot` was revised since the last [`TimeBars::take_deep_write`].
    deep_write: bool,
    /// The latest time seen: wall clock or trade time, whichever is later.
    clock: i64,
    last_price: Option<f64>,
    last_trade_ts: Option<i64>,
    /// Where buckets start and which hours have none (see [`Calendar`]).
    calendar: Calendar,
}

impl TimeBars {
    /// `intervals` need not be sorted; duplicates are ignored.
    pub fn new(symbol: Symbol, intervals: &[Interval], grace_ms: i64, history_cap: usize) -> TimeBars {
        let mut ivs: Vec<Interval> = intervals.to_vec();
        ivs.sort();
        ivs.dedup();
        let slots = ivs
            .into_iter()
            .map(|interval| Slot {
                interval,
                current: None,
                current_end: i64::MIN,
                current_span: TradeSpan::EMPTY,
                recent_spans: VecDeque::new(),
                history: VecDeque::new(),
                dirty: false,
            })
            .collect();
        TimeBars {
            symbol,
            slots,
            grace_ms,
            history_cap: history_cap.max(1),
            hot: usize::MAX,
            deep_write: false,
            clock: i64::MIN,
            last_price: None,
            last_trade_ts: None,
            calendar: Calendar::Continuous,
        }
    }

    /// Lays the buckets out on an exchange's sessions instead of the UTC epoch.
    pub fn with_calendar(mut self, calendar: Calendar) -> TimeBars {
        self.calendar = calendar;
        self
    }

    /// Lets [`TimeBars::release`] shrink each interval's window to its newest `hot` closed bars.
    pub fn with_hot(mut self, hot: usize) -> TimeBars {
        self.hot = hot.max(1);
        self
    }

    /// Per interval, the open time of the newest closed bar beyond the hot window (`None`: nothing beyond
    /// it). Taken once every bar held is handed to persistence; given to [`TimeBars::release`] once the
    /// store has all of them.
    pub fn release_marks(&self) -> Vec<Option<i64>> {
        self.slots.iter().map(|s| s.history.len().checked_sub(self.hot + 1).map(|i| s.history[i].open_time)).collect()
    }

    /// Drops the closed bars up to `marks` (from [`TimeBars::release_marks`]), keeping at least the newest
    /// `hot` of each interval, and gives back the memory they took. The caller knows the store has them and
    /// that none was revised since the marks were taken ([`TimeBars::take_deep_write`]). Returns the bytes
    /// given back to the allocator.
    pub fn release(&mut self, marks: &[Option<i64>]) -> usize {
        let hot = self.hot;
        let mut freed = 0;
        for (slot, mark) in self.slots.iter_mut().zip(marks) {
            let Some(mark) = *mark else { continue };
            while slot.history.len() > hot && slot.history.front().is_some_and(|b| b.open_time <= mark) {
                slot.history.pop_front();
            }
            // A backfill grew the window to thousands of bars: give the space back, but leave room for the
            // bars that close until the next release, so that steady state does not reallocate.
            let (len, capacity) = (slot.history.len(), slot.history.capacity());
            if capacity > len + 64 {
                slot.history.shrink_to(len + 16);
                freed += (capacity - slot.history.capacity()) * std::mem::size_of::<Bar>();
            }
        }
        freed
    }

    /// Whether a closed bar beyond the hot window was revised (a late trade, an upsert) or bars were seeded
    /// since the last call: marks taken before then must not be released.
    pub fn take_deep_write(&mut self) -> bool {
        std::mem::take(&mut self.deep_write)
    }

    /// Closed bars held in memory, all intervals.
    pub fn closed_in_memory(&self) -> usize {
        self.slots.iter().map(|s| s.history.len()).sum()
    }

    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    pub fn symbol(&self) -> &Symbol {
        &self.symbol
    }

    pub fn intervals(&self) -> impl Iterator<Item = Interval> + '_ {
        self.slots.iter().map(|s| s.interval)
    }

    /// Last traded price and its time.
    pub fn last_trade(&self) -> Option<(f64, i64)> {
        self.last_price.zip(self.last_trade_ts)
    }

    /// Loads history (for example a backfill): closed bars go to history, a trailing unclosed bar becomes
    /// the forming bar. Bars must be ascending and of an interval this symbol builds.
    pub fn seed(&mut self, interval: Interval, bars: Vec<Bar>) {
        self.deep_write = true;
        let Some(slot) = self.slots.iter_mut().find(|s| s.interval == interval) else { return };
        for mut bar in bars {
            if let Some(last) = slot.history.back() {
                if bar.open_time <= last.open_time {
                    continue;
                }
            }
            if bar.closed {
                slot.history.push_back(bar);
            } else {
                bar.closed = false;
                slot.current_end = self.calendar.bucket_end(interval, bar.open_time);
                // Seeded bars have no trade times: keep their open, let any newer trade set the close.
                slot.current_span = TradeSpan { first: i64::MIN, last: bar.open_time };
                slot.current = Some(bar);
                slot.dirty = true;
            }
        }
        while slot.history.len() > self.history_cap {
            slot.history.pop_front();
        }
        // History that ends with a closed bar: the next bucket is forming (flat until a trade comes), so
        // that `advance_to` closes every bucket from here to now and the hand-over leaves no hole.
        if slot.current.as_ref().is_none_or(|c| slot.history.back().is_some_and(|h| h.open_time >= c.open_time)) {
            if let Some(last) = slot.history.back() {
                let next_open = self.calendar.next_bucket(interval, last.open_time);
                let next = Bar::flat(last.symbol.clone(), interval, next_open, last.close);
                slot.current_end = self.calendar.bucket_end(interval, next_open);
                slot.current_span = TradeSpan::EMPTY;
                slot.current = Some(next);
                slot.dirty = true;
            }
        }
        let newest = slot.current.as_ref().filter(|c| !c.is_flat()).or(slot.history.back());
        if let Some(bar) = newest {
            if self.last_trade_ts.is_none_or(|t| t < bar.open_time) {
                self.last_price = Some(bar.close);
                self.last_trade_ts = Some(bar.open_time);
            }
        }
    }

    /// Whether folding `trade` keeps the volume of every bar it reaches finite. Each quantity is finite,
    /// but their sum need not be (two trades of 1e308): a bar of volume `inf` can be neither published as
    /// JSON nor stored, so such a trade is refused before it touches any bar. The bar a trade reaches in a
    /// slot is the forming one, or for a late trade the closed one of its bucket.
    pub fn volume_fits(&self, trade: &Trade) -> bool {
        let ts = trade.exchange_ts;
        self.slots.iter().all(|slot| {
            let volume = match slot.current.as_ref() {
                Some(cur) if ts >= cur.open_time && ts < slot.current_end => cur.volume,
                Some(cur) if ts < cur.open_time => {
                    let open_time = self.calendar.align(slot.interval, ts);
                    slot.history
                        .binary_search_by_key(&open_time, |b| b.open_time)
                        .map_or(0.0, |i| slot.history[i].volume)
                }
                _ => 0.0,
            };
            (volume + trade.qty).is_finite()
        })
    }

    /// Folds one trade (already validated) into every interval. Closed and corrected bars are pushed to
    /// `out` in time order; forming bars are only marked dirty (see [`TimeBars::take_partials`]).
    pub fn apply(&mut self, trade: &Trade, out: &mut Vec<BarUpdate>) -> Applied {
        let ts = trade.exchange_ts;
        if let Some(finest) = self.slots.first() {
            let end = self.calendar.bucket_end(finest.interval, self.calendar.align(finest.interval, ts));
            if self.clock > end + self.grace_ms {
                return Applied::TooLate;
            }
        }
        self.advance_to(ts, out);
        let mut corrected = false;
        let hot = self.hot;
        for slot in &mut self.slots {
            match slot.current.as_mut() {
                Some(cur) if ts >= cur.open_time && ts < slot.current_end => {
                    cur.apply_trade_at(&mut slot.current_span, ts, trade.price, trade.qty);
                    slot.dirty = true;
                }
                Some(cur) if ts < cur.open_time => {
                    self.deep_write |= beyond_hot(&slot.history, self.calendar.align(slot.interval, ts), hot);
                    corrected |= correct(slot, &self.calendar, ts, trade, out);
                }
                _ => {
                    // First trade of this slot (advance_to already rolled any existing bar forward).
                    let mut bar = Bar::from_trade(self.symbol.clone(), slot.interval, ts, trade.price, trade.qty);
                    bar.open_time = self.calendar.align(slot.interval, ts);
                    slot.current_span = TradeSpan { first: ts, last: ts };
                    slot.current_end = self.calendar.bucket_end(slot.interval, bar.open_time);
                    slot.current = Some(bar);
                    slot.dirty = true;
                }
            }
        }
        if self.last_trade_ts.is_none_or(|t| ts >= t) {
            self.last_price = Some(trade.price);
            self.last_trade_ts = Some(ts);
        }
        if corrected {
            Applied::Corrected
        } else {
            Applied::Live
        }
    }

    /// Moves the clock to `now`, closing every bar whose bucket has ended (with flat bars for buckets
    /// without trades, at most `history_cap` of them per interval).
    pub fn advance_to(&mut self, now: i64, out: &mut Vec<BarUpdate>) {
        if now <= self.clock {
            return;
        }
        self.clock = now;
        let cap = self.history_cap;
        let calendar = &self.calendar;
        for slot in &mut self.slots {
            if slot.current_end > now {
                continue;
            }
            let Some(mut cur) = slot.current.take() else { continue };
            let last_close = cur.close;
            let newest_open = calendar.align(slot.interval, now);
            // Buckets between the closing bar and `now` that no trade reached become flat bars.
            let gap_buckets = bucket_count(slot.interval, cur.open_time, newest_open);
            let skip_to = if gap_buckets > cap as i64 + 1 {
                Some(newest_open - cap as i64 * slot.interval.millis())
            } else {
                None
            };
            loop {
                cur.closed = true;
                slot.dirty = false;
                out.push(BarUpdate { kind: UpdateKind::Closed, bar: cur.clone() });
                slot.recent_spans.push_back((cur.open_time, slot.current_span));
                if slot.recent_spans.len() > RECENT_SPANS {
                    slot.recent_spans.pop_front();
                }
                slot.current_span = TradeSpan::EMPTY;
                push_history(&mut slot.history, cur.clone(), cap);
                let mut next_open = calendar.next_bucket(slot.interval, cur.open_time);
                if let Some(skip) = skip_to.filter(|skip| *skip > next_open) {
                    next_open = calendar.align(slot.interval, skip);
                }
                cur = Bar::flat(cur.symbol.clone(), slot.interval, next_open, last_close);
                if calendar.bucket_end(slot.interval, next_open) > now {
                    break;
                }
            }
            slot.current_end = calendar.bucket_end(slot.interval, cur.open_time);
            slot.current = Some(cur);
            slot.dirty = true;
        }
    }

    /// The earliest time (ms) at which [`TimeBars::advance_to`] has something to do: a forming bar's bucket
    /// ends, or on a session calendar the forming bar of the next session opens (it is not sent before). `None`
    /// before the first trade or seed: nothing forms, nothing can close.
    pub fn next_due(&self) -> Option<i64> {
        let continuous = self.calendar.is_continuous();
        self.slots
            .iter()
            .filter_map(|slot| {
                let cur = slot.current.as_ref()?;
                let shows = slot.dirty && !continuous && cur.open_time > self.clock;
                Some(if shows { cur.open_time.min(slot.current_end) } else { slot.current_end })
            })
            .min()
    }

    /// Whether some interval holds more closed bars than its hot window: [`TimeBars::release_marks`] has
    /// something to mark.
    pub fn beyond_hot_window(&self) -> bool {
        self.slots.iter().any(|s| s.history.len() > self.hot)
    }

    /// Pushes each forming bar that changed since the last call, as a partial update.
    pub fn take_partials(&mut self, out: &mut Vec<BarUpdate>) {
        let (calendar, clock) = (&self.calendar, self.clock);
        for slot in &mut self.slots {
            // After a session's close the forming bar is the next session's first: it is not shown
            // (nor sent) before that session opens.
            if slot.dirty && slot.current.as_ref().is_none_or(|b| calendar.is_continuous() || b.open_time <= clock) {
                slot.dirty = false;
                if let Some(bar) = &slot.current {
                    out.push(BarUpdate { kind: UpdateKind::Partial, bar: bar.clone() });
                }
            }
        }
    }

    /// The forming bar of `interval`.
    pub fn current(&self, interval: Interval) -> Option<&Bar> {
        self.slot(interval).and_then(|s| s.current.as_ref()).filter(|b| self.is_due(b))
    }

    /// Up to `limit` bars with `start <= open_time < end`, ascending, the newest ones when more match.
    /// The forming bar is included when it falls in the range.
    pub fn bars(&self, interval: Interval, start: Option<i64>, end: Option<i64>, limit: usize) -> Vec<Bar> {
        let Some(slot) = self.slot(interval) else { return Vec::new() };
        let start = start.unwrap_or(i64::MIN);
        let end = end.unwrap_or(i64::MAX);
        let in_range = |b: &&Bar| b.open_time >= start && b.open_time < end && self.is_due(b);
        let mut newest_first: Vec<Bar> =
            slot.current.iter().chain(slot.history.iter().rev()).filter(in_range).take(limit).cloned().collect();
        newest_first.reverse();
        newest_first
    }

    /// Open time of the oldest bar held in memory for `interval`.
    pub fn oldest(&self, interval: Interval) -> Option<i64> {
        let slot = self.slot(interval)?;
        slot.history.front().or(slot.current.as_ref()).map(|b| b.open_time)
    }

    /// Whether a bar's bucket has begun: on a session calendar the bar forming after the close is the next
    /// session's, in the future until it opens.
    fn is_due(&self, bar: &Bar) -> bool {
        self.calendar.is_continuous() || bar.open_time <= self.clock
    }

    fn slot(&self, interval: Interval) -> Option<&Slot> {
        self.slots.iter().find(|s| s.interval == interval)
    }
}

/// How many closed bars per interval remember their trade span: enough for a grace window of several
/// bars of the finest interval; a correction of an older bar keeps its open and close.
const RECENT_SPANS: usize = 8;

/// Number of buckets from `from` (inclusive) to `to` (exclusive).
fn bucket_count(interval: Interval, from: i64, to: i64) -> i64 {
    (to - from).max(0) / interval.millis()
}

/// Whether the closed bar of `open_time` (or its place) lies beyond the newest `hot` of `history`.
fn beyond_hot(history: &VecDeque<Bar>, open_time: i64, hot: usize) -> bool {
    history.len() - history.partition_point(|b| b.open_time < open_time) > hot
}

fn push_history(history: &mut VecDeque<Bar>, bar: Bar, cap: usize) {
    history.push_back(bar);
    if history.len() > cap {
        history.pop_front();
    }
}

/// Folds a late trade into the closed bar of its bucket; returns whether a bar was corrected.
fn correct(slot: &mut Slot, calendar: &Calendar, ts: i64, trade: &Trade, out: &mut Vec<BarUpdate>) -> bool {
    let open_time = calendar.align(slot.interval, ts);
    let i = match slot.history.binary_search_by_key(&open_time, |b| b.open_time) {
        Ok(i) => i,
        Err(i) => {
            // Only before this interval's first bar is a bucket missing (later gaps hold flat bars):
            // the trade opens that bucket's bar, already closed.
            let mut bar = Bar::flat(trade.symbol.clone(), slot.interval, open_time, trade.price);
            bar.closed = true;
            slot.history.insert(i, bar);
            // Its trades are all known from here on: later late trades must move its open and close as
            // they would in a bar built live (without a span they could not, and it would disagree with
            // the finer bars it is made of).
            slot.recent_spans.push_back((open_time, TradeSpan::EMPTY));
            if slot.recent_spans.len() > RECENT_SPANS {
                slot.recent_spans.pop_front();
            }
            i
        }
    };
    let bar = &mut slot.history[i];
    let mut unknown = TradeSpan::UNKNOWN;
    let span = match slot.recent_spans.iter_mut().find(|(open, _)| *open == open_time) {
        Some((_, span)) => span,
        None => &mut unknown,
    };
    bar.apply_trade_at(span, ts, trade.price, trade.qty);
    let corrected_close = bar.close;
    // Several late trades of one batch revise the same bar: send its final state once, not once per trade.
    let earlier = out.iter_mut().find(|u| {
        u.kind == UpdateKind::Correction && u.bar.interval == bar.interval && u.bar.open_time == bar.open_time
    });
    match earlier {
        Some(update) => update.bar = bar.clone(),
        None => out.push(BarUpdate { kind: UpdateKind::Correction, bar: bar.clone() }),
    }
    // The forming bar opened at this bar's close: if it is still flat, it carries the corrected close.
    if i + 1 == slot.history.len() {
        if let Some(cur) = slot.current.as_mut().filter(|c| c.is_flat()) {
            *cur = Bar::flat(cur.symbol.clone(), cur.interval, cur.open_time, corrected_close);
            slot.dirty = true;
        }
    }
    true
}

mod upsert;

pub use upsert::{UpsertError, Upserted};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod sessions;
