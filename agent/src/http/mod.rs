//! The local HTTP server on `[http] listen`: the JSON API and, as the
//! outputs that need it land, recordings, HLS, metrics and the web UI.
//! CORS and authentication wrap every route.

mod api;
mod auth;
mod cors;
mod hls;
mod metrics;
mod recordings;
mod ui;

use std::sync::Arc;

use axum::http::HeaderValue;
use axum::middleware;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::AppContext;

/// Every route the agent serves over HTTP.
pub fn router(ctx: Arc<AppContext>) -> Router {
    let http = ctx.config.http.clone();
    let mut router = Router::new()
        .merge(api::routes())
        .merge(metrics::routes())
        .merge(hls::routes())
        .merge(recordings::routes())
        .merge(ui::routes())
        .with_state(ctx);
    if let Some(auth) = http.auth {
        router = router.layer(middleware::from_fn_with_state(
            Arc::new(auth),
            auth::require,
        ));
    }
    // Outermost, so that preflights skip authentication.
    if let Some(origin) = http
        .cors_origin
        .and_then(|o| HeaderValue::from_str(&o).ok())
    {
        router = router.layer(middleware::from_fn_with_state(Arc::new(origin), cors::cors));
    }
    router
}

/// Serves until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<AppContext>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router(ctx))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
}
