//! StreamSwitch Edge: sources feed a per-stream hub, outputs read it.
//! See docs/ and the README for the map.

pub mod app;
pub mod config;
pub mod control;
pub mod devices;
pub mod fmp4;
pub mod hls;
pub mod http;
pub mod hub;
pub mod lock;
pub mod media;
pub mod mqtt;
pub mod notify;
pub mod record;
pub mod rtsp;
pub mod source;
pub mod status;
pub mod uplink;
