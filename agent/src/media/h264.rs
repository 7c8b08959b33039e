//! H.264 helpers: NAL unit framing and the parameters a track needs.

use bytes::{BufMut, Bytes, BytesMut};
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::BitReader;

pub const NAL_IDR: u8 = 5;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;

/// SPS and PPS of an H.264 track, and the picture size they describe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct H264Params {
    pub sps: Bytes,
    pub pps: Bytes,
    pub width: u32,
    pub height: u32,
}

impl H264Params {
    /// profile_idc, constraint flags and level_idc: the SDP profile-level-id
    /// and the avcC header. `None` when the SPS is too short.
    pub fn profile_level_id(&self) -> Option<[u8; 3]> {
        Some([*self.sps.get(1)?, *self.sps.get(2)?, *self.sps.get(3)?])
    }
}

/// The picture size an SPS NAL unit (with its header byte, with
/// emulation-prevention bytes) describes, after frame cropping. `None` when
/// it is not an SPS or does not parse.
///
/// The parsing is h264-reader's: it handles every profile's
/// chroma_format_idc branch, scaling lists and field coding.
pub fn sps_size(sps: &[u8]) -> Option<(u32, u32)> {
    let (&header, rest) = sps.split_first()?;
    if header & 0x1f != NAL_SPS {
        return None;
    }
    let rbsp = unescape_rbsp(rest);
    let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).ok()?;
    sps.pixel_dimensions().ok()
}

/// What the avcC box of an SPS's profile must carry besides the SPS and
/// PPS (ISO/IEC 14496-15 5.3.3.1): chroma_format, bit_depth_luma and
/// bit_depth_chroma, for every profile but Baseline, Main and Extended (66,
/// 77, 88), as ffmpeg writes them. `None` for those three, or when the SPS
/// does not parse.
pub fn avcc_extension(sps: &[u8]) -> Option<(u8, u8, u8)> {
    let (&header, rest) = sps.split_first()?;
    if header & 0x1f != NAL_SPS || matches!(rest.first(), Some(66 | 77 | 88) | None) {
        return None;
    }
    let rbsp = unescape_rbsp(rest);
    let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).ok()?;
    let c = &sps.chroma_info;
    let chroma = match c.chroma_format {
        h264_reader::nal::sps::ChromaFormat::Monochrome => 0,
        h264_reader::nal::sps::ChromaFormat::YUV420 => 1,
        h264_reader::nal::sps::ChromaFormat::YUV422 => 2,
        h264_reader::nal::sps::ChromaFormat::YUV444 => 3,
        h264_reader::nal::sps::ChromaFormat::Invalid(_) => return None,
    };
    Some((
        chroma,
        c.bit_depth_luma_minus8 + 8,
        c.bit_depth_chroma_minus8 + 8,
    ))
}

/// Joins NAL units into one access unit with 4-byte big-endian lengths.
pub fn length_prefixed<'a>(nals: impl IntoIterator<Item = &'a [u8]>) -> Bytes {
    let mut out = BytesMut::new();
    for nal in nals {
        out.put_u32(nal.len() as u32);
        out.put_slice(nal);
    }
    out.freeze()
}

/// Iterates over the NAL units of a length-prefixed access unit. Stops at the
/// first length that runs past the end.
pub fn nal_units(au: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let len_bytes = au.get(pos..pos + 4)?;
        let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        let start = pos + 4;
        let end = start.checked_add(len as usize)?;
        if end > au.len() {
            return None;
        }
        pos = end;
        Some(au.slice(start..end))
    })
}

