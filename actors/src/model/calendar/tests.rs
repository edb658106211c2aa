use super::*;

fn session(tz: &str, open: &str, close: &str, holidays: &[&str]) -> Calendar {
    let spec = SessionSpec {
        timezone: tz.into(),
        open: open.into(),
        close: close.into(),
        weekdays: Vec::new(),
        holidays: holidays.iter().map(|h| h.to_string()).collect(),
        holidays_file: None,
    };
    Calendar::Session(Arc::new(Session::try_from(spec).expect("valid session")))
}

fn nse() -> Calendar {
    // 2024-01-26 (a Friday) is Republic Day, an NSE holiday.
    session("Asia/Kolkata", "09:15", "15:30", &["2024-01-26"])
}

fn nyse() -> Calendar {
    session("America/New_York", "09:30", "16:00", &[])
}

/// UTC milliseconds of an RFC 3339 time.
fn t(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s).expect("test time").timestamp_millis()
}

#[test]
fn nse_hours_start_at_the_open_and_the_last_one_is_cut_at_the_close() {
    let c = nse();
    assert_eq!(c.align(Interval::H1, t("2024-01-25T09:15:00+05:30")), t("2024-01-25T09:15:00+05:30"));
    assert_eq!(c.align(Interval::H1, t("2024-01-25T10:14:59.999+05:30")), t("2024-01-25T09:15:00+05:30"));
    assert_eq!(c.align(Interval::H1, t("2024-01-25T10:15:00+05:30")), t("2024-01-25T10:15:00+05:30"));
    assert_eq!(c.align(Interval::H1, t("2024-01-25T15:29:59+05:30")), t("2024-01-25T15:15:00+05:30"));
    assert_eq!(c.bucket_end(Interval::H1, t("2024-01-25T15:15:00+05:30")), t("2024-01-25T15:30:00+05:30"));
    assert_eq!(c.bucket_end(Interval::H1, t("2024-01-25T14:15:00+05:30")), t("2024-01-25T15:15:00+05:30"));
    // 30-minute bars too (09:15 IST is not on a UTC half hour).
    assert_eq!(c.align(Interval::M30, t("2024-01-25T09:50:00+05:30")), t("2024-01-25T09:45:00+05:30"));
    // Minutes are minutes.
    assert_eq!(c.align(Interval::M1, t("2024-01-25T11:07:31+05:30")), t("2024-01-25T11:07:00+05:30"));
}

#[test]
fn pre_open_and_after_close_trades_belong_to_the_first_and_last_buckets() {
    let c = nse();
    assert_eq!(c.align(Interval::M1, t("2024-01-25T09:07:45+05:30")), t("2024-01-25T09:15:00+05:30"));
    assert_eq!(c.align(Interval::M5, t("2024-01-25T15:45:00+05:30")), t("2024-01-25T15:25:00+05:30"));
}

#[test]
fn after_the_close_the_next_bucket_is_the_next_sessions_open_skipping_the_weekend_and_a_holiday() {
    let c = nse();
    // Wednesday's last minute is followed by Thursday's first.
    assert_eq!(c.next_bucket(Interval::M1, t("2024-01-24T15:29:00+05:30")), t("2024-01-25T09:15:00+05:30"));
    // Thursday 25th: Friday 26th is a holiday, Saturday and Sunday are closed: Monday 29th.
    assert_eq!(c.next_bucket(Interval::H1, t("2024-01-25T15:15:00+05:30")), t("2024-01-29T09:15:00+05:30"));
    assert_eq!(c.next_bucket(Interval::D1, t("2024-01-25T00:00:00+05:30")), t("2024-01-29T00:00:00+05:30"));
    // Inside the session: the plain next bucket.
    assert_eq!(c.next_bucket(Interval::M5, t("2024-01-25T10:00:00+05:30")), t("2024-01-25T10:05:00+05:30"));
}

#[test]
fn a_day_is_the_exchange_date_and_ends_at_its_close() {
    let c = nse();
    // 02:00 IST on the 25th is still the 24th in UTC: the bar is the 25th's.
    assert_eq!(c.align(Interval::D1, t("2024-01-24T20:30:00Z")), t("2024-01-25T00:00:00+05:30"));
    assert_eq!(c.bucket_end(Interval::D1, t("2024-01-25T00:00:00+05:30")), t("2024-01-25T15:30:00+05:30"));
    // Weeks start on Monday, local time.
    assert_eq!(c.align(Interval::W1, t("2024-01-25T12:00:00+05:30")), t("2024-01-22T00:00:00+05:30"));
    assert_eq!(c.bucket_end(Interval::W1, t("2024-01-22T00:00:00+05:30")), t("2024-01-29T00:00:00+05:30"));
}

