//! Forming bars a follower derives instead of receiving (frames of wire version 3).
//!
//! Every trade changes the forming bar of every interval, and sending all 16 of them with every update was
//! most of the cluster's traffic (about 12 MB/s at 10,000 symbols). A coarse forming bar follows from the 1s
//! bars: within its bucket its high and low are the extremes of its 1s bars, its close the newest 1s close,
//! its volume and trade count their sums. So a frame carries every closed bar and correction (never derived)
//! and the forming 1s bar, and the follower derives the coarse forming bars from the last state it knows of
//! each interval ([`Forming`]): same 1s bucket, the 1s bar's change is added; a new 1s bucket in the same
//! coarse bucket adds the new 1s bar; a new coarse bucket starts from the 1s bar.
//!
//! Exactness is checked at the source rather than hoped for: the publisher runs the same derivation on what
//! it sends ([`Forming::plan`]) and compares the result with the aggregator's own forming bars. An interval
//! whose derived bar equals the aggregator's bit for bit is named in the entry's mask and the follower
//! emits its derived bar; every other one is sent as it is (a float sum that rounds differently, a late
//! trade that corrected an earlier 1s bar, a symbol's first update, a session calendar). Every
//! [`REFRESH_MS`] all of a symbol's forming bars are sent as they are, so a follower whose state went
//! wrong heals.
//!
//! Both sides must derive from the same state: an entry carries a fingerprint of the state its derivation
//! reads (the 1s bar and the masked intervals), and a follower whose state differs (it synced from a cache
//! that a rewrite wrote, say) emits no derived bar for that entry and counts it (`derive_stale`).

use crate::model::{Bar, Interval};

/// How often a symbol's forming bars all go out as they are (then no interval is derived), in ms.
pub const REFRESH_MS: i64 = 60_000;

const SLOTS: usize = Interval::ALL.len();
/// Bits of the intervals that can be derived (all but 1s, index 0).
const DERIVABLE: u32 = ((1u64 << SLOTS) - 2) as u32;

/// What an entry tells its receiver to derive: the intervals (bit [`Interval::index`]) whose derived
/// forming bar equals the sender's, and the fingerprint of the state the derivation starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Derive {
    pub mask: u32,
    pub fingerprint: u32,
}

/// One symbol's derivation state: per interval, the newest bar known (forming, or the last closed).
#[derive(Debug, Clone, Default)]
pub struct Forming {
    last: [Option<Bar>; SLOTS],
    /// Intervals whose bar the 1s bars changed since [`Forming::take_touched`].
    touched: u32,
}

/// What the publisher sends of one symbol's updates.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub bars: Vec<Bar>,
    pub derive: Derive,
}

impl Forming {
    /// The publisher's side: which of `updates` (everything the aggregator published since the last frame,
    /// in order) to send, and which forming bars the receiver may derive. Updates the state as the
    /// receiver's [`Forming::apply`] will. `refresh`: send every forming bar as it is.
    pub fn plan(&mut self, updates: &[Bar], refresh: bool) -> Planned {
        // The aggregator's forming bar of each coarse interval after these updates, if it published one (a
        // later close of that bucket leaves no forming bar to show).
        let mut wanted: [Option<&Bar>; SLOTS] = Default::default();
        for bar in updates.iter().filter(|b| b.interval != Interval::S1) {
            let slot = &mut wanted[bar.interval.index()];
            if !bar.closed {
                *slot = Some(bar);
            } else if slot.is_some_and(|w| w.open_time <= bar.open_time) {
                *slot = None;
            }
        }
        let mut bars: Vec<Bar> = updates.iter().filter(|b| b.closed || b.interval == Interval::S1).cloned().collect();
        // The receiver checks the state it derives from; which slots that covers is known only at the end.
        let before = self.slot_hashes();
        self.touched = 0;
        for bar in &bars {
            self.fold(bar);
        }
        let touched = self.take_touched();
        let mut mask = 0;
        let mut explicit = Vec::new();
        for (i, want) in wanted.iter().enumerate() {
            let Some(want) = want else { continue };
            if !refresh && touched & (1 << i) != 0 && self.last[i].as_ref().is_some_and(|got| same(got, want)) {
                mask |= 1 << i;
            } else {
                explicit.push((*want).clone());
            }
        }
        for bar in &explicit {
            self.fold(bar);
        }
        self.touched = 0;
        bars.extend(explicit);
        // The fingerprint covers only what the receiver's derivation reads: the 1s bar and the masked slots.
        let fingerprint = if mask == 0 { 0 } else { combine(&before, mask) };
        Planned { bars, derive: Derive { mask, fingerprint } }
    }

