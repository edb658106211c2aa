//! [`FeedSource`]: which upstream a symbol's trades come from, parsed once where text enters (`[feed]
//! source` in the config, the `source` of `POST /api/feeds` and `DELETE /api/feeds/{source}/{symbol}`).
//! Everything past that point matches on the enum, so a new venue is a new variant the compiler follows.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An upstream, or `None` (`[feed] source = "none"`: symbols only from scripts; no feed can run from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum FeedSource {
    Simulated,
    Binance,
    Iqfeed,
    Kite,
    Shoonya,
    Replay,
    None,
}

/// Text that names no feed source; the message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown feed source {0:?}: expected \"simulated\", \"binance\", \"iqfeed\", \"kite\", \"shoonya\", \"replay\" or \"none\""
)]
pub struct UnknownSource(pub String);

impl FeedSource {
    /// Every source, in the order the error message and the docs list them.
    pub const ALL: [FeedSource; 7] = [
        FeedSource::Simulated,
        FeedSource::Binance,
        FeedSource::Iqfeed,
        FeedSource::Kite,
        FeedSource::Shoonya,
        FeedSource::Replay,
        FeedSource::None,
    ];

    /// The name in the config, the API and stored bars.
    pub const fn as_str(self) -> &'static str {
        match self {
            FeedSource::Simulated => "simulated",
            FeedSource::Binance => "binance",
            FeedSource::Iqfeed => "iqfeed",
            FeedSource::Kite => "kite",
            FeedSource::Shoonya => "shoonya",
            FeedSource::Replay => "replay",
            FeedSource::None => "none",
        }
    }

    /// Whether feeds run from this source (all but `none`).
    pub fn runs_feeds(self) -> bool {
        self != FeedSource::None
    }
}

impl FromStr for FeedSource {
    type Err = UnknownSource;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FeedSource::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| UnknownSource(s.to_owned()))
    }
}

impl TryFrom<String> for FeedSource {
    type Error = UnknownSource;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for FeedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_parses_from_its_own_name_and_serializes_back_to_it() {
        for source in FeedSource::ALL {
            assert_eq!(source.as_str().parse::<FeedSource>(), Ok(source));
            let json = serde_json::to_string(&source).unwrap();
            assert_eq!(json, format!("\"{}\"", source.as_str()));
            assert_eq!(serde_json::from_str::<FeedSource>(&json).unwrap(), source);
        }
    }

    #[test]
    fn an_unknown_source_is_refused_with_the_list_of_valid_ones() {
        let e = "Binance".parse::<FeedSource>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown feed source \"Binance\": expected \"simulated\", \"binance\", \"iqfeed\", \"kite\", \"shoonya\", \
             \"replay\" or \"none\""
        );
        let serde_error = serde_json::from_str::<FeedSource>("\"ftx\"").unwrap_err().to_string();
        assert!(serde_error.contains("unknown feed source \"ftx\": expected \"simulated\""), "{serde_error}");
    }
}
