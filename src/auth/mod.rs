//! API keys: who may push (scripts), administer (admin) or run large jobs (traders).
//!
//! - [`keys_file`]: the keys file: name, role, created time and SHA-256 of each key, never the key.
//! - [`keys`]: [`Keys`], the one check of a presented key for a role (configured plaintext keys and the
//!   file's hashed keys, compared in constant time), and the reload of the file when it changes.

pub mod keys;
pub mod keys_file;

use serde::{Deserialize, Serialize};

pub use keys::Keys;

/// The kinds of keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Pushes trades and market data (Socket.IO, `POST /api/trading-data`).
    Script,
    /// Adds and removes feeds and live strategies.
    Admin,
    /// Larger job budgets (backtests, optimizations).
    Trader,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Script => "script",
            Role::Admin => "admin",
            Role::Trader => "trader",
        }
    }

    fn index(self) -> usize {
        match self {
            Role::Script => 0,
            Role::Admin => 1,
            Role::Trader => 2,
        }
    }

    /// The configuration section and key that hold this role's plaintext keys.
    pub fn setting(self) -> (&'static str, &'static str) {
        match self {
            Role::Script => ("scripts", "keys"),
            Role::Admin => ("admin", "keys"),
            Role::Trader => ("jobs", "trader_keys"),
        }
    }
}

/// Which key was presented, without the key: a configured key by its position in its list, a file key
/// by the first 8 bytes of its hash (what `keys list` shows). Budgets count per key and logs name it so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyId {
    Config(usize),
    File(u64),
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyId::Config(i) => write!(f, "#{i}"),
            KeyId::File(fp) => write!(f, "sha256:{fp:016x}"),
        }
    }
}