    /// The receiver's side: the bars of one entry (sent by [`Forming::plan`]) and after them the derived
    /// forming bars its mask names, and whether this state was the one the sender derived from (if not, the
    /// derived bars are left out; the sent bars still apply).
    pub fn apply(&mut self, bars: Vec<Bar>, derive: Derive) -> (Vec<Bar>, bool) {
        let mask = derive.mask & DERIVABLE;
        let in_step = mask == 0 || combine(&self.slot_hashes(), mask) == derive.fingerprint;
        self.touched = 0;
        for bar in &bars {
            self.fold(bar);
        }
        self.touched = 0;
        let mut out = bars;
        if in_step {
            for (i, slot) in self.last.iter().enumerate() {
                if mask & (1 << i) == 0 {
                    continue;
                }
                // Built from checked bars, but sums of hostile values could still overflow: checked again.
                if let Some(bar) = slot.as_ref().filter(|b| !b.closed && b.invalid_reason().is_none()) {
                    out.push(bar.clone());
                }
            }
        }
        (out, in_step)
    }

    /// Starts from a cache snapshot (bars of several intervals, each ascending, the forming one last).
    pub fn reset_from(&mut self, bars: &[Bar]) {
        *self = Forming::default();
        for bar in bars {
            let slot = &mut self.last[bar.interval.index()];
            if slot.as_ref().is_none_or(|b| b.open_time <= bar.open_time) {
                *slot = Some(bar.clone());
            }
        }
    }

    fn take_touched(&mut self) -> u32 {
        std::mem::take(&mut self.touched)
    }

    /// Folds one sent bar into the state: a coarse bar replaces its slot's (unless older); a 1s bar also
    /// moves every coarse slot it can.
    fn fold(&mut self, bar: &Bar) {
        let i = bar.interval.index();
        if bar.interval != Interval::S1 {
            if self.last[i].as_ref().is_none_or(|b| b.open_time <= bar.open_time) {
                self.last[i] = Some(bar.clone());
                self.touched &= !(1 << i);
            }
            return;
        }
        let prev = match &self.last[0] {
            // A correction of an older 1s bar: what it changed of the coarse bars is sent as it is.
            Some(p) if p.open_time > bar.open_time => return,
            Some(p) if p.open_time == bar.open_time => Some(p.clone()),
            _ => None,
        };
        for j in 1..SLOTS {
            if self.step(j, prev.as_ref(), bar) {
                self.touched |= 1 << j;
            }
        }
        self.last[0] = Some(bar.clone());
    }

    /// Moves coarse slot `j` by the 1s bar `new` (`prev`: the state of that 1s bar already counted). Whether
    /// it moved.
    fn step(&mut self, j: usize, prev: Option<&Bar>, new: &Bar) -> bool {
        let interval = Interval::ALL[j];
        let Some(coarse) = self.last[j].as_mut() else { return false };
        let Some(open_time) = bucket(interval, new.open_time) else { return false };
        if coarse.open_time == open_time && !coarse.closed && coarse.trades > 0 {
            let (volume, trades) = match prev {
                Some(p) => (new.volume - p.volume, new.trades.checked_sub(p.trades)),
                None => (new.volume, Some(new.trades)),
            };
            let Some(trades) = trades.filter(|t| *t > 0 || prev.is_some()) else { return false };
            let Some(total) = coarse.trades.checked_add(trades) else { return false };
            if new.high > coarse.high {
                coarse.high = new.high;
            }
            if new.low < coarse.low {
                coarse.low = new.low;
            }
            if new.trades > 0 {
                coarse.close = new.close;
            }
            coarse.volume += volume;
            coarse.trades = total;
            true
        } else if coarse.open_time < open_time || (coarse.open_time == open_time && !coarse.closed) {
            // A new bucket (or one only flat so far): it starts from the 1s bar, as the aggregator's first
            // trade in a flat bar makes it that trade's bar.
            if new.trades == 0 {
                return false;
            }
            *coarse = Bar { interval, open_time, closed: false, ..new.clone() };
            true
        } else {
            false
        }
    }

