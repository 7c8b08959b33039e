//! RTSP authentication: Basic (RFC 7617) and Digest with MD5 (RFC 2617 /
//! RFC 7616, with or without qop=auth) against the users of `[rtsp.auth]`.
//!
//! Digest nonces are stateless and expire: a nonce is the time it was made
//! (seconds on this process's monotonic clock) and an HMAC of that time
//! with a secret drawn at start, so no client can flush a store of them
//! and none outlives the process or [`NONCE_LIFETIME`]. A right answer to
//! an expired nonce gets a new challenge with `stale=true` (the client
//! retries without asking the user). The digest `uri` must be the request's
//! (a header captured for one stream does not open another), and with qop
//! the nonce count must grow (a captured header cannot be replayed). An
//! unknown user and a wrong password get the same answer after the same
//! work.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use md5::{Digest, Md5};
use sha2::Sha256;

use crate::config::{RtspAuthConfig, RtspAuthMethod};

/// How long a Digest nonce is good for.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// Nonce counts remembered (only for nonces that authenticated a request,
/// so only a user can fill it); expired ones go first.
const COUNTS_KEPT: usize = 4096;

/// What a request's credentials are worth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// The right answer to a nonce that expired: challenge again with
    /// `stale=true`.
    Stale,
    Denied,
}

pub struct Authenticator {
    config: RtspAuthConfig,
    secret: [u8; 32],
    origin: Instant,
    /// Highest nonce count seen per nonce (qop=auth), with the nonce's time.
    counts: Mutex<HashMap<String, (u64, u32)>>,
}

impl Authenticator {
    pub fn new(config: RtspAuthConfig) -> Self {
        Self {
            config,
            secret: rand::random(),
            origin: Instant::now(),
            counts: Mutex::default(),
        }
    }

    fn now_secs(&self) -> u64 {
        self.origin.elapsed().as_secs()
    }

    /// A nonce made at `time` (seconds since `origin`).
    fn nonce_at(&self, time: u64) -> String {
        let mac = hmac_sha256(
            &self.secret,
            &[&time.to_be_bytes(), self.config.realm.as_bytes()],
        );
        let mac: String = mac[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{time:016x}{mac}")
    }

    /// The time a nonce was made, if this process made it.
    fn nonce_time(&self, nonce: &str) -> Option<u64> {
        let time = u64::from_str_radix(nonce.get(..16)?, 16).ok()?;
        same(self.nonce_at(time).as_bytes(), nonce.as_bytes()).then_some(time)
    }

    /// The WWW-Authenticate values of a 401, in the configured order, with
    /// a fresh nonce for Digest (`stale` after an expired one).
    pub fn challenges(&self, stale: bool) -> Vec<String> {
        let realm = &self.config.realm;
        self.config
            .methods
            .iter()
            .map(|m| match m {
                RtspAuthMethod::Basic => format!("Basic realm=\"{realm}\""),
                RtspAuthMethod::Digest => {
                    let nonce = self.nonce_at(self.now_secs());
                    let stale = if stale { ", stale=true" } else { "" };
                    format!(
                        "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"{stale}"
                    )
                }
            })
            .collect()
    }

    /// What `authorization` (the header value) proves for a request with
    /// this `method` on `uri` (the request line's URI, as sent).
    pub fn verify(&self, method: &str, uri: &str, authorization: Option<&str>) -> Verdict {
        self.verify_at(method, uri, authorization, self.now_secs())
    }

    fn verify_at(&self, method: &str, uri: &str, authorization: Option<&str>, now: u64) -> Verdict {
        let Some(value) = authorization else {
            return Verdict::Denied;
        };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("basic") && self.allows(RtspAuthMethod::Basic) {
            return if self.verify_basic(rest.trim()) {
                Verdict::Allowed
            } else {
                Verdict::Denied
            };
        }
        if !(scheme.eq_ignore_ascii_case("digest") && self.allows(RtspAuthMethod::Digest)) {
            return Verdict::Denied;
        }
        let Some(d) = DigestResponse::parse(rest) else {
            return Verdict::Denied;
        };
        let Some(made) = self.nonce_time(d.nonce) else {
            return Verdict::Denied;
        };
        if d.realm != self.config.realm || !same_uri(d.uri, uri) {
            return Verdict::Denied;
        }
        // Every user is tried, whatever the name, so that an unknown user
        // costs what a wrong password does.
        let given = d.response.to_ascii_lowercase();
        let right = self.config.users.iter().fold(false, |ok, u| {
            let expected = d.expected(method, &u.password);
            ok | (same(u.name.as_bytes(), d.username.as_bytes())
                & same(expected.as_bytes(), given.as_bytes()))
        });
        if !right {
            return Verdict::Denied;
        }
        if now.saturating_sub(made) >= NONCE_LIFETIME.as_secs() {
            return Verdict::Stale;
        }
        if d.qop.is_some() && !self.count_grows(d.nonce, made, d.nc, now) {
            return Verdict::Denied;
        }
        Verdict::Allowed
    }

    /// Records nonce count `nc` (hex) for `nonce`; false unless it is above
    /// every count seen with that nonce (a replay).
    fn count_grows(&self, nonce: &str, made: u64, nc: &str, now: u64) -> bool {
        let Ok(nc) = u32::from_str_radix(nc, 16) else {
            return false;
        };
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= COUNTS_KEPT && !counts.contains_key(nonce) {
            let lifetime = NONCE_LIFETIME.as_secs();
            counts.retain(|_, (t, _)| now.saturating_sub(*t) < lifetime);
            if counts.len() >= COUNTS_KEPT {
                // Still full of live nonces: forget the oldest.
                if let Some(oldest) = counts
                    .iter()
                    .min_by_key(|(_, (t, _))| *t)
                    .map(|(k, _)| k.clone())
                {
                    counts.remove(&oldest);
                }
            }
        }
        let last = counts.entry(nonce.to_owned()).or_insert((made, 0));
        if nc <= last.1 {
            return false;
        }
        last.1 = nc;
        true
    }

    fn allows(&self, m: RtspAuthMethod) -> bool {
        self.config.methods.contains(&m)
    }

    fn verify_basic(&self, token: &str) -> bool {
        let Ok(decoded) = BASE64.decode(token) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|b| *b == b':') else {
            return false;
        };
        let (name, password) = (&decoded[..colon], &decoded[colon + 1..]);
        // Every user is compared, so the time taken does not tell which matched.
        self.config.users.iter().fold(false, |ok, u| {
            let hit = same(u.name.as_bytes(), name) & same(u.password.as_bytes(), password);
            ok | hit
        })
    }
}

