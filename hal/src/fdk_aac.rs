//! AAC-LC encoder: Fraunhofer FDK AAC, built from the source bundled in the
//! `fdk-aac` crate. Chosen over libxaac (Apache-2.0) for memory: libxaac
//! touched 58 MB at start-up here, FDK about 1 MB. See the README for its
//! licence terms.

use fdk_aac::enc::{AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport};

use crate::audio::{AacEncoderConfig, AudioEncoder};
use crate::HalError;

pub struct AacEncoder {
    inner: Encoder,
    frame_samples: usize,
    config: Vec<u8>,
    out: Vec<u8>,
}

impl AacEncoder {
    pub fn new(config: AacEncoderConfig) -> Result<Self, HalError> {
        let channels = match config.channels {
            1 => ChannelMode::Mono,
            2 => ChannelMode::Stereo,
            n => {
                return Err(HalError::InvalidInput(format!(
                    "{n} audio channels: only 1 or 2 are supported"
                )))
            }
        };
        let inner = Encoder::new(EncoderParams {
            bit_rate: BitRate::Cbr(config.bitrate_bps),
            sample_rate: config.sample_rate,
            transport: Transport::Raw,
            channels,
            audio_object_type: AudioObjectType::Mpeg4LowComplexity,
        })
        .map_err(|e| HalError::AudioEncoder(e.to_string()))?;
        let info = inner
            .info()
            .map_err(|e| HalError::AudioEncoder(e.to_string()))?;
        let conf_len = (info.confSize as usize).min(info.confBuf.len());
        Ok(Self {
            frame_samples: info.frameLength as usize,
            config: info.confBuf[..conf_len].to_vec(),
            out: vec![0; info.maxOutBufBytes.max(8192) as usize],
            inner,
        })
    }
}

impl AudioEncoder for AacEncoder {
    fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    fn audio_specific_config(&self) -> &[u8] {
        &self.config
    }

    fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, HalError> {
        let info = self
            .inner
            .encode(pcm, &mut self.out)
            .map_err(|e| HalError::AudioEncoder(e.to_string()))?;
        Ok(self.out[..info.output_size].to_vec())
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
        let units: Vec<usize> = (0..5).map(|_| enc.encode(&pcm).unwrap().len()).collect();
        assert!(units.iter().filter(|&&n| n > 0).count() >= 3, "{units:?}");
    }

    #[test]
    fn more_than_two_channels_is_refused() {
        assert!(AacEncoder::new(AacEncoderConfig {
            sample_rate: 48_000,
            channels: 6,
            bitrate_bps: 64_000,
        })
        .is_err());
    }
}
