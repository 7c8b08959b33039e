//! `/api/...`: the agent's state as JSON.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::app::AppContext;
use crate::hub::Output;
use crate::status::{self, DiskUsage};

pub fn routes() -> Router<Arc<AppContext>> {
    Router::new()
        .route("/api/streams", get(streams))
        .route("/api/status", get(agent_status))
}

#[derive(Serialize)]
struct StreamState {
    name: String,
    /// "live" while the source produces, "waiting" otherwise.
    state: &'static str,
    tracks: String,
    fps: u32,
    viewers: serde_json::Map<String, serde_json::Value>,
}

async fn streams(State(ctx): State<Arc<AppContext>>) -> Json<Vec<StreamState>> {
    Json(
        ctx.streams
            .all()
            .iter()
            .map(|hub| {
                let info = hub.info();
                let stats = hub.stats();
                StreamState {
                    name: hub.name().to_owned(),
                    state: if info.is_some() { "live" } else { "waiting" },
                    tracks: info.map(|i| i.describe()).unwrap_or_default(),
                    fps: stats.fps,
                    viewers: Output::ALL
                        .iter()
                        .map(|o| (o.as_str().to_owned(), stats.viewers[*o as usize].into()))
                        .collect(),
                }
            })
            .collect(),
    )
}

#[derive(Serialize)]
struct AgentStatus {
    device_id: String,
    version: &'static str,
    uptime_s: f64,
    cpu_seconds: f64,
    rss_bytes: u64,
    disk: DiskUsage,
}

async fn agent_status(
    State(ctx): State<Arc<AppContext>>,
) -> Result<Json<AgentStatus>, (StatusCode, String)> {
    let data_dir = ctx.config.agent.data_dir.clone();
    // /proc reads and statvfs block (statvfs on a failing card can block
    // for long): keep them off the async workers.
    let measured = tokio::task::spawn_blocking(move || {
        Ok::<_, std::io::Error>((status::process()?, status::disk(&data_dir)?))
    })
    .await;
    let (process, disk) = match measured {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => return Err(internal(format!("cannot read the agent status: {e}"))),
        Err(e) => return Err(internal(format!("status task failed: {e}"))),
    };
    Ok(Json(AgentStatus {
        device_id: ctx.config.agent.device_id.clone(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: process.uptime_s,
        cpu_seconds: process.cpu_seconds,
        rss_bytes: process.rss_bytes,
        disk,
    }))
}

fn internal(message: String) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, message)
}
