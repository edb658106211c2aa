//! What a report may hold: a served backtest over a million 1s bars must not keep (and send) a million
//! equity points or every one of its trades. The metrics are always computed over every bar; only the
//! lists are bounded.

use serde::Serialize;

use super::EquityPoint;

/// Caps on a report's lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReportLimits {
    /// Equity points kept (at least 2): the curve is downsampled beyond it, see [`downsample`].
    pub equity_points: usize,
    /// Trades and signals kept each: the first ones; the report says when some were cut.
    pub trades: usize,
}

impl ReportLimits {
    /// No caps: what a library caller running its own backtest gets.
    pub const NONE: ReportLimits = ReportLimits { equity_points: usize::MAX, trades: usize::MAX };
}

/// At most `max` points of `points` (at least 2 when there are 2): the first, the last, and for each of
/// `(max - 2) / 2` equal runs of the points between, its lowest and its highest point in time order. A
/// chart of the result shows every swing the full curve has (including its global extremes, hence its
/// drawdown) at a resolution of one run.
pub fn downsample(points: &[EquityPoint], max: usize) -> Vec<EquityPoint> {
    let max = max.max(2);
    if points.len() <= max {
        return points.to_vec();
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    let inner = &points[1..points.len() - 1];
    let buckets = (max - 2) / 2;
    let mut out = Vec::with_capacity(max);
    out.push(first);
    if buckets > 0 {
        let size = inner.len().div_ceil(buckets);
        for run in inner.chunks(size) {
            let (mut lo, mut hi) = (0, 0);
            for (i, p) in run.iter().enumerate() {
                if p.equity < run[lo].equity {
                    lo = i;
                }
                if p.equity > run[hi].equity {
                    hi = i;
                }
            }
            out.push(run[lo.min(hi)]);
            if lo != hi {
                out.push(run[lo.max(hi)]);
            }
        }
    }
    out.push(last);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(n: usize) -> Vec<EquityPoint> {
        // A deterministic wiggle with one deep trough and one high peak inside.
        (0..n)
            .map(|i| {
                let x = i as f64;
                let mut equity = 10_000.0 + 50.0 * (x / 37.0).sin() + 20.0 * (x / 5.0).cos();
                if i == n / 3 {
                    equity = 1.0;
                }
                if i == 2 * n / 3 {
                    equity = 1e9;
                }
                EquityPoint { time: i as i64 * 1000, equity }
            })
            .collect()
    }

    #[test]
    fn keeps_at_most_max_points_with_first_last_and_extremes_in_order() {
        for (n, max) in [(1_000_000, 2_000), (86_400, 2_000), (2_001, 2_000), (10, 3), (10, 4), (5, 2)] {
            let points = walk(n);
            let out = downsample(&points, max);
            assert!(out.len() <= max, "{n} -> {} > {max}", out.len());
            assert_eq!(out[0], points[0]);
            assert_eq!(out[out.len() - 1], points[n - 1]);
            assert!(out.windows(2).all(|w| w[0].time < w[1].time), "time order");
            if max >= 4 {
                assert!(out.iter().any(|p| p.equity == 1.0) && out.iter().any(|p| p.equity == 1e9), "{n}/{max}");
            }
        }
        let short = walk(100);
        assert_eq!(downsample(&short, 2_000), short, "short curves are untouched");
        assert!(downsample(&[], 2_000).is_empty());
    }
}
