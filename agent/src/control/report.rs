//! The agent's state in one report: what MQTT publishes on `state` and
//! answers to `status`. Streams are keyed by name, so that a Home Assistant
//! template reads `value_json.streams.<name>.fps`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Control;
use crate::record::listing;

#[derive(Clone, Debug, Serialize)]
pub struct AgentReport {
    pub device_id: String,
    pub version: &'static str,
    pub uptime_s: u64,
    pub config_revision: u64,
    pub streams: BTreeMap<String, StreamReport>,
    pub disk: DiskReport,
    pub clock: ClockReport,
}

#[derive(Clone, Debug, Serialize)]
pub struct StreamReport {
    pub state: &'static str,
    pub last_error: Option<String>,
    pub fps: u32,
    pub bitrate_kbps: u64,
    pub viewers: BTreeMap<&'static str, u32>,
    pub recording: bool,
    pub recording_error: Option<String>,
    /// Per target: state, last error, bytes sent, drops.
    pub uplinks: Vec<crate::uplink::UplinkStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DiskReport {
    pub free_bytes: Option<u64>,
    pub recordings_bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClockReport {
    /// The kernel's view (adjtimex); `null` when it cannot tell.
    pub synchronized: Option<bool>,
}

impl Control {
    /// Everything the state topic carries. Reads the disk (statvfs and
    /// the recordings' sizes) on a blocking thread.
    pub async fn report(&self) -> AgentReport {
        let config = self.config();
        let streams = self
            .stream_states()
            .await
            .into_iter()
            .map(|s| {
                let (recording, recording_error) = s
                    .recording
                    .map_or((false, None), |r| (r.enabled, r.last_error));
                (
                    s.name,
                    StreamReport {
                        state: s.state,
                        last_error: s.last_error,
                        fps: s.fps,
                        bitrate_kbps: s.bitrate_kbps,
                        viewers: s.viewers,
                        recording,
                        recording_error,
                        uplinks: s.uplinks,
                    },
                )
            })
            .collect();
        let data_dir = config.agent.data_dir.clone();
        let root = self.recorders.root().clone();
        let disk = tokio::task::spawn_blocking(move || DiskReport {
            free_bytes: crate::status::disk(&data_dir).ok().map(|d| d.free_bytes),
            recordings_bytes: listing::total_bytes(&root),
        })
        .await
        .unwrap_or(DiskReport {
            free_bytes: None,
            recordings_bytes: 0,
        });
        AgentReport {
            device_id: config.agent.device_id.clone(),
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: self.started.elapsed().as_secs(),
            config_revision: self.revision(),
            streams,
            disk,
            clock: ClockReport {
                synchronized: crate::status::clock_synchronized(),
            },
        }
    }
}
