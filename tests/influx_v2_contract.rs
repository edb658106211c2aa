//! The InfluxDB v2 dialect against InfluxDB 2.x's documented HTTP contract. No 2.x server can be
//! installed here, so this is a local HTTP server answering with the documented (recorded) responses:
//! `POST /api/v2/write?org=&bucket=&precision=` → 204, `POST /api/v2/query?org=` with a JSON Flux body
//! → annotated CSV, `401 {"code":"unauthorized","message":"unauthorized access"}` for a wrong token,
//! `404 {"code":"not found","message":"bucket \"..\" not found"}` for a missing bucket. It checks the
//! requests candlecast sends and how it reads the answers; it is not a real server (see README).

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use candlecast_actors::model::{Bar, Interval, Symbol};
use candlecast_actors::persist::InfluxV2 as V2;
use candlecast_actors::persist::{
    encode_line_protocol, InfluxApi, InfluxSettings, Range, Secret, Store, StoreError, StoredBar,
};
use common::history::{eventually, small};
use common::{TestServer, Toml};
use serde_json::Value;

const TOKEN: &str = "secret-token-42";
const ORG: &str = "acme";
const BUCKET: &str = "bars";

/// An annotated-CSV answer as InfluxDB 2.x writes it for our pivoted query (CRLF line ends, a leading
/// annotation column, one table).
const ANSWER: &str = "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,string,string,string,string,double,double,double,double,long,long,double\r\n\
#group,false,false,true,true,false,false,false,false,false,false,false,false,false,false,false,false\r\n\
#default,_result,,,,,,,,,,,,,,,\r\n\
,result,table,_start,_stop,_time,_measurement,interval,source,symbol,close,high,low,open,revised,trades,volume\r\n\
,,0,2023-11-14T00:00:00Z,2023-11-15T00:00:00Z,2023-11-14T22:14:00Z,bars,1m,simulated,BTCUSDT,37010.5,37020,36990.25,37000,1700000100000,42,1.5\r\n\
,,0,2023-11-14T00:00:00Z,2023-11-15T00:00:00Z,2023-11-14T22:13:00Z,bars,1m,simulated,BTCUSDT,37000,37005,36995,36998.5,1700000040000,17,0.25\r\n\
\r\n";

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: HashMap<String, String>,
    headers: HashMap<String, String>,
    body: String,
}

/// The fake InfluxDB 2.x; stops with the test process.
struct Fake {
    url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Fake {
    fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let log = requests.clone();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let log = web::Data::new(log);
                let server = HttpServer::new(move || App::new().app_data(log.clone()).default_service(web::to(answer)))
                    .workers(1)
                    .listen(listener)
                    .unwrap()
                    .run();
                let _ = server.await;
            })
        });
        Fake { url, requests }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    fn settings(&self, token: &str, bucket: &str) -> InfluxSettings {
        InfluxSettings {
            api: InfluxApi::V2,
            url: self.url.clone(),
            org: ORG.into(),
            bucket: bucket.into(),
            token: Secret::new(token),
            ..Default::default()
        }
    }
}

fn json_error(status: u16, code: &str, message: &str) -> HttpResponse {
    let body = serde_json::json!({ "code": code, "message": message });
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
}

