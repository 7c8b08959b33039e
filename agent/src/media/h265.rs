//! H.265 helpers: the parameters a track needs, and the picture size an SPS
//! describes. NAL units are framed as for H.264 (see [`super::h264`]).

use bytes::Bytes;
use h264_reader::rbsp::{BitRead, BitReader, BitReaderError};

use super::h264::unescape_rbsp;

pub const NAL_VPS: u8 = 32;
pub const NAL_SPS: u8 = 33;
pub const NAL_PPS: u8 = 34;

/// VPS, SPS and PPS of an H.265 track, and the picture size they describe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct H265Params {
    pub vps: Bytes,
    pub sps: Bytes,
    pub pps: Bytes,
    pub width: u32,
    pub height: u32,
}

/// general_profile_tier_level of an SPS: what hvcC and the SDP carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProfileTierLevel {
    pub profile_space: u8,
    pub tier: bool,
    pub profile_idc: u8,
    pub compatibility: [u8; 4],
    pub constraints: [u8; 6],
    pub level_idc: u8,
}

impl H265Params {
    /// The profile, tier and level of the SPS; defaults (Main, level 3.1)
    /// when it is too short.
    pub fn profile(&self) -> ProfileTierLevel {
        profile(&self.sps).unwrap_or(ProfileTierLevel {
            profile_idc: 1,
            level_idc: 93,
            ..Default::default()
        })
    }
}

/// Reads general_profile_tier_level from an SPS NAL unit (header included,
/// emulation prevention as sent).
pub fn profile(sps: &[u8]) -> Option<ProfileTierLevel> {
    if nal_type(sps)? != NAL_SPS {
        return None;
    }
    let rbsp = unescape_rbsp(sps.get(2..)?);
    // One byte of VPS id, sub-layers and nesting, then 12 bytes of PTL.
    let b = rbsp.get(1..13)?;
    Some(ProfileTierLevel {
        profile_space: b[0] >> 6,
        tier: b[0] & 0x20 != 0,
        profile_idc: b[0] & 0x1f,
        compatibility: [b[1], b[2], b[3], b[4]],
        constraints: [b[5], b[6], b[7], b[8], b[9], b[10]],
        level_idc: b[11],
    })
}

/// An IRAP picture (types 16 to 23): a point where decoding can start.
pub fn is_irap(nal_type: u8) -> bool {
    (16..=23).contains(&nal_type)
}

/// The NAL unit type of an H.265 NAL unit, from its 2-byte header.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| (b >> 1) & 0x3f)
}

/// The picture size an SPS NAL unit (with its 2-byte header, with
/// emulation-prevention bytes) describes, after the conformance window.
/// `None` when it is not an SPS or does not parse.
pub fn sps_size(sps: &[u8]) -> Option<(u32, u32)> {
    if nal_type(sps)? != NAL_SPS {
        return None;
    }
    let rbsp = unescape_rbsp(sps.get(2..)?);
    read_size(&mut BitReader::new(&rbsp[..])).ok().flatten()
}

/// Reads seq_parameter_set_rbsp (H.265 7.3.2.2.1) up to the conformance
/// window. `Ok(None)` when the values make no picture.
fn read_size<R: BitRead>(r: &mut R) -> Result<Option<(u32, u32)>, BitReaderError> {
    r.skip(4, "sps_video_parameter_set_id")?;
    let max_sub_layers_minus1: u8 = r.read(3, "sps_max_sub_layers_minus1")?;
    r.skip(1, "sps_temporal_id_nesting_flag")?;
    skip_profile_tier_level(r, max_sub_layers_minus1)?;
    r.read_ue("sps_seq_parameter_set_id")?;
    let chroma_format_idc = r.read_ue("chroma_format_idc")?;
    let separate_colour_plane = chroma_format_idc == 3 && r.read_bool("separate_colour_plane")?;
    let width = r.read_ue("pic_width_in_luma_samples")?;
    let height = r.read_ue("pic_height_in_luma_samples")?;
    let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
    if r.read_bool("conformance_window_flag")? {
        left = r.read_ue("conf_win_left_offset")?;
        right = r.read_ue("conf_win_right_offset")?;
        top = r.read_ue("conf_win_top_offset")?;
        bottom = r.read_ue("conf_win_bottom_offset")?;
    }
    // Offsets are in chroma samples (H.265 table 6-1).
    let (sub_width, sub_height) = match (chroma_format_idc, separate_colour_plane) {
        (1, _) => (2, 2),
        (2, _) => (2, 1),
        _ => (1, 1),
    };
    let crop = |size: u32, a: u32, b: u32, unit: u32| {
        let cut = a.checked_add(b)?.checked_mul(unit)?;
        size.checked_sub(cut).filter(|&s| s > 0)
    };
    let size = crop(width, left, right, sub_width).zip(crop(height, top, bottom, sub_height));
    Ok(size)
}

