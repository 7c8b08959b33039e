//! FLV tag bodies for RTMP publishing (the video and audio message
//! payloads): AVC sequence header and NALUs, AAC sequence header and raw
//! frames. Pure.

use bytes::{BufMut, Bytes, BytesMut};

use crate::media::h264::H264Params;

const AVC_KEY: u8 = 0x17;
const AVC_INTER: u8 = 0x27;
/// AAC, and the flags FLV requires for it (44 kHz, 16 bit, stereo):
/// players take the real values from the AudioSpecificConfig.
const AAC: u8 = 0xaf;

/// The AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.2.4.1) of a track.
pub fn avc_decoder_config(p: &H264Params) -> Bytes {
    let mut b = BytesMut::with_capacity(11 + p.sps.len() + p.pps.len());
    b.put_u8(1);
    b.put_u8(p.sps.get(1).copied().unwrap_or(66));
    b.put_u8(p.sps.get(2).copied().unwrap_or(0));
    b.put_u8(p.sps.get(3).copied().unwrap_or(31));
    b.put_u8(0xff); // 4-byte NAL lengths
    b.put_u8(0xe1); // one SPS
    b.put_u16(p.sps.len() as u16);
    b.put_slice(&p.sps);
    b.put_u8(1);
    b.put_u16(p.pps.len() as u16);
    b.put_slice(&p.pps);
    b.freeze()
}

pub fn avc_sequence_header(p: &H264Params) -> Bytes {
    let config = avc_decoder_config(p);
    let mut b = BytesMut::with_capacity(5 + config.len());
    b.put_slice(&[AVC_KEY, 0, 0, 0, 0]);
    b.put_slice(&config);
    b.freeze()
}

/// One access unit (4-byte length-prefixed NAL units, as FLV wants them)
/// with its composition time offset in milliseconds.
pub fn avc_nalu(au: &[u8], key: bool, cts_ms: i32) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + au.len());
    b.put_u8(if key { AVC_KEY } else { AVC_INTER });
    b.put_u8(1);
    let cts = cts_ms.clamp(-(1 << 23), (1 << 23) - 1) as u32;
    b.put_slice(&cts.to_be_bytes()[1..]);
    b.put_slice(au);
    b.freeze()
}

pub fn aac_sequence_header(asc: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(2 + asc.len());
    b.put_slice(&[AAC, 0]);
    b.put_slice(asc);
    b.freeze()
}

pub fn aac_raw(frame: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(2 + frame.len());
    b.put_slice(&[AAC, 1]);
    b.put_slice(frame);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_have_their_headers() {
        let p = H264Params {
            sps: Bytes::from_static(&[0x67, 0x64, 0x00, 0x1f, 0xac]),
            pps: Bytes::from_static(&[0x68, 0xee]),
            width: 1280,
            height: 720,
        };
        let seq = avc_sequence_header(&p);
        assert_eq!(&seq[..5], &[0x17, 0, 0, 0, 0]);
        assert_eq!(&seq[5..9], &[1, 0x64, 0x00, 0x1f]);
        assert_eq!(&seq[11..13], &[0, 5]);
        let nalu = avc_nalu(&[0, 0, 0, 1, 0x41], false, 40);
        assert_eq!(&nalu[..5], &[0x27, 1, 0, 0, 40]);
        assert_eq!(avc_nalu(&[], true, -1)[2..5], [0xff, 0xff, 0xff]);
        assert_eq!(
            &aac_sequence_header(&[0x11, 0x88])[..],
            &[0xaf, 0, 0x11, 0x88]
        );
        assert_eq!(&aac_raw(&[9])[..], &[0xaf, 1, 9]);
    }
}
