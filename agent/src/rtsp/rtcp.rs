//! RTCP (RFC 3550 section 6): the Sender Reports we send, which map each
//! track's RTP clock to wall-clock NTP time, and a check of what clients
//! send, which only counts as a sign of life.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

const PT_SR: u8 = 200;
const PT_SDES: u8 = 202;
const SDES_CNAME: u8 = 1;
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// What a Sender Report says about one track of one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderInfo {
    pub ssrc: u32,
    /// Wall-clock time of the report, 64-bit NTP format.
    pub ntp: u64,
    /// The RTP timestamp of the same instant.
    pub rtp_time: u32,
    pub packets: u32,
    pub octets: u32,
}

/// A time since the Unix epoch in 64-bit NTP format.
pub fn ntp_time(since_unix: Duration) -> u64 {
    let secs = since_unix.as_secs() + NTP_UNIX_OFFSET;
    let frac = ((since_unix.subsec_nanos() as u64) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// A compound RTCP packet: a Sender Report with no report blocks, then an
/// SDES chunk with the CNAME, as RFC 3550 6.1 asks.
pub fn sender_report(info: &SenderInfo, cname: &str) -> Bytes {
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    let mut buf = BytesMut::with_capacity(28 + 12 + cname.len());
    buf.put_u8(0x80);
    buf.put_u8(PT_SR);
    buf.put_u16(6);
    buf.put_u32(info.ssrc);
    buf.put_u64(info.ntp);
    buf.put_u32(info.rtp_time);
    buf.put_u32(info.packets);
    buf.put_u32(info.octets);
    // SDES: SSRC, CNAME item, a null item, padded to a 32-bit boundary.
    let chunk = 4 + 2 + cname.len() + 1;
    let padded = chunk.div_ceil(4) * 4;
    buf.put_u8(0x81);
    buf.put_u8(PT_SDES);
    buf.put_u16((padded / 4) as u16);
    buf.put_u32(info.ssrc);
    buf.put_u8(SDES_CNAME);
    buf.put_u8(cname.len() as u8);
    buf.put_slice(cname);
    buf.put_bytes(0, padded - chunk + 1);
    buf.freeze()
}

/// True when `packet` starts like an RTCP packet (version 2, a payload type
/// in 200..=206, a length that fits).
pub fn looks_like_rtcp(packet: &[u8]) -> bool {
    if packet.len() < 4 || packet[0] >> 6 != 2 || !(200..=206).contains(&packet[1]) {
        return false;
    }
    let words = u16::from_be_bytes([packet[2], packet[3]]) as usize;
    (words + 1) * 4 <= packet.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_time_of_a_known_instant() {
        // 2000-01-01T00:00:00.5Z
        let t = ntp_time(Duration::from_millis(946_684_800_500));
        assert_eq!(t >> 32, 3_155_673_600);
        assert_eq!(t & 0xffff_ffff, 1 << 31);
    }

    #[test]
    fn sender_report_layout() {
        let info = SenderInfo {
            ssrc: 0x0102_0304,
            ntp: 0x1122_3344_5566_7788,
            rtp_time: 90_000,
            packets: 10,
            octets: 12_000,
        };
        let p = sender_report(&info, "agent");
        assert!(looks_like_rtcp(&p));
        assert_eq!(&p[..4], &[0x80, 200, 0, 6]);
        assert_eq!(&p[4..8], &[1, 2, 3, 4]);
        assert_eq!(&p[8..16], &0x1122_3344_5566_7788u64.to_be_bytes());
        assert_eq!(&p[16..20], &90_000u32.to_be_bytes());
        assert_eq!(&p[20..24], &10u32.to_be_bytes());
        assert_eq!(&p[24..28], &12_000u32.to_be_bytes());
        let sdes = &p[28..];
        assert!(looks_like_rtcp(sdes));
        assert_eq!(sdes[1], 202);
        let words = u16::from_be_bytes([sdes[2], sdes[3]]) as usize;
        assert_eq!((words + 1) * 4, sdes.len());
        assert_eq!(&sdes[8..10], &[1, 5]);
        assert_eq!(&sdes[10..15], b"agent");
        assert_eq!(sdes[15], 0);
    }

    #[test]
    fn receiver_report_is_recognised_and_junk_is_not() {
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 1];
        assert!(looks_like_rtcp(&rr));
        assert!(!looks_like_rtcp(&rr[..6]));
        assert!(!looks_like_rtcp(&[0x80, 96, 0, 0]));
        assert!(!looks_like_rtcp(&[]));
    }
}
