//! candlecast-loadgen: opens N WebSocket clients at a controlled rate, subscribes each to one topic
//! following a hot/cold distribution, and measures delivery latency (the server's `ts_sent` against this
//! machine's clock), messages per second, connect time, errors and disconnects, plus the server's RSS and
//! CPU from /proc (`--mode push`: scripts streaming trades over Socket.IO instead, see push.rs; `--mode storm`
//! and `--mode restart`: connection storms and a server restart under load, see storm.rs). Beyond one process's open-file limit it spreads clients over child processes
//! (`--processes`) and merges their histograms exactly. Prints one summary line; `--json` writes the result.

mod client;
mod procstat;
mod push;
mod raw;
mod stats;
mod storm;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use stats::{Partial, Percentiles, Report, ServerFigures};
use tokio::io::AsyncReadExt;

#[derive(Parser, Clone, Debug)]
#[command(about = "Load generator for candlecast's /ws fan-out")]
pub struct Args {
    /// WebSocket URL of the server.
    #[arg(long, default_value = "ws://127.0.0.1:8000/ws")]
    pub url: String,
    /// Clients in total (over all processes).
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// New connections per second (in total).
    #[arg(long, default_value_t = 2000.0)]
    pub connect_rate: f64,
    /// Seconds between the last connection and the start of the measured window.
    #[arg(long, default_value_t = 5.0)]
    pub warmup: f64,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Interval every client subscribes to.
    #[arg(long, default_value = "1s")]
    pub interval: String,
    /// Symbols to spread clients over, comma-separated; the first `hot-symbols` are hot.
    #[arg(long, default_value = "BTCUSDT,ETHUSDT,ADAUSDT,BNBUSDT,XRPUSDT,SOLUSDT")]
    pub symbols: String,
    #[arg(long, default_value_t = 5)]
    pub hot_symbols: usize,
    /// Fraction of clients on the hot symbols.
    #[arg(long, default_value_t = 0.8)]
    pub hot_fraction: f64,
    /// Topics each client subscribes to (a dashboard): its symbol as above and the next ones of `--symbols`
    /// (cyclically), all on `--interval`, in one subscribe request. At most the number of symbols.
    #[arg(long, default_value_t = 1)]
    pub topics_per_client: usize,
    /// Offer permessage-deflate (RFC 7692) as a browser does and inflate compressed messages (the server needs
    /// `[ws] permessage_deflate = true`; a client it is declined to counts as a connect error).
    #[arg(long)]
    pub deflate: bool,
    /// Fraction of clients that subscribe and then never read.
    #[arg(long, default_value_t = 0.0)]
    pub stalled: f64,
    /// Seconds a stalled client keeps not reading after the run before it looks whether the server closed
    /// it. The server drops a client that answers no ping within its client timeout (30 s, checked every
    /// 10 s by default): a client stalled since connecting at least 25 s before the run's end is closed
    /// within 15 s of it.
    #[arg(long, default_value_t = 20.0)]
    pub stall_grace: f64,
    /// Fraction of clients that connect, subscribe, take one update and disconnect, in a loop.
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// The server's process id, to sample its RSS and CPU.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Generator processes to spread the clients over (each holds at most its open-file limit).
    #[arg(long, default_value_t = 1)]
    pub processes: usize,
    /// Tokio worker threads per process.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Protocol of the server: `candlecast` (/ws JSON) or `socketio` (Engine.IO v4 over WebSocket, for the
    /// socket.io peer; give its base URL, e.g. ws://127.0.0.1:3000).
    #[arg(long, default_value = "candlecast")]
    pub protocol: String,
    /// `fanout` (clients subscribe and read, the default) or `push` (`--clients` scripts stream trades
    /// over Socket.IO on WebSocket with the `trades` batch event; give the server's base URL).
    #[arg(long, default_value = "fanout")]
    pub mode: String,
    /// Push mode: the script key (`[scripts] keys`).
    #[arg(long, default_value = "")]
    pub token: String,
    /// Push mode: trades per `trades` event.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Push mode: batches each script keeps in flight (sent, not yet acknowledged).
    #[arg(long, default_value_t = 4)]
    pub window: usize,
    /// Storm and restart modes: new connections per second, in total (every client subscribes at once).
    #[arg(long, default_value_t = 20000.0)]
    pub storm_rate: f64,
    /// Storm and restart modes: seconds a client may take from its first SYN to its first update before it
    /// counts as timed out (no retry: a storm counts what the server refused).
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Storm mode: the target, counted apart: clients whose first update came within this many seconds.
    #[arg(long, default_value_t = 5.0)]
    pub within: f64,
    /// Restart mode: written (with "ready") once every client subscribed: the script restarts the server then.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Restart mode: seconds after everyone subscribed to wait for every client to be back and caught up.
    #[arg(long, default_value_t = 120.0)]
    pub restart_wait: f64,
    /// Storm and restart modes: spread the clients over this many loopback source addresses (127.0.0.1,
    /// 127.0.0.2, ...; at most 254), as dashboards come from many hosts. 1: the kernel picks the address, as
    /// before. From one address every connect() searches the ephemeral ports for a free one, and at 19,000
    /// connections that search was most of the generator's CPU (raw.rs `tcp_connect`). The server must
    /// count these addresses as unlimited hosts (scripts/bench_storm.sh sets it).
    #[arg(long, default_value_t = 1)]
    pub source_ips: usize,
    /// Internal: run as child number N and print a partial result as JSON.
    #[arg(long, hide = true)]
    pub child: Option<usize>,
    /// Internal: index of this process's first client.
    #[arg(long, hide = true, default_value_t = 0)]
    pub first_client: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.processes == 0 || args.clients == 0 {
        bail!("--processes and --clients must be at least 1");
    }
    if !["candlecast", "socketio"].contains(&args.protocol.as_str()) {
        bail!("--protocol must be candlecast or socketio");
    }
    if !(1..=254).contains(&args.source_ips) {
        bail!("--source-ips must be 1 to 254 (127.0.0.1 to 127.0.0.254)");
    }
    let symbols = args.symbols.split(',').filter(|s| !s.trim().is_empty()).count();
    if args.topics_per_client == 0 || args.topics_per_client > symbols {
        bail!("--topics-per-client must be between 1 and the number of --symbols ({symbols})");
    }
    if args.topics_per_client > 1 && args.protocol != "candlecast" {
        bail!("--topics-per-client above 1 is for --protocol candlecast");
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads.max(1)).enable_all().build()?;
    if args.mode == "push" {
        return rt.block_on(async move {
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            let json = args.json.clone();
            let report = push::run(Arc::new(args), command).await?;
            println!("{}", report.summary());
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        });
    }
    if args.mode == "storm" || args.mode == "restart" {
        return rt.block_on(storm_main(args));
    }
    anyhow::ensure!(args.mode == "fanout", "--mode must be fanout, push, storm or restart");
    rt.block_on(async move {
        if args.child.is_some() {
            let partial = client::run_process(Arc::new(args)).await?;
            println!("{}", serde_json::to_string(&partial)?);
            return Ok(());
        }
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        let started = Instant::now();
        let sampler = args.server_pid.map(|pid| tokio::spawn(sample_server(pid, measure_start(&args), args.duration)));
        let partial = if args.processes == 1 {
            client::run_process(Arc::new(args.clone())).await?
        } else {
            run_children(&args).await?
        };
        let server = match sampler {
            Some(s) => s.await.ok().flatten(),
            None => None,
        };
        let report = report(&args, partial, server, command);
        println!("{}", report.summary());
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_vec_pretty(&report)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        eprintln!("(run took {:.1}s)", started.elapsed().as_secs_f64());
        Ok(())
    })
}

