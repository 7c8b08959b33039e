//! Cameras made of code, in real time on the clock: one that draws the
//! test pattern (I420) for every picture, and one that replays a few of
//! its pictures prepared once in a camera's own format (YUYV, MJPEG).

use std::sync::Arc;
use std::time::Duration;

use super::pattern::Pattern;
use crate::clock::{sleep_until, Clock};
use crate::video::{CapturedFrame, PixelFormat, VideoCapture, VideoFormat};
use crate::HalError;

/// Pictures the [`LoopCamera`] replays: as many as the buffers a V4L2
/// camera is given, so its memory is about what a real camera's is.
const LOOP_PICTURES: u64 = 4;
/// JPEG quality of the MJPEG pictures, about a webcam's.
const JPEG_QUALITY: u8 = 85;

/// When the pictures are due: one every frame interval on the clock.
struct Pacer {
    clock: Arc<dyn Clock>,
    interval: Duration,
    /// The next picture's number: its time on the clock divided by the
    /// frame interval, so the burnt-in counter runs on across restarts.
    next: u64,
}

impl Pacer {
    fn new(format: &VideoFormat, clock: Arc<dyn Clock>) -> Self {
        let interval = format.frame_interval();
        let next = (clock.now().as_nanos() / interval.as_nanos()) as u64 + 1;
        Self {
            clock,
            interval,
            next,
        }
    }

    /// Waits for the next picture's time; its number and timestamp. A
    /// reader that falls behind loses pictures as it would with a camera:
    /// the number jumps.
    fn wait(&mut self) -> (u64, Duration) {
        let behind = (self.clock.now().as_nanos() / self.interval.as_nanos()) as u64;
        if behind > self.next + 1 {
            self.next = behind;
        }
        let n = self.next;
        let due = self.interval * n as u32;
        sleep_until(&*self.clock, due);
        self.next += 1;
        (n, due)
    }
}

fn format(pixel: PixelFormat, width: u32, height: u32, fps: u32) -> VideoFormat {
    VideoFormat {
        pixel,
        width,
        height,
        stride: match pixel {
            PixelFormat::Yuyv => width * 2,
            PixelFormat::Mjpeg => 0,
            _ => width,
        },
        fps: (fps.max(1), 1),
    }
}

/// Draws the test pattern into every picture (I420).
pub struct PatternCamera {
    format: VideoFormat,
    pattern: Pattern,
    pacer: Pacer,
}

impl PatternCamera {
    pub fn new(width: u32, height: u32, fps: u32, clock: Arc<dyn Clock>) -> Self {
        let format = format(PixelFormat::Yu12, width, height, fps);
        Self {
            format,
            pattern: Pattern::new(width, height),
            pacer: Pacer::new(&format, clock),
        }
    }
}

impl VideoCapture for PatternCamera {
    fn format(&self) -> VideoFormat {
        self.format
    }

    fn next_frame(&mut self) -> Result<CapturedFrame<'_>, HalError> {
        let (n, timestamp) = self.pacer.wait();
        Ok(CapturedFrame {
            data: self.pattern.draw(n),
            timestamp,
            sequence: n as u32,
        })
    }
}

/// Replays the test pattern's first few pictures, made once in `pixel`
/// (packed YUYV, or MJPEG), the way a raw or MJPEG camera delivers them: a
/// picture costs the reader nothing but its conversion or decoding, as a
/// camera's DMA does.
pub struct LoopCamera {
    format: VideoFormat,
    pictures: Vec<Vec<u8>>,
    pacer: Pacer,
}

