//! RFC 6381 codec strings (`avc1.42C01F`, `hvc1.1.6.L93.B0`, `mp4a.40.2`)
//! for HLS CODECS and the web UI's "can this browser play it" check. Pure.

use super::{StreamInfo, TrackParams};

/// The codecs of every track, comma-separated.
pub fn codecs(info: &StreamInfo) -> String {
    info.tracks
        .iter()
        .map(|t| match &t.params {
            TrackParams::H264(p) => match p.profile_level_id() {
                Some([a, b, c]) => format!("avc1.{a:02X}{b:02X}{c:02X}"),
                None => "avc1.42C01F".to_owned(),
            },
            TrackParams::H265(p) => {
                let ptl = p.profile();
                // ISO/IEC 14496-15 E.3: the compatibility flags in reverse
                // bit order, the constraint bytes without trailing zeros.
                let compat = u32::from_be_bytes(ptl.compatibility).reverse_bits();
                let space = match ptl.profile_space {
                    1 => "A",
                    2 => "B",
                    3 => "C",
                    _ => "",
                };
                let mut s = format!(
                    "hvc1.{space}{}.{compat:X}.{}{}",
                    ptl.profile_idc,
                    if ptl.tier { 'H' } else { 'L' },
                    ptl.level_idc
                );
                let used = ptl
                    .constraints
                    .iter()
                    .rposition(|b| *b != 0)
                    .map_or(0, |i| i + 1);
                for b in &ptl.constraints[..used] {
                    s.push_str(&format!(".{b:X}"));
                }
                s
            }
            TrackParams::Aac(p) => {
                let object_type = p.config.first().map_or(2, |b| b >> 3);
                format!("mp4a.40.{object_type}")
            }
            // The sample entry's name: MJPEG has no RFC 6381 string, and
            // no browser or HLS client plays it.
            TrackParams::Jpeg(_) => "jpeg".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The picture size of the first video track.
pub fn resolution(info: &StreamInfo) -> Option<(u32, u32)> {
    info.tracks.iter().find_map(|t| match &t.params {
        TrackParams::H264(p) => Some((p.width, p.height)),
        TrackParams::H265(p) => Some((p.width, p.height)),
        TrackParams::Jpeg(p) => Some((p.width, p.height)),
        TrackParams::Aac(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::media::h265::H265Params;
    use crate::media::{test_stream_info, TrackInfo};

    #[test]
    fn avc_and_aac() {
        let info = test_stream_info();
        assert_eq!(codecs(&info), "avc1.42C01F,mp4a.40.2");
        assert_eq!(resolution(&info), Some((320, 240)));
    }

    #[test]
    fn hevc_main_level_3_1() {
        // An SPS header, VPS id/sub-layers byte, then profile-tier-level:
        // Main (idc 1), compatibility 0x60000000, constraints 0x90..., L93.
        let sps = Bytes::from_static(&[
            0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 93,
        ]);
        let mut info = test_stream_info();
        info.tracks[0] = TrackInfo {
            params: TrackParams::H265(H265Params {
                vps: Bytes::new(),
                sps,
                pps: Bytes::new(),
                width: 320,
                height: 240,
            }),
            clock_rate: 90_000,
        };
        assert_eq!(codecs(&info), "hvc1.1.6.L93.90,mp4a.40.2");
    }
}
