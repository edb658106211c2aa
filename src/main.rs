//! The candlecast binary: arguments, configuration, logging, then [`candlecast::run`].

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Real-time market-data streaming: feeds, OHLCV bars and WebSocket fan-out.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// A TOML file layered over config/default.toml (environment variables CANDLECAST__* still win). The
    /// subcommands read it too (where the keys file and the store are).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Without a command, the server runs.
    #[command(subcommand)]
    command: Option<candlecast::cli::Command>,
}

fn main() -> std::process::ExitCode {
    match start() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line (with its causes), not a Debug dump with a backtrace.
            eprintln!("candlecast: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn start() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(command) = args.command {
        return candlecast::cli::run(command, args.config.as_deref());
    }
    let config = candlecast::Config::load(args.config.as_deref())?;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .context("log.level is not a valid filter")?;
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let listener = candlecast::bind_listener(&config.server.host, config.server.port, config.server.backlog)
        .with_context(|| format!("cannot listen on {}:{}", config.server.host, config.server.port))?;
    let addr = listener.local_addr()?;
    // Scripts and tests read this line to find the port (it matters with port 0).
    println!("candlecast listening on http://{addr}");
    candlecast::check_backlog(config.server.backlog);

    candlecast_actors::persist::set_memory_trim(give_back_free_memory);
    actix_web::rt::System::new().block_on(async move {
        ignore_file_size_signal();
        candlecast::run(listener, config, shutdown_signal()).await
    })
}

/// Under a file-size limit (`ulimit -f`, RLIMIT_FSIZE) a write beyond it raises SIGXFSZ, whose default
/// action kills the process. Handling it makes such a write fail with EFBIG instead, which persistence
/// reports (store down, journal refused) and survives, as it does a full disk (ENOSPC).
fn ignore_file_size_signal() {
    #[cfg(target_os = "linux")]
    {
        const SIGXFSZ: i32 = 25;
        // Tokio's handler stays installed for the life of the process, even once the stream is dropped.
        if let Err(e) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(SIGXFSZ)) {
            tracing::warn!(error = %e, "cannot handle SIGXFSZ: a write beyond a file-size limit would kill the process");
        }
    }
}

/// Gives the allocator's free pages back to the system: glibc keeps what aggregators free when their
/// windows shrink to `aggregator.hot_bars` (1,000 symbols after their backfill: 1.5 GB of RSS, 0.29 GB after
/// this; docs/BENCHMARKS.md, "Per-symbol cost"). Called on the blocking pool once enough was freed.
fn give_back_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim takes the allocator's own locks and only releases free pages.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
