//! A fixed-length sliding window keeping the mean and the sum of squared deviations (for SMA and
//! Bollinger Bands) in O(1) per value.
//!
//! Plain running sums lose precision: `Σx²/n - mean²` cancels every digit when the spread is small
//! next to the price (a BTC price of 60,000 with a spread of 1), and sums drift over millions of
//! updates. So the sums are of *shifted* values `x - k`, with `k` a recent value of the series, which
//! keeps the terms small (constant prices give exactly 0), and every time the ring wraps (once per
//! `period` values, O(1) amortised) `k` is moved to the current mean and the sums are recomputed from
//! the stored values, so rounding never accumulates beyond one period.

/// Mean and M2 (sum of squared deviations from the mean) of a full window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Moments {
    pub mean: f64,
    pub m2: f64,
}

impl Moments {
    /// Population variance of `n` values (M2 / n), never negative despite rounding.
    pub fn population_variance(&self, n: usize) -> f64 {
        (self.m2 / n as f64).max(0.0)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Window {
    period: usize,
    /// The values, oldest at `head` once the window is full.
    buf: Vec<f64>,
    head: usize,
    /// The shift, and Σ(x - k), Σ(x - k)² over the window.
    k: f64,
    s1: f64,
    s2: f64,
}

impl Window {
    pub fn new(period: usize) -> Self {
        debug_assert!(period >= 1);
        Window { period, buf: Vec::with_capacity(period), head: 0, k: 0.0, s1: 0.0, s2: 0.0 }
    }

    pub fn period(&self) -> usize {
        self.period
    }

    /// The window's moments after pushing `x`, if it is then full; changes nothing.
    #[inline]
    pub fn peek(&self, x: f64) -> Option<Moments> {
        let (k, s1, s2) = self.next(x);
        (self.buf.len() + 1 >= self.period).then(|| self.moments(k, s1, s2))
    }

    /// Pushes `x` and returns the moments of the window if it is full.
    #[inline]
    pub fn push(&mut self, x: f64) -> Option<Moments> {
        let out = self.peek(x);
        let (k, s1, s2) = self.next(x);
        (self.k, self.s1, self.s2) = (k, s1, s2);
        if self.buf.len() < self.period {
            self.buf.push(x);
        } else {
            self.buf[self.head] = x;
            self.head += 1;
            if self.head == self.period {
                self.head = 0;
                self.resync();
            }
        }
        // The value returned is the incremental one, exactly what `peek` gave; the resync only
        // affects later values. That keeps `preview == update` bit for bit.
        out
    }

    /// (shift, Σ(x-k), Σ(x-k)²) after pushing `x`.
    #[inline]
    fn next(&self, x: f64) -> (f64, f64, f64) {
        // The first value becomes the shift, so the sums start at exactly 0.
        let k = if self.buf.is_empty() { x } else { self.k };
        let d = x - k;
        if self.buf.len() < self.period {
            (k, self.s1 + d, self.s2 + d * d)
        } else {
            let old = self.buf[self.head] - k;
            (k, self.s1 + (d - old), self.s2 + (d * d - old * old))
        }
    }

    #[inline]
    fn moments(&self, k: f64, s1: f64, s2: f64) -> Moments {
        let n = self.period as f64;
        Moments { mean: k + s1 / n, m2: s2 - s1 * s1 / n }
    }

    /// Moves the shift to the window's mean and recomputes the sums from the stored values.
    fn resync(&mut self) {
        let n = self.buf.len() as f64;
        let mean = self.buf.iter().sum::<f64>() / n;
        self.k = mean;
        self.s1 = self.buf.iter().map(|v| v - mean).sum();
        self.s2 = self.buf.iter().map(|v| (v - mean) * (v - mean)).sum();
    }

    pub fn reset(&mut self) {
        *self = Window::new(self.period);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn constant_values_have_exactly_zero_variance() {
        let mut w = Window::new(7);
        for _ in 0..50 {
            if let Some(m) = w.push(60_123.45) {
                assert_eq!((m.mean, m.m2), (60_123.45, 0.0));
            }
        }
    }

    proptest! {
        #[test]
        fn matches_two_pass_statistics(values in prop::collection::vec(1.0f64..1e5, 1..300), period in 1usize..40) {
            let mut w = Window::new(period);
            for (i, &x) in values.iter().enumerate() {
                let peeked = w.peek(x);
                let got = w.push(x);
                prop_assert_eq!(peeked, got);
                if i + 1 < period {
                    prop_assert!(got.is_none());
                    continue;
                }
                let slice = &values[i + 1 - period..=i];
                let mean = slice.iter().sum::<f64>() / period as f64;
                let var = slice.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / period as f64;
                let m = got.unwrap();
                prop_assert!((m.mean - mean).abs() <= 1e-9 * mean.abs());
                // Rounding is relative to the squared spread of the values seen since the last resync
                // (at most two windows back), not to the squared price.
                let recent = &values[(i + 1).saturating_sub(2 * period)..=i];
                let hi = recent.iter().cloned().fold(f64::MIN, f64::max);
                let lo = recent.iter().cloned().fold(f64::MAX, f64::min);
                let got = m.population_variance(period);
                let tol = 1e-12 * (hi - lo) * (hi - lo) + 1e-20 * mean * mean;
                prop_assert!((got - var).abs() <= tol, "{} vs {}", got, var);
            }
        }
    }
}
