//! RTSP clients for the tests and the benchmark: retina (an independent
//! client library) for playing streams, and a raw RTSP-over-TCP client for
//! what retina will not do: show the bare 401, or stop reading its socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use retina::client::{
    Credentials, InitialTimestampPolicy, PlayOptions, Playing, Session, SessionOptions,
    SetupOptions, Transport,
};
use retina::codec::{CodecItem, ParametersRef};

use crate::http::Response;

/// TCP interleaved or UDP unicast, as retina names them.
pub fn transport(name: &str) -> Transport {
    name.parse().expect("tcp or udp")
}

pub fn credentials(username: &str, password: &str) -> Credentials {
    Credentials {
        username: username.into(),
        password: password.into(),
    }
}

/// DESCRIBE, SETUP of every track, PLAY. PLAY must carry an RTP-Info
/// `rtptime` for every track (retina's `Require` policy).
pub async fn play(
    url: &str,
    transport: Transport,
    creds: Option<Credentials>,
) -> Result<Session<Playing>> {
    let url = url::Url::parse(url)?;
    let options = SessionOptions::default()
        .creds(creds)
        .user_agent("streamswitch-tests".into());
    let mut session = Session::describe(url, options).await?;
    for i in 0..session.streams().len() {
        session
            .setup(i, SetupOptions::default().transport(transport.clone()))
            .await?;
    }
    let options = PlayOptions::default().initial_timestamp(InitialTimestampPolicy::Require);
    Ok(session.play(options).await?)
}

/// What one retina reader got over a few seconds of a stream.
#[derive(Debug, Default)]
pub struct Received {
    /// Encoding names from the SDP, such as "h264" and "mpeg4-generic".
    pub encodings: Vec<String>,
    /// Display size from the SPS, once a video frame arrived.
    pub pixel_dimensions: Option<(u32, u32)>,
    pub audio_clock_rate: Option<u32>,
    pub video_arrivals: Vec<Instant>,
    pub video_timestamps: Vec<i64>,
    pub audio_arrivals: Vec<Instant>,
    pub audio_timestamps: Vec<i64>,
    /// Normal play time of each frame (seconds since the PLAY response's
    /// RTP-Info `rtptime`), video then audio.
    pub video_npt: Vec<f64>,
    pub audio_npt: Vec<f64>,
    /// Whether each video frame was a random access point (an IDR).
    pub video_keyframes: Vec<bool>,
    pub sender_reports: usize,
}

impl Received {
    /// Video frames per second of wall time, after the first `skip` (which
    /// holds the burst of the cached GOP) from the first frame on.
    pub fn steady_video_fps(&self, skip: Duration) -> f64 {
        let Some(&first) = self.video_arrivals.first() else {
            return 0.0;
        };
        let start = first + skip;
        let in_window: Vec<&Instant> = self
            .video_arrivals
            .iter()
            .filter(|&&t| t >= start)
            .collect();
        match (in_window.first(), in_window.last()) {
            (Some(&&a), Some(&&b)) if b > a => (in_window.len() - 1) as f64 / (b - a).as_secs_f64(),
            _ => 0.0,
        }
    }

    /// How much later audio plays than video if each track's frames are
    /// shown in step with their arrival after the first `skip`: the median
    /// of (arrival - NPT) of audio minus that of video, in seconds.
    pub fn audio_lag_secs(&self, skip: Duration) -> Option<f64> {
        let start = *self.video_arrivals.first()? + skip;
        let anchor = |arrivals: &[Instant], npt: &[f64]| {
            let mut offsets: Vec<f64> = arrivals
                .iter()
                .zip(npt)
                .filter(|(t, _)| **t >= start)
                .map(|(t, n)| (*t - start).as_secs_f64() - n)
                .collect();
            offsets.sort_by(|a, b| a.total_cmp(b));
            offsets.get(offsets.len() / 2).copied()
        };
        Some(
            anchor(&self.audio_arrivals, &self.audio_npt)?
                - anchor(&self.video_arrivals, &self.video_npt)?,
        )
    }
}

