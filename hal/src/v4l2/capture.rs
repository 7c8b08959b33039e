//! A V4L2 camera: format negotiation, frame rate, controls, mmap streaming.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use v4l2r::bindings::v4l2_streamparm;
use v4l2r::device::queue::direction::Capture;
use v4l2r::device::queue::dqbuf::DqBuffer;
use v4l2r::device::queue::{BuffersAllocated, GetFreeCaptureBuffer, Queue};
use v4l2r::device::{AllocatedQueue, Device, DeviceConfig, Stream, TryDequeue};
use v4l2r::ioctl::{self, Capabilities, DqBufIoctlError, IoctlConvertError};
use v4l2r::memory::MmapHandle;
use v4l2r::{Format, QueueType};

use super::{controls, errno};
use crate::video::{CapturedFrame, PixelFormat, VideoCapture, VideoFormat};
use crate::HalError;

/// Buffers in flight: enough to ride out a slow encode of one picture.
const BUFFERS: u32 = 4;
/// No picture for this long: the device is stuck (or gone).
const FRAME_TIMEOUT: Duration = Duration::from_secs(2);

type Buffers = Vec<MmapHandle>;

/// What the configuration asks of a camera.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureRequest {
    pub device: PathBuf,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// `None`: the first the device offers of [`PixelFormat::PREFERENCE`].
    pub format: Option<PixelFormat>,
    pub controls: Vec<(String, i64)>,
}

pub struct V4l2Capture {
    name: String,
    device: Arc<Device>,
    queue: Queue<Capture, BuffersAllocated<Buffers>>,
    format: VideoFormat,
    /// The picture the caller holds; its buffer is queued again on the next call.
    held: Option<DqBuffer<Capture, Buffers>>,
    /// Every buffer, mapped once for the life of the capture: v4l2loopback
    /// refuses to hand out a buffer that is not mapped at that moment, and
    /// mapping per picture costs two system calls for nothing.
    mappings: Vec<v4l2r::ioctl::PlaneMapping>,
}

impl V4l2Capture {
    pub fn open(request: &CaptureRequest) -> Result<Self, HalError> {
        let name = request.device.display().to_string();
        let device = Device::open(&request.device, DeviceConfig::new().non_blocking_dqbuf())
            .map_err(|e| HalError::device(&name, "opening", open_error(e)))?;
        let caps = device.caps().device_caps();
        if !caps.contains(Capabilities::VIDEO_CAPTURE) || !caps.contains(Capabilities::STREAMING) {
            return Err(HalError::Unsupported {
                device: name,
                message: format!(
                    "not a streaming single-planar capture device ({}, driver {})",
                    device.caps().card,
                    device.caps().driver
                ),
            });
        }
        let device = Arc::new(device);
        let mut queue = Queue::get_capture_queue(device.clone()).map_err(|e| {
            HalError::device(&name, "opening the capture queue", std::io::Error::other(e))
        })?;
        let offered: Vec<PixelFormat> = queue
            .format_iter()
            .filter_map(|d| PixelFormat::from_fourcc(d.pixelformat.to_fourcc()))
            .collect();
        let pixel = choose_format(&name, &offered, request.format)?;
        let set: Format = queue
            .change_format()
            .map_err(|e| HalError::device(&name, "reading the format", errno(e)))?
            .set_size(request.width as usize, request.height as usize)
            .set_pixelformat(v4l2r::PixelFormat::from_fourcc(&pixel.fourcc()))
            .apply()
            .map_err(|e| HalError::device(&name, "setting the format", errno(e)))?;
        if set.pixelformat.to_fourcc() != pixel.fourcc() {
            return Err(HalError::Unsupported {
                device: name,
                message: format!("refused format {pixel}, gave {}", set.pixelformat),
            });
        }
        let fps = set_frame_rate(&device, request.fps).unwrap_or((request.fps, 1));
        controls::apply(&*device, &name, &request.controls)?;
        let queue = queue
            .request_buffers::<Buffers>(BUFFERS)
            .map_err(|e| HalError::device(&name, "allocating buffers", std::io::Error::other(e)))?;
        let mappings = map_buffers(&device, &name, queue.num_buffers())?;
        let stride = set.plane_fmt.first().map_or(0, |p| p.bytesperline);
        let mut capture = Self {
            format: VideoFormat {
                pixel,
                width: set.width,
                height: set.height,
                stride: if pixel.is_coded() { 0 } else { stride },
                fps,
            },
            name,
            device,
            queue,
            held: None,
            mappings,
        };
        capture.queue_free_buffers()?;
        capture.queue.stream_on().map_err(|e| {
            HalError::device(
                &capture.name,
                "starting to stream",
                std::io::Error::other(e),
            )
        })?;
        Ok(capture)
    }

    fn queue_free_buffers(&mut self) -> Result<(), HalError> {
        while let Ok(buffer) = self.queue.try_get_free_buffer() {
            buffer.queue().map_err(|e| {
                HalError::device(&self.name, "queueing a buffer", std::io::Error::other(e))
            })?;
        }
        Ok(())
    }