/// Skips profile_tier_level(1, sps_max_sub_layers_minus1) (H.265 7.3.3).
fn skip_profile_tier_level<R: BitRead>(
    r: &mut R,
    max_sub_layers_minus1: u8,
) -> Result<(), BitReaderError> {
    // general_profile_space .. general_level_idc: 2+1+5+32+4+43+1+8 bits.
    r.skip(32, "general_profile")?;
    r.skip(32, "general_profile_compatibility")?;
    r.skip(32, "general_constraints_and_level")?;
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(max_sub_layers_minus1 as usize) {
        *p = (
            r.read_bool("sub_layer_profile_present_flag")?,
            r.read_bool("sub_layer_level_present_flag")?,
        );
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(
            2 * (8 - max_sub_layers_minus1 as u32),
            "reserved_zero_2bits",
        )?;
    }
    for &(profile, level) in present.iter().take(max_sub_layers_minus1 as usize) {
        if profile {
            r.skip(32, "sub_layer_profile")?;
            r.skip(32, "sub_layer_profile_compatibility")?;
            r.skip(24, "sub_layer_constraints")?;
        }
        if level {
            r.skip(8, "sub_layer_level_idc")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// SPSs that ffmpeg's libx265 wrote (Main profile).
    #[test]
    fn sps_sizes_of_libx265_streams() {
        let cases = [
            (
                "42010101600000030090000003000003003ca00a080f165959a4932bc05a020000030002000003003210",
                (320, 240),
            ),
            (
                "42010101600000030090000003000003005da00280802d165959a4932bc05a020000030002000003003210",
                (1280, 720),
            ),
            // 1088 lines coded, a conformance window of 8.
            (
                "420101016000000300900000030000030078a003c08010e596566924caf0168080000003008000000c84",
                (1920, 1080),
            ),
        ];
        for (s, size) in cases {
            assert_eq!(sps_size(&hex(s)), Some(size), "{s}");
        }
    }

    #[test]
    fn sps_size_rejects_garbage() {
        assert_eq!(sps_size(&[]), None);
        assert_eq!(sps_size(&[0x42]), None);
        assert_eq!(sps_size(&[0x40, 0x01, 0x0c]), None);
        let good = hex(
            "420101016000000300900000030000030078a003c08010e596566924caf0168080000003008000000c84",
        );
        // Cut inside the fields read: up to the conformance window.
        for len in 0..20 {
            assert_eq!(sps_size(&good[..len]), None, "truncated to {len}");
        }
    }

    /// An SPS NAL unit of the given RBSP bits (as '0'/'1'), with stop bit,
    /// alignment and emulation prevention added.
    fn sps_of_bits(bits: &str) -> Vec<u8> {
        let mut bits = bits.to_string() + "1";
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        let rbsp = (0..bits.len())
            .step_by(8)
            .map(|i| u8::from_str_radix(&bits[i..i + 8], 2).unwrap());
        let mut nal = vec![0x42, 0x01];
        let mut zeros = 0;
        for b in rbsp {
            if zeros >= 2 && b <= 3 {
                nal.push(3);
                zeros = 0;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            nal.push(b);
        }
        nal
    }

    /// vps id 0, one sub-layer, zero profile/tier/level.
    fn plain_header() -> String {
        "0000".to_string() + "000" + "1" + &"0".repeat(96)
    }

    #[test]
    fn conformance_window_larger_than_the_picture_is_rejected() {
        // sps id 0, chroma 1, width 64, height 32, window left 20 right 20.
        let bits = plain_header()
            + "1"
            + "010"
            + "0000001000001"
            + "00000100001"
            + "1"
            + "000010101"
            + "000010101"
            + "1"
            + "1";
        assert_eq!(sps_size(&sps_of_bits(&bits)), None);
        let bits = plain_header()
            + "1"
            + "010"
            + "0000001000001"
            + "00000100001"
            + "1"
            + "00101"
            + "1"
            + "1"
            + "00100";
        // left 4, right 0, top 0, bottom 3: 64 - 8 by 32 - 6.
        assert_eq!(sps_size(&sps_of_bits(&bits)), Some((56, 26)));
    }

    #[test]
    fn sub_layers_are_skipped() {
        let mut bits = String::new();
        bits += "0000"; // vps id
        bits += "001"; // max_sub_layers_minus1 = 1
        bits += "1"; // temporal_id_nesting
        bits += &"0".repeat(96); // general profile, tier and level
        bits += "11"; // sub-layer 0: profile and level present
        bits += &"0".repeat(14); // reserved, sub-layers 1 to 7
        bits += &"0".repeat(88 + 8); // sub-layer 0 profile and level
        bits += "1"; // sps id 0
        bits += "010"; // chroma_format_idc 1
        bits += "0000001000001"; // width 64
        bits += "00000100001"; // height 32
        bits += "0"; // no conformance window
        assert_eq!(sps_size(&sps_of_bits(&bits)), Some((64, 32)));
    }
}