/// The documented answers: token first, then organization and bucket, then the result.
async fn answer(req: HttpRequest, body: web::Bytes, log: web::Data<Arc<Mutex<Vec<Recorded>>>>) -> HttpResponse {
    let query: HashMap<String, String> = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let headers =
        req.headers().iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())).collect();
    let body = String::from_utf8_lossy(&body).into_owned();
    log.lock().unwrap().push(Recorded {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query: query.clone(),
        headers,
        body: body.clone(),
    });
    if req.headers().get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Token {TOKEN}")) {
        return json_error(401, "unauthorized", "unauthorized access");
    }
    if query.get("org").map(String::as_str) != Some(ORG) {
        return json_error(
            404,
            "not found",
            &format!("organization name {:?} not found", query.get("org").cloned().unwrap_or_default()),
        );
    }
    match req.path() {
        "/api/v2/write" => match query.get("bucket").map(String::as_str) {
            Some(BUCKET) => HttpResponse::NoContent().finish(),
            other => json_error(404, "not found", &format!("bucket {:?} not found", other.unwrap_or(""))),
        },
        "/api/v2/query" => {
            let flux = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["query"].as_str().map(str::to_owned))
                .unwrap_or_default();
            if !flux.contains(&format!("from(bucket: \"{BUCKET}\")")) {
                return json_error(
                    404,
                    "not found",
                    "failed to initialize execute state: could not find bucket \"nope\"",
                );
            }
            // Rows only for a 1m range query; everything else (what a feed asks at start) is empty.
            let csv = if flux.contains("r.interval == \"1m\"") && !flux.contains("stop: time(v: 4102444800000000000)") {
                ANSWER
            } else {
                "\r\n"
            };
            HttpResponse::Ok().content_type("text/csv; charset=utf-8").body(csv)
        }
        _ => HttpResponse::NotFound().finish(),
    }
}

fn stored(open_time: i64, close: f64) -> StoredBar {
    let mut bar = Bar::from_trade("BTCUSDT".into(), Interval::M1, open_time, close, 0.5);
    bar.closed = true;
    StoredBar { bar, source: "simulated".into(), revised: open_time + 61_000 }
}

#[actix_rt::test]
async fn a_write_is_the_documented_request() {
    let fake = Fake::start();
    let store = V2::store(&fake.settings(TOKEN, BUCKET)).unwrap();
    let bars: Arc<[StoredBar]> = vec![stored(1_699_999_980_000, 37_000.5), stored(1_700_000_040_000, 37_001.0)].into();
    store.write(bars.clone()).await.unwrap();
    let sent = fake.requests();
    assert_eq!(sent.len(), 1);
    let w = &sent[0];
    assert_eq!((w.method.as_str(), w.path.as_str()), ("POST", "/api/v2/write"));
    assert_eq!(
        w.query,
        HashMap::from([
            ("org".into(), ORG.into()),
            ("bucket".into(), BUCKET.into()),
            ("precision".into(), "ms".into())
        ])
    );
    assert_eq!(w.headers["authorization"], format!("Token {TOKEN}"));
    assert_eq!(w.body, encode_line_protocol(&bars));
    assert!(w.body.starts_with("bars,symbol=BTCUSDT,interval=1m,source=simulated open=37000.5,"), "{}", w.body);
}

#[actix_rt::test]
async fn queries_send_flux_and_read_the_annotated_csv() {
    let fake = Fake::start();
    let store = V2::store(&fake.settings(TOKEN, BUCKET)).unwrap();
    let symbol: Symbol = "BTCUSDT".into();
    let (start, end) = (1_699_920_000_000, 1_700_006_400_000);
    let bars = store
        .bars(&symbol, Range { interval: Interval::M1, start: Some(start), end: Some(end), limit: 10 })
        .await
        .unwrap();
    let got: Vec<(i64, f64, f64, f64, f64, f64, u64)> =
        bars.iter().map(|b| (b.open_time, b.open, b.high, b.low, b.close, b.volume, b.trades)).collect();
    assert_eq!(
        got,
        [
            (1_699_999_980_000, 36_998.5, 37_005.0, 36_995.0, 37_000.0, 0.25, 17),
            (1_700_000_040_000, 37_000.0, 37_020.0, 36_990.25, 37_010.5, 1.5, 42)
        ]
    );
    assert!(bars.iter().all(|b| b.closed && b.symbol == symbol));

    let q = &fake.requests()[0];
    assert_eq!((q.method.as_str(), q.path.as_str()), ("POST", "/api/v2/query"));
    assert_eq!(q.query, HashMap::from([("org".into(), ORG.into())]));
    assert_eq!(q.headers["authorization"], format!("Token {TOKEN}"));
    assert_eq!(q.headers["content-type"], "application/json");
    assert_eq!(q.headers["accept"], "application/csv");
    let body: Value = serde_json::from_str(&q.body).unwrap();
    assert_eq!(body["type"], "flux");
    assert_eq!(body["dialect"]["annotations"], serde_json::json!(["datatype", "group", "default"]));
    let flux = body["query"].as_str().unwrap();
    for part in [
        "from(bucket: \"bars\")",
        &format!("range(start: time(v: {}), stop: time(v: {}))", start * 1_000_000, end * 1_000_000),
        "r._measurement == \"bars\" and r.symbol == \"BTCUSDT\" and r.interval == \"1m\"",
        "pivot(rowKey: [\"_time\"], columnKey: [\"_field\"], valueColumn: \"_value\")",
        "sort(columns: [\"_time\"], desc: true)",
        "limit(n: 12)",
    ] {
        assert!(flux.contains(part), "{part} missing from:\n{flux}");
    }

    store.revised_since(&symbol, Interval::M1, 1_700_000_000_000, 5).await.unwrap();
    let flux: Value = serde_json::from_str(&fake.requests()[1].body).unwrap();
    assert!(flux["query"].as_str().unwrap().contains("filter(fn: (r) => r.revised >= 1700000000000)"), "{flux}");
}

