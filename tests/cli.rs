//! The binary: environment overrides, unknown keys, the "listening on" line.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

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

/// A backlog above the kernel's cap (net.core.somaxconn) is cut by the kernel without a word: the server
/// says so at start, with the fix, instead of letting a reconnect storm find the smaller queue.
#[test]
fn a_backlog_above_the_kernel_cap_is_warned_about_at_start() {
    let cap = candlecast::backlog_cap().expect("Linux: /proc/sys/net/core/somaxconn");
    let data = tempfile::tempdir().unwrap();
    let (mut child, _, rx) = serve_with(data.path(), &[("CANDLECAST__SERVER__BACKLOG", &(cap + 1).to_string())]);
    let mut seen = Vec::new();
    wait_for_line(&rx, &mut seen, "net.core.somaxconn");
    let _ = child.kill();
    let _ = child.wait();
    let line = seen.iter().find(|l| l.contains("net.core.somaxconn")).unwrap();
    assert!(line.contains("WARN") && line.contains(&format!("sysctl -w net.core.somaxconn={}", cap + 1)), "{line}");
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
fn keys_new_print_only_prints_a_fresh_key_and_the_setting_that_accepts_it() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_candlecast")).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let script = run(&["keys", "new", "--print-only"]);
    let key = script.lines().next().unwrap();
    assert_eq!(key.len(), 64, "{script}");
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()), "{script}");
    assert!(script.contains(&format!("[scripts]\nkeys = [\"{key}\"]")), "{script}");
    let admin = run(&["keys", "new", "--role", "admin", "--print-only"]);
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

/// `candlecast <args>` with the store (and so the keys file) in `data`: (success, stdout, stderr).
fn candlecast(data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_candlecast"))
        .env("CANDLECAST__STORE__PATH", data)
        .args(args)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// A server process on `data` with no configured key; its stdout (the "listening" line and the log) is
/// collected line by line into the returned receiver.
fn serve(data: &Path) -> (Child, String, mpsc::Receiver<String>) {
    serve_with(data, &[])
}

/// [`serve`] with more environment variables.
fn serve_with(data: &Path, env: &[(&str, &str)]) -> (Child, String, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_candlecast"))
        .envs(env.iter().copied())
        .env("CANDLECAST__STORE__PATH", data)
        .env("CANDLECAST__SERVER__PORT", "0")
        .env("CANDLECAST__SERVER__HOST", "127.0.0.1")
        .env("CANDLECAST__FEED__SYMBOLS", "[\"BTCUSDT\"]")
        .env("CANDLECAST__FEED__SIMULATED__BACKFILL_DAYS", "0")
        .env("CANDLECAST__FEED__SIMULATED__BACKFILL_FINE_HOURS", "0")
        .env("CANDLECAST__LOG__LEVEL", "info")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first.strip_prefix("candlecast listening on ").unwrap_or_else(|| panic!("{first}")).to_owned();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, base, rx)
}

/// Waits (up to a minute) for a log line containing `text`; returns every line read so far.
fn wait_for_line(rx: &mpsc::Receiver<String>, seen: &mut Vec<String>, text: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !seen.iter().any(|l| l.contains(text)) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("no log line with {text:?} in:\n{}", seen.join("\n")),
        }
    }
}

