//! A hostile or broken RTSP client must not exhaust the agent: repeated
//! SETUPs hold no descriptors, a failed SETUP leaves no session, an idle
//! connection is closed soon, one address cannot take every place, and
//! PAUSE in the middle of a write leaves the interleaved stream whole.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use streamswitch_tests::http::get;
use streamswitch_tests::rtsp_client::{track_controls, RawRtsp};
use streamswitch_tests::{test_stream, Agent};

fn open_fds(agent: &Agent) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", agent.pid()))
        .expect("/proc/<pid>/fd")
        .count()
}

/// The first track's control URL and the SDP of `url`.
fn first_control(rtsp: &mut RawRtsp, url: &str) -> String {
    let describe = rtsp
        .request("DESCRIBE", url, &[("Accept", "application/sdp")])
        .unwrap();
    assert_eq!(describe.status, 200);
    let base = describe.header("Content-Base").unwrap_or(url).to_owned();
    let sdp = String::from_utf8_lossy(&describe.body).into_owned();
    track_controls(&base, &sdp).remove(0)
}

fn session_of(r: &streamswitch_tests::http::Response) -> String {
    let s = r.header("Session").expect("Session");
    s.split(';').next().unwrap().trim().to_owned()
}

#[test]
fn a_setup_flood_on_one_session_holds_no_descriptors() {
    let agent = Agent::start(&test_stream("cam", 320, 240, 10));
    agent.wait_ready(1);
    let url = agent.rtsp_url("cam");
    let mut rtsp = RawRtsp::connect(agent.rtsp_port).unwrap();
    let control = first_control(&mut rtsp, &url);
    let udp = "RTP/AVP;unicast;client_port=40000-40001";
    let first = rtsp
        .request("SETUP", &control, &[("Transport", udp)])
        .unwrap();
    assert_eq!(first.status, 200);
    let session = session_of(&first);
    let before = open_fds(&agent);

    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..1500 {
        let r = rtsp
            .request(
                "SETUP",
                &control,
                &[("Transport", udp), ("Session", &session)],
            )
            .unwrap();
        *statuses.entry(r.status).or_insert(0) += 1;
    }
    let after = open_fds(&agent);
    eprintln!("fds: {before} before, {after} after 1500 SETUPs; statuses {statuses:?}");
    assert!(
        after <= before + 4,
        "the flood holds {} more descriptors",
        after - before
    );
    // The session is capped, then refused with 455, and the refusals show.
    assert_eq!(statuses.get(&200), Some(&15), "{statuses:?}");
    assert_eq!(statuses.get(&455), Some(&1485), "{statuses:?}");
    let metrics = get(&agent.http_url("/metrics")).text();
    assert!(
        metrics.contains("streamswitch_rtsp_refused_total{reason=\"setups\"} 1485"),
        "{metrics}"
    );
    // The session still plays.
    let play = rtsp
        .request("PLAY", &url, &[("Session", &session)])
        .unwrap();
    assert_eq!(play.status, 200);
}

#[test]
fn a_failed_setup_leaves_no_session_behind() {
    let agent = Agent::start_with_rtsp(
        tempfile::tempdir().unwrap(),
        "max_sessions = 2",
        &test_stream("cam", 320, 240, 10),
    );
    agent.wait_ready(1);
    let url = agent.rtsp_url("cam");
    let mut rtsp = RawRtsp::connect(agent.rtsp_port).unwrap();
    let control = first_control(&mut rtsp, &url);
    let tcp = |a: u8| format!("RTP/AVP/TCP;unicast;interleaved={}-{}", a, a + 1);
    let ok = rtsp
        .request("SETUP", &control, &[("Transport", &tcp(0))])
        .unwrap();
    assert_eq!(ok.status, 200);
    // New sessions asking for channels already in use fail (461)...
    for _ in 0..5 {
        let r = rtsp
            .request("SETUP", &control, &[("Transport", &tcp(0))])
            .unwrap();
        assert_eq!(r.status, 461);
    }
    // ...and none of them took the second of the two places.
    let second = rtsp
        .request("SETUP", &control, &[("Transport", &tcp(4))])
        .unwrap();
    assert_eq!(second.status, 200, "a failed SETUP kept a session place");
}

