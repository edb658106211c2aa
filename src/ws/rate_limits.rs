//! Per-client limits: a token bucket for message rate and a window counting error replies.
//!
//! Their time is tokio's clock (`tokio::time::Instant`), as for the sessions that use them: tests can pause and
//! advance it (`tokio::time::pause`); unpaused it is the monotonic clock std's `Instant` reads.

use std::time::Duration;

use tokio::time::Instant;

/// Allows `rate` messages per second on average, with bursts of up to `rate`.
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32) -> TokenBucket {
        TokenBucket { rate: rate as f64, tokens: rate as f64, last: Instant::now() }
    }

    /// Whether the bucket would be full at `now` (its owner may then be forgotten).
    pub fn is_full(&self, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.last).as_secs_f64() * self.rate >= self.rate
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts error replies in fixed windows; a client over the limit is closed.
pub struct ErrorWindow {
    limit: u32,
    window: Duration,
    start: Instant,
    count: u32,
}

impl ErrorWindow {
    pub fn new(limit: u32, window: Duration) -> ErrorWindow {
        ErrorWindow { limit, window, start: Instant::now(), count: 0 }
    }

    /// Records one error; returns true when the client has now gone over the limit.
    pub fn strike(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.start) >= self.window {
            self.start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count > self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_rate_and_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(50);
        let burst = (0..100).filter(|_| b.try_take(t0)).count();
        assert_eq!(burst, 50);
        assert!(!b.try_take(t0));
        assert!(b.try_take(t0 + Duration::from_millis(25)), "one token refills every 20 ms");
        let later = (0..100).filter(|_| b.try_take(t0 + Duration::from_secs(10))).count();
        assert_eq!(later, 50, "never more than one burst");
    }

    #[test]
    fn error_window_resets() {
        let t0 = Instant::now();
        let mut w = ErrorWindow::new(3, Duration::from_secs(10));
        assert!(!(0..3).any(|_| w.strike(t0)));
        assert!(w.strike(t0));
        assert!(!w.strike(t0 + Duration::from_secs(11)));
    }
}
