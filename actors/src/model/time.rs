//! Timestamps as people and scripts write them: ISO 8601 (`2023-01-01T10:00:00`, with `Z`, an offset,
//! fractions, a space instead of `T`, or a date alone) or epoch numbers (milliseconds, or seconds when below
//! 10^11). A time without an offset is UTC. Also the civil-date conversions the rest of candlecast needs
//! (the cluster's per-day cache keys), so that there is one copy of them.

/// Epoch numbers below this are seconds (10^11 s is the year 5138; 10^11 ms is March 1973).
const SECONDS_BELOW: f64 = 1e11;

/// The latest time candlecast accepts from outside, 9999-12-31T23:59:59.999Z (and its negative the
/// earliest): bucket arithmetic (`Interval::align`) overflows i64 near its ends, so a wire time beyond
/// this range is refused where it is parsed instead of panicking (or wrapping) later. Found by fuzzing.
pub const MAX_ABS_MS: i64 = 253_402_300_799_999;

/// Whether `ms` is within [`MAX_ABS_MS`] of the epoch.
pub const fn in_range(ms: i64) -> bool {
    -MAX_ABS_MS <= ms && ms <= MAX_ABS_MS
}

/// Why a timestamp from outside was refused; the text is what scripts and CSV reports show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("timestamp is empty")]
    Empty,
    /// A number, but negative, not finite or past the year 33658.
    #[error("timestamp {0:?} is not a valid epoch time")]
    Epoch(String),
    #[error("timestamp {0:?} is not ISO 8601 (2023-01-01T10:00:00) or epoch milliseconds")]
    Format(String),
}

/// Parses a timestamp into UTC milliseconds since the epoch.
pub fn parse_timestamp(raw: &str) -> Result<i64, TimestampError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(TimestampError::Empty);
    }
    if let Ok(n) = s.parse::<f64>() {
        return from_number(n).ok_or_else(|| TimestampError::Epoch(s.to_owned()));
    }
    parse_iso(s).ok_or_else(|| TimestampError::Format(s.to_owned()))
}

/// An epoch number (JSON): milliseconds, or seconds when below 10^11.
pub fn from_number(n: f64) -> Option<i64> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let ms = if n < SECONDS_BELOW { n * 1000.0 } else { n };
    (ms < 1e15).then(|| ms.round() as i64)
}

/// An ISO 8601 time (see the module documentation) in UTC milliseconds.
pub fn parse_iso(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
    {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    if b.len() == 10 {
        return Some(ms);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (hour, minute) = (num(11, 2)?, num(14, 2)?);
    if b.get(13) != Some(&b':') || hour > 23 || minute > 59 {
        return None;
    }
    ms += (hour * 3600 + minute * 60) * 1000;
    let mut i = 16;
    if b.get(i) == Some(&b':') {
        let second = num(i + 1, 2)?;
        if second > 60 {
            return None;
        }
        ms += second * 1000;
        i += 3;
        if matches!(b.get(i), Some(b'.' | b',')) {
            let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            let frac: String = s[i + 1..i + 1 + digits].chars().chain("000".chars()).take(3).collect();
            ms += frac.parse::<i64>().ok()?;
            i += 1 + digits;
        }
    }
    let offset_minutes = match &s[i..] {
        "" | "Z" | "z" => 0,
        zone => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let (h, m) = (digits[..2].parse::<i64>().ok()?, digits[2..].parse::<i64>().ok()?);
            sign * (h * 60 + m)
        }
    };
    Some(ms - offset_minutes * 60_000)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Year, month and day of a count of days since 1970-01-01 (proleptic Gregorian; the inverse of
/// `days_from_civil`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of each 400-year era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// `YYYY-MM-DD` of a UTC time in ms.
pub fn format_date(ms: i64) -> String {
    let (year, month, day) = civil_from_days(ms.div_euclid(86_400_000));
    format!("{year:04}-{month:02}-{day:02}")
}

/// UTC milliseconds as `2023-01-01T10:00:00.000Z`.
pub fn format_iso(ms: i64) -> String {
    let rem = ms.rem_euclid(86_400_000);
    format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        format_date(ms),
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_scripts_send() {
        let t = 1_672_567_200_000; // 2023-01-01T10:00:00Z
        for raw in [
            "2023-01-01T10:00:00",
            "2023-01-01T10:00:00Z",
            "2023-01-01 10:00:00",
            "2023-01-01T10:00",
            "2023-01-01T11:00:00+01:00",
            "2023-01-01T05:00:00-0500",
            "1672567200000",
            "1672567200",
            "1672567200.0",
            " 2023-01-01T10:00:00.000 ",
        ] {
            assert_eq!(parse_timestamp(raw), Ok(t), "{raw}");
        }
        assert_eq!(parse_timestamp("2023-01-01T10:00:00.5"), Ok(t + 500));
        assert_eq!(parse_timestamp("2023-01-01T10:00:00.123456"), Ok(t + 123));
        assert_eq!(parse_timestamp("2023-01-01"), Ok(t - 10 * 3_600_000));
        assert_eq!(parse_timestamp("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000));
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for raw in [
            "",
            "yesterday",
            "2023-13-01",
            "2023-02-30",
            "2023-01-01T25:00",
            "2023-01-01X10:00",
            "2023-01-01T10:00:00+1",
            "2023-01-01T10:00:00.",
            "-5",
            "NaN",
            "2023-1-1",
        ] {
            assert!(parse_timestamp(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_iso(1_672_567_200_123), "2023-01-01T10:00:00.123Z");
        assert_eq!(format_iso(0), "1970-01-01T00:00:00.000Z");
        for ms in [951_782_400_000_i64, 1_709_164_800_000, 4_102_444_799_999] {
            assert_eq!(parse_timestamp(&format_iso(ms)), Ok(ms));
        }
    }
}
