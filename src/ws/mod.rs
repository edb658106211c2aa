//! The `/ws` endpoint.
//!
//! - [`session`]: the session actor and the route (the only code that knows actix-web-actors).
//! - [`request`]: decoding client messages.
//! - [`limits`]: rate and error limits per client.
//! - [`topics`]: the check of the topics a client names, shared with Socket.IO.
//! - [`admission`]: origin check and per-host and total budgets of connections and indicator streams.

pub mod admission;
pub(crate) mod limits;
// Public only for the fuzz target (fuzz/fuzz_targets/ws_request.rs); not an API.
#[doc(hidden)]
pub mod request;
mod session;
pub(crate) mod topics;

pub use admission::Admission;
pub use session::{route, Services};
