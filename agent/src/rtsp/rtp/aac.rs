//! AAC over RTP (RFC 3640, mode AAC-hbr): one access unit per packet, with
//! a 16-bit AU-headers-length and one AU header of a 13-bit size and a
//! 3-bit index. An AU larger than a packet is fragmented (RFC 3640 3.2.3):
//! every fragment carries the same AU header, whose size is the whole
//! AU's, and the same timestamp; the marker bit is set on the last one.

use bytes::{BufMut, Bytes, BytesMut};

use super::{RtpTrack, HEADER_LEN};

const AU_HEADER_SECTION: usize = 4;
/// The largest AU a 13-bit size field can describe.
const MAX_AU: usize = (1 << 13) - 1;
/// The smallest packet that carries a byte of an AU.
pub const MIN_PACKET: usize = HEADER_LEN + AU_HEADER_SECTION + 1;

/// Appends the packets carrying `au` to `out`: one, or its fragments when
/// it does not fit in `max_packet` bytes (raised to [`MIN_PACKET`], as the
/// video packetizers raise theirs). Returns false, sending nothing, when
/// the AU is larger than an AU header can describe (8191 bytes).
pub fn packetize(
    au: &[u8],
    max_packet: usize,
    timestamp: u32,
    track: &mut RtpTrack,
    out: &mut Vec<Bytes>,
) -> bool {
    let room = max_packet.max(MIN_PACKET) - HEADER_LEN - AU_HEADER_SECTION;
    if au.len() > MAX_AU {
        return false;
    }
    let count = au.len().div_ceil(room).max(1);
    for (i, piece) in au
        .chunks(room)
        .chain(au.is_empty().then_some(&au[..0]))
        .enumerate()
    {
        let mut buf = BytesMut::with_capacity(HEADER_LEN + AU_HEADER_SECTION + piece.len());
        track.put_header(&mut buf, timestamp, i + 1 == count);
        buf.put_u16(16);
        buf.put_u16((au.len() as u16) << 3);
        buf.put_slice(piece);
        out.push(buf.freeze());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtsp::rtp::parse;

    #[test]
    fn one_au_per_packet_with_its_size_in_the_au_header() {
        let mut t = RtpTrack {
            payload_type: 97,
            ssrc: 1,
            next_seq: 5,
        };
        let au = vec![0xabu8; 300];
        let mut out = Vec::new();
        assert!(packetize(&au, 1400, 1024, &mut t, &mut out));
        let (h, payload) = parse(&out[0]).unwrap();
        assert!(h.marker);
        assert_eq!((h.seq, h.timestamp, h.payload_type), (5, 1024, 97));
        assert_eq!(
            &payload[..4],
            &[0x00, 0x10, (300 >> 5) as u8, ((300 & 0x1f) << 3) as u8]
        );
        assert_eq!(&payload[4..], &au[..]);
    }

    #[test]
    fn an_au_larger_than_a_packet_is_fragmented() {
        let mut t = RtpTrack {
            payload_type: 97,
            ssrc: 1,
            next_seq: 5,
        };
        let au: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut out = Vec::new();
        assert!(packetize(&au, 1400, 2048, &mut t, &mut out));
        assert_eq!(out.len(), 3);
        let mut joined = Vec::new();
        for (i, p) in out.iter().enumerate() {
            assert!(p.len() <= 1400);
            let (h, payload) = parse(p).unwrap();
            assert_eq!((h.seq, h.timestamp), (5 + i as u16, 2048));
            assert_eq!(h.marker, i == 2, "marker only on the last fragment");
            // Each fragment's AU header gives the whole AU's size.
            assert_eq!(
                &payload[..4],
                &[0x00, 0x10, (3000 >> 5) as u8, ((3000 & 0x1f) << 3) as u8]
            );
            joined.extend_from_slice(&payload[4..]);
        }
        assert_eq!(joined, au);
    }

    /// Found by the rtp_packetizer fuzz target: a packet size below the
    /// AU header's room refused a 13-byte AU instead of fragmenting it.
    #[test]
    fn a_packet_size_below_the_minimum_is_raised_to_it() {
        let mut t = RtpTrack {
            payload_type: 97,
            ssrc: 1,
            next_seq: 0,
        };
        let au = [7u8; 13];
        let mut out = Vec::new();
        assert!(packetize(&au, 15, 0, &mut t, &mut out));
        assert_eq!(out.len(), 13);
        assert!(out.iter().all(|p| p.len() == MIN_PACKET));
    }

    #[test]
    fn an_au_too_large_for_an_au_header_is_refused() {
        let mut t = RtpTrack {
            payload_type: 97,
            ssrc: 1,
            next_seq: 5,
        };
        let mut out = Vec::new();
        assert!(!packetize(&[0; 9000], 65_000, 0, &mut t, &mut out));
        assert!(out.is_empty());
        assert_eq!(t.next_seq, 5);
    }
}
