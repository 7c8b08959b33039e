//! The pause before a failed source (or, later, an uplink or a broker
//! connection) is tried again: doubling from `min` up to `max`, with
//! ±20 % jitter so that many streams failing together (a switch reboots)
//! do not retry in lockstep.

use std::time::Duration;

pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            current: min,
        }
    }

    /// The next pause; each call doubles the one after, up to the cap.
    pub fn next_pause(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let jitter = rand::random_range(0.8..1.2);
        base.mul_f64(jitter).min(self.max)
    }

    /// After a healthy run: the next failure is retried quickly again.
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let pauses: Vec<f64> = (0..10).map(|_| b.next_pause().as_secs_f64()).collect();
        assert!((0.4..=0.6).contains(&pauses[0]), "{pauses:?}");
        assert!((0.8..=1.2).contains(&pauses[1]), "{pauses:?}");
        assert!((1.6..=2.4).contains(&pauses[2]), "{pauses:?}");
        assert!(pauses[9] <= 30.0 && pauses[9] >= 24.0, "{pauses:?}");
        b.reset();
        assert!(b.next_pause() <= Duration::from_millis(600));
    }
}
