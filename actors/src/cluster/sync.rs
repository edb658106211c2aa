//! Following one symbol from another node without gaps or duplicates (pure logic, no I/O).
//!
//! Messages are numbered per sending node. While the numbers follow on, each message is applied. A gap (a
//! message lost, for example while Redis was down), a new sending node (a lease takeover) or a reconnect
//! starts a resync: messages are buffered, the today-cache is read with its watermark (the last message
//! whose bars it holds), its bars are applied, then the buffered messages after the watermark. Reading
//! after subscribing is what closes the race between the cache and the live stream. When the cache is
//! behind the buffered messages (it is written every `cache_flush_ms`), it is read again. When nothing was
//! buffered, the cache may still be behind a message sent just before the subscription: the first message
//! after the sync then skips numbers, and the cache is read again too, but that is not a message lost on
//! the stream ([`ResyncCause::CacheBehind`], not [`ResyncCause::Gap`]).
//!
//! Each applied message is expanded by the coarse forming bars it lets this node derive ([`Forming`]), from
//! the state the messages applied so far (and the cache, when a resync takes it) left.

use std::collections::VecDeque;

use super::derive::Forming;
use super::wire::Batch;
use crate::model::Bar;

/// Messages kept while a resync waits for the cache; older ones are dropped (the cache has them).
const MAX_BUFFERED: usize = 20_000;

/// The today-cache of one symbol as read: its bars and its watermark (sending node, sequence number).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub bars: Vec<Bar>,
    pub watermark: Option<(String, u64)>,
}

/// What to do with a received message.
#[derive(Debug, PartialEq)]
pub enum OnMessage {
    /// Apply these bars, in order.
    Apply(Vec<Bar>),
    /// Already applied (or older than the cache): ignore.
    Duplicate,
    /// Kept until the resync under way finishes.
    Buffered,
    /// A resync must start (read the cache).
    Resync(ResyncCause),
}

/// Why a resync starts.
#[derive(Debug, PartialEq, Clone, Copy)]
pub enum ResyncCause {
    /// The live stream skipped numbers after this node had received the one before: a message was lost
    /// (Redis was down, a connection dropped).
    Gap,
    /// The first message after a sync skipped numbers past the cache's watermark, nothing having been
    /// received since: the cache was read before it held what was sent just before this node subscribed.
    CacheBehind,
    /// Another node sends this symbol's messages (a lease takeover).
    NewSender,
}

/// What to do with a cache snapshot.
#[derive(Debug, PartialEq)]
pub enum OnSnapshot {
    /// Apply these bars in order; the symbol is live again. `complete` is false when the cache never
    /// caught up and what was missed in between may be missing.
    Apply { bars: Vec<Bar>, complete: bool },
    /// The cache is behind the live stream: read it again shortly.
    Retry,
}

enum State {
    /// Applying messages as they come: the node and number of the last one (none before the first).
    /// `received`: that number is one this node received (not only the cache's watermark).
    Live { source: Option<(String, u64)>, received: bool },
    /// Waiting for a snapshot; `previous` is where the live stream stood before (what this node's
    /// aggregator already holds), `attempts` counts snapshots that were behind. `reload`: the sender
    /// rewrote the cache, so it is taken even at the number already applied.
    Syncing { buffer: VecDeque<Batch>, attempts: u32, previous: Option<(String, u64)>, reload: bool },
}

/// See the module documentation.
pub struct SymbolSync {
    state: State,
    max_attempts: u32,
    /// What the derived forming bars are derived from.
    forming: Forming,
    /// Since [`SymbolSync::take_derived`]: forming bars derived, and messages whose derived bars were left
    /// out (this node's state was not the sender's).
    derived: u64,
    stale: u64,
}

impl SymbolSync {
    /// Starts syncing (the caller reads the cache next). After `max_attempts` snapshots that are behind,
    /// the next one is taken as it is.
    pub fn new(max_attempts: u32) -> SymbolSync {
        SymbolSync {
            state: State::Syncing { buffer: VecDeque::new(), attempts: 0, previous: None, reload: false },
            max_attempts: max_attempts.max(1),
            forming: Forming::default(),
            derived: 0,
            stale: 0,
        }
    }

