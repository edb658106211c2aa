//! The keys file (`[auth] keys_file`, by default `<store.path>/keys.toml`): for each key its name, role,
//! creation time and SHA-256 hash, never the key itself. `candlecast keys new|list|revoke` write it; the
//! server reads it (and reads it again when it changes, see [`super::keys`]).
//!
//! ```toml
//! [[key]]
//! name = "bot1"
//! role = "script"
//! created = "2026-12-06T06:20:00.000Z"
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! ```
//!
//! Why a plain SHA-256 and not a password hash (argon2, bcrypt): the keys are 256 random bits made by
//! `keys new`, so there is nothing to guess from the hash; a slow hash only protects low-entropy secrets
//! and would make every request pay for it (a wrong-key flood would become a CPU flood).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Role;

/// Names a newcomer can type and a log can show: letters, digits, `-`, `_` and `.`, at most this long.
pub const MAX_NAME_LEN: usize = 64;
/// The most keys one file may hold: every request compares against each key of its role.
pub const MAX_KEYS: usize = 1000;
/// A keys file larger than this is refused (1000 entries take about 200 kB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// One stored key: everything but the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredKey {
    pub name: String,
    pub role: Role,
    /// ISO 8601, UTC.
    pub created: String,
    /// 64 hex digits: SHA-256 of the key's text as clients send it.
    pub sha256: String,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    #[serde(default, rename = "key")]
    pub keys: Vec<StoredKey>,
}

/// What is wrong inside a keys file that parsed; the `reason` of [`KeysFileError::Invalid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum BadKeys {
    #[error("it holds {0} keys, more than {MAX_KEYS}")]
    TooMany(usize),
    /// `number` counts from 1, in file order.
    #[error("key {number} has an invalid name {name:?}")]
    Name { number: usize, name: String },
    #[error("key {0:?}: sha256 must be 64 hex digits")]
    Hash(String),
    #[error("two keys are named {0:?}")]
    Duplicate(String),
}

/// Why the keys file cannot be read, written or changed. Never carries a key (the file holds none).
#[derive(Debug, thiserror::Error)]
pub enum KeysFileError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid keys file: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path} is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("a key named {0:?} exists already (keys list shows them; keys revoke removes one)")]
    NameTaken(String),
    #[error("no key is named {0:?} (keys list shows them)")]
    NoSuchName(String),
    #[error("key names are 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.', got {0:?}")]
    BadName(String),
    #[error("the keys file holds {MAX_KEYS} keys already (the most it may hold); revoke one first")]
    Full,
}

