//! Optional access control for the whole HTTP server (API, HLS, metrics,
//! UI): `[http.auth]` Basic users and bearer tokens; either lets a request
//! through. Everything else gets 401 with both challenges.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use tokio::sync::watch;

use crate::config::{HttpAuthConfig, HttpConfig};

/// Reads `[http.auth]` from the live settings on every request: a change
/// applies to the next request, without a restart.
pub async fn require(
    State(config): State<watch::Receiver<HttpConfig>>,
    request: Request,
    next: Next,
) -> Response {
    let pass = match &config.borrow().auth {
        None => true,
        Some(auth) => allowed(auth, request.headers()),
    };
    if pass {
        return next.run(request).await;
    }
    let mut res = (StatusCode::UNAUTHORIZED, "authentication required").into_response();
    let headers = res.headers_mut();
    for challenge in [
        "Basic realm=\"streamswitch\", charset=\"UTF-8\"",
        "Bearer realm=\"streamswitch\"",
    ] {
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    res
}

/// True when the Authorization header names a configured user or token.
pub fn allowed(auth: &HttpAuthConfig, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, credentials)) = value.trim().split_once(' ') else {
        return false;
    };
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return auth
            .tokens
            .iter()
            .any(|t| constant_time_eq(t.as_bytes(), credentials.as_bytes()));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    let (name, password) = (&decoded[..colon], &decoded[colon + 1..]);
    auth.users.iter().any(|u| {
        // Both compared, whatever the first gives, so timing says nothing.
        let name_ok = constant_time_eq(u.name.as_bytes(), name);
        let password_ok = constant_time_eq(u.password.as_bytes(), password);
        name_ok & password_ok
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::User;

    fn auth() -> HttpAuthConfig {
        HttpAuthConfig {
            users: vec![User {
                name: "admin".into(),
                password: "s3cret:x".into(),
            }],
            tokens: vec!["tok-123".into()],
        }
    }

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn basic_and_bearer() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let a = auth();
        assert!(allowed(
            &a,
            &with(&format!("Basic {}", b64("admin:s3cret:x")))
        ));
        assert!(allowed(
            &a,
            &with(&format!("basic {}", b64("admin:s3cret:x")))
        ));
        assert!(allowed(&a, &with("Bearer tok-123")));
        assert!(!allowed(
            &a,
            &with(&format!("Basic {}", b64("admin:s3cret")))
        ));
        assert!(!allowed(&a, &with(&format!("Basic {}", b64("admin")))));
        assert!(!allowed(&a, &with("Basic !!!")));
        assert!(!allowed(&a, &with("Bearer tok-1234")));
        assert!(!allowed(&a, &with("Digest x")));
        assert!(!allowed(&a, &HeaderMap::new()));
    }
}