impl LoopCamera {
    pub fn new(
        pixel: PixelFormat,
        width: u32,
        height: u32,
        fps: u32,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, HalError> {
        let format = format(pixel, width, height, fps);
        let mut pattern = Pattern::new(width, height);
        let pictures = (0..LOOP_PICTURES)
            .map(|n| {
                let i420 = pattern.draw(n);
                match pixel {
                    PixelFormat::Yuyv => Ok(yuyv(i420, width as usize, height as usize)),
                    PixelFormat::Mjpeg => jpeg(i420, width, height),
                    _ => Err(HalError::InvalidInput(format!(
                        "the loop camera makes yuyv or mjpeg pictures, not {pixel}"
                    ))),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            format,
            pictures,
            pacer: Pacer::new(&format, clock),
        })
    }
}

impl VideoCapture for LoopCamera {
    fn format(&self) -> VideoFormat {
        self.format
    }

    fn next_frame(&mut self) -> Result<CapturedFrame<'_>, HalError> {
        let (n, timestamp) = self.pacer.wait();
        Ok(CapturedFrame {
            data: &self.pictures[(n % LOOP_PICTURES) as usize],
            timestamp,
            sequence: n as u32,
        })
    }
}

/// Packs an I420 picture as YUYV (Y0 U Y1 V), each chroma row twice.
fn yuyv(i420: &[u8], w: usize, h: usize) -> Vec<u8> {
    let (luma, chroma) = i420.split_at(w * h);
    let (u, v) = chroma.split_at(w * h / 4);
    let mut out = Vec::with_capacity(w * h * 2);
    for row in 0..h {
        let c = row / 2 * (w / 2);
        for x in 0..w / 2 {
            out.extend_from_slice(&[
                luma[row * w + 2 * x],
                u[c + x],
                luma[row * w + 2 * x + 1],
                v[c + x],
            ]);
        }
    }
    out
}

/// Encodes an I420 picture as a 4:2:0 baseline JPEG.
fn jpeg(i420: &[u8], width: u32, height: u32) -> Result<Vec<u8>, HalError> {
    let (w, h) = (width as usize, height as usize);
    let too_big = || HalError::InvalidInput(format!("a JPEG of {width}x{height}"));
    let (jw, jh) = (
        u16::try_from(width).map_err(|_| too_big())?,
        u16::try_from(height).map_err(|_| too_big())?,
    );
    let (luma, chroma) = i420.split_at(w * h);
    let (u, v) = chroma.split_at(w * h / 4);
    // The encoder takes interleaved 4:4:4 and subsamples it again.
    let mut ycbcr = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        for x in 0..w {
            let c = row / 2 * (w / 2) + x / 2;
            ycbcr.extend_from_slice(&[luma[row * w + x], u[c], v[c]]);
        }
    }
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, JPEG_QUALITY);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    encoder
        .encode(&ycbcr, jw, jh, jpeg_encoder::ColorType::Ycbcr)
        .map_err(|e| HalError::InvalidInput(format!("JPEG: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Frozen;
    impl Clock for Frozen {
        fn now(&self) -> Duration {
            Duration::ZERO
        }
    }

    #[test]
    fn yuyv_packs_each_chroma_row_twice() {
        // 4x2 I420: Y 1..8, U 20 21, V 30 31.
        let i420 = [1, 2, 3, 4, 5, 6, 7, 8, 20, 21, 30, 31];
        assert_eq!(
            yuyv(&i420, 4, 2),
            [1, 20, 2, 30, 3, 21, 4, 31, 5, 20, 6, 30, 7, 21, 8, 31]
        );
    }

    #[test]
    fn the_loop_camera_replays_its_pictures_in_turn() {
        let mut cam = LoopCamera::new(PixelFormat::Mjpeg, 64, 48, 30, Arc::new(Frozen)).unwrap();
        assert_eq!(cam.format().pixel, PixelFormat::Mjpeg);
        let mut seen = Vec::new();
        for _ in 0..LOOP_PICTURES + 1 {
            let frame = cam.next_frame().unwrap();
            assert!(frame.data.starts_with(&[0xff, 0xd8]) && frame.data.ends_with(&[0xff, 0xd9]));
            seen.push(frame.data.to_vec());
        }
        assert_ne!(seen[0], seen[1]);
        assert_eq!(seen[0], seen[LOOP_PICTURES as usize]);
        let cam = LoopCamera::new(PixelFormat::Yuyv, 64, 48, 30, Arc::new(Frozen)).unwrap();
        assert_eq!(cam.pictures[0].len(), 64 * 48 * 2);
        assert!(LoopCamera::new(PixelFormat::Nv12, 64, 48, 30, Arc::new(Frozen)).is_err());
    }
}
