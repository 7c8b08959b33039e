//! The RTSP Authorization header (Basic and Digest) on arbitrary text:
//! never panic, and nothing made up is ever let through; a parsed Digest
//! response is made of pieces of the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use streamswitch::config::{RtspAuthConfig, RtspAuthMethod, User};
use streamswitch::rtsp::auth::{Authenticator, DigestResponse, Verdict};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(d) = DigestResponse::parse(text) {
        for part in [
            d.username, d.realm, d.nonce, d.uri, d.response, d.nc, d.cnonce,
        ] {
            assert!(text.contains(part));
        }
        let _ = d.expected("DESCRIBE", "secret");
    }
    let auth = Authenticator::new(RtspAuthConfig {
        realm: "cams".into(),
        methods: vec![RtspAuthMethod::Digest, RtspAuthMethod::Basic],
        users: vec![User {
            name: "admin".into(),
            password: "secret".into(),
        }],
    });
    // Without a nonce this process made and the password, nothing passes
    // (the fuzzer would have to guess "YWRtaW46c2VjcmV0" for Basic).
    let verdict = auth.verify("DESCRIBE", "rtsp://h/cam", Some(text));
    if verdict == Verdict::Allowed {
        assert!(text.contains("YWRtaW46c2VjcmV0"), "{text:?}");
    }
    assert_ne!(verdict, Verdict::Stale);
});
