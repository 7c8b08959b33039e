//! `[rtsp] session_timeout_seconds`: clients that keep their session alive
//! (retina over UDP, ffmpeg over TCP send keepalives at half the timeout
//! the server announces) play on past it; a UDP session whose client went
//! silent is closed and its packets stop.

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use streamswitch_tests::rtsp_client::{receive, track_controls, transport, RawRtsp};
use streamswitch_tests::{test_stream, Agent};

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
    let out = Command::new("ffmpeg")
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
        .args(["-progress", "pipe:1"])
        .stdin(Stdio::null())
        .output()
        .expect("ffmpeg");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let url = agent.rtsp_url("cam");
    let mut rtsp = RawRtsp::connect(agent.rtsp_port).unwrap();
    let describe = rtsp.request("DESCRIBE", &url, &[]).unwrap();
    let base = describe.header("Content-Base").unwrap_or(&url).to_owned();
    let sdp = String::from_utf8_lossy(&describe.body).into_owned();
    let mut sockets = Vec::new();
    let mut session: Option<String> = None;
    for control in track_controls(&base, &sdp) {
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rtcp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let transport = format!(
            "RTP/AVP;unicast;client_port={}-{}",
            rtp.local_addr().unwrap().port(),
            rtcp.local_addr().unwrap().port()
        );
        let mut headers = vec![("Transport", transport.as_str())];
        if let Some(s) = &session {
            headers.push(("Session", s));
        }
        let setup = rtsp.request("SETUP", &control, &headers).unwrap();
        assert_eq!(setup.status, 200);
        let id = setup.header("Session").unwrap();
        session = Some(id.split(';').next().unwrap().to_owned());
        rtp.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        sockets.push(rtp);
    }
    let session = session.unwrap();
    let play = rtsp
        .request("PLAY", &url, &[("Session", &session)])
        .unwrap();
    assert_eq!(play.status, 200);

    // Counts the RTP datagrams arriving during `window`, keeping the
    // sockets drained.
    let count = |window: Duration| {
        let deadline = Instant::now() + window;
        let mut n = 0;
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            for s in &sockets {
                while s.recv(&mut buf).is_ok() {
                    n += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        n
    };
    assert!(count(Duration::from_secs(1)) > 0, "no RTP at first");
    count(Duration::from_secs(TIMEOUT_S + 1)); // the session ends in here
    assert_eq!(
        count(Duration::from_secs(1)),
        0,
        "RTP still flows {} s after the client went silent",
        TIMEOUT_S + 2
    );
}
