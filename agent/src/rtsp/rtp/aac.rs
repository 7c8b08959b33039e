//! AAC over RTP (RFC 3640, mode AAC-hbr): one access unit per packet, with
//! a 16-bit AU-headers-length and one AU header of a 13-bit size and a
//! 3-bit index.

use bytes::{BufMut, Bytes, BytesMut};

use super::{RtpTrack, HEADER_LEN};

const AU_HEADER_SECTION: usize = 4;
/// The largest AU a 13-bit size field can describe.
const MAX_AU: usize = (1 << 13) - 1;

/// Appends one packet carrying `au` to `out`. Returns false, sending
/// nothing, when the AU cannot fit in one packet of `max_packet` bytes.
pub fn packetize(
    au: &[u8],
    max_packet: usize,
    timestamp: u32,
    track: &mut RtpTrack,
    out: &mut Vec<Bytes>,
) -> bool {
    if au.len() > MAX_AU || HEADER_LEN + AU_HEADER_SECTION + au.len() > max_packet {
        return false;
    }
    let mut buf = BytesMut::with_capacity(HEADER_LEN + AU_HEADER_SECTION + au.len());
    track.put_header(&mut buf, timestamp, true);
    buf.put_u16(16);
    buf.put_u16((au.len() as u16) << 3);
    buf.put_slice(au);
    out.push(buf.freeze());
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
    fn an_au_too_large_for_the_packet_is_refused() {
        let mut t = RtpTrack {
            payload_type: 97,
            ssrc: 1,
            next_seq: 5,
        };
        let mut out = Vec::new();
        assert!(!packetize(&[0; 1390], 1400, 0, &mut t, &mut out));
        assert!(!packetize(&[0; 9000], 65_000, 0, &mut t, &mut out));
        assert!(out.is_empty());
        assert_eq!(t.next_seq, 5);
    }
}
