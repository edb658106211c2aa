//! A real `redis-server` on a free port in a temporary directory, without persistence (a restart after
//! kill -9 comes back empty, as a crashed cache would). Stopped when dropped. scripts/test.sh installs
//! Debian's redis-server when it is missing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    password: Option<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(None)
    }

    /// With `requirepass`, for tests of wrong credentials.
    pub fn start_with_password(password: &str) -> RedisServer {
        Self::start_with(Some(password.to_owned()))
    }

    fn start_with(password: Option<String>) -> RedisServer {
        let port = free_port();
        let mut server = RedisServer { port, password, dir: tempfile::tempdir().expect("temp dir"), child: None };
        server.spawn();
        server
    }

    /// `redis://127.0.0.1:<port>`, with the password when there is one.
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// SIGKILL, as `kill -9`: no shutdown, no save.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port (empty: there is no persistence).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Runs one command (inline protocol) and returns the raw reply; for assertions on keys.
    pub fn command(&self, args: &[&str]) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis-server");
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if let Some(p) = &self.password {
            write_command(&mut stream, &["AUTH", p]);
            read_reply(&mut stream);
        }
        write_command(&mut stream, args);
        read_reply(&mut stream)
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        // scripts/test-clock.sh shifts the tests' clock with libfaketime, under which redis-server cannot start.
        cmd.env_remove("LD_PRELOAD");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        self.child = Some(cmd.spawn().expect("redis-server runs (scripts/test.sh installs it)"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                write_command(&mut s, &["PING"]);
                // +PONG, or -NOAUTH when a password is required: either way the server is up.
                if !read_reply(&mut s).is_empty() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {}", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn write_command(stream: &mut TcpStream, args: &[&str]) {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(out.as_bytes()).expect("write to redis-server");
}

/// Reads what is available of one reply (enough for the small replies tests look at).
fn read_reply(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 1 << 20];
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if reply_complete(&got) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Whether `data` holds one whole RESP2 reply.
fn reply_complete(data: &[u8]) -> bool {
    fn parse(d: &[u8]) -> Option<usize> {
        let line_end = d.windows(2).position(|w| w == b"\r\n")?;
        let head = std::str::from_utf8(&d[1..line_end]).ok()?;
        let rest = line_end + 2;
        match d.first()? {
            b'+' | b'-' | b':' => Some(rest),
            b'$' => {
                let n: i64 = head.parse().ok()?;
                if n < 0 {
                    return Some(rest);
                }
                let end = rest + n as usize + 2;
                (d.len() >= end).then_some(end)
            }
            b'*' => {
                let n: i64 = head.parse().ok()?;
                let mut at = rest;
                for _ in 0..n.max(0) {
                    at += parse(&d[at..])?;
                }
                Some(at)
            }
            _ => None,
        }
    }
    parse(data).is_some()
}
