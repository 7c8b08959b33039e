//! Devices made of code: the test pattern camera (drawn in I420, or
//! replayed as a raw or MJPEG camera delivers it) and the tone microphone.
//! The built-in test source captures from these through the same pipeline
//! (capture → convert → encode → hub) a real camera and microphone use.

mod camera;
mod microphone;
mod pattern;

pub use camera::{LoopCamera, PatternCamera};
pub use microphone::ToneMicrophone;
