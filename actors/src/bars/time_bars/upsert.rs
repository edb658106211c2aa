//! Bars made elsewhere, put in place: a script's market-data rows, another node's updates (replicas), a
//! rebuild from an exchange's klines after an outage. The trade path never comes through here.

use super::{beyond_hot, push_history, BarUpdate, Slot, TimeBars, UpdateKind};
use crate::model::{Bar, Calendar, TradeSpan};

/// Why [`TimeBars::upsert`] refused a bar.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpsertError {
    #[error("bar of {got} sent to the {expected} aggregator")]
    WrongSymbol { expected: String, got: String },
    #[error("interval {0} is not built by this aggregator")]
    UnknownInterval(String),
    #[error("inconsistent bar: needs low <= open, close <= high, volume >= 0, finite values and an open time aligned to the interval")]
    Inconsistent,
}

/// What [`TimeBars::upsert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// A new bar (published as closed, or as the forming bar).
    Inserted,
    /// Replaced a different bar (a closed one is published as a correction).
    Replaced,
    /// The same bar was already there; nothing published (replays are harmless).
    Unchanged,
}

impl TimeBars {
    /// Puts `bar` in place of the bar with the same interval and open time, or in order among the others.
    ///
    /// - An unclosed bar at or after the forming bar's bucket becomes the forming bar (a later bucket first
    ///   closes the forming one). Published as a partial by [`TimeBars::take_partials`].
    /// - A closed bar of the forming bucket closes it: `Closed` is pushed to `out` and the next bucket starts
    ///   flat, exactly as when a bucket ends on time, so replicas publish what their source published.
    /// - A closed bar of an earlier bucket replaces the one in history (`Correction`) or is inserted
    ///   (`Closed`; also when it is older than the in-memory window, so persistence still gets it).
    /// - An unclosed bar of an earlier bucket is taken as closed: its bucket is over.
    pub fn upsert(&mut self, mut bar: Bar, out: &mut Vec<BarUpdate>) -> Result<Upserted, UpsertError> {
        if bar.symbol != self.symbol {
            return Err(UpsertError::WrongSymbol { expected: self.symbol.to_string(), got: bar.symbol.to_string() });
        }
        if !bar.is_consistent() {
            return Err(UpsertError::Inconsistent);
        }
        let cap = self.history_cap;
        let Some(slot) = self.slots.iter_mut().find(|s| s.interval == bar.interval) else {
            return Err(UpsertError::UnknownInterval(bar.interval.to_string()));
        };
        let forming_open = slot.current.as_ref().map(|c| c.open_time);
        if forming_open.is_some_and(|open| bar.open_time < open) || (forming_open.is_none() && bar.closed) {
            bar.closed = true;
            self.deep_write |= beyond_hot(&slot.history, bar.open_time, self.hot);
            let done = upsert_closed(slot, bar.clone(), cap, out);
            if done != Upserted::Unchanged {
                self.note_price(&bar);
            }
            return Ok(done);
        }
        // At or after the forming bucket.
        if forming_open.is_some_and(|open| bar.open_time > open) {
            close_forming(slot, cap, out);
        }
        let same = slot.current.as_ref().is_some_and(|c| *c == bar);
        if bar.closed {
            slot.current = Some(bar.clone());
            close_forming(slot, cap, out);
            // The next bucket starts flat but is not published: a source publishes its own next bar, and a
            // replica must not add a partial its source never sent.
            let next_open = self.calendar.next_bucket(bar.interval, bar.open_time);
            let next = Bar::flat(bar.symbol.clone(), bar.interval, next_open, bar.close);
            start_forming(slot, &self.calendar, next);
            slot.dirty = false;
        } else {
            // Published even when unchanged: a replica repeats every partial its source sent.
            start_forming(slot, &self.calendar, bar.clone());
        }
        self.note_price(&bar);
        Ok(match forming_open {
            _ if same => Upserted::Unchanged,
            Some(open) if open == bar.open_time => Upserted::Replaced,
            _ => Upserted::Inserted,
        })
    }

    /// The last price follows the newest bar with trades.
    fn note_price(&mut self, bar: &Bar) {
        if !bar.is_flat() && self.last_trade_ts.is_none_or(|t| t <= bar.open_time) {
            self.last_price = Some(bar.close);
            self.last_trade_ts = Some(bar.open_time);
        }
    }
}

/// Makes `bar` the forming bar. Its trade times are unknown: a later trade moves only its close.
fn start_forming(slot: &mut Slot, calendar: &Calendar, bar: Bar) {
    slot.current_end = calendar.bucket_end(bar.interval, bar.open_time);
    slot.current_span = TradeSpan { first: i64::MIN, last: bar.open_time };
    slot.current = Some(bar);
    slot.dirty = true;
}

/// Closes the forming bar as it stands (publishing `Closed`) and leaves the slot without one.
fn close_forming(slot: &mut Slot, cap: usize, out: &mut Vec<BarUpdate>) {
    if let Some(mut cur) = slot.current.take() {
        cur.closed = true;
        slot.dirty = false;
        out.push(BarUpdate { kind: UpdateKind::Closed, bar: cur.clone() });
        push_history(&mut slot.history, cur, cap);
    }
}

