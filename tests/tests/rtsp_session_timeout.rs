//! `[rtsp] session_timeout_seconds`: clients that keep their session alive
//! (retina over UDP, ffmpeg over TCP send keepalives at half the timeout
//! the server announces; a raw client sending only RTCP receiver reports)
//! play on past it; a UDP session whose client went silent is closed and
//! its packets stop; a silent TCP-interleaved session is closed at the
//! timeout.

use std::process::Command;
use std::time::{Duration, Instant};

use streamswitch_tests::rtsp_client::{receive, transport, UdpSession};
use streamswitch_tests::watch::RtpWatch;
use streamswitch_tests::{run_with_timeout, test_stream, Agent};

const TIMEOUT_S: u64 = 5;
const FPS: u32 = 15;

fn agent() -> Agent {
    let agent = Agent::start_with_rtsp(
        tempfile::tempdir().unwrap(),
        &format!("session_timeout_seconds = {TIMEOUT_S}"),
        &test_stream("cam", 320, 240, FPS),
    );
    agent.wait_ready(1);
    agent
}

#[test]
fn retina_over_udp_plays_past_the_session_timeout() {
    let agent = agent();
    let seconds = 2 * TIMEOUT_S;
    let got = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(receive(
            &agent.rtsp_url("cam"),
            transport("udp"),
            None,
            Duration::from_secs(seconds),
        ))
        .expect("the session lived through its keepalives");
    let last = *got.video_arrivals.last().expect("video");
    let first = got.video_arrivals[0];
    assert!(
        last - first >= Duration::from_secs(seconds - 1),
        "video stopped after {:?}",
        last - first
    );
    let fps = got.steady_video_fps(Duration::from_secs(1));
    assert!(
        (fps - f64::from(FPS)).abs() <= 0.1 * f64::from(FPS),
        "{fps:.1} fps"
    );
}

#[test]
fn ffmpeg_over_tcp_plays_past_the_session_timeout() {
    let agent = agent();
    let seconds = 2 * TIMEOUT_S;
    let (ok, stdout, stderr) = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-rtsp_transport", "tcp"])
            .args(["-i", &agent.rtsp_url("cam")])
            .args([
                "-t",
                &seconds.to_string(),
                "-map",
                "0:v",
                "-c",
                "copy",
                "-f",
                "null",
                "-",
            ])
            .args(["-progress", "pipe:1"]),
        Duration::from_secs(seconds + 30),
    );
    assert!(ok, "ffmpeg: {stderr}");
    let frames: u64 = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("frame=")?.trim().parse().ok())
        .next_back()
        .expect("progress");
    let expected = (seconds as f64 - 0.5) * f64::from(FPS);
    assert!(
        frames as f64 >= expected,
        "{frames} frames in {seconds} s of stream"
    );
}

#[test]
fn a_silent_udp_session_is_closed_after_the_timeout() {
    let agent = agent();
    let s = UdpSession::play(agent.rtsp_port, &agent.rtsp_url("cam"));
    assert!(
        s.count(Duration::from_secs(1), false) > 0,
        "no RTP at first"
    );
    s.count(Duration::from_secs(TIMEOUT_S + 1), false); // the session ends in here
    assert_eq!(
        s.count(Duration::from_secs(1), false),
        0,
        "RTP still flows {} s after the client went silent",
        TIMEOUT_S + 2
    );
    drop(s.rtsp);
}

#[test]
fn rtcp_receiver_reports_alone_keep_a_udp_session() {
    let agent = agent();
    let s = UdpSession::play(agent.rtsp_port, &agent.rtsp_url("cam"));
    // No RTSP request after PLAY: only RTCP receiver reports, every second.
    assert!(s.count(Duration::from_secs(1), true) > 0, "no RTP at first");
    s.count(Duration::from_secs(2 * TIMEOUT_S), true);
    let late = s.count(Duration::from_secs(1), true);
    assert!(
        late > 0,
        "RTP stopped though RTCP receiver reports came every second ({} s after PLAY)",
        2 * TIMEOUT_S + 2
    );
    assert_eq!(agent.count_log("rtsp session timed out"), 0);
    // The session is still the server's: a keepalive on it is answered.
    let mut rtsp = s.rtsp;
    let alive = rtsp
        .request(
            "GET_PARAMETER",
            &agent.rtsp_url("cam"),
            &[("Session", &s.session)],
        )
        .unwrap();
    assert_eq!(alive.status, 200);
}

#[test]
fn a_silent_tcp_interleaved_session_is_closed_at_the_timeout() {
    let agent = agent();
    // Reads everything the server sends and never sends a request or RTCP.
    let played = Instant::now();
    let watch = RtpWatch::start(agent.rtsp_port, &agent.rtsp_url("cam")).unwrap();
    assert!(
        watch.wait_for(Duration::from_secs(3), |s| s.packets > 0),
        "no RTP at first"
    );
    assert!(
        watch.wait_for(Duration::from_secs(TIMEOUT_S + 5), |s| s.ended),
        "the connection is still open {:?} after PLAY",
        played.elapsed()
    );
    let ended = played.elapsed();
    assert!(
        ended >= Duration::from_secs(TIMEOUT_S) - Duration::from_millis(500),
        "closed after {ended:?}, before the {TIMEOUT_S} s timeout"
    );
    assert!(
        ended <= Duration::from_secs(TIMEOUT_S + 3),
        "closed only after {ended:?} (timeout {TIMEOUT_S} s)"
    );
    agent.wait_for_log("rtsp session timed out", Duration::from_secs(1));
}