/// Seconds from start until the measured window opens (the same schedule every process follows).
pub fn measure_start(args: &Args) -> f64 {
    args.clients as f64 / args.connect_rate.max(1.0) + args.warmup
}

async fn run_children(args: &Args) -> anyhow::Result<Partial> {
    let exe = std::env::current_exe()?;
    let per = args.clients.div_ceil(args.processes);
    let mut children = Vec::new();
    for i in 0..args.processes {
        let first = i * per;
        let n = per.min(args.clients.saturating_sub(first));
        if n == 0 {
            break;
        }
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args([
            "--url",
            &args.url,
            "--interval",
            &args.interval,
            "--symbols",
            &args.symbols,
            "--protocol",
            &args.protocol,
        ])
        .args(["--clients", &n.to_string(), "--first-client", &first.to_string(), "--child", &i.to_string()])
        .args(["--hot-symbols", &args.hot_symbols.to_string(), "--hot-fraction", &args.hot_fraction.to_string()])
        .args(["--topics-per-client", &args.topics_per_client.to_string()])
        .args(args.deflate.then_some("--deflate"))
        .args([
            "--stalled",
            &args.stalled.to_string(),
            "--stall-grace",
            &args.stall_grace.to_string(),
            "--churn",
            &args.churn.to_string(),
        ])
        .args([
            "--threads",
            &args.threads.to_string(),
            "--warmup",
            &args.warmup.to_string(),
            "--duration",
            &args.duration.to_string(),
        ])
        // Children keep the parent's schedule: the same total connect time.
        .args(["--connect-rate", &(args.connect_rate * n as f64 / args.clients as f64).to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        children.push(cmd.spawn().context("starting a generator process")?);
    }
    let mut parts = Vec::new();
    for mut child in children {
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            stdout.read_to_string(&mut out).await?;
        }
        let status = child.wait().await?;
        if !status.success() {
            bail!("a generator process failed: {status}");
        }
        parts.push(serde_json::from_str(out.trim()).context("reading a child's result")?);
    }
    Ok(Partial::merge(parts))
}

/// The server as sampled during the measured window.
struct ServerSampled {
    /// RSS before any client connected.
    baseline_kb: f64,
    /// Peak RSS in the window.
    peak_kb: f64,
    /// Mean CPU, user and system, in percent of a core.
    cpu_percent: f64,
    /// Mean user CPU alone.
    user_cpu_percent: f64,
}

/// Samples the server every second during the measured window: peak RSS and mean CPU.
async fn sample_server(pid: u32, start_after: f64, duration: f64) -> Option<ServerSampled> {
    let baseline = procstat::sample(pid)?.rss_kb;
    tokio::time::sleep(Duration::from_secs_f64(start_after)).await;
    let first = procstat::sample(pid)?;
    let mut peak_rss = first.rss_kb;
    let mut last = first;
    let end = Instant::now() + Duration::from_secs_f64(duration);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(s) = procstat::sample(pid) {
            peak_rss = peak_rss.max(s.rss_kb);
            last = s;
        }
    }
    Some(ServerSampled {
        baseline_kb: baseline as f64,
        peak_kb: peak_rss as f64,
        cpu_percent: procstat::cpu_percent(&first, &last),
        user_cpu_percent: procstat::user_percent(&first, &last),
    })
}