impl KeysFile {
    /// Reads `path`; a missing file is an empty one (no key made yet).
    pub fn load(path: &Path) -> Result<KeysFile, KeysFileError> {
        let io = |source| KeysFileError::Io { path: path.to_owned(), source };
        let len = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KeysFile::default()),
            Err(e) => return Err(io(e)),
        };
        if len > MAX_FILE_BYTES {
            return Err(KeysFileError::TooLarge { path: path.to_owned() });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let file: KeysFile = toml::from_str(&text)
            .map_err(|e| KeysFileError::Invalid { path: path.to_owned(), reason: e.to_string() })?;
        file.validate().map_err(|e| KeysFileError::Invalid { path: path.to_owned(), reason: e.to_string() })?;
        Ok(file)
    }

    fn validate(&self) -> Result<(), BadKeys> {
        if self.keys.len() > MAX_KEYS {
            return Err(BadKeys::TooMany(self.keys.len()));
        }
        for (i, k) in self.keys.iter().enumerate() {
            if !valid_name(&k.name) {
                return Err(BadKeys::Name { number: i + 1, name: k.name.clone() });
            }
            if parse_hash(&k.sha256).is_none() {
                return Err(BadKeys::Hash(k.name.clone()));
            }
            if self.keys[..i].iter().any(|o| o.name == k.name) {
                return Err(BadKeys::Duplicate(k.name.clone()));
            }
        }
        Ok(())
    }

    /// Adds a key (by its hash) under a unique `name`.
    pub fn add(&mut self, name: &str, role: Role, created: String, key: &str) -> Result<(), KeysFileError> {
        if !valid_name(name) {
            return Err(KeysFileError::BadName(name.to_owned()));
        }
        if self.keys.iter().any(|k| k.name == name) {
            return Err(KeysFileError::NameTaken(name.to_owned()));
        }
        if self.keys.len() >= MAX_KEYS {
            return Err(KeysFileError::Full);
        }
        self.keys.push(StoredKey { name: name.to_owned(), role, created, sha256: hex(&sha256(key.as_bytes())) });
        Ok(())
    }

    /// Removes the key named `name`.
    pub fn revoke(&mut self, name: &str) -> Result<StoredKey, KeysFileError> {
        let at = self.keys.iter().position(|k| k.name == name).ok_or_else(|| KeysFileError::NoSuchName(name.into()))?;
        Ok(self.keys.remove(at))
    }

    /// A name not taken yet: `<role>-1`, `<role>-2`, ...
    pub fn free_name(&self, role: Role) -> String {
        (1..)
            .map(|n| format!("{}-{n}", role.as_str()))
            .find(|n| self.keys.iter().all(|k| &k.name != n))
            .unwrap_or_default()
    }

    /// Writes the file so that a reader sees the old or the new one, never half of either: a temporary
    /// file beside it (created 0600: hashes are not keys, but nobody else needs to read them), fsynced,
    /// then renamed over it, then the directory fsynced so the rename survives a crash.
    pub fn save(&self, path: &Path) -> Result<(), KeysFileError> {
        let io = |source| KeysFileError::Io { path: path.to_owned(), source };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let body = toml::to_string(self)
            .map_err(|e| KeysFileError::Invalid { path: path.to_owned(), reason: e.to_string() })?;
        let text = format!(
            "# candlecast API keys: SHA-256 hashes only, never the keys. Managed with `candlecast keys new|list|revoke`;\n\
             # a running server reads this file again within a second of a change.\n{body}"
        );
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("keys"),
            std::process::id()
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = (|| {
            let mut f = options.open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(io)
    }
}

pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 64 hex digits (either case) as 32 bytes.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_files_hold_hashes_read_back_equal_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("keys.toml");
        assert_eq!(KeysFile::load(&path).unwrap(), KeysFile::default(), "missing is empty");
        let mut file = KeysFile::default();
        file.add("bot1", Role::Script, "2026-01-01T00:00:00.000Z".into(), "the-key").unwrap();
        assert!(matches!(file.add("bot1", Role::Admin, String::new(), "k2"), Err(KeysFileError::NameTaken(_))));
        assert!(matches!(file.add("a b", Role::Admin, String::new(), "k2"), Err(KeysFileError::BadName(_))));
        file.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("the-key"), "{text}");
        assert!(text.contains(&hex(&sha256(b"the-key"))), "{text}");
        assert_eq!(KeysFile::load(&path).unwrap(), file);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(file.free_name(Role::Script), "script-1");
        file.revoke("bot1").unwrap();
        assert!(matches!(file.revoke("bot1"), Err(KeysFileError::NoSuchName(_))));
    }

    #[test]
    fn a_file_with_a_bad_hash_or_twice_a_name_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let entry = |name: &str, hash: &str| {
            format!("[[key]]\nname = \"{name}\"\nrole = \"script\"\ncreated = \"\"\nsha256 = \"{hash}\"\n")
        };
        std::fs::write(&path, entry("a", "12")).unwrap();
        assert!(KeysFile::load(&path).unwrap_err().to_string().contains("64 hex digits"));
        let good = "ab".repeat(32);
        std::fs::write(&path, entry("a", &good) + &entry("a", &good)).unwrap();
        assert!(KeysFile::load(&path).unwrap_err().to_string().contains("two keys are named"));
        assert_eq!(parse_hash(&good), Some([0xab; 32]));
    }
}
