//! Sources: what feeds a stream's hub. A [`Source`] runs until it fails or
//! is cancelled, writing into a [`Sink`]; [`supervise`] runs it again after
//! a pause that grows with each failure and resets after a healthy run.
//! Sources never know who listens.

mod backoff;
mod camera;
pub mod capture;
pub mod exec;
pub mod pull;
pub mod test;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use backoff::Backoff;

use crate::config::{SourceConfig, StreamConfig};
use crate::hub::{Hub, SourceState};
use crate::media::{Frame, TrackInfo};

/// A run that stayed live this long resets the retry pause.
const HEALTHY_RUN: Duration = Duration::from_secs(10);

pub type SourceFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;
pub type ReadyFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// One kind of input. `run` announces the tracks, then publishes frames
/// until `sink.cancelled()` (then it returns `Ok`) or until it fails.
pub trait Source: Send + Sync {
    fn run<'a>(&'a self, sink: &'a Sink) -> SourceFuture<'a>;

    /// After a failure: resolves when the source has reason to believe a
    /// new run would succeed (its device came back), cutting the pause
    /// short. By default never: the pause runs its course.
    fn ready(&self) -> ReadyFuture<'_> {
        Box::pin(std::future::pending())
    }
}

/// The source for a stream's configuration.
pub fn build(stream: &StreamConfig) -> Box<dyn Source> {
    match &stream.source {
        SourceConfig::Test(c) => Box::new(test::TestSource::new(c.clone())),
        SourceConfig::Exec(c) => Box::new(exec::ExecSource::new(c.clone())),
        SourceConfig::Rtsp(c) => Box::new(pull::PullSource::new(c.clone())),
        SourceConfig::V4l2(c) => {
            Box::new(camera::CameraSource::new(c.clone(), stream.audio.clone()))
        }
    }
}

/// Where a source writes: the stream's hub, behind the few operations a
/// source needs. Cheap to clone, for sources that publish from threads.
#[derive(Clone)]
pub struct Sink {
    hub: Arc<Hub>,
    cancel: CancellationToken,
}

impl Sink {
    pub fn new(hub: Arc<Hub>, cancel: CancellationToken) -> Self {
        Self { hub, cancel }
    }

    pub fn stream(&self) -> &str {
        self.hub.name()
    }

    /// Timestamps are ticks of a track's clock since this instant: a source
    /// maps its capture times onto it, so the stream's timeline runs on
    /// across restarts without ever going back.
    pub fn epoch(&self) -> Instant {
        self.hub.epoch()
    }

    /// The tracks of the frames that follow (compared by value: announcing
    /// the same again changes nothing).
    pub fn params(&self, tracks: Vec<TrackInfo>) {
        self.hub.publish_params(tracks);
    }

    pub fn frame(&self, frame: Frame) {
        self.hub.publish_frame(frame);
    }

    /// The source's own timestamps jumped (it restarted inside).
    pub fn discontinuity(&self) {
        self.hub.publish_discontinuity();
    }

    /// Pictures the camera dropped (a gap in its frame counter).
    pub fn capture_dropped_frames(&self, n: u64) {
        self.hub.count_capture_dropped_frames(n);
    }

    /// Microphone overruns.
    pub fn capture_overruns(&self, n: u64) {
        self.hub.count_capture_overruns(n);
    }

    /// A sink on a token of its own, cancelled with this one or alone: for
    /// a source that stops its own part of the work.
    pub fn child(&self) -> (Sink, CancellationToken) {
        let token = self.cancel.child_token();
        (
            Sink {
                hub: self.hub.clone(),
                cancel: token.clone(),
            },
            token,
        )
    }

    /// True once for each keyframe an output asked for.
    pub fn keyframe_requested(&self) -> bool {
        self.hub.keyframe_request().take()
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }
}

/// Runs `source` for `hub` until `cancel`, restarting it after it ends or
/// fails. The hub reports the state and the last error meanwhile.
pub async fn supervise(hub: Arc<Hub>, source: Box<dyn Source>, cancel: CancellationToken) {
    let sink = Sink::new(hub.clone(), cancel.clone());
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        // A stream that had frames before (a restart, a new source after
        // a config change) marks the gap.
        if hub.info().is_some() {
            hub.publish_discontinuity();
        }
        hub.set_state(SourceState::Starting, None);
        let result = source.run(&sink).await;
        if cancel.is_cancelled() {
            return;
        }
        let health = hub.health();
        if health.state == SourceState::Live && health.since.elapsed() >= HEALTHY_RUN {
            backoff.reset();
        }
        let pause = backoff.next_pause();
        let error = match result {
            Ok(()) => "the source ended".to_owned(),
            Err(e) => format!("{e:#}"),
        };
        warn!(
            stream = hub.name(),
            "source down: {error}; restarting in {:.1} s",
            pause.as_secs_f64()
        );
        hub.set_state(SourceState::Down, Some(error));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = source.ready() => {}
            _ = cancel.cancelled() => return,
        }
        info!(stream = hub.name(), "source restarting");
    }
}
