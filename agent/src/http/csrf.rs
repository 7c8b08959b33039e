//! Cross-site request refusal. With HTTP auth off (the default) and the
//! listener on 0.0.0.0, any web page a LAN user opens could otherwise send
//! state-changing requests to the agent (a form POST needs no preflight).
//! Requests other than GET/HEAD/OPTIONS are refused with 403 when the
//! browser says they come from another site (`Sec-Fetch-Site`) or another
//! origin (`Origin` neither this agent nor `http.cors_origin`), and with
//! 415 unless their body is typed JSON or TOML: a type a form cannot send,
//! so a cross-origin script must ask (preflight) and is only let through
//! for `http.cors_origin`. Clients that are not browsers send neither
//! header and only need the content type.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use crate::config::HttpConfig;

pub async fn refuse_cross_site(
    State(config): State<watch::Receiver<HttpConfig>>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let cors_origin = config.borrow().cors_origin.clone();
    if let Err((status, why)) = check(request.headers(), cors_origin.as_deref()) {
        tracing::debug!("{} {} refused: {why}", request.method(), request.uri());
        return (status, why).into_response();
    }
    next.run(request).await
}

/// Whether a state-changing request with `headers` may go on.
fn check(headers: &HeaderMap, cors_origin: Option<&str>) -> Result<(), (StatusCode, &'static str)> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let origin = text(header::ORIGIN);
    let allowed_origin = origin.is_some_and(|o| cors_origin.is_some_and(|c| c == o));
    let host = text(header::HOST);
    if !allowed_origin {
        if let Some(site) = text(http_sec_fetch_site()) {
            if !matches!(site, "same-origin" | "none") {
                return Err((StatusCode::FORBIDDEN, "cross-site request refused\n"));
            }
        }
        if let Some(origin) = origin {
            if !same_origin(origin, host) {
                return Err((StatusCode::FORBIDDEN, "cross-origin request refused\n"));
            }
        }
    }
    let media_type = text(header::CONTENT_TYPE)
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase());
    let typed = media_type.as_deref().is_some_and(|t| {
        t == "application/json"
            || t == "application/toml"
            || (t.starts_with("application/") && t.ends_with("+json"))
    });
    if !typed {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a request that changes state needs Content-Type: application/json\n",
        ));
    }
    Ok(())
}

fn http_sec_fetch_site() -> header::HeaderName {
    header::HeaderName::from_static("sec-fetch-site")
}

/// `origin` (`scheme://host[:port]`) is the agent the request was sent to
/// (`Host`).
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn foreign_origins_and_untyped_bodies_are_refused() {
        let json = ("content-type", "application/json");
        let host = ("host", "cam.local:8080");
        let ok = |h: &[(&'static str, &'static str)]| check(&headers(h), None).is_ok();
        let status =
            |h: &[(&'static str, &'static str)], cors| check(&headers(h), cors).unwrap_err().0;
        // The web UI, and curl.
        assert!(ok(&[
            json,
            host,
            ("origin", "http://cam.local:8080"),
            ("sec-fetch-site", "same-origin")
        ]));
        assert!(ok(&[json, host]));
        assert!(ok(&[
            ("content-type", "application/merge-patch+json"),
            host
        ]));
        assert!(ok(&[
            ("content-type", "application/toml; charset=utf-8"),
            host
        ]));
        // Another site's page.
        assert_eq!(
            status(&[json, host, ("origin", "http://evil.example")], None),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(&[json, host, ("sec-fetch-site", "cross-site")], None),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(&[json, host, ("origin", "null")], None),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(&[json, host, ("origin", "http://cam.local:9999")], None),
            StatusCode::FORBIDDEN
        );
        // A form post, or no type at all.
        assert_eq!(
            status(
                &[("content-type", "application/x-www-form-urlencoded"), host],
                None
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(status(&[host], None), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        // The configured CORS origin may.
        assert!(check(
            &headers(&[
                json,
                host,
                ("origin", "http://ui.example"),
                ("sec-fetch-site", "cross-site")
            ]),
            Some("http://ui.example")
        )
        .is_ok());
    }
}
