//! [`Keys`]: the one place that checks a presented key for a role. It accepts the plaintext keys of the
//! configuration (`[scripts] keys`, `[admin] keys`, `[jobs] trader_keys`, as before) and the hashed keys of
//! the keys file, and reads the file again when it changes (polled once a second by [`Keys::watch`]; no
//! SIGHUP needed, no restart).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use super::keys_file::{self, KeysFile};
use super::{KeyId, Role};

/// How often [`Keys::watch`] looks at the keys file: a new or revoked key takes effect within this.
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// A file key as the checks need it.
#[derive(Debug, Clone)]
struct FileKey {
    role: Role,
    hash: [u8; 32],
}

/// What identifies one version of the file: a rewrite (rename) changes the inode, an edit in place the
/// modification time or the length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

#[derive(Debug, Default)]
struct Loaded {
    stamp: Option<Stamp>,
    keys: Arc<[FileKey]>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Keys {
    /// Configured plaintext keys per role ([`Role::index`]); empty strings are ignored.
    config: [Vec<String>; 3],
    /// The keys file; `None` only in tests that give keys directly.
    file: Option<PathBuf>,
    loaded: RwLock<Loaded>,
}

impl Keys {
    /// Configured keys per role, and the keys file (read now; a bad file is logged and treated as empty,
    /// so that a typo in it cannot stop the server from starting with its configured keys).
    pub fn new(script: &[String], admin: &[String], trader: &[String], file: Option<PathBuf>) -> Keys {
        let clean = |keys: &[String]| keys.iter().filter(|k| !k.is_empty()).cloned().collect::<Vec<_>>();
        let keys = Keys { config: [clean(script), clean(admin), clean(trader)], file, loaded: RwLock::default() };
        keys.reload_if_changed();
        keys
    }

    /// Configured keys only (tests, and roles without a file).
    pub fn configured(role: Role, keys: &[String]) -> Keys {
        let mut by_role: [Vec<String>; 3] = Default::default();
        by_role[role.index()] = keys.iter().filter(|k| !k.is_empty()).cloned().collect();
        let [s, a, t] = by_role;
        Keys::new(&s, &a, &t, None)
    }

    /// The keys file this server reads.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Which key of `role` `token` is, if any. Every key of the role is compared, each in constant time,
    /// so the answer's timing tells nothing about the keys; file keys are compared by hash.
    pub fn check(&self, role: Role, token: &str) -> Option<KeyId> {
        if token.is_empty() {
            return None;
        }
        let mut found = None;
        for (i, key) in self.config[role.index()].iter().enumerate() {
            if constant_time_eq(key.as_bytes(), token.as_bytes()) && found.is_none() {
                found = Some(KeyId::Config(i));
            }
        }
        let keys = self.file_keys();
        if keys.iter().any(|k| k.role == role) {
            let hash = keys_file::sha256(token.as_bytes());
            for key in keys.iter().filter(|k| k.role == role) {
                if constant_time_eq(&key.hash, &hash) && found.is_none() {
                    found = Some(KeyId::File(fingerprint(&key.hash)));
                }
            }
        }
        found
    }

    /// Whether any key of `role` exists (configured or in the file).
    pub fn has(&self, role: Role) -> bool {
        !self.config[role.index()].is_empty() || self.file_keys().iter().any(|k| k.role == role)
    }

    fn file_keys(&self) -> Arc<[FileKey]> {
        self.loaded.read().unwrap_or_else(|e| e.into_inner()).keys.clone()
    }

    /// Reads the keys file again if it changed since the last read; returns whether it did. A file that
    /// cannot be read or parsed keeps the keys of the last good read (logged, never with a key: the file
    /// holds none).
    pub fn reload_if_changed(&self) -> bool {
        let Some(path) = &self.file else { return false };
        let stamp = stamp(path);
        if self.loaded.read().unwrap_or_else(|e| e.into_inner()).stamp == stamp && stamp.is_some() {
            return false;
        }
        let keys: Arc<[FileKey]> = match KeysFile::load(path) {
            Ok(file) => file
                .keys
                .iter()
                .filter_map(|k| Some(FileKey { role: k.role, hash: keys_file::parse_hash(&k.sha256)? }))
                .collect(),
            Err(e) => {
                let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
                if loaded.stamp != stamp {
                    tracing::warn!(error = %e, "keys file not read; keeping the keys read before");
                    loaded.stamp = stamp;
                }
                return false;
            }
        };
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        let changed = loaded.stamp.is_some() || stamp.is_some();
        if changed {
            tracing::info!(file = %path.display(), keys = keys.len(), "keys file read");
        }
        *loaded = Loaded { stamp, keys };
        changed
    }

    /// Polls the keys file every [`RELOAD_EVERY`] for as long as the server runs.
    pub async fn watch(self: Arc<Self>) {
        if self.file.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(RELOAD_EVERY);
        loop {
            tick.tick().await;
            let keys = self.clone();
            // A stat, and a small read when it changed: off the runtime's thread all the same.
            let _ = tokio::task::spawn_blocking(move || keys.reload_if_changed()).await;
        }
    }
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp { modified: meta.modified().ok(), len: meta.len(), inode })
}

/// The first 8 bytes of a key's hash: what `keys list` shows, and how logs and budgets name a file key.
pub fn fingerprint(hash: &[u8; 32]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(first)
}

/// Compares every byte whatever the first difference, so the time taken does not say where it was.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    diff == 0 && a.len() == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_and_file_keys_are_checked_per_role_and_file_changes_are_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let keys = Keys::new(&["plain".into(), String::new()], &[], &[], Some(path.clone()));
        assert_eq!(keys.check(Role::Script, "plain"), Some(KeyId::Config(0)));
        assert_eq!(keys.check(Role::Admin, "plain"), None, "a key is for its role only");
        assert_eq!(keys.check(Role::Script, ""), None);
        assert!(!keys.has(Role::Admin));

        let mut file = KeysFile::default();
        file.add("ops", Role::Admin, String::new(), "admin-key").unwrap();
        file.save(&path).unwrap();
        assert!(keys.reload_if_changed());
        assert!(!keys.reload_if_changed(), "unchanged: not read again");
        let id = keys.check(Role::Admin, "admin-key").unwrap();
        assert_eq!(id, KeyId::File(fingerprint(&keys_file::sha256(b"admin-key"))));
        assert_eq!(keys.check(Role::Script, "admin-key"), None);
        assert_eq!(keys.check(Role::Admin, "admin-kez"), None);
        assert!(keys.has(Role::Admin));

        // A broken file keeps the last good keys; a fixed one is read again.
        std::fs::write(&path, "not toml [").unwrap();
        assert!(!keys.reload_if_changed());
        assert!(keys.check(Role::Admin, "admin-key").is_some());
        file.revoke("ops").unwrap();
        file.save(&path).unwrap();
        assert!(keys.reload_if_changed());
        assert_eq!(keys.check(Role::Admin, "admin-key"), None, "revoked");
    }
}
