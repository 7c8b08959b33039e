//! RTSP authentication: Basic (RFC 7617) and Digest with MD5 (RFC 2617 /
//! RFC 7616, with or without qop=auth) against the users of `[rtsp.auth]`.

use std::collections::VecDeque;
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use md5::{Digest, Md5};

use crate::config::{RtspAuthConfig, RtspAuthMethod};

/// Nonces remembered: a client may answer any recent challenge.
const NONCES_KEPT: usize = 256;

pub struct Authenticator {
    config: RtspAuthConfig,
    nonces: Mutex<VecDeque<String>>,
}

impl Authenticator {
    pub fn new(config: RtspAuthConfig) -> Self {
        Self {
            config,
            nonces: Mutex::new(VecDeque::new()),
        }
    }

    /// The WWW-Authenticate values of a 401, in the configured order, with
    /// a fresh random nonce for Digest.
    pub fn challenges(&self) -> Vec<String> {
        let realm = &self.config.realm;
        self.config
            .methods
            .iter()
            .map(|m| match m {
                RtspAuthMethod::Basic => format!("Basic realm=\"{realm}\""),
                RtspAuthMethod::Digest => {
                    let nonce = format!("{:032x}", rand::random::<u128>());
                    let mut nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
                    if nonces.len() >= NONCES_KEPT {
                        nonces.pop_front();
                    }
                    nonces.push_back(nonce.clone());
                    format!(
                        "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\""
                    )
                }
            })
            .collect()
    }

    /// True when `authorization` (the header value) proves one of the
    /// configured users for a request with this `method`.
    pub fn verify(&self, method: &str, authorization: Option<&str>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("basic") && self.allows(RtspAuthMethod::Basic) {
            return self.verify_basic(rest.trim());
        }
        if scheme.eq_ignore_ascii_case("digest") && self.allows(RtspAuthMethod::Digest) {
            let Some(d) = DigestResponse::parse(rest) else {
                return false;
            };
            if d.realm != self.config.realm || !self.knows_nonce(d.nonce) {
                return false;
            }
            return self
                .config
                .users
                .iter()
                .filter(|u| u.name == d.username)
                .any(|u| {
                    let expected = d.expected(method, &u.password);
                    same(
                        expected.as_bytes(),
                        d.response.to_ascii_lowercase().as_bytes(),
                    )
                });
        }
        false
    }

    fn allows(&self, m: RtspAuthMethod) -> bool {
        self.config.methods.contains(&m)
    }

    fn knows_nonce(&self, nonce: &str) -> bool {
        let nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        nonces.iter().any(|n| same(n.as_bytes(), nonce.as_bytes()))
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

    #[test]
    fn digest_without_qop_against_an_issued_nonce() {
        let auth = authenticator(vec![RtspAuthMethod::Digest]);
        let challenges = auth.challenges();
        assert_eq!(challenges.len(), 1);
        let nonce = challenges[0].split("nonce=\"").nth(1).unwrap();
        let nonce = &nonce[..nonce.find('"').unwrap()];
        let d = DigestResponse {
            username: "admin",
            realm: "cams",
            nonce,
            uri: "rtsp://h/cam",
            ..Default::default()
        };
        let response = d.expected("DESCRIBE", "secret");
        let header = format!(
            "Digest username=\"admin\", realm=\"cams\", nonce=\"{nonce}\", uri=\"rtsp://h/cam\", response=\"{response}\""
        );
        assert!(auth.verify("DESCRIBE", Some(&header)));
        assert!(!auth.verify("PLAY", Some(&header)));
        let forged = header.replace(nonce, "00000000000000000000000000000000");
        assert!(!auth.verify("DESCRIBE", Some(&forged)));
        assert!(!auth.verify("DESCRIBE", None));
        // Basic is not offered, so it is not accepted either.
        let basic = format!("Basic {}", BASE64.encode("admin:secret"));
        assert!(!auth.verify("DESCRIBE", Some(&basic)));
    }

    #[test]
    fn basic_checks_name_and_password() {
        let auth = authenticator(vec![RtspAuthMethod::Basic, RtspAuthMethod::Digest]);
        assert_eq!(auth.challenges()[0], "Basic realm=\"cams\"");
        let ok = format!("Basic {}", BASE64.encode("admin:secret"));
        assert!(auth.verify("DESCRIBE", Some(&ok)));
        for bad in ["admin:secrex", "admin", "root:secret", ""] {
            let h = format!("Basic {}", BASE64.encode(bad));
            assert!(!auth.verify("DESCRIBE", Some(&h)), "{bad}");
        }
        assert!(!auth.verify("DESCRIBE", Some("Basic !!!")));
    }
}
