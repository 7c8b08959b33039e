//! RTMP publishing (nginx-rtmp, MediaMTX, YouTube-style ingest): handshake
//! and session through `rml_rtmp` (sans-IO; every outbound packet it makes
//! is written, in order, the SetChunkSize after the connect acceptance
//! included), FLV tags for H.264 and AAC ([`super::flv`]). H.265 would need
//! Enhanced RTMP, which rml_rtmp does not speak: such a stream is refused
//! with a clear error.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{flv, Target};
use crate::media::{Frame, SharedStreamInfo, TrackParams};

const STEP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct RtmpPublisher {
    stream: TcpStream,
    session: ClientSession,
    info: Option<SharedStreamInfo>,
    /// Decode time (ms on the stream's timeline) of the first frame sent:
    /// RTMP timestamps count from it.
    base_ms: Option<i64>,
}

/// `rtmp://host[:port]/app/key` → (host, port, app, key).
fn parts(target: &Target) -> Result<(String, u16, String, String)> {
    let url = &target.url;
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port().unwrap_or(1935);
    let mut segments = url
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).collect::<Vec<_>>())
        .unwrap_or_default();
    if segments.len() < 2 {
        bail!("{url}: expected rtmp://host[:port]/app/stream_key");
    }
    let app = segments.remove(0).to_owned();
    let mut key = segments.join("/");
    if let Some(q) = url.query() {
        key = format!("{key}?{q}");
    }
    Ok((host, port, app, key))
}

/// Refuses what RTMP cannot carry here.
pub fn check(info: &SharedStreamInfo) -> Result<()> {
    for t in &info.tracks {
        match t.params {
            TrackParams::H265(_) => bail!("H.265 over RTMP needs Enhanced RTMP, which this agent does not send; push H.265 over RTSP"),
            TrackParams::Jpeg(_) => bail!("RTMP (FLV) cannot carry MJPEG; push it over RTSP, or encode the camera to H.264 (encoder = \"auto\")"),
            TrackParams::H264(_) | TrackParams::Aac(_) => {}
        }
    }
    Ok(())
}

