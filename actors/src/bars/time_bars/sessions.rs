//! Bars on an exchange's sessions (see `model::calendar`): the same aggregator, buckets laid out by the
//! calendar instead of the UTC epoch.

use std::sync::Arc;

use super::tests::trade;
use super::*;
use crate::model::{Session, SessionSpec};

fn t(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s).expect("test time").timestamp_millis()
}

fn nse_bars(intervals: &[Interval]) -> TimeBars {
    let spec = SessionSpec {
        timezone: "Asia/Kolkata".into(),
        open: "09:15".into(),
        close: "15:30".into(),
        weekdays: Vec::new(),
        // Friday 2024-01-26: Republic Day.
        holidays: vec!["2024-01-26".into()],
        holidays_file: None,
    };
    let calendar = Calendar::Session(Arc::new(Session::try_from(spec).expect("valid session")));
    TimeBars::new("NSE:INFY".into(), intervals, 2_000, 100_000).with_calendar(calendar)
}

fn closed(out: &[BarUpdate], interval: Interval) -> Vec<Bar> {
    out.iter().filter(|u| u.kind == UpdateKind::Closed && u.bar.interval == interval).map(|u| u.bar.clone()).collect()
}

#[test]
fn hourly_bars_start_at_the_open_and_the_last_one_closes_with_the_session() {
    let mut tb = nse_bars(&[Interval::M1, Interval::H1]);
    let mut out = Vec::new();
    // One trade every 5 minutes through Thursday's session.
    let open = t("2024-01-25T09:15:00+05:30");
    let close = t("2024-01-25T15:30:00+05:30");
    let mut ts = open + 10_000;
    let mut price = 1_500.0;
    while ts < close {
        tb.apply(&trade(ts, price, 1.0), &mut out);
        price += 0.5;
        ts += 5 * 60_000;
    }
    tb.advance_to(close + 1, &mut out);
    let hours = closed(&out, Interval::H1);
    let opens: Vec<String> = hours
        .iter()
        .map(|b| chrono::DateTime::from_timestamp_millis(b.open_time).expect("time").format("%H:%M").to_string())
        .collect();
    // In UTC: 09:15 IST is 03:45.
    assert_eq!(opens, ["03:45", "04:45", "05:45", "06:45", "07:45", "08:45", "09:45"]);
    assert_eq!(hours.iter().map(|b| b.trades).sum::<u64>(), 75, "every trade of the day in the hourly bars");
    assert_eq!(hours.last().map(|b| b.trades), Some(3), "15:15–15:30 holds three trades");
    // The minute bars of the whole session closed by 15:30, and nothing formed after it yet.
    assert_eq!(closed(&out, Interval::M1).len(), 375);
    assert!(tb.current(Interval::M1).is_none(), "the next session's bar is not shown before it opens");
    // Nothing is due until then: the aggregator sleeps through the night (Friday is a holiday).
    assert_eq!(tb.next_due(), Some(t("2024-01-29T09:15:00+05:30")));
}

#[test]
fn no_flat_bars_through_the_night_the_weekend_or_a_holiday() {
    let mut tb = nse_bars(&[Interval::M1, Interval::D1]);
    let mut out = Vec::new();
    tb.apply(&trade(t("2024-01-25T15:29:10+05:30"), 100.0, 1.0), &mut out);
    // Thursday 15:29 → Monday 09:16: Friday is a holiday, then the weekend.
    tb.advance_to(t("2024-01-29T09:16:05+05:30"), &mut out);
    let minutes = closed(&out, Interval::M1);
    let opens: Vec<i64> = minutes.iter().map(|b| b.open_time).collect();
    assert_eq!(opens, [t("2024-01-25T15:29:00+05:30"), t("2024-01-29T09:15:00+05:30")]);
    assert!(minutes[1].is_flat() && minutes[1].close == 100.0, "Monday's first minute carries Thursday's close");
    let days = closed(&out, Interval::D1);
    assert_eq!(days.iter().map(|b| b.open_time).collect::<Vec<_>>(), [t("2024-01-25T00:00:00+05:30")]);
    let forming = tb.current(Interval::D1).expect("Monday's bar is forming");
    assert_eq!(forming.open_time, t("2024-01-29T00:00:00+05:30"));
    // The partials sent are Monday's, never a bar in the future.
    out.clear();
    tb.take_partials(&mut out);
    assert!(out.iter().all(|u| u.bar.open_time <= t("2024-01-29T09:16:05+05:30")), "{out:?}");
    // Over the closed days, a trade arriving now lands in Monday's bars.
    tb.apply(&trade(t("2024-01-29T09:16:06+05:30"), 101.0, 2.0), &mut out);
    assert_eq!(tb.current(Interval::M1).map(|b| (b.open_time, b.trades)), Some((t("2024-01-29T09:16:00+05:30"), 1)));
}

#[test]
fn a_pre_open_trade_opens_the_first_minute() {
    let mut tb = nse_bars(&[Interval::M1]);
    let mut out = Vec::new();
    tb.apply(&trade(t("2024-01-25T09:07:58+05:30"), 99.0, 5.0), &mut out);
    tb.apply(&trade(t("2024-01-25T09:15:20+05:30"), 100.0, 1.0), &mut out);
    let bar = tb.current(Interval::M1).expect("forming");
    assert_eq!((bar.open_time, bar.open, bar.close, bar.volume), (t("2024-01-25T09:15:00+05:30"), 99.0, 100.0, 6.0));
}

#[test]
fn the_hand_over_from_history_skips_the_closed_hours() {
    let mut tb = nse_bars(&[Interval::M1]);
    let last = Bar::flat("NSE:INFY".into(), Interval::M1, t("2024-01-24T15:29:00+05:30"), 100.0);
    let mut last = last;
    last.closed = true;
    last.trades = 1;
    tb.seed(Interval::M1, vec![last]);
    let mut out = Vec::new();
    tb.advance_to(t("2024-01-25T09:17:00+05:30"), &mut out);
    let opens: Vec<i64> = closed(&out, Interval::M1).iter().map(|b| b.open_time).collect();
    assert_eq!(opens, [t("2024-01-25T09:15:00+05:30"), t("2024-01-25T09:16:00+05:30")]);
}
