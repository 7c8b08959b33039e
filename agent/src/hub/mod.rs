//! The per-stream hub: a source publishes into it, outputs subscribe. The
//! ring carries codec parameters with the frames ([`Item`]), the hub keeps
//! the last GOP so a new reader starts on a keyframe at once, tracks the
//! source's health, counts what goes through, and never lets one reader
//! slow another (see [`fanout`]).
//!
//! A hub lives as long as its stream is configured; sources come and go
//! under it (restarts, reconfiguration) and its timeline, counted from
//! [`Hub::epoch`], runs on across them.

pub mod fanout;
mod health;
mod stats;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

pub use fanout::{Fanout, GopLimits, Reader};
pub use health::{Health, SourceState};
pub use stats::{HubStats, Output, StatsSnapshot};

use crate::media::{Frame, Item, SharedStreamInfo, StreamInfo, TrackInfo};

/// Ring length of a hub in items: about 3 s of 30 fps video with audio.
const RING: usize = 256;
const GOP_LIMITS: GopLimits = GopLimits {
    max_items: 1024,
    max_bytes: 8 << 20,
};
/// An audio-only stream has no GOPs: its ring restarts a "GOP" (with the
/// parameters in front) this often, so joining readers get parameters.
const AUDIO_GOP: Duration = Duration::from_secs(1);

pub struct Hub {
    name: String,
    epoch: Instant,
    /// The parameters of the newest frames; kept while the source is down,
    /// so that RTSP clients can still be told what the stream carries.
    info: watch::Sender<Option<SharedStreamInfo>>,
    health: watch::Sender<Health>,
    ring: Fanout<Item>,
    publisher: Mutex<Publisher>,
    keyframe: KeyframeRequest,
    stats: HubStats,
}

/// What the publishing side remembers between items.
#[derive(Default)]
struct Publisher {
    /// Decode time of the last frame per track: frames must move forward.
    last_dts: Vec<Option<i64>>,
    last_audio_gop: Option<i64>,
    rejected: u64,
}

impl Hub {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            epoch: Instant::now(),
            info: watch::Sender::new(None),
            health: watch::Sender::new(Health::starting()),
            ring: Fanout::new(RING, GOP_LIMITS),
            publisher: Mutex::default(),
            keyframe: KeyframeRequest::default(),
            stats: HubStats::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The monotonic instant at which every track's timestamp is zero; it
    /// never changes while the stream exists.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Announces the tracks of the frames that follow. Parameters equal to
    /// the current ones change nothing.
    pub fn publish_params(&self, tracks: Vec<TrackInfo>) {
        let info = StreamInfo {
            tracks,
            epoch: self.epoch,
        };
        if self.info.borrow().as_deref() == Some(&info) {
            return;
        }
        tracing::info!(stream = self.name, "source ready: {}", info.describe());
        let info = Arc::new(info);
        {
            let mut p = lock(&self.publisher);
            p.last_dts.resize(info.tracks.len(), None);
            p.last_audio_gop = None;
        }
        self.info.send_replace(Some(info.clone()));
        self.ring.publish(Item::Params(info), false, 0);
    }

    /// Publishes one frame of the current parameters. A frame of an unknown
    /// track, or one whose decode time does not move its track forward, is
    /// dropped (and counted): outputs rely on both.
    pub fn publish_frame(&self, frame: Frame) {
        let Some(info) = self.info.borrow().clone() else {
            return;
        };
        let Some(track) = info.tracks.get(frame.track) else {
            return;
        };
        let video = track.is_video();
        let audio_only = info.video_track().is_none();
        let gop_start = {
            let mut p = lock(&self.publisher);
            let last = p.last_dts.get(frame.track).copied().flatten();
            if last.is_some_and(|l| frame.dts <= l) {
                p.rejected += 1;
                if p.rejected.is_power_of_two() {
                    tracing::warn!(
                        stream = self.name,
                        track = frame.track,
                        dts = frame.dts,
                        "frame does not move its track's time forward: dropped ({} so far)",
                        p.rejected
                    );
                }
                return;
            }
            if let Some(slot) = p.last_dts.get_mut(frame.track) {
                *slot = Some(frame.dts);
            }
            // Readers start on an IDR; an audio-only stream on any frame,
            // once per AUDIO_GOP.
            if audio_only {
                let period = AUDIO_GOP.as_millis() as i64 * track.clock_rate as i64 / 1000;
                let due = p.last_audio_gop.is_none_or(|at| frame.dts - at >= period);
                if due {
                    p.last_audio_gop = Some(frame.dts);
                }
                due
            } else {
                video && frame.key
            }
        };
        self.stats
            .count_frame(video, frame.data.len(), frame.pts, track.clock_rate);
        if gop_start {
            self.ring.publish(Item::Params(info), true, 0);
        }
        let len = frame.data.len();
        self.ring.publish(Item::Frame(frame), false, len);
        self.health.send_if_modified(Health::mark_live);
    }

