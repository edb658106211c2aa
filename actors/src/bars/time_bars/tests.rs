use super::*;
use crate::model::{resample, Side};
use proptest::prelude::*;

pub(super) const MIN: i64 = 60_000;

pub(super) fn trade(ts: i64, price: f64, qty: f64) -> Trade {
    Trade { symbol: "BTCUSDT".into(), price, qty, side: Side::Buy, exchange_ts: ts, received_ts: ts, id: 0 }
}

pub(super) fn bars(intervals: &[Interval]) -> TimeBars {
    TimeBars::new("BTCUSDT".into(), intervals, 2_000, 1_000_000)
}

fn closed(out: &[BarUpdate], interval: Interval) -> Vec<Bar> {
    out.iter().filter(|u| u.kind == UpdateKind::Closed && u.bar.interval == interval).map(|u| u.bar.clone()).collect()
}

#[test]
fn bar_closes_on_time_without_trades_and_the_next_is_flat() {
    let mut tb = bars(&[Interval::M1]);
    let mut out = Vec::new();
    tb.apply(&trade(10 * MIN + 5, 100.0, 1.0), &mut out);
    tb.apply(&trade(10 * MIN + 7, 101.0, 2.0), &mut out);
    assert!(out.is_empty());
    tb.advance_to(13 * MIN + 1, &mut out);
    let c = closed(&out, Interval::M1);
    assert_eq!(c.len(), 3, "{c:?}");
    assert_eq!((c[0].open_time, c[0].open, c[0].close, c[0].volume, c[0].trades), (10 * MIN, 100.0, 101.0, 3.0, 2));
    for flat in &c[1..] {
        assert!(flat.is_flat() && flat.closed && flat.close == 101.0);
    }
    let cur = tb.current(Interval::M1).unwrap();
    assert_eq!((cur.open_time, cur.is_flat(), cur.closed), (13 * MIN, true, false));
}

#[test]
fn late_trade_inside_grace_corrects_outside_is_dropped() {
    let mut tb = bars(&[Interval::S1, Interval::M1]);
    let mut out = Vec::new();
    tb.apply(&trade(MIN + 100, 100.0, 1.0), &mut out);
    tb.advance_to(2 * MIN + 500, &mut out); // the 1m bar [1m, 2m) closed 500 ms ago
    out.clear();
    assert_eq!(tb.apply(&trade(2 * MIN - 1, 90.0, 1.0), &mut out), Applied::Corrected);
    let corrections: Vec<_> = out.iter().filter(|u| u.kind == UpdateKind::Correction).collect();
    assert_eq!(corrections.len(), 2, "both the 1s and the 1m bar are revised: {out:?}");
    let m1 = &corrections.iter().find(|u| u.bar.interval == Interval::M1).unwrap().bar;
    assert_eq!((m1.low, m1.close, m1.trades, m1.closed), (90.0, 90.0, 2, true));
    assert_eq!(tb.bars(Interval::M1, Some(MIN), Some(2 * MIN), 10)[0], *m1);

    // Two more late trades in one batch: each bar's correction is queued once, with its final state.
    out.clear();
    tb.apply(&trade(2 * MIN - 2, 95.0, 1.0), &mut out);
    tb.apply(&trade(2 * MIN - 1, 85.0, 2.0), &mut out);
    let m1: Vec<_> =
        out.iter().filter(|u| u.kind == UpdateKind::Correction && u.bar.interval == Interval::M1).collect();
    assert_eq!(m1.len(), 1, "one correction per bar per batch: {out:?}");
    assert_eq!((m1[0].bar.low, m1[0].bar.close, m1[0].bar.trades), (85.0, 85.0, 4));

    // 2.5 s after the end of the trade's 1s bucket: outside the 2 s grace.
    tb.advance_to(2 * MIN + 2_500, &mut out);
    out.clear();
    assert_eq!(tb.apply(&trade(2 * MIN - 1, 80.0, 1.0), &mut out), Applied::TooLate);
    assert!(out.is_empty());
    assert_eq!(tb.bars(Interval::M1, Some(MIN), Some(2 * MIN), 10)[0].low, 85.0);
}

#[test]
fn history_is_capped_and_paged_without_gaps_or_repeats() {
    let mut tb = TimeBars::new("X".into(), &[Interval::M1], 0, 100);
    let mut out = Vec::new();
    for m in 0..300 {
        tb.apply(&trade(m * MIN + 1, 10.0 + m as f64, 1.0), &mut out);
    }
    // 299 bars closed, the newest 100 kept, minute 299 still forming.
    assert_eq!(tb.oldest(Interval::M1), Some(199 * MIN));
    let mut seen = Vec::new();
    let mut end = None;
    loop {
        let page = tb.bars(Interval::M1, None, end, 7);
        if page.is_empty() {
            break;
        }
        end = Some(page[0].open_time);
        seen.splice(0..0, page.into_iter().map(|b| b.open_time));
    }
    let expected: Vec<i64> = (199..300).map(|m| m * MIN).collect();
    assert_eq!(seen, expected, "100 closed bars and the forming one, each once");
}

