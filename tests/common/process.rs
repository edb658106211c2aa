//! candlecast as a real child process (the `candlecast` binary), for tests that kill a node with
//! SIGKILL: an in-process server cannot die without taking the test with it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use super::{test_layers, TestServer, Toml};

impl TestServer {
    /// Runs the binary with the test defaults and `overrides` (as `CANDLECAST__*` variables) and waits
    /// until it serves HTTP.
    pub async fn start_process(overrides: &[(&str, Toml)]) -> TestServer {
        // Its own store directory, as for in-process servers: two nodes never share one.
        let data = tempfile::tempdir().expect("temporary store directory");
        let mut server = TestServer::start_process_in(data.path(), overrides).await;
        server._data = Some(data);
        server
    }

    /// Like [`TestServer::start_process`], with the store in `dir`, which outlives the server: start a
    /// second one on the same `dir` (after [`TestServer::terminate`]) to test a restart.
    pub async fn start_process_in(dir: &std::path::Path, overrides: &[(&str, Toml)]) -> TestServer {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_candlecast"));
        cmd.env("CANDLECAST__LOG__LEVEL", "warn").stdout(Stdio::piped()).stderr(Stdio::null());
        for (key, value) in test_layers(dir, overrides) {
            let name = format!("CANDLECAST__{}", key.replace('.', "__").to_ascii_uppercase());
            match value {
                Toml::String(s) => cmd.env(name, s),
                other => cmd.env(name, other.to_string()),
            };
        }
        let mut child = cmd.spawn().expect("the candlecast binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
        // Reads the "listening on" line, then keeps draining stdout so the child never blocks on it.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("candlecast listening on http://") {
                    let _ = addr_tx.send(addr.trim().parse().expect("an address"));
                }
            }
        });
        let addr = tokio::task::spawn_blocking(move || addr_rx.recv_timeout(std::time::Duration::from_secs(60)))
            .await
            .expect("join")
            .expect("the child prints its address");
        let server = TestServer { addr, stop: None, thread: None, process: Some(child), _data: None };
        server.wait_for("/health", 200).await;
        server
    }

    /// SIGTERM, as a service manager stops it, and waits for the exit (its store is then closed).
    pub fn terminate(&mut self) {
        let mut child = self.process.take().expect("a server running as a child process");
        let ok = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill runs");
        assert!(ok.success(), "kill -TERM");
        let status = child.wait().expect("the server exits");
        assert!(status.success(), "a clean exit after SIGTERM: {status}");
    }

    /// SIGKILL, as `kill -9`, of a server started with [`TestServer::start_process`].
    pub fn kill9(&mut self) {
        let mut child = self.process.take().expect("a server running as a child process");
        let _ = child.kill();
        let _ = child.wait();
    }
}
