//! Counters of a hub, read by /metrics and the state report.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// The outputs that read a hub, for per-protocol viewer counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Rtsp = 0,
    Hls = 1,
    Record = 2,
    Uplink = 3,
}

impl Output {
    pub const ALL: [Output; 4] = [Output::Rtsp, Output::Hls, Output::Record, Output::Uplink];

    pub fn as_str(self) -> &'static str {
        match self {
            Output::Rtsp => "rtsp",
            Output::Hls => "hls",
            Output::Record => "record",
            Output::Uplink => "uplink",
        }
    }
}

#[derive(Default)]
pub struct HubStats {
    video_frames: AtomicU64,
    audio_frames: AtomicU64,
    bytes: AtomicU64,
    /// Video frames counted in the current one-second window, and where
    /// that window started (media milliseconds); the last full window's count.
    window_frames: AtomicU32,
    window_start_ms: AtomicI64,
    fps: AtomicU32,
    /// Bytes of every track in the current window; the last full window's
    /// bit rate.
    window_bytes: AtomicU64,
    bitrate: AtomicU64,
    pub(super) viewers: [AtomicU32; 4],
    /// Items that the readers of each output skipped because they fell
    /// behind (the readers add to these themselves).
    pub(super) dropped: [Arc<AtomicU64>; 4],
    /// Lost before the hub: pictures a camera dropped (gaps in its frame
    /// counter) and microphone overruns.
    pub(super) capture_dropped_frames: AtomicU64,
    pub(super) capture_overruns: AtomicU64,
}

#[derive(Clone, Debug, Default)]
pub struct StatsSnapshot {
    pub video_frames: u64,
    pub audio_frames: u64,
    pub bytes: u64,
    pub fps: u32,
    /// Bits per second of media in the last full second.
    pub bitrate: u64,
    /// Indexed by `Output as usize`, like `viewers`.
    pub dropped: [u64; 4],
    /// Indexed by `Output as usize`.
    pub viewers: [u32; 4],
    pub capture_dropped_frames: u64,
    pub capture_overruns: u64,
}

impl HubStats {
    pub(super) fn count_frame(&self, video: bool, len: usize, pts: i64, clock_rate: u32) {
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.window_bytes.fetch_add(len as u64, Ordering::Relaxed);
        if !video {
            self.audio_frames.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.video_frames.fetch_add(1, Ordering::Relaxed);
        let ms = pts.saturating_mul(1000) / clock_rate.max(1) as i64;
        let start = self.window_start_ms.load(Ordering::Relaxed);
        if ms - start >= 1000 || ms < start {
            let n = self.window_frames.swap(1, Ordering::Relaxed);
            let bytes = self.window_bytes.swap(len as u64, Ordering::Relaxed) - len as u64;
            self.window_start_ms.store(ms, Ordering::Relaxed);
            if ms - start < 2000 && ms >= start {
                self.fps.store(n, Ordering::Relaxed);
                self.bitrate.store(bytes * 8, Ordering::Relaxed);
            } else {
                self.fps.store(0, Ordering::Relaxed);
                self.bitrate.store(0, Ordering::Relaxed);
            }
        } else {
            self.window_frames.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            video_frames: self.video_frames.load(Ordering::Relaxed),
            audio_frames: self.audio_frames.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            fps: self.fps.load(Ordering::Relaxed),
            bitrate: self.bitrate.load(Ordering::Relaxed),
            dropped: std::array::from_fn(|i| self.dropped[i].load(Ordering::Relaxed)),
            viewers: std::array::from_fn(|i| self.viewers[i].load(Ordering::Relaxed)),
            capture_dropped_frames: self.capture_dropped_frames.load(Ordering::Relaxed),
            capture_overruns: self.capture_overruns.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fps_is_counted_per_media_second() {
        let s = HubStats::default();
        for i in 0..91 {
            s.count_frame(true, 10, i * 3000, 90_000);
        }
        let snap = s.snapshot();
        assert_eq!(snap.fps, 30);
        assert_eq!(snap.bitrate, 30 * 10 * 8);
        assert_eq!(snap.video_frames, 91);
        assert_eq!(snap.bytes, 910);
    }
}
