//! AAC-LC encoder (libxaac, Apache-2.0, through the `xaac-rs` bindings).

use xaac_rs::{Encoder, EncoderConfig, OutputFormat, Profile};

use crate::HalError;

/// Settings for [`AacEncoder`].
#[derive(Debug, Clone, Copy)]
pub struct AacEncoderConfig {
    pub sample_rate: u32,
    pub channels: u16,
    pub bitrate_bps: u32,
}

pub struct AacEncoder {
    inner: Encoder,
}

impl AacEncoder {
    pub fn new(config: AacEncoderConfig) -> Result<Self, HalError> {
        let inner = Encoder::new(EncoderConfig {
            profile: Profile::AacLc,
            sample_rate: config.sample_rate,
            channels: config.channels,
            bitrate: config.bitrate_bps,
            output_format: OutputFormat::Raw,
            ..EncoderConfig::default()
        })
        .map_err(|e| HalError::AudioEncoder(e.to_string()))?;
        Ok(Self { inner })
    }

    /// Samples per channel that one call to [`AacEncoder::encode`] takes (1024).
    pub fn frame_samples(&self) -> usize {
        self.inner.input_samples_per_channel()
    }

    /// The MPEG-4 AudioSpecificConfig that describes the stream.
    pub fn audio_specific_config(&self) -> &[u8] {
        self.inner.audio_specific_config()
    }

    /// Encodes one frame of interleaved samples into one raw AAC access unit.
    /// The encoder has a delay: the first calls may return an empty unit.
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, HalError> {
        let packet = self
            .inner
            .encode_i16_interleaved(pcm)
            .map_err(|e| HalError::AudioEncoder(e.to_string()))?;
        Ok(packet.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_tone_with_an_lc_config() {
        let mut enc = AacEncoder::new(AacEncoderConfig {
            sample_rate: 48_000,
            channels: 1,
            bitrate_bps: 64_000,
        })
        .unwrap();
        assert_eq!(enc.frame_samples(), 1024);
        let asc = enc.audio_specific_config().to_vec();
        // object type 2 (LC), frequency index 3 (48 kHz), 1 channel
        assert_eq!(asc[0] >> 3, 2, "asc {asc:02x?}");
        assert_eq!(((asc[0] & 7) << 1) | (asc[1] >> 7), 3);
        assert_eq!((asc[1] >> 3) & 0xf, 1);
        let pcm: Vec<i16> = (0..1024)
            .map(|i| ((i as f32 * 0.06).sin() * 8000.0) as i16)
            .collect();
        let mut total = 0;
        for _ in 0..5 {
            total += enc.encode(&pcm).unwrap().len();
        }
        assert!(total > 0);
    }
}
