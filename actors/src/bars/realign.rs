//! A backfill laid onto an exchange's sessions.
//!
//! Feeds build their coarse history by resampling finer bars on the UTC epoch (and some providers date
//! daily bars as UTC midnights). For a symbol that trades in sessions those buckets are not the chart's:
//! an NSE hour starts at 09:15 IST, not at 09:30 IST (04:00 UTC). The aggregator therefore rebuilds every
//! intraday interval of such a backfill from its finest bars with the session calendar, re-dates daily
//! bars to the exchange's date, and builds the weeks from those days. An interval it cannot rebuild
//! (no finer bars given) is left out rather than shown in the wrong buckets.

use crate::model::{resample_on, Bar, Calendar, Interval};

/// The seed as the aggregator of a session symbol must hold it (unchanged on a continuous calendar).
pub fn realign_seed(calendar: &Calendar, seed: Vec<(Interval, Vec<Bar>)>) -> Vec<(Interval, Vec<Bar>)> {
    if calendar.is_continuous() {
        return seed;
    }
    let aligned = |iv: Interval, bars: &[Bar]| bars.iter().all(|b| calendar.align(iv, b.open_time) == b.open_time);
    let source = |finest: Interval| seed.iter().find(|(iv, _)| *iv == finest).map(|(_, bars)| bars.as_slice());
    let (seconds, minutes) = (source(Interval::S1), source(Interval::M1));
    let mut days: Option<Vec<Bar>> = None;
    let mut out = Vec::with_capacity(seed.len());
    for (iv, bars) in &seed {
        let rebuilt = if aligned(*iv, bars) {
            Some(bars.clone())
        } else if *iv == Interval::D1 {
            let mut redated: Vec<Bar> = bars.clone();
            for b in &mut redated {
                b.open_time = calendar.redate_day(b.open_time);
            }
            Some(redated)
        } else if *iv == Interval::W1 {
            None // built from the days below
        } else if *iv < Interval::M1 {
            seconds.map(|s| resample_on(calendar, s, *iv))
        } else {
            minutes.or(seconds).map(|m| resample_on(calendar, m, *iv))
        };
        if *iv == Interval::D1 {
            days = rebuilt.clone();
        }
        if let Some(bars) = rebuilt {
            out.push((*iv, bars));
        }
    }
    let weeks_wanted = seed.iter().any(|(iv, bars)| *iv == Interval::W1 && !aligned(*iv, bars));
    if weeks_wanted {
        if let Some(days) = days {
            out.push((Interval::W1, resample_on(calendar, &days, Interval::W1)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Session, SessionSpec};

    fn t(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s).expect("test time").timestamp_millis()
    }

    fn nse() -> Calendar {
        let spec = SessionSpec {
            timezone: "Asia/Kolkata".into(),
            open: "09:15".into(),
            close: "15:30".into(),
            weekdays: Vec::new(),
            holidays: Vec::new(),
            holidays_file: None,
        };
        Calendar::Session(Arc::new(Session::try_from(spec).expect("valid")))
    }

    fn minute(ts: i64, price: f64) -> Bar {
        let mut b = Bar::from_trade("NSE:INFY".into(), Interval::M1, ts, price, 1.0);
        b.closed = true;
        b
    }

    #[test]
    fn epoch_hours_are_rebuilt_on_the_session_and_days_redated() {
        let open = t("2024-01-25T09:15:00+05:30");
        let minutes: Vec<Bar> = (0..375).map(|i| minute(open + i * 60_000, 100.0 + i as f64)).collect();
        let epoch_hours = crate::model::resample(&minutes, Interval::H1);
        let mut utc_day = Bar::flat("NSE:INFY".into(), Interval::D1, t("2024-01-25T00:00:00Z"), 100.0);
        utc_day.closed = true;
        let mut utc_week = Bar::flat("NSE:INFY".into(), Interval::W1, t("2024-01-22T00:00:00Z"), 100.0);
        utc_week.closed = true;
        let seed = vec![
            (Interval::M1, minutes.clone()),
            (Interval::H1, epoch_hours),
            (Interval::D1, vec![utc_day]),
            (Interval::W1, vec![utc_week]),
        ];
        let out = realign_seed(&nse(), seed);
        let get = |iv| out.iter().find(|(i, _)| *i == iv).map(|(_, b)| b.clone()).expect("interval kept");
        let hours = get(Interval::H1);
        assert_eq!(hours.len(), 7);
        assert_eq!(hours[0].open_time, open);
        assert_eq!((hours[0].open, hours[0].close, hours[0].trades), (100.0, 159.0, 60));
        assert_eq!(hours[6].trades, 15, "15:15–15:30");
        assert_eq!(get(Interval::M1), minutes, "aligned bars stay as they are");
        assert_eq!(get(Interval::D1)[0].open_time, t("2024-01-25T00:00:00+05:30"));
        assert_eq!(get(Interval::W1)[0].open_time, t("2024-01-22T00:00:00+05:30"));
    }

    #[test]
    fn an_interval_without_finer_bars_to_rebuild_from_is_left_out() {
        let mut hour = Bar::flat("NSE:INFY".into(), Interval::H1, t("2024-01-25T04:00:00Z"), 100.0);
        hour.closed = true;
        let out = realign_seed(&nse(), vec![(Interval::H1, vec![hour])]);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_continuous_calendar_keeps_the_seed() {
        let seed = vec![(Interval::M1, vec![minute(60_000, 1.0)])];
        assert_eq!(realign_seed(&Calendar::Continuous, seed.clone()), seed);
    }
}
