//! IQFeed's clock: every time IQConnect sends (trade times, `T,` timestamps, history rows) is US Eastern
//! local time (America/New_York, EST in winter, EDT in summer), without an offset. The offset of a
//! given instant comes from the IANA time-zone database (`chrono-tz`), never from hand-written rules.
//!
//! Two local times need a rule:
//! - the hour that is skipped when clocks go forward (02:00–02:59 on the second Sunday of March) does
//!   not exist: such a time is refused (`None`);
//! - the hour that repeats when clocks go back (01:00–01:59 on the first Sunday of November) is
//!   ambiguous: live trades take the reading closest to when they arrived, history the earlier one.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::America::New_York;

/// UTC milliseconds of an Eastern local time; for a repeated hour, the reading nearest `near_ms`
/// (`None`: the earlier one).
pub fn eastern_to_utc_ms(local: NaiveDateTime, near_ms: Option<i64>) -> Option<i64> {
    match New_York.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.timestamp_millis()),
        LocalResult::Ambiguous(first, second) => {
            let (a, b) = (first.timestamp_millis(), second.timestamp_millis());
            Some(match near_ms {
                Some(near) if (b - near).abs() < (a - near).abs() => b,
                _ => a,
            })
        }
        LocalResult::None => None,
    }
}

/// The Eastern local time of a UTC instant (for request parameters and the tests' fake server).
pub fn utc_ms_to_eastern(ms: i64) -> Option<NaiveDateTime> {
    Some(DateTime::from_timestamp_millis(ms)?.with_timezone(&New_York).naive_local())
}

/// `2025-12-05 15:59:00` / `2025-12-05 15:59:00.123456` (history rows).
pub fn parse_history_time(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S%.f").ok()
}

/// `2025-12-05` (daily history rows).
pub fn parse_history_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// `20251205 09:30:01` (`T,` timestamp messages).
pub fn parse_timestamp_message(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s.trim(), "%Y%m%d %H:%M:%S").ok()
}

/// `12/05/2025` (the Level 1 "Most Recent Trade Date" field).
pub fn parse_trade_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%m/%d/%Y").ok()
}

/// `09:30:01.123456` or `09:30:01` (the Level 1 "Most Recent Trade Time" field).
pub fn parse_trade_time(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M:%S%.f").ok()
}

/// `20251205 093001`: how lookup requests (HIT, HTT) name a begin time.
pub fn request_time(local: NaiveDateTime) -> String {
    local.format("%Y%m%d %H%M%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(s: &str) -> NaiveDateTime {
        parse_history_time(s).unwrap()
    }

    /// 2025-03-09: 02:00 EST became 03:00 EDT. Before: UTC-5; after: UTC-4; in between: no such time.
    #[test]
    fn spring_forward() {
        assert_eq!(eastern_to_utc_ms(local("2025-03-09 01:59:59"), None), Some(1_741_503_599_000)); // 06:59:59Z
        assert_eq!(eastern_to_utc_ms(local("2025-03-09 03:00:00"), None), Some(1_741_503_600_000)); // 07:00:00Z
        assert_eq!(eastern_to_utc_ms(local("2025-03-09 02:30:00"), None), None, "skipped hour");
        // A trading day either side: 09:30 is 14:30Z in winter, 13:30Z in summer.
        assert_eq!(eastern_to_utc_ms(local("2025-03-07 09:30:00"), None), Some(1_741_357_800_000));
        assert_eq!(eastern_to_utc_ms(local("2025-03-10 09:30:00"), None), Some(1_741_613_400_000));
    }

    /// 2025-11-02: 02:00 EDT became 01:00 EST, so 01:30 happened twice (05:30Z, then 06:30Z).
    #[test]
    fn fall_back() {
        let t = local("2025-11-02 01:30:00");
        let (edt, est) = (1_762_061_400_000, 1_762_065_000_000);
        assert_eq!(eastern_to_utc_ms(t, None), Some(edt), "history: the earlier reading");
        assert_eq!(eastern_to_utc_ms(t, Some(est + 500)), Some(est), "live: the reading nearest arrival");
        assert_eq!(eastern_to_utc_ms(t, Some(edt + 500)), Some(edt));
        assert_eq!(utc_ms_to_eastern(est), Some(t));
        assert_eq!(utc_ms_to_eastern(edt), Some(t));
    }

    #[test]
    fn parses_each_time_format() {
        assert_eq!(parse_timestamp_message("20251205 09:30:01"), Some(local("2025-12-05 09:30:01")));
        assert_eq!(parse_history_time("2025-12-05 09:30:01.250000"), Some(local("2025-12-05 09:30:01.25")));
        assert_eq!(parse_trade_date("12/05/2025"), NaiveDate::from_ymd_opt(2025, 12, 5));
        assert_eq!(parse_trade_time("09:30:01.000250"), NaiveTime::from_hms_micro_opt(9, 30, 1, 250));
        assert_eq!(request_time(local("2025-12-05 09:30:01")), "20251205 093001");
        for bad in ["", "2025-13-01 00:00:00", "09:30", "x"] {
            assert_eq!(parse_history_time(bad), None, "{bad}");
        }
    }
}
