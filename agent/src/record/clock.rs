//! Wall-clock time for recording names. Media time is monotonic; the
//! wall clock may step (NTP after boot on a board without RTC), so the
//! recorder reads it through [`WallClock`] and maps media instants to UTC
//! with [`utc_of`].
//!
//! Test seam: when `STREAMSWITCH_TEST_CLOCK_OFFSET_FILE` names a file, the
//! clock is the system clock plus the number of milliseconds in that file
//! (re-read at most once a second; missing or unreadable means 0). Tests
//! write into it to step the agent's clock without touching the machine's.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

pub const TEST_OFFSET_ENV: &str = "STREAMSWITCH_TEST_CLOCK_OFFSET_FILE";

pub trait WallClock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl WallClock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system clock shifted by an offset read from a file.
pub struct OffsetFileClock {
    path: PathBuf,
    cached: Mutex<Option<(Instant, i64)>>,
}

impl OffsetFileClock {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            cached: Mutex::new(None),
        }
    }

    fn offset_ms(&self) -> i64 {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        match *cached {
            Some((at, ms)) if at.elapsed() < Duration::from_secs(1) => ms,
            _ => {
                let ms = std::fs::read_to_string(&self.path)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                *cached = Some((Instant::now(), ms));
                ms
            }
        }
    }
}

impl WallClock for OffsetFileClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.offset_ms())
    }
}

/// The system clock, or the test seam when its variable is set.
pub fn from_env() -> Arc<dyn WallClock> {
    match std::env::var_os(TEST_OFFSET_ENV) {
        Some(path) => {
            tracing::warn!("recording clock offset read from {path:?} (test seam)");
            Arc::new(OffsetFileClock::new(path.into()))
        }
        None => Arc::new(SystemClock),
    }
}

/// No real time is earlier than this (the code that reads it is younger).
/// A board without an RTC boots at 1970 and stays there until NTP syncs.
const TRUSTED_FLOOR_UNIX_SECONDS: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z

/// Whether a wall-clock reading can name a recording. The kernel's own
/// flag (adjtimex `STA_UNSYNC`) is not used: it stays set on boards and
/// containers whose time is right but set by no NTP daemon that talks to
/// the kernel (this project's dev machine reports `TIME_ERROR`), and a
/// board that trusted nothing would never age anything. A time before the
/// floor is certainly wrong; a plausible but wrong time is harmless to
/// order (retention orders by sequence) and only ever delays ageing.
pub fn trusted(t: DateTime<Utc>) -> bool {
    t.timestamp() >= TRUSTED_FLOOR_UNIX_SECONDS
}

/// The wall-clock time of a monotonic instant, as the clock tells it now.
pub fn utc_of(clock: &dyn WallClock, at: Instant) -> DateTime<Utc> {
    let now = Instant::now();
    let wall = clock.now();
    if at <= now {
        wall - chrono::Duration::from_std(now - at).unwrap_or_default()
    } else {
        wall + chrono::Duration::from_std(at - now).unwrap_or_default()
    }
}

/// Wall time minus monotonic time, in milliseconds since `base`: constant
/// while the wall clock runs freely, and a step shows as a change.
pub fn offset_ms(clock: &dyn WallClock, base: Instant) -> i64 {
    let mono = base.elapsed().as_millis() as i64;
    clock.now().timestamp_millis() - mono
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_file_steps_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offset");
        let clock = OffsetFileClock::new(path.clone());
        let base = Instant::now();
        let before = offset_ms(&clock, base);
        std::fs::write(&path, "3600000\n").unwrap();
        *clock.cached.lock().unwrap() = None;
        let after = offset_ms(&clock, base);
        assert!(
            (after - before - 3_600_000).abs() < 100,
            "{}",
            after - before
        );
        let t = utc_of(&clock, Instant::now() - Duration::from_secs(10));
        let expect = Utc::now() + chrono::Duration::seconds(3590);
        assert!((t - expect).num_milliseconds().abs() < 100);
    }
}