#[test]
fn a_connection_that_sends_no_request_is_closed_soon() {
    let agent = Agent::start_with_rtsp(
        tempfile::tempdir().unwrap(),
        "first_request_timeout_seconds = 2",
        &test_stream("cam", 320, 240, 10),
    );
    agent.wait_ready(1);
    let mut idle = TcpStream::connect(("127.0.0.1", agent.rtsp_port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = idle.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the agent sent something to an idle connection");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(6),
        "closed after {waited:?}"
    );
    let metrics = get(&agent.http_url("/metrics")).text();
    assert!(
        metrics.contains("streamswitch_rtsp_refused_total{reason=\"first_request_timeout\"} 1"),
        "{metrics}"
    );
    // A connection that does send a request goes on past that time.
    let mut rtsp = RawRtsp::connect(agent.rtsp_port).unwrap();
    assert_eq!(rtsp.request("OPTIONS", "*", &[]).unwrap().status, 200);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(rtsp.request("OPTIONS", "*", &[]).unwrap().status, 200);
}

#[test]
fn one_address_cannot_take_every_connection_or_session() {
    let agent = Agent::start_with_rtsp(
        tempfile::tempdir().unwrap(),
        "max_connections_per_client = 3\nmax_sessions_per_client = 2",
        &test_stream("cam", 320, 240, 10),
    );
    agent.wait_ready(1);
    let url = agent.rtsp_url("cam");
    // The fixture's own probe of the port may still count for a moment
    // on a loaded machine: a refused one is tried again until it is gone.
    let mut held: Vec<RawRtsp> = (0..3)
        .map(|_| {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let mut c = RawRtsp::connect(agent.rtsp_port).unwrap();
                if matches!(c.request("OPTIONS", "*", &[]), Ok(r) if r.status == 200) {
                    break c;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the first connections were refused"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .collect();
    // The fourth connection from this address is closed at once.
    let mut fourth = TcpStream::connect(("127.0.0.1", agent.rtsp_port)).unwrap();
    fourth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(fourth.read(&mut buf).unwrap_or(0), 0);

    // Two sessions, then 453.
    let control = first_control(&mut held[0], &url);
    let udp = "RTP/AVP;unicast;client_port=40000-40001";
    for expected in [200, 200, 453] {
        let r = held[0]
            .request("SETUP", &control, &[("Transport", udp)])
            .unwrap();
        assert_eq!(r.status, expected);
    }
    let metrics = get(&agent.http_url("/metrics")).text();
    for reason in ["client_connections", "client_sessions"] {
        assert!(
            metrics.contains(&format!(
                "streamswitch_rtsp_refused_total{{reason=\"{reason}\"}} 1"
            )),
            "{reason}: {metrics}"
        );
    }
    // Closing a connection gives its place back.
    drop(held.pop());
    std::thread::sleep(Duration::from_millis(300));
    let mut again = RawRtsp::connect(agent.rtsp_port).unwrap();
    assert_eq!(again.request("OPTIONS", "*", &[]).unwrap().status, 200);
}

#[test]
fn pause_in_the_middle_of_a_write_leaves_the_interleaved_stream_whole() {
    let agent = Agent::start(
        "[[stream]]\nname = \"cam\"\nsource = { kind = \"test\", width = 640, height = 360, fps = 25, bitrate_kbps = 2000, audio = true }\n",
    );
    agent.wait_ready(1);
    let url = agent.rtsp_url("cam");
    // A small receive window: the agent's writes block within seconds.
    let mut rtsp = RawRtsp::connect_with_rcvbuf(agent.rtsp_port, Some(4096)).unwrap();
    let (_, session) = rtsp.setup_interleaved(&url).unwrap();
    let play = rtsp
        .request("PLAY", &url, &[("Session", &session)])
        .unwrap();
    assert_eq!(play.status, 200);
    // Read nothing until the player is stuck inside a write.
    std::thread::sleep(Duration::from_secs(3));
    rtsp.set_recv_buffer(4 << 20).unwrap();
    // `request` reads every `$` frame strictly by its length up to the
    // reply: a frame cut short puts the reply out of step and fails here.
    let pause = rtsp
        .request("PAUSE", &url, &[("Session", &session)])
        .expect("the PAUSE reply after whole frames");
    assert_eq!(pause.status, 200);
    assert_eq!(pause.header("CSeq"), Some("5"));
    // Paused: nothing more comes.
    rtsp.set_read_timeout(Duration::from_millis(1500)).unwrap();
    match rtsp.read_interleaved() {
        Err(e) => assert!(
            e.downcast_ref::<std::io::Error>().is_some_and(|e| matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )),
            "{e:#}"
        ),
        Ok(frame) => panic!("data after PAUSE: {:?}", frame.map(|(c, p)| (c, p.len()))),
    }
    rtsp.set_read_timeout(Duration::from_secs(10)).unwrap();
    // It plays again, and TEARDOWN while playing answers whole too.
    let play = rtsp
        .request("PLAY", &url, &[("Session", &session)])
        .unwrap();
    assert_eq!(play.status, 200);
    std::thread::sleep(Duration::from_secs(1));
    let teardown = rtsp
        .request("TEARDOWN", &url, &[("Session", &session)])
        .expect("the TEARDOWN reply after whole frames");
    assert_eq!(teardown.status, 200);
}

#[test]
fn a_required_option_gets_551_with_it_named() {
    let agent = Agent::start(&test_stream("cam", 320, 240, 10));
    agent.wait_ready(1);
    let mut rtsp = RawRtsp::connect(agent.rtsp_port).unwrap();
    let url = agent.rtsp_url("cam");
    for method in ["OPTIONS", "DESCRIBE"] {
        let r = rtsp
            .request(method, &url, &[("Require", "implicit-play")])
            .unwrap();
        assert_eq!(r.status, 551, "{method}");
        assert_eq!(r.header("Unsupported"), Some("implicit-play"));
    }
    // Without it, the same connection goes on.
    assert_eq!(rtsp.request("OPTIONS", &url, &[]).unwrap().status, 200);
}
