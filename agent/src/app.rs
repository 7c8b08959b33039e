//! Wiring: builds every stream's hub, starts the sources and the outputs,
//! and stops them all on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::Config;
use crate::hls::Hls;
use crate::http;
use crate::hub::{Hub, Streams};
use crate::{record, source};

/// What every output and the control side share.
pub struct AppContext {
    pub config: Arc<Config>,
    pub streams: Arc<Streams>,
    pub hls: Arc<Hls>,
    pub recorders: Arc<record::Recorders>,
}

/// Runs the agent until `shutdown` turns true.
pub async fn run(config: Config, shutdown: watch::Receiver<bool>) -> Result<()> {
    // Ports first: an agent that cannot serve fails before it starts anything.
    let rtsp_listener = bind(config.rtsp.listen, "rtsp").await?;
    let rtsp_addr = rtsp_listener.local_addr()?;
    let http_listener = bind(config.http.listen, "http").await?;
    let http_addr = http_listener.local_addr()?;

    let config = Arc::new(config);
    let streams = Arc::new(Streams::default());
    let mut tasks = JoinSet::new();
    for s in &config.streams {
        let hub = Arc::new(Hub::new(&s.name));
        streams.insert(hub.clone());
        tasks.spawn(source::supervise(hub, s.source.clone(), shutdown.clone()));
    }
    let recorders = record::Recorders::start(
        &config,
        &streams,
        record::clock::from_env(),
        shutdown.clone(),
    );
    {
        let recorders = recorders.clone();
        tasks.spawn(async move { recorders.wait().await });
    }
    let ctx = Arc::new(AppContext {
        config: config.clone(),
        hls: Arc::new(Hls::new(
            config.hls.clone(),
            streams.clone(),
            shutdown.clone(),
        )),
        streams,
        recorders,
    });

    info!("rtsp listening on {rtsp_addr}");
    for s in &config.streams {
        info!(
            stream = s.name,
            "rtsp://{}/{}",
            display_addr(rtsp_addr),
            s.name
        );
    }
    {
        let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
        tasks.spawn(crate::rtsp::serve(rtsp_listener, ctx, shutdown));
    }

    info!("http listening on {http_addr}");
    {
        let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(e) = http::serve(http_listener, ctx, shutdown).await {
                warn!("http server stopped: {e}");
            }
        });
    }

    // Listeners bound, streams started: systemd may start what depends on us.
    crate::notify::ready();
    {
        let (streams, expected) = (ctx.streams.clone(), config.streams.len());
        let probe = move || {
            let streams = streams.clone();
            // A round trip through the runtime's scheduler and the stream
            // table's lock: a wedged runtime or a deadlock stops the pings.
            async move {
                tokio::spawn(async move { streams.all().len() })
                    .await
                    .is_ok_and(|n| n == expected)
            }
        };
        tasks.spawn(crate::notify::watchdog(probe, shutdown.clone()));
    }

    let mut shutdown = shutdown;
    let _ = shutdown.wait_for(|s| *s).await;
    info!("shutting down");
    crate::notify::stopping();
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        warn!("some tasks did not stop within 5 s");
    }
    Ok(())
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

/// An address for URLs in logs: the wildcard address shown as localhost.
pub fn display_addr(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    }
}
