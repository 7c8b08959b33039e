//! The RTSP server: accepts connections (a bounded number), runs each on
//! its own task, and closes them all on shutdown.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinSet;
use tracing::warn;

use super::auth::Authenticator;
use super::connection;
use super::stage::Stages;
use crate::app::AppContext;
use crate::config::RtspConfig;

/// What every connection shares.
pub struct Server {
    pub ctx: Arc<AppContext>,
    pub config: RtspConfig,
    pub stages: Stages,
    pub auth: Option<Authenticator>,
    /// Sessions open now, against `config.max_sessions`.
    pub sessions: Arc<AtomicUsize>,
    /// The origin of the millisecond times connections keep.
    pub clock: Instant,
}

impl Server {
    pub fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    pub fn session_timeout(&self) -> Duration {
        Duration::from_secs(self.config.session_timeout_seconds)
    }
}

/// Serves RTSP on `listener` until `shutdown` turns true.
///
/// The server runs on a thread of its own with a single-threaded runtime:
/// when a frame arrives, the stage and every session reading it run one
/// after the other in one wake-up of that thread, instead of waking
/// runtime workers across threads for each session. Fan-out cost is
/// dominated by those wake-ups, and one core serves far more sessions
/// than a camera is asked for.
pub async fn serve(listener: TcpListener, ctx: Arc<AppContext>, shutdown: watch::Receiver<bool>) {
    let listener = match listener.into_std() {
        Ok(l) => l,
        Err(e) => {
            warn!("rtsp server not started: {e}");
            return;
        }
    };
    let (done, finished) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("rtsp".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    warn!("rtsp server not started: {e}");
                    return;
                }
            };
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => run(listener, ctx, shutdown).await,
                    Err(e) => warn!("rtsp server not started: {e}"),
                }
            });
            drop(done);
        });
    if let Err(e) = thread {
        warn!("rtsp server not started: {e}");
        return;
    }
    let _ = finished.await;
}

async fn run(listener: TcpListener, ctx: Arc<AppContext>, mut shutdown: watch::Receiver<bool>) {
    let config = ctx.config.rtsp.clone();
    // Room for every session plus connections that only DESCRIBE.
    let connections = Arc::new(Semaphore::new(config.max_sessions * 2 + 16));
    let server = Arc::new(Server {
        stages: Stages::new(config.max_packet_size),
        auth: config.auth.clone().map(Authenticator::new),
        sessions: Arc::new(AtomicUsize::new(0)),
        clock: Instant::now(),
        ctx,
        config,
    });
    let mut tasks = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        match accepted {
            Ok((stream, _)) => {
                cap_send_buffer(&stream);
                let (server, shutdown) = (server.clone(), shutdown.clone());
                tasks.spawn(async move {
                    connection::run(server, stream, shutdown).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors, most likely: back off a little.
                warn!("rtsp accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Kernel send buffer of an RTSP connection: about 2 s of a 2 Mbit/s stream.
/// Left to autotuning it grows to megabytes, and a reader that stalls would
/// then get seconds of stale video before the hub skips it to a keyframe.
const SEND_BUFFER: libc::c_int = 256 * 1024;

fn cap_send_buffer(stream: &tokio::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let value = SEND_BUFFER;
    // SAFETY: a valid socket descriptor, and a c_int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        warn!(
            "cannot cap the rtsp send buffer: {}",
            std::io::Error::last_os_error()
        );
    }
}
