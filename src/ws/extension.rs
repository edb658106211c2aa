//! The `Sec-WebSocket-Extensions` negotiation of permessage-deflate (RFC 7692 §5, §7.1).
//!
//! A client lists offers in its order of preference; the server takes the first permessage-deflate offer
//! it can meet and declines the others. The server always answers with `server_no_context_takeover` and
//! `client_no_context_takeover` (each message compressed on its own: what lets the hub compress an update
//! once for every client, `candlecast_actors::deflate`). An offer is refused when:
//! - it limits the server's window below 15 bits (`server_max_window_bits=8..14`): the compressor uses a
//!   32 KB window and cannot promise less;
//! - a parameter is unknown, repeated, or has a value it must not have (RFC 7692 §7: decline).
//!
//! A header that does not parse (bad syntax, not ASCII) is ignored as if absent: the connection opens
//! with plain frames, never an error.

use actix_web::http::header::{HeaderMap, SEC_WEBSOCKET_EXTENSIONS};

const NAME: &str = "permessage-deflate";
/// The window the server compresses with (flate2's fixed 32 KB).
const SERVER_WINDOW_BITS: u8 = 15;

/// A permessage-deflate offer the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Accepted {
    /// The client asked the server to say its window size (`server_max_window_bits=15`): the answer must
    /// carry it back (RFC 7692 §7.1.2.1).
    echo_server_window: bool,
}

impl Accepted {
    /// The `Sec-WebSocket-Extensions` value of the response.
    pub(super) fn response(&self) -> String {
        let mut value = format!("{NAME}; server_no_context_takeover; client_no_context_takeover");
        if self.echo_server_window {
            value.push_str(&format!("; server_max_window_bits={SERVER_WINDOW_BITS}"));
        }
        value
    }
}

/// The permessage-deflate offer to accept among the request's `Sec-WebSocket-Extensions` headers, if any.
pub(super) fn negotiate(headers: &HeaderMap) -> Option<Accepted> {
    let mut joined = String::new();
    for value in headers.get_all(SEC_WEBSOCKET_EXTENSIONS) {
        // Several header lines are one comma-separated list (RFC 7230 §3.2.2).
        let Ok(text) = value.to_str() else { return None };
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(text);
    }
    let offers = parse(&joined)?;
    offers.iter().filter(|o| o.name.eq_ignore_ascii_case(NAME)).find_map(accept)
}

/// One extension of the list: its name and parameters, values unquoted.
#[derive(Debug, PartialEq, Eq)]
struct Offer {
    name: String,
    params: Vec<(String, Option<String>)>,
}

/// Whether the server can meet `offer`, and how it answers.
fn accept(offer: &Offer) -> Option<Accepted> {
    let mut seen: Vec<String> = Vec::new();
    let mut echo_server_window = false;
    for (key, value) in &offer.params {
        let key = key.to_ascii_lowercase();
        if seen.contains(&key) {
            return None;
        }
        match (key.as_str(), value.as_deref()) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => {}
            ("server_max_window_bits", Some(v)) => match window_bits(v)? {
                SERVER_WINDOW_BITS => echo_server_window = true,
                _ => return None,
            },
            // The client may limit its own window: any window inflates with ours.
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", Some(v)) => {
                window_bits(v)?;
            }
            _ => return None,
        }
        seen.push(key);
    }
    Some(Accepted { echo_server_window })
}

/// A window size: 8 to 15, decimal digits without a leading zero (RFC 7692 §7.1.2.1).
fn window_bits(v: &str) -> Option<u8> {
    if v.starts_with('0') || v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || v.len() > 2 {
        return None;
    }
    v.parse().ok().filter(|bits| (8..=15).contains(bits))
}

/// Parses an extension list (RFC 6455 §9.1): `name *(";" param ["=" (token | quoted-string)])`, offers
/// separated by commas, empty elements skipped. `None` if any part is malformed.
fn parse(list: &str) -> Option<Vec<Offer>> {
    let mut offers = Vec::new();
    for element in split_outside_quotes(list, ',')? {
        if element.trim().is_empty() {
            continue;
        }
        let mut parts = split_outside_quotes(element, ';')?.into_iter();
        let name = parts.next()?.trim();
        if !is_token(name) {
            return None;
        }
        let mut params = Vec::new();
        for part in parts {
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), Some(unquote(v.trim())?)),
                None => (part.trim(), None),
            };
            if !is_token(key) || value.as_deref().is_some_and(|v| !is_token(v)) {
                return None;
            }
            params.push((key.to_owned(), value));
        }
        offers.push(Offer { name: name.to_owned(), params });
    }
    Some(offers)
}

