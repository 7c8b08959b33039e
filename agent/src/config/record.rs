//! `[recording]` and each stream's `record`: recording to the local disk.

use serde::{Deserialize, Serialize};

use super::Invalid;

/// When recorded data is forced to the storage device.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// After every fragment: a power cut loses at most the fragment in flight.
    Fragment,
    /// When a file is closed: less flash wear, a power cut may lose what
    /// the kernel had not yet written back (up to ~30 s on ext4).
    Segment,
    /// Never: the kernel writes back when it likes.
    Never,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// Files older than this are deleted (0: no age limit).
    #[serde(default = "default_max_age")]
    pub max_age_hours: u64,
    /// The oldest files are deleted while the total is above this (0: no limit).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// The oldest files are deleted while the filesystem has less free space.
    #[serde(default = "default_min_free")]
    pub min_free_percent: f64,
    #[serde(default = "default_fsync")]
    pub fsync: FsyncPolicy,
    /// Each recorder's queue between the stream and the disk holds up to
    /// this much media (seconds since it arrived), absorbing disk stalls.
    #[serde(default = "default_queue_seconds")]
    pub queue_seconds: u32,
    /// ... and never more than these bytes.
    #[serde(default = "default_queue_max_bytes")]
    pub queue_max_bytes: u64,
}

/// 100 years: more is surely a typo, and would overflow time arithmetic.
const MAX_AGE_HOURS_LIMIT: u64 = 100 * 366 * 24;

fn default_max_age() -> u64 {
    7 * 24
}
fn default_max_bytes() -> u64 {
    0
}
fn default_min_free() -> f64 {
    10.0
}
fn default_fsync() -> FsyncPolicy {
    FsyncPolicy::Fragment
}
fn default_queue_seconds() -> u32 {
    30
}
fn default_queue_max_bytes() -> u64 {
    64 << 20
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            max_age_hours: default_max_age(),
            max_bytes: default_max_bytes(),
            min_free_percent: default_min_free(),
            fsync: default_fsync(),
            queue_seconds: default_queue_seconds(),
            queue_max_bytes: default_queue_max_bytes(),
        }
    }
}

impl RecordingConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if !(0.0..=90.0).contains(&self.min_free_percent) {
            return Err((
                "recording.min_free_percent".into(),
                "must be between 0 and 90".into(),
            ));
        }
        if self.max_age_hours > MAX_AGE_HOURS_LIMIT {
            return Err((
                "recording.max_age_hours".into(),
                format!("must be at most {MAX_AGE_HOURS_LIMIT} (100 years; 0: no limit)"),
            ));
        }
        if !(1..=3600).contains(&self.queue_seconds) {
            return Err((
                "recording.queue_seconds".into(),
                "must be between 1 and 3600".into(),
            ));
        }
        if !((1 << 20)..=(4 << 30)).contains(&self.queue_max_bytes) {
            return Err((
                "recording.queue_max_bytes".into(),
                "must be between 1 MiB (1048576) and 4 GiB".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecordConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_segment_seconds")]
    pub segment_seconds: u32,
    #[serde(default = "default_fragment_ms")]
    pub fragment_ms: u32,
}

fn default_segment_seconds() -> u32 {
    60
}
fn default_fragment_ms() -> u32 {
    1000
}

impl Default for RecordConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            segment_seconds: default_segment_seconds(),
            fragment_ms: default_fragment_ms(),
        }
    }
}

impl RecordConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if !(1..=86_400).contains(&self.segment_seconds) {
            return Err((
                "segment_seconds".into(),
                "must be between 1 and 86400".into(),
            ));
        }
        if !(100..=10_000).contains(&self.fragment_ms) {
            return Err(("fragment_ms".into(), "must be between 100 and 10000".into()));
        }
        Ok(())
    }
}
