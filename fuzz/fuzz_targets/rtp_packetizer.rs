//! The RTP packetizers on arbitrary access units and packet sizes: never
//! panic, no packet over the size, one marker at the end of the access
//! unit, consecutive sequence numbers, and reassembly (H.264 FU-A, H.265
//! FU) gives back the NAL units.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use streamswitch::media::h264::length_prefixed;
use streamswitch::rtsp::rtp::{self, aac, h264, h265, RtpTrack};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    // Every packetizer raises a smaller size to its minimum.
    let smallest = h264::MIN_PACKET.max(h265::MIN_PACKET).max(aac::MIN_PACKET);
    let max_packet = smallest + u16::from_be_bytes([data[0], data[1]]) as usize % 4000;
    let seq = u16::from_be_bytes([data[2], data[3]]);
    // The rest: NAL units, each a 16-bit length and that many bytes.
    let mut rest = &data[4..];
    let mut nals: Vec<&[u8]> = Vec::new();
    while rest.len() >= 2 {
        let len = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        nals.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    let au = length_prefixed(nals.iter().copied());
    let mut track = RtpTrack {
        payload_type: 96,
        ssrc: 1,
        next_seq: seq,
    };
    let mut packets: Vec<Bytes> = Vec::new();
    h264::packetize(&au, max_packet, 9, &mut track, &mut packets);
    let parsed: Vec<_> = packets
        .iter()
        .map(|p| {
            assert!(p.len() <= max_packet, "{} > {max_packet}", p.len());
            rtp::parse(p).expect("an RTP packet")
        })
        .collect();
    for (i, (h, _)) in parsed.iter().enumerate() {
        assert_eq!(h.seq, seq.wrapping_add(i as u16));
        assert_eq!(h.marker, i + 1 == parsed.len());
        assert_eq!(h.timestamp, 9);
    }
    assert_eq!(track.next_seq, seq.wrapping_add(parsed.len() as u16));
    let expected: Vec<Vec<u8>> = nals
        .iter()
        .filter(|n| h264::sendable(n))
        .map(|n| n.to_vec())
        .collect();
    let got = h264::depacketize(parsed.iter().map(|(_, p)| *p)).expect("reassembles");
    assert_eq!(got, expected);

    // The same access unit as H.265.
    let mut packets: Vec<Bytes> = Vec::new();
    let start = track.next_seq;
    h265::packetize(&au, max_packet, 9, &mut track, &mut packets);
    let parsed: Vec<_> = packets
        .iter()
        .map(|p| {
            assert!(p.len() <= max_packet.max(h265::MIN_PACKET));
            rtp::parse(p).expect("an RTP packet")
        })
        .collect();
    for (i, (h, _)) in parsed.iter().enumerate() {
        assert_eq!(h.seq, start.wrapping_add(i as u16));
        assert_eq!(h.marker, i + 1 == parsed.len());
    }
    let expected: Vec<Vec<u8>> = nals
        .iter()
        .filter(|n| h265::sendable(n))
        .map(|n| n.to_vec())
        .collect();
    let got = h265::depacketize(parsed.iter().map(|(_, p)| *p)).expect("reassembles");
    assert_eq!(got, expected);

    // The same bytes as one AAC frame.
    let mut out = Vec::new();
    if aac::packetize(&data[4..], max_packet, 0, &mut track, &mut out) {
        // One packet, or fragments (RFC 3640 3.2.3) that join back into
        // the AU, each with the whole AU's size, the marker on the last.
        let mut joined = Vec::new();
        for (i, p) in out.iter().enumerate() {
            assert!(p.len() <= max_packet);
            let (h, payload) = rtp::parse(p).expect("an RTP packet");
            assert_eq!(h.marker, i + 1 == out.len());
            let size = (u16::from_be_bytes([payload[2], payload[3]]) >> 3) as usize;
            assert_eq!(size, data.len() - 4);
            joined.extend_from_slice(&payload[4..]);
        }
        assert_eq!(joined, &data[4..]);
    } else {
        assert!(out.is_empty() && data.len() - 4 > 8191);
    }
});
