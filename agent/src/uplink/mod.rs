//! Uplinks: a stream pushed to central servers, any number of targets per
//! stream, over RTSP (ANNOUNCE/RECORD) or RTMP (publish). Each target runs
//! on its own: it starts at a keyframe with the parameter sets (after every
//! reconnect too), reconnects with backoff and jitter up to its cap, reads
//! the hub through a byte-bounded queue of its own (a slow link drops to
//! the next keyframe and counts the drops), and never touches the stream's
//! other readers. State: `connecting`, `publishing`, `backoff`, `disabled`,
//! with the last error, bytes sent and drops.

mod flv;
mod queue;
mod rtmp_push;
mod rtsp_push;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde::Serialize;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{UplinkConfig, UplinkProtocol};
use crate::hub::{Hub, Output};
use crate::media::{Item, SharedStreamInfo};
use crate::source::Backoff;
use queue::SendQueue;
use rtmp_push::RtmpPublisher;
use rtsp_push::RtspPublisher;

/// A write blocked this long means the link is dead. Generous: the kernel
/// reports a socket writable only once half its buffer is free, which a
/// slow but live link can take many seconds to drain.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UplinkState {
    Connecting,
    Publishing,
    Backoff,
    Disabled,
}

impl UplinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            UplinkState::Connecting => "connecting",
            UplinkState::Publishing => "publishing",
            UplinkState::Backoff => "backoff",
            UplinkState::Disabled => "disabled",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct UplinkStatus {
    /// The target's URL without credentials.
    pub target: String,
    pub state: UplinkState,
    pub last_error: Option<String>,
    pub bytes_sent: u64,
    /// Frames dropped because the link was too slow.
    pub dropped_frames: u64,
    /// Bytes read from the hub and not yet sent.
    pub queued_bytes: u64,
    /// Successful connections so far.
    pub connects: u64,
}

/// Where to push, with the credentials out of the URL.
pub struct Target {
    pub url: url::Url,
    pub credentials: Option<(String, String)>,
    pub protocol: UplinkProtocol,
}

impl Target {
    fn new(config: &UplinkConfig) -> Result<Self> {
        let mut url = url::Url::parse(&config.url)?;
        let protocol = config
            .protocol()
            .ok_or_else(|| anyhow!("{}: not rtsp:// or rtmp://", config.url))?;
        let mut credentials = None;
        if !url.username().is_empty() {
            credentials = Some((
                url.username().to_owned(),
                url.password().unwrap_or("").to_owned(),
            ));
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        if let Some(u) = &config.username {
            credentials = Some((u.clone(), config.password.clone().unwrap_or_default()));
        }
        Ok(Self {
            url,
            credentials,
            protocol,
        })
    }
}

/// One running target.
struct Handle {
    status: Arc<Mutex<UplinkStatus>>,
    enabled: watch::Sender<bool>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// A stream's uplinks.
pub struct Uplinks {
    handles: Vec<Handle>,
}

impl Uplinks {
    pub fn start(hub: &Arc<Hub>, configs: &[UplinkConfig], shutdown: &CancellationToken) -> Self {
        let handles = configs
            .iter()
            .map(|c| {
                let target = redacted(&c.url);
                let status = Arc::new(Mutex::new(UplinkStatus {
                    target,
                    state: if c.enabled {
                        UplinkState::Connecting
                    } else {
                        UplinkState::Disabled
                    },
                    last_error: None,
                    bytes_sent: 0,
                    dropped_frames: 0,
                    queued_bytes: 0,
                    connects: 0,
                }));
                let (enabled, enabled_rx) = watch::channel(c.enabled);
                let cancel = shutdown.child_token();
                let task = tokio::spawn(run(
                    hub.clone(),
                    c.clone(),
                    status.clone(),
                    enabled_rx,
                    cancel.clone(),
                ));
                Handle {
                    status,
                    enabled,
                    cancel,
                    task,
                }
            })
            .collect();
        Self { handles }
    }

    pub fn statuses(&self) -> Vec<UplinkStatus> {
        self.handles
            .iter()
            .map(|h| lock(&h.status).clone())
            .collect()
    }

    /// Enables or disables the target whose index or URL (without
    /// credentials) is `target`; false when there is none.
    pub fn set_enabled(&self, target: &str, on: bool) -> bool {
        let found =
            self.handles.iter().enumerate().find(|(i, h)| {
                target == i.to_string() || lock(&h.status).target == redacted(target)
            });
        match found {
            Some((_, h)) => {
                h.enabled.send_replace(on);
                true
            }
            None => false,
        }
    }

