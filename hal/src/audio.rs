//! Audio: what a microphone gives and what an encoder takes.

use std::time::Duration;

use crate::HalError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioFormat {
    pub rate: u32,
    pub channels: u16,
}

/// A microphone: interleaved signed 16-bit samples.
pub trait AudioCapture: Send {
    fn format(&self) -> AudioFormat;
    /// Fills `pcm` (a whole number of frames) and returns when its first
    /// sample was captured, on the monotonic clock. An overrun is recovered
    /// inside and counted in [`AudioCapture::overruns`].
    fn read(&mut self, pcm: &mut [i16]) -> Result<Duration, HalError>;
    /// Overruns (samples lost because they were not read in time) so far.
    fn overruns(&self) -> u64 {
        0
    }
}

/// Settings for an AAC encoder.
#[derive(Debug, Clone, Copy)]
pub struct AacEncoderConfig {
    pub sample_rate: u32,
    /// 1 or 2.
    pub channels: u16,
    pub bitrate_bps: u32,
}

/// PCM in, AAC-LC access units out.
pub trait AudioEncoder: Send {
    /// Samples per channel that one call to `encode` takes.
    fn frame_samples(&self) -> usize;
    /// The MPEG-4 AudioSpecificConfig that describes the stream.
    fn audio_specific_config(&self) -> &[u8];
    /// Encodes one frame of interleaved samples into one raw access unit
    /// (empty while the encoder fills its delay).
    fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, HalError>;
}
