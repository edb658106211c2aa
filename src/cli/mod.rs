//! Operator subcommands besides serving: `candlecast keys new|list|revoke`, `candlecast check-config <file>`,
//! `candlecast store export|import` and `candlecast kite login --request-token <token>`. `main.rs` parses them (clap) and hands them here with the
//! `--config` file; each prints its answer to stdout (progress and refused rows to stderr).
//!
//! - [`keys`]: the keys file (hashed keys the running server reads without a restart).
//! - [`store`]: bars of the embedded store to and from CSV.

mod keys;
mod store;

use std::path::{Path, PathBuf};

use anyhow::Context;

pub use crate::auth::Role;

/// What `candlecast <command>` can do instead of serving.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Keys for the endpoints that need one.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Loads a configuration file as the server would (over config/default.toml, with CANDLECAST__*
    /// environment overrides) and says whether it would start, without starting.
    CheckConfig {
        /// The TOML file, as given to `--config`.
        file: PathBuf,
    },
    /// The embedded store's bars, to and from CSV (the server must not be running on the same store).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Zerodha Kite Connect's login.
    #[command(subcommand)]
    Kite(KiteCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum KiteCommand {
    /// Exchanges the request token of Kite's login redirect for the day's access token, with
    /// feed.kite.api_key and feed.kite.api_secret of the configuration (or CANDLECAST__FEED__KITE__*),
    /// and prints it with the line that makes the server use it.
    Login {
        /// `request_token` of the redirect URL after logging in at
        /// https://kite.zerodha.com/connect/login?v=3&api_key=<api_key>; it works once, for a few minutes.
        #[arg(long)]
        request_token: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Makes a fresh random key (256 bits, hex), stores its SHA-256 hash in the keys file
    /// (`[auth] keys_file`) and prints the key, once. A running server accepts it within a second.
    New {
        /// Who the key is for: `script` (push trades and CSVs), `admin` (add and remove feeds, live
        /// strategies) or `trader` (larger job budgets).
        #[arg(long, value_enum, default_value_t = Role::Script)]
        role: Role,
        /// A name for `keys list` and `keys revoke` (letters, digits, `-`, `_`, `.`); default `<role>-<n>`.
        #[arg(long)]
        name: Option<String>,
        /// Only print the key and the configuration line that accepts it; store nothing.
        #[arg(long)]
        print_only: bool,
    },
    /// The keys in the keys file: name, role, created, hash prefix (never a key).
    List,
    /// Removes a key from the keys file; a running server refuses it within a second.
    Revoke {
        /// The key's name, as `keys list` shows it.
        name: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Writes one symbol's bars of one interval as CSV
    /// (`symbol,interval,open_time,open,high,low,close,volume,trades`, open_time in epoch ms).
    Export {
        #[arg(long)]
        symbol: String,
        /// `1s`, `1m`, `1h`, `1d`, ... (the intervals of `aggregator.intervals`).
        #[arg(long)]
        interval: String,
        /// First open time to include: ISO 8601 (2024-01-01T00:00:00Z) or epoch ms.
        #[arg(long)]
        from: Option<String>,
        /// Open times before this one: ISO 8601 or epoch ms.
        #[arg(long)]
        to: Option<String>,
        /// The CSV file to write; default stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Reads a CSV as `store export` writes it, checks every row as ingest does, and writes the good rows
    /// into the store (a bar with the same symbol, interval and open time is replaced). Refused rows are
    /// listed with their line and reason.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
}

/// Runs a subcommand with the configuration `config` (`--config`, may be none: the defaults).
pub fn run(command: Command, config: Option<&Path>) -> anyhow::Result<()> {
    match command {
        Command::Keys(command) => keys::run(command, config),
        Command::Store(command) => store::run(command, config),
        Command::Kite(KiteCommand::Login { request_token }) => {
            let config = crate::Config::load(config)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let token = runtime
                .block_on(candlecast_actors::feed::kite_access_token(&config.feed.kite, &request_token))
                .map_err(|e| anyhow::anyhow!("Kite login failed: {e}"))?;
            // The operator asked for the token: stdout only, never the log.
            print!("{}", kite_token_text(&token));
            Ok(())
        }
        Command::CheckConfig { file } => {
            let config =
                crate::Config::load(Some(&file)).with_context(|| format!("{} would not start", file.display()))?;
            println!("{}: valid", file.display());
            println!(
                "  listens on {}:{}, feed {} ({} symbols), store {:?}",
                config.server.host,
                config.server.port,
                config.feed.source,
                config.feed.symbols.len(),
                config.store.kind,
            );
            println!("  keys file {}", config.keys_file().display());
            Ok(())
        }
    }
}

/// The token on the first line (for scripts that capture it), then where to put it and until when.
fn kite_token_text(token: &str) -> String {
    format!(
        "{token}\n\
         # Start candlecast with it in the environment (not in a file others can read):\n\
         # CANDLECAST__FEED__KITE__ACCESS_TOKEN={token}\n\
         # {}: log in again each morning.\n",
        candlecast_actors::feed::KITE_TOKEN_EXPIRY
    )
}