#[actix_rt::test]
async fn a_wrong_token_and_a_missing_bucket_are_named() {
    let fake = Fake::start();
    let wrong = V2::store(&fake.settings("not-the-token", BUCKET)).unwrap();
    for result in [wrong.check().await, wrong.write(vec![stored(0, 1.0)].into()).await] {
        match result {
            Err(StoreError::Unauthorized(m)) => {
                assert!(m.contains("401") && m.contains("unauthorized access") && !m.contains("not-the-token"), "{m}")
            }
            other => panic!("expected Unauthorized, got {other:?}"),
        }
    }
    let missing = V2::store(&fake.settings(TOKEN, "nope")).unwrap();
    let check = missing.check().await.unwrap_err();
    assert!(matches!(check, StoreError::Missing(ref m) if m.contains("could not find bucket")), "{check}");
    let write = missing.write(vec![stored(0, 1.0)].into()).await.unwrap_err();
    assert!(write.is_configuration() && write.to_string().contains("bucket \"nope\" not found"), "{write}");
}

fn v2_store(fake: &Fake, token: &str) -> Vec<(&'static str, Toml)> {
    vec![
        ("store.kind", Toml::String("influxdb".into())),
        ("store.influxdb.api", Toml::String("v2".into())),
        ("store.influxdb.url", Toml::String(fake.url.clone())),
        ("store.influxdb.org", Toml::String(ORG.into())),
        ("store.influxdb.bucket", Toml::String(BUCKET.into())),
        ("store.influxdb.token", Toml::String(token.into())),
        ("store.batch_ms", Toml::Integer(200)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_a_wrong_token_at_start_and_writes_closed_bars_with_the_right_one() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().unwrap();
    let err = TestServer::start_error(dir.path(), &small(&v2_store(&fake, "wrong-token-7")));
    assert!(err.contains("refused our credentials") && err.contains("unauthorized access"), "{err}");
    assert!(!err.contains("wrong-token-7"), "the token never appears in messages: {err}");

    let server = TestServer::start(&small(&v2_store(&fake, TOKEN))).await;
    eventually("closed bars written to the v2 API", || async {
        fake.requests().iter().any(|r| {
            r.path == "/api/v2/write"
                && r.body.lines().any(|l| l.starts_with("bars,symbol=BTCUSDT,interval=1s,source=simulated "))
        })
    })
    .await;
    let p = server.stats().await["persistence"].clone();
    assert_eq!((p["kind"].as_str(), p["healthy"].as_bool()), (Some("influxdb-v2"), Some(true)), "{p}");
    // History older than the in-memory window is read back through a Flux query.
    let (status, old) =
        server.get_json("/api/historical/BTCUSDT?interval=1m&start_time=1699920000000&end_time=1700006400000").await;
    assert_eq!(status, 200, "{old}");
    let closes: Vec<f64> = old["data"].as_array().unwrap().iter().map(|b| b["close"].as_f64().unwrap()).collect();
    assert_eq!(closes, [37_000.0, 37_010.5]);
}
