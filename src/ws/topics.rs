//! The one check of the symbols and interval a client names, for `/ws` and Socket.IO alike.
//!
//! A (un)subscribe request becomes a [`TopicList`] once, here; an indicator or signal request's single pair
//! becomes a [`Topic`] through [`stream_topic`]. What can be wrong is a [`TopicError`], which knows the
//! error code and the message each transport sends back, so both transports answer the same request alike.

use std::collections::HashSet;

use candlecast_actors::messages::Topic;
use candlecast_actors::model::{Interval, Symbol};
use candlecast_actors::protocol::{self, ErrorCode, ErrorMessage, InvalidParameter, RefusedTopic};
use serde_json::Value;

/// What a subscription does with symbols the market does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownSymbols {
    /// Not checked (unsubscribing from a symbol that is gone is fine).
    Allowed,
    /// Left out and listed in [`TopicList::refused`]; an error only if no symbol is known (`/ws`: one
    /// unknown symbol must not cost a dashboard's other charts their subscription).
    Skipped,
    /// Any unknown symbol refuses the whole request (Socket.IO).
    Refused,
}

/// Why a request's topics were refused. Each variant knows its wire code ([`TopicError::code`]); the
/// message is its `Display`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("{0}")]
    Interval(#[from] InvalidParameter),
    #[error("trading_pairs is empty")]
    NoPairs,
    /// Every one of these (upper-cased) is unknown, or with [`UnknownSymbols::Refused`] any is.
    #[error("unknown symbol(s): {}; nothing was subscribed", .0.join(", "))]
    UnknownSymbols(Vec<String>),
    /// The one pair of a stream request, as the client spelled it.
    #[error("unknown symbol {0:?}")]
    UnknownSymbol(String),
}

impl TopicError {
    /// The `code` of the error reply.
    pub fn code(&self) -> ErrorCode {
        match self {
            TopicError::Interval(_) | TopicError::NoPairs => ErrorCode::InvalidParameter,
            TopicError::UnknownSymbols(_) | TopicError::UnknownSymbol(_) => ErrorCode::UnknownSymbol,
        }
    }

    /// The `/ws` error reply, answering the request `id`.
    pub fn reply(&self, id: Option<Value>) -> ErrorMessage {
        ErrorMessage::new(self.code(), self.to_string(), id)
    }

    /// [`TopicError::code`] as it is spelled on the wire (Socket.IO's `error` field).
    pub fn code_name(&self) -> &'static str {
        match self.code() {
            ErrorCode::UnknownSymbol => "unknown_symbol",
            _ => "invalid_parameter",
        }
    }
}

/// A `/ws` request that would take a client past `max_topics_per_client` (topics and indicator or signal
/// streams together): nothing of it is subscribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "subscribing to {new} more topic(s) would exceed the limit of {max} per client (holding {held}); nothing was subscribed"
)]
pub struct TopicLimitError {
    pub new: usize,
    pub max: usize,
    pub held: usize,
}

impl TopicLimitError {
    /// The `/ws` error reply (`too_many_subscriptions`), answering the request `id`.
    pub fn reply(&self, id: Option<Value>) -> ErrorMessage {
        ErrorMessage::new(ErrorCode::TooManySubscriptions, self.to_string(), id)
    }
}

/// The topics of a (un)subscribe request, checked.
#[derive(Debug, Clone)]
pub struct TopicList {
    /// The pairs as the reply lists them: upper-cased, in the client's order (repeats kept), unknown ones
    /// left out.
    pub names: Vec<String>,
    /// The distinct topics of `names`.
    pub topics: Vec<Topic>,
    pub interval: Interval,
    /// Pairs left out as unknown (only with [`UnknownSymbols::Skipped`]).
    pub refused: Vec<RefusedTopic>,
}

impl TopicList {
    /// Checks the interval (default 1m), that some pair is named and, as `unknown` says, that the market
    /// has the symbols (`is_known`, given the upper-cased name: normally `Market::contains`).
    pub fn parse(
        pairs: &[String],
        interval: Option<&str>,
        unknown: UnknownSymbols,
        is_known: impl Fn(&str) -> bool,
    ) -> Result<TopicList, TopicError> {
        let interval = protocol::parse_interval(interval)?;
        if pairs.is_empty() {
            return Err(TopicError::NoPairs);
        }
        let mut names: Vec<String> = pairs.iter().map(|s| Symbol::normalize(s).to_string()).collect();
        let mut refused = Vec::new();
        if unknown != UnknownSymbols::Allowed {
            let (known, missing): (Vec<String>, Vec<String>) = names.into_iter().partition(|s| is_known(s));
            if known.is_empty() || (unknown == UnknownSymbols::Refused && !missing.is_empty()) {
                return Err(TopicError::UnknownSymbols(missing));
            }
            refused = missing
                .into_iter()
                .map(|pair| RefusedTopic {
                    message: format!("unknown symbol {pair}"),
                    code: ErrorCode::UnknownSymbol,
                    trading_pair: pair,
                })
                .collect();
            names = known;
        }
        let mut seen = HashSet::new();
        let topics =
            names.iter().filter(|s| seen.insert(s.as_str())).map(|s| (Symbol::from(s.as_str()), interval)).collect();
        Ok(TopicList { names, topics, interval, refused })
    }
}

