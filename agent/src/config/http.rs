//! `[http]` and `[hls]`: the local HTTP server and its HLS output.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{Invalid, User};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Value of Access-Control-Allow-Origin; none when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_origin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<HttpAuthConfig>,
    /// Connections open at once; more are closed as they come.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A request's head must arrive within this of its first byte.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_seconds: u64,
    /// A kept-alive connection with no new request this long is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_seconds: u64,
}

fn default_listen() -> SocketAddr {
    ([0, 0, 0, 0], 8888).into()
}
fn default_max_connections() -> usize {
    256
}
fn default_header_timeout() -> u64 {
    10
}
fn default_idle_timeout() -> u64 {
    60
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            cors_origin: None,
            auth: None,
            max_connections: default_max_connections(),
            header_timeout_seconds: default_header_timeout(),
            idle_timeout_seconds: default_idle_timeout(),
        }
    }
}

/// Basic users and/or bearer tokens; either one lets a request through.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpAuthConfig {
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub tokens: Vec<String>,
}

impl HttpConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if !(1..=100_000).contains(&self.max_connections) {
            return Err((
                "http.max_connections".into(),
                "must be between 1 and 100000".into(),
            ));
        }
        for (key, value) in [
            ("http.header_timeout_seconds", self.header_timeout_seconds),
            ("http.idle_timeout_seconds", self.idle_timeout_seconds),
        ] {
            if !(1..=3600).contains(&value) {
                return Err((key.into(), "must be between 1 and 3600".into()));
            }
        }
        // It goes verbatim into a header.
        if let Some(origin) = &self.cors_origin {
            if origin.is_empty() || !origin.bytes().all(|b| b.is_ascii_graphic()) {
                return Err((
                    "http.cors_origin".into(),
                    "must be `*` or an origin such as `https://example.com`".into(),
                ));
            }
        }
        if let Some(auth) = &self.auth {
            if auth.users.is_empty() && auth.tokens.is_empty() {
                return Err((
                    "http.auth".into(),
                    "needs at least one user or token".into(),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HlsConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Target duration of a partial segment.
    #[serde(default = "default_part_ms")]
    pub part_ms: u32,
    /// Segments kept in the playlist.
    #[serde(default = "default_segments")]
    pub segments: usize,
    /// A muxer nobody asked anything of for this long stops.
    #[serde(default = "default_idle")]
    pub idle_timeout_seconds: u64,
}

fn default_true() -> bool {
    true
}
fn default_part_ms() -> u32 {
    200
}
fn default_segments() -> usize {
    7
}
fn default_idle() -> u64 {
    30
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            part_ms: default_part_ms(),
            segments: default_segments(),
            idle_timeout_seconds: default_idle(),
        }
    }
}

impl HlsConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if !(50..=5000).contains(&self.part_ms) {
            return Err(("hls.part_ms".into(), "must be between 50 and 5000".into()));
        }
        if !(3..=100).contains(&self.segments) {
            return Err(("hls.segments".into(), "must be between 3 and 100".into()));
        }
        Ok(())
    }
}