    /// A hash of each slot: what the derivation reads of it, every bit of it.
    fn slot_hashes(&self) -> [u64; SLOTS] {
        std::array::from_fn(|i| match &self.last[i] {
            None => FNV_OFFSET,
            Some(b) => [
                b.open_time as u64,
                b.open.to_bits(),
                b.high.to_bits(),
                b.low.to_bits(),
                b.close.to_bits(),
                b.volume.to_bits(),
                b.trades,
                b.closed as u64,
            ]
            .into_iter()
            .fold(FNV_OFFSET ^ i as u64, fnv),
        })
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// One step of FNV-1a, a word at a time: a consistency check between two honest nodes, not a defence.
fn fnv(hash: u64, word: u64) -> u64 {
    (hash ^ word).wrapping_mul(0x0000_0100_0000_01b3)
}

/// The fingerprint of the 1s slot and the slots in `mask`.
fn combine(hashes: &[u64; SLOTS], mask: u32) -> u32 {
    let mask = mask | 1;
    let hash = (0..SLOTS).filter(|i| mask & (1 << i) != 0).fold(FNV_OFFSET, |h, i| fnv(h, hashes[i]));
    (hash ^ (hash >> 32)) as u32
}

/// Open time of `interval`'s bucket holding `ts`, if `ts` is a sane time (hostile input is normal input).
fn bucket(interval: Interval, ts: i64) -> Option<i64> {
    const YEAR_9999: i64 = 253_402_300_800_000;
    (0..YEAR_9999).contains(&ts).then(|| interval.align(ts))
}

/// Equal bit for bit (a derived volume that differs in its last bit is not the aggregator's).
fn same(a: &Bar, b: &Bar) -> bool {
    a.open_time == b.open_time
        && a.interval == b.interval
        && a.trades == b.trades
        && a.closed == b.closed
        && [a.open, a.high, a.low, a.close, a.volume]
            .iter()
            .zip([b.open, b.high, b.low, b.close, b.volume])
            .all(|(x, y)| x.to_bits() == y.to_bits())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::bars::{BarUpdate, TimeBars};
    use crate::model::{Side, Trade};

    /// 70 s before a whole hour: the runs cross 1s, 5s, 1m and 1h boundaries.
    const START: i64 = 472_222 * 3_600_000 - 70_000;

    fn trade(ts: i64, price: f64, qty: f64) -> Trade {
        Trade { symbol: "BTCUSDT".into(), price, qty, side: Side::Buy, exchange_ts: ts, received_ts: ts, id: 0 }
    }

    /// Newest bar per interval (a later one of the same open time replaces it): what a replica shows.
    fn fold_view(view: &mut BTreeMap<Interval, Bar>, bars: &[Bar]) {
        for bar in bars {
            if view.get(&bar.interval).is_none_or(|b| b.open_time <= bar.open_time) {
                view.insert(bar.interval, bar.clone());
            }
        }
    }

    /// One step of the simulation: what the aggregator does, then what it publishes.
    #[derive(Debug, Clone)]
    enum Step {
        /// A trade `advance` ms after the clock (`late`: that many ms before it instead).
        Trade { advance: i64, late: bool, price: f64, qty: f64 },
        /// The tick: the clock moves on without a trade, closing the buckets that ended.
        Tick { advance: i64 },
        /// A frame leaves (the publisher's flush), with the partials conflated or not (the hub's topic rate).
        Frame { conflated: bool },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0i64..1_500, prop::bool::weighted(0.15), 1.0f64..2.0, 0.001f64..10.0)
                .prop_map(|(advance, late, price, qty)| Step::Trade { advance, late, price: 100.0 * price, qty }),
            2 => (1i64..3_000).prop_map(|advance| Step::Tick { advance }),
            3 => prop::bool::ANY.prop_map(|conflated| Step::Frame { conflated }),
        ]
    }

    /// Keeps only the last partial of each interval (the hub conflates partials at the topic rate).
    fn conflate(updates: Vec<BarUpdate>) -> Vec<BarUpdate> {
        let last: BTreeMap<Interval, usize> =
            updates.iter().enumerate().filter(|(_, u)| !u.bar.closed).map(|(i, u)| (u.bar.interval, i)).collect();
        let keep = |i: usize, u: &BarUpdate| u.bar.closed || last.get(&u.bar.interval) == Some(&i);
        updates.into_iter().enumerate().filter(|(i, u)| keep(*i, u)).map(|(_, u)| u).collect()
    }

