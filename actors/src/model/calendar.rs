//! When a market trades, and where its bars start.
//!
//! Crypto trades around the clock: its buckets are aligned to the UTC epoch ([`Calendar::Continuous`],
//! [`Interval::align`]). An exchange such as NSE trades 09:15–15:30 Asia/Kolkata on weekdays that are not
//! holidays ([`Calendar::Session`]); its charts follow the session, as the brokers' own candles do:
//!
//! - intraday buckets are counted from the session's open (Kite's 60-minute candles start at 09:15,
//!   10:15, …, the last one 15:15–15:30 is cut at the close);
//! - a daily bar is the exchange's trading date (it opens at local midnight of that date), a weekly bar
//!   its week from Monday, local time;
//! - between two sessions there are no buckets at all, so no flat bars fill the night, the weekend or a
//!   holiday, and the first bar after a holiday follows the last one before it.
//!
//! A trade stamped before the open (a pre-open auction's price) belongs to the first bucket of that day's
//! session, one stamped after the close to the last bucket; local times are converted with the IANA
//! database (chrono-tz), so New York's daylight-saving changes move the UTC open by an hour.
//! Sessions that cross midnight (futures' overnight sessions) are not supported.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;

use super::Interval;

/// How the buckets of one symbol are laid out in time.
#[derive(Debug, Clone, Default)]
pub enum Calendar {
    /// Trades at every hour of every day: buckets aligned to the UTC epoch.
    #[default]
    Continuous,
    /// Trades in one session a day, on trading days.
    Session(Arc<Session>),
}

/// One exchange's trading session (`[aggregator.sessions.<EXCHANGE>]` in the config).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SessionSpec")]
pub struct Session {
    tz: Tz,
    open: NaiveTime,
    /// `None`: the session runs to midnight (`close = "24:00"`).
    close: Option<NaiveTime>,
    /// Trading weekdays, indexed by `Weekday::num_days_from_monday`.
    weekdays: [bool; 7],
    holidays: BTreeSet<NaiveDate>,
}

/// A session as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    /// IANA time zone, e.g. `Asia/Kolkata`, `America/New_York`.
    pub timezone: String,
    /// Local open and close, `HH:MM`; the close is exclusive, `24:00` for midnight.
    pub open: String,
    pub close: String,
    /// Trading weekdays (`mon` … `sun`); Monday to Friday when absent.
    #[serde(default)]
    pub weekdays: Vec<String>,
    /// Dates without a session, `YYYY-MM-DD`.
    #[serde(default)]
    pub holidays: Vec<String>,
    /// A file of more such dates, one per line (`#` starts a comment).
    #[serde(default)]
    pub holidays_file: Option<String>,
}

/// A session the config describes wrongly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("unknown time zone {0:?} (an IANA name such as \"Asia/Kolkata\")")]
    TimeZone(String),
    #[error("bad time {0:?}: expected HH:MM")]
    Time(String),
    #[error("the session must close after it opens, on the same day (overnight sessions are not supported)")]
    Order,
    #[error("unknown weekday {0:?}: expected mon, tue, wed, thu, fri, sat or sun")]
    Weekday(String),
    #[error("no trading weekday")]
    NoWeekday,
    #[error("bad holiday {0:?}: expected YYYY-MM-DD")]
    Holiday(String),
    #[error("cannot read the holidays file {path}: {reason}")]
    HolidaysFile { path: String, reason: String },
}

impl TryFrom<SessionSpec> for Session {
    type Error = SessionError;

