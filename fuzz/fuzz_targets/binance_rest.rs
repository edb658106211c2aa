//! Binance's REST bodies: `GET /api/v3/klines` (first byte even) and `historicalTrades` (odd), as the
//! REST client decodes them, and their conversion to bars and trades at every interval.
#![no_main]
use candlecast_actors::fuzzing::{Kline, RestTrade};
use candlecast_actors::model::{Interval, Symbol};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let symbol = Symbol::from("BTCUSDT");
    if mode % 2 == 0 {
        let interval = Interval::ALL[(mode as usize / 2) % Interval::ALL.len()];
        if let Ok(klines) = serde_json::from_slice::<Vec<Kline>>(rest) {
            for k in &klines {
                let _ = k.to_bar(&symbol, interval, 1_700_000_000_000);
            }
        }
    } else if let Ok(trades) = serde_json::from_slice::<Vec<RestTrade>>(rest) {
        for t in &trades {
            let _ = t.to_trade(&symbol, 1_700_000_000_000);
        }
    }
});
