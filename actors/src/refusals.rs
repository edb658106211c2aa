//! One counter family for every budget refusal, whoever refuses: `candlecast_refused_total{limit="..."}`
//! in `/metrics` and `refused` in `/api/stats`.
//!
//! Call [`refused`] with the limit's short name (`"jobs_per_host"`, `"key_admin"`, ...) each time a client
//! is refused. Names are `&'static str`, so the family has a fixed, small set of labels however many
//! clients misbehave. Refusals are rare next to the traffic they protect, so one mutex is plenty.

use std::collections::BTreeMap;
use std::sync::Mutex;

static REFUSED: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

/// Counts one refusal by `limit`.
pub fn refused(limit: &'static str) {
    // A poisoned map holds plain counts: still consistent.
    *REFUSED.lock().unwrap_or_else(|e| e.into_inner()).entry(limit).or_default() += 1;
}

/// Every limit that refused something so far, with its count, sorted by name.
pub fn snapshot() -> Vec<(&'static str, u64)> {
    REFUSED.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (*k, *v)).collect()
}

/// How many refusals `limit` has counted.
pub fn count(limit: &str) -> u64 {
    REFUSED.lock().unwrap_or_else(|e| e.into_inner()).get(limit).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_by_limit() {
        let before = super::count("test_limit");
        super::refused("test_limit");
        super::refused("test_limit");
        assert_eq!(super::count("test_limit"), before + 2);
        assert!(super::snapshot().iter().any(|(k, v)| *k == "test_limit" && *v >= 2));
    }
}
