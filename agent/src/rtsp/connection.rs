//! One client connection: reads and frames what the client sends, answers
//! each request, and owns the sessions set up on it (they end with it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use rtsp_types::headers;
use rtsp_types::{Method, Request, Response, StatusCode, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::auth::Verdict;
use super::limits::{self, Refusal};
use super::message::{Framed, Framer};
use super::player::{Player, TrackOut, UdpTrack};
use super::session::{self, Playing, Session, SessionSlot, MAX_SETUPS};
use super::state::Server;
use super::transport::{self, Requested};
use super::uri::{self, Target};
use super::{rtcp, sdp};
use crate::hub::{Output, SourceState};
use crate::media::SharedStreamInfo;

const PUBLIC: &str =
    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";
/// How long DESCRIBE waits for a starting source to announce its tracks.
const INFO_WAIT: Duration = Duration::from_secs(3);
/// How long PLAY waits for the first burst (the next keyframe at worst).
const FIRST_BURST_WAIT: Duration = Duration::from_secs(5);
const MAX_TICK: Duration = Duration::from_secs(5);
/// Retry-After of a 503 while the stream's source is down.
const RETRY_AFTER_SECONDS: &str = "2";
/// How long a connection closed for bad input drains what is in flight.
const LINGER: Duration = Duration::from_secs(1);

type Reply = Response<Vec<u8>>;

pub struct Connection {
    server: Arc<Server>,
    peer: SocketAddr,
    local: SocketAddr,
    writer: Arc<Mutex<OwnedWriteHalf>>,
    sessions: HashMap<String, Session>,
    /// Milliseconds (server clock) of the last request or interleaved RTCP.
    heard: u64,
    /// Whether a whole request has come in yet (see `first_request_timeout`).
    requested: bool,
    framer: Framer,
    failures: mpsc::Sender<(String, std::io::Error)>,
}

pub async fn run(server: Arc<Server>, stream: TcpStream, shutdown: CancellationToken) {
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let (failures, mut failed) = mpsc::channel(4);
    let mut conn = Connection {
        heard: server.now_ms(),
        server,
        peer,
        local,
        writer: Arc::new(Mutex::new(writer)),
        sessions: HashMap::new(),
        requested: false,
        framer: Framer::default(),
        failures,
    };
    debug!(%peer, "rtsp connection");
    let mut buf = BytesMut::with_capacity(4096);
    // Timeouts are checked a few times per timeout period, not more: each
    // check wakes the server thread.
    let mut tick = tokio::time::interval((conn.server.session_timeout() / 4).min(MAX_TICK));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A connection that sends no request must not hold a place for the
    // whole session timeout: a few hundred of those would lock everyone out.
    let first_request = tokio::time::sleep(Duration::from_secs(
        conn.server.settings().config.first_request_timeout_seconds,
    ));
    tokio::pin!(first_request);
    loop {
        if !conn.drain(&mut buf).await {
            conn.linger(&mut reader).await;
            break;
        }
        tokio::select! {
            r = reader.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            Some((id, e)) = failed.recv() => {
                info!(%peer, session = id, "rtsp session ended: {e}");
                break;
            }
            _ = &mut first_request, if !conn.requested => {
                limits::refused(Refusal::FirstRequestTimeout);
                debug!(%peer, "rtsp connection closed: no request in time");
                break;
            }
            _ = tick.tick() => {
                if !conn.expire() {
                    break;
                }
            }
            _ = shutdown.cancelled() => break,
        }
    }
    debug!(%peer, sessions = conn.sessions.len(), "rtsp connection closed");
}

impl Connection {
    /// Handles every complete message in `buf`. False when the connection
    /// must close.
    async fn drain(&mut self, buf: &mut BytesMut) -> bool {
        loop {
            match self.framer.frame(buf) {
                Framed::Incomplete => return true,
                Framed::Skip(n) => buf.advance(n),
                Framed::Interleaved { channel, consumed } => {
                    if rtcp::looks_like_rtcp(&buf[4..consumed])
                        && self.sessions.values().any(|s| s.uses_channel(channel))
                    {
                        self.heard = self.server.now_ms();
                    }
                    buf.advance(consumed);
                }
                Framed::Request(request, consumed) => {
                    buf.advance(consumed);
                    self.requested = true;
                    self.heard = self.server.now_ms();
                    let (reply, player) = self.handle(*request).await;
                    if !self.send(&reply).await {
                        return false;
                    }
                    if let Some((id, player)) = player {
                        self.start(id, player);
                    }
                }
                Framed::Error {
                    status,
                    cseq,
                    consumed,
                } => {
                    debug!(peer = %self.peer, "bad rtsp request: {status}");
                    let mut reply = self.reply(status, cseq.as_deref()).empty();
                    if consumed.is_none() {
                        reply.insert_header(headers::CONNECTION, "close");
                    }
                    let reply = reply.replace_body(Vec::new());
                    if !self.send(&reply).await {
                        return false;
                    }
                    match consumed {
                        Some(n) => buf.advance(n),
                        None => return false,
                    }
                }
            }
        }
    }

    /// Closes our side and reads what the client still sends for a moment,
    /// so that closing with unread input (an RST) does not destroy the
    /// last response before the client reads it.
    async fn linger(&self, reader: &mut OwnedReadHalf) {
        let _ = self.writer.lock().await.shutdown().await;
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(LINGER, async {
            while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }

    async fn send(&self, reply: &Reply) -> bool {
        let mut bytes = Vec::with_capacity(512 + reply.body().len());
        if reply.write(&mut bytes).is_err() {
            return false;
        }
        let write = async {
            let mut w = self.writer.lock().await;
            w.write_all(&bytes).await
        };
        matches!(
            tokio::time::timeout(self.server.session_timeout(), write).await,
            Ok(Ok(()))
        )
    }

    fn start(&mut self, id: String, player: Player) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let failures = self.failures.clone();
        let stop = player.stop.clone();
        let task = tokio::spawn(async move {
            let stopped = player.stop.clone();
            let result = player.run().await;
            if stopped.is_cancelled() {
                // PAUSE, TEARDOWN or the session's end: not a failure.
                return;
            }
            // Either way the session is over; the connection closes, so
            // that the client reconnects (and DESCRIBEs anew).
            let reason = match result {
                Ok(()) => std::io::Error::other("the stream ended or changed its tracks"),
                Err(e) => e,
            };
            let _ = failures.send((id, reason)).await;
        });
        session.player = Some(Playing { task, stop });
    }

    /// Closes sessions nobody heard from within the timeout. False when
    /// the connection itself has been idle that long with no session left.
    fn expire(&mut self) -> bool {
        let now = self.server.now_ms();
        let timeout = self.server.session_timeout().as_millis() as u64;
        let heard = self.heard;
        self.sessions.retain(|id, s| {
            let last = heard.max(s.rtcp_seen.load(Ordering::Relaxed));
            let alive = now.saturating_sub(last) < timeout;
            if !alive {
                info!(session = id, "rtsp session timed out");
            }
            alive
        });
        !self.sessions.is_empty() || now.saturating_sub(heard) < timeout
    }

    fn reply(&self, status: StatusCode, cseq: Option<&str>) -> rtsp_types::ResponseBuilder {
        let mut b =
            Response::builder(Version::V1_0, status).header(headers::SERVER, "StreamSwitch");
        if status == StatusCode::ServiceUnavailable {
            // The source is starting or restarting: worth asking again soon.
            b = b.header(headers::RETRY_AFTER, RETRY_AFTER_SECONDS);
        }
        if let Some(cseq) = cseq {
            b = b.header(headers::CSEQ, cseq);
        }
        b
    }

    async fn handle(&mut self, req: Request<Vec<u8>>) -> (Reply, Option<(String, Player)>) {
        let cseq = req.header(&headers::CSEQ).map(|v| v.as_str().to_owned());
        let cseq = cseq.as_deref();
        let fail = |s: &Self, status| (s.reply(status, cseq).build(Vec::new()), None);
        let method = req.method().clone();
        // We implement no option (RFC 2326 12.32): a client that requires
        // one must hear so, with the options named back.
        if let Some(required) = req.header(&headers::REQUIRE) {
            let required = required.as_str().to_owned();
            return (
                self.reply(StatusCode::OptionNotSupported, cseq)
                    .header(headers::UNSUPPORTED, required)
                    .build(Vec::new()),
                None,
            );
        }
        match method {
            Method::Options => {
                return (
                    self.reply(StatusCode::Ok, cseq)
                        .header(headers::PUBLIC, PUBLIC)
                        .build(Vec::new()),
                    None,
                )
            }
            Method::Describe
            | Method::Setup
            | Method::Play
            | Method::Pause
            | Method::Teardown
            | Method::GetParameter
            | Method::SetParameter => {}
            Method::Extension(_) => return fail(self, StatusCode::NotImplemented),
            _ => {
                return (
                    self.reply(StatusCode::MethodNotAllowed, cseq)
                        .header(headers::ALLOW, PUBLIC)
                        .build(Vec::new()),
                    None,
                )
            }
        }
        let settings = self.server.settings();
        if let Some(auth) = &settings.auth {
            let name: &str = (&method).into();
            let given = req.header(&headers::AUTHORIZATION).map(|v| v.as_str());
            let uri = req.request_uri().map_or("*", |u| u.as_str());
            let verdict = auth.verify(name, uri, given);
            if verdict != Verdict::Allowed {
                let stale = verdict == Verdict::Stale;
                return (
                    self.reply(StatusCode::Unauthorized, cseq)
                        .header(headers::WWW_AUTHENTICATE, auth.challenges(stale).join(", "))
                        .build(Vec::new()),
                    None,
                );
            }
        }
        let session_id = req
            .header(&headers::SESSION)
            .map(|v| v.as_str().split(';').next().unwrap_or("").trim().to_owned());
        if let Some(id) = &session_id {
            if !self.sessions.contains_key(id) {
                return fail(self, StatusCode::SessionNotFound);
            }
        }
        let result = match method {
            Method::Describe => self.describe(&req, cseq).await,
            Method::Setup => self.setup(&req, cseq, session_id).await,
            Method::Play => return self.play(&req, cseq, session_id).await,
            Method::Pause => self.pause(cseq, session_id),
            Method::Teardown => self.teardown(cseq, session_id),
            _ => Ok(self.reply(StatusCode::Ok, cseq).build(Vec::new())),
        };
        (
            result.unwrap_or_else(|status| self.reply(status, cseq).build(Vec::new())),
            None,
        )
    }

    /// The stream a request URL names, with its current parameters. A
    /// stream whose source is not live (starting, restarting, stopped)
    /// gets a short wait, then 503 with Retry-After.
    async fn stream(
        &self,
        req: &Request<Vec<u8>>,
        wait: Duration,
    ) -> Result<(Target, Arc<crate::hub::Hub>, SharedStreamInfo), StatusCode> {
        let target = req
            .request_uri()
            .and_then(uri::target)
            .ok_or(StatusCode::NotFound)?;
        let hub = self
            .server
            .streams
            .get(&target.stream)
            .ok_or(StatusCode::NotFound)?;
        let mut health = hub.watch_health();
        let live = tokio::time::timeout(wait, health.wait_for(|h| h.state == SourceState::Live))
            .await
            .is_ok_and(|r| r.is_ok());
        let info = hub
            .info()
            .filter(|_| live)
            .ok_or(StatusCode::ServiceUnavailable)?;
        Ok((target, hub, info))
    }

    async fn describe(
        &self,
        req: &Request<Vec<u8>>,
        cseq: Option<&str>,
    ) -> Result<Reply, StatusCode> {
        let (target, _, info) = self.stream(req, INFO_WAIT).await?;
        let url = req.request_uri().ok_or(StatusCode::NotFound)?;
        let body = sdp::describe(
            &info,
            &target.stream,
            rand::random::<u32>() as u64,
            &self.local.ip().to_string(),
        );
        Ok(self
            .reply(StatusCode::Ok, cseq)
            .header(headers::CONTENT_TYPE, "application/sdp")
            .header(headers::CONTENT_BASE, uri::base(url, &target.stream))
            .build(body.into_bytes()))
    }

    async fn setup(
        &mut self,
        req: &Request<Vec<u8>>,
        cseq: Option<&str>,
        session_id: Option<String>,
    ) -> Result<Reply, StatusCode> {
        let (target, hub, info) = self.stream(req, INFO_WAIT).await?;
        let requested = req
            .header(&headers::TRANSPORT)
            .and_then(|t| transport::parse(t.as_str()))
            .ok_or(StatusCode::UnsupportedTransport)?;
        let track = match target.track {
            Some(t) => t,
            None if info.tracks.len() == 1 => 0,
            None => return Err(StatusCode::AggregateOperationNotAllowed),
        };
        if track >= info.tracks.len() {
            return Err(StatusCode::NotFound);
        }
        let id = match &session_id {
            Some(id) => {
                let s = self
                    .sessions
                    .get_mut(id)
                    .ok_or(StatusCode::SessionNotFound)?;
                if s.hub.name() != hub.name() || track >= s.tracks.len() {
                    return Err(StatusCode::SessionNotFound);
                }
                if s.player.is_some() {
                    return Err(StatusCode::MethodNotValidInThisState);
                }
                s.setups += 1;
                if s.setups > MAX_SETUPS {
                    limits::refused(Refusal::Setups);
                    return Err(StatusCode::MethodNotValidInThisState);
                }
                // A SETUP of a track again replaces how it is sent: the old
                // sockets go before new ones are bound.
                s.release_track(track);
                id.clone()
            }
            None => {
                let settings = self.server.settings();
                let client = self
                    .server
                    .clients
                    .session(self.peer.ip(), settings.config.max_sessions_per_client)
                    .ok_or_else(|| {
                        limits::refused(Refusal::ClientSessions);
                        StatusCode::NotEnoughBandwidth
                    })?;
                let slot = SessionSlot::take(&self.server.sessions, settings.config.max_sessions)
                    .ok_or_else(|| {
                    limits::refused(Refusal::Sessions);
                    StatusCode::NotEnoughBandwidth
                })?;
                let id = Session::new_id();
                let max_packet = self.server.settings().config.max_packet_size;
                let stage = self
                    .server
                    .stages
                    .get(&hub, max_packet)
                    .ok_or(StatusCode::ServiceUnavailable)?;
                let tracks = vec![None; stage.shared.tracks.len()];
                let listeners = tracks.iter().map(|_| None).collect();
                self.sessions.insert(
                    id.clone(),
                    Session {
                        hub,
                        stage,
                        tracks,
                        rtcp_seen: Arc::new(AtomicU64::new(0)),
                        player: None,
                        listeners,
                        setups: 1,
                        _slot: slot,
                        _client: client,
                    },
                );
                id
            }
        };
        let (out, reply) = match self.transport(&id, track, requested).await {
            Ok(r) => r,
            Err(status) => {
                // A first SETUP that fails leaves no session behind.
                if session_id.is_none() {
                    self.sessions.remove(&id);
                }
                return Err(status);
            }
        };
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or(StatusCode::SessionNotFound)?;
        session.tracks[track] = Some(out);
        Ok(self
            .reply(StatusCode::Ok, cseq)
            .header(headers::TRANSPORT, reply)
            .header(
                headers::SESSION,
                format!(
                    "{id};timeout={}",
                    self.server.settings().config.session_timeout_seconds
                ),
            )
            .build(Vec::new()))
    }

    /// Sets up how `track` of session `id` is sent; the Transport reply.
    async fn transport(
        &mut self,
        id: &str,
        track: usize,
        requested: Requested,
    ) -> Result<(TrackOut, String), StatusCode> {
        let session = self.sessions.get(id).ok_or(StatusCode::SessionNotFound)?;
        let ssrc = session.stage.shared.tracks[track].ssrc;
        match requested {
            Requested::Tcp { interleaved } => {
                let channels = interleaved.unwrap_or((track as u8 * 2, track as u8 * 2 + 1));
                let taken = self
                    .sessions
                    .values()
                    .any(|s| s.uses_channel(channels.0) || s.uses_channel(channels.1));
                if taken {
                    return Err(StatusCode::UnsupportedTransport);
                }
                Ok((
                    TrackOut::Tcp(channels.0, channels.1),
                    transport::reply_tcp(channels, ssrc),
                ))
            }
            Requested::Udp { client_port } => {
                let (rtp, rtcp) = session::bind_udp_pair(self.local.ip()).await.map_err(|e| {
                    warn!("cannot bind UDP ports: {e}");
                    StatusCode::UnsupportedTransport
                })?;
                let server_port = (
                    rtp.local_addr().map(|a| a.port()).unwrap_or(0),
                    rtcp.local_addr().map(|a| a.port()).unwrap_or(0),
                );
                let out = UdpTrack {
                    rtp: Arc::new(rtp),
                    rtcp: Arc::new(rtcp),
                    peer_rtp: SocketAddr::new(self.peer.ip(), client_port.0),
                    peer_rtcp: SocketAddr::new(self.peer.ip(), client_port.1),
                };
                let session = self
                    .sessions
                    .get_mut(id)
                    .ok_or(StatusCode::SessionNotFound)?;
                let listener = tokio::spawn(session::watch_rtcp(
                    out.rtcp.clone(),
                    session.rtcp_seen.clone(),
                    self.server.clock,
                ));
                if let Some(Some(old)) = session
                    .listeners
                    .get_mut(track)
                    .map(|l| l.replace(listener))
                {
                    old.abort();
                }
                Ok((
                    TrackOut::Udp(out),
                    transport::reply_udp(client_port, server_port, ssrc),
                ))
            }
        }
    }

    async fn play(
        &mut self,
        req: &Request<Vec<u8>>,
        cseq: Option<&str>,
        session_id: Option<String>,
    ) -> (Reply, Option<(String, Player)>) {
        let fail = |s: &Self, status| (s.reply(status, cseq).build(Vec::new()), None);
        let Some(id) = session_id else {
            return fail(self, StatusCode::SessionNotFound);
        };
        let session_header = format!(
            "{id};timeout={}",
            self.server.settings().config.session_timeout_seconds
        );
        let Some(session) = self.sessions.get(&id) else {
            return fail(self, StatusCode::SessionNotFound);
        };
        if session.player.is_some() {
            return (
                self.reply(StatusCode::Ok, cseq)
                    .header(headers::SESSION, session_header)
                    .build(Vec::new()),
                None,
            );
        }
        let stage = session.stage.clone();
        let tracks = session.tracks.clone();
        let stream = session.hub.name().to_owned();
        let mut reader = stage
            .shared
            .fanout
            .subscribe_counting(Some(session.hub.dropped_counter(Output::Rtsp)));
        let first = match tokio::time::timeout(FIRST_BURST_WAIT, reader.recv()).await {
            Ok(Some(b)) => b,
            _ => return fail(self, StatusCode::ServiceUnavailable),
        };
        let base = match req.request_uri() {
            Some(url) => uri::base(url, &stream),
            None => format!("rtsp://{}/{stream}/", self.local),
        };
        let rtp_info: Vec<String> = tracks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_some())
            .map(|(i, _)| {
                let s = first.start[i];
                format!(
                    "url={base}{};seq={};rtptime={}",
                    sdp::track_control(i),
                    s.seq,
                    s.rtptime
                )
            })
            .collect();
        let player = Player {
            stage,
            reader,
            first,
            tracks,
            writer: self.writer.clone(),
            write_timeout: self.server.session_timeout(),
            cname: format!("streamswitch@{}", self.local.ip()),
            _viewer: session.hub.viewer(Output::Rtsp),
            stop: CancellationToken::new(),
        };
        info!(peer = %self.peer, session = id, stream, "rtsp play");
        (
            self.reply(StatusCode::Ok, cseq)
                .header(headers::SESSION, session_header)
                .header(headers::RANGE, "npt=now-")
                .header(headers::RTP_INFO, rtp_info.join(","))
                .build(Vec::new()),
            Some((id, player)),
        )
    }

    fn pause(
        &mut self,
        cseq: Option<&str>,
        session_id: Option<String>,
    ) -> Result<Reply, StatusCode> {
        let id = session_id.ok_or(StatusCode::SessionNotFound)?;
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or(StatusCode::SessionNotFound)?;
        session.stop_playing();
        Ok(self
            .reply(StatusCode::Ok, cseq)
            .header(headers::SESSION, id)
            .build(Vec::new()))
    }

    fn teardown(
        &mut self,
        cseq: Option<&str>,
        session_id: Option<String>,
    ) -> Result<Reply, StatusCode> {
        let id = session_id.ok_or(StatusCode::SessionNotFound)?;
        self.sessions.remove(&id);
        info!(peer = %self.peer, session = id, "rtsp teardown");
        Ok(self.reply(StatusCode::Ok, cseq).build(Vec::new()))
    }
}