fn report(args: &Args, p: Partial, server: Option<ServerSampled>, command: String) -> Report {
    // Per client: what the clients added to the server's RSS, not the engine's own history and code.
    let server = server.map(|s| ServerFigures {
        rss_mb: s.peak_kb / 1024.0,
        baseline_rss_mb: s.baseline_kb / 1024.0,
        rss_kb_per_client: (s.peak_kb - s.baseline_kb).max(0.0) / p.connected.max(1) as f64,
        cpu_percent: s.cpu_percent,
        user_cpu_percent: s.user_cpu_percent,
    });
    Report {
        clients: p.clients,
        connected: p.connected,
        topics: p.topics,
        stalled: p.stalled,
        stalled_closed: p.stalled_closed,
        churn_cycles: p.churn_cycles,
        connect_errors: p.connect_errors,
        disconnects: p.disconnects,
        measure_secs: p.measure_secs,
        messages: p.messages,
        messages_per_second: p.messages as f64 / p.measure_secs.max(0.001),
        deflate: args.deflate,
        wire_bytes_per_message: p.wire_bytes as f64 / p.messages.max(1) as f64,
        loadgen_cpu_percent: p.cpu_percent,
        latency_ms: Percentiles::of(&p.latency),
        latency_p99_by_second_ms: p.latency_by_second.iter().map(|b| Percentiles::of(b).p99).collect(),
        connect_ms: Percentiles::of(&p.connect),
        server,
        command,
    }
}

/// `--mode storm` / `--mode restart`, over one process or `--processes` children (each at its share of the
/// rate, so the total rate is `--storm-rate`).
async fn storm_main(args: Args) -> anyhow::Result<()> {
    if args.child.is_some() {
        let partial = storm::run_process(Arc::new(args)).await?;
        println!("{}", serde_json::to_string(&partial)?);
        return Ok(());
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let started = Instant::now();
    let partial = if args.processes == 1 {
        storm::run_process(Arc::new(args.clone())).await?
    } else {
        storm_children(&args).await?
    };
    let report = storm::StormReport::new(&args, partial, command);
    println!("{}", report.summary());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!("(run took {:.1}s)", started.elapsed().as_secs_f64());
    Ok(())
}

async fn storm_children(args: &Args) -> anyhow::Result<storm::StormPartial> {
    let exe = std::env::current_exe()?;
    let per = args.clients.div_ceil(args.processes);
    let mut children = Vec::new();
    let mut ready_files = Vec::new();
    for i in 0..args.processes {
        let first = i * per;
        let n = per.min(args.clients.saturating_sub(first));
        if n == 0 {
            break;
        }
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args(["--mode", &args.mode, "--url", &args.url, "--interval", &args.interval, "--symbols", &args.symbols])
            .args(["--clients", &n.to_string(), "--first-client", &first.to_string(), "--child", &i.to_string()])
            .args(["--storm-rate", &(args.storm_rate * n as f64 / args.clients as f64).to_string()])
            .args(["--connect-timeout", &args.connect_timeout.to_string(), "--within", &args.within.to_string()])
            .args(["--restart-wait", &args.restart_wait.to_string(), "--threads", &args.threads.to_string()])
            .args(["--source-ips", &args.source_ips.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(path) = &args.ready_file {
            let mine = PathBuf::from(format!("{}.{i}", path.display()));
            let _ = std::fs::remove_file(&mine);
            cmd.arg("--ready-file").arg(&mine);
            ready_files.push(mine);
        }
        children.push(cmd.spawn().context("starting a generator process")?);
    }
    if let Some(path) = &args.ready_file {
        // Ready when every child is.
        let ready_files = ready_files.clone();
        let path = path.clone();
        tokio::spawn(async move {
            while !ready_files.iter().all(|f| f.exists()) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = std::fs::write(&path, b"ready\n");
        });
    }
    let mut parts = Vec::new();
    for mut child in children {
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            stdout.read_to_string(&mut out).await?;
        }
        let status = child.wait().await?;
        if !status.success() {
            bail!("a generator process failed: {status}");
        }
        parts.push(serde_json::from_str(out.trim()).context("reading a child's result")?);
    }
    Ok(storm::StormPartial::merge(parts))
}
