//! RTSP 1.0 requests as a hand-written client sends them: the status codes
//! for unknown streams, bad requests and full servers, and the session
//! life cycle (keepalive, PAUSE, PLAY again, TEARDOWN).

use std::time::{Duration, Instant};

use streamswitch_tests::rtsp_client::RawRtsp;
use streamswitch_tests::{test_stream, Agent};

fn agent() -> Agent {
    let agent = Agent::start(&test_stream("cam", 320, 240, 15));
    agent.wait_ready(1);
    agent
}

/// Interleaved RTP (even channels) arriving within `wait`.
fn rtp_packets_within(rtsp: &mut RawRtsp, wait: Duration) -> usize {
    rtsp.set_read_timeout(Duration::from_millis(200)).unwrap();
    let deadline = Instant::now() + wait;
    let mut n = 0;
    while Instant::now() < deadline {
        match rtsp.read_interleaved() {
            Ok(Some((channel, _))) if channel % 2 == 0 => n += 1,
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {} // read timeout
        }
    }
    n
}

#[test]
fn unknown_streams_bad_requests_and_unknown_sessions_get_errors() {
    let agent = agent();
    let mut rtsp = RawRtsp::connect(agent.rtsp_port).unwrap();

    let missing = rtsp
        .request("DESCRIBE", &agent.rtsp_url("nope"), &[])
        .unwrap();
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("CSeq"), Some("1"));

    let unknown_session = rtsp
        .request("PLAY", &agent.rtsp_url("cam"), &[("Session", "12345678")])
        .unwrap();
    assert_eq!(unknown_session.status, 454, "PLAY with an unknown session");

    let record = rtsp.request("RECORD", &agent.rtsp_url("cam"), &[]).unwrap();
    assert!(
        [405, 455, 501].contains(&record.status),
        "RECORD got {}",
        record.status
    );

    let options = rtsp.request("OPTIONS", "*", &[]).unwrap();
    assert_eq!(options.status, 200);
    let public = options.header("Public").expect("Public header");
    for method in [
        "DESCRIBE",
        "SETUP",
        "PLAY",
        "PAUSE",
        "TEARDOWN",
        "GET_PARAMETER",
    ] {
        assert!(public.contains(method), "Public: {public}");
    }

    let mut garbage = RawRtsp::connect(agent.rtsp_port).unwrap();
    // Closing the connection is a fair answer too.
    if let Ok(r) = garbage.send_raw(b"HELLO there\r\n\r\n") {
        assert_eq!(r.status, 400);
    }
    // The server is still there for everyone else.
    let mut again = RawRtsp::connect(agent.rtsp_port).unwrap();
    let sdp = again
        .request(
            "DESCRIBE",
            &agent.rtsp_url("cam"),
            &[("Accept", "application/sdp")],
        )
        .unwrap();
    assert_eq!(sdp.status, 200);
    assert_eq!(sdp.header("Content-Type"), Some("application/sdp"));
    let body = String::from_utf8_lossy(&sdp.body);
    assert!(
        body.contains("a=rtpmap:96 H264/90000") || body.contains(" H264/90000"),
        "{body}"
    );
    assert!(body.contains("mpeg4-generic/48000"), "{body}");
}

#[test]
fn setup_with_an_unsupported_transport_gets_461() {
    let agent = agent();
    let mut rtsp = RawRtsp::connect(agent.rtsp_port).unwrap();
    let url = agent.rtsp_url("cam");
    let describe = rtsp.request("DESCRIBE", &url, &[]).unwrap();
    let base = describe.header("Content-Base").unwrap_or(&url).to_owned();
    let sdp = String::from_utf8_lossy(&describe.body).into_owned();
    let control = streamswitch_tests::rtsp_client::track_controls(&base, &sdp)
        .into_iter()
        .next()
        .expect("a track");
    let setup = rtsp
        .request(
            "SETUP",
            &control,
            &[("Transport", "RTP/SAVP;unicast;client_port=5000-5001")],
        )
        .unwrap();
    assert_eq!(setup.status, 461);
}

#[test]
fn sessions_beyond_max_sessions_get_453_until_one_ends() {
    let agent = Agent::start_with_rtsp(
        tempfile::tempdir().unwrap(),
        "max_sessions = 1",
        &test_stream("cam", 320, 240, 15),
    );
    agent.wait_ready(1);
    let url = agent.rtsp_url("cam");

    let mut first = RawRtsp::connect(agent.rtsp_port).unwrap();
    let (_, session) = first.setup_interleaved(&url).unwrap();

    let mut second = RawRtsp::connect(agent.rtsp_port).unwrap();
    let err = second.setup_interleaved(&url).unwrap_err().to_string();
    assert!(err.contains("453"), "second session: {err}");

    let teardown = first
        .request("TEARDOWN", &url, &[("Session", &session)])
        .unwrap();
    assert_eq!(teardown.status, 200);
    let mut third = RawRtsp::connect(agent.rtsp_port).unwrap();
    third
        .setup_interleaved(&url)
        .expect("a session once the first one ended");
}

#[test]
fn keepalive_pause_play_and_teardown() {
    let agent = agent();
    let url = agent.rtsp_url("cam");
    let mut rtsp = RawRtsp::connect(agent.rtsp_port).unwrap();
    let (_, session) = rtsp.setup_interleaved(&url).unwrap();
    let session = session.as_str();

    let play = rtsp.request("PLAY", &url, &[("Session", session)]).unwrap();
    assert_eq!(play.status, 200);
    let rtp_info = play
        .header("RTP-Info")
        .expect("RTP-Info in the PLAY response");
    assert!(rtp_info.contains("rtptime="), "{rtp_info}");
    assert!(rtp_info.contains("seq="), "{rtp_info}");
    assert!(rtp_packets_within(&mut rtsp, Duration::from_secs(1)) > 0);

    let keepalive = rtsp
        .request("GET_PARAMETER", &url, &[("Session", session)])
        .unwrap();
    assert_eq!(keepalive.status, 200);

    let pause = rtsp
        .request("PAUSE", &url, &[("Session", session)])
        .unwrap();
    assert_eq!(pause.status, 200);
    // Packets already queued came before the PAUSE response; none after.
    assert_eq!(
        rtp_packets_within(&mut rtsp, Duration::from_secs(1)),
        0,
        "RTP kept coming after PAUSE"
    );

    rtsp.set_read_timeout(Duration::from_secs(10)).unwrap();
    let resume = rtsp.request("PLAY", &url, &[("Session", session)]).unwrap();
    assert_eq!(resume.status, 200);
    assert!(
        rtp_packets_within(&mut rtsp, Duration::from_secs(2)) > 0,
        "no RTP after PLAY resumed the session"
    );

    rtsp.set_read_timeout(Duration::from_secs(10)).unwrap();
    let teardown = rtsp
        .request("TEARDOWN", &url, &[("Session", session)])
        .unwrap();
    assert_eq!(teardown.status, 200);
    assert_eq!(
        rtp_packets_within(&mut rtsp, Duration::from_secs(1)),
        0,
        "RTP kept coming after TEARDOWN"
    );
}
