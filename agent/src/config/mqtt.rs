//! `[mqtt]`: remote control through a broker.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Invalid;

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum MqttProtocol {
    #[serde(rename = "5")]
    V5,
    #[serde(rename = "3.1.1")]
    V311,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` or `mqtts://host:port` (TLS).
    pub url: String,
    #[serde(default = "default_protocol")]
    pub protocol: MqttProtocol,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A file holding the password (its first line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// PEM CA certificates for `mqtts://`; default: the system's roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Default: `streamswitch-<device_id>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default = "default_prefix")]
    pub prefix: String,
    #[serde(default = "default_telemetry")]
    pub telemetry_seconds: u64,
    /// A dead broker is noticed after this.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_seconds: u64,
    /// Home Assistant MQTT discovery under `homeassistant/`.
    #[serde(default = "default_true")]
    pub homeassistant: bool,
}

fn default_protocol() -> MqttProtocol {
    MqttProtocol::V5
}
fn default_prefix() -> String {
    "streamswitch".into()
}
fn default_telemetry() -> u64 {
    10
}
fn default_keep_alive() -> u64 {
    15
}
fn default_true() -> bool {
    true
}

/// Where the broker is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl MqttConfig {
    pub fn broker(&self) -> Result<BrokerAddress, String> {
        let (tls, rest) = if let Some(r) = self.url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = self.url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err("must start with mqtt:// or mqtts://".into());
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse::<u16>().map_err(|_| format!("bad port `{p}`"))?)
            }
            _ => (rest, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') || host.contains('@') {
            return Err("must be mqtt://host[:port] (credentials go in username/password)".into());
        }
        Ok(BrokerAddress {
            host: host.to_owned(),
            port,
            tls,
        })
    }

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        self.broker().map_err(|m| ("mqtt.url".to_owned(), m))?;
        let topic_safe = |s: &str| {
            !s.is_empty()
                && !s.contains(['+', '#', '\0'])
                && !s.starts_with('/')
                && !s.ends_with('/')
        };
        if !topic_safe(&self.prefix) {
            return Err((
                "mqtt.prefix".into(),
                "must be a topic level or levels: no + # or leading/trailing /".into(),
            ));
        }
        if !(1..=3600).contains(&self.telemetry_seconds) {
            return Err(("mqtt.telemetry_seconds".into(), "must be 1 to 3600".into()));
        }
        if !(5..=600).contains(&self.keep_alive_seconds) {
            return Err(("mqtt.keep_alive_seconds".into(), "must be 5 to 600".into()));
        }
        if self.password.is_some() && self.password_file.is_some() {
            return Err((
                "mqtt.password_file".into(),
                "give password or password_file, not both".into(),
            ));
        }
        if self
            .client_id
            .as_deref()
            .is_some_and(|c| c.is_empty() || c.len() > 64)
        {
            return Err(("mqtt.client_id".into(), "must be 1 to 64 characters".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(url: &str) -> MqttConfig {
        MqttConfig {
            url: url.into(),
            protocol: MqttProtocol::V5,
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            client_id: None,
            prefix: default_prefix(),
            telemetry_seconds: 10,
            keep_alive_seconds: 15,
            homeassistant: true,
        }
    }

    #[test]
    fn broker_urls() {
        let b = with_url("mqtt://broker.lan:1884").broker().unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.tls),
            ("broker.lan", 1884, false)
        );
        let b = with_url("mqtts://10.0.0.2").broker().unwrap();
        assert_eq!((b.port, b.tls), (8883, true));
        let b = with_url("mqtt://[::1]:1883").broker().unwrap();
        assert_eq!(b.host, "::1");
        assert!(with_url("tcp://x").broker().is_err());
        assert!(with_url("mqtt://u:p@x").broker().is_err());
        assert!(with_url("mqtt://x:99999").broker().is_err());
    }
}
