//! The local HTTP server on `[http] listen`: the JSON API and, as the
//! outputs that need it land, recordings, HLS, metrics and the web UI.

mod api;
mod ui;

use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::AppContext;

/// Every route the agent serves over HTTP.
pub fn router(ctx: Arc<AppContext>) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(ui::routes())
        .with_state(ctx)
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
