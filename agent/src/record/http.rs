//! Recordings over HTTP:
//! - `GET /api/recordings?stream=&from=&to=&limit=&cursor=`: closed files,
//!   oldest first, at most `limit` (default and most: 1000); when there
//!   may be more, `X-Next-Cursor` is the `cursor` of the next page;
//! - `GET /api/recordings/status`: every recorder's status;
//! - `GET /recordings/{stream}/{day}/{file}.mp4`: the file, with Range.
//!
//! Only names this agent makes are served (stream name, `YYYY-MM-DD`,
//! `<stream>_<time>.mp4`), no path component may be a symlink, and the
//! resolved path must lie under the recordings directory: nothing else on
//! the disk is reachable.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{listing, paths, RecorderStatus, Recorders};

/// Start and stop are commands of the stream manager (`http::api`).
pub fn routes<S: Clone + Send + Sync + 'static>(recorders: Arc<Recorders>) -> Router<S> {
    Router::new()
        .route("/api/recordings", get(list))
        .route("/api/recordings/status", get(statuses))
        .route("/recordings/{stream}/{day}/{file}", get(serve_file))
        .with_state(recorders)
}

#[derive(Deserialize)]
struct ListQuery {
    stream: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list(State(recorders): State<Arc<Recorders>>, Query(q): Query<ListQuery>) -> Response {
    let times = (
        listing::parse_time("from", q.from.as_deref()),
        listing::parse_time("to", q.to.as_deref()),
    );
    let (from, to) = match times {
        (Ok(f), Ok(t)) => (f, t),
        (Err(msg), _) | (_, Err(msg)) => {
            return (StatusCode::BAD_REQUEST, format!("{msg}\n")).into_response()
        }
    };
    let limit = q.limit.unwrap_or(listing::MAX_PAGE);
    if !(1..=listing::MAX_PAGE).contains(&limit) {
        let msg = format!("`limit` must be between 1 and {}\n", listing::MAX_PAGE);
        return (StatusCode::BAD_REQUEST, msg).into_response();
    }
    let root = recorders.root().clone();
    let (found, next) = tokio::task::spawn_blocking(move || {
        listing::find_page(
            &root,
            q.stream.as_deref(),
            from,
            to,
            q.cursor.as_deref(),
            limit,
        )
    })
    .await
    .unwrap_or_default();
    let mut res = Json(found).into_response();
    if let Some(next) = next.and_then(|n| header::HeaderValue::from_str(&n).ok()) {
        res.headers_mut().insert("x-next-cursor", next);
    }
    res
}

async fn statuses(State(recorders): State<Arc<Recorders>>) -> Json<Vec<RecorderStatus>> {
    Json(recorders.statuses())
}

/// The file a URL names, or `None` when it is not one this agent serves.
fn resolve(root: &Path, stream: &str, day: &str, file: &str) -> Option<PathBuf> {
    if !crate::config::is_name(stream) || !paths::is_day_dir_name(day) {
        return None;
    }
    let (file_stream, _) = paths::parse_file_name(file)?;
    if file_stream != stream {
        return None;
    }
    let mut path = root.to_path_buf();
    for part in [stream, day, file] {
        path.push(part);
        if std::fs::symlink_metadata(&path)
            .ok()?
            .file_type()
            .is_symlink()
        {
            return None;
        }
    }
    let real = path.canonicalize().ok()?;
    let real_root = root.canonicalize().ok()?;
    (real.starts_with(&real_root) && real.is_file()).then_some(real)
}

/// A single `bytes=` range of a `len`-byte body. `Ok(None)`: serve it all
/// (no Range, or one this server ignores, as RFC 9110 allows);
/// `Err(())`: unsatisfiable (416).
pub(crate) fn parse_range(value: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (start, end) = match (parse(a), parse(b)) {
        (Some(s), Some(e)) if s <= e => (s, e.min(len.saturating_sub(1))),
        (Some(s), None) if b.is_empty() => (s, len.saturating_sub(1)),
        (None, Some(n)) if a.is_empty() => {
            if n == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len.saturating_sub(1))
        }
        _ => return Ok(None),
    };
    if start >= len {
        return Err(());
    }
    Ok(Some((start, end)))
}

async fn serve_file(
    State(recorders): State<Arc<Recorders>>,
    UrlPath((stream, day, file)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let root = recorders.root().clone();
    let resolved = tokio::task::spawn_blocking(move || resolve(&root, &stream, &day, &file)).await;
    let Ok(Some(path)) = resolved else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let opened = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .await;
    let Ok(mut f) = opened else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(len) = f.metadata().await.map(|m| m.len()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match parse_range(range, len) {
        Ok(None) => (StatusCode::OK, 0, len.saturating_sub(1)),
        Ok(Some((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
        Err(()) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response()
        }
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    if f.seek(SeekFrom::Start(start)).await.is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let body = futures_util::stream::unfold(f.take(count), |mut r| async move {
        let mut buf = vec![0u8; 64 << 10];
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), r))
            }
            Err(e) => Some((Err(e), r)),
        }
    });
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "video/mp4")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, count);
    if status == StatusCode::PARTIAL_CONTENT {
        resp = resp.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
    }
    resp.body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=50-500"), 100), Ok(Some((50, 99))));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=-0"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=9-1"), 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(parse_range(Some("items=0-1"), 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=+1-2"), 100), Ok(None));
    }

    #[test]
    fn only_our_names_under_the_root_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("recordings");
        let day = root.join("cam/2026-01-01");
        std::fs::create_dir_all(&day).unwrap();
        let name = "cam_20260101T000000.000Z.mp4";
        std::fs::write(day.join(name), b"x").unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        assert!(resolve(&root, "cam", "2026-01-01", name).is_some());
        let link = "cam_20260101T000001.000Z.mp4";
        std::os::unix::fs::symlink(dir.path().join("secret"), day.join(link)).unwrap();
        assert!(resolve(&root, "cam", "2026-01-01", link).is_none());
        std::os::unix::fs::symlink(&day, root.join("cam/2026-01-02")).unwrap();
        assert!(resolve(&root, "cam", "2026-01-02", name).is_none());
        for (s, d, f) in [
            ("..", "2026-01-01", name),
            ("cam", "..", name),
            ("cam", "2026-01-01", "../../secret"),
            ("cam", "2026-01-01", "/etc/passwd"),
            ("other", "2026-01-01", name),
        ] {
            assert!(resolve(&root, s, d, f).is_none(), "{s}/{d}/{f}");
        }
    }
}
