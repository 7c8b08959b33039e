//! The local HTTP server on `[http] listen`: the router, authentication,
//! CORS, the web UI, the JSON API and /metrics. HLS and recordings bring
//! their own routes (`hls::http`, `record::http`). Auth and CORS read the
//! live `[http]` settings, so a change applies to the next request.

mod api;
mod auth;
mod cors;
mod csrf;
pub mod limits;
mod metrics;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::middleware;
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::HttpConfig;
use crate::control::Control;

/// Every route the agent serves over HTTP.
pub fn router(control: Arc<Control>, config: watch::Receiver<HttpConfig>) -> Router {
    let hls = crate::hls::http::routes(control.hls().clone());
    let recordings = crate::record::http::routes(control.recorders().clone());
    Router::new()
        .merge(api::routes())
        .merge(metrics::routes())
        .merge(ui::routes())
        .with_state(control)
        .merge(hls)
        .merge(recordings)
        .layer(middleware::from_fn_with_state(
            config.clone(),
            auth::require,
        ))
        .layer(middleware::from_fn_with_state(
            config.clone(),
            csrf::refuse_cross_site,
        ))
        // Outermost, so that preflights skip authentication.
        .layer(middleware::from_fn_with_state(config, cors::cors))
}

/// What the HTTP server is handed.
pub struct Inputs {
    pub listener: std::net::TcpListener,
    pub router: Router,
    /// A new listener replaces the current one when `[http] listen`
    /// changes; requests in flight on the old one finish.
    pub rebind: mpsc::Receiver<std::net::TcpListener>,
    /// The live `[http]` settings: connection cap and timeouts.
    pub config: watch::Receiver<HttpConfig>,
    pub shutdown: CancellationToken,
}

/// Serves until `shutdown`.
pub async fn serve(inputs: Inputs) {
    let Inputs {
        mut listener,
        router,
        mut rebind,
        config,
        shutdown,
    } = inputs;
    loop {
        let stop = shutdown.child_token();
        let tokio_listener = match TcpListener::from_std(listener) {
            // tap_io: so that `ConnectInfo<SocketAddr>` works as on a bare
            // TcpListener (see `limits`).
            Ok(l) => limits::LimitedListener::new(l, config.clone()).tap_io(|_| {}),
            Err(e) => {
                warn!("http server stopped: {e}");
                return;
            }
        };
        let serving = {
            let (router, stop) = (router.clone(), stop.clone());
            tokio::spawn(async move {
                // The peer address is HLS's client key (see `hls::Hls`).
                let app = router.into_make_service_with_connect_info::<SocketAddr>();
                let served = axum::serve(tokio_listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
                if let Err(e) = served {
                    warn!("http server stopped: {e}");
                }
            })
        };
        tokio::select! {
            Some(new) = rebind.recv() => {
                info!("http listening on {}", new.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()));
                // The old server stops accepting; requests in flight on it
                // finish on their own (its task runs on, detached).
                stop.cancel();
                drop(serving);
                listener = new;
            }
            _ = shutdown.cancelled() => {
                let _ = serving.await;
                return;
            }
        }
    }
}
