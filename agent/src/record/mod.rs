//! Recording to the local disk: each stream with `record` configured gets
//! a recorder on a thread of its own (file writes never block the
//! reactor), which subscribes to the stream's hub, cuts it into
//! fragmented MP4 files ([`segmenter`]) and writes them ([`file`]).
//! [`Recorders`] is the control face: start, stop, status.
//! See docs/recording.md for the fsync order, crash repair and time.

pub mod clock;
mod file;
pub mod http;
pub mod listing;
pub mod paths;
mod queue;
pub mod repair;
pub mod retention;
mod segmenter;
mod stall;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Config, FsyncPolicy, RecordConfig, RecordingConfig};
use crate::hub::{Hub, Output, SourceState};
use crate::media::{Frame, Item, SharedStreamInfo};
use clock::WallClock;
use file::{IoCounters, RecordingFile};
use paths::Order;
use queue::Queue;
use retention::Retention;
use segmenter::{Action, Segmenter};

/// How often retention runs besides start-up and each new file.
const RETENTION_PERIOD: Duration = Duration::from_secs(60);
/// After a write error, how long recording pauses before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// A wall-clock step larger than this starts a new file.
const MAX_CLOCK_STEP_MS: i64 = 2000;

/// What a recorder is doing, for the control API, MQTT and /metrics.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RecorderStatus {
    pub stream: String,
    /// Recording is switched on (config or control API).
    pub enabled: bool,
    /// A file is open and being written.
    pub recording: bool,
    /// Paused by an error (disk full...), retrying.
    pub paused: bool,
    /// URL path under /recordings/ of the file being written.
    pub current_file: Option<String>,
    pub files: u64,
    pub fragments: u64,
    pub bytes_written: u64,
    /// Media payload in those bytes (the rest is MP4 structure).
    pub media_bytes: u64,
    pub write_calls: u64,
    pub fsyncs: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    /// Frames lost before the disk: the recorder's queue was full (the
    /// disk stalled longer than the queue holds).
    pub dropped_frames: u64,
    /// Bytes waiting in the recorder's queue now, and at most so far.
    pub queued_bytes: u64,
    pub queue_peak_bytes: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("no stream named `{0}`")]
    NoSuchStream(String),
}

struct Entry {
    status: Arc<Mutex<RecorderStatus>>,
    queue: Arc<queue::Stats>,
    enabled: watch::Sender<bool>,
    stop: CancellationToken,
    thread: std::thread::JoinHandle<()>,
}

/// Every stream's recorder. The stream manager adds one per stream and
/// removes it with the stream; the HTTP API and MQTT read their status.
pub struct Recorders {
    root: PathBuf,
    fsync: Mutex<FsyncPolicy>,
    clock: Arc<dyn WallClock>,
    entries: Mutex<BTreeMap<String, Entry>>,
    retention: Arc<Retention>,
    /// Wakes the retention task (a new file opened).
    retention_due: Arc<Notify>,
    /// The next file's sequence number, shared by every recorder.
    seq: Arc<AtomicU64>,
    queue_limits: Mutex<queue::Limits>,
}

fn queue_limits(config: &RecordingConfig) -> queue::Limits {
    queue::Limits {
        max_age: Duration::from_secs(config.queue_seconds.into()),
        max_bytes: usize::try_from(config.queue_max_bytes).unwrap_or(usize::MAX),
    }
}