    /// Figures of one run: coarse forming bars the aggregator published, and those sent as they are.
    #[derive(Default, Debug)]
    struct Run {
        coarse_partials: usize,
        coarse_sent: usize,
    }

    /// Drives a real aggregator's bars with `steps`; each frame goes through the publisher's plan and the
    /// follower's apply. After every frame, the follower's bars must be the aggregator's, bit for bit.
    fn run(steps: &[Step], refresh_every: usize) -> Run {
        let mut source = TimeBars::new("BTCUSDT".into(), &Interval::ALL, 2_000, 100);
        let (mut sender, mut receiver) = (Forming::default(), Forming::default());
        let (mut published, mut received) = (BTreeMap::new(), BTreeMap::new());
        let (mut closed_published, mut closed_received) = (Vec::new(), Vec::new());
        let (mut clock, mut out, mut frames, mut figures) = (START, Vec::new(), 0, Run::default());
        for step in steps {
            match step {
                Step::Trade { advance, late, price, qty } => {
                    let ts = if *late { clock - advance * 2 } else { clock + advance };
                    clock = clock.max(ts);
                    source.apply(&trade(ts, *price, *qty), &mut out);
                    source.take_partials(&mut out);
                }
                Step::Tick { advance } => {
                    clock += advance;
                    source.advance_to(clock, &mut out);
                    source.take_partials(&mut out);
                }
                Step::Frame { conflated } => {
                    let updates =
                        if *conflated { conflate(std::mem::take(&mut out)) } else { std::mem::take(&mut out) };
                    let bars: Vec<Bar> = updates.into_iter().map(|u| u.bar).collect();
                    frames += 1;
                    let planned = sender.plan(&bars, frames % refresh_every == 0);
                    figures.coarse_partials += bars.iter().filter(|b| !b.closed && b.interval != Interval::S1).count();
                    figures.coarse_sent +=
                        planned.bars.iter().filter(|b| !b.closed && b.interval != Interval::S1).count();
                    let (applied, in_step) = receiver.apply(planned.bars, planned.derive);
                    assert!(in_step, "the follower derives from the sender's state");
                    fold_view(&mut published, &bars);
                    fold_view(&mut received, &applied);
                    closed_published.extend(bars.iter().filter(|b| b.closed).cloned());
                    closed_received.extend(applied.iter().filter(|b| b.closed).cloned());
                    assert_eq!(closed_received, closed_published, "closed bars are sent, never derived");
                    for interval in Interval::ALL {
                        let (want, got) = (published.get(&interval), received.get(&interval));
                        assert!(
                            want.zip(got).is_some_and(|(w, g)| same(w, g)) || want.is_none() && got.is_none(),
                            "frame {frames}, {interval}: published {want:?}, follower {got:?}"
                        );
                        // And what was published is the aggregator's own forming bar, where it has one.
                        if let Some(own) = source.current(interval).filter(|b| !b.is_flat() && !conflated_away(&out)) {
                            let got = got.filter(|g| g.open_time == own.open_time);
                            assert!(
                                got.is_some_and(|g| same(g, own)),
                                "{interval}: aggregator {own:?}, follower {got:?}"
                            );
                        }
                    }
                }
            }
        }
        figures
    }

    /// Whether updates are still waiting for the next frame (then the aggregator is ahead of both nodes).
    fn conflated_away(out: &[BarUpdate]) -> bool {
        !out.is_empty()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn derived_forming_bars_equal_the_aggregators_after_every_frame(
            steps in prop::collection::vec(step(), 50..400),
            refresh_every in 5usize..200,
        ) {
            run(&steps, refresh_every);
        }
    }

    /// Sorted trades, one a second or so, as the simulated feed makes them: most coarse forming bars are
    /// derived, not sent.
    #[test]
    fn at_about_a_trade_a_second_most_coarse_forming_bars_are_derived() {
        let mut steps = Vec::new();
        for i in 0..400u32 {
            let qty = 0.01 + f64::from(i % 17) * 0.37;
            let price = 100.0 + f64::from(i % 23) * 0.11;
            steps.push(Step::Trade { advance: 700 + i64::from(i % 7) * 90, late: false, price, qty });
            steps.push(Step::Frame { conflated: false });
            steps.push(Step::Tick { advance: 150 });
            steps.push(Step::Frame { conflated: false });
        }
        let figures = run(&steps, 1_000);
        assert!(figures.coarse_partials > 5_000, "{figures:?}");
        assert!(figures.coarse_sent * 10 < figures.coarse_partials, "{figures:?}");
    }

