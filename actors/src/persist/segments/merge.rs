//! Size-tiered merging: a run of adjacent segments (by rank) of similar size becomes one, with each bar's
//! newest version only and bars below their series' retention floor cut. Adjacent, so that the merged
//! segment can take the newest rank of its inputs and keep its place in write order. The cost of a merge
//! is then proportional to the run, not to the store.
//!
//! The merge reads and writes without the writer lock (writes and readers go on); only its installation
//! (one index swap) takes it. Its segment names the segments it replaces, so that a crash after it was
//! written and before they were deleted leaves nothing twice: open deletes them.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::index::SeriesKey;
use super::segment::{SegmentFile, SegmentWriter};
use super::store::{Shared, Writer};
use crate::persist::StoreError;

/// Segments merged at once.
const FAN: usize = 4;
/// Segments in a run may differ in size by this factor at most.
const SIMILAR: u64 = 4;
/// Beyond this many segments, the smallest run is merged whatever the sizes (it bounds a read's fan-out).
const MAX_SEGMENTS: usize = 24;

/// The newest run of [`FAN`] adjacent segments of similar size; or, past [`MAX_SEGMENTS`], the run of
/// least bytes.
fn plan(w: &Writer) -> Option<Vec<Arc<SegmentFile>>> {
    let mut segs: Vec<&Arc<SegmentFile>> = w.segments.values().collect();
    segs.sort_by_key(|s| s.rank);
    if segs.len() < FAN {
        return None;
    }
    let similar = segs.windows(FAN).rev().find(|run| {
        let (min, max) = run.iter().fold((u64::MAX, 0), |(lo, hi), s| (lo.min(s.bytes), hi.max(s.bytes)));
        max <= min.max(1).saturating_mul(SIMILAR)
    });
    let run = match similar {
        Some(run) => run,
        None if segs.len() > MAX_SEGMENTS => {
            segs.windows(FAN).min_by_key(|run| run.iter().map(|s| s.bytes).sum::<u64>())?
        }
        None => return None,
    };
    Some(run.iter().map(|s| Arc::clone(s)).collect())
}

/// One merge if one is due; `Ok(false)` if none is.
pub(super) fn merge_once(shared: &Shared) -> Result<bool, StoreError> {
    let (inputs, id, index) = {
        let mut w = shared.writer();
        shared.check_open()?;
        let Some(inputs) = plan(&w) else { return Ok(false) };
        let id = w.next_id;
        w.next_id += 1;
        (inputs, id, shared.index())
    };
    let ids: HashSet<u32> = inputs.iter().map(|s| s.id).collect();
    let rank = inputs.iter().map(|s| s.rank).max().unwrap_or(0);
    let mut keys: Vec<SeriesKey> = index
        .series
        .iter()
        .filter(|(_, chunks)| chunks.iter().any(|c| ids.contains(&c.seg.id)))
        .map(|(k, _)| *k)
        .collect();
    keys.sort_unstable();
    let mut out = SegmentWriter::create(&shared.dir, id)?;
    for key in keys {
        let floor = index.floor(key);
        let mut bars = BTreeMap::new();
        // Oldest rank first: a later version of a bar replaces an earlier one.
        for c in index.series[&key].iter().filter(|c| ids.contains(&c.seg.id) && c.last >= floor) {
            bars.extend(c.read()?.into_iter().filter(|(t, _)| *t >= floor));
        }
        if !bars.is_empty() {
            out.add(key, &bars.into_iter().collect::<Vec<_>>())?;
        }
    }
    let mut replaces: Vec<u32> = ids.into_iter().collect();
    replaces.sort_unstable();
    let loaded = out.finish(rank, &replaces)?;
    let mut w = shared.writer();
    shared.install(&mut w, loaded, &inputs, false);
    Ok(true)
}

/// Starts merging on a background thread if a merge is due and none runs (after a rotation).
pub(super) fn spawn_if_due(shared: &Arc<Shared>) {
    if !shared.options.background_merge || plan(&shared.writer()).is_none() {
        return;
    }
    if shared.merging.swap(true, Ordering::AcqRel) {
        return;
    }
    let s = shared.clone();
    let started = std::thread::Builder::new().name("segment-merge".into()).spawn(move || {
        crate::background::lower_this_thread(crate::background::Priority::Low);
        while !s.closed.load(Ordering::Acquire) {
            match merge_once(&s) {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "segment merge failed; retried after the next rotation");
                    break;
                }
            }
        }
        s.merging.store(false, Ordering::Release);
    });
    if let Err(e) = started {
        tracing::warn!(error = %e, "cannot start a segment merge thread");
        shared.merging.store(false, Ordering::Release);
    }
}