    /// The source restarted: marks the gap in the ring.
    pub fn publish_discontinuity(&self) {
        self.ring.reset();
        self.ring.publish(Item::Discontinuity, false, 0);
    }

    pub fn set_state(&self, state: SourceState, error: Option<String>) {
        self.health.send_modify(|h| h.set(state, error));
    }

    pub fn health(&self) -> Health {
        self.health.borrow().clone()
    }

    pub fn watch_health(&self) -> watch::Receiver<Health> {
        self.health.subscribe()
    }

    /// Ends the stream: every reader ends after what it has.
    pub fn close(&self) {
        self.set_state(SourceState::Stopped, None);
        self.ring.close();
    }

    /// The parameters of the newest frames, if a source ever announced any.
    pub fn info(&self) -> Option<SharedStreamInfo> {
        self.info.borrow().clone()
    }

    /// Asks the source for a keyframe (an output needs to start clean).
    pub fn request_keyframe(&self) {
        self.keyframe.request();
    }

    pub(crate) fn keyframe_request(&self) -> &KeyframeRequest {
        &self.keyframe
    }

    /// A reader of this stream, counted as a viewer of `output` until
    /// dropped.
    pub fn subscribe(self: &Arc<Self>, output: Output) -> Subscription {
        Subscription {
            reader: self
                .ring
                .subscribe_counting(Some(self.dropped_counter(output))),
            _viewer: Some(self.viewer(output)),
        }
    }

    /// A reader that counts no viewer: for an output that fans the frames
    /// out again to viewers of its own (RTSP's RTP stage), which count
    /// themselves with [`Hub::viewer`], or counts its viewers itself (HLS).
    /// What it skips counts as dropped by `output`.
    pub fn subscribe_relay(self: &Arc<Self>, output: Output) -> Subscription {
        Subscription {
            reader: self
                .ring
                .subscribe_counting(Some(self.dropped_counter(output))),
            _viewer: None,
        }
    }

    /// The counter of items `output`'s readers skipped, for readers of an
    /// output's own fan-out (RTSP sessions of the RTP stage) to add to.
    pub fn dropped_counter(&self, output: Output) -> Arc<AtomicU64> {
        self.stats.dropped[output as usize].clone()
    }

    /// Sets the viewer count of an output that counts its clients itself
    /// (HLS: distinct client addresses, see `hls::Hls`).
    pub fn set_viewers(&self, output: Output, n: u32) {
        self.stats.viewers[output as usize].store(n, Ordering::Relaxed);
    }

    /// Counts one viewer of `output` until the guard is dropped.
    pub fn viewer(self: &Arc<Self>, output: Output) -> ViewerGuard {
        self.stats.viewers[output as usize].fetch_add(1, Ordering::Relaxed);
        ViewerGuard {
            hub: self.clone(),
            output,
        }
    }

