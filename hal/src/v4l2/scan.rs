//! What `streamswitch devices` lists of V4L2: cameras with their formats,
//! sizes and frame rates (as `v4l2-ctl --list-formats-ext` shows them),
//! and mem2mem codecs with what they take and give.

use std::path::{Path, PathBuf};

use serde::Serialize;
use v4l2r::bindings::{v4l2_frmivalenum, v4l2_frmsizeenum};
use v4l2r::device::{Device, DeviceConfig};
use v4l2r::ioctl::{self, Capabilities, FormatIterator, FrmIvalTypes, FrmSizeTypes};
use v4l2r::QueueType;

use crate::video::PixelFormat;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoDeviceRole {
    /// A camera (or a loopback, a grabber): frames to capture.
    Capture,
    /// Raw pictures in, a coded stream out.
    Encoder,
    /// A coded stream in, raw pictures out.
    Decoder,
    /// Anything else (metadata nodes, outputs, other converters).
    Other,
}

#[derive(Debug, Clone, Serialize)]
pub struct VideoDeviceInfo {
    pub path: PathBuf,
    pub card: String,
    pub driver: String,
    pub bus: String,
    pub role: VideoDeviceRole,
    /// Capture devices: what they deliver. Codecs: what they give (the
    /// coded formats of an encoder).
    pub formats: Vec<FormatInfo>,
    /// Codecs: what they take.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub input_formats: Vec<FormatInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FormatInfo {
    pub fourcc: String,
    pub description: String,
    /// A compressed format (H.264, MJPEG, ...), as the driver flags it.
    pub coded: bool,
    /// The agent can capture this format (see [`PixelFormat`]).
    pub supported: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sizes: Vec<FrameSizeInfo>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FrameSizeInfo {
    Discrete {
        width: u32,
        height: u32,
        /// Frame rates offered at this size, frames per second.
        fps: Vec<f64>,
    },
    Stepwise {
        min_width: u32,
        max_width: u32,
        step_width: u32,
        min_height: u32,
        max_height: u32,
        step_height: u32,
    },
}

/// Every /dev/video* node, in number order. A node that cannot be opened
/// (busy, no permission) is listed with the error as its card.
pub fn list_video_devices() -> Vec<VideoDeviceInfo> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("video")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, path)| describe(&path)).collect()
}

fn describe(path: &Path) -> VideoDeviceInfo {
    let device = match Device::open(path, DeviceConfig::new()) {
        Ok(d) => d,
        Err(e) => {
            return VideoDeviceInfo {
                path: path.to_owned(),
                card: format!("(cannot open: {e})"),
                driver: String::new(),
                bus: String::new(),
                role: VideoDeviceRole::Other,
                formats: Vec::new(),
                input_formats: Vec::new(),
            }
        }
    };
    let caps = device.caps();
    let flags = caps.device_caps();
    let m2m = flags.intersects(Capabilities::VIDEO_M2M | Capabilities::VIDEO_M2M_MPLANE);
    let (capture_q, output_q) = if flags.contains(Capabilities::VIDEO_M2M_MPLANE) {
        (QueueType::VideoCaptureMplane, QueueType::VideoOutputMplane)
    } else {
        (QueueType::VideoCapture, QueueType::VideoOutput)
    };
    let mut info = VideoDeviceInfo {
        path: path.to_owned(),
        card: caps.card.clone(),
        driver: caps.driver.clone(),
        bus: caps.bus_info.clone(),
        role: VideoDeviceRole::Other,
        formats: Vec::new(),
        input_formats: Vec::new(),
    };
    if m2m {
        info.formats = formats(&device, capture_q, false);
        info.input_formats = formats(&device, output_q, false);
        let coded = |f: &[FormatInfo]| f.iter().any(|f| f.coded);
        info.role = match (coded(&info.input_formats), coded(&info.formats)) {
            (false, true) => VideoDeviceRole::Encoder,
            (true, false) => VideoDeviceRole::Decoder,
            _ => VideoDeviceRole::Other,
        };
    } else if flags.contains(Capabilities::VIDEO_CAPTURE) {
        info.role = VideoDeviceRole::Capture;
        info.formats = formats(&device, QueueType::VideoCapture, true);
    }
    info
}

fn formats(device: &Device, queue: QueueType, with_sizes: bool) -> Vec<FormatInfo> {
    FormatIterator::new(device, queue)
        .take(256)
        .map(|d| {
            let fourcc = d.pixelformat.to_fourcc();
            FormatInfo {
                fourcc: String::from_utf8_lossy(&fourcc).trim_end().to_owned(),
                description: d.description.clone(),
                coded: d.flags.contains(ioctl::FormatFlags::COMPRESSED),
                supported: PixelFormat::from_fourcc(fourcc).is_some(),
                sizes: if with_sizes {
                    sizes(device, d.pixelformat)
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

fn sizes(device: &Device, format: v4l2r::PixelFormat) -> Vec<FrameSizeInfo> {
    let mut out = Vec::new();
    for index in 0..64 {
        let Ok(size) = ioctl::enum_frame_sizes::<v4l2_frmsizeenum>(device, index, format) else {
            break;
        };
        match size.size() {
            Some(FrmSizeTypes::Discrete(d)) => out.push(FrameSizeInfo::Discrete {
                width: d.width,
                height: d.height,
                fps: rates(device, format, d.width, d.height),
            }),
            Some(FrmSizeTypes::StepWise(s)) => {
                out.push(FrameSizeInfo::Stepwise {
                    min_width: s.min_width,
                    max_width: s.max_width,
                    step_width: s.step_width,
                    min_height: s.min_height,
                    max_height: s.max_height,
                    step_height: s.step_height,
                });
                break;
            }
            None => break,
        }
    }
    out
}

fn rates(device: &Device, format: v4l2r::PixelFormat, width: u32, height: u32) -> Vec<f64> {
    let mut out = Vec::new();
    for index in 0..64 {
        let Ok(ival) =
            ioctl::enum_frame_intervals::<v4l2_frmivalenum>(device, index, format, width, height)
        else {
            break;
        };
        let fps = |f: &v4l2r::bindings::v4l2_fract| {
            (f.numerator > 0).then(|| f.denominator as f64 / f.numerator as f64)
        };
        match ival.intervals() {
            Some(FrmIvalTypes::Discrete(f)) => out.extend(fps(f)),
            Some(FrmIvalTypes::StepWise(s)) => {
                // The fastest and the slowest.
                out.extend(fps(&s.min));
                out.extend(fps(&s.max));
                break;
            }
            None => break,
        }
    }
    out
}