    #[test]
    fn a_follower_whose_state_differs_derives_nothing_until_a_refresh() {
        let bar = |interval: Interval, open_time: i64, price: f64, volume: f64| {
            let mut b = Bar::from_trade("BTCUSDT".into(), interval, open_time, price, volume);
            b.open_time = interval.align(open_time);
            b
        };
        let (mut sender, mut receiver) = (Forming::default(), Forming::default());
        // The first update: nothing known, every forming bar goes as it is.
        let first = vec![bar(Interval::S1, START, 100.0, 1.0), bar(Interval::M1, START, 100.0, 1.0)];
        let planned = sender.plan(&first, false);
        assert_eq!((planned.bars.len(), planned.derive.mask), (2, 0));
        assert_eq!(receiver.apply(planned.bars, planned.derive), (first.clone(), true));
        // The next second's trade: the 1m bar is derived.
        let mut m1 = first[1].clone();
        m1.merge(&bar(Interval::S1, START + 1_000, 101.0, 2.0));
        let next = vec![bar(Interval::S1, START + 1_000, 101.0, 2.0), m1.clone()];
        let planned = sender.plan(&next, false);
        assert_eq!((planned.bars.len(), planned.derive.mask), (1, 1 << Interval::M1.index()));
        let mut wrong = receiver.clone();
        assert_eq!(receiver.apply(planned.bars.clone(), planned.derive), (next.clone(), true));
        // A follower that synced from another state (here: another volume) leaves the derived bar out.
        wrong.reset_from(&[bar(Interval::S1, START, 100.0, 1.0), bar(Interval::M1, START, 100.0, 5.0)]);
        assert_eq!(wrong.apply(planned.bars, planned.derive), (vec![next[0].clone()], false));
        // A refresh sends it as it is, and the follower is in step again.
        let mut m1b = m1.clone();
        m1b.merge(&bar(Interval::S1, START + 2_000, 102.0, 3.0));
        let third = vec![bar(Interval::S1, START + 2_000, 102.0, 3.0), m1b.clone()];
        let planned = sender.plan(&third, true);
        assert_eq!(planned.derive, Derive::default());
        assert_eq!(wrong.apply(planned.bars, planned.derive), (third, true));
        let mut m1c = m1b.clone();
        m1c.merge(&bar(Interval::S1, START + 3_000, 103.0, 4.0));
        let fourth = vec![bar(Interval::S1, START + 3_000, 103.0, 4.0), m1c];
        let planned = sender.plan(&fourth, false);
        assert_ne!(planned.derive.mask, 0);
        assert_eq!(wrong.apply(planned.bars, planned.derive), (fourth, true));
    }

    #[test]
    fn hostile_masks_and_times_derive_nothing_invalid() {
        let at = |interval: Interval, open_time: i64| Bar {
            symbol: "BTCUSDT".into(),
            interval,
            open_time,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: 1.0,
            trades: 1,
            closed: false,
        };
        let mut receiver = Forming::default();
        receiver.reset_from(&[at(Interval::M1, i64::MIN + 5)]);
        let s1 = at(Interval::S1, i64::MIN + 5);
        let derive = Derive { mask: u32::MAX, fingerprint: combine(&receiver.slot_hashes(), u32::MAX) };
        let (bars, _) = receiver.apply(vec![s1.clone()], derive);
        assert_eq!(bars, vec![s1], "no bucket at an absurd time, nothing derived");
        // A volume that overflows is not derived either.
        let mut receiver = Forming::default();
        let mut huge = at(Interval::M1, START - START % 60_000);
        huge.volume = f64::MAX;
        receiver.reset_from(&[huge]);
        let mut s1 = at(Interval::S1, START - START % 1_000);
        s1.volume = f64::MAX;
        let derive = Derive { mask: u32::MAX, fingerprint: combine(&receiver.slot_hashes(), u32::MAX) };
        assert_eq!(receiver.apply(vec![s1.clone()], derive), (vec![s1], true));
    }
}