#[test]
fn seed_keeps_closed_bars_and_resumes_the_forming_one() {
    let mut tb = bars(&[Interval::M1]);
    let mk =
        |m: i64, closed: bool| Bar { closed, ..Bar::from_trade("BTCUSDT".into(), Interval::M1, m * MIN, 5.0, 1.0) };
    tb.seed(Interval::M1, vec![mk(1, true), mk(2, true), mk(3, false)]);
    let mut out = Vec::new();
    tb.apply(&trade(3 * MIN + 10, 7.0, 1.0), &mut out);
    let cur = tb.current(Interval::M1).unwrap();
    assert_eq!((cur.open, cur.close, cur.trades), (5.0, 7.0, 2));
    assert_eq!(tb.bars(Interval::M1, None, None, 10).len(), 3);
}

#[test]
fn seeding_only_closed_bars_leaves_no_hole_until_the_first_trade() {
    // A backfill that ended at 10:00:00 handed over at 10:00:03: the three seconds in between must be
    // bars (flat, at the last close), not a hole in the history.
    let mut tb = bars(&[Interval::S1, Interval::M1]);
    let closed =
        |iv: Interval, open: i64| Bar { closed: true, ..Bar::from_trade("BTCUSDT".into(), iv, open, 7.0, 1.0) };
    let t0 = 600 * MIN;
    tb.seed(Interval::S1, (1..=5).map(|i| closed(Interval::S1, t0 - i * 1000)).rev().collect());
    tb.seed(Interval::M1, vec![closed(Interval::M1, t0 - MIN)]);
    let mut out = Vec::new();
    tb.advance_to(t0 + 3_200, &mut out);
    let seconds: Vec<i64> = tb.bars(Interval::S1, None, None, 100).iter().map(|b| b.open_time).collect();
    let expected: Vec<i64> = (-5..=3).map(|i| t0 + i * 1000).collect();
    assert_eq!(seconds, expected, "contiguous 1s bars through the hand-over");
    assert!(tb.bars(Interval::S1, Some(t0), None, 100).iter().all(|b| b.is_flat() && b.close == 7.0));
    assert_eq!(tb.current(Interval::M1).map(|b| b.open_time), Some(t0));
}

