//! MJPEG over RTP (RFC 2435): each packet carries the 8-byte JPEG header
//! (fragment offset into the scan, type, Q, size in 8-pixel units), a
//! restart marker header when the picture has restart intervals, and a
//! piece of the entropy-coded scan. Q is 255: the first packet of every
//! picture carries its two quantization tables, so a camera may change
//! its quality at any time. The marker bit ends a picture.

use bytes::{BufMut, Bytes, BytesMut};

use super::{RtpTrack, HEADER_LEN};
use crate::media::jpeg::{self, JpegError, Subsampling};

/// The static payload type RFC 3551 gives JPEG.
pub const PAYLOAD_TYPE: u8 = 26;
const JPEG_HEADER: usize = 8;
const RESTART_HEADER: usize = 4;
const TABLES_HEADER: usize = 4;
const TABLES: usize = 128;
/// Q values of 128 and up say the tables travel in band.
const Q_IN_BAND: u8 = 255;
/// The smallest packet that carries a byte of the scan after the tables.
pub const MIN_PACKET: usize =
    HEADER_LEN + JPEG_HEADER + RESTART_HEADER + TABLES_HEADER + TABLES + 1;

/// Appends the packets carrying the JPEG picture `data` to `out`, each at
/// most `max_packet` bytes (raised to [`MIN_PACKET`]). A picture RFC 2435
/// cannot carry is refused and nothing is sent.
pub fn packetize(
    data: &[u8],
    max_packet: usize,
    timestamp: u32,
    track: &mut RtpTrack,
    out: &mut Vec<Bytes>,
) -> Result<(), JpegError> {
    let picture = jpeg::parse(data)?;
    let mut kind = match picture.subsampling {
        Subsampling::Yuv422 => 0,
        Subsampling::Yuv420 => 1,
    };
    let restart = picture.restart_interval > 0;
    if restart {
        kind += 64;
    }
    let headers = JPEG_HEADER + if restart { RESTART_HEADER } else { 0 };
    let max_packet = max_packet.max(MIN_PACKET);
    let scan = picture.scan;
    let mut offset = 0;
    loop {
        let first = offset == 0;
        let tables = if first { TABLES_HEADER + TABLES } else { 0 };
        let room = max_packet - HEADER_LEN - headers - tables;
        let piece = &scan[offset..(offset + room).min(scan.len())];
        let last = offset + piece.len() == scan.len();
        let mut buf = BytesMut::with_capacity(HEADER_LEN + headers + tables + piece.len());
        track.put_header(&mut buf, timestamp, last);
        buf.put_u32(offset as u32 & 0x00ff_ffff);
        buf.put_u8(kind);
        buf.put_u8(Q_IN_BAND);
        buf.put_u8(picture.width.div_ceil(8) as u8);
        buf.put_u8(picture.height.div_ceil(8) as u8);
        if restart {
            buf.put_u16(picture.restart_interval);
            // F and L set, count 0x3fff: packets do not follow the
            // restart intervals.
            buf.put_u16(0xffff);
        }
        if first {
            buf.put_u8(0);
            buf.put_u8(0); // 8-bit tables
            buf.put_u16(TABLES as u16);
            buf.put_slice(picture.luma_table);
            buf.put_slice(picture.chroma_table);
        }
        buf.put_slice(piece);
        out.push(buf.freeze());
        offset += piece.len();
        if last {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::jpeg::tests::picture;
    use crate::rtsp::rtp::parse;

    fn track() -> RtpTrack {
        RtpTrack {
            payload_type: PAYLOAD_TYPE,
            ssrc: 9,
            next_seq: 100,
        }
    }

    /// What a receiver rebuilds: the main header fields of the first
    /// packet, the tables, and the scan joined by fragment offset.
    fn reassemble(packets: &[Bytes], restart: bool) -> ([u8; 4], Vec<u8>, Vec<u8>) {
        let mut fields = [0; 4];
        let mut tables = Vec::new();
        let mut scan = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            let (h, payload) = parse(p).unwrap();
            assert_eq!(h.marker, i + 1 == packets.len());
            assert_eq!((h.seq, h.timestamp), (100 + i as u16, 3000));
            let offset = u32::from_be_bytes([0, payload[1], payload[2], payload[3]]) as usize;
            assert_eq!(offset, scan.len(), "fragment offsets follow each other");
            fields.copy_from_slice(&payload[4..8]);
            let mut rest = &payload[8..];
            if restart {
                rest = &rest[4..];
            }
            if offset == 0 {
                let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
                tables = rest[4..4 + len].to_vec();
                rest = &rest[4 + len..];
            }
            scan.extend_from_slice(rest);
        }
        (fields, tables, scan)
    }

    #[test]
    fn a_picture_travels_with_its_tables_and_size() {
        let data = picture(320, 240, None);
        let p = jpeg::parse(&data).unwrap();
        let mut out = Vec::new();
        packetize(&data, 1200, 3000, &mut track(), &mut out).unwrap();
        assert!(out.len() > 1);
        assert!(out.iter().all(|p| p.len() <= 1200));
        let (fields, tables, scan) = reassemble(&out, false);
        assert_eq!(fields, [1, 255, 40, 30]);
        assert_eq!(&tables[..64], p.luma_table);
        assert_eq!(&tables[64..], p.chroma_table);
        assert_eq!(scan, p.scan);
    }

    #[test]
    fn restart_intervals_get_their_header() {
        let data = picture(64, 48, Some(2));
        let mut out = Vec::new();
        packetize(&data, MIN_PACKET + 20, 3000, &mut track(), &mut out).unwrap();
        let (fields, _, scan) = reassemble(&out, true);
        assert_eq!(fields[0], 65);
        assert_eq!(scan, jpeg::parse(&data).unwrap().scan);
        let (_, first) = parse(&out[0]).unwrap();
        assert_eq!(&first[8..12], &[0, 2, 0xff, 0xff]);
    }

    #[test]
    fn a_picture_rtp_cannot_carry_sends_nothing() {
        let mut t = track();
        let mut out = Vec::new();
        assert_eq!(
            packetize(b"\xff\xd8\xff", 1400, 0, &mut t, &mut out),
            Err(JpegError::Truncated(2))
        );
        assert!(out.is_empty());
        assert_eq!(t.next_seq, 100);
    }
}
