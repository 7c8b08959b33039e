//! The RTP stage of a stream: packetizes each frame once, whatever the
//! number of sessions, and publishes one burst per video frame into a
//! [`Fanout`] that every playing session reads. Started when the first
//! session plays, stopped when the last one goes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::rtp::{self, aac, h264, RtpTrack};
use super::sdp;
use crate::hub::{Fanout, GopLimits, Hub, Output, Subscription};
use crate::media::{rescale, SharedStreamInfo, TrackParams};

/// Bursts a session may fall behind before it skips to the next keyframe:
/// about 4 s of 30 fps video.
const BURST_RING: usize = 128;
const GOP_LIMITS: GopLimits = GopLimits {
    max_items: 512,
    max_bytes: 4 << 20,
};

pub struct RtpPacket {
    /// Index into the stream's tracks.
    pub track: usize,
    pub data: Bytes,
}

/// Where a session that starts with this burst starts on each track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackStart {
    pub seq: u16,
    pub rtptime: u32,
}

/// The packets of one video frame and the audio that came before it.
pub struct RtpBurst {
    pub packets: Vec<RtpPacket>,
    pub start: Vec<TrackStart>,
}

/// What every session of a stage shares about a track.
pub struct StageTrack {
    pub ssrc: u32,
    pub clock_rate: u32,
    /// RTP timestamp of media time zero (the stream's epoch).
    pub ts_base: u32,
}

pub struct StageShared {
    pub info: SharedStreamInfo,
    pub tracks: Vec<StageTrack>,
    pub fanout: Fanout<Arc<RtpBurst>>,
}

impl StageShared {
    /// The RTP timestamp of track `index` for `ticks` of its clock since
    /// the epoch.
    pub fn rtp_time(&self, index: usize, ticks: i64) -> u32 {
        self.tracks[index].ts_base.wrapping_add(ticks as u32)
    }
}

/// A running stage; dropping the last handle stops it.
pub struct Stage {
    pub shared: Arc<StageShared>,
    task: JoinHandle<()>,
}

impl Drop for Stage {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The running stages, by stream name.
pub struct Stages {
    max_packet: usize,
    running: Mutex<HashMap<String, Weak<Stage>>>,
}

impl Stages {
    pub fn new(max_packet: usize) -> Self {
        Self {
            max_packet,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// The stage of `hub` for the stream parameters `info`, started if
    /// needed. A stage of older parameters is replaced for new sessions.
    pub fn get(&self, hub: &Arc<Hub>, info: &SharedStreamInfo) -> Arc<Stage> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|_, s| s.strong_count() > 0);
        if let Some(stage) = running.get(hub.name()).and_then(Weak::upgrade) {
            if Arc::ptr_eq(&stage.shared.info, info) {
                return stage;
            }
        }
        let shared = Arc::new(StageShared {
            info: info.clone(),
            tracks: info
                .tracks
                .iter()
                .map(|t| StageTrack {
                    ssrc: rand::random(),
                    clock_rate: t.clock_rate,
                    ts_base: rand::random(),
                })
                .collect(),
            fanout: Fanout::new(BURST_RING, GOP_LIMITS),
        });
        let task = tokio::spawn(run(
            shared.clone(),
            hub.subscribe(Output::Rtsp),
            self.max_packet,
        ));
        let stage = Arc::new(Stage { shared, task });
        running.insert(hub.name().to_owned(), Arc::downgrade(&stage));
        stage
    }
}

async fn run(shared: Arc<StageShared>, mut frames: Subscription, max_packet: usize) {
    let info = shared.info.clone();
    let mut tracks: Vec<RtpTrack> = shared
        .tracks
        .iter()
        .enumerate()
        .map(|(i, t)| RtpTrack {
            payload_type: sdp::payload_type(i),
            ssrc: t.ssrc,
            next_seq: rand::random(),
        })
        .collect();
    let video = info.video_track();
    let mut pending: Vec<RtpPacket> = Vec::new();
    let mut out = Vec::new();
    while let Some(frame) = frames.recv().await {
        let Some(params) = info.tracks.get(frame.track).map(|t| &t.params) else {
            continue;
        };
        let ts = shared.rtp_time(frame.track, frame.pts.max(0));
        let track = &mut tracks[frame.track];
        match params {
            TrackParams::H264(_) => h264::packetize(&frame.data, max_packet, ts, track, &mut out),
            TrackParams::Aac(_) => {
                if !aac::packetize(&frame.data, max_packet, ts, track, &mut out) {
                    tracing::debug!(len = frame.data.len(), "AAC frame too large for one packet");
                }
            }
        }
        pending.extend(out.drain(..).map(|data| RtpPacket {
            track: frame.track,
            data,
        }));
        if video.is_some_and(|v| v != frame.track) {
            continue;
        }
        let start = (0..tracks.len())
            .map(|i| {
                let first = pending
                    .iter()
                    .find(|p| p.track == i)
                    .and_then(|p| rtp::parse(&p.data));
                match first {
                    Some((h, _)) => TrackStart {
                        seq: h.seq,
                        rtptime: h.timestamp,
                    },
                    None => TrackStart {
                        seq: tracks[i].next_seq,
                        rtptime: shared.rtp_time(
                            i,
                            rescale(
                                frame.pts.max(0),
                                shared.tracks[frame.track].clock_rate,
                                shared.tracks[i].clock_rate,
                            ),
                        ),
                    },
                }
            })
            .collect();
        let bytes = pending.iter().map(|p| p.data.len()).sum();
        let burst = RtpBurst {
            packets: std::mem::take(&mut pending),
            start,
        };
        shared.fanout.publish(Arc::new(burst), frame.key, bytes);
    }
}