/// The status of a script push (`POST /api/trading-data`) with `key`.
async fn push(base: &str, key: &str) -> u16 {
    let trades = "timestamp,symbol,side,quantity,price\n2023-01-01T10:00:00,AAPL,BUY,1,100\n";
    reqwest::Client::new()
        .post(format!("{base}/api/trading-data"))
        .bearer_auth(key)
        .json(&serde_json::json!({ "trades_csv": trades }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls the push until it answers `status` (the server reads the keys file again within a second).
async fn push_answers(base: &str, key: &str, status: u16) {
    for _ in 0..300 {
        if push(base, key).await == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the push never answered {status}");
}

/// The newcomer's flow: a server without keys says how to make one; `keys new` prints a key once and
/// stores only its hash; the running server takes it without a restart; `keys list` names it without
/// the key; `keys revoke` makes the server refuse it. No key ever reaches the keys file or the log.
#[tokio::test]
async fn keys_new_stores_only_a_hash_that_a_running_server_takes_until_it_is_revoked() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, base, log) = serve(data.path());
    let mut seen = Vec::new();
    wait_for_line(&log, &mut seen, "candlecast keys new --role script");
    assert_eq!(push(&base, "no-such-key").await, 403, "no key at all: pushes are disabled");

    let (ok, out, err) = candlecast(data.path(), &["keys", "new", "--role", "script", "--name", "bot1"]);
    assert!(ok, "{err}");
    let key = out.lines().next().unwrap().to_owned();
    assert_eq!(key.len(), 64, "{out}");
    let file = data.path().join("keys.toml");
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(!stored.contains(&key), "the keys file holds no key: {stored}");
    let hash: String = ring::digest::digest(&ring::digest::SHA256, key.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(stored.contains(&hash) && stored.contains("bot1") && stored.contains("script"), "{stored}");
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    push_answers(&base, &key, 200).await;

    let (ok, second, err) = candlecast(data.path(), &["keys", "new", "--name", "bot2"]);
    assert!(ok, "{err}");
    let second = second.lines().next().unwrap().to_owned();
    let (ok, _, err) = candlecast(data.path(), &["keys", "new", "--name", "bot2"]);
    assert!(!ok && err.contains("exists already"), "{err}");
    let (ok, list, _) = candlecast(data.path(), &["keys", "list"]);
    assert!(ok && list.contains("bot1") && list.contains("bot2") && list.contains(&hash[..16]), "{list}");
    assert!(!list.contains(&key) && !list.contains(&second), "{list}");

    let (ok, out, err) = candlecast(data.path(), &["keys", "revoke", "bot1"]);
    assert!(ok && out.contains("revoked bot1"), "{out}{err}");
    push_answers(&base, &key, 401).await;
    assert_eq!(push(&base, &second).await, 200, "the other key still works");
    let (ok, _, err) = candlecast(data.path(), &["keys", "revoke", "bot1"]);
    assert!(!ok && err.contains("no key is named"), "{err}");

    // The store the server holds open cannot be exported or imported under it.
    let (ok, _, err) = candlecast(data.path(), &["store", "export", "--symbol", "BTCUSDT", "--interval", "1m"]);
    assert!(!ok && err.contains("held by a running candlecast"), "{err}");

    let _ = server.kill();
    let _ = server.wait();
    seen.extend(log.try_iter());
    let all = seen.join("\n");
    assert!(!all.contains(&key) && !all.contains(&second), "a key reached the log:\n{all}");
}

const IMPORT_HEADER: &str = "symbol,interval,open_time,open,high,low,close,volume,trades";

/// Bars out of the store and back in: export writes them oldest first, import refuses bad rows with
/// their line and reason and replaces a bar of the same time; a second store gets the same bars.
#[test]
fn store_export_and_import_round_trip_and_bad_rows_are_refused_with_reasons() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t = 1_700_000_040_000i64; // a minute boundary
    let good = [
        format!("BTCUSDT,1m,{},10.5,12,9.25,11,1.5,3", t + 60_000),
        format!("BTCUSDT,1m,{t},10,10,10,10,0,0"),
        format!("BTCUSDT,1m,{},11,11.75,10.5,11.5,0.001,1", t + 120_000),
    ];
    let csv = format!(
        "{IMPORT_HEADER}\n{}\n{}\nBTCUSDT,1m,{t},10,9,9.5,10,1,1\nBTCUSDT,1m,{t},NaN,12,9,11,1,1\n\
         BTCUSDT,1m,{t},10,12,9,11,-2,1\nBTCUSDT,1m,{},10,12,9,11,1,1\nBTCUSDT,1m\n{}\nETHUSDT,5m,{},1,1,1,1,1,1\n",
        good[0],
        good[1],
        t + 1,
        good[2],
        t + 60_000
    );
    let file = a.path().join("in.csv");
    std::fs::write(&file, csv).unwrap();
    let (ok, out, err) = candlecast(a.path(), &["store", "import", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("imported 4 bars, refused 5 rows"), "{out}{err}");
    for reason in [
        "refused line 4: needs low <= open, close <= high",
        "refused line 5: prices must be finite",
        "refused line 6: volume must be",
        "refused line 7: open time is not aligned",
        "refused line 8: expected 9 columns",
    ] {
        assert!(err.contains(reason), "{reason:?} in {err}");
    }

    let exported = a.path().join("out.csv");
    let (ok, _, err) = candlecast(
        a.path(),
        &["store", "export", "--symbol", "BTCUSDT", "--interval", "1m", "--out", exported.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&exported).unwrap();
    let expected = format!("{IMPORT_HEADER}\n{}\n{}\n{}\n", good[1], good[0], good[2]);
    assert_eq!(text, expected, "oldest first, as imported");
    let (ok, window, _) = candlecast(
        a.path(),
        &[
            "store",
            "export",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1m",
            "--from",
            &(t + 60_000).to_string(),
            "--to",
            &(t + 120_000).to_string(),
        ],
    );
    assert!(ok);
    assert_eq!(window, format!("{IMPORT_HEADER}\n{}\n", good[0]), "from inclusive, to exclusive");

    // Into a second store: the same bars come out.
    let (ok, out, err) = candlecast(b.path(), &["store", "import", exported.to_str().unwrap()]);
    assert!(ok && out.contains("imported 3 bars, refused 0 rows"), "{out}{err}");
    let (ok, again, _) = candlecast(b.path(), &["store", "export", "--symbol", "BTCUSDT", "--interval", "1m"]);
    assert!(ok);
    assert_eq!(again, expected);

    // A bar of a time already stored replaces it.
    let fix = b.path().join("fix.csv");
    std::fs::write(&fix, format!("{IMPORT_HEADER}\nBTCUSDT,1m,{t},10,13,10,13,2,2\n")).unwrap();
    assert!(candlecast(b.path(), &["store", "import", fix.to_str().unwrap()]).0);
    let (_, fixed, _) = candlecast(b.path(), &["store", "export", "--symbol", "BTCUSDT", "--interval", "1m"]);
    assert_eq!(fixed, format!("{IMPORT_HEADER}\nBTCUSDT,1m,{t},10,13,10,13,2,2\n{}\n{}\n", good[0], good[2]));

    let bad_header = b.path().join("bad.csv");
    std::fs::write(&bad_header, "time,open\n1,2\n").unwrap();
    let (ok, _, err) = candlecast(b.path(), &["store", "import", bad_header.to_str().unwrap()]);
    assert!(!ok && err.contains("the first line must be the header"), "{err}");
}
