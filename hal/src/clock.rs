//! The clock capture timestamps are read on: CLOCK_MONOTONIC, the clock
//! V4L2 stamps its buffers with and ALSA is asked to use, so video and
//! audio from different devices line up.

use std::time::Duration;

pub trait Clock: Send + Sync {
    /// Time since an arbitrary fixed point (boot, for the real clock).
    fn now(&self) -> Duration;
}

/// The kernel's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct Monotonic;

impl Clock for Monotonic {
    fn now(&self) -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec it is given; the
        // monotonic clock always exists on Linux.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

/// Sleeps until `clock` reads `deadline` (returns at once if it has passed).
pub fn sleep_until(clock: &dyn Clock, deadline: Duration) {
    let now = clock.now();
    if deadline > now {
        std::thread::sleep(deadline - now);
    }
}
