//! The command set: every operation the outside world may ask of the
//! agent, in one place. The HTTP API and SIGHUP call these now, MQTT next;
//! each adapter only translates its wire format.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{Applied, Control};
use crate::config::{Config, ConfigError};
use crate::hub::Output;
use crate::record::RecorderStatus;
use crate::uplink::UplinkStatus;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("no stream named `{0}`")]
    NoSuchStream(String),
    #[error("stream `{stream}` has no uplink `{target}` (give its index or URL)")]
    NoSuchUplink { stream: String, target: String },
    /// A config that cannot be applied: where and why.
    #[error("{0}")]
    Config(ConfigError),
    /// Something on our side failed (the disk, a task).
    #[error("{0}")]
    Internal(String),
}

/// A stream as the API, the web UI and MQTT report it.
#[derive(Clone, Debug, Serialize)]
pub struct StreamState {
    pub name: String,
    /// `starting`, `live`, `down` (failed, retrying) or `stopped`.
    pub state: &'static str,
    pub last_error: Option<String>,
    /// Seconds in the current state.
    pub state_seconds: f64,
    pub restarts: u64,
    /// False while the source is stopped by a command.
    pub source_enabled: bool,
    pub tracks: String,
    pub fps: u32,
    /// Media bit rate over the last second.
    pub bitrate_kbps: u64,
    pub bytes: u64,
    pub viewers: BTreeMap<&'static str, u32>,
    pub recording: Option<RecorderStatus>,
    pub uplinks: Vec<UplinkStatus>,
}

impl Control {
    /// Every stream with its state.
    pub async fn stream_states(&self) -> Vec<StreamState> {
        let state = self.state.lock().await;
        state
            .running
            .values()
            .map(|r| {
                let hub = r.hub();
                let health = hub.health();
                let stats = hub.stats();
                StreamState {
                    name: hub.name().to_owned(),
                    state: health.state.as_str(),
                    last_error: health.last_error,
                    state_seconds: health.since.elapsed().as_secs_f64(),
                    restarts: health.restarts,
                    source_enabled: r.source_running(),
                    tracks: hub.info().map(|i| i.describe()).unwrap_or_default(),
                    fps: stats.fps,
                    bitrate_kbps: stats.bitrate / 1000,
                    bytes: stats.bytes,
                    viewers: Output::ALL
                        .iter()
                        .map(|o| (o.as_str(), stats.viewers[*o as usize]))
                        .collect(),
                    recording: self.recorders.status(hub.name()),
                    uplinks: r.uplink_statuses(),
                }
            })
            .collect()
    }

    /// Starts or stops a stream's source. Its hub stays: RTSP DESCRIBE
    /// answers 503 and HLS keeps its playlist while it is stopped.
    pub async fn set_stream_enabled(&self, stream: &str, on: bool) -> Result<(), CommandError> {
        let mut state = self.state.lock().await;
        let r = state
            .running
            .get_mut(stream)
            .ok_or_else(|| CommandError::NoSuchStream(stream.to_owned()))?;
        if on {
            r.start_source(&self.shutdown);
        } else {
            r.stop_source().await;
        }
        Ok(())
    }

    /// Switches a stream's recording on or off (until the next restart or
    /// config change of its `record` section).
    pub fn set_recording(&self, stream: &str, on: bool) -> Result<RecorderStatus, CommandError> {
        self.recorders
            .set_enabled(stream, on)
            .map_err(|_| CommandError::NoSuchStream(stream.to_owned()))?;
        self.recorders
            .status(stream)
            .ok_or_else(|| CommandError::NoSuchStream(stream.to_owned()))
    }

    /// Enables or disables one of a stream's uplinks (by index or URL)
    /// until the next change of its config.
    pub async fn set_uplink_enabled(
        &self,
        stream: &str,
        target: &str,
        on: bool,
    ) -> Result<(), CommandError> {
        let state = self.state.lock().await;
        let r = state
            .running
            .get(stream)
            .ok_or_else(|| CommandError::NoSuchStream(stream.to_owned()))?;
        if r.uplinks().set_enabled(target, on) {
            Ok(())
        } else {
            Err(CommandError::NoSuchUplink {
                stream: stream.to_owned(),
                target: target.to_owned(),
            })
        }
    }

    /// Asks a stream's source for a keyframe.
    pub fn request_keyframe(&self, stream: &str) -> Result<(), CommandError> {
        let hub = self
            .streams
            .get(stream)
            .ok_or_else(|| CommandError::NoSuchStream(stream.to_owned()))?;
        hub.request_keyframe();
        Ok(())
    }

    /// Replaces the whole config, saves it to the config file.
    pub async fn set_config(&self, new: Config) -> Result<Applied, CommandError> {
        self.apply(new, true).await
    }

    /// Merges a partial config (JSON merge patch) into the running one,
    /// then applies and saves it like [`Control::set_config`].
    pub async fn patch_config(&self, patch: &Value) -> Result<Applied, CommandError> {
        let new = self.config().patched(patch).map_err(CommandError::Config)?;
        self.apply(new, true).await
    }

    /// Reads the config file again and applies it (SIGHUP). A bad file
    /// changes nothing.
    pub async fn reload(&self) -> Result<Applied, CommandError> {
        let Some(path) = self.config_file.clone() else {
            return Err(CommandError::Internal(
                "the agent was started without a config file".into(),
            ));
        };
        let (text, new) = tokio::task::spawn_blocking(move || {
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError {
                file: path.clone(),
                line: None,
                key: None,
                message: format!("cannot read: {e}"),
            })?;
            let config = Config::parse(&text, &path)?;
            Ok::<_, ConfigError>((text, config))
        })
        .await
        .map_err(|e| CommandError::Internal(e.to_string()))?
        .map_err(CommandError::Config)?;
        let applied = self.apply(new, false).await?;
        self.state.lock().await.file_text = text;
        Ok(applied)
    }
}
