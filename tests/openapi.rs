//! The OpenAPI document against the server: it lists every route the handlers mount and no other, every
//! documented route answers, `/docs` renders it without outside assets, and Schemathesis (a real
//! property-based API fuzzer) finds no 5xx, no undocumented status and no answer that breaks its schema.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{TestServer, Toml};
use serde_json::Value;

/// The key the Schemathesis run sends: admin, script and trader key at once, so the write routes are
/// reached (and their "missing key" answers checked).
const KEY: &str = "openapi-test-key-0123456789abcdef";

/// `(METHOD, /path/{param})` of every actix route attribute (`#[get("..")]`, `#[route(.., method = "..")]`)
/// under src/.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let mut files = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    let mut routes = BTreeSet::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).expect("read src").map(|e| e.expect("entry").path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a source file");
        for line in text.lines().map(str::trim) {
            for method in ["get", "post", "put", "patch", "delete"] {
                if let Some(rest) = line.strip_prefix(&format!("#[{method}(\"")) {
                    let route = rest.split('"').next().expect("a path");
                    routes.insert((method.to_ascii_uppercase(), route.to_owned()));
                }
            }
            if let Some(rest) = line.strip_prefix("#[route(\"") {
                let route = rest.split('"').next().expect("a path");
                let method = rest.split("method = \"").nth(1).and_then(|m| m.split('"').next()).expect("a method");
                routes.insert((method.to_ascii_uppercase(), route.to_owned()));
            }
        }
    }
    routes
}

fn routes_in_document(doc: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            routes.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    routes
}

async fn document(server: &TestServer) -> Value {
    let (status, doc) = server.get_json("/api/openapi.json").await;
    assert_eq!(status, 200);
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_every_mounted_route_and_each_answers() {
    let server = TestServer::start(&[("feed.symbols", Toml::Array(vec![Toml::String("BTCUSDT".into())]))]).await;
    let doc = document(&server).await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);

    let source = routes_in_source();
    let documented = routes_in_document(&doc);
    assert!(source.len() >= 20, "{source:?}");
    let undocumented: Vec<_> = source.difference(&documented).collect();
    let unmounted: Vec<_> = documented.difference(&source).collect();
    assert!(undocumented.is_empty(), "routes missing from /api/openapi.json: {undocumented:?}");
    assert!(unmounted.is_empty(), "documented routes no handler mounts: {unmounted:?}");
    // The only routes registered by hand (`cfg.route`) are the streaming protocols and the dashboard,
    // which docs/protocol.md describes: anything else would escape the comparison above.
    let configure = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/mod.rs")).expect("mod.rs");
    let by_hand: Vec<&str> =
        configure.lines().filter_map(|l| l.split(".route(\"").nth(1)).filter_map(|r| r.split('"').next()).collect();
    assert_eq!(by_hand, ["/ws", "/"], "a REST route registered without a handler attribute");

    // Every documented operation is mounted: it is answered by its handler, never by the 404 fallback.
    let client = reqwest::Client::new();
    for (method, path) in &documented {
        let concrete = path
            .replace("{symbol}", "BTCUSDT")
            .replace("{source}", "simulated")
            .replace("{job_id}", "no-such-job")
            .replace("{id}", "999");
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = client.request(method.clone(), server.url(&concrete)).send().await.expect("request");
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert!(
            !(status == 404 && body.contains("\"no route /")) && status != 405,
            "{method} {concrete} is documented but not mounted: {status} {body}"
        );
    }

    // A documented path asked with another method: 405 naming the allowed ones, as JSON.
    let resp = client.delete(server.url("/api/price/BTCUSDT")).send().await.expect("request");
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers().get("allow").and_then(|v| v.to_str().ok()), Some("GET"));
    let body: Value = resp.json().await.expect("JSON error");
    assert_eq!(body["error"], "method_not_allowed", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_renders_the_document_with_nothing_from_outside() {
    let server = TestServer::start(&[("feed.symbols", Toml::Array(vec![Toml::String("BTCUSDT".into())]))]).await;
    let resp = reqwest::get(server.url("/docs")).await.expect("GET /docs");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"].to_str().is_ok_and(|t| t.starts_with("text/html")));
    let page = resp.text().await.expect("body");
    assert!(page.contains("/api/openapi.json"), "the page loads the document");
    // Offline: no script, style, font or image from another host.
    for outside in ["http://", "https://", "//cdn", "src=\"//", "href=\"//"] {
        assert!(!page.contains(outside), "/docs refers to {outside}...: it must work without internet");
    }
}

/// The Python with Schemathesis: `$CANDLECAST_TEST_PYTHON`, or target/pyenv-tests (scripts/test-deps.sh).
/// Run as `python -c` rather than through the `schemathesis` script, whose first line names the Python of
/// the place the venv was made in (a copied target/ would run another checkout's).
fn schemathesis() -> std::process::Command {
    let python = std::env::var_os("CANDLECAST_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv-tests/bin/python"));
    let installed = std::process::Command::new(&python).args(["-c", "import schemathesis"]).output();
    assert!(
        installed.is_ok_and(|o| o.status.success()),
        "Schemathesis is not installed for {}: run scripts/test-deps.sh (pip install -r tests/openapi/requirements.txt)",
        python.display()
    );
    let mut cmd = std::process::Command::new(python);
    cmd.args([
        "-c",
        "import sys; from schemathesis.cli import schemathesis; sys.argv[0] = 'schemathesis'; schemathesis()",
    ]);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let key = Toml::Array(vec![Toml::String(KEY.into())]);
    let server = TestServer::start(&[
        ("feed.symbols", Toml::Array(vec![Toml::String("BTCUSDT".into())])),
        ("admin.keys", key.clone()),
        ("scripts.keys", key.clone()),
        ("jobs.trader_keys", key),
    ])
    .await;
    let mut cmd = schemathesis();
    let root = env!("CARGO_MANIFEST_DIR");
    let reports = tempfile::tempdir().expect("temp dir");
    let schema = server.url("/api/openapi.json");
    let out = tokio::task::spawn_blocking(move || {
        cmd.current_dir(reports.path())
            .env_remove("LD_PRELOAD")
            .args(["--config-file", &format!("{root}/tests/openapi/schemathesis.toml"), "--no-color", "run", &schema])
            // Every check (Schemathesis 4's default; `--checks all` would override the per-operation
            // exceptions of schemathesis.toml); a fixed seed and example count so that a run is repeatable.
            .args(["--seed", "1", "--max-examples", "15", "--workers", "1"])
            .args(["--generation-database", "none", "--header", &format!("Authorization: Bearer {KEY}")])
            .output()
            .expect("schemathesis runs")
    })
    .await
    .expect("join");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found failures:\n{said}");
    assert!(said.contains("Tested: 2"), "schemathesis tested the operations:\n{said}");
}
