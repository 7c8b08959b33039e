//! Video: what a capture device gives and what an encoder takes.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::HalError;

/// The picture formats the agent can take from a capture device: coded
/// (passed through or decoded) or raw (converted to I420 and encoded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    H264,
    Mjpeg,
    /// Packed 4:2:2, Y0 U Y1 V.
    Yuyv,
    /// Packed 4:2:2, U Y0 V Y1.
    Uyvy,
    /// Planar 4:2:0 with interleaved U/V.
    Nv12,
    /// Planar 4:2:0 with interleaved V/U.
    Nv21,
    /// Planar 4:2:0, Y then U then V (I420).
    Yu12,
    /// Planar 4:2:0, Y then V then U.
    Yv12,
}

impl PixelFormat {
    /// The order the agent prefers when the configuration says "auto":
    /// a coded stream first (no re-encode), then MJPEG, then raw.
    pub const PREFERENCE: [PixelFormat; 8] = [
        PixelFormat::H264,
        PixelFormat::Mjpeg,
        PixelFormat::Yuyv,
        PixelFormat::Nv12,
        PixelFormat::Yu12,
        PixelFormat::Uyvy,
        PixelFormat::Nv21,
        PixelFormat::Yv12,
    ];

    pub fn fourcc(self) -> [u8; 4] {
        *match self {
            PixelFormat::H264 => b"H264",
            PixelFormat::Mjpeg => b"MJPG",
            PixelFormat::Yuyv => b"YUYV",
            PixelFormat::Uyvy => b"UYVY",
            PixelFormat::Nv12 => b"NV12",
            PixelFormat::Nv21 => b"NV21",
            PixelFormat::Yu12 => b"YU12",
            PixelFormat::Yv12 => b"YV12",
        }
    }

    /// The format of a V4L2 fourcc (JPEG is taken as MJPEG: webcams use both).
    pub fn from_fourcc(code: [u8; 4]) -> Option<Self> {
        if &code == b"JPEG" {
            return Some(PixelFormat::Mjpeg);
        }
        Self::PREFERENCE.into_iter().find(|f| f.fourcc() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::H264 => "h264",
            PixelFormat::Mjpeg => "mjpeg",
            PixelFormat::Yuyv => "yuyv",
            PixelFormat::Uyvy => "uyvy",
            PixelFormat::Nv12 => "nv12",
            PixelFormat::Nv21 => "nv21",
            PixelFormat::Yu12 => "yu12",
            PixelFormat::Yv12 => "yv12",
        }
    }

    pub fn is_coded(self) -> bool {
        matches!(self, PixelFormat::H264 | PixelFormat::Mjpeg)
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a capture device delivers once set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoFormat {
    pub pixel: PixelFormat,
    pub width: u32,
    pub height: u32,
    /// Bytes per line of the first plane (raw formats; 0 for coded ones).
    pub stride: u32,
    /// Frames per second as numerator / denominator.
    pub fps: (u32, u32),
}

impl VideoFormat {
    pub fn frame_interval(&self) -> Duration {
        let (num, den) = self.fps;
        if num == 0 || den == 0 {
            return Duration::from_millis(33);
        }
        Duration::from_nanos(1_000_000_000 * den as u64 / num as u64)
    }
}

/// One captured picture, borrowed from the device's buffer until the next.
pub struct CapturedFrame<'a> {
    pub data: &'a [u8],
    /// When it was captured, on the monotonic clock ([`crate::Monotonic`]).
    pub timestamp: Duration,
    /// The device's frame counter: a gap means frames were dropped.
    pub sequence: u32,
}

/// A camera.
pub trait VideoCapture: Send {
    fn format(&self) -> VideoFormat;
    /// Blocks until the next picture.
    fn next_frame(&mut self) -> Result<CapturedFrame<'_>, HalError>;
    /// A camera that encodes (H.264) makes its next picture an IDR.
    fn request_keyframe(&mut self) -> Result<(), HalError> {
        Ok(())
    }
}

/// A planar 4:2:0 picture, `width * height * 3 / 2` bytes.
pub struct I420Image<'a> {
    pub width: u32,
    pub height: u32,
    pub data: &'a [u8],
}

/// One encoded picture: its NAL units without start codes.
pub struct EncodedPicture {
    pub nals: Vec<Vec<u8>>,
    pub keyframe: bool,
}

/// Settings for an H.264 encoder.
#[derive(Debug, Clone, Copy)]
pub struct H264EncoderConfig {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_bps: u32,
    /// Frames between IDR pictures.
    pub keyframe_interval: u32,
}

/// Raw pictures in, H.264 out.
pub trait VideoEncoder: Send {
    /// Encodes one picture. An empty result means the encoder skipped it
    /// (or, for a hardware encoder, has not finished one yet).
    fn encode(&mut self, image: &I420Image<'_>) -> Result<EncodedPicture, HalError>;
    /// Asks for an IDR picture next.
    fn force_keyframe(&mut self);
}
