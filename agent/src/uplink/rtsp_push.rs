//! RTSP push (publishing): ANNOUNCE our SDP, SETUP each track over TCP
//! interleaved with `mode=record`, RECORD, then send RTP on the connection.
//! This is how MediaMTX and ffmpeg's RTSP listener take publishers. Basic
//! and Digest auth as a client; keepalive with GET_PARAMETER at half the
//! server's session timeout. The server's responses (and any interleaved
//! RTCP) are read on a task of its own, so a dead server is noticed.

use std::io::IoSlice;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use rtsp_types::{Message, ParseError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::Target;
use crate::media::{Frame, SharedStreamInfo};
use crate::rtsp::client_auth::{challenges, ClientAuth};
use crate::rtsp::player::write_all_vectored;
use crate::rtsp::rtp::{self, RtpTrack};
use crate::rtsp::sdp;

/// A reply to a request must come within this.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_PACKET: usize = 1400;

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct RtspPublisher {
    writer: OwnedWriteHalf,
    replies: mpsc::Receiver<Result<Reply>>,
    url: String,
    session: String,
    cseq: u32,
    auth: Option<ClientAuth>,
    info: SharedStreamInfo,
    tracks: Vec<RtpTrack>,
    ts_base: Vec<u32>,
    keepalive: Duration,
    next_keepalive: Instant,
    packets: Vec<Bytes>,
    headers: Vec<[u8; 4]>,
}

impl RtspPublisher {
    /// Connects and announces `info`; returns once RECORD is accepted.
    pub async fn connect(target: &Target, info: SharedStreamInfo) -> Result<Self> {
        let host = target.url.host_str().unwrap_or_default().to_owned();
        let port = target.url.port().unwrap_or(554);
        let stream = tokio::time::timeout(REPLY_TIMEOUT, TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(|_| anyhow!("connecting to {host}:{port} timed out"))?
            .with_context(|| format!("connecting to {host}:{port}"))?;
        let _ = stream.set_nodelay(true);
        super::cap_send_buffer(&stream);
        let local_ip = stream.local_addr()?.ip().to_string();
        let (reader, writer) = stream.into_split();
        let (tx, replies) = mpsc::channel(8);
        tokio::spawn(read_replies(reader, tx));
        let url = target.url.to_string();
        let mut p = RtspPublisher {
            writer,
            replies,
            url: url.clone(),
            session: String::new(),
            cseq: 0,
            auth: None,
            tracks: info
                .tracks
                .iter()
                .enumerate()
                .map(|(i, t)| RtpTrack {
                    payload_type: sdp::payload_type(i, &t.params),
                    ssrc: rand::random(),
                    next_seq: rand::random(),
                })
                .collect(),
            ts_base: (0..info.tracks.len()).map(|_| rand::random()).collect(),
            info: info.clone(),
            keepalive: Duration::from_secs(30),
            next_keepalive: Instant::now(),
            packets: Vec::new(),
            headers: Vec::new(),
        };
        let name = target.url.path().trim_start_matches('/').to_owned();
        let body = sdp::describe(&info, &name, rand::random::<u32>() as u64, &local_ip);
        let r = p
            .request(
                "ANNOUNCE",
                &url,
                &[("Content-Type", "application/sdp")],
                body.as_bytes(),
                target,
            )
            .await?;
        if r.status != 200 {
            bail!("ANNOUNCE: {}", r.status);
        }
        for i in 0..info.tracks.len() {
            let track_url = format!("{}/{}", url.trim_end_matches('/'), sdp::track_control(i));
            let transport = format!(
                "RTP/AVP/TCP;unicast;interleaved={}-{};mode=record",
                2 * i,
                2 * i + 1
            );
            let session = p.session.clone();
            let mut headers = vec![("Transport", transport.as_str())];
            if !session.is_empty() {
                headers.push(("Session", session.as_str()));
            }
            let r = p
                .request("SETUP", &track_url, &headers, b"", target)
                .await?;
            if r.status != 200 {
                bail!("SETUP of track {i}: {}", r.status);
            }
            if let Some(s) = r.header("Session") {
                let mut parts = s.split(';');
                p.session = parts.next().unwrap_or("").trim().to_owned();
                if let Some(t) = parts
                    .filter_map(|x| x.trim().strip_prefix("timeout="))
                    .find_map(|t| t.parse::<u64>().ok())
                {
                    p.keepalive = Duration::from_secs((t / 2).max(1));
                }
            }
        }
        let session = p.session.clone();
        let r = p
            .request(
                "RECORD",
                &url,
                &[("Session", &session), ("Range", "npt=0.000-")],
                b"",
                target,
            )
            .await?;
        if r.status != 200 {
            bail!("RECORD: {}", r.status);
        }
        p.next_keepalive = Instant::now() + p.keepalive;
        Ok(p)
    }

    /// Sends a request and waits for its reply, answering one 401 with the
    /// target's credentials.
    async fn request(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        target: &Target,
    ) -> Result<Reply> {
        for attempt in 0..2 {
            self.cseq += 1;
            let mut text = format!(
                "{method} {url} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: StreamSwitch/{}\r\n",
                self.cseq,
                env!("CARGO_PKG_VERSION")
            );
            for (k, v) in headers {
                text.push_str(&format!("{k}: {v}\r\n"));
            }
            if let Some(auth) = self.auth.as_mut() {
                text.push_str(&format!("Authorization: {}\r\n", auth.header(method, url)));
            }
            if !body.is_empty() {
                text.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
            text.push_str("\r\n");
            let mut bytes = text.into_bytes();
            bytes.extend_from_slice(body);
            self.writer.write_all(&bytes).await?;
            let reply = tokio::time::timeout(REPLY_TIMEOUT, self.replies.recv())
                .await
                .map_err(|_| anyhow!("no reply to {method} within {REPLY_TIMEOUT:?}"))?
                .ok_or_else(|| anyhow!("the server closed the connection"))??;
            if reply.status == 401 && attempt == 0 {
                let offered = challenges(
                    reply
                        .headers
                        .iter()
                        .filter(|(k, _)| k.eq_ignore_ascii_case("WWW-Authenticate"))
                        .map(|(_, v)| v.as_str()),
                );
                let Some((user, pass)) = &target.credentials else {
                    bail!("{method}: 401, and no credentials are configured");
                };
                self.auth =
                    Some(ClientAuth::new(user, pass, &offered).ok_or_else(|| {
                        anyhow!("{method}: 401 with no Basic or Digest challenge")
                    })?);
                continue;
            }
            if reply.status == 401 {
                bail!("{method}: 401: the credentials were refused");
            }
            return Ok(reply);
        }
        unreachable!("the loop returns or fails on its second pass")
    }

    /// Whether `info` can go on this session (the same track layout).
    pub fn accepts(&self, info: &SharedStreamInfo) -> bool {
        info.same_layout(&self.info)
    }

    pub fn set_params(&mut self, info: SharedStreamInfo) {
        self.info = info;
    }

    /// Sends one frame; the bytes written.
    pub async fn send(&mut self, frame: &Frame) -> Result<usize> {
        if let Ok(r) = self.replies.try_recv() {
            r?;
        }
        let Some(params) = self.info.tracks.get(frame.track).map(|t| t.params.clone()) else {
            return Ok(0);
        };
        let ts = self.ts_base[frame.track].wrapping_add(frame.pts.max(0) as u32);
        self.packets.clear();
        rtp::packetize(
            &params,
            frame,
            MAX_PACKET,
            ts,
            &mut self.tracks[frame.track],
            &mut self.packets,
        );
        let channel = (2 * frame.track) as u8;
        self.headers.clear();
        for p in &self.packets {
            let len = (p.len() as u16).to_be_bytes();
            self.headers.push([b'$', channel, len[0], len[1]]);
        }
        let mut slices: Vec<IoSlice> = Vec::with_capacity(self.packets.len() * 2);
        for (h, p) in self.headers.iter().zip(&self.packets) {
            slices.push(IoSlice::new(h));
            slices.push(IoSlice::new(p));
        }
        let total = self.packets.iter().map(|p| p.len() + 4).sum();
        write_all_vectored(&mut self.writer, &mut slices).await?;
        if Instant::now() >= self.next_keepalive {
            self.next_keepalive = Instant::now() + self.keepalive;
            self.cseq += 1;
            let ping = format!(
                "GET_PARAMETER {} RTSP/1.0\r\nCSeq: {}\r\nSession: {}\r\n\r\n",
                self.url, self.cseq, self.session
            );
            self.writer.write_all(ping.as_bytes()).await?;
        }
        Ok(total)
    }
}

/// Reads what the server sends: replies go to `tx`; interleaved data
/// (RTCP receiver reports) is skipped. Ends with an error on close.
async fn read_replies(mut reader: OwnedReadHalf, tx: mpsc::Sender<Result<Reply>>) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        loop {
            match Message::<Vec<u8>>::parse(&buf) {
                Ok((message, consumed)) => {
                    if let Message::Response(r) = message {
                        let reply = Reply {
                            status: u16::from(r.status()),
                            headers: r
                                .headers()
                                .map(|(k, v)| (k.as_str().to_owned(), v.as_str().to_owned()))
                                .collect(),
                        };
                        if tx.send(Ok(reply)).await.is_err() {
                            return;
                        }
                    }
                    buf.drain(..consumed);
                }
                Err(ParseError::Incomplete(_)) => break,
                Err(e) => {
                    let _ = tx
                        .send(Err(anyhow!("bad data from the server: {e:?}")))
                        .await;
                    return;
                }
            }
        }
        if buf.len() > 1 << 20 {
            let _ = tx
                .send(Err(anyhow!("the server sent an oversized message")))
                .await;
            return;
        }
        match reader.read(&mut chunk).await {
            Ok(0) => {
                let _ = tx
                    .send(Err(anyhow!("the server closed the connection")))
                    .await;
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => {
                let _ = tx.send(Err(anyhow!("reading from the server: {e}"))).await;
                return;
            }
        }
    }
}
