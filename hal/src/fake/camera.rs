//! A camera that draws the test pattern, in real time on the clock.

use std::sync::Arc;
use std::time::Duration;

use super::pattern::Pattern;
use crate::clock::{sleep_until, Clock};
use crate::video::{CapturedFrame, PixelFormat, VideoCapture, VideoFormat};
use crate::HalError;

pub struct PatternCamera {
    format: VideoFormat,
    pattern: Pattern,
    clock: Arc<dyn Clock>,
    interval: Duration,
    /// The next picture's number: its time on the clock divided by the
    /// frame interval, so the burnt-in counter runs on across restarts.
    next: u64,
}

impl PatternCamera {
    pub fn new(width: u32, height: u32, fps: u32, clock: Arc<dyn Clock>) -> Self {
        let format = VideoFormat {
            pixel: PixelFormat::Yu12,
            width,
            height,
            stride: width,
            fps: (fps.max(1), 1),
        };
        let interval = format.frame_interval();
        let next = (clock.now().as_nanos() / interval.as_nanos()) as u64 + 1;
        Self {
            format,
            pattern: Pattern::new(width, height),
            clock,
            interval,
            next,
        }
    }
}

impl VideoCapture for PatternCamera {
    fn format(&self) -> VideoFormat {
        self.format
    }

    /// Waits for the next picture's time. A reader that falls behind loses
    /// pictures as it would with a camera: the sequence number jumps.
    fn next_frame(&mut self) -> Result<CapturedFrame<'_>, HalError> {
        let behind = (self.clock.now().as_nanos() / self.interval.as_nanos()) as u64;
        if behind > self.next + 1 {
            self.next = behind;
        }
        let n = self.next;
        let due = self.interval * n as u32;
        sleep_until(&*self.clock, due);
        self.next += 1;
        Ok(CapturedFrame {
            data: self.pattern.draw(n),
            timestamp: due,
            sequence: n as u32,
        })
    }
}
