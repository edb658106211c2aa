//! The hub's topics, by symbol and then by interval.
//!
//! A trade changes the forming bar of every interval of its symbol, and the aggregator publishes those
//! updates together. Each was a lookup of its own in one map of every topic (160,000 entries at 10,000
//! symbols, nearly all cache misses: docs/BENCHMARKS.md, "Idle CPU per symbol"). Here a symbol is looked up
//! once for a run of its updates and its intervals' states lie side by side, indexed by [`Interval::index`].

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{slot_phase, Slot, TopicState};
use crate::messages::Topic;
use crate::model::{Interval, Symbol};

/// Where every topic's send slots lie: slot `n` of a topic is on `epoch + slot_phase(n, phases, gap)`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Grid {
    pub epoch: Instant,
    pub gap: Duration,
    pub phases: usize,
}

impl Grid {
    /// A new slot for clients of `phase`, nothing sent or waiting yet.
    pub fn slot(&self, phase: usize) -> Slot {
        Slot::new(self.epoch + slot_phase(phase, self.phases, self.gap))
    }
}

/// One symbol's topics.
pub(super) struct SymbolTopics {
    intervals: [Option<TopicState>; Interval::ALL.len()],
}

impl SymbolTopics {
    fn new() -> SymbolTopics {
        SymbolTopics { intervals: std::array::from_fn(|_| None) }
    }

    pub fn get_mut(&mut self, interval: Interval) -> Option<&mut TopicState> {
        self.intervals[interval.index()].as_mut()
    }

    /// The topic's state, made on first use.
    pub fn entry(&mut self, interval: Interval, grid: &Grid) -> &mut TopicState {
        self.intervals[interval.index()].get_or_insert_with(|| TopicState::new(grid))
    }
}

/// See the module documentation.
pub(super) struct Topics {
    /// Boxed: a symbol's 16 states are a few kB, which the map would move whole as it grows.
    by_symbol: HashMap<Symbol, Box<SymbolTopics>, foldhash::fast::RandomState>,
    grid: Grid,
}

impl Topics {
    pub fn new(grid: Grid) -> Topics {
        Topics { by_symbol: HashMap::default(), grid }
    }

    pub fn grid(&self) -> Grid {
        self.grid
    }

    pub fn get_mut(&mut self, (symbol, interval): &Topic) -> Option<&mut TopicState> {
        self.by_symbol.get_mut(symbol).and_then(|s| s.get_mut(*interval))
    }

    /// The topic's state, made on first use.
    pub fn entry(&mut self, (symbol, interval): &Topic) -> &mut TopicState {
        let grid = self.grid;
        self.symbol(symbol).entry(*interval, &grid)
    }

    /// The symbol's topics, made on first use. Looked up without cloning the name (an atomic increment
    /// and decrement on a counter the market thread touches too), except the first time.
    pub fn symbol(&mut self, symbol: &Symbol) -> &mut SymbolTopics {
        if !self.by_symbol.contains_key(symbol) {
            self.by_symbol.insert(symbol.clone(), Box::new(SymbolTopics::new()));
        }
        // Just found or inserted.
        match self.by_symbol.get_mut(symbol) {
            Some(topics) => topics,
            None => unreachable!("inserted above"),
        }
    }
}
