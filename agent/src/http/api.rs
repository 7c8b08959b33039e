//! `/api/...`: the agent's state as JSON and the stream manager's commands.
//! Each handler is a thin adapter over [`Control`]'s command set.
//!
//! - `GET /api/streams`, `GET /api/status`
//! - `POST /api/streams/{stream}/start|stop`: the stream's source
//! - `POST /api/streams/{stream}/keyframe`
//! - `POST /api/recordings/{stream}/start|stop`
//! - `POST /api/streams/{stream}/uplinks/{index}/enable|disable`
//! - `GET /api/config`, `PUT /api/config` (TOML or JSON), `PATCH /api/config`
//!   (JSON merge patch)

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use crate::config::Config;
use crate::control::{CommandError, Control, StreamState};
use crate::status::{self, DiskUsage};

pub fn routes() -> Router<Arc<Control>> {
    Router::new()
        .route("/api/streams", get(streams))
        .route("/api/streams/{stream}/{action}", post(stream_action))
        .route("/api/recordings/{stream}/{action}", post(recording_action))
        .route(
            "/api/streams/{stream}/uplinks/{target}/{action}",
            post(uplink_action),
        )
        .route("/api/status", get(agent_status))
        .route(
            "/api/config",
            get(get_config).put(put_config).patch(patch_config),
        )
}

async fn streams(State(control): State<Arc<Control>>) -> Json<Vec<StreamState>> {
    Json(control.stream_states().await)
}

async fn stream_action(
    State(control): State<Arc<Control>>,
    Path((stream, action)): Path<(String, String)>,
) -> Response {
    let result = match action.as_str() {
        "start" => control.set_stream_enabled(&stream, true).await,
        "stop" => control.set_stream_enabled(&stream, false).await,
        "keyframe" => control.request_keyframe(&stream),
        _ => return (StatusCode::NOT_FOUND, error_body("unknown action")).into_response(),
    };
    match result {
        Ok(()) => {
            let states = control.stream_states().await;
            Json(states.into_iter().find(|s| s.name == stream)).into_response()
        }
        Err(e) => command_error(e),
    }
}

/// `enable` or `disable` the uplink at index `target`.
async fn uplink_action(
    State(control): State<Arc<Control>>,
    Path((stream, target, action)): Path<(String, String, String)>,
) -> Response {
    let on = match action.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return (StatusCode::NOT_FOUND, error_body("unknown action")).into_response(),
    };
    match control.set_uplink_enabled(&stream, &target, on).await {
        Ok(()) => {
            let states = control.stream_states().await;
            Json(states.into_iter().find(|s| s.name == stream)).into_response()
        }
        Err(e) => command_error(e),
    }
}

async fn recording_action(
    State(control): State<Arc<Control>>,
    Path((stream, action)): Path<(String, String)>,
) -> Response {
    let on = match action.as_str() {
        "start" => true,
        "stop" => false,
        _ => return (StatusCode::NOT_FOUND, error_body("unknown action")).into_response(),
    };
    match control.set_recording(&stream, on) {
        Ok(status) => Json(status).into_response(),
        Err(e) => command_error(e),
    }
}

async fn get_config(State(control): State<Arc<Control>>) -> Response {
    let config = control.config();
    let mut body = config.to_json();
    body["revision"] = control.revision().into();
    Json(body).into_response()
}

/// A whole config: TOML when the body says so (`application/toml` or
/// `text/...`), JSON otherwise.
async fn put_config(
    State(control): State<Arc<Control>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parsed = if content_type.contains("toml") || content_type.starts_with("text/") {
        match std::str::from_utf8(&body) {
            Ok(text) => Config::parse(text, FsPath::new(crate::config::JSON_SOURCE)),
            Err(_) => return bad_request("the body is not UTF-8"),
        }
    } else {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(mut v) => {
                if let Some(o) = v.as_object_mut() {
                    o.remove("revision");
                }
                Config::from_json(&v)
            }
            Err(e) => return bad_request(&format!("bad JSON: {e}")),
        }
    };
    match parsed {
        Ok(config) => applied(control.set_config(config).await),
        Err(e) => command_error(CommandError::Config(e)),
    }
}

async fn patch_config(State(control): State<Arc<Control>>, body: Bytes) -> Response {
    let patch = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("bad JSON: {e}")),
    };
    applied(control.patch_config(&patch).await)
}

fn applied(result: Result<crate::control::Applied, CommandError>) -> Response {
    match result {
        Ok(a) => Json(a).into_response(),
        Err(e) => command_error(e),
    }
}

fn error_body(message: &str) -> Json<serde_json::Value> {
    Json(json!({ "error": message }))
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, error_body(message)).into_response()
}

fn command_error(e: CommandError) -> Response {
    match &e {
        CommandError::NoSuchStream(_) | CommandError::NoSuchUplink { .. } => {
            (StatusCode::NOT_FOUND, error_body(&e.to_string())).into_response()
        }
        CommandError::Config(c) => (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error": e.to_string(),
                "key": c.key,
                "line": c.line,
                "message": c.message,
            })),
        )
            .into_response(),
        CommandError::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            error_body(&e.to_string()),
        )
            .into_response(),
    }
}

#[derive(Serialize)]
struct AgentStatus {
    device_id: String,
    version: &'static str,
    config_revision: u64,
    /// Tasks alive on the main runtime (the RTSP thread has its own).
    tasks: usize,
    uptime_s: f64,
    cpu_seconds: f64,
    rss_bytes: u64,
    disk: DiskUsage,
}

async fn agent_status(State(control): State<Arc<Control>>) -> Response {
    let config = control.config();
    let data_dir = config.agent.data_dir.clone();
    // /proc reads and statvfs block (statvfs on a failing card can block
    // for long): keep them off the async workers.
    let measured = tokio::task::spawn_blocking(move || {
        Ok::<_, std::io::Error>((status::process()?, status::disk(&data_dir)?))
    })
    .await;
    let (process, disk) = match measured {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            let e = CommandError::Internal(format!("cannot read the agent status: {e}"));
            return command_error(e);
        }
        Err(e) => return command_error(CommandError::Internal(format!("status task: {e}"))),
    };
    Json(AgentStatus {
        device_id: config.agent.device_id.clone(),
        version: env!("CARGO_PKG_VERSION"),
        config_revision: control.revision(),
        tasks: tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        uptime_s: process.uptime_s,
        cpu_seconds: process.cpu_seconds,
        rss_bytes: process.rss_bytes,
        disk,
    })
    .into_response()
}
