//! A replay feed's CSV file, loaded whole (`speed = "max"`): the first byte picks trades or bars, whether
//! rows are shifted to now, and the bar interval; the rest is the file.
#![no_main]
use std::future::Future;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use candlecast_actors::feed::{ReplayConnector, ReplayKind, ReplaySettings, Speed};
use candlecast_actors::feed::Connector;
use candlecast_actors::model::{Interval, Symbol};
use candlecast_actors::persist::Held;
use libfuzzer_sys::fuzz_target;

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| std::env::temp_dir().join(format!("candlecast-fuzz-replay-{}.csv", std::process::id())))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let settings = ReplaySettings {
        path: path().display().to_string(),
        kind: if mode & 1 == 0 { ReplayKind::Trades } else { ReplayKind::Bars },
        speed: Speed::Max,
        shift_to_now: mode & 2 != 0,
        bar_interval: Interval::ALL[(mode as usize >> 2) % Interval::ALL.len()],
    };
    std::fs::write(path(), rest).expect("the fuzzer's scratch file is writable");
    let mut replay = ReplayConnector::new(Symbol::from("BTCUSDT"), &settings);
    let held = Held::nothing();
    let mut backfill = std::pin::pin!(replay.backfill(1_700_000_000_000, &Interval::ALL, &held));
    // Loading a whole file never waits: one poll finishes it.
    let done = backfill.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    assert!(matches!(done, Poll::Ready(_)), "a speed = max replay waited");
});
