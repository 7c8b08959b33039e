//! The tokio side of one stream's HLS muxer: reads the hub, runs the
//! segmenter, publishes parts into the window and wakes the requests that
//! wait for them (blocking playlist reloads, preload hints).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use tokio::sync::watch;
use tokio::time::{interval, Interval, MissedTickBehavior};
use tracing::{info, warn};

use super::segmenter::{Event, Segmenter};
use super::window::{Part, Window};
use super::Hls;
use crate::fmp4;
use crate::hub::{Hub, Output};
use crate::media::SharedStreamInfo;

/// Frames taken from the hub before the window is updated at once; bounds
/// the work done between two wake-ups of waiting requests.
const BATCH: usize = 64;

/// One stream's muxer as the HTTP side sees it.
pub struct Muxer {
    /// `None` until the source is there and the init segment is written,
    /// and again once the muxer stopped.
    window: watch::Sender<Option<Window>>,
    stopped: AtomicBool,
    first_msn: u64,
}

impl Muxer {
    pub(super) fn new(first_msn: u64) -> Self {
        Self {
            window: watch::Sender::new(None),
            stopped: AtomicBool::new(false),
            first_msn,
        }
    }

    /// Reads the window; `None` while there is none.
    pub fn read<R>(&self, f: impl FnOnce(&Window) -> R) -> Option<R> {
        self.window.borrow().as_ref().map(f)
    }

    /// Waits until the window satisfies `ready`. False after `limit`, or at
    /// once when the muxer stops, so that no request outlives it for long.
    pub async fn wait_for(&self, limit: Duration, mut ready: impl FnMut(&Window) -> bool) -> bool {
        let mut rx = self.window.subscribe();
        let waited = tokio::time::timeout(
            limit,
            rx.wait_for(|w| match w {
                Some(w) => ready(w),
                None => self.stopped.load(Ordering::Relaxed),
            }),
        )
        .await;
        matches!(waited, Ok(Ok(w)) if w.is_some())
    }

    pub(super) fn next_msn(&self) -> Option<u64> {
        self.window.borrow().as_ref().map(Window::next_msn)
    }
}

enum Stop {
    Idle,
    Shutdown,
    SourceChanged,
}

/// Runs until the muxer idles out, the source goes or changes its
/// parameters (the next request starts a fresh muxer), or shutdown.
pub(super) async fn run(
    hls: Arc<Hls>,
    hub: Arc<Hub>,
    muxer: Arc<Muxer>,
    mut shutdown: watch::Receiver<bool>,
) {
    let stream = hub.name().to_owned();
    let mut info_rx = hub.watch_info();
    let mut idle = interval(Duration::from_secs(1));
    idle.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let stop = loop {
        let info = info_rx.borrow_and_update().clone();
        if let Some(info) = info {
            break serve(
                &hls,
                &hub,
                &muxer,
                info,
                &mut info_rx,
                &mut idle,
                &mut shutdown,
            )
            .await;
        }
        tokio::select! {
            r = info_rx.changed() => if r.is_err() { break Ok(Stop::Shutdown) },
            _ = idle.tick() => if hls.retire(&stream, &muxer, false) { break Ok(Stop::Idle) },
            _ = shutdown.wait_for(|s| *s) => break Ok(Stop::Shutdown),
        }
    };
    hls.retire(&stream, &muxer, true);
    muxer.stopped.store(true, Ordering::Relaxed);
    muxer.window.send_replace(None);
    match stop {
        Ok(Stop::Idle) => info!(stream, "hls muxer stopped: no requests"),
        Ok(Stop::SourceChanged) => info!(stream, "hls muxer stopped: the source changed"),
        Ok(Stop::Shutdown) => {}
        Err(e) => warn!(stream, "hls muxer failed: {e:#}"),
    }
}

async fn serve(
    hls: &Hls,
    hub: &Arc<Hub>,
    muxer: &Arc<Muxer>,
    info: SharedStreamInfo,
    info_rx: &mut watch::Receiver<Option<SharedStreamInfo>>,
    idle: &mut Interval,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Stop> {
    let config = hls.config();
    let part_target = super::part_target(config.part_ms);
    let mut segmenter = Segmenter::new(&info, part_target)?;
    let timescale = segmenter.timescale();
    let wall_epoch = SystemTime::now()
        .checked_sub(info.epoch.elapsed())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    muxer.window.send_replace(Some(Window::new(
        fmp4::init_segment(&info, None)?,
        part_target,
        config.segments,
        wall_epoch,
        muxer.first_msn,
    )));
    let mut frames = hub.subscribe(Output::Hls);
    let mut events = Vec::new();
    loop {
        tokio::select! {
            frame = frames.recv() => {
                let Some(frame) = frame else { return Ok(Stop::SourceChanged) };
                segmenter.push(frame, &mut events)?;
                for _ in 1..BATCH {
                    let Some(frame) = frames.try_recv() else { break };
                    segmenter.push(frame, &mut events)?;
                }
            }
            _ = info_rx.changed() => return Ok(Stop::SourceChanged),
            _ = idle.tick() => if hls.retire(hub.name(), muxer, false) {
                return Ok(Stop::Idle);
            },
            _ = shutdown.wait_for(|s| *s) => return Ok(Stop::Shutdown),
        }
        if events.is_empty() {
            continue;
        }
        muxer.window.send_modify(|w| {
            let Some(w) = w else { return };
            for event in events.drain(..) {
                match event {
                    Event::Part(f) => w.push_part(Part {
                        start: media_time(f.start, timescale),
                        duration: media_time(f.duration, timescale),
                        independent: f.starts_with_key,
                        data: f.bytes,
                    }),
                    Event::SegmentEnd => w.close_segment(),
                }
            }
        });
    }
}

fn media_time(ticks: u64, rate: u32) -> Duration {
    let rate = rate.max(1) as u64;
    Duration::from_secs(ticks / rate) + Duration::from_nanos((ticks % rate) * 1_000_000_000 / rate)
}
