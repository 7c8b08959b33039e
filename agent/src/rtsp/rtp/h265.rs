//! H.265 over RTP (RFC 7798), without DONL: a NAL unit that fits goes out
//! as one packet, a larger one is cut into fragmentation units (type 49).
//! The marker bit is set on the last packet of the access unit.

use bytes::{BufMut, Bytes, BytesMut};

use super::{RtpTrack, HEADER_LEN};
use crate::media::h264::nal_units;

const FU: u8 = 49;
/// The 2-byte payload header and the FU header.
const FU_OVERHEAD: usize = 3;
/// Smallest packet size that still carries one byte of a fragment.
pub const MIN_PACKET: usize = HEADER_LEN + FU_OVERHEAD + 1;

/// Cuts `au` (length-prefixed NAL units) into RTP packets of at most
/// `max_packet` bytes (header included, raised to [`MIN_PACKET`]) and
/// appends them to `out`.
pub fn packetize(
    au: &Bytes,
    max_packet: usize,
    timestamp: u32,
    track: &mut RtpTrack,
    out: &mut Vec<Bytes>,
) {
    let max_payload = max_packet.max(MIN_PACKET) - HEADER_LEN;
    let nals: Vec<Bytes> = nal_units(au).filter(|n| sendable(n)).collect();
    let mut buf = BytesMut::with_capacity(au.len() + nals.len() * (HEADER_LEN + FU_OVERHEAD));
    let last_nal = nals.len().saturating_sub(1);
    for (i, nal) in nals.iter().enumerate() {
        let last_of_au = i == last_nal;
        if nal.len() <= max_payload {
            track.put_header(&mut buf, timestamp, last_of_au);
            buf.put_slice(nal);
            out.push(buf.split().freeze());
            continue;
        }
        let kind = (nal[0] >> 1) & 0x3f;
        // The payload header: the NAL unit's, with the type set to FU.
        let header = [(nal[0] & 0x81) | (FU << 1), nal[1]];
        let chunks = nal[2..].chunks(max_payload - FU_OVERHEAD);
        let n = chunks.len();
        for (j, chunk) in chunks.enumerate() {
            let (start, end) = (j == 0, j + 1 == n);
            track.put_header(&mut buf, timestamp, last_of_au && end);
            buf.put_slice(&header);
            buf.put_u8(((start as u8) << 7) | ((end as u8) << 6) | kind);
            buf.put_slice(chunk);
            out.push(buf.split().freeze());
        }
    }
}

/// A NAL unit with its 2-byte header and a type a stream may carry: types
/// 48 to 63 are RTP's own (aggregation, fragmentation, PACI) or
/// unspecified, and would be misread if sent on their own.
pub fn sendable(nal: &[u8]) -> bool {
    nal.len() > 2 && (nal[0] >> 1) & 0x3f < 48
}

/// Reassembles the NAL units of payloads made by [`packetize`]. `None` on a
/// payload it does not understand. For the tests and the fuzz target.
pub fn depacketize<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<Vec<u8>>> {
    let mut nals = Vec::new();
    let mut partial: Option<Vec<u8>> = None;
    for p in payloads {
        if p.len() < 2 {
            return None;
        }
        let kind = (p[0] >> 1) & 0x3f;
        if kind != FU {
            nals.push(p.to_vec());
            continue;
        }
        let fu = *p.get(2)?;
        let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
        if start {
            let mut nal = vec![(p[0] & 0x81) | ((fu & 0x3f) << 1), p[1]];
            nal.extend_from_slice(&p[3..]);
            partial = Some(nal);
        } else {
            partial.as_mut()?.extend_from_slice(&p[3..]);
        }
        if end {
            nals.push(partial.take()?);
        }
    }
    Some(nals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::h264::length_prefixed;
    use crate::rtsp::rtp::parse;

    fn track() -> RtpTrack {
        RtpTrack {
            payload_type: 96,
            ssrc: 1,
            next_seq: 65_534,
        }
    }

    #[test]
    fn nal_units_round_trip_through_single_and_fragmented_packets() {
        let vps = vec![0x40, 0x01, 1, 2, 3];
        let idr: Vec<u8> = [0x26, 0x01]
            .into_iter()
            .chain((0..5000).map(|i| i as u8))
            .collect();
        let au = length_prefixed([&vps[..], &idr[..]]);
        let mut out = Vec::new();
        let mut t = track();
        packetize(&au, 1400, 9000, &mut t, &mut out);
        assert_eq!(out.len(), 1 + 4);
        for p in &out {
            assert!(p.len() <= 1400);
        }
        let parsed: Vec<_> = out.iter().map(|p| parse(p).unwrap()).collect();
        assert!(parsed.iter().all(|(h, _)| h.timestamp == 9000));
        let markers: Vec<bool> = parsed.iter().map(|(h, _)| h.marker).collect();
        assert_eq!(markers, [false, false, false, false, true]);
        let seqs: Vec<u16> = parsed.iter().map(|(h, _)| h.seq).collect();
        assert_eq!(seqs, [65_534, 65_535, 0, 1, 2]);
        let payloads: Vec<&[u8]> = parsed.iter().map(|(_, p)| *p).collect();
        assert_eq!(depacketize(payloads).unwrap(), vec![vps, idr]);
    }

    #[test]
    fn rtp_reserved_and_truncated_nal_units_are_not_sent() {
        let fu_like = [49 << 1, 0x01, 7];
        let au = length_prefixed([&fu_like[..], &[0x02][..]]);
        let mut out = Vec::new();
        packetize(&au, 1400, 0, &mut track(), &mut out);
        assert!(out.is_empty());
    }
}