#[test]
fn all_intervals_match_resampled_seconds_across_a_week_boundary() {
    // Sunday 2024-01-07 22:00 UTC to Monday 02:00: crosses day and week boundaries.
    let start = 1_704_664_800_000;
    let mut tb = bars(&Interval::ALL);
    let mut out = Vec::new();
    let mut ts = start;
    let mut price: f64 = 100.0;
    let mut step = 0u64;
    while ts < start + 4 * 60 * MIN {
        step += 1;
        price = (price + ((step * 7919 % 13) as f64 - 6.0) * 0.1).max(1.0);
        tb.apply(&trade(ts, price, 0.5 + (step % 5) as f64), &mut out);
        ts += 500 + (step * 104_729 % 9_000) as i64; // irregular gaps, some seconds empty
    }
    let end = Interval::W1.align(ts) + Interval::W1.millis();
    tb.advance_to(end, &mut out);
    let seconds = closed(&out, Interval::S1);
    for iv in Interval::ALL {
        let built: Vec<Bar> = closed(&out, iv);
        let resampled = resample(&seconds, iv);
        assert_eq!(built.len(), resampled.len(), "{iv}");
        for (b, r) in built.iter().zip(&resampled) {
            assert_eq!(
                (b.open_time, b.open, b.high, b.low, b.close, b.trades),
                (r.open_time, r.open, r.high, r.low, r.close, r.trades),
                "{iv}"
            );
            assert!((b.volume - r.volume).abs() <= 1e-9 * b.volume.max(1.0), "{iv}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random trades, mostly in order, some late (inside or outside the grace): every interval's closed bars
    /// keep the OHLCV invariants and equal the 1s bars resampled.
    #[test]
    fn trades_fold_into_consistent_resampleable_bars(steps in prop::collection::vec((0i64..4_000, -3_000i64..0, any::<bool>(), 1f64..1_000.0, 0.001f64..50.0), 1..400)) {
        let intervals = [Interval::S1, Interval::S5, Interval::S15, Interval::S30, Interval::M1, Interval::M3, Interval::M5, Interval::M15];
        let mut tb = bars(&intervals);
        let mut out = Vec::new();
        let mut clock = 1_700_000_000_000i64;
        for (gap, late_by, late, price, qty) in steps {
            clock += gap;
            let ts = if late { clock + late_by } else { clock };
            tb.advance_to(clock, &mut out);
            tb.apply(&trade(ts, price, qty), &mut out);
        }
        tb.advance_to(Interval::M15.align(clock) + Interval::M15.millis() + 1, &mut out);
        // Corrections replace the closed bar of the same open time.
        let final_bars = |iv: Interval| {
            let mut v: Vec<Bar> = Vec::new();
            for u in out.iter().filter(|u| u.bar.interval == iv && u.kind != UpdateKind::Partial) {
                match v.iter_mut().find(|b| b.open_time == u.bar.open_time) {
                    Some(b) => *b = u.bar.clone(),
                    None => v.push(u.bar.clone()),
                }
            }
            v.sort_by_key(|b| b.open_time);
            v
        };
        let seconds = final_bars(Interval::S1);
        for iv in intervals {
            let built = final_bars(iv);
            for b in &built {
                prop_assert!(b.is_consistent(), "{:?}", b);
            }
            let resampled = resample(&seconds, iv);
            prop_assert_eq!(built.len(), resampled.len());
            for (b, r) in built.iter().zip(&resampled) {
                prop_assert_eq!((b.open_time, b.trades), (r.open_time, r.trades));
                if b.is_flat() {
                    // A flat bar carries the close known when it opened; a later correction of an
                    // earlier bar does not repaint it, so only its flatness is compared.
                    continue;
                }
                prop_assert_eq!((b.open, b.high, b.low, b.close), (r.open, r.high, r.low, r.close));
                prop_assert!((b.volume - r.volume).abs() <= 1e-9 * b.volume.max(1.0));
            }
        }
    }
}

/// Two trades of 1e308 (each finite) would sum to a volume of inf: the second is refused, live or late.
#[test]
fn a_trade_that_would_overflow_a_volume_does_not_fit() {
    let mut tb = bars(&[Interval::S1, Interval::M1]);
    let mut out = Vec::new();
    let huge = trade(MIN + 100, 100.0, 1e308);
    assert!(tb.volume_fits(&huge));
    tb.apply(&huge, &mut out);
    assert!(!tb.volume_fits(&trade(MIN + 200, 100.0, 1e308)), "the forming bar");
    assert!(tb.volume_fits(&trade(MIN + 200, 100.0, 1.0)));
    tb.advance_to(2 * MIN + 500, &mut out);
    assert!(!tb.volume_fits(&trade(2 * MIN - 1, 100.0, 1e308)), "a late trade into the closed bar");
    assert!(tb.volume_fits(&trade(2 * MIN + 600, 100.0, 1e308)), "the next bucket starts from 0");
}

/// What an upsert gets from outside is refused when it could not be journaled or stored.
#[test]
fn upserts_refuse_non_finite_volumes() {
    let mut tb = bars(&[Interval::M1]);
    let mut bar = Bar::from_trade("BTCUSDT".into(), Interval::M1, MIN, 100.0, 1.0);
    bar.closed = true;
    for volume in [f64::INFINITY, f64::NAN, -1.0] {
        let poisoned = Bar { volume, ..bar.clone() };
        assert_eq!(tb.upsert(poisoned, &mut Vec::new()), Err(UpsertError::Inconsistent));
    }
    assert!(tb.upsert(bar, &mut Vec::new()).is_ok());
}

#[test]
fn release_keeps_the_hot_window_and_a_deep_revision_voids_the_marks() {
    let mut tb = bars(&[Interval::S1, Interval::M1]).with_hot(10);
    let mut out = Vec::new();
    tb.apply(&trade(0, 100.0, 1.0), &mut out);
    tb.advance_to(100_500, &mut out); // 100 closed 1s bars, 1 closed 1m bar
    assert!(!tb.take_deep_write());
    let marks = tb.release_marks();
    assert_eq!(marks, vec![Some(89_000), None], "the 1s bars before the newest 10; nothing of 1m");
    tb.advance_to(105_500, &mut out); // 5 more close meanwhile: they are not in the marks
    tb.release(&marks);
    let s1 = tb.bars(Interval::S1, None, None, usize::MAX);
    assert_eq!(s1.first().map(|b| b.open_time), Some(90_000), "up to the marks only: 15 closed and the forming");
    assert_eq!(s1.len(), 16);
    assert_eq!(tb.closed_in_memory(), 15 + 1);

    // A late trade revising a bar of the hot window does not void marks; one beyond it (as an upsert
    // of an old bar) does.
    tb.apply(&trade(104_900, 90.0, 1.0), &mut out);
    assert!(!tb.take_deep_write(), "a bar of the hot window");
    let mut old = tb.bars(Interval::S1, Some(90_000), Some(91_000), 1)[0].clone();
    old.close = old.high;
    tb.upsert(old, &mut out).unwrap();
    assert!(tb.take_deep_write(), "beyond the newest 10");
    assert!(!tb.take_deep_write(), "taken");
}

#[test]
fn next_due_is_the_earliest_end_of_a_forming_bar() {
    let mut tb = bars(&[Interval::S5, Interval::M1]);
    let mut out = Vec::new();
    assert_eq!(tb.next_due(), None, "nothing forms before the first trade: nothing to close");
    tb.apply(&trade(10 * MIN + 2_500, 100.0, 1.0), &mut out);
    assert_eq!(tb.next_due(), Some(10 * MIN + 5_000), "the 5s bar ends first");
    tb.advance_to(10 * MIN + 59_999, &mut out);
    assert_eq!(tb.next_due(), Some(11 * MIN), "both end at the minute");
    tb.advance_to(11 * MIN, &mut out);
    assert_eq!(tb.next_due(), Some(11 * MIN + 5_000), "flat bars form and close on time too");
}
