//! A stream's `uplink` targets: where it is pushed (RTSP ANNOUNCE/RECORD or
//! RTMP publish).

use serde::{Deserialize, Serialize};

use super::Invalid;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// `rtsp://[user:pass@]host[:port]/path` or `rtmp://host[:port]/app/key`.
    pub url: String,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Credentials (RTSP Basic or Digest), when not in the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The longest pause between reconnections.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_seconds: u64,
    /// Media held for a slow link before it drops to the next keyframe.
    #[serde(default = "default_queue_kb")]
    pub queue_kb: usize,
}

fn default_true() -> bool {
    true
}
fn default_backoff_max() -> u64 {
    30
}
fn default_queue_kb() -> usize {
    2048
}

/// The protocol of an uplink, from its URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UplinkProtocol {
    Rtsp,
    Rtmp,
}

impl UplinkConfig {
    pub fn protocol(&self) -> Option<UplinkProtocol> {
        if self.url.starts_with("rtsp://") {
            Some(UplinkProtocol::Rtsp)
        } else if self.url.starts_with("rtmp://") {
            Some(UplinkProtocol::Rtmp)
        } else {
            None
        }
    }

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        let Some(protocol) = self.protocol() else {
            return Err(("url".into(), "must start with rtsp:// or rtmp://".into()));
        };
        let parsed = url::Url::parse(&self.url).map_err(|e| ("url".to_owned(), e.to_string()))?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(("url".into(), "has no host".into()));
        }
        if protocol == UplinkProtocol::Rtmp
            && parsed
                .path_segments()
                .map_or(0, |s| s.filter(|p| !p.is_empty()).count())
                < 2
        {
            return Err((
                "url".into(),
                "must be rtmp://host[:port]/app/stream_key".into(),
            ));
        }
        if !(1..=3600).contains(&self.backoff_max_seconds) {
            return Err(("backoff_max_seconds".into(), "must be 1 to 3600".into()));
        }
        if !(64..=65_536).contains(&self.queue_kb) {
            return Err(("queue_kb".into(), "must be 64 to 65536".into()));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(("username".into(), "is needed with password".into()));
        }
        Ok(())
    }
}
