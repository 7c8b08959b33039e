//! `/<stream>/index.m3u8` and the files it lists: the HTTP face of
//! [`crate::hls`]. Playlist requests start the stream's muxer; blocking
//! reloads (`_HLS_msn`, `_HLS_part`) and requests for the hinted part wait
//! on the muxer's window until what they ask for exists.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;

use super::names::{self, Resource};
use super::window::{PartState, Window};
use super::{playlist, Hls, Muxer};

/// How long a playlist request waits for a new muxer's first segment.
const FIRST_SEGMENT_WAIT: Duration = Duration::from_secs(12);

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// Playlists change with every part: always revalidate.
const PLAYLIST_CACHE: &str = "no-cache";
/// Segment and part URIs never name other bytes (see `hls::MSN_CLOCK_MS`).
const MEDIA_CACHE: &str = "public, max-age=31536000, immutable";

pub fn routes<S: Clone + Send + Sync + 'static>(hls: Arc<Hls>) -> Router<S> {
    Router::new()
        .route("/{stream}/{file}", get(serve))
        .with_state(hls)
}

async fn serve(
    State(hls): State<Arc<Hls>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path((stream, file)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(resource) = names::parse(&file) else {
        return not_found();
    };
    if let Some(why) = hls.refusal(&stream) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            [(header::CACHE_CONTROL, "no-cache")],
            why,
        )
            .into_response();
    }
    let muxer = match resource {
        Resource::Playlist | Resource::Multivariant => hls.start(&stream, client.ip()),
        _ => hls.running(&stream, client.ip()),
    };
    let Some(muxer) = muxer else {
        return not_found();
    };
    match resource {
        Resource::Playlist => playlist_response(&muxer, &query).await,
        Resource::Multivariant => {
            if !muxer.wait_for(FIRST_SEGMENT_WAIT, Window::is_ready).await {
                return unavailable("the stream has no segment yet");
            }
            match muxer.read(playlist::render_multivariant) {
                Some(text) => (
                    [
                        (header::CONTENT_TYPE, PLAYLIST_TYPE),
                        (header::CACHE_CONTROL, PLAYLIST_CACHE),
                    ],
                    text,
                )
                    .into_response(),
                None => unavailable("the muxer stopped"),
            }
        }
        Resource::Init(id) => {
            let init = muxer.read(|w| w.init(id).cloned()).flatten();
            init.map_or_else(not_found, |b| media(b, "no-cache"))
        }
        Resource::Segment(msn) => {
            // The parts are taken (shared) under the window's lock and
            // joined after it, so the muxer never waits for the copy.
            let parts = muxer.read(|w| w.segment_data(msn)).flatten();
            parts.map_or_else(not_found, |p| media(Bytes::from(p.concat()), MEDIA_CACHE))
        }
        Resource::Part(msn, part) => part_response(&muxer, msn, part).await,
    }
}

/// The blocking-reload parameters (rfc8216bis 6.2.5.2).
struct Block {
    msn: u64,
    part: Option<usize>,
}

fn block_params(query: &HashMap<String, String>) -> Result<Option<Block>, &'static str> {
    let number = |key: &str| -> Result<Option<u64>, &'static str> {
        query
            .get(key)
            .map(|v| v.parse::<u64>().map_err(|_| "bad _HLS_msn or _HLS_part"))
            .transpose()
    };
    match (number("_HLS_msn")?, number("_HLS_part")?) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err("_HLS_part without _HLS_msn"),
        (Some(msn), part) => Ok(Some(Block {
            msn,
            part: part.map(|p| p.min(usize::MAX as u64) as usize),
        })),
    }
}

async fn playlist_response(muxer: &Muxer, query: &HashMap<String, String>) -> Response {
    let block = match block_params(query) {
        Ok(b) => b,
        Err(msg) => return (StatusCode::BAD_REQUEST, msg).into_response(),
    };
    if !muxer.wait_for(FIRST_SEGMENT_WAIT, Window::is_ready).await {
        return unavailable("the stream has no segment yet");
    }
    if let Some(Block { msn, part }) = block {
        let Some((too_far, limit)) = muxer.read(|w| (w.too_far(msn), blocking_limit(w))) else {
            return unavailable("the muxer stopped");
        };
        if too_far {
            return (StatusCode::BAD_REQUEST, "_HLS_msn is beyond the live edge").into_response();
        }
        if !muxer.wait_for(limit, |w| w.has(msn, part)).await {
            return unavailable("the requested part did not appear in time");
        }
    }
    let text = muxer.read(playlist::render);
    match text {
        Some(text) => (
            [
                (header::CONTENT_TYPE, PLAYLIST_TYPE),
                (header::CACHE_CONTROL, PLAYLIST_CACHE),
            ],
            text,
        )
            .into_response(),
        None => unavailable("the muxer stopped"),
    }
}

/// A part, waiting for it when it is the hinted one (or just after).
async fn part_response(muxer: &Muxer, msn: u64, part: usize) -> Response {
    let Some((state, limit)) = muxer.read(|w| (w.part_state(msn, part), blocking_limit(w))) else {
        return not_found();
    };
    match state {
        PartState::Ready => {}
        PartState::Never => return not_found(),
        PartState::Soon => {
            let written = |w: &Window| w.part_state(msn, part) != PartState::Soon;
            if !muxer.wait_for(limit, written).await {
                return not_found();
            }
        }
    }
    let data = muxer.read(|w| w.part(msn, part)).flatten();
    data.map_or_else(not_found, |b| media(b, MEDIA_CACHE))
}

/// How long a blocking request may wait: three target durations, then
/// 503 (or 404 for a part) and the client asks again.
fn blocking_limit(w: &Window) -> Duration {
    Duration::from_secs(w.target_duration() * 3)
}

fn media(data: Bytes, cache: &'static str) -> Response {
    let mut res = data.into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CACHE_CONTROL, "no-cache")],
        "not found",
    )
        .into_response()
}

fn unavailable(msg: &'static str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CACHE_CONTROL, "no-cache"),
            (header::RETRY_AFTER, "1"),
        ],
        msg,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn blocking_parameters() {
        assert!(block_params(&q(&[])).unwrap().is_none());
        let b = block_params(&q(&[("_HLS_msn", "7"), ("_HLS_part", "2")]))
            .unwrap()
            .unwrap();
        assert_eq!((b.msn, b.part), (7, Some(2)));
        assert!(block_params(&q(&[("_HLS_part", "2")])).is_err());
        assert!(block_params(&q(&[("_HLS_msn", "-1")])).is_err());
        assert!(block_params(&q(&[("_HLS_msn", "x")])).is_err());
    }
}
