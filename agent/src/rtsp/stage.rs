//! The RTP stage of a stream: packetizes each frame once, whatever the
//! number of sessions, and publishes one burst per video frame into a
//! [`Fanout`] that every playing session reads. Started when the first
//! session sets up, stopped when the last one goes.
//!
//! SSRC, sequence numbers and the timestamp base belong to the stage, and
//! media timestamps to the stream's timeline, which runs on across source
//! restarts: sessions see neither sequence numbers nor timestamps jump
//! back, and new SPS/PPS arrive in band. Only a new track layout (a track
//! added or removed, another codec) ends the stage and its sessions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::rtp::{self, RtpTrack};
use super::sdp;
use crate::hub::{Fanout, GopLimits, Hub, Output, Subscription};
use crate::media::{rescale, Item, SharedStreamInfo};

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
    /// The tracks sessions were set up for. Parameter sets may change under
    /// them (sent in band); a change of layout ends the stage.
    pub info: SharedStreamInfo,
    pub tracks: Vec<StageTrack>,
    pub fanout: Fanout<Arc<RtpBurst>>,
    /// Set when the stage stopped: new sessions get a new stage.
    ended: AtomicBool,
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
#[derive(Default)]
pub struct Stages {
    running: Mutex<HashMap<String, Weak<Stage>>>,
}

impl Stages {
    /// The stage of `hub`, started if needed; `None` while the stream has
    /// never announced its tracks.
    pub fn get(&self, hub: &Arc<Hub>, max_packet: usize) -> Option<Arc<Stage>> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|_, s| s.strong_count() > 0);
        if let Some(stage) = running.get(hub.name()).and_then(Weak::upgrade) {
            if !stage.shared.ended.load(Ordering::Relaxed) {
                return Some(stage);
            }
        }
        let info = hub.info()?;
        let shared = Arc::new(StageShared {
            tracks: info
                .tracks
                .iter()
                .map(|t| StageTrack {
                    ssrc: rand::random(),
                    clock_rate: t.clock_rate,
                    ts_base: rand::random(),
                })
                .collect(),
            info,
            fanout: Fanout::new(BURST_RING, GOP_LIMITS),
            ended: AtomicBool::new(false),
        });
        let task = tokio::spawn(run(
            shared.clone(),
            hub.subscribe_relay(Output::Rtsp),
            max_packet,
        ));
        let stage = Arc::new(Stage { shared, task });
        running.insert(hub.name().to_owned(), Arc::downgrade(&stage));
        Some(stage)
    }
}

/// Packetizes until the stream ends or changes its track layout; then
/// every session's reader ends after the bursts it has.
async fn run(shared: Arc<StageShared>, frames: Subscription, max_packet: usize) {
    packetize_items(&shared, frames, max_packet).await;
    shared.ended.store(true, Ordering::Relaxed);
    shared.fanout.close();
}

