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

#[test]
fn keys_new_prints_a_fresh_key_and_the_setting_that_accepts_it() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_candlecast")).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let script = run(&["keys", "new"]);
    let key = script.lines().next().unwrap();
    assert_eq!(key.len(), 64, "{script}");
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()), "{script}");
    assert!(script.contains(&format!("[scripts]\nkeys = [\"{key}\"]")), "{script}");
    let admin = run(&["keys", "new", "--role", "admin"]);
    assert_ne!(admin.lines().next(), Some(key), "every key is new");
    assert!(admin.contains("[admin]\nkeys = ["), "{admin}");

    // The printed lines are a configuration the server accepts, with the key in place.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.toml");
    let config: String =
        script.lines().filter(|l| !l.starts_with('#') && *l != key).map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_candlecast")).arg("check-config").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn check_config_says_valid_or_names_the_problem_without_starting() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[server]\nport = 8123\n[feed]\nsymbols = [\"BTCUSDT\"]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_candlecast")).arg("check-config").arg(&good).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("valid") && stdout.contains(":8123") && stdout.contains("1 symbols"), "{stdout}");
    assert!(!stdout.contains("listening on"), "it checks, it does not start: {stdout}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[feed]\nsorce = \"simulated\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_candlecast")).arg("check-config").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("would not start") && stderr.contains("sorce"), "{stderr}");

    let missing = dir.path().join("missing.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_candlecast")).arg("check-config").arg(&missing).output().unwrap();
    assert!(!out.status.success());
}
