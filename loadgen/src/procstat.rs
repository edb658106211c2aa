//! Server RSS and CPU from /proc (Linux).

use std::time::Instant;

/// Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    /// User and system time together.
    pub cpu_ticks: u64,
    /// User time alone: the process's own code, apart from the kernel's work on its behalf (over loopback
    /// the kernel's share includes the receiving side of every send, which a real network puts elsewhere).
    pub user_ticks: u64,
    pub rss_kb: u64,
}

pub fn sample(pid: u32) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the state field.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(Sample { at: Instant::now(), cpu_ticks: utime + stime, user_ticks: utime, rss_kb })
}

/// CPU use between two samples, in percent of one core.
pub fn cpu_percent(a: &Sample, b: &Sample) -> f64 {
    let secs = b.at.duration_since(a.at).as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    (b.cpu_ticks.saturating_sub(a.cpu_ticks)) as f64 / TICKS_PER_SECOND / secs * 100.0
}

/// User CPU between two samples, in percent of one core.
pub fn user_percent(a: &Sample, b: &Sample) -> f64 {
    let secs = b.at.duration_since(a.at).as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    (b.user_ticks.saturating_sub(a.user_ticks)) as f64 / TICKS_PER_SECOND / secs * 100.0
}
