use std::sync::Arc;

use super::*;
use crate::aggregator::AggregatorSettings;
use crate::bars::{BarUpdate, UpdateKind};
use crate::hub::{ChannelSubscribers, Connect, HubSettings};
use crate::model::Bar;
use crate::outbox::Outbox;
use crate::strategy::backtest::{run_backtest, BacktestConfig};

use crate::outbox::drain_json as frames;

/// A wavy price series long enough for several EMA crossings.
fn bars(n: usize) -> Vec<Bar> {
    (0..n)
        .map(|i| {
            let p = 100.0 + 10.0 * ((i as f64) / 7.0).sin() + (i as f64) * 0.01;
            let mut b = Bar::from_trade("TESTUSDT".into(), Interval::M1, i as i64 * 60_000, p, 1.0);
            b.high = p + 0.5;
            b.low = p - 0.5;
            b.closed = true;
            b
        })
        .collect()
}

#[actix_rt::test]
async fn live_signals_equal_backtest_signals_over_the_same_bars() {
    let hub = Hub::new(&HubSettings::default()).start();
    let market = Market::new(hub.clone(), AggregatorSettings::default(), Arbiter::current());
    market.get_or_create("TESTUSDT", "test");
    let live = LiveStrategies::new(hub.clone(), market).start();
    let params = json!({"fast": 3, "slow": 8});
    let spec = LiveSpec {
        strategy: "ema_cross".into(),
        symbol: "TESTUSDT".into(),
        interval: Interval::M1,
        params: params.clone(),
    };
    let info = live.send(StartStrategy(spec)).await.unwrap().unwrap();
    assert_eq!(info.signals, 0, "no history yet");

    let outbox = Arc::new(Outbox::new(1 << 22));
    hub.send(Connect { client: 7, outbox: outbox.clone() }).await.unwrap();
    live.send(SubscribeSignals { client: 7, symbol: "TESTUSDT".into(), interval: Interval::M1, id: None })
        .await
        .unwrap();

    // The bars arrive as the hub delivers them: a forming update before each close, a duplicate close
    // now and then (a correction), in small batches.
    let series = bars(300);
    for chunk in series.chunks(5) {
        let mut updates = Vec::new();
        for bar in chunk {
            updates.push(BarUpdate { kind: UpdateKind::Partial, bar: Bar { closed: false, ..bar.clone() } });
            updates.push(BarUpdate { kind: UpdateKind::Closed, bar: bar.clone() });
            if bar.open_time % 7 == 0 {
                updates.push(BarUpdate { kind: UpdateKind::Correction, bar: bar.clone() });
            }
        }
        live.send(BarEvents(updates.into())).await.unwrap();
    }
    // A round trip to the hub: everything sent to it before has been handled.
    hub.send(ChannelSubscribers { channel: signal_channel("TESTUSDT", Interval::M1) }).await.unwrap();

    let got = frames(&outbox);
    assert_eq!(got[0]["type"], "signals_history");
    let live_signals: Vec<(i64, String)> =
        got[1..].iter().map(|s| (s["time"].as_i64().unwrap(), s["side"].as_str().unwrap().to_owned())).collect();
    let report =
        run_backtest(build_strategy("ema_cross", &params).unwrap(), &series, &BacktestConfig::default()).unwrap();
    let backtest: Vec<(i64, String)> = report
        .signals
        .iter()
        .map(|s| (s.time, serde_json::to_value(s.side).unwrap().as_str().unwrap().to_owned()))
        .collect();
    assert!(backtest.len() >= 4, "the series crosses several times: {backtest:?}");
    assert_eq!(live_signals, backtest);
    assert!(got[1..].iter().all(|s| s["type"] == "signal" && s["strategy"] == "ema_cross"));

    // A client subscribing now gets the same signals as history.
    let later = Arc::new(Outbox::new(1 << 22));
    hub.send(Connect { client: 8, outbox: later.clone() }).await.unwrap();
    live.send(SubscribeSignals { client: 8, symbol: "TESTUSDT".into(), interval: Interval::M1, id: Some(json!(1)) })
        .await
        .unwrap();
    hub.send(ChannelSubscribers { channel: signal_channel("TESTUSDT", Interval::M1) }).await.unwrap();
    let history = &frames(&later)[0];
    assert_eq!(history["id"], 1);
    assert_eq!(history["data"].as_array().unwrap().len(), backtest.len());

    assert_eq!(live.send(ListStrategies).await.unwrap()[0].signals, backtest.len());
    assert!(live.send(StopStrategy(info.id)).await.unwrap());
    assert!(live.send(ListStrategies).await.unwrap().is_empty());
}
