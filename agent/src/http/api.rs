//! `/api/...`: the agent's state as JSON.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::app::AppContext;
use crate::hub::Output;

pub fn routes() -> Router<Arc<AppContext>> {
    Router::new().route("/api/streams", get(streams))
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