/// `s` cut at each `sep` outside a quoted string; `None` if a quote is left open.
fn split_outside_quotes(s: &str, sep: char) -> Option<Vec<&str>> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if quoted {
        return None;
    }
    parts.push(&s[start..]);
    Some(parts)
}

/// A value as a token, its quotes and backslash escapes removed if it was a quoted string.
fn unquote(v: &str) -> Option<String> {
    let Some(inner) = v.strip_prefix('"') else { return Some(v.to_owned()) };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next()? } else { c });
    }
    Some(out)
}

/// An RFC 7230 token: one or more visible ASCII characters other than separators.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && !b"\"(),/:;<=>?@[\\]{}".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    const PLAIN: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

    fn offer(values: &[&[u8]]) -> Option<String> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(SEC_WEBSOCKET_EXTENSIONS, HeaderValue::from_bytes(v).unwrap());
        }
        negotiate(&headers).map(|a| a.response())
    }

    /// What browsers and common libraries send, and what the server answers.
    #[test]
    fn common_offers_are_accepted() {
        let cases: &[(&str, &str)] = &[
            // Chromium and Firefox
            ("permessage-deflate; client_max_window_bits", PLAIN),
            // Python websockets
            (
                "permessage-deflate; server_max_window_bits=15; client_max_window_bits",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15",
            ),
            ("permessage-deflate", PLAIN),
            ("PerMessage-Deflate; Server_No_Context_Takeover", PLAIN),
            ("permessage-deflate; client_no_context_takeover; server_no_context_takeover", PLAIN),
            ("permessage-deflate; client_max_window_bits=\"10\"", PLAIN),
        ];
        for (header, answer) in cases {
            assert_eq!(offer(&[header.as_bytes()]).as_deref(), Some(*answer), "{header}");
        }
    }

    /// RFC 7692 §5: an offer the server cannot meet is declined and the next one taken.
    #[test]
    fn an_offer_that_cannot_be_met_is_declined_for_the_next() {
        let cases: &[(&str, Option<&str>)] = &[
            ("permessage-deflate; server_max_window_bits=10, permessage-deflate", Some(PLAIN)),
            ("permessage-deflate; server_max_window_bits=10", None),
            ("permessage-deflate; server_max_window_bits", None),
            ("permessage-deflate; server_max_window_bits=16", None),
            ("permessage-deflate; server_max_window_bits=015", None),
            ("permessage-deflate; client_max_window_bits=7", None),
            ("permessage-deflate; server_no_context_takeover=1", None),
            ("permessage-deflate; mystery, permessage-deflate", Some(PLAIN)),
            ("permessage-deflate; client_max_window_bits; client_max_window_bits", None),
            ("x-webkit-deflate-frame, permessage-deflate; client_max_window_bits", Some(PLAIN)),
            ("x-webkit-deflate-frame", None),
        ];
        for (header, answer) in cases {
            assert_eq!(offer(&[header.as_bytes()]).as_deref(), *answer, "{header}");
        }
    }

    #[test]
    fn several_header_lines_are_one_list() {
        assert_eq!(offer(&[b"foo", b"permessage-deflate"]).as_deref(), Some(PLAIN));
        assert_eq!(offer(&[b"permessage-deflate; server_max_window_bits=9", b"bar"]), None);
    }

    /// Malformed headers are ignored (no extension), never an error.
    #[test]
    fn malformed_headers_are_ignored() {
        let cases: &[&[u8]] = &[
            b"permessage-deflate; client_max_window_bits=\"15",
            b"permessage-deflate; =15",
            b"; permessage-deflate",
            b"permessage-deflate; a b",
            // A quoted value must still be a token (RFC 6455 §9.1).
            b"permessage-deflate; x=\"a,b\", permessage-deflate",
            b"perm\xc3\xa9ssage-deflate",
            b"permessage-deflate; client_max_window_bits=\"1\\",
            b"",
            b",,,",
        ];
        for header in cases {
            assert_eq!(offer(&[header]), None, "{}", String::from_utf8_lossy(header));
        }
    }

    #[test]
    fn no_header_no_extension() {
        assert_eq!(offer(&[]), None);
    }
}