fn upsert_closed(slot: &mut Slot, bar: Bar, cap: usize, out: &mut Vec<BarUpdate>) -> Upserted {
    // Its trade times are not known any more: a late trade must not move its open or close.
    slot.recent_spans.retain(|(open, _)| *open != bar.open_time);
    match slot.history.binary_search_by_key(&bar.open_time, |b| b.open_time) {
        Ok(i) if slot.history[i] == bar => Upserted::Unchanged,
        Ok(i) => {
            slot.history[i] = bar.clone();
            out.push(BarUpdate { kind: UpdateKind::Correction, bar });
            Upserted::Replaced
        }
        Err(i) => {
            // Older than a full window: not kept in memory, but still published for persistence.
            if !(i == 0 && slot.history.len() >= cap) {
                slot.history.insert(i, bar.clone());
                if slot.history.len() > cap {
                    slot.history.pop_front();
                }
            }
            out.push(BarUpdate { kind: UpdateKind::Closed, bar });
            Upserted::Inserted
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bars, trade, MIN};
    use super::*;
    use crate::model::Interval;

    #[test]
    fn replica_republishes_what_its_source_published() {
        // The source: trades, then time passes.
        let mut source = bars(&[Interval::M1, Interval::M5]);
        let mut published = Vec::new();
        source.apply(&trade(10 * MIN + 5, 100.0, 1.0), &mut published);
        source.take_partials(&mut published);
        source.apply(&trade(11 * MIN + 1, 101.0, 2.0), &mut published);
        source.take_partials(&mut published);
        source.advance_to(14 * MIN, &mut published);
        source.take_partials(&mut published);

        // The replica applies every published bar in order and publishes the same sequence.
        let mut replica = bars(&[Interval::M1, Interval::M5]);
        let mut republished = Vec::new();
        for u in &published {
            replica.upsert(u.bar.clone(), &mut republished).unwrap();
            replica.take_partials(&mut republished);
        }
        assert_eq!(republished, published);
        for iv in [Interval::M1, Interval::M5] {
            assert_eq!(replica.bars(iv, None, None, 100), source.bars(iv, None, None, 100), "{iv}");
        }
        assert_eq!(replica.last_trade().map(|t| t.0), Some(101.0));
    }

    #[test]
    fn closed_bars_replace_insert_or_are_ignored_when_equal() {
        let mut tb = bars(&[Interval::M1]);
        let mut out = Vec::new();
        tb.apply(&trade(10 * MIN + 5, 100.0, 1.0), &mut out);
        tb.advance_to(13 * MIN + 1, &mut out);
        out.clear();

        let mut fixed = tb.bars(Interval::M1, Some(11 * MIN), Some(12 * MIN), 1).remove(0);
        fixed.high = 105.0;
        assert_eq!(tb.upsert(fixed.clone(), &mut out), Ok(Upserted::Replaced));
        assert_eq!(tb.upsert(fixed.clone(), &mut out), Ok(Upserted::Unchanged));
        let mut older = Bar::from_trade("BTCUSDT".into(), Interval::M1, 5 * MIN, 90.0, 1.0);
        older.closed = false; // a past bucket is over, whatever the sender says
        assert_eq!(tb.upsert(older.clone(), &mut out), Ok(Upserted::Inserted));

        let kinds: Vec<_> = out.iter().map(|u| (u.kind, u.bar.open_time)).collect();
        assert_eq!(kinds, vec![(UpdateKind::Correction, 11 * MIN), (UpdateKind::Closed, 5 * MIN)]);
        let times: Vec<_> = tb.bars(Interval::M1, None, None, 100).iter().map(|b| (b.open_time, b.closed)).collect();
        assert_eq!(
            times,
            vec![(5 * MIN, true), (10 * MIN, true), (11 * MIN, true), (12 * MIN, true), (13 * MIN, false)]
        );
        assert_eq!(tb.bars(Interval::M1, Some(11 * MIN), Some(12 * MIN), 1)[0].high, 105.0);
    }

    #[test]
    fn a_late_trade_after_an_upsert_keeps_the_upserted_open_and_close() {
        let mut tb = bars(&[Interval::M1]);
        let mut out = Vec::new();
        tb.apply(&trade(10 * MIN + 5, 100.0, 1.0), &mut out);
        tb.advance_to(11 * MIN + 1, &mut out);
        let mut fixed = tb.bars(Interval::M1, Some(10 * MIN), Some(11 * MIN), 1).remove(0);
        (fixed.open, fixed.close, fixed.high, fixed.low) = (99.0, 101.0, 101.0, 99.0);
        tb.upsert(fixed, &mut out).unwrap();
        tb.apply(&trade(10 * MIN + 59_000, 100.5, 1.0), &mut out);
        let bar = tb.bars(Interval::M1, Some(10 * MIN), Some(11 * MIN), 1).remove(0);
        assert_eq!((bar.open, bar.close, bar.trades), (99.0, 101.0, 2));
    }

    #[test]
    fn refuses_bars_it_cannot_hold() {
        let mut tb = bars(&[Interval::M1]);
        let mut out = Vec::new();
        let mut bad = Bar::from_trade("BTCUSDT".into(), Interval::M1, MIN, 100.0, 1.0);
        bad.low = 101.0;
        assert_eq!(tb.upsert(bad, &mut out), Err(UpsertError::Inconsistent));
        let other = Bar::from_trade("ETHUSDT".into(), Interval::M1, MIN, 100.0, 1.0);
        assert!(matches!(tb.upsert(other, &mut out), Err(UpsertError::WrongSymbol { .. })));
        let hour = Bar::from_trade("BTCUSDT".into(), Interval::H1, 0, 100.0, 1.0);
        assert!(matches!(tb.upsert(hour, &mut out), Err(UpsertError::UnknownInterval(_))));
        assert!(out.is_empty() && tb.bars(Interval::M1, None, None, 10).is_empty());
    }
}
