use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::model::Interval;

use crate::outbox::drain_json as drain;

fn bar(close: f64, open_time: i64) -> Bar {
    let mut b = Bar::from_trade("BTCUSDT".into(), Interval::M1, open_time, close, 1.0);
    b.close = close;
    b
}

fn update(kind: UpdateKind, bar: Bar) -> Publish {
    Publish { updates: vec![BarUpdate { kind, bar }] }
}

fn topic() -> Topic {
    ("BTCUSDT".into(), Interval::M1)
}

async fn connected(hub: &Addr<Hub>, client: ClientId, limit: usize) -> Arc<Outbox> {
    let outbox = Arc::new(Outbox::new(limit));
    hub.send(Connect { client, outbox: outbox.clone() }).await.unwrap();
    outbox
}

#[actix_rt::test]
async fn partials_are_conflated_closed_bars_are_not() {
    // The hub's slots on a clock the test controls: each sleep below advances it at once.
    tokio::time::pause();
    let hub = Hub::new(&HubSettings { max_updates_per_second: 10, ..Default::default() }).start();
    let outbox = connected(&hub, 1, 1 << 20).await;
    hub.send(update(UpdateKind::Partial, bar(1.0, 0))).await.unwrap();
    hub.send(Subscribe { client: 1, topics: vec![topic()], ack: protocol::frame::text(br#"{"type":"subscribed"}"#) })
        .await
        .unwrap();
    let first = drain(&outbox);
    assert_eq!(first[0]["type"], "subscribed", "ack first");
    assert_eq!(first[1]["data"]["close"], 1.0, "then the newest bar at once");

    for i in 2..=5 {
        hub.send(update(UpdateKind::Partial, bar(i as f64, 0))).await.unwrap();
    }
    let burst = drain(&outbox);
    assert!(burst.len() <= 1, "at most one partial per 100 ms slot: {burst:?}");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let later = drain(&outbox);
    let last = burst.iter().chain(&later).last().unwrap();
    assert_eq!(last["data"]["close"], 5.0, "the newest state wins");

    let mut closed = bar(6.0, 0);
    closed.closed = true;
    hub.send(update(UpdateKind::Partial, bar(5.5, 0))).await.unwrap();
    hub.send(update(UpdateKind::Closed, closed.clone())).await.unwrap();
    let mut correction = closed.clone();
    correction.low = 0.5;
    hub.send(update(UpdateKind::Correction, correction)).await.unwrap();
    hub.send(update(UpdateKind::Partial, bar(7.0, 60_000))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let finals = drain(&outbox);
    let closes: Vec<&Value> = finals.iter().filter(|m| m["data"]["closed"] == true).collect();
    assert_eq!(
        closes.len(),
        1,
        "the closed bar in its slot, the correction that came before folded into it: {finals:?}"
    );
    assert_ne!(closes[0]["correction"], true, "clients never saw the uncorrected bar");
    assert_eq!(closes[0]["data"]["low"], 0.5);
    let after = finals.iter().position(|m| m["data"]["closed"] == true).unwrap();
    assert_eq!(finals.last().unwrap()["data"]["timestamp"], 60_000, "the next bar follows the closed one: {finals:?}");
    assert!(
        finals[after + 1..].iter().all(|m| m["data"]["timestamp"] == 60_000),
        "nothing of the old bar after its final state: {finals:?}"
    );

    // A correction of a bar clients already have goes at once.
    let mut late = closed.clone();
    late.high = 9.0;
    hub.send(update(UpdateKind::Correction, late)).await.unwrap();
    let now = drain(&outbox);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0]["correction"], true);
    assert_eq!(now[0]["data"]["high"], 9.0);
    assert!(now[0]["ts_sent"].as_i64().unwrap() > 0);
}

/// Every symbol's bar closes in the same instant: the closed bars wait for their topics' slots instead
/// of going to every client at once, none is lost, and one who subscribes meanwhile gets each once.
#[actix_rt::test]
async fn closed_bars_of_topics_closing_together_wait_for_their_slots() {
    // The hub's slots on a clock the test controls: each sleep below advances it at once.
    tokio::time::pause();
    let hub = Hub::new(&HubSettings { max_updates_per_second: 10, ..Default::default() }).start();
    let symbols = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"];
    let topics: Vec<Topic> = symbols.iter().map(|s| (Symbol::from(*s), Interval::S1)).collect();
    let reader = connected(&hub, 1, 1 << 20).await;
    hub.send(Subscribe { client: 1, topics: topics.clone(), ack: protocol::frame::text(b"{}") }).await.unwrap();
    let on = |symbol: &str, close: f64, closed: bool| {
        let mut b = Bar::from_trade(symbol.into(), Interval::S1, 0, close, 1.0);
        b.closed = closed;
        BarUpdate { kind: if closed { UpdateKind::Closed } else { UpdateKind::Partial }, bar: b }
    };
    // Each topic has just sent a partial, so none is due when the bars close.
    hub.send(Publish { updates: symbols.iter().map(|s| on(s, 1.0, false)).collect() }).await.unwrap();
    drain(&reader);
    hub.send(Publish { updates: symbols.iter().map(|s| on(s, 2.0, true)).collect() }).await.unwrap();
    assert_eq!(drain(&reader), Vec::<Value>::new(), "no burst: every closed bar waits for its topic's slot");

    let late = connected(&hub, 2, 1 << 20).await;
    hub.send(Subscribe { client: 2, topics: topics[..1].to_vec(), ack: protocol::frame::text(b"{}") }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let got = drain(&reader);
    let mut closed: Vec<&str> =
        got.iter().filter(|m| m["data"]["closed"] == true).map(|m| m["symbol"].as_str().unwrap()).collect();
    closed.sort_unstable();
    assert_eq!(closed, symbols, "each closed bar once: {got:?}");
    let late = drain(&late);
    assert_eq!(
        late.iter().filter(|m| m["data"]["closed"] == true).count(),
        1,
        "the late subscriber's one closed bar: {late:?}"
    );
}

#[actix_rt::test]
async fn a_closed_bar_older_than_the_newest_is_sent_but_new_subscribers_still_get_the_newest() {
    let hub = Hub::new(&HubSettings::default()).start();
    let a = connected(&hub, 1, 1 << 20).await;
    hub.send(Subscribe { client: 1, topics: vec![topic()], ack: protocol::frame::text(b"{}") }).await.unwrap();
    hub.send(update(UpdateKind::Partial, bar(9.0, 120_000))).await.unwrap();
    let mut missed = bar(8.0, 60_000);
    missed.closed = true;
    hub.send(update(UpdateKind::Closed, missed)).await.unwrap();
    let got = drain(&a);
    assert_eq!(got.last().unwrap()["data"]["timestamp"], 60_000, "the older bar goes out: {got:?}");

    let b = connected(&hub, 2, 1 << 20).await;
    hub.send(Subscribe { client: 2, topics: vec![topic()], ack: protocol::frame::text(b"{}") }).await.unwrap();
    let snapshot = drain(&b);
    assert_eq!(snapshot[1]["data"]["timestamp"], 120_000, "the newest bar, not the one put behind it");
}

#[actix_rt::test]
async fn only_subscribers_of_a_topic_receive_it_and_counts_follow() {
    let hub = Hub::new(&HubSettings::default()).start();
    let a = connected(&hub, 1, 1 << 20).await;
    let b = connected(&hub, 2, 1 << 20).await;
    let eth: Topic = ("ETHUSDT".into(), Interval::M1);
    hub.send(Subscribe { client: 1, topics: vec![topic()], ack: protocol::frame::text(b"{}") }).await.unwrap();
    hub.send(Subscribe { client: 2, topics: vec![eth.clone(), topic()], ack: protocol::frame::text(b"{}") })
        .await
        .unwrap();
    hub.send(Unsubscribe { client: 2, topics: vec![topic()], ack: protocol::frame::text(b"{}") }).await.unwrap();
    drain(&a);
    drain(&b);
    hub.send(update(UpdateKind::Partial, bar(7.0, 60_000))).await.unwrap();
    assert_eq!(drain(&a).len(), 1);
    assert_eq!(drain(&b).len(), 0);
    let stats = hub.send(GetHubStats).await.unwrap();
    assert_eq!((stats.total_clients, stats.total_subscriptions), (2, 2));
    assert_eq!(stats.trading_pair_subscribers.get("BTCUSDT"), Some(&1));
    assert_eq!(stats.trading_pair_subscribers.get("ETHUSDT"), Some(&1));
    hub.send(Disconnect { client: 1 }).await.unwrap();
    let stats = hub.send(GetHubStats).await.unwrap();
    assert_eq!((stats.total_clients, stats.total_subscriptions), (1, 1));
    assert_eq!(stats.trading_pair_subscribers.get("BTCUSDT"), None);
}

#[actix_rt::test]
async fn a_batch_of_channel_frames_reaches_each_channels_subscribers_in_order() {
    let hub = Hub::new(&HubSettings::default()).start();
    let a = connected(&hub, 1, 1 << 20).await;
    let b = connected(&hub, 2, 1 << 20).await;
    let (x, y): (Arc<str>, Arc<str>) = ("ind:x".into(), "ind:y".into());
    hub.send(SubscribeChannel { client: 1, channel: x.clone(), first: None }).await.unwrap();
    hub.send(SubscribeChannel { client: 2, channel: x.clone(), first: None }).await.unwrap();
    hub.send(SubscribeChannel { client: 2, channel: y.clone(), first: None }).await.unwrap();
    let frame = |n: u8| protocol::frame::text(format!(r#"{{"n":{n}}}"#).as_bytes());
    let nobody: Arc<str> = "ind:nobody".into();
    hub.send(PublishFrames(vec![(x.clone(), frame(1)), (nobody, frame(9)), (y, frame(2)), (x, frame(3))]))
        .await
        .unwrap();
    let ns = |o: &Outbox| drain(o).iter().map(|m| m["n"].as_u64().unwrap()).collect::<Vec<_>>();
    assert_eq!(ns(&a), vec![1, 3]);
    assert_eq!(ns(&b), vec![1, 2, 3]);
}

#[actix_rt::test]
async fn a_client_that_does_not_read_is_dropped_and_others_keep_receiving() {
    let hub = Hub::new(&HubSettings { max_updates_per_second: 1000, ..Default::default() }).start();
    let slow = connected(&hub, 1, 2_000).await;
    let fast = connected(&hub, 2, 1 << 20).await;
    for c in [1, 2] {
        hub.send(Subscribe { client: c, topics: vec![topic()], ack: protocol::frame::text(b"{}") }).await.unwrap();
    }
    let mut fast_got = 0;
    for i in 0..100 {
        let mut b = bar(i as f64 + 1.0, i * 60_000);
        b.closed = true;
        hub.send(update(UpdateKind::Closed, b)).await.unwrap();
        fast_got += drain(&fast).len();
    }
    assert!(fast_got >= 100, "the reading client got every closed bar: {fast_got}");
    assert!(slow.is_closed());
    let slow_frames = drain(&slow);
    assert_eq!(slow_frames, vec![Value::from("opcode 0x88")], "its queue was replaced by a close frame");
}

/// Collects the bar events an actor subscriber receives.
struct Collector(Arc<std::sync::Mutex<Vec<BarUpdate>>>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<BarEvents> for Collector {
    type Result = ();

    fn handle(&mut self, msg: BarEvents, _: &mut Context<Self>) {
        self.0.lock().unwrap().extend(msg.0.iter().cloned());
    }
}

#[actix_rt::test]
async fn actors_subscribe_like_sessions_and_get_every_closed_bar() {
    // The hub's slots on a clock the test controls: each sleep below advances it at once.
    tokio::time::pause();
    let hub = Hub::new(&HubSettings { max_updates_per_second: 1, ..Default::default() }).start();
    let finals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let with_partials = Arc::new(std::sync::Mutex::new(Vec::new()));
    hub.send(SubscribeActor { recipient: Collector(finals.clone()).start().recipient(), partials: false })
        .await
        .unwrap();
    hub.send(SubscribeActor { recipient: Collector(with_partials.clone()).start().recipient(), partials: true })
        .await
        .unwrap();
    for i in 0..20 {
        hub.send(update(UpdateKind::Partial, bar(i as f64 + 1.0, 0))).await.unwrap();
        let mut closed = bar(i as f64 + 1.0, i * 60_000);
        closed.closed = true;
        hub.send(update(UpdateKind::Closed, closed)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let finals = finals.lock().unwrap();
    assert_eq!(finals.len(), 20, "every closed bar, no partials");
    assert!(finals.iter().all(|u| u.kind == UpdateKind::Closed));
    let with_partials = with_partials.lock().unwrap();
    let partials = with_partials.iter().filter(|u| u.kind == UpdateKind::Partial).count();
    assert_eq!(with_partials.len() - partials, 20);
    assert!((1..20).contains(&partials), "partials at the topic rate, not all of them: {partials}");
}

#[actix_rt::test]
async fn subscribing_from_a_history_queues_the_bars_closed_since() {
    let hub = Hub::new(&HubSettings { max_updates_per_second: 1000, ..Default::default() }).start();
    let closed = |close: f64, open_time: i64| {
        let mut b = bar(close, open_time);
        b.closed = true;
        b
    };
    for (i, t) in [0, 60_000, 120_000].into_iter().enumerate() {
        hub.send(update(UpdateKind::Closed, closed(i as f64, t))).await.unwrap();
    }
    hub.send(update(UpdateKind::Correction, closed(9.0, 60_000))).await.unwrap();
    hub.send(update(UpdateKind::Partial, bar(3.0, 180_000))).await.unwrap();

    // The client's history ended with the bar opening at 60 000, then still forming.
    let outbox = connected(&hub, 1, 1 << 20).await;
    hub.send(SubscribeFrom { client: 1, topics: vec![(topic(), Some(60_000))], ack: protocol::frame::text(b"{}") })
        .await
        .unwrap();
    let frames = drain(&outbox);
    let bars: Vec<(i64, f64, bool)> = frames[1..]
        .iter()
        .map(|f| {
            (
                f["data"]["timestamp"].as_i64().unwrap(),
                f["data"]["close"].as_f64().unwrap(),
                f["data"]["closed"] == true,
            )
        })
        .collect();
    assert_eq!(
        bars,
        [(60_000, 9.0, true), (120_000, 2.0, true), (180_000, 3.0, false)],
        "final states from the history's last bar on, then the forming one"
    );

    // Without a history, only the newest bar; and a closed newest bar is not sent twice.
    let plain = connected(&hub, 2, 1 << 20).await;
    hub.send(SubscribeFrom { client: 2, topics: vec![(topic(), None)], ack: protocol::frame::text(b"{}") })
        .await
        .unwrap();
    assert_eq!(drain(&plain).len(), 2);
    hub.send(update(UpdateKind::Closed, closed(4.0, 180_000))).await.unwrap();
    let late = connected(&hub, 3, 1 << 20).await;
    hub.send(SubscribeFrom { client: 3, topics: vec![(topic(), Some(180_000))], ack: protocol::frame::text(b"{}") })
        .await
        .unwrap();
    let frames = drain(&late);
    assert_eq!(frames.len(), 2, "ack and the one closed bar: {frames:?}");
    assert_eq!(frames[1]["data"]["close"], 4.0);
}

/// A feed ticking every 20 ms, each tick 0–3 ms late: the topic still gets its 10 partials a second,
/// never two in one 100 ms slot (pacing from the last send's time would give about 8).
#[test]
fn partials_keep_their_rate_through_tick_jitter() {
    let gap = Duration::from_millis(100);
    let start = Instant::now();
    let mut state = Slot::new(start);
    let mut sent = Vec::new();
    for tick in 0..500u64 {
        let jitter = Duration::from_micros((tick * 7919) % 3000);
        let now = start + Duration::from_millis(20 * tick) + jitter;
        if state.due(now) {
            state.sent(now, gap);
            sent.push(now.duration_since(start));
        }
    }
    assert_eq!(sent.len(), 100, "10 s of ticks, 10 partials a second: {sent:?}");
    let slots: Vec<u128> = sent.iter().map(|t| t.as_millis() / 100).collect();
    assert!(slots.windows(2).all(|w| w[0] < w[1]), "at most one partial per slot: {slots:?}");

    // A quiet topic sends at once, then keeps to its grid, never closer than half a gap.
    let later = start + Duration::from_secs(60) + Duration::from_millis(70);
    assert!(state.due(later));
    state.sent(later, gap);
    assert!(!state.due(start + Duration::from_millis(60_199)), "the slot at 60.1 s is too close");
    assert!(state.due(start + Duration::from_millis(60_200)));
}

/// The buffers a client's writer takes from its outbox, each split into its frames (decoded as JSON).
fn writes(outbox: &Outbox) -> Vec<Vec<Value>> {
    let waker = futures_util::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut out = Vec::new();
    while let std::task::Poll::Ready(Some(buffer)) = outbox.poll_pop(&mut cx) {
        let frames = protocol::frame::split(&buffer)
            .map(|f| {
                assert_eq!(f[0], 0x81, "each a complete text frame");
                let start = if f[1] & 0x7f == 126 { 4 } else { 2 };
                serde_json::from_slice(&f[start..]).expect("each frame one JSON message")
            })
            .collect();
        out.push(frames);
    }
    out
}

/// A dashboard of six topics, fed as the aggregators feed it (each symbol its own message, every 20 ms)
/// and flushed on the hub's 5 ms tick, on a simulated clock: after the first updates (sent at once, each
/// alone) and one gap, every write of a client carries all six topics' newest states as six separate
/// frames, ten writes a second; and the clients' writes are spread over the gap (one phase each), not in one burst.
#[test]
fn a_clients_topics_leave_in_one_write_and_clients_spread_over_the_gap() {
    let mut hub = Hub::new(&HubSettings { max_updates_per_second: 10, flush_window_ms: 10 });
    let epoch = hub.topics.grid().epoch;
    let symbols = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"];
    let topics: Vec<Topic> = symbols.iter().map(|s| (Symbol::from(*s), Interval::S1)).collect();
    let outboxes: Vec<Arc<Outbox>> = (0..10u64)
        .map(|client| {
            let outbox = Arc::new(Outbox::new(1 << 20));
            hub.connect(client, outbox.clone());
            hub.subscribe(client, topics.iter().map(|t| (t.clone(), None)), protocol::frame::text(b"{}"));
            outbox
        })
        .collect();
    for outbox in &outboxes {
        assert_eq!(writes(outbox).len(), 1, "the ack (no bar yet) in one write");
    }
    let mut got: Vec<Vec<(u64, Vec<Value>)>> = vec![Vec::new(); outboxes.len()];
    for ms in 0..2_000u64 {
        let now = epoch + Duration::from_millis(ms);
        if ms % 20 == 0 {
            for (i, symbol) in symbols.iter().enumerate() {
                let bar = Bar::from_trade((*symbol).into(), Interval::S1, 0, ms as f64, 1.0);
                hub.publish(
                    &[BarUpdate { kind: UpdateKind::Partial, bar }],
                    now + Duration::from_micros(100 * i as u64),
                );
                hub.commit();
            }
        }
        if ms % 5 == 0 {
            hub.flush_due(now);
            hub.commit();
        }
        for (client, outbox) in outboxes.iter().enumerate() {
            got[client].extend(writes(outbox).into_iter().map(|w| (ms, w)));
        }
    }
    for (client, writes) in got.iter().enumerate() {
        let (first, rest): (Vec<_>, Vec<_>) = writes.iter().partition(|(ms, _)| *ms == 0);
        assert_eq!(first.len(), 6, "client {client}: the first updates go at once, each alone");
        // After one gap every topic keeps its client's grid (the first updates, sent at once a moment
        // apart, may take two slots to line up).
        for (ms, frames) in rest.iter().filter(|(ms, _)| *ms >= 200) {
            let mut names: Vec<&str> = frames.iter().map(|f| f["symbol"].as_str().unwrap()).collect();
            names.sort_unstable();
            assert_eq!(names, symbols, "client {client} at {ms} ms: every topic once, in one write");
            assert!(frames.iter().all(|f| f["type"] == "price_update"));
        }
        let second: Vec<u64> = rest.iter().map(|(ms, _)| *ms).filter(|ms| (1_000..2_000).contains(ms)).collect();
        assert_eq!(second.len(), 10, "client {client}: ten writes a second: {second:?}");
        assert!(second.windows(2).all(|w| w[1] - w[0] == 100), "client {client} keeps its phase: {second:?}");
    }
    let mut phases: Vec<u64> = got.iter().map(|w| w.last().unwrap().0 % 100).collect();
    phases.sort_unstable();
    phases.dedup();
    assert_eq!(phases.len(), 10, "ten clients, ten moments in the gap: {phases:?}");
}

/// A batch carries each symbol's intervals together and the hub finds a symbol's topics once for them: each
/// update still reaches exactly its own topic's subscribers, once, in the batch's order; nothing goes to the
/// intervals nobody holds; a symbol that comes back later in the batch (its aggregator's next turn) is found
/// again; and the actors get every topic's partial at its pace.
#[test]
fn a_batch_of_a_symbols_intervals_reaches_exactly_the_subscribed_topics_in_order_once() {
    let mut hub = Hub::new(&HubSettings { max_updates_per_second: 10, flush_window_ms: 10 });
    let epoch = hub.topics.grid().epoch;
    let (first, second) = (Arc::new(Outbox::new(1 << 20)), Arc::new(Outbox::new(1 << 20)));
    hub.connect(1, first.clone());
    hub.connect(2, second.clone());
    let held =
        [("BTCUSDT", Interval::S1), ("BTCUSDT", Interval::M1), ("BTCUSDT", Interval::H1), ("ETHUSDT", Interval::S5)];
    hub.subscribe(1, held.iter().map(|(s, i)| ((Symbol::from(*s), *i), None)), protocol::frame::text(b"{}"));
    hub.subscribe(2, [(("ETHUSDT".into(), Interval::M1), None)].into_iter(), protocol::frame::text(b"{}"));
    writes(&first);
    writes(&second);

    // Every interval of three symbols, each bar's price naming its symbol and interval; then BTC's 1s again.
    let symbols = ["BTCUSDT", "ETHUSDT", "XRPUSDT"];
    let price = |s: usize, iv: Interval| (s * 100 + iv.index()) as f64;
    let partial = |symbol: &str, iv: Interval, close: f64| BarUpdate {
        kind: UpdateKind::Partial,
        bar: Bar::from_trade(symbol.into(), iv, 0, close, 1.0),
    };
    let mut updates: Vec<BarUpdate> = symbols
        .iter()
        .enumerate()
        .flat_map(|(s, symbol)| Interval::ALL.iter().map(move |iv| (s, *symbol, *iv)))
        .map(|(s, symbol, iv)| partial(symbol, iv, price(s, iv)))
        .collect();
    updates.push(partial("BTCUSDT", Interval::S1, 999.0));
    let now = epoch + Duration::from_secs(1);
    let sent = hub.publish(&updates, now);
    hub.commit();

    let seen = |frames: Vec<Vec<Value>>| -> Vec<(String, String, f64)> {
        frames
            .into_iter()
            .flatten()
            .map(|f| {
                assert_eq!(f["type"], "price_update");
                let name = |v: &Value| v.as_str().unwrap_or_default().to_string();
                (name(&f["symbol"]), name(&f["interval"]), f["data"]["close"].as_f64().unwrap_or(f64::NAN))
            })
            .collect()
    };
    let expect = |items: &[(&str, Interval, f64)]| -> Vec<(String, String, f64)> {
        items.iter().map(|(s, iv, close)| (s.to_string(), iv.to_string(), *close)).collect()
    };
    assert_eq!(
        seen(writes(&first)),
        expect(&[
            ("BTCUSDT", Interval::S1, price(0, Interval::S1)),
            ("BTCUSDT", Interval::M1, price(0, Interval::M1)),
            ("BTCUSDT", Interval::H1, price(0, Interval::H1)),
            ("ETHUSDT", Interval::S5, price(1, Interval::S5)),
        ]),
        "the first client's four topics, once each, in the batch's order, nothing else"
    );
    assert_eq!(seen(writes(&second)), expect(&[("ETHUSDT", Interval::M1, price(1, Interval::M1))]));
    let paced: Vec<(Symbol, Interval, f64)> =
        sent.iter().map(|u| (u.bar.symbol.clone(), u.bar.interval, u.bar.close)).collect();
    let all: Vec<(Symbol, Interval, f64)> =
        updates[..48].iter().map(|u| (u.bar.symbol.clone(), u.bar.interval, u.bar.close)).collect();
    assert_eq!(paced, all, "the actors get each topic's first partial, in order; BTC's second waits for its slot");

    // BTC's 1s came back in the batch after its slot was taken: it goes in the next slot, to its topic only.
    hub.flush_due(now + Duration::from_millis(100));
    hub.commit();
    assert_eq!(seen(writes(&first)), expect(&[("BTCUSDT", Interval::S1, 999.0)]));
    assert_eq!(seen(writes(&second)), Vec::new());
}

/// A closed bar is never conflated or merged away when it shares a write: each client gets every topic's
/// closed bar once, before the next bar's partial, and separate from it.
#[test]
fn closed_bars_keep_their_own_frames_in_a_shared_write() {
    let mut hub = Hub::new(&HubSettings { max_updates_per_second: 10, flush_window_ms: 10 });
    let epoch = hub.topics.grid().epoch;
    let symbols = ["AAA", "BBB", "CCC"];
    let topics: Vec<Topic> = symbols.iter().map(|s| (Symbol::from(*s), Interval::S1)).collect();
    let outbox = Arc::new(Outbox::new(1 << 20));
    hub.connect(1, outbox.clone());
    hub.subscribe(1, topics.iter().map(|t| (t.clone(), None)), protocol::frame::text(b"{}"));
    let mut frames = Vec::new();
    for ms in 0..1_000u64 {
        let now = epoch + Duration::from_millis(ms);
        if ms % 20 == 0 {
            for symbol in symbols {
                let second = (ms / 200) as i64 * 1_000;
                let mut updates = Vec::new();
                if ms % 200 == 0 && ms > 0 {
                    let mut closed = Bar::from_trade(symbol.into(), Interval::S1, second - 1_000, ms as f64, 1.0);
                    closed.closed = true;
                    updates.push(BarUpdate { kind: UpdateKind::Closed, bar: closed });
                }
                let bar = Bar::from_trade(symbol.into(), Interval::S1, second, ms as f64 + 0.5, 1.0);
                updates.push(BarUpdate { kind: UpdateKind::Partial, bar });
                hub.publish(&updates, now);
                hub.commit();
            }
        }
        if ms % 5 == 0 {
            hub.flush_due(now);
            hub.commit();
        }
        frames.extend(writes(&outbox).into_iter().flatten());
    }
    for symbol in symbols {
        let mine: Vec<&Value> = frames.iter().filter(|f| f["symbol"] == symbol).collect();
        let closed: Vec<i64> = mine
            .iter()
            .filter(|f| f["data"]["closed"] == true)
            .map(|f| f["data"]["timestamp"].as_i64().unwrap())
            .collect();
        assert_eq!(closed, [0, 1_000, 2_000, 3_000], "{symbol}: every closed bar once, in order");
        let times: Vec<i64> = mine.iter().map(|f| f["data"]["timestamp"].as_i64().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{symbol}: nothing of a bar after the next one: {times:?}");
    }
}

/// One step of the random sequence of [`counters_equal_a_full_recount`].
#[derive(Debug, Clone)]
enum Step {
    Connect {
        client: u8,
        small: bool,
    },
    Subscribe {
        client: u8,
        topics: Vec<(u8, u8)>,
    },
    Unsubscribe {
        client: u8,
        topics: Vec<(u8, u8)>,
    },
    Disconnect {
        client: u8,
    },
    /// A partial update of one topic: its fan-out drops clients whose outbox overflows.
    Publish {
        symbol: u8,
        interval: u8,
    },
}

fn random_topic((symbol, interval): (u8, u8)) -> Topic {
    (format!("S{}USDT", symbol % 4).as_str().into(), Interval::ALL[interval as usize % 3])
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    let topics = || proptest::collection::vec((any::<u8>(), any::<u8>()), 0..5);
    prop_oneof![
        (0u8..6, any::<bool>()).prop_map(|(client, small)| Step::Connect { client, small }),
        (0u8..6, topics()).prop_map(|(client, topics)| Step::Subscribe { client, topics }),
        (0u8..6, topics()).prop_map(|(client, topics)| Step::Unsubscribe { client, topics }),
        (0u8..6).prop_map(|client| Step::Disconnect { client }),
        (any::<u8>(), any::<u8>()).prop_map(|(symbol, interval)| Step::Publish { symbol, interval }),
    ]
}

proptest::proptest! {
    /// The counters `/api/stats` reads are kept up to date on every change; after any sequence of
    /// connects, subscribes, unsubscribes, disconnects and slow clients dropped by the fan-out they equal
    /// what walking every client counts.
    #[test]
    fn counters_equal_a_full_recount(steps in proptest::collection::vec(step(), 0..80)) {
        let mut hub = Hub::new(&HubSettings { max_updates_per_second: 1000, ..Default::default() });
        let ack = || protocol::frame::text(b"{}");
        for (i, step) in steps.into_iter().enumerate() {
            match step {
                // A small outbox overflows after a few frames: the hub then drops the client itself.
                Step::Connect { client, small } => {
                    hub.connect(client.into(), Arc::new(Outbox::new(if small { 300 } else { 1 << 20 })))
                }
                Step::Subscribe { client, topics } => hub.subscribe(
                    client.into(),
                    topics.into_iter().map(|t| (random_topic(t), None)),
                    ack(),
                ),
                Step::Unsubscribe { client, topics } => {
                    let topics: Vec<Topic> = topics.into_iter().map(random_topic).collect();
                    hub.unsubscribe(client.into(), &topics, ack())
                }
                Step::Disconnect { client } => hub.remove_client(client.into()),
                Step::Publish { symbol, interval } => {
                    let (symbol, interval) = random_topic((symbol, interval));
                    let mut b = bar(1.0 + i as f64, 60_000);
                    b.symbol = symbol;
                    b.interval = interval;
                    let topic = (b.symbol.clone(), b.interval);
                    if let Some(state) = hub.topics.get_mut(&topic) {
                        state.fan_out(&mut hub.staged, &b, false);
                    }
                    hub.commit();
                }
            }
            proptest::prop_assert_eq!(hub.counters.snapshot(), hub.recount());
        }
    }
}
