//! `candlecast keys new|list|revoke`: the keys file the server reads (see [`crate::auth`]).

use std::path::Path;

use anyhow::Context;
use rand::TryRngCore;

use super::KeysCommand;
use crate::auth::keys_file::KeysFile;
use crate::auth::Role;

pub fn run(command: KeysCommand, config: Option<&Path>) -> anyhow::Result<()> {
    if let KeysCommand::New { role, print_only: true, .. } = command {
        print!("{}", config_snippet(role, &random_key()?));
        return Ok(());
    }
    let config = crate::Config::load(config)?;
    let path = config.keys_file();
    let mut file = KeysFile::load(&path)?;
    match command {
        KeysCommand::New { role, name, .. } => {
            let name = name.unwrap_or_else(|| file.free_name(role));
            let key = random_key()?;
            file.add(&name, role, crate::script_ingest::time::format_iso(candlecast_actors::model::now_ms()), &key)?;
            file.save(&path)?;
            print!("{}", new_key_text(role, &name, &key, &path));
        }
        KeysCommand::List => {
            if file.keys.is_empty() {
                println!("no keys in {} (make one with `candlecast keys new --role script`)", path.display());
            }
            for k in &file.keys {
                println!("{:<24} {:<7} {:<25} sha256:{}", k.name, k.role.as_str(), k.created, &k.sha256[..16]);
            }
        }
        KeysCommand::Revoke { name } => {
            let gone = file.revoke(&name)?;
            file.save(&path)?;
            println!("revoked {} ({}); a running server refuses it within a second", gone.name, gone.role.as_str());
        }
    }
    Ok(())
}

/// 32 bytes from the operating system's generator, as 64 hex digits.
fn random_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).context("the operating system's random generator failed")?;
    Ok(crate::auth::keys_file::hex(&bytes))
}

/// The key on the first line (for scripts that capture it), then where it is kept and how to send it.
fn new_key_text(role: Role, name: &str, key: &str, file: &Path) -> String {
    format!(
        "{key}\n\
         # A {role} key named {name:?}: its SHA-256 hash is in {file}, the key itself nowhere: copy it now.\n\
         # A running server accepts it within a second (no restart). Revoke it with: candlecast keys revoke {name}\n\
         # Clients send it as: Authorization: Bearer {key}\n",
        role = role.as_str(),
        file = file.display(),
    )
}

/// `--print-only`: the key and the configuration line that makes the server accept it (plaintext config).
fn config_snippet(role: Role, key: &str) -> String {
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
        assert!(config_snippet(Role::Trader, "k").contains("[jobs]\ntrader_keys = [\"k\"]"));
        assert!(config_snippet(Role::Admin, "k").contains("CANDLECAST__ADMIN__KEYS='[\"k\"]'"));
    }
}