/// The topic of an indicator or signal request: one pair, which the market must have (`is_known`).
pub fn stream_topic(pair: &str, interval: Option<&str>, is_known: impl Fn(&str) -> bool) -> Result<Topic, TopicError> {
    let interval = protocol::parse_interval(interval)?;
    let symbol = Symbol::normalize(pair);
    if !is_known(&symbol) {
        return Err(TopicError::UnknownSymbol(pair.to_owned()));
    }
    Ok((Symbol::from(symbol.as_str()), interval))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(s: &str) -> bool {
        matches!(s, "BTCUSDT" | "ETHUSDT")
    }

    fn pairs(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    /// Each refusal with the code and message clients have always been sent (docs/protocol.md).
    #[test]
    fn refusals_keep_their_codes_and_messages() {
        let cases = [
            (
                pairs(&["btcusdt"]),
                Some("7m"),
                UnknownSymbols::Skipped,
                ErrorCode::InvalidParameter,
                "invalid parameter `interval`",
            ),
            (vec![], None, UnknownSymbols::Allowed, ErrorCode::InvalidParameter, "trading_pairs is empty"),
            (
                pairs(&["gone", "nope"]),
                None,
                UnknownSymbols::Skipped,
                ErrorCode::UnknownSymbol,
                "unknown symbol(s): GONE, NOPE; nothing was subscribed",
            ),
            (
                pairs(&["btcusdt", "gone"]),
                Some("1s"),
                UnknownSymbols::Refused,
                ErrorCode::UnknownSymbol,
                "unknown symbol(s): GONE; nothing was subscribed",
            ),
        ];
        for (p, interval, unknown, code, message) in cases {
            let err = TopicList::parse(&p, interval, unknown, known).unwrap_err();
            assert_eq!(err.code(), code, "{p:?}");
            assert!(err.to_string().starts_with(message), "{p:?}: {err}");
            let wire = serde_json::to_value(err.code()).unwrap();
            assert_eq!(wire, err.code_name(), "Socket.IO spells the code as /ws does");
        }
    }

    #[test]
    fn unknown_symbols_are_skipped_and_named_or_allowed() {
        let got = TopicList::parse(
            &pairs(&["btcusdt", "gone", "BTCUSDT", "ethusdt"]),
            Some("5m"),
            UnknownSymbols::Skipped,
            known,
        )
        .unwrap();
        assert_eq!(got.names, ["BTCUSDT", "BTCUSDT", "ETHUSDT"], "repeats kept as the client sent them");
        assert_eq!(got.interval, Interval::M5);
        let topics: Vec<_> = got.topics.iter().map(|(s, i)| (s.to_string(), *i)).collect();
        assert_eq!(topics, [("BTCUSDT".to_string(), Interval::M5), ("ETHUSDT".to_string(), Interval::M5)]);
        assert_eq!(got.refused.len(), 1);
        assert_eq!(
            (got.refused[0].trading_pair.as_str(), got.refused[0].message.as_str()),
            ("GONE", "unknown symbol GONE")
        );
        let all = TopicList::parse(&pairs(&["gone"]), None, UnknownSymbols::Allowed, known).unwrap();
        assert_eq!(
            (all.names.as_slice(), all.interval, all.refused.len()),
            (&["GONE".to_string()][..], Interval::M1, 0)
        );
    }

    #[test]
    fn a_stream_names_one_known_pair() {
        assert_eq!(stream_topic("ethusdt", Some("1h"), known).unwrap(), (Symbol::from("ETHUSDT"), Interval::H1));
        let err = stream_topic("doge", None, known).unwrap_err();
        assert_eq!((err.code(), err.to_string()), (ErrorCode::UnknownSymbol, "unknown symbol \"doge\"".to_string()));
        assert_eq!(stream_topic("ethusdt", Some("x"), known).unwrap_err().code(), ErrorCode::InvalidParameter);
    }
}
