//! AAC helpers: the AudioSpecificConfig a track carries.

use bytes::Bytes;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AacParams {
    /// The MPEG-4 AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1).
    pub config: Bytes,
    pub sample_rate: u32,
    pub channels: u16,
}

const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

impl AacParams {
    /// AAC-LC parameters with the two-byte AudioSpecificConfig for them.
    pub fn lc(sample_rate: u32, channels: u16) -> Self {
        let index = SAMPLE_RATES
            .iter()
            .position(|&r| r == sample_rate)
            .unwrap_or(3) as u8;
        let asc = [
            (2 << 3) | (index >> 1),
            ((index & 1) << 7) | ((channels as u8 & 0xf) << 3),
        ];
        Self {
            config: Bytes::copy_from_slice(&asc),
            sample_rate,
            channels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lc_48k_mono_config() {
        assert_eq!(&AacParams::lc(48_000, 1).config[..], &[0x11, 0x88]);
        assert_eq!(&AacParams::lc(44_100, 2).config[..], &[0x12, 0x10]);
    }
}