    /// Readers of the ring right now, counted or not.
    pub fn reader_count(&self) -> usize {
        self.ring.reader_count()
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Pictures the camera dropped before the source read them.
    pub fn count_capture_dropped_frames(&self, n: u64) {
        self.stats
            .capture_dropped_frames
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Microphone overruns (samples lost before the source read them).
    pub fn count_capture_overruns(&self, n: u64) {
        self.stats
            .capture_overruns
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A pending keyframe request, taken by the source's encoder.
#[derive(Default)]
pub struct KeyframeRequest {
    pending: AtomicBool,
    notify: Notify,
}

impl KeyframeRequest {
    fn request(&self) {
        self.pending.store(true, Ordering::Relaxed);
        self.notify.notify_waiters();
    }

    /// True once per request.
    pub fn take(&self) -> bool {
        self.pending.swap(false, Ordering::Relaxed)
    }
}

pub struct Subscription {
    reader: Reader<Item>,
    _viewer: Option<ViewerGuard>,
}

impl Subscription {
    /// The next item; `None` once the stream is closed.
    pub async fn recv(&mut self) -> Option<Item> {
        self.reader.recv().await
    }

    pub fn try_recv(&mut self) -> Option<Item> {
        self.reader.try_recv()
    }
}

/// One viewer of one output, counted in the hub's stats while it lives.
pub struct ViewerGuard {
    hub: Arc<Hub>,
    output: Output,
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.hub.stats.viewers[self.output as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every stream of the agent, by name: what outputs look streams up in.
/// The stream manager adds and removes entries.
#[derive(Default)]
pub struct Streams {
    hubs: RwLock<BTreeMap<String, Arc<Hub>>>,
}

impl Streams {
    pub fn insert(&self, hub: Arc<Hub>) {
        self.hubs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hub.name().to_owned(), hub);
    }

    pub fn remove(&self, name: &str) -> Option<Arc<Hub>> {
        self.hubs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
    }

    pub fn get(&self, name: &str) -> Option<Arc<Hub>> {
        self.hubs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Hub>> {
        self.hubs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::media::test_stream_info;

    fn frame(track: usize, dts: i64, key: bool) -> Frame {
        Frame {
            track,
            pts: dts,
            dts,
            key,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
        }
    }

    fn kind(item: &Item) -> String {
        match item {
            Item::Params(_) => "P".into(),
            Item::Frame(f) => format!("{}{}", if f.key { "K" } else { "f" }, f.dts),
            Item::Discontinuity => "D".into(),
        }
    }

    #[tokio::test]
    async fn params_lead_every_gop_and_sit_where_they_changed() {
        let hub = Arc::new(Hub::new("cam"));
        let info = test_stream_info();
        hub.publish_params(info.tracks.clone());
        let mut early = hub.subscribe(Output::Rtsp);
        hub.publish_frame(frame(0, 0, true));
        hub.publish_frame(frame(0, 3000, false));
        // The same parameters again change nothing.
        hub.publish_params(info.tracks.clone());
        let mut changed = info.tracks.clone();
        if let crate::media::TrackParams::H264(p) = &mut changed[0].params {
            p.width = 640;
        }
        hub.publish_params(changed);
        hub.publish_frame(frame(0, 6000, false));
        let mut late = hub.subscribe(Output::Rtsp);
        hub.publish_frame(frame(0, 9000, true));
        let mut seen = Vec::new();
        while let Some(i) = early.try_recv() {
            seen.push(kind(&i));
        }
        assert_eq!(seen, ["P", "K0", "f3000", "P", "f6000", "P", "K9000"]);
        let mut seen = Vec::new();
        while let Some(i) = late.try_recv() {
            seen.push(kind(&i));
        }
        assert_eq!(
            seen,
            ["P", "K0", "f3000", "P", "f6000", "P", "K9000"],
            "a late reader gets the cached GOP with its parameters first"
        );
    }

    #[tokio::test]
    async fn frames_that_do_not_move_forward_are_dropped() {
        let hub = Arc::new(Hub::new("cam"));
        hub.publish_params(test_stream_info().tracks);
        let mut r = hub.subscribe(Output::Rtsp);
        hub.publish_frame(frame(0, 3000, true));
        hub.publish_frame(frame(0, 3000, false));
        hub.publish_frame(frame(0, 100, false));
        hub.publish_frame(frame(1, 100, true));
        hub.publish_frame(frame(7, 9000, true));
        let mut seen = Vec::new();
        while let Some(i) = r.try_recv() {
            seen.push(kind(&i));
        }
        assert_eq!(seen, ["P", "K3000", "K100"]);
    }

    #[tokio::test]
    async fn health_goes_live_with_the_first_frame_and_close_ends_readers() {
        let hub = Arc::new(Hub::new("cam"));
        assert_eq!(hub.health().state, SourceState::Starting);
        hub.publish_params(test_stream_info().tracks);
        let mut r = hub.subscribe(Output::Hls);
        hub.publish_frame(frame(0, 0, true));
        assert_eq!(hub.health().state, SourceState::Live);
        hub.set_state(SourceState::Down, Some("gone".into()));
        assert_eq!(hub.health().last_error.as_deref(), Some("gone"));
        hub.close();
        while r.try_recv().is_some() {}
        assert!(r.recv().await.is_none());
    }
}
