//! An RTSP session: the tracks a client set up, how each is sent, the
//! player while it plays, and its place among the server's sessions.

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::limits::ClientPlace;
use super::player::TrackOut;
use super::rtcp;
use super::stage::Stage;
use crate::hub::Hub;

/// One of the server's `max_sessions` places, given back on drop.
pub struct SessionSlot(Arc<AtomicUsize>);

impl SessionSlot {
    /// A place, or `None` when `max` sessions exist (453).
    pub fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| SessionSlot(count.clone()))
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub struct Session {
    pub hub: Arc<Hub>,
    pub stage: Arc<Stage>,
    /// Indexed like the stream's tracks; `None` for tracks not set up.
    pub tracks: Vec<Option<TrackOut>>,
    /// Milliseconds (server clock) when RTCP last came in over UDP.
    pub rtcp_seen: Arc<AtomicU64>,
    pub player: Option<Playing>,
    /// Readers of each track's UDP RTCP socket, indexed like `tracks`: a
    /// SETUP of a track again replaces its reader (and sockets).
    pub listeners: Vec<Option<JoinHandle<()>>>,
    /// SETUP requests on this session, against [`MAX_SETUPS`].
    pub setups: usize,
    pub _slot: SessionSlot,
    /// This session's place among its client's.
    pub _client: ClientPlace,
}

/// SETUPs one session may take: every track of a stream, a few times over
/// (clients that change transport); beyond that it is a flood (455).
pub const MAX_SETUPS: usize = 16;

/// A playing session's player task.
pub struct Playing {
    pub task: JoinHandle<()>,
    /// Asks the player to stop. It stops between two writes, never inside
    /// one, so the interleaved stream stays whole for the reply after it.
    pub stop: CancellationToken,
}

impl Session {
    pub fn new_id() -> String {
        format!("{:016X}", rand::random::<u64>())
    }

    /// Stops the player at the next frame boundary; a write in progress
    /// ends first (it has its own timeout), then the task ends by itself.
    /// Never aborted: that would cut an interleaved frame in half.
    pub fn stop_playing(&mut self) {
        if let Some(p) = self.player.take() {
            p.stop.cancel();
            drop(p.task);
        }
    }

    /// Forgets how `track` was sent: its RTCP reader (and so its sockets).
    pub fn release_track(&mut self, track: usize) {
        if let Some(Some(l)) = self.listeners.get_mut(track).map(Option::take) {
            l.abort();
        }
        if let Some(t) = self.tracks.get_mut(track) {
            *t = None;
        }
    }

    /// Interleaved channels used by this session's tracks.
    pub fn uses_channel(&self, channel: u8) -> bool {
        self.tracks.iter().flatten().any(|t| match t {
            TrackOut::Tcp(rtp, rtcp) => *rtp == channel || *rtcp == channel,
            TrackOut::Udp(_) => false,
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop_playing();
        for l in self.listeners.iter().flatten() {
            l.abort();
        }
    }
}

/// Binds an even RTP port and the odd RTCP port above it on `ip`.
pub async fn bind_udp_pair(ip: IpAddr) -> io::Result<(UdpSocket, UdpSocket)> {
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free UDP port pair");
    for _ in 0..16 {
        let port = rand::random_range(10_000u16..32_000) * 2;
        let rtp = match UdpSocket::bind((ip, port)).await {
            Ok(s) => s,
            Err(e) => {
                last = e;
                continue;
            }
        };
        match UdpSocket::bind((ip, port + 1)).await {
            Ok(rtcp) => return Ok((rtp, rtcp)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Reads a UDP RTCP socket and notes when RTCP arrives (a sign of life).
pub async fn watch_rtcp(socket: Arc<UdpSocket>, seen: Arc<AtomicU64>, clock: std::time::Instant) {
    let mut buf = vec![0u8; 2048];
    while let Ok((n, _)) = socket.recv_from(&mut buf).await {
        if rtcp::looks_like_rtcp(&buf[..n]) {
            seen.store(clock.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_given_back() {
        let count = Arc::new(AtomicUsize::new(0));
        let a = SessionSlot::take(&count, 2).unwrap();
        let _b = SessionSlot::take(&count, 2).unwrap();
        assert!(SessionSlot::take(&count, 2).is_none());
        drop(a);
        assert!(SessionSlot::take(&count, 2).is_some());
        assert_eq!(count.load(Ordering::Relaxed), 1);
    }
}
