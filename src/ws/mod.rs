//! The `/ws` endpoint.
//!
//! - [`session`]: the session actor and the route (the only code that knows actix-web-actors).
//! - [`request`]: decoding client messages.
//! - [`limits`]: rate and error limits per client.

pub(crate) mod limits;
// Public only for the fuzz target (fuzz/fuzz_targets/ws_request.rs); not an API.
#[doc(hidden)]
pub mod request;
mod session;

pub use session::{route, Services};
