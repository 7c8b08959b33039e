//! Sends a playing session's bursts: over TCP as interleaved frames, a
//! whole burst (and any bursts already queued behind it) in one vectored
//! write; over UDP one datagram per packet. Sender Reports go out every
//! few seconds on each track's RTCP channel.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::UdpSocket;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::rtcp::{self, SenderInfo};
use super::stage::{RtpBurst, Stage};
use crate::hub::{Reader, ViewerGuard};
use crate::media::ticks_since;

const SR_INTERVAL: Duration = Duration::from_secs(5);
/// Bursts joined into one write when a session is behind.
const MAX_COALESCED: usize = 16;
/// Linux refuses a writev of more than IOV_MAX (1024) buffers.
const MAX_IOV: usize = 1024;

/// Where one track of a session goes.
#[derive(Clone)]
pub enum TrackOut {
    /// Interleaved channels (RTP, RTCP) on the RTSP connection.
    Tcp(u8, u8),
    Udp(UdpTrack),
}

#[derive(Clone)]
pub struct UdpTrack {
    pub rtp: Arc<UdpSocket>,
    pub rtcp: Arc<UdpSocket>,
    pub peer_rtp: SocketAddr,
    pub peer_rtcp: SocketAddr,
}

pub struct Player {
    pub stage: Arc<Stage>,
    pub reader: Reader<Arc<RtpBurst>>,
    /// The burst the PLAY response announced (RTP-Info): sent first.
    pub first: Arc<RtpBurst>,
    /// Indexed like the stream's tracks; `None` for tracks not set up.
    pub tracks: Vec<Option<TrackOut>>,
    pub writer: Arc<Mutex<OwnedWriteHalf>>,
    /// A TCP write blocked this long ends the session.
    pub write_timeout: Duration,
    pub cname: String,
    /// Counts this session as an RTSP viewer of the stream while it plays.
    pub _viewer: ViewerGuard,
    /// PAUSE, TEARDOWN or the session's end: checked with the writer held,
    /// before each write, so a write that began always ends whole.
    pub stop: CancellationToken,
}

#[derive(Clone, Copy, Default)]
struct Counts {
    packets: u32,
    octets: u32,
}

impl Counts {
    /// Counts one sent RTP packet of `len` bytes, header included: the
    /// sender report's octet count is payload only (RFC 3550 6.4.1).
    fn add(&mut self, len: usize) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self
            .octets
            .wrapping_add(len as u32 - super::rtp::HEADER_LEN as u32);
    }
}

impl Player {
    /// Runs until the stage stops or a write fails.
    pub async fn run(mut self) -> io::Result<()> {
        let mut counts = vec![Counts::default(); self.tracks.len()];
        let mut bursts = vec![self.first.clone()];
        let mut headers: Vec<[u8; 4]> = Vec::new();
        let mut next_report = Instant::now();
        loop {
            if self.stop.is_cancelled() {
                return Ok(());
            }
            while bursts.len() < MAX_COALESCED {
                match self.reader.try_recv() {
                    Some(b) => bursts.push(b),
                    None => break,
                }
            }
            self.send_udp(&bursts, &mut counts).await;
            let write = self.send_tcp(&bursts, &mut headers, &mut counts);
            tokio::time::timeout(self.write_timeout, write)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client stopped reading"))??;
            bursts.clear();
            let now = Instant::now();
            if now >= next_report {
                next_report = now + SR_INTERVAL;
                let report = self.send_reports(now, &counts);
                tokio::time::timeout(self.write_timeout, report)
                    .await
                    .map_err(|_| {
                        io::Error::new(io::ErrorKind::TimedOut, "client stopped reading")
                    })??;
            }
            let next = tokio::select! {
                b = self.reader.recv() => b,
                _ = self.stop.cancelled() => return Ok(()),
            };
            match next {
                Some(b) => bursts.push(b),
                None => return Ok(()),
            }
        }
    }

