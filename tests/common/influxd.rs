//! A real InfluxDB 1.x server (Debian's `influxd`) for a test: its own config file, data in a temporary
//! directory, HTTP and RPC on free ports. Stopped (and its files removed) when dropped; can be killed and
//! started again on the same port and data to play an outage.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// See the module documentation.
pub struct Influxd {
    pub port: u16,
    dir: tempfile::TempDir,
    config: PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

impl Influxd {
    /// Starts influxd and waits until it answers `/ping`.
    pub async fn start() -> Influxd {
        let dir = tempfile::tempdir().expect("influxd directory");
        let (port, rpc_port) = (free_port(), free_port());
        let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        let config = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc_port}\"\n\
             [meta]\n  dir = \"{meta}\"\n\
             [data]\n  dir = \"{data}\"\n  wal-dir = \"{wal}\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n\
             [monitor]\n  store-enabled = false\n",
            meta = path("meta"),
            data = path("data"),
            wal = path("wal"),
        );
        let config_path = dir.path().join("influxdb.conf");
        std::fs::write(&config_path, config).expect("influxd config");
        let mut server = Influxd { port, dir, config: config_path, child: None };
        server.run().await;
        server
    }

    async fn run(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("influxd.log")).expect("influxd log");
        let child = Command::new("influxd")
            .arg("run")
            .arg("-config")
            .arg(&self.config)
            // scripts/test-clock.sh shifts the tests' clock with libfaketime, under which influxd cannot start.
            .env_remove("LD_PRELOAD")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("influxd not found: install Debian's influxdb package (scripts/test.sh does)");
        self.child = Some(child);
        for _ in 0..600 {
            if let Ok(r) = reqwest::get(format!("{}/ping", self.url())).await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(self.dir.path().join("influxd.log")).unwrap_or_default();
        panic!("influxd did not answer /ping within a minute:\n{log}");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would); its data stays for [`Influxd::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data.
    pub async fn restart(&mut self) {
        self.kill();
        self.run().await;
    }

    /// Runs an InfluxQL statement (`db` may be empty) and returns the JSON answer.
    pub async fn query(&self, db: &str, q: &str) -> Value {
        let r = reqwest::Client::new()
            .post(format!("{}/query", self.url()))
            .query(&[("db", db), ("epoch", "ms"), ("q", q)])
            .send()
            .await
            .expect("influxd query");
        r.json().await.expect("influxd answers JSON")
    }

    pub async fn create_database(&self, name: &str) {
        let answer = self.query("", &format!("CREATE DATABASE \"{name}\"")).await;
        assert!(answer["results"][0].get("error").is_none(), "{answer}");
    }

    /// `SELECT count(close) ...` of one symbol and interval with `start <= time < end` (ms).
    pub async fn count_bars(&self, db: &str, symbol: &str, interval: &str, start: i64, end: i64) -> u64 {
        let q = format!("SELECT count(\"close\") FROM bars WHERE \"symbol\" = '{symbol}' AND \"interval\" = '{interval}' AND time >= {start}ms AND time < {end}ms");
        let answer = self.query(db, &q).await;
        answer["results"][0]["series"][0]["values"][0][1].as_u64().unwrap_or(0)
    }

    /// Rows (time, close, trades) of one symbol and interval with `start <= time < end` (ms), ascending.
    pub async fn bars(&self, db: &str, symbol: &str, interval: &str, start: i64, end: i64) -> Vec<(i64, f64, u64)> {
        let q = format!("SELECT \"close\", \"trades\" FROM bars WHERE \"symbol\" = '{symbol}' AND \"interval\" = '{interval}' AND time >= {start}ms AND time < {end}ms");
        let answer = self.query(db, &q).await;
        let rows = answer["results"][0]["series"][0]["values"].as_array().cloned().unwrap_or_default();
        rows.iter().map(|r| (r[0].as_i64().unwrap(), r[1].as_f64().unwrap(), r[2].as_u64().unwrap())).collect()
    }
}

impl Drop for Influxd {
    fn drop(&mut self) {
        self.kill();
    }
}
