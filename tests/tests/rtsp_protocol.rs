//! The RTSP server over raw TCP: request/response content, every error
//! status a bad request gets, and that the connection (or a new one) still
//! plays afterwards with RTP flowing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use streamswitch_tests::rtsp_client::UdpSession;
use streamswitch_tests::{run_with_timeout, test_stream, Agent};

/// A parsed RTSP response.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A raw RTSP connection that skips interleaved frames while waiting for
/// responses and counts the RTP packets it saw.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    cseq: u32,
    url: String,
    rtp_packets: usize,
}

impl Client {
    fn connect(agent: &Agent, stream: &str) -> Client {
        let s = TcpStream::connect(("127.0.0.1", agent.rtsp_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client {
            stream: s,
            buf: Vec::new(),
            cseq: 0,
            url: agent.rtsp_url(stream),
            rtp_packets: 0,
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends `method url` with the given extra header lines.
    fn request(&mut self, method: &str, url: &str, extra: &[&str]) -> Reply {
        self.cseq += 1;
        let mut req = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        for h in extra {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        self.send_raw(req.as_bytes());
        let reply = self.read_reply();
        assert_eq!(
            reply.header("CSeq"),
            Some(self.cseq.to_string().as_str()),
            "{method}"
        );
        reply
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk).expect("read");
        assert!(n > 0, "connection closed");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// Skips interleaved frames at the front of the buffer; true when one
    /// was skipped.
    fn skip_frame(&mut self) -> bool {
        if self.buf.len() >= 4 && self.buf[0] == b'$' {
            let len = 4 + u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize;
            if self.buf.len() >= len {
                if self.buf[1] % 2 == 0 {
                    assert_eq!(self.buf[4] >> 6, 2, "RTP version 2");
                    self.rtp_packets += 1;
                }
                self.buf.drain(..len);
                return true;
            }
        }
        false
    }

    fn read_reply(&mut self) -> Reply {
        loop {
            while self.skip_frame() {}
            if self.buf.first() == Some(&b'$') || self.buf.is_empty() {
                self.fill();
                continue;
            }
            let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                self.fill();
                continue;
            };
            let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap();
            assert!(status_line.starts_with("RTSP/1.0 "), "{status_line}");
            let status = status_line[9..12].parse().unwrap();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map_or(0, |(_, v)| v.parse().unwrap());
            while self.buf.len() < end + 4 + len {
                self.fill();
            }
            let body = String::from_utf8_lossy(&self.buf[end + 4..end + 4 + len]).into_owned();
            self.buf.drain(..end + 4 + len);
            return Reply {
                status,
                headers,
                body,
            };
        }
    }

    /// Reads until `n` RTP packets arrived over interleaved channels.
    fn expect_rtp(&mut self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let start = self.rtp_packets;
        while self.rtp_packets - start < n {
            assert!(Instant::now() < deadline, "no RTP");
            if !self.skip_frame() {
                self.fill();
            }
        }
    }

    /// DESCRIBE, SETUP of every track over TCP, PLAY; returns the session.
    fn play_tcp(&mut self) -> String {
        let url = self.url.clone();
        let d = self.request("DESCRIBE", &url, &["Accept: application/sdp"]);
        assert_eq!(d.status, 200, "{}", d.body);
        let base = d.header("Content-Base").unwrap().to_owned();
        let tracks = d.body.matches("m=").count();
        let mut session = String::new();
        for i in 0..tracks {
            let transport = format!(
                "Transport: RTP/AVP/TCP;unicast;interleaved={}-{}",
                2 * i,
                2 * i + 1
            );
            let session_header = format!("Session: {session}");
            let mut extra = vec![transport.as_str()];
            if i > 0 {
                extra.push(&session_header);
            }
            let s = self.request("SETUP", &format!("{base}trackID={i}"), &extra);
            assert_eq!(s.status, 200);
            session = s
                .header("Session")
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
        }
        let p = self.request("PLAY", &base, &[&format!("Session: {session}")]);
        assert_eq!(p.status, 200);
        let rtp_info = p.header("RTP-Info").unwrap();
        assert_eq!(rtp_info.matches("seq=").count(), tracks, "{rtp_info}");
        self.expect_rtp(10);
        session
    }
}

fn agent() -> Agent {
    let agent = Agent::start(&test_stream("cam", 320, 240, 15));
    agent.wait_ready(1);
    agent
}

#[test]
fn options_and_describe_announce_the_stream() {
    let agent = agent();
    let mut c = Client::connect(&agent, "cam");
    let url = c.url.clone();
    let o = c.request("OPTIONS", &url, &[]);
    assert_eq!(o.status, 200);
    for m in [
        "DESCRIBE",
        "SETUP",
        "PLAY",
        "PAUSE",
        "TEARDOWN",
        "GET_PARAMETER",
    ] {
        assert!(o.header("Public").unwrap().contains(m), "{m}");
    }
    let d = c.request("DESCRIBE", &url, &["Accept: application/sdp"]);
    assert_eq!(d.status, 200);
    assert_eq!(d.header("Content-Type"), Some("application/sdp"));
    assert_eq!(d.header("Content-Base"), Some(format!("{url}/").as_str()));
    let sdp = &d.body;
    assert!(sdp.starts_with("v=0\r\n"), "{sdp}");
    assert!(sdp.contains("m=video 0 RTP/AVP 96"), "{sdp}");
    assert!(sdp.contains("a=rtpmap:96 H264/90000"), "{sdp}");
    assert!(sdp.contains("packetization-mode=1"), "{sdp}");
    assert!(sdp.contains("profile-level-id="), "{sdp}");
    let sprop = sdp
        .split("sprop-parameter-sets=")
        .nth(1)
        .and_then(|s| s.split("\r\n").next())
        .unwrap();
    assert_eq!(sprop.split(',').count(), 2, "{sprop}");
    assert!(sprop.starts_with('Z'), "SPS is NAL type 7: {sprop}");
    assert!(sdp.contains("a=rtpmap:97 mpeg4-generic/48000/1"), "{sdp}");
    assert!(sdp.contains("mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config="));
    assert!(sdp.contains("a=control:trackID=0") && sdp.contains("a=control:trackID=1"));
}

#[test]
fn bad_requests_get_their_status_and_the_connection_still_plays() {
    let agent = agent();
    let mut c = Client::connect(&agent, "cam");
    let url = c.url.clone();

    let nf = c.request("DESCRIBE", &agent.rtsp_url("nosuch"), &[]);
    assert_eq!(nf.status, 404);

    c.send_raw(b"THIS IS NOT RTSP\r\nCSeq: 77\r\n\r\n");
    let bad = c.read_reply();
    assert_eq!(bad.status, 400);
    assert_eq!(bad.header("CSeq"), Some("77"));

    assert_eq!(c.request("FROBNICATE", &url, &[]).status, 501);
    let announce = c.request("ANNOUNCE", &url, &[]);
    assert_eq!(announce.status, 405);
    assert!(announce.header("Allow").unwrap().contains("PLAY"));

    let t = c.request(
        "SETUP",
        &format!("{url}/trackID=0"),
        &["Transport: RTP/AVP;multicast;port=5000-5001"],
    );
    assert_eq!(t.status, 461);
    let t = c.request("SETUP", &format!("{url}/trackID=0"), &[]);
    assert_eq!(t.status, 461);

    let s = c.request("PLAY", &url, &["Session: DEADBEEF"]);
    assert_eq!(s.status, 454);
    let s = c.request("PLAY", &url, &[]);
    assert_eq!(s.status, 454);
    let s = c.request(
        "SETUP",
        &format!("{url}/trackID=0"),
        &[
            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1",
            "Session: 1234",
        ],
    );
    assert_eq!(s.status, 454);

    let session = c.play_tcp();
    // Keepalives and a pause/resume on the playing session.
    let g = c.request("GET_PARAMETER", &url, &[&format!("Session: {session}")]);
    assert_eq!(g.status, 200);
    assert_eq!(
        c.request("PAUSE", &url, &[&format!("Session: {session}")])
            .status,
        200
    );
    let p = c.request("PLAY", &url, &[&format!("Session: {session}")]);
    assert_eq!(p.status, 200);
    c.expect_rtp(5);
    let t = c.request("TEARDOWN", &url, &[&format!("Session: {session}")]);
    assert_eq!(t.status, 200);
    let gone = c.request("GET_PARAMETER", &url, &[&format!("Session: {session}")]);
    assert_eq!(gone.status, 454);
}

#[test]
fn an_oversized_request_gets_413_and_a_new_connection_plays() {
    let agent = agent();
    let mut c = Client::connect(&agent, "cam");
    let url = c.url.clone();
    let mut big = format!("SET_PARAMETER {url} RTSP/1.0\r\nCSeq: 9\r\n").into_bytes();
    big.extend(std::iter::repeat_n(b'x', 70 * 1024));
    c.send_raw(&big);
    let r = c.read_reply();
    assert_eq!(r.status, 413);

    let mut c = Client::connect(&agent, "cam");
    let body = "x".repeat(100_000);
    let req = format!(
        "SET_PARAMETER {url} RTSP/1.0\r\nCSeq: 5\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.send_raw(req.as_bytes());
    let r = c.read_reply();
    assert_eq!(r.status, 413);
    assert_eq!(r.header("CSeq"), Some("5"));

    let mut c = Client::connect(&agent, "cam");
    c.play_tcp();
}

#[test]
fn sessions_beyond_max_sessions_get_453() {
    let mut agent = agent();
    let config = std::fs::read_to_string(&agent.config_path).unwrap();
    std::fs::write(
        &agent.config_path,
        config.replacen("[rtsp]\n", "[rtsp]\nmax_sessions = 2\n", 1),
    )
    .unwrap();
    agent.restart();
    agent.wait_ready(2);
    let mut a = Client::connect(&agent, "cam");
    let mut b = Client::connect(&agent, "cam");
    a.play_tcp();
    b.play_tcp();
    let mut c = Client::connect(&agent, "cam");
    let url = c.url.clone();
    let r = c.request(
        "SETUP",
        &format!("{url}/trackID=0"),
        &["Transport: RTP/AVP/TCP;unicast;interleaved=0-1"],
    );
    assert_eq!(r.status, 453);
    // Closing one session's connection frees its place.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = Client::connect(&agent, "cam");
        let r = c.request(
            "SETUP",
            &format!("{url}/trackID=0"),
            &["Transport: RTP/AVP/TCP;unicast;interleaved=0-1"],
        );
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "place not freed: {}", r.status);
        std::thread::sleep(Duration::from_millis(100));
    }
    b.expect_rtp(5);
}

#[test]
fn udp_setup_answers_server_ports_and_sends_rtp() {
    let agent = agent();
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = rtp.local_addr().unwrap().port();
    rtp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut c = Client::connect(&agent, "cam");
    let url = c.url.clone();
    let s = c.request(
        "SETUP",
        &format!("{url}/trackID=0"),
        &[&format!(
            "Transport: RTP/AVP;unicast;client_port={port}-{}",
            port + 1
        )],
    );
    assert_eq!(s.status, 200);
    let transport = s.header("Transport").unwrap();
    assert!(transport.contains("server_port="), "{transport}");
    assert!(transport.contains("ssrc="), "{transport}");
    let session = s.header("Session").unwrap();
    assert!(session.ends_with(";timeout=60"), "{session}");
    let session = session.split(';').next().unwrap();
    let p = c.request("PLAY", &url, &[&format!("Session: {session}")]);
    assert_eq!(p.status, 200);
    let mut buf = [0u8; 2048];
    let (n, _) = rtp.recv_from(&mut buf).unwrap();
    assert!(n > 12 && n <= 1400);
    assert_eq!(buf[0] >> 6, 2);
    assert_eq!(buf[1] & 0x7f, 96);
}

#[test]
fn max_packet_size_bounds_every_udp_packet_and_the_stream_still_decodes() {
    const MAX: usize = 500;
    let agent = Agent::start_with_rtsp(
        tempfile::tempdir().unwrap(),
        &format!("max_packet_size = {MAX}"),
        "[[stream]]\nname = \"cam\"\nsource = { kind = \"test\", width = 640, height = 360, fps = 25, bitrate_kbps = 1500, audio = true }\n",
    );
    agent.wait_ready(1);
    let url = agent.rtsp_url("cam");
    let session = UdpSession::play(agent.rtsp_port, &url);
    let (mut largest, mut near_max, mut fu_a) = (0, 0, 0);
    let n = session.receive(Duration::from_secs(3), true, |p| {
        largest = largest.max(p.len());
        if p.len() + 100 > MAX {
            near_max += 1;
        }
        // FU-A (RFC 6184 5.8) on the video payload type.
        if p.len() > 12 && p[1] & 0x7f == 96 && p[12] & 0x1f == 28 {
            fu_a += 1;
        }
    });
    println!("{n} RTP packets, largest {largest} bytes, {near_max} within 100 bytes of {MAX}, {fu_a} FU-A");
    assert!(n > 100, "only {n} RTP packets in 3 s");
    assert!(
        largest <= MAX,
        "a {largest}-byte RTP packet, max_packet_size {MAX}"
    );
    // Keyframes at 1.5 Mbit/s do not fit 500 bytes: they were fragmented
    // right up to the limit.
    assert!(
        fu_a > 0 && near_max > 0,
        "no packet near the limit: {largest}"
    );
    drop(session);

    // The fragments put back together decode: ffmpeg over UDP, cleanly.
    let (ok, _, err) = run_with_timeout(
        std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-xerror",
                "-rtsp_transport",
                "udp",
                "-i",
                &url,
            ])
            .args(["-t", "3", "-f", "null", "-"]),
        Duration::from_secs(40),
    );
    assert!(
        ok && err.is_empty(),
        "ffmpeg over UDP with {MAX}-byte packets: {err}"
    );
}
