//! RTP (RFC 3550) packets: the fixed header, and the packetizers that cut
//! access units into payloads (one module per codec).

pub mod aac;
pub mod h264;
pub mod h265;

use bytes::{BufMut, BytesMut};

pub const HEADER_LEN: usize = 12;

/// The per-track state of an RTP sender: who it is and the next sequence
/// number.
#[derive(Clone, Debug)]
pub struct RtpTrack {
    pub payload_type: u8,
    pub ssrc: u32,
    pub next_seq: u16,
}

impl RtpTrack {
    /// Appends a fixed RTP header (version 2, no padding, extension or
    /// CSRC) and takes a sequence number.
    pub fn put_header(&mut self, buf: &mut BytesMut, timestamp: u32, marker: bool) {
        buf.put_u8(0x80);
        buf.put_u8(((marker as u8) << 7) | (self.payload_type & 0x7f));
        buf.put_u16(self.next_seq);
        buf.put_u32(timestamp);
        buf.put_u32(self.ssrc);
        self.next_seq = self.next_seq.wrapping_add(1);
    }
}

/// The fields of an RTP header, read back (for tests and the fuzz target).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// Parses the fixed header of an RTP packet and returns it with the payload.
pub fn parse(packet: &[u8]) -> Option<(ParsedHeader, &[u8])> {
    if packet.len() < HEADER_LEN || packet[0] >> 6 != 2 {
        return None;
    }
    let csrcs = (packet[0] & 0x0f) as usize * 4;
    let payload = packet.get(HEADER_LEN + csrcs..)?;
    Some((
        ParsedHeader {
            marker: packet[1] & 0x80 != 0,
            payload_type: packet[1] & 0x7f,
            seq: u16::from_be_bytes([packet[2], packet[3]]),
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
        },
        payload,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_sequence_wraps() {
        let mut t = RtpTrack {
            payload_type: 96,
            ssrc: 0xdead_beef,
            next_seq: u16::MAX,
        };
        let mut buf = BytesMut::new();
        t.put_header(&mut buf, 1234, true);
        buf.put_slice(b"xy");
        let (h, payload) = parse(&buf).unwrap();
        assert_eq!(
            h,
            ParsedHeader {
                marker: true,
                payload_type: 96,
                seq: u16::MAX,
                timestamp: 1234,
                ssrc: 0xdead_beef
            }
        );
        assert_eq!(payload, b"xy");
        assert_eq!(t.next_seq, 0);
    }
}