impl Recorders {
    /// Repairs what a previous run left open, applies retention, and runs
    /// retention periodically until `shutdown`. Must be called inside the
    /// runtime.
    pub fn start(
        config: &Config,
        clock: Arc<dyn WallClock>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let root = paths::recordings_root(&config.agent.data_dir);
        repair::repair_all(&root);
        let seq = retention::next_seq(&retention::list(&root));
        let retention = Arc::new(Retention::new(root.clone(), config.recording.clone()));
        retention.run(clock.now());
        let retention_due = Arc::new(Notify::new());
        {
            // Retention runs here, on a blocking thread of the runtime,
            // never on a recorder's thread: scanning a big tree must not
            // hold up writes.
            let (retention, clock, due) = (retention.clone(), clock.clone(), retention_due.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(RETENTION_PERIOD) => {}
                        _ = due.notified() => {}
                        _ = shutdown.cancelled() => return,
                    }
                    let (r, now) = (retention.clone(), clock.now());
                    let _ = tokio::task::spawn_blocking(move || r.run(now)).await;
                }
            });
        }
        Arc::new(Self {
            root,
            fsync: Mutex::new(config.recording.fsync),
            clock,
            entries: Mutex::default(),
            retention,
            retention_due,
            seq: Arc::new(AtomicU64::new(seq)),
            queue_limits: Mutex::new(queue_limits(&config.recording)),
        })
    }

    /// Takes new `[recording]` settings: retention at once, the fsync
    /// policy from each recorder's next file.
    pub fn set_config(&self, config: &RecordingConfig) {
        *lock(&self.fsync) = config.fsync;
        *lock(&self.queue_limits) = queue_limits(config);
        self.retention.set_config(config.clone());
    }

    /// Starts the recorder of `hub` on a thread of its own (idle unless
    /// `config.enabled`). Must be called inside the runtime.
    pub fn add(&self, hub: Arc<Hub>, config: &RecordConfig) {
        let name = hub.name().to_owned();
        let status = Arc::new(Mutex::new(RecorderStatus {
            stream: name.clone(),
            enabled: config.enabled,
            ..Default::default()
        }));
        let (enabled, enabled_rx) = watch::channel(config.enabled);
        let stop = CancellationToken::new();
        let queue = Arc::new(queue::Stats::default());
        let recorder = Recorder {
            hub,
            root: self.root.clone(),
            config: config.clone(),
            fsync: *lock(&self.fsync),
            clock: self.clock.clone(),
            retention_due: self.retention_due.clone(),
            seq: self.seq.clone(),
            queue_limits: *lock(&self.queue_limits),
            queue: queue.clone(),
            status: status.clone(),
            segmenter: Segmenter::new(
                Duration::from_secs(config.segment_seconds as u64),
                Duration::from_millis(config.fragment_ms as u64),
            ),
            file: None,
            info: None,
            io: IoCounters::default(),
            paused_until: None,
            clock_base: Instant::now(),
            clock_offset: None,
        };
        let (rt, token) = (tokio::runtime::Handle::current(), stop.clone());
        let thread = match std::thread::Builder::new()
            .name(format!("record-{name}"))
            .spawn(move || rt.block_on(recorder.run(enabled_rx, token)))
        {
            Ok(t) => t,
            Err(e) => {
                warn!(stream = name, "cannot start the recorder thread: {e}");
                return;
            }
        };
        let old = lock(&self.entries).insert(
            name,
            Entry {
                status,
                queue,
                enabled,
                stop,
                thread,
            },
        );
        if let Some(old) = old {
            stop_entry(old);
        }
    }

    /// Stops the recorder of `stream`: its file is closed with what it
    /// has. Returns once the file is closed.
    pub async fn remove(&self, stream: &str) {
        let entry = lock(&self.entries).remove(stream);
        if let Some(e) = entry {
            let _ = tokio::task::spawn_blocking(move || stop_entry(e)).await;
        }
    }

    /// Stops every recorder (shutdown): each closes its file.
    pub async fn remove_all(&self) {
        let entries = std::mem::take(&mut *lock(&self.entries));
        let _ =
            tokio::task::spawn_blocking(move || entries.into_values().for_each(stop_entry)).await;
    }

    /// `<data_dir>/recordings`.
    pub fn root(&self) -> &PathBuf {
        &self.root
    }

    pub fn set_enabled(&self, stream: &str, on: bool) -> Result<(), ControlError> {
        let entries = lock(&self.entries);
        let e = entries
            .get(stream)
            .ok_or_else(|| ControlError::NoSuchStream(stream.to_owned()))?;
        lock(&e.status).enabled = on;
        e.enabled.send_replace(on);
        info!(
            stream,
            "recording {}",
            if on { "started" } else { "stopped" }
        );
        Ok(())
    }

    pub fn status(&self, stream: &str) -> Option<RecorderStatus> {
        lock(&self.entries).get(stream).map(Entry::status)
    }

    pub fn statuses(&self) -> Vec<RecorderStatus> {
        lock(&self.entries).values().map(Entry::status).collect()
    }

    /// Runs retention now (it also runs periodically and before each file).
    pub fn apply_retention(&self, now: chrono::DateTime<chrono::Utc>) -> u64 {
        self.retention.run(now)
    }
}

