//! Start-up and shutdown: binds the ports, builds the stream manager and
//! hands each server its inputs, reloads the config on SIGHUP, and stops
//! everything in order on shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::control::{self, Control, ServerLinks};
use crate::hls::Hls;
use crate::hub::Streams;
use crate::{http, mqtt, record, rtsp};

/// Where the config came from: reloads read it again, changes are saved
/// to it.
pub struct ConfigSource {
    pub path: Option<PathBuf>,
    pub text: String,
}

/// How the agent stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// SIGTERM, SIGINT: the process exits.
    Exit,
    /// The `restart` command: the process starts itself again.
    Restart,
}

/// Runs the agent until `shutdown`; `reload` fires on SIGHUP.
pub async fn run(
    config: Config,
    source: ConfigSource,
    mut reload: mpsc::Receiver<()>,
    shutdown: CancellationToken,
) -> Result<Stopped> {
    // The data dir is ours alone, or nothing starts (a second agent would
    // repair the first one's open recordings).
    let _data_dir_lock = crate::lock::lock_data_dir(&config.agent.data_dir)?;
    // Ports first: an agent that cannot serve fails before it starts anything.
    let rtsp_listener = bind(config.rtsp.listen, "rtsp")?;
    let rtsp_addr = rtsp_listener.local_addr()?;
    let http_listener = bind(config.http.listen, "http")?;
    let http_addr = http_listener.local_addr()?;

    let streams = Arc::new(Streams::default());
    let recorders = record::Recorders::start(&config, record::clock::from_env(), shutdown.clone());
    let hls = Arc::new(Hls::new(
        config.hls.clone(),
        streams.clone(),
        shutdown.clone(),
    ));
    let (rtsp_config, rtsp_config_rx) = watch::channel(config.rtsp.clone());
    let (http_config, http_config_rx) = watch::channel(config.http.clone());
    let (rtsp_rebind, rtsp_rebind_rx) = mpsc::channel(1);
    let (http_rebind, http_rebind_rx) = mpsc::channel(1);
    for s in &config.streams {
        info!(
            stream = s.name,
            "rtsp://{}/{}",
            display_addr(rtsp_addr),
            s.name
        );
    }
    let control = Control::start(
        config,
        source.path,
        source.text,
        streams.clone(),
        hls,
        recorders.clone(),
        ServerLinks {
            rtsp_config,
            rtsp_rebind,
            http_config,
            http_rebind,
        },
        shutdown.clone(),
    );

    info!("rtsp listening on {rtsp_addr}");
    let rtsp = tokio::spawn(rtsp::serve(rtsp::Inputs {
        listener: rtsp_listener,
        streams,
        config: rtsp_config_rx,
        rebind: rtsp_rebind_rx,
        shutdown: shutdown.clone(),
    }));
    info!("http listening on {http_addr}");
    let http = tokio::spawn(http::serve(http::Inputs {
        listener: http_listener,
        router: http::router(control.clone(), http_config_rx.clone()),
        rebind: http_rebind_rx,
        config: http_config_rx,
        shutdown: shutdown.clone(),
    }));
    let mqtt = tokio::spawn(mqtt::run(control.clone(), shutdown.clone()));

    // Listeners bound, streams started: systemd may start what depends on us.
    crate::notify::ready();
    let watchdog = {
        let control = control.clone();
        // A round trip through the runtime's scheduler and the stream
        // manager's lock: a wedged runtime or a deadlock stops the pings.
        let probe = move || {
            let control = control.clone();
            async move {
                tokio::spawn(async move { control.stream_states().await.len() })
                    .await
                    .is_ok()
            }
        };
        tokio::spawn(crate::notify::watchdog(probe, shutdown.clone()))
    };

    loop {
        tokio::select! {
            Some(()) = reload.recv() => {
                info!("SIGHUP: reloading the config");
                if let Err(e) = control.reload().await {
                    error!("config not reloaded, the running config stays: {e}");
                }
            }
            _ = shutdown.cancelled() => break,
        }
    }
    info!("shutting down");
    crate::notify::stopping();
    watchdog.abort();
    let stop = async {
        // `offline` first, while the broker can still be told.
        let _ = mqtt.await;
        control.stop_all().await;
        recorders.remove_all().await;
        let _ = rtsp.await;
        let _ = http.await;
    };
    if tokio::time::timeout(Duration::from_secs(5), stop)
        .await
        .is_err()
    {
        warn!("some tasks did not stop within 5 s");
    }
    Ok(if control.restart_requested() {
        Stopped::Restart
    } else {
        Stopped::Exit
    })
}

fn bind(addr: SocketAddr, what: &str) -> Result<std::net::TcpListener> {
    control::bind(addr).with_context(|| format!("cannot listen for {what} on {addr}"))
}

/// An address for URLs in logs: the wildcard address shown as localhost.
pub fn display_addr(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    }
}