/// Removes emulation-prevention bytes (00 00 03 -> 00 00).
pub fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nal_units_split_and_stop_on_truncation() {
        let au = length_prefixed([&[0x67u8, 1, 2][..], &[0x68, 3][..]]);
        let nals: Vec<Bytes> = nal_units(&au).collect();
        assert_eq!(
            nals,
            vec![
                Bytes::from_static(&[0x67, 1, 2]),
                Bytes::from_static(&[0x68, 3])
            ]
        );
        let truncated = au.slice(..au.len() - 1);
        assert_eq!(nal_units(&truncated).count(), 1);
    }

    /// x264's SPS of a 320x240 High 4:2:2 stream, and of a Baseline one.
    const HIGH_422_SPS: &str = "677a000cbcd94141fb011000000300100000030140f1429960";
    const BASELINE_SPS: &str = "6742c00bd90141fb011000000300100000030140f142a480";

    #[test]
    fn high_profiles_need_the_avcc_extension_fields() {
        assert_eq!(avcc_extension(&sps(HIGH_422_SPS)), Some((2, 8, 8)));
        assert_eq!(sps_size(&sps(HIGH_422_SPS)), Some((320, 240)));
        assert_eq!(avcc_extension(&sps(BASELINE_SPS)), None);
        assert_eq!(avcc_extension(&[0x67]), None);
    }

    #[test]
    fn an_init_segment_of_a_high_profile_carries_them() {
        use mp4_atom::{Decode, Moov};
        let mut info = crate::media::test_stream_info();
        info.tracks[0].params = crate::media::TrackParams::H264(H264Params {
            sps: Bytes::from(sps(HIGH_422_SPS)),
            pps: Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]),
            width: 320,
            height: 240,
        });
        let init = crate::fmp4::init_segment(&std::sync::Arc::new(info), None).unwrap();
        let at = init.windows(4).position(|w| w == b"moov").unwrap() - 4;
        let moov = Moov::decode(&mut &init[at..]).unwrap();
        let stsd = &moov.trak[0].mdia.minf.stbl.stsd;
        let Some(mp4_atom::Codec::Avc1(avc1)) = stsd.codecs.first() else {
            panic!("{stsd:?}");
        };
        let ext = avc1.avcc.ext.as_ref().expect("the extension fields");
        assert_eq!(
            (ext.chroma_format, ext.bit_depth_luma, ext.bit_depth_chroma),
            (2, 8, 8)
        );
    }

    fn sps(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    /// SPSs that ffmpeg's libx264 wrote (high profile unless said otherwise).
    #[test]
    fn sps_sizes_of_libx264_streams() {
        let cases = [
            (
                "6764000dacd94141fb011000000300100000030320f1429960",
                (320, 240),
            ),
            (
                "6764001facd9405005bb011000000300100000030320f1831960",
                (1280, 720),
            ),
            // 1088 lines coded, 8 cropped.
            (
                "67640028acd940780227e5c044000003000400000300c83c60c658",
                (1920, 1080),
            ),
            // Baseline, 368 lines coded.
            (
                "6742c01ed900a02ff97011000003000100000300320f162e48",
                (640, 360),
            ),
            // High 4:2:2 with a scaling matrix: cropping in 4:2:2 units.
            (
                "677a0028bcd940780227e27011000003000100000300320f183196",
                (1920, 1080),
            ),
            // Interlaced (frame_mbs_only_flag 0): cropping in field pairs.
            (
                "67640028acd94078044fde0220000003002000000643e2c5b2c0",
                (1920, 1080),
            ),
        ];
        for (hex, size) in cases {
            assert_eq!(sps_size(&sps(hex)), Some(size), "{hex}");
        }
    }

    #[test]
    fn sps_size_rejects_garbage() {
        assert_eq!(sps_size(&[]), None);
        assert_eq!(sps_size(&[0x67]), None);
        assert_eq!(sps_size(&[0x68, 0xce, 0x3c, 0x80]), None);
        assert_eq!(
            sps_size(&[0x67, 0x64, 0, 0x28, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        let good = sps("67640028acd940780227e5c044000003000400000300c83c60c658");
        for len in 0..good.len() - 1 {
            assert_eq!(sps_size(&good[..len]), None, "truncated to {len}");
        }
    }

    #[test]
    fn emulation_prevention_is_removed() {
        assert_eq!(unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }
}