    /// Waits up to [`FRAME_TIMEOUT`] for the driver to fill a buffer.
    fn wait_readable(&self) -> Result<(), HalError> {
        let mut pfd = libc::pollfd {
            fd: self.device.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, FRAME_TIMEOUT.as_millis() as i32) };
        match ready {
            r if r < 0 => Err(HalError::device(
                &self.name,
                "waiting for a picture",
                std::io::Error::last_os_error(),
            )),
            0 => Err(HalError::device(
                &self.name,
                "waiting for a picture",
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("none for {} s", FRAME_TIMEOUT.as_secs()),
                ),
            )),
            _ if pfd.revents & libc::POLLIN == 0 => Err(HalError::device(
                &self.name,
                "waiting for a picture",
                std::io::Error::from_raw_os_error(libc::ENODEV),
            )),
            _ => Ok(()),
        }
    }
}

/// The errno of a failed open (ENOENT: not plugged in yet) is kept, so
/// the caller can tell a missing camera from a broken one.
fn open_error(e: v4l2r::device::DeviceOpenError) -> std::io::Error {
    match e {
        v4l2r::device::DeviceOpenError::OpenError(e) => errno(e),
        other => std::io::Error::other(other.to_string()),
    }
}

fn map_buffers(
    device: &Device,
    name: &str,
    count: usize,
) -> Result<Vec<v4l2r::ioctl::PlaneMapping>, HalError> {
    (0..count)
        .map(|index| {
            let info: ioctl::QueryBuffer = ioctl::querybuf(device, QueueType::VideoCapture, index)
                .map_err(|e| {
                    HalError::device(
                        name,
                        "querying a buffer",
                        std::io::Error::other(e.to_string()),
                    )
                })?;
            let plane = info.planes.first().ok_or_else(|| {
                HalError::device(name, "querying a buffer", std::io::Error::other("no plane"))
            })?;
            ioctl::mmap(device, plane.mem_offset, plane.length).map_err(|e| {
                HalError::device(
                    name,
                    "mapping a buffer",
                    std::io::Error::other(e.to_string()),
                )
            })
        })
        .collect()
}

fn choose_format(
    name: &str,
    offered: &[PixelFormat],
    wanted: Option<PixelFormat>,
) -> Result<PixelFormat, HalError> {
    let list = || {
        offered
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match wanted {
        Some(f) if offered.contains(&f) => Ok(f),
        Some(f) => Err(HalError::Unsupported {
            device: name.to_owned(),
            message: format!("does not offer format {f}; it offers: {}", list()),
        }),
        None => PixelFormat::PREFERENCE
            .into_iter()
            .find(|f| offered.contains(f))
            .ok_or_else(|| HalError::Unsupported {
                device: name.to_owned(),
                message: "offers none of the formats the agent takes (h264, mjpeg, yuyv, nv12, yu12, uyvy, nv21, yv12)".to_owned(),
            }),
    }
}

/// Asks for `fps` and returns the rate the device settled on. Not every
/// device can set its rate (v4l2loopback, HDMI grabbers): it then runs at
/// its own, which the timestamps follow.
fn set_frame_rate(device: &Device, fps: u32) -> Option<(u32, u32)> {
    let mut parm = v4l2_streamparm {
        type_: QueueType::VideoCapture as u32,
        ..Default::default()
    };
    // `capture` is the member of the union for a capture queue.
    parm.parm.capture.timeperframe.numerator = 1;
    parm.parm.capture.timeperframe.denominator = fps;
    let got: v4l2_streamparm = ioctl::s_parm(device, parm)
        .or_else(|_| ioctl::g_parm(device, QueueType::VideoCapture))
        .ok()?;
    // SAFETY: as above.
    let t = unsafe { got.parm.capture.timeperframe };
    (t.numerator > 0 && t.denominator > 0).then_some((t.denominator, t.numerator))
}

impl VideoCapture for V4l2Capture {
    fn format(&self) -> VideoFormat {
        self.format
    }

    fn next_frame(&mut self) -> Result<CapturedFrame<'_>, HalError> {
        // Give back the picture taken last.
        self.held = None;
        self.queue_free_buffers()?;
        let buffer = loop {
            self.wait_readable()?;
            match self.queue.try_dequeue() {
                Ok(b) => break b,
                Err(IoctlConvertError::IoctlError(DqBufIoctlError::NotReady)) => continue,
                Err(IoctlConvertError::IoctlError(DqBufIoctlError::Other(e))) => {
                    return Err(HalError::device(
                        &self.name,
                        "dequeuing a picture",
                        errno(e),
                    ))
                }
                Err(e) => {
                    return Err(HalError::device(
                        &self.name,
                        "dequeuing a picture",
                        std::io::Error::other(e.to_string()),
                    ))
                }
            }
        };
        let Some(mapping) = self.mappings.get(buffer.data.index() as usize) else {
            return Err(HalError::device(
                &self.name,
                "dequeuing a picture",
                std::io::Error::other(format!("buffer {} was never mapped", buffer.data.index())),
            ));
        };
        let used = (*buffer.data.get_first_plane().bytesused as usize).min(mapping.as_ref().len());
        let ts = buffer.data.timestamp();
        let timestamp = Duration::new(
            ts.tv_sec.max(0) as u64,
            (ts.tv_usec.clamp(0, 999_999) * 1000) as u32,
        );
        let sequence = buffer.data.sequence();
        self.held = Some(buffer);
        Ok(CapturedFrame {
            data: &mapping.as_ref()[..used],
            timestamp,
            sequence,
        })
    }

    fn request_keyframe(&mut self) -> Result<(), HalError> {
        if self.format.pixel == PixelFormat::H264 {
            controls::force_key_frame(&*self.device, &self.name)?;
        }
        Ok(())
    }
}
