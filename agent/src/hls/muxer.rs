//! The tokio side of one stream's HLS muxer: reads the hub, runs the
//! segmenter, publishes parts into the window and wakes the requests that
//! wait for them (blocking playlist reloads, preload hints).
//!
//! The muxer outlives source restarts: new parameters or a discontinuity
//! in the ring end the open segment, and the next one starts with a new
//! init segment and EXT-X-DISCONTINUITY, under the same playlist URL.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use tokio::sync::watch;
use tokio::time::{interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::segmenter::{Event, Segmenter};
use super::window::{Part, Window};
use super::Hls;
use crate::fmp4;
use crate::hub::{Hub, Output};
use crate::media::{codecs, Item, SharedStreamInfo};

/// Items taken from the hub before the window is updated at once; bounds
/// the work done between two wake-ups of waiting requests.
const BATCH: usize = 64;

/// One stream's muxer as the HTTP side sees it.
pub struct Muxer {
    /// `None` until the source is there and the init segment is written,
    /// and again once the muxer stopped.
    window: watch::Sender<Option<Window>>,
    stopped: AtomicBool,
    first_msn: u64,
    cancel: CancellationToken,
}

impl Muxer {
    pub(super) fn new(first_msn: u64, cancel: CancellationToken) -> Self {
        Self {
            window: watch::Sender::new(None),
            stopped: AtomicBool::new(false),
            first_msn,
            cancel,
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

    pub(super) fn stop(&self) {
        self.cancel.cancel();
    }
}

enum Stop {
    Idle,
    Cancelled,
    StreamEnded,
}

/// What the muxer is cutting: the parameters and the segmenter for them.
struct Current {
    info: SharedStreamInfo,
    segmenter: Segmenter,
}

/// Runs until the muxer idles out, its stream is removed, or it is
/// stopped (shutdown, new HLS settings).
pub(super) async fn run(hls: Arc<Hls>, hub: Arc<Hub>, muxer: Arc<Muxer>) {
    let stream = hub.name().to_owned();
    let stop = serve(&hls, &hub, &muxer).await;
    hls.retire(&stream, &muxer, true);
    muxer.stopped.store(true, Ordering::Relaxed);
    muxer.window.send_replace(None);
    match stop {
        Ok(Stop::Idle) => info!(stream, "hls muxer stopped: no requests"),
        Ok(Stop::StreamEnded) => info!(stream, "hls muxer stopped: the stream ended"),
        Ok(Stop::Cancelled) => {}
        Err(e) => warn!(stream, "hls muxer failed: {e:#}"),
    }
}

async fn serve(hls: &Hls, hub: &Arc<Hub>, muxer: &Arc<Muxer>) -> Result<Stop> {
    let config = hls.config();
    let part_target = super::part_target(config.part_ms);
    let wall_epoch = SystemTime::now()
        .checked_sub(hub.epoch().elapsed())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut idle = interval(Duration::from_secs(1));
    idle.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Viewers are the clients `Hls` counts; drops count as HLS's.
    let mut items = hub.subscribe_relay(Output::Hls);
    let mut current: Option<Current> = None;
    let mut events = Vec::new();
    loop {
        let mut batch = Vec::with_capacity(BATCH);
        tokio::select! {
            item = items.recv() => match item {
                Some(i) => batch.push(i),
                None => return Ok(Stop::StreamEnded),
            },
            _ = idle.tick() => {
                if hls.retire(hub.name(), muxer, false) {
                    return Ok(Stop::Idle);
                }
                continue;
            }
            _ = muxer.cancel.cancelled() => return Ok(Stop::Cancelled),
        }
        while batch.len() < BATCH {
            match items.try_recv() {
                Some(i) => batch.push(i),
                None => break,
            }
        }
        for item in batch {
            match item {
                Item::Frame(frame) => {
                    if let Some(c) = current.as_mut() {
                        c.segmenter.push(frame, &mut events)?;
                    }
                }
                Item::Params(info) => {
                    if current.as_ref().is_some_and(|c| c.info == info) {
                        continue;
                    }
                    if let Some(why) = super::unsupported(&info) {
                        anyhow::bail!(why);
                    }
                    if let Some(mut old) = current.take() {
                        old.segmenter.finish(&mut events)?;
                        flush(muxer, &mut events, old.segmenter.timescale());
                    }
                    let init = fmp4::init_segment(&info, None)?;
                    let segmenter = Segmenter::new(&info, part_target)?;
                    let (codec_list, resolution) =
                        (codecs::codecs(&info), codecs::resolution(&info));
                    muxer.window.send_modify(|w| {
                        let w = match w {
                            Some(w) => {
                                w.start_discontinuity(init);
                                w
                            }
                            None => w.insert(Window::new(
                                init,
                                part_target,
                                config.segments,
                                wall_epoch,
                                muxer.first_msn,
                            )),
                        };
                        w.set_format(codec_list, resolution);
                    });
                    current = Some(Current { info, segmenter });
                }
                Item::Discontinuity => {
                    // The next Params item starts the new init; a restart
                    // with the same parameters still gets one.
                    if let Some(mut old) = current.take() {
                        old.segmenter.finish(&mut events)?;
                        flush(muxer, &mut events, old.segmenter.timescale());
                    }
                }
            }
        }
        if let Some(c) = &current {
            flush(muxer, &mut events, c.segmenter.timescale());
        }
    }
}

/// Moves the segmenter's events into the window, waking waiting requests.
fn flush(muxer: &Muxer, events: &mut Vec<Event>, timescale: u32) {
    if events.is_empty() {
        return;
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

fn media_time(ticks: u64, rate: u32) -> Duration {
    let rate = rate.max(1) as u64;
    Duration::from_secs(ticks / rate) + Duration::from_nanos((ticks % rate) * 1_000_000_000 / rate)
}