    fn try_from(spec: SessionSpec) -> Result<Session, SessionError> {
        let tz: Tz = spec.timezone.parse().map_err(|_| SessionError::TimeZone(spec.timezone.clone()))?;
        let time = |s: &str| NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| SessionError::Time(s.to_owned()));
        let open = time(&spec.open)?;
        let close = if spec.close == "24:00" { None } else { Some(time(&spec.close)?) };
        if close.is_some_and(|c| c <= open) {
            return Err(SessionError::Order);
        }
        let mut weekdays = [false; 7];
        if spec.weekdays.is_empty() {
            weekdays[..5].fill(true);
        }
        for day in &spec.weekdays {
            let w: Weekday = day.parse().map_err(|_| SessionError::Weekday(day.clone()))?;
            weekdays[w.num_days_from_monday() as usize] = true;
        }
        if !weekdays.contains(&true) {
            return Err(SessionError::NoWeekday);
        }
        let mut lines: Vec<String> = spec.holidays.clone();
        if let Some(path) = &spec.holidays_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| SessionError::HolidaysFile { path: path.clone(), reason: e.to_string() })?;
            lines.extend(text.lines().map(|l| l.split('#').next().unwrap_or("").trim().to_owned()));
        }
        let holidays = lines
            .iter()
            .filter(|l| !l.is_empty())
            .map(|l| NaiveDate::parse_from_str(l, "%Y-%m-%d").map_err(|_| SessionError::Holiday(l.clone())))
            .collect::<Result<_, _>>()?;
        Ok(Session { tz, open, close, weekdays, holidays })
    }
}

/// A session as clients see it (`/api/symbols`): enough for a page to tell an open market from a closed
/// one in the exchange's own time zone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionView {
    pub timezone: String,
    /// Local `HH:MM`.
    pub open: String,
    /// Local `HH:MM`, exclusive; `24:00` for midnight.
    pub close: String,
    /// `mon` ... `sun`.
    pub weekdays: Vec<&'static str>,
    /// `YYYY-MM-DD`.
    pub holidays: Vec<String>,
}

impl Session {
    /// What a client needs to know of this session.
    pub fn view(&self) -> SessionView {
        const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        SessionView {
            timezone: self.tz.name().to_owned(),
            open: self.open.format("%H:%M").to_string(),
            close: self.close.map_or_else(|| "24:00".to_owned(), |c| c.format("%H:%M").to_string()),
            weekdays: DAYS.iter().zip(self.weekdays).filter(|(_, on)| *on).map(|(d, _)| *d).collect(),
            holidays: self.holidays.iter().map(|d| d.format("%Y-%m-%d").to_string()).collect(),
        }
    }

    fn is_trading_day(&self, date: NaiveDate) -> bool {
        self.weekdays[date.weekday().num_days_from_monday() as usize] && !self.holidays.contains(&date)
    }

    /// The exchange's local date at `ts`.
    fn date_of(&self, ts: i64) -> NaiveDate {
        match self.tz.timestamp_millis_opt(ts) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.date_naive(),
            // Every instant has exactly one local time; kept total for the type's sake.
            LocalResult::None => NaiveDate::MIN,
        }
    }

    /// UTC milliseconds of a local date and time. A time that a daylight-saving change skips counts as
    /// the instant the clocks jumped to; a repeated one as its first occurrence.
    fn instant(&self, date: NaiveDate, time: NaiveTime) -> i64 {
        let local = NaiveDateTime::new(date, time);
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.timestamp_millis(),
            LocalResult::None => {
                // In a spring-forward gap: the same wall time an hour later exists.
                let later = local + Duration::hours(1);
                self.tz.from_local_datetime(&later).earliest().map_or(0, |t| t.timestamp_millis() - 3_600_000)
            }
        }
    }

    fn midnight(&self, date: NaiveDate) -> i64 {
        self.instant(date, NaiveTime::MIN)
    }

    /// The session's open and close on `date`, in UTC milliseconds.
    fn bounds(&self, date: NaiveDate) -> (i64, i64) {
        let close = match self.close {
            Some(close) => self.instant(date, close),
            None => self.midnight(date.succ_opt().unwrap_or(date)),
        };
        (self.instant(date, self.open), close)
    }

    /// The first trading date after `date` (a year of holidays at most is searched).
    fn next_trading_day(&self, date: NaiveDate) -> NaiveDate {
        let mut d = date;
        for _ in 0..400 {
            d = d.succ_opt().unwrap_or(d);
            if self.is_trading_day(d) {
                return d;
            }
        }
        d
    }

    fn monday_of(date: NaiveDate) -> NaiveDate {
        date - Duration::days(i64::from(date.weekday().num_days_from_monday()))
    }
}