#[test]
fn new_york_opens_at_9_30_local_on_both_sides_of_daylight_saving() {
    let c = nyse();
    // 2024-03-08 (Friday) is on EST (UTC-5); 2024-03-11 (Monday) on EDT (UTC-4).
    let friday = t("2024-03-08T14:30:00Z");
    let monday = t("2024-03-11T13:30:00Z");
    assert_eq!(c.align(Interval::M1, friday), friday);
    assert_eq!(c.align(Interval::M1, monday), monday);
    assert_eq!(c.align(Interval::H1, t("2024-03-11T14:00:00Z")), monday);
    // The last minute of Friday is followed by Monday's open, an hour earlier in UTC.
    assert_eq!(c.next_bucket(Interval::M1, t("2024-03-08T20:59:00Z")), monday);
    // The daily bar of Monday opens at local midnight (04:00 UTC on EDT) and ends at 16:00 local.
    assert_eq!(c.align(Interval::D1, monday), t("2024-03-11T00:00:00-04:00"));
    assert_eq!(c.bucket_end(Interval::D1, t("2024-03-11T00:00:00-04:00")), t("2024-03-11T16:00:00-04:00"));
    // And back in November (2024-11-01 on EDT, 2024-11-04 on EST).
    assert_eq!(c.next_bucket(Interval::M1, t("2024-11-01T19:59:00Z")), t("2024-11-04T14:30:00Z"));
}

#[test]
fn a_weekend_trade_on_a_session_calendar_still_gets_a_bucket_and_moves_on_to_monday() {
    let c = nse();
    let saturday = t("2024-01-27T11:00:00+05:30");
    let open = c.align(Interval::M1, saturday);
    assert_eq!(open, t("2024-01-27T11:00:00+05:30"));
    assert_eq!(c.next_bucket(Interval::M1, open), t("2024-01-29T09:15:00+05:30"));
}

#[test]
fn continuous_is_the_epoch_alignment() {
    let c = Calendar::Continuous;
    for iv in Interval::ALL {
        let ts = 1_704_067_200_000 + 13 * 3_600_000 + 59 * 60_000 + 59_999;
        let open = iv.align(ts);
        assert_eq!(c.align(iv, ts), open);
        assert_eq!(c.bucket_end(iv, open), open + iv.millis());
        assert_eq!(c.next_bucket(iv, open), open + iv.millis());
    }
}

#[test]
fn bad_sessions_are_refused_with_a_reason() {
    let spec = |tz: &str, open: &str, close: &str, days: &[&str], hol: &[&str]| SessionSpec {
        timezone: tz.into(),
        open: open.into(),
        close: close.into(),
        weekdays: days.iter().map(|d| d.to_string()).collect(),
        holidays: hol.iter().map(|d| d.to_string()).collect(),
        holidays_file: None,
    };
    let err = |s: SessionSpec| Session::try_from(s).expect_err("refused").to_string();
    assert!(err(spec("Mars/Olympus", "09:15", "15:30", &[], &[])).contains("time zone"));
    assert!(err(spec("Asia/Kolkata", "9h", "15:30", &[], &[])).contains("HH:MM"));
    assert!(err(spec("Asia/Kolkata", "15:30", "09:15", &[], &[])).contains("overnight"));
    assert!(err(spec("Asia/Kolkata", "09:15", "15:30", &["funday"], &[])).contains("weekday"));
    assert!(err(spec("Asia/Kolkata", "09:15", "15:30", &[], &["26/01/2024"])).contains("YYYY-MM-DD"));
    let mut missing = spec("Asia/Kolkata", "09:15", "15:30", &[], &[]);
    missing.holidays_file = Some("/nonexistent/holidays.txt".into());
    assert!(err(missing).contains("holidays file"));
}

#[test]
fn holidays_come_from_a_file_too() {
    let dir = std::env::temp_dir().join(format!("cc-holidays-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("nse.txt");
    std::fs::write(&path, "# NSE 2024\n2024-01-26  # Republic Day\n\n2024-03-08\n").expect("write");
    let spec = SessionSpec {
        timezone: "Asia/Kolkata".into(),
        open: "09:15".into(),
        close: "15:30".into(),
        weekdays: Vec::new(),
        holidays: Vec::new(),
        holidays_file: Some(path.to_string_lossy().into_owned()),
    };
    let c = Calendar::Session(Arc::new(Session::try_from(spec).expect("valid")));
    assert_eq!(c.next_bucket(Interval::D1, t("2024-03-07T00:00:00+05:30")), t("2024-03-11T00:00:00+05:30"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_session_to_midnight_every_day_has_a_bucket_at_every_hour() {
    let spec = SessionSpec {
        timezone: "Asia/Kolkata".into(),
        open: "00:00".into(),
        close: "24:00".into(),
        weekdays: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].map(String::from).to_vec(),
        holidays: Vec::new(),
        holidays_file: None,
    };
    let c = Calendar::Session(Arc::new(Session::try_from(spec).expect("valid")));
    let late = t("2024-01-27T23:59:30+05:30"); // a Saturday
    assert_eq!(c.align(Interval::M1, late), t("2024-01-27T23:59:00+05:30"));
    assert_eq!(c.next_bucket(Interval::M1, t("2024-01-27T23:59:00+05:30")), t("2024-01-28T00:00:00+05:30"));
    assert_eq!(c.bucket_end(Interval::D1, t("2024-01-27T00:00:00+05:30")), t("2024-01-28T00:00:00+05:30"));
}

#[test]
fn a_session_is_shown_to_clients_as_configured() {
    let Calendar::Session(s) = nse() else { panic!("a session") };
    let v = s.view();
    assert_eq!((v.timezone.as_str(), v.open.as_str(), v.close.as_str()), ("Asia/Kolkata", "09:15", "15:30"));
    assert_eq!(v.weekdays, ["mon", "tue", "wed", "thu", "fri"]);
    assert_eq!(v.holidays, ["2024-01-26"]);
}
