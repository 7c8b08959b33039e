//! The local web UI: one page, its script and style sheet, and hls.js, all
//! embedded in the binary. The board has no internet, so nothing comes
//! from a CDN, and there is no build step: the files in `agent/assets/`
//! are served as they are (see `agent/assets/VENDORED.md` for hls.js).
//!
//! Caching: the page links each asset as `/assets/<file>?v=<content hash>`,
//! so such a URL never changes content and is cached for good; the page
//! itself and unversioned asset URLs are revalidated (ETag) on every load,
//! so an upgraded agent is seen at once.

use std::sync::LazyLock;

use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX_HTML: &str = include_str!("../../assets/index.html");

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/app.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/style.css"),
    },
    Asset {
        name: "hls.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/hls.min.js"),
    },
    Asset {
        name: "hls.js-LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../assets/hls.js-LICENSE.txt"),
    },
];

const REVALIDATE: &str = "no-cache";
const FOREVER: &str = "public, max-age=31536000, immutable";

/// The routes of the UI; they need no state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{file}", get(asset))
}

/// FNV-1a, 64 bits: enough to tell two versions of a file apart.
fn content_hash(body: &[u8]) -> String {
    let hash = body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

struct Versioned {
    asset: &'static Asset,
    hash: String,
}

static VERSIONED: LazyLock<Vec<Versioned>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| Versioned {
            asset,
            hash: content_hash(asset.body),
        })
        .collect()
});

/// The page, its asset links carrying their content hash.
static PAGE: LazyLock<(String, String)> = LazyLock::new(|| {
    let page = VERSIONED.iter().fold(INDEX_HTML.to_owned(), |page, v| {
        page.replace(
            &format!("\"/assets/{}\"", v.asset.name),
            &format!("\"/assets/{}?v={}\"", v.asset.name, v.hash),
        )
    });
    let hash = content_hash(page.as_bytes());
    (page, hash)
});

async fn index(headers: HeaderMap) -> Response {
    let (page, hash) = &*PAGE;
    respond(
        &headers,
        "text/html; charset=utf-8",
        page.as_bytes(),
        hash,
        REVALIDATE,
    )
}

#[derive(Deserialize)]
struct AssetQuery {
    v: Option<String>,
}

async fn asset(
    Path(file): Path<String>,
    Query(q): Query<AssetQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(v) = VERSIONED.iter().find(|v| v.asset.name == file) else {
        return (StatusCode::NOT_FOUND, "no such asset\n").into_response();
    };
    let cache = if q.v.as_deref() == Some(v.hash.as_str()) {
        FOREVER
    } else {
        REVALIDATE
    };
    respond(&headers, v.asset.content_type, v.asset.body, &v.hash, cache)
}

fn respond(
    request: &HeaderMap,
    content_type: &'static str,
    body: &'static [u8],
    hash: &str,
    cache: &'static str,
) -> Response {
    let etag = format!("\"{hash}\"");
    let headers = [
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (
            header::ETAG,
            HeaderValue::from_str(&etag).expect("hex is a valid header value"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (
        headers,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_links_every_asset_it_uses_with_its_hash() {
        let (page, _) = &*PAGE;
        for name in ["app.js", "style.css", "hls.min.js"] {
            let v = VERSIONED.iter().find(|v| v.asset.name == name).unwrap();
            let link = format!("\"/assets/{name}?v={}\"", v.hash);
            assert!(page.contains(&link), "{link} missing from the page");
        }
    }

    #[test]
    fn content_hash_tells_versions_apart() {
        assert_eq!(content_hash(b""), "cbf29ce484222325");
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
        assert_eq!(content_hash(b"a").len(), 16);
    }

    #[test]
    fn a_matching_etag_gets_not_modified_without_a_body() {
        let mut req = HeaderMap::new();
        req.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", \"abc\""),
        );
        let r = respond(&req, "text/plain", b"body", "abc", REVALIDATE);
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers()[header::ETAG], "\"abc\"");
        assert!(r.headers().get(header::CONTENT_TYPE).is_none());

        let r = respond(&HeaderMap::new(), "text/plain", b"body", "abc", FOREVER);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/plain");
        assert_eq!(r.headers()[header::CACHE_CONTROL], FOREVER);
    }
}
