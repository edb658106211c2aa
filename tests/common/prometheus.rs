//! A real Prometheus (Debian's `prometheus`, scripts/test-deps.sh installs it) on a free port with its
//! data in a temporary directory, scraping one candlecast every second and evaluating
//! deploy/prometheus/alerts.yml; and `promtool`, the checker operators run. Stopped when dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

pub struct Prometheus {
    pub port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (job `candlecast`) every second, and waits until it is ready.
    pub async fn scraping(target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: candlecast\n    static_configs:\n      - targets: ['{target}']\n",
            rules.display()
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write prometheus.yml");
        let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let child = Command::new("prometheus")
            // scripts/test-clock.sh shifts the tests' clock with libfaketime; Prometheus needs the real one.
            .env_remove("LD_PRELOAD")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus runs (scripts/test-deps.sh installs it)");
        let prometheus = Prometheus { port, _dir: dir, child };
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        for _ in 0..600 {
            if reqwest::get(&ready).await.is_ok_and(|r| r.status().is_success()) {
                return prometheus;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("prometheus did not become ready within a minute");
    }

    /// `GET /api/v1/<path>`: the `data` of a successful answer.
    pub async fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let url = format!("http://127.0.0.1:{}/api/v1/{path}", self.port);
        let body: Value = reqwest::Client::new()
            .get(url)
            .query(query)
            .send()
            .await
            .expect("prometheus answers")
            .json()
            .await
            .expect("JSON");
        assert_eq!(body["status"], "success", "{body}");
        body["data"].clone()
    }

    /// An instant query's samples: (labels, value).
    pub async fn query(&self, promql: &str) -> Vec<(Value, f64)> {
        let data = self.api("query", &[("query", promql)]).await;
        data["result"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| {
                        let v = r["value"][1].as_str()?.parse().ok()?;
                        Some((r["metric"].clone(), v))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `promtool` with `args`, `stdin` on its standard input; returns its output.
pub fn promtool(args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (scripts/test-deps.sh installs prometheus, which has it)");
    let mut input = child.stdin.take().expect("piped stdin");
    input.write_all(stdin).expect("write to promtool");
    drop(input);
    child.wait_with_output().expect("promtool finishes")
}

/// promtool's answer as one string, for assertion messages.
pub fn said(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}