/// True when every timestamp is larger than the one before it.
pub fn strictly_increasing(ts: &[i64]) -> bool {
    ts.windows(2).all(|w| w[0] < w[1])
}

/// Seconds between the first and the last timestamp at `clock_rate`.
pub fn span_secs(ts: &[i64], clock_rate: u32) -> f64 {
    match (ts.first(), ts.last()) {
        (Some(a), Some(b)) => (b - a) as f64 / f64::from(clock_rate),
        _ => 0.0,
    }
}

/// Plays `url` for `duration` and depacketizes everything retina gets.
pub async fn receive(
    url: &str,
    transport: Transport,
    creds: Option<Credentials>,
    duration: Duration,
) -> Result<Received> {
    let session = play(url, transport, creds).await?;
    let mut got = Received {
        encodings: session
            .streams()
            .iter()
            .map(|s| s.encoding_name().to_owned())
            .collect(),
        ..Received::default()
    };
    let mut demuxed = session.demuxed()?;
    let deadline = tokio::time::Instant::now() + duration;
    loop {
        let item = tokio::select! {
            item = demuxed.next() => item,
            _ = tokio::time::sleep_until(deadline) => break,
        };
        let item = item.ok_or_else(|| anyhow!("the server ended the session"))??;
        match item {
            CodecItem::VideoFrame(f) => {
                got.video_arrivals.push(Instant::now());
                got.video_timestamps.push(f.timestamp().timestamp());
                got.video_npt.push(f.timestamp().elapsed_secs());
                got.video_keyframes.push(f.is_random_access_point());
                if let Some(ParametersRef::Video(v)) = demuxed.streams()[f.stream_id()].parameters()
                {
                    got.pixel_dimensions = Some(v.pixel_dimensions());
                }
            }
            CodecItem::AudioFrame(f) => {
                got.audio_arrivals.push(Instant::now());
                got.audio_timestamps.push(f.timestamp().timestamp());
                got.audio_npt.push(f.timestamp().elapsed_secs());
                if let Some(ParametersRef::Audio(a)) = demuxed.streams()[f.stream_id()].parameters()
                {
                    got.audio_clock_rate = Some(a.clock_rate());
                }
            }
            CodecItem::Rtcp(rtcp) => {
                for pkt in rtcp.pkts() {
                    if matches!(pkt.as_sender_report(), Ok(Some(_))) {
                        got.sender_reports += 1;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(got)
}

/// A bare RTSP/1.0 client over one TCP connection, written by hand so that
/// the tests see exactly what the server sends.
pub struct RawRtsp {
    conn: BufReader<TcpStream>,
    cseq: u32,
}

impl RawRtsp {
    pub fn connect(port: u16) -> Result<RawRtsp> {
        Self::connect_with_rcvbuf(port, None)
    }

    /// Connects with the socket's receive buffer set to `rcvbuf` bytes
    /// before the handshake, so the TCP window stays that small.
    pub fn connect_with_rcvbuf(port: u16, rcvbuf: Option<usize>) -> Result<RawRtsp> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        if let Some(size) = rcvbuf {
            socket.set_recv_buffer_size(size)?;
        }
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        socket.connect(&addr.into())?;
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(RawRtsp {
            conn: BufReader::new(stream),
            cseq: 0,
        })
    }

    /// Sends one request and reads its response, skipping any interleaved
    /// `$` data that comes first.
    pub fn request(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response> {
        self.cseq += 1;
        let mut req = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str("User-Agent: streamswitch-tests-raw\r\n\r\n");
        self.send_raw(req.as_bytes())
    }

    /// Sends `bytes` as they are and reads the response.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<Response> {
        self.conn.get_mut().write_all(bytes)?;
        self.read_response()
    }

    pub fn set_read_timeout(&self, timeout: Duration) -> Result<()> {
        Ok(self.conn.get_ref().set_read_timeout(Some(timeout))?)
    }

    fn read_response(&mut self) -> Result<Response> {
        loop {
            let first = self.conn.fill_buf()?.first().copied();
            match first {
                None => bail!("connection closed before the response"),
                Some(b'$') => {
                    let mut head = [0u8; 4];
                    self.conn.read_exact(&mut head)?;
                    let len = u16::from_be_bytes([head[2], head[3]]) as usize;
                    let mut skip = vec![0u8; len];
                    self.conn.read_exact(&mut skip)?;
                }
                Some(_) => break,
            }
        }
        let mut line = String::new();
        self.conn.read_line(&mut line)?;
        let status = line
            .strip_prefix("RTSP/1.0 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.conn.read_line(&mut line)?;
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            let (name, value) = trimmed
                .split_once(':')
                .with_context(|| format!("bad header line {trimmed:?}"))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if let Some(len) = response.header("Content-Length") {
            let len: usize = len.parse().context("Content-Length")?;
            response.body = vec![0u8; len];
            self.conn.read_exact(&mut response.body)?;
        }
        Ok(response)
    }

    /// The next interleaved frame as (channel, payload); `None` at the end
    /// of the connection. Anything else than a `$` frame is an error.
    pub fn read_interleaved(&mut self) -> Result<Option<(u8, Vec<u8>)>> {
        let mut head = [0u8; 4];
        match self.conn.read_exact(&mut head[..1]) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        if head[0] != b'$' {
            bail!("expected an interleaved frame, got byte {:#04x}", head[0]);
        }
        self.conn.read_exact(&mut head[1..])?;
        let mut payload = vec![0u8; u16::from_be_bytes([head[2], head[3]]) as usize];
        self.conn.read_exact(&mut payload)?;
        Ok(Some((head[1], payload)))
    }

    /// Sets the socket's receive buffer, which opens the TCP window again
    /// after [`RawRtsp::connect_with_rcvbuf`] kept it small.
    pub fn set_recv_buffer(&self, size: usize) -> Result<()> {
        Ok(socket2::SockRef::from(self.conn.get_ref()).set_recv_buffer_size(size)?)
    }

    /// Bytes the kernel holds for this socket that nobody read yet.
    pub fn unread_bytes(&self) -> usize {
        use std::os::fd::AsRawFd;
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int to the pointer it is given.
        let r = unsafe { libc::ioctl(self.conn.get_ref().as_raw_fd(), libc::FIONREAD, &mut n) };
        if r < 0 {
            0
        } else {
            n as usize + self.conn.buffer().len()
        }
    }

    /// DESCRIBE, SETUP of every track over interleaved channels 0-1, 2-3...,
    /// and PLAY, after which the caller may simply stop reading. Returns
    /// the SDP.
    pub fn play_interleaved(&mut self, url: &str) -> Result<String> {
        let (sdp, session) = self.setup_interleaved(url)?;
        let play = self.request(
            "PLAY",
            url,
            &[("Session", &session), ("Range", "npt=0.000-")],
        )?;
        if play.status != 200 {
            bail!("PLAY got {}", play.status);
        }
        Ok(sdp)
    }

    /// DESCRIBE and SETUP of every track over interleaved channels 0-1,
    /// 2-3...; returns the SDP and the session id.
    pub fn setup_interleaved(&mut self, url: &str) -> Result<(String, String)> {
        let describe = self.request("DESCRIBE", url, &[("Accept", "application/sdp")])?;
        if describe.status != 200 {
            bail!("DESCRIBE got {}", describe.status);
        }
        let base = describe.header("Content-Base").unwrap_or(url).to_owned();
        let sdp = String::from_utf8_lossy(&describe.body).into_owned();
        let mut session: Option<String> = None;
        for (i, control) in track_controls(&base, &sdp).iter().enumerate() {
            let transport = format!("RTP/AVP/TCP;unicast;interleaved={}-{}", 2 * i, 2 * i + 1);
            let mut headers = vec![("Transport", transport.as_str())];
            if let Some(s) = &session {
                headers.push(("Session", s.as_str()));
            }
            let setup = self.request("SETUP", control, &headers)?;
            if setup.status != 200 {
                bail!("SETUP {control} got {}", setup.status);
            }
            let id = setup.header("Session").context("no Session in SETUP")?;
            session = Some(id.split(';').next().unwrap_or(id).trim().to_owned());
        }
        let session = session.context("the SDP has no track")?;
        Ok((sdp, session))
    }
}

/// The SETUP URL of each media section of `sdp`, resolved against `base`.
pub fn track_controls(base: &str, sdp: &str) -> Vec<String> {
    let mut controls = Vec::new();
    let mut in_media = false;
    for line in sdp.lines() {
        let line = line.trim_end();
        if line.starts_with("m=") {
            in_media = true;
            controls.push(base.to_owned());
        } else if let (true, Some(control)) = (in_media, line.strip_prefix("a=control:")) {
            let url = if control.starts_with("rtsp://") {
                control.to_owned()
            } else if base.ends_with('/') {
                format!("{base}{control}")
            } else {
                format!("{base}/{control}")
            };
            if let Some(last) = controls.last_mut() {
                *last = url;
            }
        }
    }
    controls
}

/// A raw UDP session: the RTSP connection, the session id, the client's
/// RTP sockets and, per track, its RTCP socket and the server's RTCP
/// address.
pub struct UdpSession {
    pub rtsp: RawRtsp,
    pub session: String,
    pub rtp: Vec<UdpSocket>,
    pub rtcp: Vec<(UdpSocket, std::net::SocketAddr)>,
}

impl UdpSession {
    /// DESCRIBE, SETUP of every track over UDP, PLAY.
    pub fn play(port: u16, url: &str) -> UdpSession {
        let mut rtsp = RawRtsp::connect(port).unwrap();
        let describe = rtsp.request("DESCRIBE", url, &[]).unwrap();
        assert_eq!(describe.status, 200, "DESCRIBE");
        let base = describe.header("Content-Base").unwrap_or(url).to_owned();
        let sdp = String::from_utf8_lossy(&describe.body).into_owned();
        let (mut rtp_sockets, mut rtcp_sockets) = (Vec::new(), Vec::new());
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
            let server_rtcp: u16 = setup
                .header("Transport")
                .unwrap()
                .split(';')
                .find_map(|p| p.strip_prefix("server_port="))
                .and_then(|p| p.split('-').nth(1))
                .and_then(|p| p.parse().ok())
                .expect("server_port in the SETUP response");
            // Drained without blocking, so that the reports go out on time.
            rtp.set_nonblocking(true).unwrap();
            rtp_sockets.push(rtp);
            rtcp_sockets.push((rtcp, ([127, 0, 0, 1], server_rtcp).into()));
        }
        let session = session.unwrap();
        let play = rtsp.request("PLAY", url, &[("Session", &session)]).unwrap();
        assert_eq!(play.status, 200);
        UdpSession {
            rtsp,
            session,
            rtp: rtp_sockets,
            rtcp: rtcp_sockets,
        }
    }

    /// Counts the RTP datagrams arriving during `window`, keeping the
    /// sockets drained; sends an RTCP receiver report on every track each
    /// second when `report`.
    pub fn count(&self, window: Duration, report: bool) -> usize {
        self.receive(window, report, |_| {})
    }

    /// Like [`UdpSession::count`], handing every RTP datagram to `seen`.
    pub fn receive(&self, window: Duration, report: bool, mut seen: impl FnMut(&[u8])) -> usize {
        let deadline = Instant::now() + window;
        let mut next_report = Instant::now();
        let mut n = 0;
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            if report && Instant::now() >= next_report {
                next_report += Duration::from_secs(1);
                // RTCP RR with no report block (RFC 3550 6.4.2).
                let rr = [0x80, 201, 0, 1, 0x12, 0x34, 0x56, 0x78];
                for (socket, server) in &self.rtcp {
                    socket.send_to(&rr, server).unwrap();
                }
            }
            for s in &self.rtp {
                while let Ok(len) = s.recv(&mut buf) {
                    seen(&buf[..len]);
                    n += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        n
    }
}