impl RtmpPublisher {
    pub async fn connect(target: &Target) -> Result<Self> {
        let (host, port, app, key) = parts(target)?;
        let mut stream =
            tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect((host.as_str(), port)))
                .await
                .map_err(|_| anyhow!("connecting to {host}:{port} timed out"))?
                .with_context(|| format!("connecting to {host}:{port}"))?;
        let _ = stream.set_nodelay(true);
        super::cap_send_buffer(&stream);
        let remaining = tokio::time::timeout(STEP_TIMEOUT, handshake(&mut stream))
            .await
            .map_err(|_| anyhow!("the RTMP handshake timed out"))??;
        let config = ClientSessionConfig {
            tc_url: Some(format!("rtmp://{host}:{port}/{app}")),
            ..ClientSessionConfig::new()
        };
        let (session, results) =
            ClientSession::new(config).map_err(|e| anyhow!("rtmp session: {e:?}"))?;
        let mut p = RtmpPublisher {
            stream,
            session,
            info: None,
            base_ms: None,
        };
        p.write_results(results).await?;
        let results = p
            .session
            .handle_input(&remaining)
            .map_err(|e| anyhow!("rtmp: {e:?}"))?;
        p.write_results(results).await?;
        let r = p
            .session
            .request_connection(app.clone())
            .map_err(|e| anyhow!("rtmp connect: {e:?}"))?;
        p.write_results(vec![r]).await?;
        p.wait_for(|e| matches!(e, ClientSessionEvent::ConnectionRequestAccepted))
            .await
            .with_context(|| format!("connecting to the app `{app}`"))?;
        let r = p
            .session
            .request_publishing(key.clone(), PublishRequestType::Live)
            .map_err(|e| anyhow!("rtmp publish: {e:?}"))?;
        p.write_results(vec![r]).await?;
        p.wait_for(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted))
            .await
            .with_context(|| format!("publishing `{key}`"))?;
        Ok(p)
    }

    /// Reads until an event satisfies `done`, writing what the session
    /// answers; a rejection is an error.
    async fn wait_for(&mut self, done: impl Fn(&ClientSessionEvent) -> bool) -> Result<()> {
        let mut buf = vec![0u8; 4096];
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .map_err(|_| anyhow!("no answer from the server"))??;
            if n == 0 {
                bail!("the server closed the connection");
            }
            let results = self
                .session
                .handle_input(&buf[..n])
                .map_err(|e| anyhow!("rtmp: {e:?}"))?;
            let mut finished = false;
            for r in &results {
                if let ClientSessionResult::RaisedEvent(e) = r {
                    if let ClientSessionEvent::ConnectionRequestRejected { description } = e {
                        bail!("the server refused: {description}");
                    }
                    finished |= done(e);
                }
            }
            self.write_results(results).await?;
            if finished {
                return Ok(());
            }
        }
    }

    /// Writes every outbound packet, in the order the session made them.
    async fn write_results(&mut self, results: Vec<ClientSessionResult>) -> Result<usize> {
        let mut n = 0;
        for r in results {
            if let ClientSessionResult::OutboundResponse(packet) = r {
                self.stream.write_all(&packet.bytes).await?;
                n += packet.bytes.len();
            }
        }
        Ok(n)
    }

    /// Takes the stream's parameters: sequence headers go out at once.
    pub async fn set_params(&mut self, info: SharedStreamInfo) -> Result<usize> {
        check(&info)?;
        let ts = RtmpTimestamp::new(0);
        let mut results = Vec::new();
        for t in &info.tracks {
            let r = match &t.params {
                TrackParams::H264(p) => {
                    self.session
                        .publish_video_data(flv::avc_sequence_header(p), ts, false)
                }
                TrackParams::Aac(p) => {
                    self.session
                        .publish_audio_data(flv::aac_sequence_header(&p.config), ts, false)
                }
                TrackParams::H265(_) | TrackParams::Jpeg(_) => continue,
            };
            results.push(r.map_err(|e| anyhow!("rtmp: {e:?}"))?);
        }
        self.info = Some(info);
        self.write_results(results).await
    }

    /// Sends one frame; the bytes written.
    pub async fn send(&mut self, frame: &Frame) -> Result<usize> {
        self.read_pending().await?;
        let Some(info) = &self.info else {
            return Ok(0);
        };
        let Some(track) = info.tracks.get(frame.track) else {
            return Ok(0);
        };
        let rate = i64::from(track.clock_rate.max(1));
        let dts_ms = frame.dts * 1000 / rate;
        let base = *self.base_ms.get_or_insert(dts_ms);
        let ts = RtmpTimestamp::new((dts_ms - base).max(0) as u32);
        let r = match &track.params {
            TrackParams::H264(_) => {
                let cts = ((frame.pts - frame.dts) * 1000 / rate) as i32;
                self.session.publish_video_data(
                    flv::avc_nalu(&frame.data, frame.key, cts),
                    ts,
                    false,
                )
            }
            TrackParams::Aac(_) => {
                self.session
                    .publish_audio_data(flv::aac_raw(&frame.data), ts, false)
            }
            TrackParams::H265(_) | TrackParams::Jpeg(_) => return Ok(0),
        };
        let r = r.map_err(|e| anyhow!("rtmp: {e:?}"))?;
        self.write_results(vec![r]).await
    }

    /// Takes what the server sent meanwhile (acknowledgements, pings) and
    /// answers it, without waiting.
    async fn read_pending(&mut self) -> Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.try_read(&mut buf) {
                Ok(0) => bail!("the server closed the connection"),
                Ok(n) => {
                    let results = self
                        .session
                        .handle_input(&buf[..n])
                        .map_err(|e| anyhow!("rtmp: {e:?}"))?;
                    self.write_results(results).await?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The client side of the RTMP handshake; the bytes that came after it.
async fn handshake(stream: &mut TcpStream) -> Result<Vec<u8>> {
    let mut hs = Handshake::new(PeerType::Client);
    let p0p1 = hs
        .generate_outbound_p0_and_p1()
        .map_err(|e| anyhow!("rtmp handshake: {e:?}"))?;
    stream.write_all(&p0p1).await?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("the server closed the connection during the handshake");
        }
        match hs
            .process_bytes(&buf[..n])
            .map_err(|e| anyhow!("rtmp handshake: {e:?}"))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                stream.write_all(&response_bytes).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                stream.write_all(&response_bytes).await?;
                return Ok(remaining_bytes);
            }
        }
    }
}
