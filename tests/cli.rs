//! The binary: environment overrides, unknown keys, the "listening on" line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn unknown_keys_stop_the_start_with_their_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_candlecast")).env("CANDLECAST__SERVER__PROT", "8001").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("prot"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[feed]\nsorce = \"simulated\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_candlecast")).arg("--config").arg(&file).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sorce"));
}

#[test]
fn environment_sets_the_port_and_the_address_is_printed() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_candlecast"))
        .env("CANDLECAST__STORE__PATH", data.path())
        .env("CANDLECAST__SERVER__PORT", "0")
        .env("CANDLECAST__SERVER__HOST", "127.0.0.1")
        .env("CANDLECAST__FEED__SYMBOLS", "[\"BTCUSDT\"]")
        .env("CANDLECAST__FEED__SIMULATED__BACKFILL_DAYS", "0")
        .env("CANDLECAST__FEED__SIMULATED__BACKFILL_FINE_HOURS", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("candlecast listening on http://127.0.0.1:"), "{line}");
    let port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0);
}

/// The listen backlog is what the config says, not std's fixed 128: with nobody accepting, 600 clients all
/// complete their handshake (with a backlog of 128 the rest would hang until their connect times out).
#[tokio::test]
async fn the_listen_backlog_holds_a_burst_of_connects() {
    let listener = candlecast::bind_listener("127.0.0.1", 0, 1024).unwrap();
    let addr = listener.local_addr().unwrap();
    let connects =
        (0..600).map(|_| tokio::time::timeout(std::time::Duration::from_secs(3), tokio::net::TcpStream::connect(addr)));
    let results = futures_util::future::join_all(connects).await;
    let connected = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    assert_eq!(connected, 600);
    drop(listener);
}

#[test]
fn cluster_roles_without_redis_stop_the_start_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_candlecast")).env("CANDLECAST__NODE__ROLE", "edge").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("node.role = \"edge\" needs redis.url"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_candlecast"))
        .env("CANDLECAST__REDIS__URL", "http://:topsecret@host")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("redis.url") && !stderr.contains("topsecret"), "{stderr}");
}
