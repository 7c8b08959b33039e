//! RTP (RFC 3550) packets: the fixed header, and the packetizers that cut
//! access units into payloads (one module per codec).

pub mod aac;
pub mod h264;
pub mod h265;
pub mod jpeg;

use bytes::{BufMut, Bytes, BytesMut};

use crate::media::h264::{length_prefixed, nal_units, NAL_SPS};
use crate::media::{h265 as hevc, Frame, TrackParams};

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

/// Packetizes one frame of a track with `params`, keyframes with the
/// track's parameter sets in band (see [`with_parameter_sets`]).
pub fn packetize(
    params: &TrackParams,
    frame: &Frame,
    max_packet: usize,
    timestamp: u32,
    track: &mut RtpTrack,
    out: &mut Vec<Bytes>,
) {
    match params {
        TrackParams::H264(p) => {
            let sets: [&[u8]; 2] = [&p.sps, &p.pps];
            let au = with_parameter_sets(&frame.data, frame.key, &sets, is_h264_sps);
            h264::packetize(&au, max_packet, timestamp, track, out)
        }
        TrackParams::H265(p) => {
            let sets: [&[u8]; 3] = [&p.vps, &p.sps, &p.pps];
            let au = with_parameter_sets(&frame.data, frame.key, &sets, is_h265_sps);
            h265::packetize(&au, max_packet, timestamp, track, out)
        }
        TrackParams::Aac(_) => {
            if !aac::packetize(&frame.data, max_packet, timestamp, track, out) {
                tracing::debug!(len = frame.data.len(), "AAC frame larger than 8191 bytes");
            }
        }
        TrackParams::Jpeg(_) => {
            if let Err(e) = jpeg::packetize(&frame.data, max_packet, timestamp, track, out) {
                tracing::debug!(len = frame.data.len(), "MJPEG picture not sent: {e}");
            }
        }
    }
}

/// A keyframe with the stream's parameter sets (SPS and PPS; VPS too for
/// H.265) in front when it does not carry an SPS itself: a client that
/// joined with the SDP's parameter sets gets new ones in band before the
/// first picture that needs them.
fn with_parameter_sets(au: &Bytes, key: bool, sets: &[&[u8]], is_sps: fn(&[u8]) -> bool) -> Bytes {
    if !key || sets.iter().any(|s| s.is_empty()) || nal_units(au).any(|n| is_sps(&n)) {
        return au.clone();
    }
    let sets = length_prefixed(sets.iter().copied());
    let mut joined = BytesMut::with_capacity(sets.len() + au.len());
    joined.extend_from_slice(&sets);
    joined.extend_from_slice(au);
    joined.freeze()
}

fn is_h264_sps(nal: &[u8]) -> bool {
    nal.first().map(|b| b & 0x1f) == Some(NAL_SPS)
}

fn is_h265_sps(nal: &[u8]) -> bool {
    hevc::nal_type(nal) == Some(hevc::NAL_SPS)
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
