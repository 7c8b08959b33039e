//! What the board gives the agent: encoders today, V4L2/ALSA capture next.
//!
//! Everything here does I/O with a device or a C library and nothing else:
//! the agent above never names an openh264, libxaac, V4L2 or ALSA type.

pub mod audio_encoder;
pub mod error;
pub mod video_encoder;

pub use audio_encoder::{AacEncoder, AacEncoderConfig};
pub use error::HalError;
pub use video_encoder::{EncodedPicture, H264Encoder, H264EncoderConfig, I420Image};
