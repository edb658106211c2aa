//! Bars rebuilt from `/api/v3/klines` after a gap in the trade stream that the trades endpoint could not
//! fill (too many missed trades, REST refused) or that lasted longer than the aggregator's grace window (a
//! long reconnect): the exchange's own bars replace what the gap left wrong.
//!
//! Only buckets that ended before the trade that revealed the gap are rebuilt, for each interval: a forming
//! kline would count trades that are still to come on the stream. So after a long gap the forming bar of a
//! coarse interval (the current hour, day) still lacks the gap's trades; its closed bars are exact.

use super::rest::RestClient;
use crate::feed::FeedError;
use crate::model::{resample, Bar, Interval, Symbol};

/// A gap longer than this is rebuilt even when every missed trade was fetched: the aggregator drops trades
/// older than its grace window (2 s by default), so those trades would be lost from the bars.
pub const FILL_ONLY_WITHIN_MS: i64 = 2_000;

/// Bars per interval a rebuild fetches at most (one REST page): longer gaps keep the older buckets as
/// they are.
pub const MAX_BARS_PER_INTERVAL: i64 = 1000;

/// Binance has klines for every interval candlecast builds except these, which are resampled from 1s.
fn from_seconds(iv: Interval) -> bool {
    matches!(iv, Interval::S5 | Interval::S15 | Interval::S30)
}

/// The closed bars of `intervals` for the trades between `from` (the last trade before the gap) and `to`
/// (the first after it), from klines. Intervals that fail are skipped and reported in the error list.
pub async fn rebuild(
    rest: &RestClient,
    symbol: &Symbol,
    intervals: &[Interval],
    from: i64,
    to: i64,
    now: i64,
) -> (Vec<Bar>, Vec<(Interval, FeedError)>) {
    let mut bars = Vec::new();
    let mut errors = Vec::new();
    // 1s klines, fetched once for every interval made of them (1s itself and those resampled from it).
    let seconds_range = intervals
        .iter()
        .filter(|iv| **iv == Interval::S1 || from_seconds(**iv))
        .filter_map(|iv| bucket_range(*iv, from, to))
        .reduce(|(s1, e1), (s2, e2)| (s1.min(s2), e1.max(e2)));
    let seconds = match seconds_range {
        Some((start, end)) => Some(rest.klines(symbol, Interval::S1, start, end, now).await),
        None => None,
    };
    for &iv in intervals {
        let Some((start, end)) = bucket_range(iv, from, to) else { continue };
        let fetched = match (&seconds, iv) {
            (Some(Ok(secs)), Interval::S1) => Ok(secs.clone()),
            (Some(Ok(secs)), iv) if from_seconds(iv) => Ok(resample(secs, iv)),
            (Some(Err(e)), iv) if iv == Interval::S1 || from_seconds(iv) => {
                Err(FeedError::Connect(format!("1s klines: {e}")))
            }
            _ => rest.klines(symbol, iv, start, end, now).await,
        };
        match fetched {
            Ok(rows) => {
                bars.extend(rows.into_iter().filter(|b| b.open_time >= start && b.close_time() <= end).map(|mut b| {
                    b.closed = true;
                    b
                }))
            }
            Err(e) => errors.push((iv, e)),
        }
    }
    (bars, errors)
}

/// Open times `[start, end)` of the buckets of `iv` to rebuild: from the one holding `from` up to (not
/// including) the one holding `to`, at most [`MAX_BARS_PER_INTERVAL`] of the newest.
pub fn bucket_range(iv: Interval, from: i64, to: i64) -> Option<(i64, i64)> {
    let end = iv.align(to);
    let start = iv.align(from).max(end - MAX_BARS_PER_INTERVAL * iv.millis());
    (start < end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_buckets_that_ended_before_the_gap_closed_are_rebuilt() {
        // Last trade at 10:00:01.5, next at 10:00:04.2 (ms of a day, for reading).
        let (from, to) = (36_001_500, 36_004_200);
        assert_eq!(bucket_range(Interval::S1, from, to), Some((36_001_000, 36_004_000)));
        assert_eq!(bucket_range(Interval::S5, from, to), None, "both in the 10:00:00 bucket");
        assert_eq!(bucket_range(Interval::M1, from, to), None);
        // A gap of two hours: capped to the newest 1000 one-second buckets.
        let to = from + 7_200_000;
        let (start, end) = bucket_range(Interval::S1, from, to).unwrap();
        assert_eq!(((end - start) / 1000, end), (1000, Interval::S1.align(to)));
        assert_eq!(bucket_range(Interval::H1, from, to), Some((36_000_000, 43_200_000)));
    }
}