    /// Forming bars derived, and messages whose derived bars were left out, since the last call.
    pub fn take_derived(&mut self) -> (u64, u64) {
        (std::mem::take(&mut self.derived), std::mem::take(&mut self.stale))
    }

    /// The bars to apply for `batch`: its own, then those it lets this node derive.
    fn expand(&mut self, batch: Batch) -> Vec<Bar> {
        let sent = batch.bars.len();
        let (bars, in_step) = self.forming.apply(batch.bars, batch.derive);
        self.derived += (bars.len() - sent) as u64;
        self.stale += u64::from(!in_step);
        bars
    }

    pub fn is_syncing(&self) -> bool {
        matches!(self.state, State::Syncing { .. })
    }

    /// Starts buffering for a resync (the caller reads the cache next); no-op while one is under way.
    pub fn start_resync(&mut self) {
        if let State::Live { source, .. } = &mut self.state {
            let previous = source.take();
            self.state = State::Syncing { buffer: VecDeque::new(), attempts: 0, previous, reload: false };
        }
    }

    /// Starts a resync after the sender rewrote the cache (a rewrite notice): the cache then holds bars no
    /// message carried (its stored backfill), so it is applied even when its watermark is the number
    /// already applied. During a resync under way, that resync takes the cache the same way.
    pub fn start_reload(&mut self) {
        self.start_resync();
        if let State::Syncing { reload, .. } = &mut self.state {
            *reload = true;
        }
    }

    pub fn on_message(&mut self, batch: Batch) -> OnMessage {
        match &mut self.state {
            State::Live { source: Some((node, last)), received } if *node == batch.node => {
                if batch.seq <= *last {
                    return OnMessage::Duplicate;
                }
                if batch.seq == *last + 1 {
                    *last = batch.seq;
                    *received = true;
                    return OnMessage::Apply(self.expand(batch));
                }
                let cause = if *received { ResyncCause::Gap } else { ResyncCause::CacheBehind };
                self.resync_with(batch);
                OnMessage::Resync(cause)
            }
            State::Live { source: Some(_), .. } => {
                self.resync_with(batch);
                OnMessage::Resync(ResyncCause::NewSender)
            }
            State::Live { source, received } => {
                *source = Some((batch.node.clone(), batch.seq));
                *received = true;
                OnMessage::Apply(self.expand(batch))
            }
            State::Syncing { buffer, .. } => {
                if buffer.len() >= MAX_BUFFERED {
                    buffer.pop_front();
                }
                buffer.push_back(batch);
                OnMessage::Buffered
            }
        }
    }

    /// From live to syncing, `batch` being the first message buffered.
    fn resync_with(&mut self, batch: Batch) {
        self.start_resync();
        if let State::Syncing { buffer, .. } = &mut self.state {
            buffer.push_back(batch);
        }
    }

