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
use crate::hub::{Fanout, GopLimits, Hub, Subscription};
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
        let task = tokio::spawn(run(shared.clone(), hub.subscribe_relay(), self.max_packet));
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use bytes::Bytes;

    use super::*;
    use crate::media::aac::AacParams;
    use crate::media::h264::{length_prefixed, H264Params};
    use crate::media::{Frame, StreamInfo, TrackInfo};

    fn hub() -> (Arc<Hub>, SharedStreamInfo) {
        let hub = Arc::new(Hub::new("cam"));
        hub.set_info(StreamInfo {
            tracks: vec![
                TrackInfo {
                    params: TrackParams::H264(H264Params {
                        sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f]),
                        pps: Bytes::from_static(&[0x68, 0xce]),
                        width: 16,
                        height: 16,
                    }),
                    clock_rate: 90_000,
                },
                TrackInfo {
                    params: TrackParams::Aac(AacParams::lc(48_000, 1)),
                    clock_rate: 48_000,
                },
            ],
            epoch: Instant::now(),
        });
        let info = hub.info().unwrap();
        (hub, info)
    }

    fn video(pts: i64, key: bool, size: usize) -> Frame {
        let nal: Vec<u8> = std::iter::once(if key { 0x65 } else { 0x41 })
            .chain(std::iter::repeat_n(7, size))
            .collect();
        Frame {
            track: 0,
            pts,
            dts: pts,
            key,
            data: length_prefixed([&nal[..]]),
        }
    }

    fn audio(pts: i64) -> Frame {
        Frame {
            track: 1,
            pts,
            dts: pts,
            key: true,
            data: Bytes::from_static(&[1, 2, 3]),
        }
    }

    async fn next(r: &mut crate::hub::Reader<Arc<RtpBurst>>) -> Arc<RtpBurst> {
        tokio::time::timeout(Duration::from_secs(5), r.recv())
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn one_burst_per_video_frame_carries_the_audio_before_it() {
        let (hub, info) = hub();
        let stages = Stages::new(1400);
        let stage = stages.get(&hub, &info);
        let mut a = stage.shared.fanout.subscribe();
        let mut b = stage.shared.fanout.subscribe();
        assert!(
            Arc::ptr_eq(&stages.get(&hub, &info), &stage),
            "one stage per stream"
        );
        hub.publish(video(0, true, 3000));
        hub.publish(audio(960));
        hub.publish(audio(1920));
        hub.publish(video(3000, false, 100));

        let first = next(&mut a).await;
        assert_eq!(first.packets.len(), 3, "a 3 kB IDR in 3 FU-A packets");
        assert!(first.packets.iter().all(|p| p.track == 0));
        let (h, _) = rtp::parse(&first.packets[0].data).unwrap();
        assert_eq!(first.start[0].seq, h.seq);
        assert_eq!(first.start[0].rtptime, h.timestamp);
        assert_eq!(h.timestamp, stage.shared.tracks[0].ts_base);
        // No audio yet: audio starts where the clock of this frame is.
        assert_eq!(first.start[1].rtptime, stage.shared.tracks[1].ts_base);

        let second = next(&mut a).await;
        let tracks: Vec<usize> = second.packets.iter().map(|p| p.track).collect();
        assert_eq!(tracks, [1, 1, 0]);
        let (h, _) = rtp::parse(&second.packets[0].data).unwrap();
        assert_eq!(
            h.seq, first.start[1].seq,
            "audio starts at the announced seq"
        );
        assert_eq!(
            h.timestamp,
            stage.shared.tracks[1].ts_base.wrapping_add(960)
        );
        // Both readers get the very same packets.
        let b1 = next(&mut b).await;
        assert!(Arc::ptr_eq(&b1, &first));
    }

    #[tokio::test]
    async fn a_late_session_starts_at_the_cached_keyframe_and_the_stage_stops_with_the_last() {
        let (hub, info) = hub();
        let stages = Stages::new(1400);
        let stage = stages.get(&hub, &info);
        let mut early = stage.shared.fanout.subscribe();
        hub.publish(video(0, true, 10));
        hub.publish(video(3000, false, 10));
        next(&mut early).await;
        next(&mut early).await;
        let mut late = stage.shared.fanout.subscribe();
        let cached = next(&mut late).await;
        let (h, payload) = rtp::parse(&cached.packets[0].data).unwrap();
        assert_eq!(payload[0] & 0x1f, 5, "starts on the IDR");
        assert_eq!(h.timestamp, stage.shared.tracks[0].ts_base);
        assert_eq!(hub.reader_count(), 1);
        drop(stage);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(hub.reader_count(), 0);
    }
}