/// The digest's `uri` names the request's URI: the same absolute URL
/// (compared parsed, so `rtsp://h:554` and `rtsp://h:554/` agree), or its
/// path as HTTP clients send it.
fn same_uri(digest_uri: &str, request_uri: &str) -> bool {
    if digest_uri == request_uri {
        return true;
    }
    let Ok(request) = url::Url::parse(request_uri) else {
        return false;
    };
    if digest_uri.starts_with('/') {
        let mut path = request.path().to_owned();
        if let Some(q) = request.query() {
            path.push('?');
            path.push_str(q);
        }
        return digest_uri == path;
    }
    url::Url::parse(digest_uri).is_ok_and(|d| d == request)
}

/// HMAC-SHA256 (RFC 2104) of the concatenated `parts` under `key`.
fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    for p in parts {
        inner.update(p);
    }
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The parameters of a `Digest` Authorization header.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DigestResponse<'a> {
    pub username: &'a str,
    pub realm: &'a str,
    pub nonce: &'a str,
    pub uri: &'a str,
    pub response: &'a str,
    pub qop: Option<&'a str>,
    pub nc: &'a str,
    pub cnonce: &'a str,
}

impl<'a> DigestResponse<'a> {
    /// Parses `name=value, name="quoted value", ...` (after "Digest ").
    pub fn parse(params: &'a str) -> Option<Self> {
        let mut d = DigestResponse::default();
        let mut rest = params.trim_start();
        while !rest.is_empty() {
            let eq = rest.find('=')?;
            let name = rest[..eq].trim();
            rest = rest[eq + 1..].trim_start();
            let value;
            if let Some(quoted) = rest.strip_prefix('"') {
                let end = quoted.find('"')?;
                value = &quoted[..end];
                rest = &quoted[end + 1..];
            } else {
                let end = rest.find(',').unwrap_or(rest.len());
                value = rest[..end].trim();
                rest = &rest[end..];
            }
            rest = rest.trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
            match name.to_ascii_lowercase().as_str() {
                "username" => d.username = value,
                "realm" => d.realm = value,
                "nonce" => d.nonce = value,
                "uri" => d.uri = value,
                "response" => d.response = value,
                "qop" => d.qop = Some(value),
                "nc" => d.nc = value,
                "cnonce" => d.cnonce = value,
                _ => {}
            }
        }
        (!d.username.is_empty() && !d.nonce.is_empty() && !d.response.is_empty()).then_some(d)
    }

