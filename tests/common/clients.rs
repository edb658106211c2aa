//! Real Socket.IO clients as subprocesses: python-socketio (from the venv scripts/test.sh creates) and
//! socket.io-client (npm ci in tests/socketio). Their scripts print one JSON object per line,
//! `{"event": ..., "data": ...}`, which the tests read and assert on. A missing client is a failure
//! that says how to install it, never a skip.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The scripts' folder, `tests/socketio`.
pub fn scripts_dir() -> PathBuf {
    repo().join("tests/socketio")
}

/// The Python with python-socketio installed: `$CANDLECAST_TEST_PYTHON`, or `target/pyenv-tests`.
pub fn python() -> PathBuf {
    let path = std::env::var_os("CANDLECAST_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/pyenv-tests/bin/python"));
    assert!(
        path.is_file(),
        "python-socketio is not installed at {}: run scripts/test.sh, or `python3 -m venv target/pyenv-tests && target/pyenv-tests/bin/pip install \"python-socketio[client]\" requests`",
        path.display()
    );
    path
}

fn node_client_ready() {
    let dir = scripts_dir().join("node_modules/socket.io-client");
    assert!(dir.is_dir(), "socket.io-client is not installed: run scripts/test.sh, or `cd tests/socketio && npm ci`");
}

/// A running client script.
pub struct ClientProcess {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: tokio::task::JoinHandle<String>,
    /// Every event read so far.
    pub events: Vec<Value>,
}

impl ClientProcess {
    /// `python tests/socketio/<script> args...`
    pub fn python(script: &str, args: &[&str]) -> ClientProcess {
        let mut cmd = Command::new(python());
        cmd.arg(scripts_dir().join(script)).args(args);
        // Under scripts/test-clock.sh (libfaketime), Python's time.sleep fails with EINVAL when only the wall
        // clock is shifted; shifting its monotonic clock by the same constant keeps its sleeps working.
        cmd.env_remove("FAKETIME_DONT_FAKE_MONOTONIC");
        ClientProcess::spawn(cmd)
    }

    /// `node tests/socketio/client.mjs args...`
    pub fn node(args: &[&str]) -> ClientProcess {
        node_client_ready();
        let mut cmd = Command::new("node");
        cmd.arg(scripts_dir().join("client.mjs")).args(args);
        ClientProcess::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> ClientProcess {
        cmd.current_dir(scripts_dir()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().expect("start the client script");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        ClientProcess { child, lines: BufReader::new(stdout).lines(), stderr, events: Vec::new() }
    }

    /// The data of the next event called `name` (earlier ones are kept in `events`).
    pub async fn next_event(&mut self, name: &str, secs: u64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.next_line()).await {
                Ok(Ok(Some(line))) => line,
                Ok(_) => {
                    let stderr = self.stderr_now().await;
                    panic!("the client ended before {name:?}; events: {:?}; stderr: {stderr}", self.events)
                }
                Err(_) => panic!("no {name:?} from the client within {secs} s; events: {:?}", self.events),
            };
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|_| panic!("client printed a non-JSON line: {line}"));
            self.events.push(v.clone());
            if v["event"] == name {
                return v["data"].clone();
            }
        }
    }

    /// Reads to the end and checks the client exited successfully; returns every event.
    pub async fn finish(mut self, secs: u64) -> Vec<Value> {
        let _ = self.next_event("done", secs).await;
        let status = tokio::time::timeout(Duration::from_secs(secs), self.child.wait())
            .await
            .expect("client exits")
            .expect("wait");
        let stderr = self.stderr_now().await;
        assert!(status.success(), "client failed ({status}); events: {:?}; stderr: {stderr}", self.events);
        self.events
    }

    async fn stderr_now(&mut self) -> String {
        let _ = self.child.start_kill();
        (&mut self.stderr).await.unwrap_or_default()
    }
}

/// The data of the first event called `name`; panics naming what was seen.
pub fn event<'a>(events: &'a [Value], name: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == name)
        .map(|e| &e["data"])
        .unwrap_or_else(|| panic!("no {name:?} event among {events:?}"))
}

/// The data of every event called `name`.
pub fn all<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).map(|e| &e["data"]).collect()
}

/// Waits (up to 10 s) until the server holds no Socket.IO session: every client closed cleanly. Returns
/// the `scripts` stats.
pub async fn wait_no_sessions(server: &super::TestServer) -> Value {
    let none = serde_json::json!({"polling": 0, "websocket": 0});
    for _ in 0..200 {
        let stats = server.stats().await["scripts"].clone();
        if stats["socketio_sessions"] == none {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sessions left open: {}", server.stats().await["scripts"]);
}
