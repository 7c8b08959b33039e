//! RTSP authentication from `[rtsp.auth]`: the challenge a client without
//! credentials gets, refusal of a wrong password, and playback with the
//! right one, for Digest and for Basic.

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use streamswitch_tests::rtsp_client::{credentials, receive, transport, RawRtsp};
use streamswitch_tests::{run_with_timeout, test_stream, Agent};

fn agent_with_auth(methods: &str) -> Agent {
    let agent = Agent::start(&format!(
        "{}\n[rtsp.auth]\nrealm = \"edge\"\nmethods = [{methods}]\nusers = [{{ name = \"u\", password = \"p\" }}]\n",
        test_stream("cam", 320, 240, 15)
    ));
    agent.wait_ready(1);
    agent
}

/// Plays two seconds with retina and `user:password`; the retina error as
/// a string when it fails.
fn retina_plays(agent: &Agent, user: &str, password: &str) -> Result<usize, String> {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(receive(
            &agent.rtsp_url("cam"),
            transport("tcp"),
            Some(credentials(user, password)),
            Duration::from_secs(2),
        ))
        .map(|got| got.video_timestamps.len())
        .map_err(|e| e.to_string())
}

fn describe(agent: &Agent, authorization: Option<&str>) -> streamswitch_tests::http::Response {
    let mut rtsp = RawRtsp::connect(agent.rtsp_port).unwrap();
    let mut headers = vec![("Accept", "application/sdp")];
    if let Some(a) = authorization {
        headers.push(("Authorization", a));
    }
    rtsp.request("DESCRIBE", &agent.rtsp_url("cam"), &headers)
        .unwrap()
}

#[test]
fn digest_challenges_refuses_a_wrong_password_and_plays_the_right_one() {
    let agent = agent_with_auth("\"digest\"");

    let anonymous = describe(&agent, None);
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous.body.is_empty() || !String::from_utf8_lossy(&anonymous.body).contains("m=video")
    );
    let challenge = anonymous
        .header("WWW-Authenticate")
        .expect("a challenge with the 401");
    assert!(challenge.starts_with("Digest "), "{challenge}");
    assert!(challenge.contains("realm=\"edge\""), "{challenge}");
    assert!(challenge.contains("nonce=\""), "{challenge}");
    assert!(
        anonymous
            .all("WWW-Authenticate")
            .iter()
            .all(|c| !c.starts_with("Basic")),
        "Basic offered though only digest is configured"
    );

    // Basic is not accepted when only Digest is configured.
    let basic = base64::engine::general_purpose::STANDARD.encode("u:p");
    assert_eq!(
        describe(&agent, Some(&format!("Basic {basic}"))).status,
        401
    );

    let wrong = retina_plays(&agent, "u", "wrong").expect_err("played with a wrong password");
    assert!(wrong.contains("401"), "{wrong}");
    let unknown = retina_plays(&agent, "nobody", "p").expect_err("played as an unknown user");
    assert!(unknown.contains("401"), "{unknown}");

    let frames = retina_plays(&agent, "u", "p").expect("plays with the right password");
    assert!(frames > 0, "no video with the right password");
}

#[test]
fn basic_challenges_refuses_a_wrong_password_and_plays_the_right_one() {
    let agent = agent_with_auth("\"basic\"");

    let anonymous = describe(&agent, None);
    assert_eq!(anonymous.status, 401);
    let challenge = anonymous
        .header("WWW-Authenticate")
        .expect("a challenge with the 401");
    assert!(challenge.starts_with("Basic "), "{challenge}");
    assert!(challenge.contains("realm=\"edge\""), "{challenge}");

    let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let wrong = describe(&agent, Some(&format!("Basic {}", encode("u:wrong"))));
    assert_eq!(wrong.status, 401);
    let garbage = describe(&agent, Some("Basic %%%not-base64"));
    assert_eq!(garbage.status, 401);

    let right = describe(&agent, Some(&format!("Basic {}", encode("u:p"))));
    assert_eq!(right.status, 200);
    assert!(String::from_utf8_lossy(&right.body).contains("m=video"));

    let frames = retina_plays(&agent, "u", "p").expect("retina plays with Basic");
    assert!(frames > 0, "no video with the right password");
}

#[test]
fn both_methods_are_offered_when_configured() {
    let agent = agent_with_auth("\"digest\", \"basic\"");
    let anonymous = describe(&agent, None);
    assert_eq!(anonymous.status, 401);
    // One header per challenge or both in one header, as HTTP allows.
    let challenges = anonymous.all("WWW-Authenticate").join(", ");
    assert!(
        challenges.starts_with("Digest ") || challenges.contains(", Digest "),
        "{challenges}"
    );
    assert!(
        challenges.starts_with("Basic ") || challenges.contains(", Basic "),
        "{challenges}"
    );
    assert!(retina_plays(&agent, "u", "p").expect("plays") > 0);

    // ffmpeg picks its own way through the challenges.
    let url = agent.rtsp_url("cam").replace("rtsp://", "rtsp://u:p@");
    let (ok, out, err) = run_with_timeout(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
            &url,
        ]),
        Duration::from_secs(30),
    );
    assert!(ok, "ffprobe with credentials failed: {err}");
    assert!(out.contains("h264"), "{out}");
}

#[test]
fn setup_play_and_teardown_without_describe_or_credentials_get_401_and_no_rtp() {
    let agent = agent_with_auth("\"digest\", \"basic\"");
    let url = agent.rtsp_url("cam");
    let track = format!("{url}/trackID=0");
    // UDP: RTP would come to these sockets if a SETUP got through.
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtcp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp = format!(
        "RTP/AVP;unicast;client_port={}-{}",
        rtp.local_addr().unwrap().port(),
        rtcp.local_addr().unwrap().port()
    );
    let mut rtsp = RawRtsp::connect(agent.rtsp_port).unwrap();
    type Request<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);
    let requests: [Request; 6] = [
        ("SETUP", &track, vec![("Transport", udp.as_str())]),
        (
            "SETUP",
            &track,
            vec![("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
        ),
        ("PLAY", &url, vec![("Session", "12345678")]),
        ("PLAY", &url, vec![]),
        ("TEARDOWN", &url, vec![("Session", "12345678")]),
        ("TEARDOWN", &url, vec![]),
    ];
    for (method, target, headers) in &requests {
        let res = rtsp.request(method, target, headers).unwrap();
        assert_eq!(res.status, 401, "{method} {target} {headers:?}");
        assert!(
            res.header("WWW-Authenticate").is_some(),
            "{method}: a 401 without a challenge"
        );
        assert!(res.header("Session").is_none(), "{method} got a session");
    }
    // Wrong credentials on SETUP are refused the same way.
    let basic = base64::engine::general_purpose::STANDARD.encode("u:wrong");
    let res = rtsp
        .request(
            "SETUP",
            &track,
            &[
                ("Transport", udp.as_str()),
                ("Authorization", &format!("Basic {basic}")),
            ],
        )
        .unwrap();
    assert_eq!(res.status, 401);
    // Nothing flows: no datagram, no interleaved data on the connection.
    rtp.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 2048];
    assert!(rtp.recv(&mut buf).is_err(), "RTP arrived over UDP");
    rtsp.set_read_timeout(Duration::from_millis(500)).unwrap();
    if let Ok(Some((channel, _))) = rtsp.read_interleaved() {
        panic!("interleaved data on channel {channel}");
    }
    let metric = agent.metric("streamswitch_stream_viewers{stream=\"cam\",protocol=\"rtsp\"}");
    assert_eq!(
        metric, 0.0,
        "an unauthenticated session is counted as playing"
    );
}
