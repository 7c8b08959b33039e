//! A microphone that hears a sine tone, in real time on the clock.

use std::f32::consts::TAU;
use std::sync::Arc;
use std::time::Duration;

use crate::audio::{AudioCapture, AudioFormat};
use crate::clock::{sleep_until, Clock};
use crate::HalError;

pub struct ToneMicrophone {
    format: AudioFormat,
    clock: Arc<dyn Clock>,
    step: f32,
    phase: f32,
    /// Capture time of the next sample.
    next: Option<Duration>,
}

impl ToneMicrophone {
    pub fn new(rate: u32, channels: u16, tone_hz: f32, clock: Arc<dyn Clock>) -> Self {
        Self {
            format: AudioFormat { rate, channels },
            clock,
            step: tone_hz * TAU / rate as f32,
            phase: 0.0,
            next: None,
        }
    }
}

impl AudioCapture for ToneMicrophone {
    fn format(&self) -> AudioFormat {
        self.format
    }

    /// Returns once the last of the samples would have been captured.
    fn read(&mut self, pcm: &mut [i16]) -> Result<Duration, HalError> {
        let channels = self.format.channels.max(1) as usize;
        let frames = pcm.len() / channels;
        let start = *self.next.get_or_insert_with(|| self.clock.now());
        let span = Duration::from_nanos(frames as u64 * 1_000_000_000 / self.format.rate as u64);
        sleep_until(&*self.clock, start + span);
        for frame in pcm.chunks_exact_mut(channels) {
            frame.fill((self.phase.sin() * 8000.0) as i16);
            self.phase = (self.phase + self.step) % TAU;
        }
        self.next = Some(start + span);
        Ok(start)
    }
}