    pub fn on_snapshot(&mut self, snapshot: Snapshot) -> OnSnapshot {
        let State::Syncing { buffer, attempts, previous, reload } = &mut self.state else {
            // A snapshot nobody waits for any more (a resync finished meanwhile): nothing to apply.
            return OnSnapshot::Apply { bars: Vec::new(), complete: true };
        };
        let Snapshot { bars: cached, watermark } = snapshot;
        // The node to follow: the newest sender, else the cache's writer, else the one followed before.
        // Messages of an older sender (from before a takeover) are stale.
        let Some(node) = buffer
            .back()
            .map(|b| &b.node)
            .or(watermark.as_ref().map(|w| &w.0))
            .or(previous.as_ref().map(|p| &p.0))
            .cloned()
        else {
            self.state = State::Live { source: None, received: false };
            self.forming.reset_from(&cached);
            return OnSnapshot::Apply { bars: cached, complete: true };
        };
        let of_node = |base: &Option<(String, u64)>| base.as_ref().filter(|(n, _)| *n == node).map(|(_, seq)| *seq);
        let (in_cache, applied) = (of_node(&watermark), of_node(previous));
        // Start from the cache when it is newer than what is already applied, else from what is applied.
        let use_cache = in_cache.is_some() && (in_cache > applied || (*reload && in_cache == applied));
        let base = if use_cache { in_cache } else { applied };
        let buffered: Vec<Batch> = std::mem::take(buffer).into_iter().filter(|b| b.node == node).collect();
        if let Some(base) = base {
            let mut newer = buffered.iter().filter(|b| b.seq > base);
            if newer.clone().enumerate().all(|(i, b)| b.seq == base + 1 + i as u64) {
                let last = newer.next_back().map_or(base, |b| b.seq);
                // The number was received unless it is only the cache's watermark.
                let received = last != base || !use_cache;
                let bars = if use_cache { cached } else { Vec::new() };
                self.state = State::Live { source: Some((node, last)), received };
                let newer = buffered.into_iter().filter(|b| b.seq > base);
                return OnSnapshot::Apply { bars: self.take_up(use_cache, bars, newer), complete: true };
            }
        }
        *attempts += 1;
        if *attempts < self.max_attempts {
            *buffer = buffered.into();
            return OnSnapshot::Retry;
        }
        // The cache never caught up: take it (unless older than what is applied) and every buffered
        // message after what is known, as they are.
        let take_cache = use_cache || applied.is_none();
        let bars = if take_cache { cached } else { Vec::new() };
        let from = base.unwrap_or(0);
        let newest = buffered.iter().map(|b| b.seq).max();
        let received = newest.is_some() || !take_cache;
        let last = newest.map_or(base, Some);
        self.state = State::Live { source: last.map(|seq| (node, seq)), received };
        let newer = buffered.into_iter().filter(|b| b.seq > from);
        OnSnapshot::Apply { bars: self.take_up(take_cache, bars, newer), complete: false }
    }

