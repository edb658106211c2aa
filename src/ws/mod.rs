//! The `/ws` endpoint.
//!
//! - [`session`]: the session actor and the route (the only code that knows actix-web-actors).
//! - [`body`]: the connection's response body: runs the session actor when it is due, streams the outbox.
//! - [`request`]: decoding client messages.
//! - [`rate_limits`]: rate and error limits per client (whether a client reads too slowly is decided by its
//!   outbox, `candlecast_actors::outbox`).
//! - [`topics`]: the check of the topics a client names, shared with Socket.IO.
//! - [`extension`]: the `Sec-WebSocket-Extensions` negotiation of permessage-deflate (RFC 7692).
//! - [`inflate`]: a deflate client's compressed messages inflated, within budget, before the codec reads them.
//! - [`admission`]: origin check and per-host and total budgets of connections and indicator streams.

pub(crate) mod admission;
mod body;
mod extension;
mod inflate;
pub(crate) mod rate_limits;
pub(crate) mod request;
mod session;
pub(crate) mod topics;

pub use admission::Admission;
pub use session::{route, Services};
