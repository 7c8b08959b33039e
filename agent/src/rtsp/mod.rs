//! The RTSP 1.0 server (RFC 2326): pure protocol modules (framing, SDP,
//! RTP/RTCP, transport, auth) and the tokio glue that serves them.

pub mod auth;
pub mod client_auth;
mod connection;
pub mod limits;
pub mod message;
pub(crate) mod player;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
mod server;
mod session;
mod stage;
mod state;
pub mod transport;
pub mod uri;

pub use server::{serve, Inputs};
