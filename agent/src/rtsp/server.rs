//! The RTSP server: accepts connections (a bounded number), runs each on
//! its own task, and closes them all on shutdown. Its settings change
//! while it runs: a new listener replaces the old one (connections on the
//! old one go on), and auth, timeouts and limits apply to the next request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::auth::Authenticator;
use super::connection;
use super::limits::{self, Refusal};
use super::stage::Stages;
use super::state::{Server, Settings};
use crate::config::RtspConfig;
use crate::hub::Streams;

/// What the server is handed: its listener, the streams, its settings (and
/// new listeners when `[rtsp] listen` changes), and the shutdown signal.
pub struct Inputs {
    pub listener: std::net::TcpListener,
    pub streams: Arc<Streams>,
    pub config: watch::Receiver<RtspConfig>,
    pub rebind: mpsc::Receiver<std::net::TcpListener>,
    pub shutdown: CancellationToken,
}

/// Serves RTSP until `shutdown`.
///
/// The server runs on a thread of its own with a single-threaded runtime:
/// when a frame arrives, the stage and every session reading it run one
/// after the other in one wake-up of that thread, instead of waking
/// runtime workers across threads for each session. Fan-out cost is
/// dominated by those wake-ups, and one core serves far more sessions
/// than a camera is asked for.
pub async fn serve(inputs: Inputs) {
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
            runtime.block_on(run(inputs));
            drop(done);
        });
    if let Err(e) = thread {
        warn!("rtsp server not started: {e}");
        return;
    }
    let _ = finished.await;
}

async fn run(inputs: Inputs) {
    let Inputs {
        listener,
        streams,
        mut config,
        mut rebind,
        shutdown,
    } = inputs;
    let mut listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("rtsp server not started: {e}");
            return;
        }
    };
    let first = config.borrow_and_update().clone();
    let server = Arc::new(Server {
        streams,
        stages: Stages::default(),
        sessions: Arc::new(AtomicUsize::new(0)),
        connections: AtomicUsize::new(0),
        clients: Arc::default(),
        clock: Instant::now(),
        settings: RwLock::new(Arc::new(Settings {
            auth: first.auth.clone().map(|a| Arc::new(Authenticator::new(a))),
            config: first,
        })),
    });
    let mut tasks = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Ok(()) = config.changed() => {
                server.update(config.borrow_and_update().clone());
                continue;
            }
            Some(new) = rebind.recv() => {
                match TcpListener::from_std(new) {
                    Ok(l) => {
                        info!("rtsp listening on {}", l.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()));
                        listener = l;
                    }
                    Err(e) => warn!("rtsp cannot use the new listener: {e}"),
                }
                continue;
            }
            _ = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Room for every session plus connections that only DESCRIBE.
                let cap = server.settings().config.max_sessions.saturating_mul(2) + 16;
                if server.connections.load(Ordering::Relaxed) >= cap {
                    limits::refused(Refusal::Connections);
                    warn!(%peer, "rtsp connection refused: {cap} connections open");
                    continue;
                }
                let per_client = server.settings().config.max_connections_per_client;
                let Some(place) = server.clients.connection(peer.ip(), per_client) else {
                    limits::refused(Refusal::ClientConnections);
                    debug!(%peer, "rtsp connection refused: {per_client} connections from this address");
                    continue;
                };
                cap_send_buffer(&stream);
                server.connections.fetch_add(1, Ordering::Relaxed);
                let (server, shutdown) = (server.clone(), shutdown.clone());
                tasks.spawn(async move {
                    connection::run(server.clone(), stream, shutdown).await;
                    drop(place);
                    server.connections.fetch_sub(1, Ordering::Relaxed);
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
