//! The symbol search over HTTP: a Kite feed loads its instruments master (a saved copy, `file:`, in
//! Kite's CSV format) and `GET /api/symbols?q=`, `GET /symbols/{exchange}` find its instruments, ranked,
//! paged and bounded; plain `GET /api/symbols` still lists the running symbols. The ticker is a closed
//! port: the master is read before the ticker is dialled, and no test here needs a tick.

mod common;

use common::{TestServer, Toml};
use serde_json::Value;

const MASTER: &str = "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,instrument_type,segment,exchange
408065,1594,INFY,INFOSYS,0,,0,0.05,1,EQ,NSE,NSE
738561,2885,RELIANCE,RELIANCE INDUSTRIES,0,,0,0.05,1,EQ,NSE,NSE
128083204,500325,RELIANCE,RELIANCE INDUSTRIES,0,,0,0.05,1,EQ,BSE,BSE
3649281,14255,RELAXO,RELAXO FOOTWEARS,0,,0,0.05,1,EQ,NSE,NSE
4454401,17400,JIOFIN,JIO FINANCIAL SERVICES (RELIANCE),0,,0,0.05,1,EQ,NSE,NSE
256265,1001,NIFTY 50,NIFTY 50,0,,0,0,0,EQ,INDICES,NSE
13368834,52222,NIFTY25DECFUT,NIFTY,0,2025-12-30,0,0.1,75,FUT,NFO-FUT,NFO
";

async fn start() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("instruments.csv");
    std::fs::write(&path, MASTER).unwrap();
    // A port nothing listens on: the ticker's connects fail and are retried; the master is loaded first.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let s = |v: &str| Toml::String(v.into());
    let server = TestServer::start_serving(&[
        ("feed.source", s("kite")),
        ("feed.symbols", Toml::Array(vec![s("NSE:INFY")])),
        ("feed.kite.api_key", s("kitetestkey")),
        ("feed.kite.access_token", s("tok-test")),
        ("feed.kite.ws_url", s(&format!("ws://{closed}"))),
        ("feed.kite.api_url", s(&format!("http://{closed}"))),
        ("feed.kite.instruments_url", s(&format!("file:{}", path.display()))),
        ("feed.kite.backfill_days", Toml::Integer(0)),
        ("feed.kite.backfill_daily_days", Toml::Integer(0)),
    ])
    .await;
    // The master is in once the search finds an instrument that only the master lists.
    for _ in 0..600 {
        if server.get_json("/api/symbols?q=RELAXO").await.1["total"] == 1 {
            return (server, dir);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the Kite master never reached the search: {}", server.get_json("/api/symbols?q=RELAXO").await.1);
}

fn symbols(reply: &Value) -> Vec<String> {
    reply["results"].as_array().unwrap().iter().map(|r| r["symbol"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_is_searched_ranked_paged_and_bounded() {
    let (server, _dir) = start().await;

    // Exact > prefix > substring of the symbol > the name, case-insensitively, every exchange.
    let (status, all) = server.get_json("/api/symbols?q=rel").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(symbols(&all), ["NSE:RELAXO", "BSE:RELIANCE", "NSE:RELIANCE", "NSE:JIOFIN"], "{all}");
    assert_eq!(all["total"], 4);
    let relaxo = &all["results"][0];
    assert_eq!(
        (&relaxo["exchange"], &relaxo["tradingsymbol"], &relaxo["name"], &relaxo["source"], &relaxo["kind"]),
        (
            &Value::from("NSE"),
            &Value::from("RELAXO"),
            &Value::from("RELAXO FOOTWEARS"),
            &Value::from("kite"),
            &Value::from("EQ")
        )
    );
    assert_eq!((relaxo["lot_size"].as_f64(), relaxo["tick_size"].as_f64()), (Some(1.0), Some(0.05)));

    // One exchange, by parameter, by prefix, and by seed 002's route.
    let nse = server.get_json("/api/symbols?exchange=NSE&q=REL").await.1;
    assert_eq!(symbols(&nse), ["NSE:RELAXO", "NSE:RELIANCE", "NSE:JIOFIN"]);
    assert_eq!(symbols(&server.get_json("/api/symbols?q=nse:rel").await.1), symbols(&nse));
    let (status, route) = server.get_json("/symbols/nse?q=REL").await;
    assert_eq!(status, 200);
    assert_eq!(symbols(&route), symbols(&nse));
    let exact = server.get_json("/symbols/BSE?q=reliance").await.1;
    assert_eq!(symbols(&exact), ["BSE:RELIANCE"]);
    let nfo = server.get_json("/symbols/NFO").await.1;
    assert_eq!(symbols(&nfo), ["NFO:NIFTY25DECFUT"]);
    assert_eq!(nfo["results"][0]["lot_size"].as_f64(), Some(75.0));
    let index = server.get_json("/api/symbols?q=NIFTY%2050").await.1;
    assert_eq!(symbols(&index)[0], "NSE:NIFTY 50", "names with a space: {index}");

    // Another exchange in the query than in the path: nothing, not an error.
    let (status, none) = server.get_json("/symbols/NSE?q=BSE:REL").await;
    assert_eq!((status, none["total"].as_u64()), (200, Some(0)), "{none}");

    // Pages are slices of one order, and the running symbol is marked live.
    let mut paged = Vec::new();
    for offset in [0, 2] {
        let page = server.get_json(&format!("/api/symbols?q=rel&limit=2&offset={offset}")).await.1;
        assert_eq!((page["total"].as_u64(), page["limit"].as_u64()), (Some(4), Some(2)));
        paged.extend(symbols(&page));
    }
    assert_eq!(paged, symbols(&all));
    let infy = server.get_json("/api/symbols?q=INFY").await.1;
    assert_eq!(
        (infy["results"][0]["symbol"].as_str(), infy["results"][0]["live"].as_bool()),
        (Some("NSE:INFY"), Some(true))
    );
    assert_eq!(relaxo["live"], false);

    // Without search parameters: the running symbols, as before.
    let (_, list) = server.get_json("/api/symbols").await;
    assert_eq!(list["symbols"], serde_json::json!(["NSE:INFY"]), "{list}");
    assert!(list["details"].is_array() && list.get("results").is_none());

    // Anonymous, so bounded: each budget answers 400 naming the parameter.
    let long = "A".repeat(33);
    for (path, parameter) in [
        (format!("/api/symbols?q={long}"), "q"),
        ("/api/symbols?q=%3Cscript%3E".to_owned(), "q"),
        ("/api/symbols?limit=101".to_owned(), "limit"),
        ("/api/symbols?limit=0".to_owned(), "limit"),
        ("/api/symbols?limit=ten".to_owned(), "limit"),
        ("/api/symbols?offset=10001".to_owned(), "offset"),
        ("/api/symbols?exchange=N-SE".to_owned(), "exchange"),
        ("/symbols/TOOLONGEXCH".to_owned(), "exchange"),
        (format!("/api/symbols?q=NSE:{}", "A".repeat(29)), "q"),
    ] {
        let (status, body) = server.get_json(&path).await;
        assert_eq!(
            (status, body["error"].as_str(), body["parameter"].as_str()),
            (400, Some("invalid_parameter"), Some(parameter)),
            "{path}: {body}"
        );
    }
}
