//! Bar intervals and bucket alignment.
//!
//! Buckets are aligned to the UTC epoch. Weeks start on Monday 00:00 UTC, as Binance's do: the epoch
//! (1970-01-01) was a Thursday, so weekly buckets are shifted by four days.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds in one second.
const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;
/// 1970-01-05 00:00 UTC, the first Monday after the epoch.
const FIRST_MONDAY: i64 = 4 * DAY;

/// One of the bar lengths candlecast builds, from one second to one week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Interval {
    S1,
    S5,
    S15,
    S30,
    M1,
    M3,
    M5,
    M15,
    M30,
    H1,
    H2,
    H4,
    H6,
    H12,
    D1,
    W1,
}

/// The string given was not one of the supported interval names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown interval {0:?}: expected one of 1s 5s 15s 30s 1m 3m 5m 15m 30m 1h 2h 4h 6h 12h 1d 1w")]
pub struct UnknownInterval(pub String);

impl Interval {
    /// Every interval, shortest first.
    pub const ALL: [Interval; 16] = [
        Interval::S1,
        Interval::S5,
        Interval::S15,
        Interval::S30,
        Interval::M1,
        Interval::M3,
        Interval::M5,
        Interval::M15,
        Interval::M30,
        Interval::H1,
        Interval::H2,
        Interval::H4,
        Interval::H6,
        Interval::H12,
        Interval::D1,
        Interval::W1,
    ];

    /// The interval's name as clients write it (`"1m"`, `"1w"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Interval::S1 => "1s",
            Interval::S5 => "5s",
            Interval::S15 => "15s",
            Interval::S30 => "30s",
            Interval::M1 => "1m",
            Interval::M3 => "3m",
            Interval::M5 => "5m",
            Interval::M15 => "15m",
            Interval::M30 => "30m",
            Interval::H1 => "1h",
            Interval::H2 => "2h",
            Interval::H4 => "4h",
            Interval::H6 => "6h",
            Interval::H12 => "12h",
            Interval::D1 => "1d",
            Interval::W1 => "1w",
        }
    }

    /// Length of one bar in milliseconds.
    pub const fn millis(self) -> i64 {
        match self {
            Interval::S1 => SEC,
            Interval::S5 => 5 * SEC,
            Interval::S15 => 15 * SEC,
            Interval::S30 => 30 * SEC,
            Interval::M1 => MIN,
            Interval::M3 => 3 * MIN,
            Interval::M5 => 5 * MIN,
            Interval::M15 => 15 * MIN,
            Interval::M30 => 30 * MIN,
            Interval::H1 => HOUR,
            Interval::H2 => 2 * HOUR,
            Interval::H4 => 4 * HOUR,
            Interval::H6 => 6 * HOUR,
            Interval::H12 => 12 * HOUR,
            Interval::D1 => DAY,
            Interval::W1 => WEEK,
        }
    }

    /// Position in [`Interval::ALL`]; lets per-interval state live in plain arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Open time of the bucket that contains `ts` (UTC milliseconds).
    pub const fn align(self, ts: i64) -> i64 {
        let len = self.millis();
        match self {
            Interval::W1 => (ts - FIRST_MONDAY).div_euclid(len) * len + FIRST_MONDAY,
            _ => ts.div_euclid(len) * len,
        }
    }

    /// Whether every bucket of `self` is exactly covered by whole buckets of `finer`.
    pub const fn is_multiple_of(self, finer: Interval) -> bool {
        // Week buckets start on Mondays, which every day-or-shorter bucket boundary also is.
        self.millis() % finer.millis() == 0
    }
}

impl FromStr for Interval {
    type Err = UnknownInterval;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Interval::ALL.into_iter().find(|i| i.as_str() == s).ok_or_else(|| UnknownInterval(s.to_owned()))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_name_and_rejects_others() {
        for i in Interval::ALL {
            assert_eq!(i.as_str().parse::<Interval>(), Ok(i));
            assert_eq!(Interval::ALL[i.index()], i);
        }
        for bad in ["", "1M", "2m", "1 m", "60s", "1d ", "7d", "1W"] {
            let err = bad.parse::<Interval>().unwrap_err();
            assert!(err.to_string().contains("unknown interval"), "{err}");
        }
    }

    #[test]
    fn serde_uses_the_short_names() {
        assert_eq!(serde_json::to_string(&Interval::H4).unwrap(), "\"4h\"");
        assert_eq!(serde_json::from_str::<Interval>("\"15m\"").unwrap(), Interval::M15);
        assert!(serde_json::from_str::<Interval>("\"13m\"").is_err());
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2024-01-01 was a Monday; 2024-01-07 23:59:59.999 a Sunday.
        let monday = 1_704_067_200_000;
        assert_eq!(Interval::W1.align(monday), monday);
        assert_eq!(Interval::W1.align(monday + WEEK - 1), monday);
        assert_eq!(Interval::W1.align(monday - 1), monday - WEEK);
        // The epoch itself (a Thursday) belongs to the week that began on Monday 1969-12-29.
        assert_eq!(Interval::W1.align(0), FIRST_MONDAY - WEEK);
    }

    #[test]
    fn boundaries_of_minute_hour_and_day() {
        let t = 1_704_067_200_000 + 13 * HOUR + 59 * MIN + 59 * SEC + 999; // 13:59:59.999
        assert_eq!(Interval::M1.align(t), t - 59 * SEC - 999);
        assert_eq!(Interval::M1.align(t + 1), t + 1);
        assert_eq!(Interval::H1.align(t), 1_704_067_200_000 + 13 * HOUR);
        assert_eq!(Interval::H4.align(t), 1_704_067_200_000 + 12 * HOUR);
        assert_eq!(Interval::D1.align(t), 1_704_067_200_000);
        assert_eq!(Interval::D1.align(t + 10 * HOUR), 1_704_067_200_000); // 23:59:59.999
        assert_eq!(Interval::D1.align(t + 10 * HOUR + 1), 1_704_067_200_000 + DAY);
    }

    proptest! {
        #[test]
        fn align_is_a_bucket_start_containing_ts(ts in -10_000_000_000_000i64..10_000_000_000_000, i in 0usize..16) {
            let iv = Interval::ALL[i];
            let open = iv.align(ts);
            prop_assert!(open <= ts && ts < open + iv.millis());
            prop_assert_eq!(iv.align(open), open);
            // Coarser buckets start on finer bucket boundaries.
            for finer in Interval::ALL.into_iter().filter(|f| iv.is_multiple_of(*f)) {
                prop_assert_eq!(finer.align(open), open);
            }
        }
    }
}
