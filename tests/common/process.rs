//! candlecast as a real child process (the `candlecast` binary), for tests that kill a node with
//! SIGKILL: an in-process server cannot die without taking the test with it.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

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
        let server = TestServer::spawn(dir, "warn", overrides, None).await;
        server.wait_for("/health", 200).await;
        server
    }

    /// Like [`TestServer::start_process`], logging at `level` and keeping every line the process prints
    /// (stdout and stderr), for tests of what it logs. Returns as soon as the server printed its address:
    /// it may not be healthy (a test of a failing feed).
    pub async fn start_process_printing(level: &str, overrides: &[(&str, Toml)]) -> (TestServer, Printed) {
        let data = tempfile::tempdir().expect("temporary store directory");
        let printed = Printed::default();
        let mut server = TestServer::spawn(data.path(), level, overrides, Some(printed.clone())).await;
        server._data = Some(data);
        (server, printed)
    }

    /// Runs the binary with its store in `dir`, the test defaults and `overrides` (as `CANDLECAST__*`
    /// variables); returns once it printed the address it listens on. Without `printed`, stderr is
    /// dropped and stdout only read for that address.
    async fn spawn(
        dir: &std::path::Path,
        level: &str,
        overrides: &[(&str, Toml)],
        printed: Option<Printed>,
    ) -> TestServer {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_candlecast"));
        let stderr = if printed.is_some() { Stdio::piped() } else { Stdio::null() };
        cmd.env("CANDLECAST__LOG__LEVEL", level).stdout(Stdio::piped()).stderr(stderr);
        for (key, value) in test_layers(dir, overrides) {
            let name = format!("CANDLECAST__{}", key.replace('.', "__").to_ascii_uppercase());
            match value {
                Toml::String(s) => cmd.env(name, s),
                other => cmd.env(name, other.to_string()),
            };
        }
        let mut child = cmd.spawn().expect("the candlecast binary starts");
        let mut outputs: Vec<Box<dyn Read + Send>> = vec![Box::new(child.stdout.take().expect("piped stdout"))];
        outputs.extend(child.stderr.take().map(|e| Box::new(e) as Box<dyn Read + Send>));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
        for output in outputs {
            let (addr_tx, kept) = (addr_tx.clone(), printed.clone());
            // Reads the "listening on" line, then keeps draining so the child never blocks on its output.
            let reader = std::thread::spawn(move || {
                for line in BufReader::new(output).lines().map_while(Result::ok) {
                    if let Some(addr) = line.strip_prefix("candlecast listening on http://") {
                        let _ = addr_tx.send(addr.trim().parse().expect("an address"));
                    }
                    if let Some(kept) = &kept {
                        kept.push(&line);
                    }
                }
            });
            if let Some(printed) = &printed {
                printed.readers.lock().unwrap_or_else(|e| e.into_inner()).push(reader);
            }
        }
        let addr = tokio::task::spawn_blocking(move || addr_rx.recv_timeout(std::time::Duration::from_secs(60)))
            .await
            .expect("join");
        let addr = addr.unwrap_or_else(|_| {
            let printed = printed.map(|p| p.lines.lock().unwrap_or_else(|e| e.into_inner()).clone());
            panic!("the child printed no address; output: {}", printed.unwrap_or_default())
        });
        TestServer { addr, stop: None, thread: None, process: Some(child), _data: None }
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

/// Every line a server started with [`TestServer::start_process_printing`] printed.
#[derive(Clone, Default)]
pub struct Printed {
    lines: Arc<Mutex<String>>,
    readers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Printed {
    fn push(&self, line: &str) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.push_str(line);
        lines.push('\n');
    }

    /// Everything printed, once the process is gone ([`TestServer::kill9`]): waits for its output to be
    /// read to the end, so nothing it printed last is missed.
    pub fn all(&self) -> String {
        for reader in std::mem::take(&mut *self.readers.lock().unwrap_or_else(|e| e.into_inner())) {
            let _ = reader.join();
        }
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
