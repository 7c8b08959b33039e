//! The session life cycle seen on the wire by a hand-written client: RTP
//! stops right after the PAUSE and TEARDOWN responses and resumes after a
//! second PLAY; PLAY answers RTP-Info.

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