    /// The bars of a resync: the cache's (`cached`, when it is taken: derivation starts from it), then each
    /// buffered message's, expanded.
    fn take_up(&mut self, from_cache: bool, mut bars: Vec<Bar>, newer: impl Iterator<Item = Batch>) -> Vec<Bar> {
        if from_cache {
            self.forming.reset_from(&bars);
        }
        for batch in newer {
            let expanded = self.expand(batch);
            bars.extend(expanded);
        }
        bars
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Interval;

    fn bar(minute: i64) -> Bar {
        Bar::from_trade("BTCUSDT".into(), Interval::M1, minute * 60_000, 100.0 + minute as f64, 1.0)
    }

    fn batch(node: &str, seq: u64) -> Batch {
        Batch { node: node.into(), seq, bars: vec![bar(seq as i64)], rewritten: false, derive: Default::default() }
    }

    fn minutes(bars: &[Bar]) -> Vec<i64> {
        bars.iter().map(|b| b.open_time / 60_000).collect()
    }

    fn live(node: &str, seq: u64) -> SymbolSync {
        let mut s = SymbolSync::new(3);
        let snap = Snapshot { bars: vec![], watermark: Some((node.into(), seq)) };
        assert_eq!(s.on_snapshot(snap), OnSnapshot::Apply { bars: vec![], complete: true });
        s
    }

    #[test]
    fn consecutive_messages_apply_and_repeats_are_ignored() {
        let mut s = live("a", 4);
        assert_eq!(s.on_message(batch("a", 5)), OnMessage::Apply(vec![bar(5)]));
        assert_eq!(s.on_message(batch("a", 6)), OnMessage::Apply(vec![bar(6)]));
        assert_eq!(s.on_message(batch("a", 6)), OnMessage::Duplicate);
        assert_eq!(s.on_message(batch("a", 3)), OnMessage::Duplicate);
    }

    #[test]
    fn the_cache_then_the_buffered_messages_after_its_watermark_make_no_gap_and_no_duplicate() {
        let mut s = SymbolSync::new(3);
        // Subscribed first: messages 7..=9 arrive while the cache is read; the cache holds up to 8.
        for seq in 7..=9 {
            assert_eq!(s.on_message(batch("a", seq)), OnMessage::Buffered);
        }
        let cached = (1..=8).map(bar).collect();
        let out = s.on_snapshot(Snapshot { bars: cached, watermark: Some(("a".into(), 8)) });
        let OnSnapshot::Apply { bars, complete: true } = out else { panic!("{out:?}") };
        assert_eq!(minutes(&bars), (1..=9).collect::<Vec<_>>());
        assert_eq!(s.on_message(batch("a", 10)), OnMessage::Apply(vec![bar(10)]));
    }

    #[test]
    fn a_cache_behind_the_stream_is_read_again_until_it_catches_up() {
        let mut s = SymbolSync::new(5);
        s.on_message(batch("a", 12));
        s.on_message(batch("a", 13));
        // The cache was last written at 10: message 11 would be missing.
        assert_eq!(
            s.on_snapshot(Snapshot { bars: vec![bar(10)], watermark: Some(("a".into(), 10)) }),
            OnSnapshot::Retry
        );
        assert_eq!(s.on_message(batch("a", 14)), OnMessage::Buffered);
        let out = s.on_snapshot(Snapshot { bars: vec![bar(11), bar(12)], watermark: Some(("a".into(), 12)) });
        let OnSnapshot::Apply { bars, complete: true } = out else { panic!("{out:?}") };
        assert_eq!(minutes(&bars), vec![11, 12, 13, 14]);
    }

    #[test]
    fn a_gap_starts_a_resync_that_fills_it_from_the_cache() {
        let mut s = live("a", 1);
        assert_eq!(s.on_message(batch("a", 2)), OnMessage::Apply(vec![bar(2)]));
        assert_eq!(s.on_message(batch("a", 5)), OnMessage::Resync(ResyncCause::Gap));
        let out = s.on_snapshot(Snapshot { bars: vec![bar(3), bar(4)], watermark: Some(("a".into(), 4)) });
        let OnSnapshot::Apply { bars, complete: true } = out else { panic!("{out:?}") };
        assert_eq!(minutes(&bars), vec![3, 4, 5]);
    }

    /// The cache is written every `cache_flush_ms`: read just after subscribing, it may lack a message sent
    /// just before. The first message then skips numbers; that is the cache behind, not a message lost.
    #[test]
    fn a_first_message_past_the_watermark_of_a_sync_without_messages_is_the_cache_behind_not_a_gap() {
        let mut s = live("a", 1);
        assert_eq!(s.on_message(batch("a", 3)), OnMessage::Resync(ResyncCause::CacheBehind));
        let out = s.on_snapshot(Snapshot { bars: vec![bar(1), bar(2)], watermark: Some(("a".into(), 2)) });
        let OnSnapshot::Apply { bars, complete: true } = out else { panic!("{out:?}") };
        assert_eq!(minutes(&bars), vec![1, 2, 3]);
        // From here on the numbers are the stream's own: a skip is a gap.
        assert_eq!(s.on_message(batch("a", 4)), OnMessage::Apply(vec![bar(4)]));
        assert_eq!(s.on_message(batch("a", 6)), OnMessage::Resync(ResyncCause::Gap));
    }

    #[test]
    fn a_new_sending_node_waits_for_its_own_watermark_and_drops_the_old_nodes_stragglers() {
        let mut s = live("a", 9);
        assert_eq!(s.on_message(batch("b", 1)), OnMessage::Resync(ResyncCause::NewSender));
        s.on_message(batch("a", 10));
        s.on_message(batch("b", 2));
        // Still node a's watermark: b's first messages could be missing.
        assert_eq!(s.on_snapshot(Snapshot { bars: vec![], watermark: Some(("a".into(), 10)) }), OnSnapshot::Retry);
        let out = s.on_snapshot(Snapshot { bars: vec![bar(1)], watermark: Some(("b".into(), 1)) });
        let OnSnapshot::Apply { bars, complete: true } = out else { panic!("{out:?}") };
        assert_eq!(minutes(&bars), vec![1, 2]);
        assert_eq!(
            s.on_message(batch("a", 11)),
            OnMessage::Resync(ResyncCause::NewSender),
            "node a is not the source any more"
        );
    }

    #[test]
    fn after_the_last_attempt_the_cache_and_the_buffer_are_taken_as_they_are() {
        let mut s = SymbolSync::new(2);
        s.on_message(batch("a", 5));
        assert_eq!(s.on_snapshot(Snapshot { bars: vec![], watermark: None }), OnSnapshot::Retry);
        let out = s.on_snapshot(Snapshot { bars: vec![bar(1)], watermark: None });
        assert_eq!(out, OnSnapshot::Apply { bars: vec![bar(1), bar(5)], complete: false });
        assert_eq!(s.on_message(batch("a", 6)), OnMessage::Apply(vec![bar(6)]));
    }

    #[test]
    fn a_reconnect_to_an_empty_cache_keeps_the_last_number_so_the_next_message_shows_the_gap() {
        let mut s = live("a", 5);
        s.start_resync();
        assert_eq!(s.on_snapshot(Snapshot::default()), OnSnapshot::Apply { bars: vec![], complete: true });
        assert_eq!(s.on_message(batch("a", 6)), OnMessage::Apply(vec![bar(6)]));
        assert_eq!(s.on_message(batch("a", 9)), OnMessage::Resync(ResyncCause::Gap));
    }

    #[test]
    fn a_cache_older_than_what_was_applied_is_not_applied_again() {
        let mut s = live("a", 9);
        s.start_resync();
        s.on_message(batch("a", 10));
        let out = s.on_snapshot(Snapshot { bars: vec![bar(3)], watermark: Some(("a".into(), 7)) });
        assert_eq!(out, OnSnapshot::Apply { bars: vec![bar(10)], complete: true });
        assert_eq!(s.on_message(batch("a", 11)), OnMessage::Apply(vec![bar(11)]));
    }

    #[test]
    fn without_messages_the_watermark_becomes_the_baseline() {
        let mut s = SymbolSync::new(1);
        assert_eq!(
            s.on_snapshot(Snapshot { bars: vec![bar(1)], watermark: Some(("a".into(), 3)) }),
            OnSnapshot::Apply { bars: vec![bar(1)], complete: true }
        );
        assert_eq!(s.on_message(batch("a", 5)), OnMessage::Resync(ResyncCause::CacheBehind));
        let mut fresh = SymbolSync::new(1);
        fresh.on_snapshot(Snapshot::default());
        assert_eq!(
            fresh.on_message(batch("a", 5)),
            OnMessage::Apply(vec![bar(5)]),
            "no cache: the first message is the baseline"
        );
    }

    #[test]
    fn a_rewritten_cache_is_applied_at_the_number_already_applied_and_a_plain_resync_skips_it() {
        let mut plain = live("a", 9);
        plain.start_resync();
        let out = plain.on_snapshot(Snapshot { bars: vec![bar(1), bar(9)], watermark: Some(("a".into(), 9)) });
        assert_eq!(out, OnSnapshot::Apply { bars: vec![], complete: true }, "nothing new at the same number");

        let mut reload = live("a", 9);
        reload.start_reload();
        reload.on_message(batch("a", 10));
        let out = reload.on_snapshot(Snapshot { bars: vec![bar(1), bar(9)], watermark: Some(("a".into(), 9)) });
        assert_eq!(out, OnSnapshot::Apply { bars: vec![bar(1), bar(9), bar(10)], complete: true });
        assert_eq!(reload.on_message(batch("a", 11)), OnMessage::Apply(vec![bar(11)]));
        // A cache older than what was applied stays unused even so.
        let mut behind = live("a", 9);
        behind.start_reload();
        let out = behind.on_snapshot(Snapshot { bars: vec![bar(1)], watermark: Some(("a".into(), 7)) });
        assert_eq!(out, OnSnapshot::Apply { bars: vec![], complete: true });
    }
}
