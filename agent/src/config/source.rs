//! A stream's `source`.

use serde::Deserialize;

use super::Invalid;

/// What feeds a stream. Read through [`SourceSpec`], a flat table with a
/// `kind`: serde's tagged enums buffer their input and lose the position of
/// a bad value, and every config error must name its line and key.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "SourceSpec")]
pub enum SourceConfig {
    /// The built-in test pattern and tone.
    Test(TestSourceConfig),
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Test,
}

/// The `source` table as written: every key any kind takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    kind: SourceKind,
    #[serde(default = "default_width")]
    width: u32,
    #[serde(default = "default_height")]
    height: u32,
    #[serde(default = "default_fps")]
    fps: u32,
    #[serde(default = "default_bitrate")]
    bitrate_kbps: u32,
    #[serde(default = "default_true")]
    audio: bool,
    #[serde(default = "default_keyframe")]
    keyframe_seconds: f64,
}

impl TryFrom<SourceSpec> for SourceConfig {
    type Error = String;

    fn try_from(s: SourceSpec) -> Result<Self, String> {
        match s.kind {
            SourceKind::Test => Ok(SourceConfig::Test(TestSourceConfig {
                width: s.width,
                height: s.height,
                fps: s.fps,
                bitrate_kbps: s.bitrate_kbps,
                audio: s.audio,
                keyframe_seconds: s.keyframe_seconds,
            })),
        }
    }
}

#[derive(Clone, Debug)]
pub struct TestSourceConfig {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub audio: bool,
    /// Seconds between keyframes.
    pub keyframe_seconds: f64,
}

fn default_width() -> u32 {
    1280
}
fn default_height() -> u32 {
    720
}
fn default_fps() -> u32 {
    30
}
fn default_bitrate() -> u32 {
    2000
}
fn default_true() -> bool {
    true
}
fn default_keyframe() -> f64 {
    1.0
}

impl SourceConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        match self {
            SourceConfig::Test(t) => t.validate(),
        }
    }
}

impl TestSourceConfig {
    fn validate(&self) -> Result<(), Invalid> {
        let even = |v: u32| (16..=4096).contains(&v) && v % 2 == 0;
        if !even(self.width) {
            return Err(("width".into(), "must be even, 16 to 4096".into()));
        }
        if !even(self.height) {
            return Err(("height".into(), "must be even, 16 to 4096".into()));
        }
        if !(1..=120).contains(&self.fps) {
            return Err(("fps".into(), "must be 1 to 120".into()));
        }
        if !(10..=100_000).contains(&self.bitrate_kbps) {
            return Err(("bitrate_kbps".into(), "must be 10 to 100000".into()));
        }
        if !(0.1..=60.0).contains(&self.keyframe_seconds) {
            return Err(("keyframe_seconds".into(), "must be 0.1 to 60".into()));
        }
        Ok(())
    }
}
