//! Authentication as an RTSP client (the push uplink): reads a 401's
//! challenges and answers them, Digest (RFC 2617, with or without
//! qop=auth) preferred to Basic. Pure.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::auth::DigestResponse;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Digest {
        realm: String,
        nonce: String,
        opaque: Option<String>,
        /// The server offers qop=auth.
        qop_auth: bool,
    },
}

/// The challenges of WWW-Authenticate header values (several may share one
/// value, comma-joined).
pub fn challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for value in values {
        // Split before each scheme name that starts a challenge.
        let mut starts: Vec<usize> = Vec::new();
        for scheme in ["Basic", "Digest"] {
            let mut from = 0;
            while let Some(i) = value[from..].find(scheme) {
                let at = from + i;
                let before = value[..at].trim_end();
                if before.is_empty() || before.ends_with(',') {
                    starts.push(at);
                }
                from = at + scheme.len();
            }
        }
        starts.sort_unstable();
        for (n, &at) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(value.len());
            let text = value[at..end].trim().trim_end_matches(',');
            if text.starts_with("Basic") {
                out.push(Challenge::Basic);
            } else if let Some(params) = text.strip_prefix("Digest") {
                let param = |name: &str| param(params, name);
                if let (Some(realm), Some(nonce)) = (param("realm"), param("nonce")) {
                    out.push(Challenge::Digest {
                        realm,
                        nonce,
                        opaque: param("opaque"),
                        qop_auth: param("qop")
                            .is_some_and(|q| q.split(',').any(|v| v.trim() == "auth")),
                    });
                }
            }
        }
    }
    out
}

/// The value of `name=value` or `name="value"` in a parameter list.
fn param(params: &str, name: &str) -> Option<String> {
    let mut rest = params;
    loop {
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        if rest.is_empty() {
            return None;
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        rest = rest[eq + 1..].trim_start();
        let value = if let Some(q) = rest.strip_prefix('"') {
            let end = q.find('"')?;
            rest = &q[end + 1..];
            q[..end].to_owned()
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let v = rest[..end].trim().to_owned();
            rest = &rest[end..];
            v
        };
        if key.eq_ignore_ascii_case(name) {
            return Some(value);
        }
    }
}

/// Credentials and the challenge they answer.
pub struct ClientAuth {
    username: String,
    password: String,
    challenge: Challenge,
    nc: u32,
}

impl ClientAuth {
    /// Picks Digest when offered, else Basic; `None` when neither is.
    pub fn new(username: &str, password: &str, offered: &[Challenge]) -> Option<Self> {
        let challenge = offered
            .iter()
            .find(|c| matches!(c, Challenge::Digest { .. }))
            .or_else(|| offered.iter().find(|c| **c == Challenge::Basic))?
            .clone();
        Some(Self {
            username: username.to_owned(),
            password: password.to_owned(),
            challenge,
            nc: 0,
        })
    }

    /// The Authorization header value for `method` on `uri`.
    pub fn header(&mut self, method: &str, uri: &str) -> String {
        match &self.challenge {
            Challenge::Basic => format!(
                "Basic {}",
                BASE64.encode(format!("{}:{}", self.username, self.password))
            ),
            Challenge::Digest {
                realm,
                nonce,
                opaque,
                qop_auth,
            } => {
                self.nc += 1;
                let nc = format!("{:08x}", self.nc);
                let cnonce = format!("{:016x}", rand::random::<u64>());
                let d = DigestResponse {
                    username: &self.username,
                    realm,
                    nonce,
                    uri,
                    response: "",
                    qop: qop_auth.then_some("auth"),
                    nc: &nc,
                    cnonce: &cnonce,
                };
                let response = d.expected(method, &self.password);
                let mut h = format!(
                    "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\"",
                    self.username
                );
                if *qop_auth {
                    h.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
                }
                if let Some(o) = opaque {
                    h.push_str(&format!(", opaque=\"{o}\""));
                }
                h
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_challenges_are_split_and_digest_is_preferred() {
        let c = challenges([
            r#"Basic realm="x", Digest realm="StreamSwitch", nonce="abc", qop="auth,auth-int""#,
        ]);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0], Challenge::Basic);
        let mut auth = ClientAuth::new("u", "p", &c).unwrap();
        let h = auth.header("ANNOUNCE", "rtsp://h/s");
        assert!(
            h.starts_with("Digest username=\"u\", realm=\"StreamSwitch\", nonce=\"abc\""),
            "{h}"
        );
        assert!(h.contains("qop=auth, nc=00000001"), "{h}");
        let h2 = auth.header("SETUP", "rtsp://h/s/trackID=0");
        assert!(h2.contains("nc=00000002"));
    }

    #[test]
    fn the_digest_answer_is_what_a_server_expects() {
        let c = challenges([r#"Digest realm="r", nonce="n""#]);
        let mut auth = ClientAuth::new("user", "pass", &c).unwrap();
        let h = auth.header("RECORD", "rtsp://h/s");
        let parsed = DigestResponse::parse(h.strip_prefix("Digest ").unwrap()).unwrap();
        assert_eq!(parsed.expected("RECORD", "pass"), parsed.response);
        let basic = ClientAuth::new("a", "b", &[Challenge::Basic])
            .unwrap()
            .header("X", "u");
        assert_eq!(basic, "Basic YTpi");
        assert!(ClientAuth::new("a", "b", &[]).is_none());
    }
}
