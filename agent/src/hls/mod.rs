//! HLS and Low-Latency HLS output: one muxer per watched stream, started by
//! the first playlist request and stopped after `hls.idle_timeout_seconds`
//! without requests, so an unwatched agent spends nothing on HLS.
//!
//! Video and audio are muxed into one fMP4 rendition: one playlist, one
//! request per part for both tracks, and nothing to keep in step between
//! renditions. That is what camera LL-HLS servers do and what every
//! player reads.
//!
//! Pure parts: [`segmenter`] (frames to fMP4 parts, through the shared
//! [`crate::fmp4`] writer), [`window`] (the live segments), [`playlist`]
//! (m3u8 text), [`names`] (URIs). [`muxer`] is the tokio adapter.

pub mod http;
pub mod muxer;
pub mod names;
pub mod playlist;
pub mod segmenter;
pub mod window;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

pub use muxer::Muxer;

use crate::config::HlsConfig;
use crate::hub::{Hub, Output, Streams};
use crate::media::{StreamInfo, TrackParams};

/// Why HLS cannot carry a stream of `info`, when it cannot: HLS players
/// take H.264/H.265 and AAC, not MJPEG.
pub fn unsupported(info: &StreamInfo) -> Option<&'static str> {
    info.tracks
        .iter()
        .any(|t| matches!(t.params, TrackParams::Jpeg(_)))
        .then_some("the stream is MJPEG, which HLS does not carry: watch it over RTSP, or have the camera encoded to H.264 (encoder = \"auto\")")
}

/// The first MSN of a muxer is the wall clock in these units, or the
/// stream's last MSN if higher. Segments last longer than this, so MSNs
/// never repeat, even across restarts of the agent, and segment URIs can
/// be cached as immutable.
pub const MSN_CLOCK_MS: u64 = 500;

/// The advertised PART-TARGET for `hls.part_ms`: 5 % above it. Capture
/// timestamps jitter by a millisecond or two, so five 40 ms frames measure
/// 199 to 201 ms; with the headroom such a part fits a 200 ms setting
/// instead of being cut one frame short (parts should fill at least 85 %
/// of the target), and so do 24 fps parts (5 x 41.7 ms).
pub fn part_target(part_ms: u32) -> Duration {
    Duration::from_micros(u64::from(part_ms) * 1050)
}

/// Every running muxer, by stream name.
///
/// HLS viewers: HTTP carries no session, so a viewer is a client address
/// (IP) that asked for anything of the stream (playlist, init, segment or
/// part) within the last two target durations; a player reloads the
/// playlist at least once a target duration. Clients behind one NAT or
/// proxy count as one. The count is the stream's `hls` viewers gauge,
/// updated on every request and every second.
pub struct Hls {
    config: Mutex<HlsConfig>,
    streams: Arc<Streams>,
    shutdown: CancellationToken,
    muxers: Mutex<HashMap<String, Running>>,
    /// The next MSN of each stream whose muxer stopped.
    next_msn: Mutex<HashMap<String, u64>>,
}

struct Running {
    muxer: Arc<Muxer>,
    hub: Arc<Hub>,
    last_request: Instant,
    /// When each client address last asked for something of the stream.
    clients: HashMap<IpAddr, Instant>,
}

impl Running {
    fn seen(&mut self, client: IpAddr) {
        let now = Instant::now();
        self.last_request = now;
        self.clients.insert(client, now);
        self.count_viewers();
    }

    /// Forgets clients not seen for two target durations and sets the
    /// stream's HLS viewer count.
    fn count_viewers(&mut self) {
        let target = self.muxer.read(|w| w.target_duration()).unwrap_or(1);
        let window = Duration::from_secs(2 * target.max(1));
        self.clients.retain(|_, t| t.elapsed() <= window);
        self.hub.set_viewers(Output::Hls, self.clients.len() as u32);
    }
}

impl Hls {
    pub fn new(config: HlsConfig, streams: Arc<Streams>, shutdown: CancellationToken) -> Self {
        Self {
            config: Mutex::new(config),
            streams,
            shutdown,
            muxers: Mutex::default(),
            next_msn: Mutex::default(),
        }
    }

    pub fn config(&self) -> HlsConfig {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// New settings: running muxers stop, and the next request starts one
    /// with them.
    pub fn set_config(&self, config: HlsConfig) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = config;
        let stopped: Vec<Running> = self
            .muxers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, r)| r)
            .collect();
        for r in stopped {
            r.hub.set_viewers(Output::Hls, 0);
            r.muxer.stop();
        }
    }

    /// The muxer of `stream`, started now if it is not running, for a
    /// request of `client`. `None` for an unknown stream or when HLS is
    /// disabled.
    pub fn start(self: &Arc<Self>, stream: &str, client: IpAddr) -> Option<Arc<Muxer>> {
        if !self.config().enabled {
            return None;
        }
        let mut muxers = self.muxers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = muxers.get_mut(stream) {
            r.seen(client);
            return Some(r.muxer.clone());
        }
        let hub = self.streams.get(stream)?;
        let muxer = Arc::new(Muxer::new(
            self.first_msn(stream),
            self.shutdown.child_token(),
        ));
        let mut running = Running {
            muxer: muxer.clone(),
            hub: hub.clone(),
            last_request: Instant::now(),
            clients: HashMap::new(),
        };
        running.seen(client);
        muxers.insert(stream.to_owned(), running);
        tracing::info!(stream, "hls muxer started");
        tokio::spawn(muxer::run(self.clone(), hub, muxer.clone()));
        Some(muxer)
    }

    /// Why HLS cannot carry `stream` as it is now, if it cannot.
    pub fn refusal(&self, stream: &str) -> Option<&'static str> {
        let info = self.streams.get(stream)?.info()?;
        unsupported(&info)
    }

    /// The muxer of `stream` if it is running; counts as a request of
    /// `client`.
    pub fn running(&self, stream: &str, client: IpAddr) -> Option<Arc<Muxer>> {
        let mut muxers = self.muxers.lock().unwrap_or_else(|e| e.into_inner());
        let r = muxers.get_mut(stream)?;
        r.seen(client);
        Some(r.muxer.clone())
    }

    /// How many muxers run now.
    pub fn active(&self) -> usize {
        self.muxers.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Removes `muxer` if nobody asked it anything for the idle timeout, or
    /// unconditionally when `force`. True when it must stop. Called every
    /// second by the muxer: it also recounts the viewers.
    fn retire(&self, stream: &str, muxer: &Arc<Muxer>, force: bool) -> bool {
        let mut muxers = self.muxers.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = muxers
            .get_mut(stream)
            .filter(|r| Arc::ptr_eq(&r.muxer, muxer))
        else {
            return true;
        };
        r.count_viewers();
        let idle = Duration::from_secs(self.config().idle_timeout_seconds);
        if !force && r.last_request.elapsed() < idle {
            return false;
        }
        r.hub.set_viewers(Output::Hls, 0);
        muxers.remove(stream);
        if let Some(next) = muxer.next_msn() {
            self.next_msn
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(stream.to_owned(), next);
        }
        true
    }

    fn first_msn(&self, stream: &str) -> u64 {
        let clock = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64 / MSN_CLOCK_MS);
        let last = self
            .next_msn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(stream)
            .copied()
            .unwrap_or(0);
        clock.max(last)
    }
}
