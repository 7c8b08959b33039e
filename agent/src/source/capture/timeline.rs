//! Capture times (the monotonic clock devices stamp with) onto the
//! stream's timeline (ticks of a track's clock since the hub's epoch).

use std::time::{Duration, Instant};

use streamswitch_hal::{Clock, Monotonic};

use crate::media::ticks_since;

/// A device timestamp further than this from now is not believed (a
/// driver that stamps with another clock, or with zero): the picture is
/// taken as captured now.
const BELIEVABLE: Duration = Duration::from_secs(2);

pub struct Timeline {
    epoch: Instant,
    /// One reading of both clocks: `Instant` runs on CLOCK_MONOTONIC too,
    /// so the two differ by a constant and equal capture intervals stay
    /// equal on the timeline.
    base: Instant,
    base_mono: Duration,
}

impl Timeline {
    pub fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            base: Instant::now(),
            base_mono: Monotonic.now(),
        }
    }

    /// Ticks at `rate` since the epoch for a capture time on the monotonic clock.
    pub fn ticks(&self, captured: Duration, rate: u32) -> i64 {
        let mono = Monotonic.now();
        let believable = if captured > mono {
            captured - mono < BELIEVABLE
        } else {
            mono - captured < BELIEVABLE
        };
        let captured = if believable { captured } else { mono };
        let at = if captured >= self.base_mono {
            self.base + (captured - self.base_mono)
        } else {
            self.base
                .checked_sub(self.base_mono - captured)
                .unwrap_or(self.epoch)
        };
        ticks_since(self.epoch, at, rate)
    }
}