async fn packetize_items(shared: &StageShared, mut items: Subscription, max_packet: usize) {
    let mut params = shared.info.clone();
    let mut tracks: Vec<RtpTrack> = shared
        .tracks
        .iter()
        .zip(&shared.info.tracks)
        .enumerate()
        .map(|(i, (t, info))| RtpTrack {
            payload_type: sdp::payload_type(i, &info.params),
            ssrc: t.ssrc,
            next_seq: rand::random(),
        })
        .collect();
    let video = shared.info.video_track();
    let mut pending: Vec<RtpPacket> = Vec::new();
    let mut out = Vec::new();
    while let Some(item) = items.recv().await {
        let frame = match item {
            Item::Params(p) => {
                if !p.same_layout(&shared.info) {
                    tracing::info!(
                        "stream tracks changed to {}: closing its RTSP sessions",
                        p.describe()
                    );
                    return;
                }
                params = p;
                continue;
            }
            // The timeline runs on across a restart: nothing to do.
            Item::Discontinuity => continue,
            Item::Frame(f) => f,
        };
        let Some(track_params) = params.tracks.get(frame.track).map(|t| &t.params) else {
            continue;
        };
        let ts = shared.rtp_time(frame.track, frame.pts.max(0));
        let track = &mut tracks[frame.track];
        rtp::packetize(track_params, &frame, max_packet, ts, track, &mut out);
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
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::media::aac::AacParams;
    use crate::media::h264::{length_prefixed, H264Params};
    use crate::media::TrackParams;
    use crate::media::{Frame, TrackInfo};

    fn tracks(sps_tail: u8) -> Vec<TrackInfo> {
        vec![
            TrackInfo {
                params: TrackParams::H264(H264Params {
                    sps: Bytes::from(vec![0x67, 0x42, 0xc0, sps_tail]),
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
        ]
    }

    fn hub() -> Arc<Hub> {
        let hub = Arc::new(Hub::new("cam"));
        hub.publish_params(tracks(0x1f));
        hub
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

    async fn next(r: &mut crate::hub::Reader<Arc<RtpBurst>>) -> Option<Arc<RtpBurst>> {
        tokio::time::timeout(Duration::from_secs(5), r.recv())
            .await
            .unwrap()
    }

    fn nal_types(burst: &RtpBurst) -> Vec<u8> {
        burst
            .packets
            .iter()
            .filter(|p| p.track == 0)
            .map(|p| rtp::parse(&p.data).unwrap().1[0] & 0x1f)
            .collect()
    }

    #[tokio::test]
    async fn one_burst_per_video_frame_carries_the_audio_before_it() {
        let hub = hub();
        let stages = Stages::default();
        let stage = stages.get(&hub, 1400).unwrap();
        let mut a = stage.shared.fanout.subscribe();
        let mut b = stage.shared.fanout.subscribe();
        assert!(
            Arc::ptr_eq(&stages.get(&hub, 1400).unwrap(), &stage),
            "one stage per stream"
        );
        hub.publish_frame(video(0, true, 3000));
        hub.publish_frame(audio(960));
        hub.publish_frame(audio(1920));
        hub.publish_frame(video(3000, false, 100));

        let first = next(&mut a).await.unwrap();
        assert_eq!(
            nal_types(&first),
            [7, 8, 28, 28, 28],
            "SPS and PPS in band, then a 3 kB IDR in 3 FU-A packets"
        );
        let (h, _) = rtp::parse(&first.packets[0].data).unwrap();
        assert_eq!(first.start[0].seq, h.seq);
        assert_eq!(first.start[0].rtptime, h.timestamp);
        assert_eq!(h.timestamp, stage.shared.tracks[0].ts_base);
        // No audio yet: audio starts where the clock of this frame is.
        assert_eq!(first.start[1].rtptime, stage.shared.tracks[1].ts_base);

        let second = next(&mut a).await.unwrap();
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
        let b1 = next(&mut b).await.unwrap();
        assert!(Arc::ptr_eq(&b1, &first));
    }

    #[tokio::test]
    async fn a_late_session_starts_at_the_cached_keyframe_and_the_stage_stops_with_the_last() {
        let hub = hub();
        let stages = Stages::default();
        let stage = stages.get(&hub, 1400).unwrap();
        let mut early = stage.shared.fanout.subscribe();
        hub.publish_frame(video(0, true, 10));
        hub.publish_frame(video(3000, false, 10));
        next(&mut early).await;
        next(&mut early).await;
        let mut late = stage.shared.fanout.subscribe();
        let cached = next(&mut late).await.unwrap();
        assert_eq!(nal_types(&cached), [7, 8, 5], "starts on the IDR");
        let (h, _) = rtp::parse(&cached.packets[0].data).unwrap();
        assert_eq!(h.timestamp, stage.shared.tracks[0].ts_base);
        assert_eq!(hub.reader_count(), 1);
        drop(stage);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(hub.reader_count(), 0);
    }

    #[tokio::test]
    async fn across_a_restart_numbers_run_on_and_new_parameter_sets_go_in_band() {
        let hub = hub();
        let stages = Stages::default();
        let stage = stages.get(&hub, 1400).unwrap();
        let mut r = stage.shared.fanout.subscribe();
        hub.publish_frame(video(0, true, 10));
        hub.publish_frame(video(3000, false, 10));
        hub.publish_discontinuity();
        hub.publish_params(tracks(0x28));
        hub.publish_frame(video(90_000, true, 10));
        let mut last = None;
        let mut bursts = Vec::new();
        for _ in 0..3 {
            let b = next(&mut r).await.unwrap();
            for p in &b.packets {
                let (h, _) = rtp::parse(&p.data).unwrap();
                if let Some((seq, ts)) = last {
                    assert_eq!(h.seq, u16::wrapping_add(seq, 1), "no sequence gap");
                    assert!(
                        h.timestamp.wrapping_sub(ts) < 1 << 31,
                        "time never goes back"
                    );
                }
                last = Some((h.seq, h.timestamp));
            }
            bursts.push(b);
        }
        let after = &bursts[2];
        let (_, sps) = rtp::parse(&after.packets[0].data).unwrap();
        assert_eq!(sps, &[0x67, 0x42, 0xc0, 0x28], "the new SPS");
        assert!(Arc::ptr_eq(&stages.get(&hub, 1400).unwrap(), &stage));
    }

    #[tokio::test]
    async fn a_new_track_layout_ends_the_stage_and_its_sessions() {
        let hub = hub();
        let stages = Stages::default();
        let stage = stages.get(&hub, 1400).unwrap();
        let mut r = stage.shared.fanout.subscribe();
        hub.publish_frame(video(0, true, 10));
        hub.publish_params(tracks(0x1f)[..1].to_vec());
        hub.publish_frame(video(3000, true, 10));
        assert!(next(&mut r).await.is_some());
        assert!(next(&mut r).await.is_none(), "the session's reader ends");
        let fresh = stages.get(&hub, 1400).unwrap();
        assert!(!Arc::ptr_eq(&fresh, &stage));
        assert_eq!(fresh.shared.tracks.len(), 1);
    }
}