    async fn send_tcp(
        &self,
        bursts: &[Arc<RtpBurst>],
        headers: &mut Vec<[u8; 4]>,
        counts: &mut [Counts],
    ) -> io::Result<()> {
        headers.clear();
        for p in bursts.iter().flat_map(|b| &b.packets) {
            if let Some(Some(TrackOut::Tcp(channel, _))) = self.tracks.get(p.track) {
                let len = (p.data.len() as u16).to_be_bytes();
                headers.push([b'$', *channel, len[0], len[1]]);
                counts[p.track].add(p.data.len());
            }
        }
        if headers.is_empty() {
            return Ok(());
        }
        let mut slices = Vec::with_capacity(headers.len() * 2);
        let mut h = headers.iter();
        for p in bursts.iter().flat_map(|b| &b.packets) {
            if let Some(Some(TrackOut::Tcp(..))) = self.tracks.get(p.track) {
                if let Some(header) = h.next() {
                    slices.push(IoSlice::new(header));
                    slices.push(IoSlice::new(&p.data));
                }
            }
        }
        let mut writer = self.writer.lock().await;
        if self.stop.is_cancelled() {
            return Ok(());
        }
        write_all_vectored(&mut *writer, &mut slices).await
    }

    async fn send_udp(&self, bursts: &[Arc<RtpBurst>], counts: &mut [Counts]) {
        for p in bursts.iter().flat_map(|b| &b.packets) {
            if let Some(Some(TrackOut::Udp(u))) = self.tracks.get(p.track) {
                // A lost datagram is what UDP means; errors are not fatal.
                let _ = u.rtp.send_to(&p.data, u.peer_rtp).await;
                counts[p.track].add(p.data.len());
            }
        }
    }

    async fn send_reports(&self, now: Instant, counts: &[Counts]) -> io::Result<()> {
        let shared = &self.stage.shared;
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        for (i, out) in self.tracks.iter().enumerate() {
            let Some(out) = out else { continue };
            let track = &shared.tracks[i];
            let ticks = ticks_since(shared.info.epoch, now, track.clock_rate);
            let report = rtcp::sender_report(
                &SenderInfo {
                    ssrc: track.ssrc,
                    ntp: rtcp::ntp_time(wall),
                    rtp_time: shared.rtp_time(i, ticks),
                    packets: counts[i].packets,
                    octets: counts[i].octets,
                },
                &self.cname,
            );
            match out {
                TrackOut::Tcp(_, channel) => {
                    let len = (report.len() as u16).to_be_bytes();
                    let header = [b'$', *channel, len[0], len[1]];
                    let mut slices = [IoSlice::new(&header), IoSlice::new(&report)];
                    let mut writer = self.writer.lock().await;
                    if self.stop.is_cancelled() {
                        return Ok(());
                    }
                    write_all_vectored(&mut *writer, &mut slices).await?;
                }
                TrackOut::Udp(u) => {
                    let _ = u.rtcp.send_to(&report, u.peer_rtcp).await;
                }
            }
        }
        Ok(())
    }
}

/// Writes every byte of `slices`, at most [`MAX_IOV`] buffers per call.
pub async fn write_all_vectored<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    while !slices.is_empty() {
        let n = w
            .write_vectored(&slices[..slices.len().min(MAX_IOV)])
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn vectored_writes_survive_partial_writes_and_many_buffers() {
        // A pipe that takes 7 bytes at a time forces partial writes in the
        // middle of buffers; 3000 buffers exceed IOV_MAX.
        let (mut w, mut r) = tokio::io::duplex(7);
        let parts: Vec<Vec<u8>> = (0..3000u32)
            .map(|i| vec![i as u8; (i % 5) as usize])
            .collect();
        let expected: Vec<u8> = parts.concat();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut slices: Vec<IoSlice> = parts.iter().map(|p| IoSlice::new(p)).collect();
        write_all_vectored(&mut w, &mut slices).await.unwrap();
        drop(w);
        assert_eq!(reader.await.unwrap(), expected);
    }
}
