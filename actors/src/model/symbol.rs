//! The name of an instrument, as every bar, trade and message carries it.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A trading pair or instrument: `BTCUSDT`, `NSE:INFY`, `NSE:M&M-EQ`. Shared (an `Arc`), because every
/// bar and message carries it; compared, hashed and serialized as the plain string.
///
/// [`Symbol::normalize`] is the one place a name a client typed becomes ours (ASCII upper case:
/// `btcusdt` → `BTCUSDT`); whether it is a valid name is `engine::valid_symbol`'s rule. `From<&str>` takes
/// a name as it is, for names that are ours already (config, the store, a feed's own spelling).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Symbol(Arc<str>);

impl Symbol {
    /// A name as a client wrote it, as the engine names it: ASCII upper case (nothing else changes: a name
    /// with a space stays unknown).
    pub fn normalize(raw: &str) -> Symbol {
        if raw.bytes().any(|b| b.is_ascii_lowercase()) {
            Symbol(Arc::from(raw.to_ascii_uppercase()))
        } else {
            Symbol(Arc::from(raw))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Symbol {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Symbol {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Symbol {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Symbol {
    fn from(name: &str) -> Symbol {
        Symbol(Arc::from(name))
    }
}

impl From<String> for Symbol {
    fn from(name: String) -> Symbol {
        Symbol(Arc::from(name))
    }
}

impl From<&String> for Symbol {
    fn from(name: &String) -> Symbol {
        Symbol(Arc::from(name.as_str()))
    }
}

impl From<Symbol> for Arc<str> {
    fn from(symbol: Symbol) -> Arc<str> {
        symbol.0
    }
}

impl PartialEq<str> for Symbol {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Symbol {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_typed_name_is_normalized_once_and_the_symbol_behaves_as_its_string() {
        assert_eq!(Symbol::normalize("btcusdt"), Symbol::from("BTCUSDT"));
        assert_eq!(Symbol::normalize(" btc").as_str(), " BTC", "not trimmed: callers decide");
        assert_eq!(Symbol::normalize("nse:m&m-eq").as_str(), "NSE:M&M-EQ");
        let s = Symbol::from("NSE:INFY");
        assert_eq!(s, "NSE:INFY");
        assert_eq!(format!("{s} {s:?}"), "NSE:INFY \"NSE:INFY\"");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"NSE:INFY\"");
        assert_eq!(serde_json::from_str::<Symbol>("\"NSE:INFY\"").unwrap(), s);
        let by_name: HashMap<Symbol, u32> = [(s.clone(), 1)].into_iter().collect();
        assert_eq!(by_name.get("NSE:INFY"), Some(&1), "looked up by &str");
        assert!(s.starts_with("NSE:"), "str methods through Deref");
    }
}
