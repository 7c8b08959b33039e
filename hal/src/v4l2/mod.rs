//! V4L2 through `v4l2r` (ChromeOS's bindings: its ioctl layer returns
//! errors where the `v4l` crate unwraps device strings and enum values,
//! and it speaks the multi-planar API that SoC encoders use): cameras,
//! mem2mem encoders, and the scan that finds both.

mod abi;
mod capture;
mod controls;
mod m2m;
mod scan;

pub use capture::{CaptureRequest, V4l2Capture};
pub use m2m::{find_h264_encoder, M2mEncoder};
pub use scan::{list_video_devices, FormatInfo, VideoDeviceInfo, VideoDeviceRole};

use std::io;

use v4l2r::nix::errno::Errno;

/// A v4l2r error as the errno it carries.
fn errno(e: impl Into<Errno>) -> io::Error {
    io::Error::from_raw_os_error(e.into() as i32)
}