impl Entry {
    /// The recorder's status with its queue's counters, read now (the
    /// recorder thread may be waiting for the disk).
    fn status(&self) -> RecorderStatus {
        let mut st = lock(&self.status).clone();
        st.dropped_frames = self.queue.dropped_frames.load(Ordering::Relaxed);
        st.queued_bytes = self.queue.queued_bytes.load(Ordering::Relaxed);
        st.queue_peak_bytes = self.queue.peak_bytes.load(Ordering::Relaxed);
        st
    }
}

/// Blocks until the recorder's thread has closed its file.
fn stop_entry(e: Entry) {
    e.stop.cancel();
    let _ = e.thread.join();
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Recorder {
    hub: Arc<Hub>,
    root: PathBuf,
    config: RecordConfig,
    fsync: FsyncPolicy,
    clock: Arc<dyn WallClock>,
    retention_due: Arc<Notify>,
    seq: Arc<AtomicU64>,
    queue_limits: queue::Limits,
    queue: Arc<queue::Stats>,
    status: Arc<Mutex<RecorderStatus>>,
    segmenter: Segmenter,
    file: Option<RecordingFile>,
    /// The parameters of the frames being read, from the ring.
    info: Option<SharedStreamInfo>,
    io: IoCounters,
    /// Set after a write error: frames are dropped until then.
    paused_until: Option<Instant>,
    clock_base: Instant,
    /// Wall minus monotonic time when the open file started.
    clock_offset: Option<i64>,
}

impl Recorder {
    /// Runs on the recorder's own thread, inside `block_on`: the blocking
    /// file I/O here never stalls the reactor's workers.
    async fn run(mut self, mut enabled: watch::Receiver<bool>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            if stop.is_cancelled() {
                break;
            }
            if !*enabled.borrow_and_update() {
                self.close_file();
                tokio::select! {
                    _ = enabled.changed() => continue,
                    _ = stop.cancelled() => break,
                }
            }
            // The hub is read by a task on the runtime into a queue of this
            // recorder's own, which this thread writes out at the disk's
            // pace: a stall of the disk is absorbed there, not in the hub.
            let queue = Arc::new(Queue::new(self.queue_limits, self.queue.clone()));
            let feeding = stop.child_token();
            tokio::spawn(queue::feed(
                self.hub.subscribe(Output::Record),
                queue.clone(),
                feeding.clone(),
            ));
            info!(
                stream = self.hub.name(),
                "recording (segments of {} s)", self.config.segment_seconds
            );
            loop {
                tokio::select! {
                    item = queue.pop() => match item {
                        Some(i) => self.on_item(i),
                        None => break,
                    },
                    _ = tick.tick() => self.on_tick(),
                    _ = enabled.changed() => if !*enabled.borrow() { break },
                    _ = stop.cancelled() => break,
                }
            }
            feeding.cancel();
            // What is queued is written before the file closes.
            while let Some(i) = queue.try_pop() {
                self.on_item(i);
            }
            if !stop.is_cancelled() && *enabled.borrow() {
                // The stream ended under us: wait to be stopped.
                self.close_file();
                stop.cancelled().await;
            }
        }
        self.close_file();
    }

    fn on_item(&mut self, item: Item) {
        match item {
            Item::Params(info) => self.info = Some(info),
            Item::Discontinuity => {
                // The source restarted: the file ends with its last frame.
                match self.segmenter.close(None) {
                    Ok(a) => self.apply(a),
                    Err(e) => self.fail(format!("cannot build the MP4: {e}")),
                }
            }
            Item::Frame(f) => self.on_frame(f),
        }
    }

    fn on_frame(&mut self, frame: Frame) {
        if self.paused_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let Some(info) = self.info.clone() else {
            return;
        };
        match self.segmenter.push(frame, &info) {
            Ok(actions) => self.apply(actions),
            Err(e) => self.fail(format!("cannot build the MP4: {e}")),
        }
    }

    fn on_tick(&mut self) {
        if self.segmenter.is_open() && self.hub.health().state != SourceState::Live {
            // The source is down or stopped: close the file with what it has.
            match self.segmenter.close(None) {
                Ok(a) => self.apply(a),
                Err(e) => self.fail(format!("cannot build the MP4: {e}")),
            }
        }
        if let Some(at_open) = self.clock_offset {
            let now = clock::offset_ms(self.clock.as_ref(), self.clock_base);
            if (now - at_open).abs() > MAX_CLOCK_STEP_MS {
                info!(
                    stream = self.hub.name(),
                    "wall clock stepped by {} ms: new file at the next keyframe",
                    now - at_open
                );
                self.clock_offset = Some(now);
                self.segmenter.request_split();
            }
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for a in actions {
            let result = match a {
                Action::Open { start, header } => self.open(start, header),
                Action::Fragment(f) => match self.file.as_mut() {
                    Some(file) => {
                        stall::before_write();
                        file.append(&f.bytes, &mut self.io)
                    }
                    .map(|()| {
                        let mut st = lock(&self.status);
                        st.fragments += 1;
                        st.media_bytes += f.media_bytes as u64;
                        // Paused until media is on disk again, not merely
                        // a header.
                        if self.paused_until.take().is_some() {
                            st.paused = false;
                            info!(stream = self.hub.name(), "recording resumed");
                        }
                    }),
                    None => Ok(()),
                },
                Action::Close { duration } => match self.file.take() {
                    Some(file) => file.close(duration, &mut self.io).map(|path| {
                        info!(
                            stream = self.hub.name(),
                            "recorded {} ({:.2} s)",
                            path.display(),
                            duration.as_secs_f64()
                        );
                        let mut st = lock(&self.status);
                        st.files += 1;
                        st.current_file = None;
                        st.recording = false;
                    }),
                    None => Ok(()),
                },
            };
            self.publish_counters();
            if let Err(e) = result {
                self.fail(e.to_string());
                return;
            }
        }
    }

    fn open(&mut self, start: Instant, header: bytes::Bytes) -> std::io::Result<()> {
        // Retention runs on its own thread, as each file opens.
        self.retention_due.notify_one();
        let name_time = clock::utc_of(self.clock.as_ref(), start);
        let order = Order {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            trusted: clock::trusted(self.clock.now()),
        };
        let file = RecordingFile::create(
            &self.root,
            self.hub.name(),
            name_time,
            Some(order),
            header,
            self.fsync,
            &mut self.io,
        )?;
        self.clock_offset = Some(clock::offset_ms(self.clock.as_ref(), self.clock_base));
        {
            let mut st = lock(&self.status);
            st.recording = true;
            st.current_file = Some(file.relative.clone());
        }
        self.file = Some(file);
        Ok(())
    }

    /// A write failed (ENOSPC, EIO...): the file is closed with what it
    /// has, and recording pauses; live streaming is not affected.
    fn fail(&mut self, error: String) {
        // Retries come every second while the disk stays full: log each
        // new error once, repeats only at debug level.
        let repeated = lock(&self.status).last_error.as_deref() == Some(error.as_str())
            && self.paused_until.is_some();
        if repeated {
            tracing::debug!(stream = self.hub.name(), "recording still paused: {error}");
        } else {
            warn!(stream = self.hub.name(), "recording paused: {error}");
        }
        self.segmenter.reset();
        if let Some(file) = self.file.take() {
            if let Err(e) = self.close_after_error(file) {
                warn!(
                    stream = self.hub.name(),
                    "cannot close the file after the error: {e}; it will be repaired at start-up"
                );
            }
        }
        self.paused_until = Some(Instant::now() + RETRY_AFTER);
        let mut st = lock(&self.status);
        st.errors += 1;
        st.last_error = Some(error);
        st.recording = false;
        st.paused = true;
        st.current_file = None;
    }

    /// Closes a file whose writer failed: its complete fragments are
    /// scanned for the duration, as start-up repair would.
    fn close_after_error(&mut self, file: RecordingFile) -> std::io::Result<()> {
        let path = file.path().to_owned();
        drop(file);
        let partial = PathBuf::from(format!("{}{}", path.display(), paths::PARTIAL_SUFFIX));
        repair::repair(&partial).map(|_| ())
    }

    fn close_file(&mut self) {
        match self.segmenter.close(None) {
            Ok(a) => self.apply(a),
            Err(e) => self.fail(format!("cannot build the MP4: {e}")),
        }
        let mut st = lock(&self.status);
        st.recording = false;
        st.current_file = None;
    }

    fn publish_counters(&self) {
        let mut st = lock(&self.status);
        st.bytes_written = self.io.bytes;
        st.write_calls = self.io.writes;
        st.fsyncs = self.io.fsyncs;
    }
}
