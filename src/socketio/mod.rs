//! Socket.IO v5 over Engine.IO v4 at `/socket.io/`, for seed 003's trading scripts and dashboards.
//!
//! - [`engineio`]: Engine.IO packets and polling payloads.
//! - [`packet`]: Socket.IO packets inside Engine.IO messages.
//! - [`queue`]: a session's outgoing packets, bounded in bytes, drained by the active transport.

pub mod engineio;
pub mod packet;
pub mod queue;
