//! The MJPEG parser and RTP packetizer (RFC 2435) on arbitrary bytes:
//! never panic; a picture either goes out whole (no packet over the size,
//! fragment offsets that follow each other, the tables in the first
//! packet, the marker on the last, the scan joined back as it was) or
//! sends nothing.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use streamswitch::media::jpeg;
use streamswitch::rtsp::rtp::{self, jpeg as rtp_jpeg, RtpTrack};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let max_packet = rtp_jpeg::MIN_PACKET + u16::from_be_bytes([data[0], data[1]]) as usize % 4000;
    let picture = &data[2..];
    let mut track = RtpTrack {
        payload_type: rtp_jpeg::PAYLOAD_TYPE,
        ssrc: 1,
        next_seq: 0,
    };
    let mut packets: Vec<Bytes> = Vec::new();
    let sent = rtp_jpeg::packetize(picture, max_packet, 7, &mut track, &mut packets);
    let Ok(parsed) = jpeg::parse(picture) else {
        assert!(sent.is_err() && packets.is_empty());
        return;
    };
    assert!(sent.is_ok());
    let restart = parsed.restart_interval > 0;
    let mut scan = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        assert!(p.len() <= max_packet, "{} > {max_packet}", p.len());
        let (h, payload) = rtp::parse(p).expect("an RTP packet");
        assert_eq!(h.marker, i + 1 == packets.len());
        let offset = u32::from_be_bytes([0, payload[1], payload[2], payload[3]]) as usize;
        assert_eq!(offset, scan.len());
        let mut rest = &payload[if restart { 12 } else { 8 }..];
        if i == 0 {
            assert_eq!(&rest[4..68], parsed.luma_table);
            assert_eq!(&rest[68..132], parsed.chroma_table);
            rest = &rest[132..];
        }
        scan.extend_from_slice(rest);
    }
    assert_eq!(scan, parsed.scan);
});