    /// Stops every target and waits for its connection to close.
    pub async fn stop(self) {
        for h in &self.handles {
            h.cancel.cancel();
        }
        for h in self.handles {
            let _ = h.task.await;
        }
    }
}

/// Kernel send buffer of an uplink connection: a slow link then shows in
/// this uplink's queue (which drops to keyframes) within a second or two,
/// instead of megabytes of stale video waiting in the kernel.
const SEND_BUFFER: usize = 256 * 1024;

pub(crate) fn cap_send_buffer(stream: &tokio::net::TcpStream) {
    if let Err(e) = socket2::SockRef::from(stream).set_send_buffer_size(SEND_BUFFER) {
        warn!("cannot cap an uplink's send buffer: {e}");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `url` without user and password, for logs and status.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

fn set(status: &Mutex<UplinkStatus>, state: UplinkState, error: Option<String>) {
    let mut s = lock(status);
    s.state = state;
    if error.is_some() {
        s.last_error = error;
    }
}

/// One target: connect, publish, back off, again; idle while disabled.
async fn run(
    hub: Arc<Hub>,
    config: UplinkConfig,
    status: Arc<Mutex<UplinkStatus>>,
    mut enabled: watch::Receiver<bool>,
    cancel: CancellationToken,
) {
    let target_name = redacted(&config.url);
    let target = match Target::new(&config) {
        Ok(t) => t,
        Err(e) => {
            set(&status, UplinkState::Backoff, Some(e.to_string()));
            return;
        }
    };
    let mut backoff = Backoff::new(
        Duration::from_millis(500),
        Duration::from_secs(config.backoff_max_seconds),
    );
    loop {
        if !*enabled.borrow_and_update() {
            set(&status, UplinkState::Disabled, None);
            tokio::select! {
                _ = enabled.wait_for(|e| *e) => continue,
                _ = cancel.cancelled() => return,
            }
        }
        set(&status, UplinkState::Connecting, None);
        let ended = tokio::select! {
            r = publish(&hub, &target, &status, &target_name, config.queue_kb << 10) => r,
            _ = enabled.wait_for(|e| !*e) => continue,
            _ = cancel.cancelled() => return,
        };
        let error = match ended {
            Ok(()) => "the stream ended".to_owned(),
            Err(e) => format!("{e:#}"),
        };
        if lock(&status).state == UplinkState::Publishing {
            backoff.reset();
        }
        let pause = backoff.next_pause();
        warn!(
            stream = hub.name(),
            "uplink {target_name}: {error}; again in {:.1} s",
            pause.as_secs_f64()
        );
        set(&status, UplinkState::Backoff, Some(error));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = enabled.wait_for(|e| !*e) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

enum Publisher {
    Rtsp(RtspPublisher),
    Rtmp(RtmpPublisher),
}

/// One connection: from the next keyframe (with its parameters) until the
/// link fails.
async fn publish(
    hub: &Arc<Hub>,
    target: &Target,
    status: &Arc<Mutex<UplinkStatus>>,
    name: &str,
    queue_bytes: usize,
) -> Result<()> {
    // A fresh subscription starts at the cached GOP: parameters first.
    let mut items = hub.subscribe(Output::Uplink);
    let first = loop {
        match items.recv().await {
            Some(Item::Params(info)) => break info,
            Some(_) => continue,
            None => return Ok(()),
        }
    };
    let mut publisher = connect(target, &first).await?;
    {
        let mut s = lock(status);
        s.state = UplinkState::Publishing;
        s.connects += 1;
    }
    info!(stream = hub.name(), "uplink {name}: publishing");
    let queue = Arc::new(Mutex::new(SendQueue::new(queue_bytes)));
    let ready = Arc::new(Notify::new());
    lock(&queue).push(Item::Params(first));
    // The hub is read on a task of its own, so that a slow link fills this
    // uplink's queue, not the hub's ring.
    // Drops count over the uplink's life, across connections.
    let dropped_before = lock(status).dropped_frames;
    let reader = {
        let (queue, ready, status) = (queue.clone(), ready.clone(), status.clone());
        tokio::spawn(async move {
            while let Some(item) = items.recv().await {
                let mut q = lock(&queue);
                q.push(item);
                {
                    let mut s = lock(&status);
                    s.dropped_frames = dropped_before + q.dropped;
                    s.queued_bytes = q.bytes() as u64;
                }
                drop(q);
                ready.notify_one();
            }
            ready.notify_one();
        })
    };
    let result = send_loop(&mut publisher, &queue, &ready, &reader, status).await;
    reader.abort();
    result
}

async fn connect(target: &Target, info: &SharedStreamInfo) -> Result<Publisher> {
    match target.protocol {
        UplinkProtocol::Rtsp => Ok(Publisher::Rtsp(
            RtspPublisher::connect(target, info.clone()).await?,
        )),
        UplinkProtocol::Rtmp => {
            rtmp_push::check(info)?;
            Ok(Publisher::Rtmp(RtmpPublisher::connect(target).await?))
        }
    }
}

async fn send_loop(
    publisher: &mut Publisher,
    queue: &Mutex<SendQueue>,
    ready: &Notify,
    reader: &JoinHandle<()>,
    status: &Mutex<UplinkStatus>,
) -> Result<()> {
    loop {
        let next = lock(queue).pop();
        let Some(item) = next else {
            if reader.is_finished() {
                return Ok(());
            }
            ready.notified().await;
            continue;
        };
        let sent = tokio::time::timeout(WRITE_TIMEOUT, async {
            match (&mut *publisher, item) {
                (Publisher::Rtsp(p), Item::Params(info)) => {
                    if !p.accepts(&info) {
                        return Err(anyhow!("the stream's tracks changed: announcing again"));
                    }
                    p.set_params(info);
                    Ok(0)
                }
                (Publisher::Rtmp(p), Item::Params(info)) => p.set_params(info).await,
                (Publisher::Rtsp(p), Item::Frame(f)) => p.send(&f).await,
                (Publisher::Rtmp(p), Item::Frame(f)) => p.send(&f).await,
                (_, Item::Discontinuity) => Ok(0),
            }
        })
        .await
        .map_err(|_| anyhow!("the link stopped taking data for {WRITE_TIMEOUT:?}"))??;
        lock(status).bytes_sent += sent as u64;
    }
}