    /// The response a client knowing `password` computes (lowercase hex).
    pub fn expected(&self, method: &str, password: &str) -> String {
        let ha1 = md5_hex(&[self.username, self.realm, password]);
        let ha2 = md5_hex(&[method, self.uri]);
        match self.qop {
            Some(qop) => md5_hex(&[&ha1, self.nonce, self.nc, self.cnonce, qop, &ha2]),
            None => md5_hex(&[&ha1, self.nonce, &ha2]),
        }
    }
}

/// MD5 of the parts joined by `:`, in lowercase hex.
fn md5_hex(parts: &[&str]) -> String {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::User;

    const HMAC_0B32_HI_THERE: &str =
        "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7";

    /// The example of RFC 2617 section 3.5.
    const RFC2617: &str = r#"username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;

    fn authenticator(methods: Vec<RtspAuthMethod>) -> Authenticator {
        Authenticator::new(RtspAuthConfig {
            realm: "cams".into(),
            methods,
            users: vec![User {
                name: "admin".into(),
                password: "secret".into(),
            }],
        })
    }

    #[test]
    fn rfc2617_example_digest_is_verified() {
        let d = DigestResponse::parse(RFC2617).unwrap();
        assert_eq!(d.username, "Mufasa");
        assert_eq!(d.qop, Some("auth"));
        assert_eq!(d.expected("GET", "Circle Of Life"), d.response);
        assert_ne!(d.expected("GET", "circle of life"), d.response);
    }

    fn nonce_of(challenge: &str) -> String {
        let nonce = challenge.split("nonce=\"").nth(1).unwrap();
        nonce[..nonce.find('"').unwrap()].to_owned()
    }

    /// A Digest header for `method` on `uri` answering `nonce`.
    fn digest(
        nonce: &str,
        method: &str,
        uri: &str,
        qop_nc: Option<&str>,
        user: (&str, &str),
    ) -> String {
        let d = DigestResponse {
            username: user.0,
            realm: "cams",
            nonce,
            uri,
            qop: qop_nc.map(|_| "auth"),
            nc: qop_nc.unwrap_or(""),
            cnonce: if qop_nc.is_some() { "c0ffee" } else { "" },
            ..Default::default()
        };
        let response = d.expected(method, user.1);
        match qop_nc {
            Some(nc) => format!(
                "Digest username=\"{}\", realm=\"cams\", nonce=\"{nonce}\", uri=\"{uri}\", qop=auth, nc={nc}, cnonce=\"c0ffee\", response=\"{response}\"",
                user.0
            ),
            None => format!(
                "Digest username=\"{}\", realm=\"cams\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\"",
                user.0
            ),
        }
    }

    #[test]
    fn digest_without_qop_against_an_issued_nonce() {
        let auth = authenticator(vec![RtspAuthMethod::Digest]);
        let challenges = auth.challenges(false);
        assert_eq!(challenges.len(), 1);
        assert!(!challenges[0].contains("stale"));
        let nonce = nonce_of(&challenges[0]);
        let uri = "rtsp://h/cam";
        let header = digest(&nonce, "DESCRIBE", uri, None, ("admin", "secret"));
        assert_eq!(
            auth.verify("DESCRIBE", uri, Some(&header)),
            Verdict::Allowed
        );
        assert_eq!(auth.verify("PLAY", uri, Some(&header)), Verdict::Denied);
        let forged = header.replace(&nonce[20..], &"0".repeat(nonce.len() - 20));
        assert_eq!(auth.verify("DESCRIBE", uri, Some(&forged)), Verdict::Denied);
        assert_eq!(auth.verify("DESCRIBE", uri, None), Verdict::Denied);
        // Basic is not offered, so it is not accepted either.
        let basic = format!("Basic {}", BASE64.encode("admin:secret"));
        assert_eq!(auth.verify("DESCRIBE", uri, Some(&basic)), Verdict::Denied);
    }

    #[test]
    fn a_captured_header_opens_no_other_stream_and_expires() {
        let auth = authenticator(vec![RtspAuthMethod::Digest]);
        let nonce = nonce_of(&auth.challenges(false)[0]);
        let made = auth.nonce_time(&nonce).unwrap();
        let header = digest(
            &nonce,
            "DESCRIBE",
            "rtsp://h/cam",
            None,
            ("admin", "secret"),
        );
        // Replayed for another stream.
        assert_eq!(
            auth.verify_at("DESCRIBE", "rtsp://h/other", Some(&header), made),
            Verdict::Denied
        );
        // Another path is another resource; the path alone, as HTTP
        // clients send it, names the same one.
        assert_eq!(
            auth.verify_at(
                "DESCRIBE",
                "rtsp://h:554/cam",
                Some(&digest(
                    &nonce,
                    "DESCRIBE",
                    "rtsp://h:554/cam/",
                    None,
                    ("admin", "secret")
                )),
                made
            ),
            Verdict::Denied
        );
        assert_eq!(
            auth.verify_at(
                "DESCRIBE",
                "rtsp://h/cam",
                Some(&digest(
                    &nonce,
                    "DESCRIBE",
                    "/cam",
                    None,
                    ("admin", "secret")
                )),
                made
            ),
            Verdict::Allowed
        );
        // After the lifetime: stale, and the next challenge says so.
        let later = made + NONCE_LIFETIME.as_secs();
        assert_eq!(
            auth.verify_at("DESCRIBE", "rtsp://h/cam", Some(&header), later - 1),
            Verdict::Allowed
        );
        assert_eq!(
            auth.verify_at("DESCRIBE", "rtsp://h/cam", Some(&header), later),
            Verdict::Stale
        );
        assert!(auth.challenges(true)[0].ends_with("stale=true"));
        // A wrong password on an expired nonce is not "stale": denied.
        let wrong = digest(&nonce, "DESCRIBE", "rtsp://h/cam", None, ("admin", "nope"));
        assert_eq!(
            auth.verify_at("DESCRIBE", "rtsp://h/cam", Some(&wrong), later),
            Verdict::Denied
        );
        // Another process's (or a made-up) nonce is never good.
        let other = authenticator(vec![RtspAuthMethod::Digest]);
        assert_eq!(
            other.verify_at("DESCRIBE", "rtsp://h/cam", Some(&header), made),
            Verdict::Denied
        );
    }

    #[test]
    fn with_qop_a_nonce_count_cannot_be_replayed() {
        let auth = authenticator(vec![RtspAuthMethod::Digest]);
        let nonce = nonce_of(&auth.challenges(false)[0]);
        let uri = "rtsp://h/cam";
        let first = digest(
            &nonce,
            "DESCRIBE",
            uri,
            Some("00000001"),
            ("admin", "secret"),
        );
        assert_eq!(auth.verify("DESCRIBE", uri, Some(&first)), Verdict::Allowed);
        assert_eq!(
            auth.verify("DESCRIBE", uri, Some(&first)),
            Verdict::Denied,
            "replayed"
        );
        let second = digest(
            &nonce,
            "DESCRIBE",
            uri,
            Some("00000002"),
            ("admin", "secret"),
        );
        assert_eq!(
            auth.verify("DESCRIBE", uri, Some(&second)),
            Verdict::Allowed
        );
        assert_eq!(
            auth.verify("DESCRIBE", uri, Some(&first)),
            Verdict::Denied,
            "went back"
        );
    }

    #[test]
    fn unknown_users_and_wrong_passwords_are_denied_alike() {
        let auth = authenticator(vec![RtspAuthMethod::Digest]);
        let nonce = nonce_of(&auth.challenges(false)[0]);
        let uri = "rtsp://h/cam";
        for user in [("admin", "wrong"), ("nobody", "secret"), ("nobody", "x")] {
            let h = digest(&nonce, "DESCRIBE", uri, None, user);
            assert_eq!(
                auth.verify("DESCRIBE", uri, Some(&h)),
                Verdict::Denied,
                "{user:?}"
            );
        }
    }

    #[test]
    fn hmac_sha256_matches_an_independent_implementation() {
        // Python: hmac.new(b"\x0b" * 32, b"Hi There", hashlib.sha256).
        let key = [0x0bu8; 32];
        let mac = hmac_sha256(&key, &[b"Hi ", b"There"]);
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, HMAC_0B32_HI_THERE);
    }

    #[test]
    fn basic_checks_name_and_password() {
        let auth = authenticator(vec![RtspAuthMethod::Basic, RtspAuthMethod::Digest]);
        assert_eq!(auth.challenges(false)[0], "Basic realm=\"cams\"");
        let ok = format!("Basic {}", BASE64.encode("admin:secret"));
        assert_eq!(auth.verify("DESCRIBE", "*", Some(&ok)), Verdict::Allowed);
        for bad in ["admin:secrex", "admin", "root:secret", ""] {
            let h = format!("Basic {}", BASE64.encode(bad));
            assert_eq!(
                auth.verify("DESCRIBE", "*", Some(&h)),
                Verdict::Denied,
                "{bad}"
            );
        }
        assert_eq!(
            auth.verify("DESCRIBE", "*", Some("Basic !!!")),
            Verdict::Denied
        );
    }
}
