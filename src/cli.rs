//! Operator subcommands besides serving: `candlecast keys new`, `candlecast check-config <file>` and
//! `candlecast kite login --request-token <token>`.
//! `main.rs` parses them (clap) and hands them here; each prints its answer and returns the exit status.

use std::path::PathBuf;

use anyhow::Context;
use rand::TryRngCore;

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
    /// Prints a fresh random key (256 bits, hex) and the configuration line that makes the server accept it.
    New {
        /// Who the key is for: `script` (push trades and CSVs), `admin` (add and remove feeds, live
        /// strategies) or `trader` (larger job budgets).
        #[arg(long, value_enum, default_value_t = Role::Script)]
        role: Role,
    },
}

/// The kinds of keys the server reads from its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Script,
    Admin,
    Trader,
}

impl Role {
    /// The configuration section and key that hold this role's keys.
    fn setting(self) -> (&'static str, &'static str) {
        match self {
            Role::Script => ("scripts", "keys"),
            Role::Admin => ("admin", "keys"),
            Role::Trader => ("jobs", "trader_keys"),
        }
    }
}

/// Runs a subcommand; its output goes to stdout. `config` is the `--config` file, if any.
pub fn run(command: Command, config: Option<&std::path::Path>) -> anyhow::Result<()> {
    match command {
        Command::Kite(KiteCommand::Login { request_token }) => {
            let config = crate::Config::load(config)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let token = runtime
                .block_on(candlecast_actors::feed::kite::session::access_token(&config.feed.kite, &request_token))
                .map_err(|e| anyhow::anyhow!("Kite login failed: {e}"))?;
            // The operator asked for the token: stdout only, never the log.
            print!("{}", kite_token_text(&token));
            Ok(())
        }
        Command::Keys(KeysCommand::New { role }) => {
            print!("{}", new_key_text(role, &random_key()?));
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
            Ok(())
        }
    }
}

/// 32 bytes from the operating system's generator, as 64 hex digits.
fn random_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).context("the operating system's random generator failed")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The token on the first line (for scripts that capture it), then where to put it and until when.
fn kite_token_text(token: &str) -> String {
    format!(
        "{token}\n\
         # Start candlecast with it in the environment (not in a file others can read):\n\
         # CANDLECAST__FEED__KITE__ACCESS_TOKEN={token}\n\
         # {}: log in again each morning.\n",
        candlecast_actors::feed::kite::session::EXPIRY
    )
}

/// The key on the first line (for scripts that capture it), then where to put it.
fn new_key_text(role: Role, key: &str) -> String {
    let (section, name) = role.setting();
    let env = format!("CANDLECAST__{}__{}", section.to_ascii_uppercase(), name.to_ascii_uppercase());
    format!(
        "{key}\n\
         # Add it to your --config file (keep the keys already there):\n\
         [{section}]\n\
         {name} = [\"{key}\"]\n\
         # or set it in the environment: {env}='[\"{key}\"]'\n\
         # Clients send it as: Authorization: Bearer {key}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fresh_64_hex_digits() {
        let (a, b) = (random_key().expect("key"), random_key().expect("key"));
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn each_role_names_its_setting() {
        assert!(new_key_text(Role::Trader, "k").contains("[jobs]\ntrader_keys = [\"k\"]"));
        assert!(new_key_text(Role::Admin, "k").contains("CANDLECAST__ADMIN__KEYS='[\"k\"]'"));
    }
}
