//! `[rtsp]`: the RTSP server.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::Invalid;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RtspConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Sessions beyond this get 453 Not Enough Bandwidth.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// A session with no request and no RTCP for this long is closed.
    #[serde(default = "default_session_timeout")]
    pub session_timeout_seconds: u64,
    /// Largest RTP packet sent, in bytes (RTP header included).
    #[serde(default = "default_max_packet")]
    pub max_packet_size: usize,
    /// Connections one client address may hold open at once.
    #[serde(default = "default_per_client")]
    pub max_connections_per_client: usize,
    /// Sessions one client address may hold at once (453 beyond).
    #[serde(default = "default_per_client")]
    pub max_sessions_per_client: usize,
    /// A connection that has not sent a complete request this long after
    /// it was accepted is closed.
    #[serde(default = "default_first_request")]
    pub first_request_timeout_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<RtspAuthConfig>,
}

fn default_listen() -> SocketAddr {
    ([0, 0, 0, 0], 8554).into()
}
fn default_max_sessions() -> usize {
    100
}
fn default_session_timeout() -> u64 {
    60
}
fn default_max_packet() -> usize {
    1400
}
fn default_per_client() -> usize {
    32
}
fn default_first_request() -> u64 {
    10
}

/// Upper bound of `max_sessions`: the connection cap derived from it
/// (`2 * max_sessions + 16`) must not overflow, and no board holds more.
const MAX_SESSIONS_LIMIT: usize = 100_000;

impl Default for RtspConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_sessions: default_max_sessions(),
            session_timeout_seconds: default_session_timeout(),
            max_packet_size: default_max_packet(),
            max_connections_per_client: default_per_client(),
            max_sessions_per_client: default_per_client(),
            first_request_timeout_seconds: default_first_request(),
            auth: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub password: String,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RtspAuthMethod {
    Basic,
    Digest,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RtspAuthConfig {
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Challenges offered, in order. Basic sends the password in clear.
    #[serde(default = "default_methods")]
    pub methods: Vec<RtspAuthMethod>,
    pub users: Vec<User>,
}

fn default_realm() -> String {
    "StreamSwitch".into()
}
fn default_methods() -> Vec<RtspAuthMethod> {
    vec![RtspAuthMethod::Digest]
}

impl RtspConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if !(1..=MAX_SESSIONS_LIMIT).contains(&self.max_sessions) {
            return Err((
                "rtsp.max_sessions".into(),
                format!("must be between 1 and {MAX_SESSIONS_LIMIT}"),
            ));
        }
        if !(5..=86_400).contains(&self.session_timeout_seconds) {
            return Err((
                "rtsp.session_timeout_seconds".into(),
                "must be between 5 and 86400".into(),
            ));
        }
        if !(1..=MAX_SESSIONS_LIMIT).contains(&self.max_connections_per_client) {
            return Err((
                "rtsp.max_connections_per_client".into(),
                format!("must be between 1 and {MAX_SESSIONS_LIMIT}"),
            ));
        }
        if !(1..=MAX_SESSIONS_LIMIT).contains(&self.max_sessions_per_client) {
            return Err((
                "rtsp.max_sessions_per_client".into(),
                format!("must be between 1 and {MAX_SESSIONS_LIMIT}"),
            ));
        }
        if !(1..=3600).contains(&self.first_request_timeout_seconds) {
            return Err((
                "rtsp.first_request_timeout_seconds".into(),
                "must be between 1 and 3600".into(),
            ));
        }
        if !(200..=65_000).contains(&self.max_packet_size) {
            return Err((
                "rtsp.max_packet_size".into(),
                "must be between 200 and 65000".into(),
            ));
        }
        if let Some(auth) = &self.auth {
            if auth.users.is_empty() {
                return Err(("rtsp.auth.users".into(), "needs at least one user".into()));
            }
            if auth.methods.is_empty() {
                return Err((
                    "rtsp.auth.methods".into(),
                    "needs \"basic\", \"digest\" or both".into(),
                ));
            }
        }
        Ok(())
    }
}