impl Calendar {
    /// Open time of the bucket of `interval` that holds `ts`.
    pub fn align(&self, interval: Interval, ts: i64) -> i64 {
        let Calendar::Session(s) = self else { return interval.align(ts) };
        let date = s.date_of(ts);
        match interval {
            Interval::D1 => s.midnight(date),
            Interval::W1 => s.midnight(Session::monday_of(date)),
            _ => {
                let (open, close) = s.bounds(date);
                let len = interval.millis();
                let t = ts.clamp(open, close - 1);
                open + (t - open).div_euclid(len) * len
            }
        }
    }

    /// When the bucket opened at `open_time` ends: an intraday bucket at the session's close at the
    /// latest, a day at its session's close.
    pub fn bucket_end(&self, interval: Interval, open_time: i64) -> i64 {
        let Calendar::Session(s) = self else { return Self::continuous_end(interval, open_time) };
        let date = s.date_of(open_time);
        match interval {
            Interval::D1 if s.is_trading_day(date) => s.bounds(date).1,
            Interval::D1 => s.midnight(date.succ_opt().unwrap_or(date)),
            Interval::W1 => s.midnight(Session::monday_of(date) + Duration::days(7)),
            _ => (open_time + interval.millis()).min(s.bounds(date).1),
        }
    }

    /// Open time of the bucket that follows the one opened at `open_time`, skipping the hours, days and
    /// holidays without a session.
    pub fn next_bucket(&self, interval: Interval, open_time: i64) -> i64 {
        let Calendar::Session(s) = self else { return Self::continuous_end(interval, open_time) };
        let date = s.date_of(open_time);
        match interval {
            Interval::D1 => s.midnight(s.next_trading_day(date)),
            Interval::W1 => s.midnight(Session::monday_of(date) + Duration::days(7)),
            _ => {
                let next = open_time + interval.millis();
                let (open, close) = s.bounds(date);
                if next < close && s.is_trading_day(date) {
                    next
                } else if open_time < open && s.is_trading_day(date) {
                    open
                } else {
                    s.bounds(s.next_trading_day(date)).0
                }
            }
        }
    }

    /// A daily bar from a provider that dates its days as UTC midnights (IQFeed's `HDX`, a CSV): the same
    /// date's local midnight. Bars already at a local midnight stay where they are.
    pub fn redate_day(&self, open_time: i64) -> i64 {
        let Calendar::Session(s) = self else { return Interval::D1.align(open_time) };
        if s.midnight(s.date_of(open_time)) == open_time {
            return open_time;
        }
        match chrono::DateTime::from_timestamp_millis(open_time) {
            Some(utc) => s.midnight(utc.date_naive()),
            None => open_time,
        }
    }

    fn continuous_end(interval: Interval, open_time: i64) -> i64 {
        interval.align(open_time) + interval.millis()
    }

    /// Whether `open_time` can start a bucket of `interval`: aligned to the interval on the continuous
    /// calendar; on a session calendar to the second (sub-minute intervals) or the minute (sessions open
    /// on whole minutes, and time zones are whole quarter hours from UTC).
    pub fn is_plausible_open(interval: Interval, open_time: i64) -> bool {
        let unit = if interval.millis() < 60_000 { interval.millis() } else { 60_000 };
        open_time.rem_euclid(unit) == 0
    }

    /// The session, unless the market trades around the clock.
    pub fn session(&self) -> Option<&Session> {
        match self {
            Calendar::Session(s) => Some(s),
            Calendar::Continuous => None,
        }
    }

    /// A continuous calendar aligns every bucket to the UTC epoch.
    pub fn is_continuous(&self) -> bool {
        matches!(self, Calendar::Continuous)
    }
}

#[cfg(test)]
mod tests;
