//! The per-stream hub: sources publish frames, outputs subscribe. The hub
//! keeps the stream's codec parameters and its last GOP, counts what goes
//! through it, and never lets one reader slow another (see [`fanout`]).

pub mod fanout;
mod stats;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

pub use fanout::{Fanout, GopLimits, Reader};
pub use stats::{HubStats, Output, StatsSnapshot};

use crate::media::{Frame, SharedStreamInfo, StreamInfo};

/// Ring length of a hub in frames: about 3 s of 30 fps video with audio.
const FRAME_RING: usize = 256;
const GOP_LIMITS: GopLimits = GopLimits {
    max_items: 1024,
    max_bytes: 8 << 20,
};

pub struct Hub {
    name: String,
    info: watch::Sender<Option<SharedStreamInfo>>,
    frames: Fanout<Frame>,
    stats: HubStats,
}

impl Hub {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            info: watch::Sender::new(None),
            frames: Fanout::new(FRAME_RING, GOP_LIMITS),
            stats: HubStats::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Announces the stream's tracks. Called by the source before its first
    /// frame and again whenever the parameters change; the GOP cache is
    /// dropped, since it belongs to the old parameters.
    pub fn set_info(&self, info: StreamInfo) {
        tracing::info!(stream = self.name, "source ready: {}", info.describe());
        self.frames.reset();
        self.info.send_replace(Some(Arc::new(info)));
    }

    /// Marks the stream as having no source (it stopped or failed).
    pub fn clear_info(&self) {
        self.frames.reset();
        self.info.send_replace(None);
    }

    pub fn info(&self) -> Option<SharedStreamInfo> {
        self.info.borrow().clone()
    }

    /// Watches the stream's parameters: `None` while there is no source.
    pub fn watch_info(&self) -> watch::Receiver<Option<SharedStreamInfo>> {
        self.info.subscribe()
    }

    pub fn publish(&self, frame: Frame) {
        let info = self.info.borrow().clone();
        let Some(info) = info else {
            return;
        };
        let Some(track) = info.tracks.get(frame.track) else {
            return;
        };
        let video = track.is_video();
        // With video, readers start on an IDR; an audio-only stream can
        // start on any frame.
        let gop_start = frame.key && (video || info.video_track().is_none());
        self.stats
            .count_frame(video, frame.data.len(), frame.pts, track.clock_rate);
        let len = frame.data.len();
        self.frames.publish(frame, gop_start, len);
    }

    /// A reader of this stream's frames, counted as a viewer of `output`
    /// until dropped.
    pub fn subscribe(self: &Arc<Self>, output: Output) -> Subscription {
        Subscription {
            reader: self.frames.subscribe(),
            hub: self.clone(),
            _viewer: Some(self.viewer(output)),
        }
    }

    /// A reader that counts no viewer: for an output that fans the frames
    /// out again to viewers of its own (RTSP's RTP stage), which count
    /// themselves with [`Hub::viewer`].
    pub fn subscribe_relay(self: &Arc<Self>) -> Subscription {
        Subscription {
            reader: self.frames.subscribe(),
            hub: self.clone(),
            _viewer: None,
        }
    }

    /// Counts one viewer of `output` until the guard is dropped.
    pub fn viewer(self: &Arc<Self>, output: Output) -> ViewerGuard {
        self.stats.viewers[output as usize].fetch_add(1, Ordering::Relaxed);
        ViewerGuard {
            hub: self.clone(),
            output,
        }
    }

    /// Readers of the frames right now, counted or not.
    pub fn reader_count(&self) -> usize {
        self.frames.reader_count()
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot(self.frames.dropped())
    }
}

pub struct Subscription {
    reader: Reader<Frame>,
    hub: Arc<Hub>,
    _viewer: Option<ViewerGuard>,
}

impl Subscription {
    pub async fn recv(&mut self) -> Option<Frame> {
        self.reader.recv().await
    }

    pub fn try_recv(&mut self) -> Option<Frame> {
        self.reader.try_recv()
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
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

/// Every stream of the agent, by name.
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
