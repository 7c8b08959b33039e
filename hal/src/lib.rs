//! What the board gives the agent, behind small traits that do I/O only:
//! cameras ([`VideoCapture`]), microphones ([`AudioCapture`]), encoders
//! ([`VideoEncoder`], [`AudioEncoder`]) and the [`Clock`] they stamp with.
//! The agent above never names a V4L2, ALSA, openh264 or FDK type.
//!
//! Implementations: V4L2 cameras (feature `v4l2`), ALSA microphones
//! (feature `alsa`), openh264, FDK AAC, and the test pattern camera and
//! tone microphone of [`fake`], which the built-in test source captures
//! from through the same pipeline a real camera uses.

#[cfg(feature = "alsa")]
pub mod alsa;
pub mod audio;
pub mod clock;
pub mod error;
pub mod fake;
pub mod fdk_aac;
pub mod openh264;
#[cfg(feature = "v4l2")]
pub mod v4l2;
pub mod video;

pub use audio::{AacEncoderConfig, AudioCapture, AudioEncoder, AudioFormat};
pub use clock::{Clock, Monotonic};
pub use error::HalError;
pub use fdk_aac::AacEncoder;
pub use openh264::H264Encoder;
pub use video::{
    CapturedFrame, EncodedPicture, H264EncoderConfig, I420Image, PixelFormat, VideoCapture,
    VideoEncoder, VideoFormat,
};

/// The device back-ends this build has, for `streamswitch devices`.
pub const BACKENDS: &[&str] = &[
    #[cfg(feature = "v4l2")]
    "v4l2",
    #[cfg(feature = "alsa")]
    "alsa",
    "openh264",
    "fdk-aac",
    "test-pattern",
];
