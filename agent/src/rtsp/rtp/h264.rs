//! H.264 over RTP (RFC 6184), packetization mode 1: a NAL unit that fits
//! goes out as one packet, a larger one is cut into FU-A fragments. The
//! marker bit is set on the last packet of the access unit.

use bytes::{BufMut, Bytes, BytesMut};

use super::{RtpTrack, HEADER_LEN};
use crate::media::h264::nal_units;

const FU_A: u8 = 28;
/// The FU indicator and FU header.
const FU_OVERHEAD: usize = 2;
/// Smallest packet size that still carries one byte of a fragment.
pub const MIN_PACKET: usize = HEADER_LEN + FU_OVERHEAD + 1;

/// Cuts `au` (length-prefixed NAL units) into RTP packets of at most
/// `max_packet` bytes (header included, raised to [`MIN_PACKET`]) and
/// appends them to `out`. All packets share one allocation.
pub fn packetize(
    au: &Bytes,
    max_packet: usize,
    timestamp: u32,
    track: &mut RtpTrack,
    out: &mut Vec<Bytes>,
) {
    let max_payload = max_packet.max(MIN_PACKET) - HEADER_LEN;
    let nals: Vec<Bytes> = nal_units(au).filter(|n| sendable(n)).collect();
    let packets: usize = nals
        .iter()
        .map(|n| packet_count(n.len(), max_payload))
        .sum();
    let mut buf = BytesMut::with_capacity(au.len() + packets * (HEADER_LEN + FU_OVERHEAD));
    let last_nal = nals.len().saturating_sub(1);
    for (i, nal) in nals.iter().enumerate() {
        let last_of_au = i == last_nal;
        if nal.len() <= max_payload {
            track.put_header(&mut buf, timestamp, last_of_au);
            buf.put_slice(nal);
            out.push(buf.split().freeze());
            continue;
        }
        let indicator = (nal[0] & 0xe0) | FU_A;
        let kind = nal[0] & 0x1f;
        let chunks = nal[1..].chunks(max_payload - FU_OVERHEAD);
        let n = chunks.len();
        for (j, chunk) in chunks.enumerate() {
            let (start, end) = (j == 0, j + 1 == n);
            track.put_header(&mut buf, timestamp, last_of_au && end);
            buf.put_u8(indicator);
            buf.put_u8(((start as u8) << 7) | ((end as u8) << 6) | kind);
            buf.put_slice(chunk);
            out.push(buf.split().freeze());
        }
    }
}

/// NAL types 24 to 31 do not occur in an H.264 stream: RFC 6184 uses them
/// for aggregation and fragmentation units, so a receiver would misread
/// such a NAL unit sent on its own (a fuzz finding). They are dropped.
pub fn sendable(nal: &[u8]) -> bool {
    nal.first().is_some_and(|b| b & 0x1f < 24)
}

fn packet_count(nal_len: usize, max_payload: usize) -> usize {
    if nal_len <= max_payload {
        1
    } else {
        (nal_len - 1).div_ceil(max_payload - FU_OVERHEAD)
    }
}

/// Reassembles the NAL units of RTP payloads made by [`packetize`] (single
/// NAL units and FU-A). `None` on a payload it does not understand. Used by
/// the tests and the fuzz target to check the packetizer.
pub fn depacketize<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<Vec<u8>>> {
    let mut nals = Vec::new();
    let mut partial: Option<Vec<u8>> = None;
    for p in payloads {
        let first = *p.first()?;
        if first & 0x1f != FU_A {
            if partial.is_some() {
                return None;
            }
            nals.push(p.to_vec());
            continue;
        }
        let header = *p.get(1)?;
        let (start, end) = (header & 0x80 != 0, header & 0x40 != 0);
        let nal = match (start, partial.take()) {
            (true, None) => {
                let mut nal = vec![(first & 0xe0) | (header & 0x1f)];
                nal.extend_from_slice(&p[2..]);
                nal
            }
            (false, Some(mut nal)) => {
                nal.extend_from_slice(&p[2..]);
                nal
            }
            _ => return None,
        };
        if end {
            nals.push(nal);
        } else {
            partial = Some(nal);
        }
    }
    partial.is_none().then_some(nals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::h264::length_prefixed;
    use crate::rtsp::rtp::parse;

    fn track() -> RtpTrack {
        RtpTrack {
            payload_type: 96,
            ssrc: 7,
            next_seq: 100,
        }
    }

    #[test]
    fn small_nals_go_one_per_packet_with_the_marker_on_the_last() {
        let au = length_prefixed([&[0x67u8, 1, 2][..], &[0x68, 3][..], &[0x65, 9, 9, 9][..]]);
        let mut out = Vec::new();
        let mut t = track();
        packetize(&au, 1400, 3000, &mut t, &mut out);
        assert_eq!(out.len(), 3);
        let headers: Vec<_> = out.iter().map(|p| parse(p).unwrap().0).collect();
        assert_eq!(
            headers.iter().map(|h| h.marker).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(
            headers.iter().map(|h| h.seq).collect::<Vec<_>>(),
            [100, 101, 102]
        );
        assert!(headers.iter().all(|h| h.timestamp == 3000 && h.ssrc == 7));
        assert_eq!(parse(&out[2]).unwrap().1, &[0x65, 9, 9, 9]);
        assert_eq!(t.next_seq, 103);
    }

    #[test]
    fn large_nal_is_fragmented_within_the_mtu_and_reassembles() {
        let big: Vec<u8> = std::iter::once(0x65)
            .chain((0..5000u32).map(|i| i as u8))
            .collect();
        let small = [0x41u8, 1, 2, 3];
        let au = length_prefixed([&small[..], &big[..]]);
        for mtu in [MIN_PACKET, 200, 1400, 4999] {
            let mut out = Vec::new();
            packetize(&au, mtu, 0, &mut track(), &mut out);
            assert!(out.iter().all(|p| p.len() <= mtu), "mtu {mtu}");
            let markers: Vec<bool> = out.iter().map(|p| parse(p).unwrap().0.marker).collect();
            assert_eq!(markers.iter().filter(|m| **m).count(), 1);
            assert!(markers[markers.len() - 1]);
            let nals = depacketize(out.iter().map(|p| parse(p).unwrap().1)).unwrap();
            assert_eq!(nals, vec![small.to_vec(), big.clone()], "mtu {mtu}");
            // The FU indicator keeps NRI and the FU header the NAL type.
            let fu_start = out
                .iter()
                .map(|p| parse(p).unwrap().1)
                .find(|p| p[0] & 0x1f == FU_A && p[1] & 0x1f == 5)
                .unwrap();
            assert_eq!(fu_start[0], 0x60 | FU_A);
            assert_eq!(fu_start[1], 0x80 | 5);
        }
    }

    #[test]
    fn nal_types_reserved_for_rtp_are_not_sent() {
        let au = length_prefixed([&[0x41u8, 1][..], &[0x7c, 2][..], &[0x58, 3][..]]);
        let mut out = Vec::new();
        packetize(&au, 1400, 0, &mut track(), &mut out);
        assert_eq!(out.len(), 1);
        let (h, payload) = parse(&out[0]).unwrap();
        assert_eq!(payload, &[0x41, 1]);
        assert!(h.marker);
    }

    #[test]
    fn empty_and_truncated_access_units_make_no_bad_packets() {
        let mut out = Vec::new();
        packetize(&Bytes::new(), 1400, 0, &mut track(), &mut out);
        packetize(
            &Bytes::from_static(&[0, 0, 0, 9, 1]),
            1400,
            0,
            &mut track(),
            &mut out,
        );
        assert!(out.is_empty());
    }
}
