//! A stream's `audio`: a microphone on the board, captured beside the
//! stream's camera.

use serde::{Deserialize, Serialize};

use super::Invalid;

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AudioKind {
    Alsa,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AudioConfig {
    pub kind: AudioKind,
    /// An ALSA capture PCM: `hw:1,0`, `plughw:CARD=Device,DEV=0`, `default`.
    pub device: String,
    #[serde(default = "default_rate")]
    pub rate: u32,
    #[serde(default = "default_channels")]
    pub channels: u16,
    #[serde(default = "default_bitrate_kbps")]
    pub bitrate_kbps: u32,
}

fn default_rate() -> u32 {
    48_000
}

fn default_channels() -> u16 {
    1
}

fn default_bitrate_kbps() -> u32 {
    64
}

impl AudioConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if self.device.is_empty() {
            return Err((
                "device".into(),
                "must name an ALSA PCM such as hw:1,0".into(),
            ));
        }
        // The rates AAC-LC has a sampling-frequency index for.
        const RATES: [u32; 9] = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];
        if !RATES.contains(&self.rate) {
            return Err(("rate".into(), format!("must be one of {RATES:?}")));
        }
        if !(1..=2).contains(&self.channels) {
            return Err(("channels".into(), "must be 1 or 2".into()));
        }
        if !(16..=320).contains(&self.bitrate_kbps) {
            return Err(("bitrate_kbps".into(), "must be 16 to 320".into()));
        }
        Ok(())
    }
}
