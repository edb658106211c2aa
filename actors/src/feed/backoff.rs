//! Capped exponential backoff with jitter, reset after a healthy connection.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Delays of `initial * 2^n`, capped, each scaled by a random factor in [0.5, 1.0] so that many feeds
/// that lost the same upstream do not reconnect in lockstep.
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    rng: SmallRng,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max, attempt: 0, rng: SmallRng::from_os_rng() }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.initial.saturating_mul(1u32 << self.attempt.min(20));
        self.attempt = self.attempt.saturating_add(1);
        exp.min(self.max).mul_f64(self.rng.random_range(0.5..=1.0))
    }

    /// After a connection that stayed healthy: start again from `initial`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(125), Duration::from_secs(60));
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(62) && delays[0] <= Duration::from_millis(125));
        assert!(delays[3] >= Duration::from_millis(500) && delays[3] <= Duration::from_millis(1000));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(60)));
        assert!(delays[11] >= Duration::from_secs(30), "capped at 60 s, jittered down to at most half");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(125));
    }
}
