//! A V4L2 stateful mem2mem encoder (the Raspberry Pi's bcm2835-codec at
//! /dev/video11, SoC encoders, the kernel's `vicodec`): raw I420 pictures
//! on the OUTPUT queue, a coded stream on the CAPTURE queue. Speaks both the
//! single-planar and the multi-planar API, through v4l2r's ioctl layer.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use v4l2r::bindings::{v4l2_rect, v4l2_streamparm};
use v4l2r::ioctl::{
    self, BufferFlags, Capabilities, Capability, DqBufIoctlError, FormatIterator,
    IoctlConvertError, PlaneMapping, QBufPlane, QBuffer, QueryBuffer, SelectionFlags,
    SelectionTarget, SelectionType, UncheckedV4l2Buffer,
};
use v4l2r::memory::{MemoryType, MmapHandle};
use v4l2r::{Format, PlaneLayout, QueueType};

use super::scan::{list_video_devices, VideoDeviceRole};
use super::{controls, errno};
use crate::video::{EncodedPicture, H264EncoderConfig, I420Image, VideoEncoder};
use crate::HalError;

const V4L2_CID_MPEG_VIDEO_GOP_SIZE: u32 = 0x0099_09cb;
const V4L2_CID_MPEG_VIDEO_BITRATE: u32 = 0x0099_09cf;
const V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER: u32 = 0x0099_09e2;
const V4L2_CID_MPEG_VIDEO_H264_I_PERIOD: u32 = 0x0099_0a66;
/// `flags` bit of a FWHT frame header: an intra-coded picture.
const FWHT_FL_I_FRAME: u32 = 1 << 10;

/// Raw pictures the encoder may hold at once.
const OUTPUT_BUFFERS: u32 = 3;
/// Coded buffers: one more than the pictures, so a finished picture always
/// has somewhere to go while the caller is busy.
const CAPTURE_BUFFERS: u32 = 4;
/// The encoder has taken no picture back for this long: it is stuck.
const STUCK_TIMEOUT: Duration = Duration::from_secs(2);

pub struct M2mEncoder {
    name: String,
    fd: File,
    output_q: QueueType,
    capture_q: QueueType,
    coded: [u8; 4],
    config: H264EncoderConfig,
    /// The OUTPUT buffers' layout: lines (the driver's height: at least the
    /// picture's, maybe aligned) and luma bytes per line.
    layout: (usize, usize),
    output: Vec<PlaneMapping>,
    free_output: Vec<u32>,
    capture: Vec<PlaneMapping>,
    pictures: Pictures,
    has_force_control: bool,
    keyframe_wanted: bool,
}

impl M2mEncoder {
    /// Opens the encoder at `device`, coding to `coded` (`*b"H264"`; `vicodec`
    /// only gives `*b"FWHT"`), and sets it up for `config`.
    pub fn open(
        device: &Path,
        config: &H264EncoderConfig,
        coded: [u8; 4],
    ) -> Result<Self, HalError> {
        let name = device.display().to_string();
        if config.width == 0
            || config.height == 0
            || config.width % 2 != 0
            || config.height % 2 != 0
        {
            return Err(HalError::InvalidInput(format!(
                "picture size {}x{} must be even and non-zero",
                config.width, config.height
            )));
        }
        let mut fd = File::options()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(device)
            .map_err(|e| HalError::device(&name, "opening", e))?;
        let caps: Capability = ioctl::querycap(&fd)
            .map_err(|e| HalError::device(&name, "querying capabilities", errno(e)))?;
        let flags = caps.device_caps();
        let (output_q, capture_q) = if flags.contains(Capabilities::VIDEO_M2M_MPLANE) {
            (QueueType::VideoOutputMplane, QueueType::VideoCaptureMplane)
        } else if flags.contains(Capabilities::VIDEO_M2M) {
            (QueueType::VideoOutput, QueueType::VideoCapture)
        } else {
            return Err(HalError::Unsupported {
                device: name,
                message: format!(
                    "not a mem2mem device ({}, driver {})",
                    caps.card, caps.driver
                ),
            });
        };
        let offers = |queue, fourcc: [u8; 4]| {
            FormatIterator::new(&fd, queue)
                .take(256)
                .any(|d| d.pixelformat.to_fourcc() == fourcc)
        };
        if !offers(capture_q, coded) || !offers(output_q, *b"YU12") {
            return Err(HalError::Unsupported {
                device: name,
                message: format!(
                    "not an encoder from YU12 to {} ({}, driver {})",
                    String::from_utf8_lossy(&coded),
                    caps.card,
                    caps.driver
                ),
            });
        }

        // The stateful encoder interface: coded format first, then the raw
        // one (which sets the coded size), then the visible rectangle.
        let format = |pixelformat: [u8; 4]| Format {
            width: config.width,
            height: config.height,
            pixelformat: v4l2r::PixelFormat::from_fourcc(&pixelformat),
            plane_fmt: vec![PlaneLayout {
                sizeimage: 0,
                bytesperline: 0,
            }],
        };
        let set: Format = ioctl::s_fmt(&mut fd, (capture_q, &format(coded)))
            .map_err(|e| HalError::device(&name, "setting the coded format", errno(e)))?;
        if set.pixelformat.to_fourcc() != coded {
            return Err(HalError::Unsupported {
                device: name,
                message: format!("refused coded format, gave {}", set.pixelformat),
            });
        }
        let raw: Format = ioctl::s_fmt(&mut fd, (output_q, &format(*b"YU12")))
            .map_err(|e| HalError::device(&name, "setting the picture format", errno(e)))?;
        let layout = check_raw_format(&name, config, &raw)?;
        if (raw.width, raw.height) != (config.width, config.height) {
            crop(&fd, &name, config)?;
        }
        set_frame_rate(&fd, output_q, config.fps);
        let bitrate = i64::from(config.bitrate_bps);
        let interval = i64::from(config.keyframe_interval.max(1));
        controls::set_clamped(&fd, &name, V4L2_CID_MPEG_VIDEO_BITRATE, "bit rate", bitrate)?;
        controls::set_clamped(
            &fd,
            &name,
            V4L2_CID_MPEG_VIDEO_GOP_SIZE,
            "GOP size",
            interval,
        )?;
        controls::set_clamped(
            &fd,
            &name,
            V4L2_CID_MPEG_VIDEO_H264_I_PERIOD,
            "IDR period",
            interval,
        )?;
        // SPS/PPS in front of every IDR: a viewer joining late can decode.
        controls::set_clamped(
            &fd,
            &name,
            V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER,
            "inline headers",
            1,
        )?;
        let has_force_control = controls::range(&fd, controls::FORCE_KEY_FRAME).is_some();

        let output = map_buffers(&fd, &name, output_q, OUTPUT_BUFFERS)?;
        let capture = map_buffers(&fd, &name, capture_q, CAPTURE_BUFFERS)?;
        let mut encoder = Self {
            free_output: (0..output.len() as u32).rev().collect(),
            name,
            fd,
            output_q,
            capture_q,
            coded,
            config: *config,
            layout,
            output,
            capture,
            pictures: Pictures {
                h264: coded == *b"H264",
                ..Pictures::default()
            },
            has_force_control,
            keyframe_wanted: false,
        };
        encoder.start_capture()?;
        ioctl::streamon(&encoder.fd, output_q)
            .map_err(|e| HalError::device(&encoder.name, "starting the picture queue", errno(e)))?;
        Ok(encoder)
    }

    /// Queues every coded buffer and starts the CAPTURE queue.
    fn start_capture(&mut self) -> Result<(), HalError> {
        for index in 0..self.capture.len() as u32 {
            self.queue(self.capture_q, index, 0, "queueing a coded buffer")?;
        }
        ioctl::streamon(&self.fd, self.capture_q)
            .map_err(|e| HalError::device(&self.name, "starting the coded queue", errno(e)))
    }

    fn queue(&self, queue: QueueType, index: u32, bytes: usize, op: &str) -> Result<(), HalError> {
        let mut buffer = QBuffer::<MmapHandle>::new(queue, index);
        buffer.planes = vec![QBufPlane::new(bytes)];
        ioctl::qbuf::<_, ()>(&self.fd, buffer).map_err(|e| match e {
            IoctlConvertError::IoctlError(e) => HalError::device(&self.name, op, errno(e)),
            IoctlConvertError::ConversionError(never) => match never {},
        })
    }

    /// Takes a finished buffer off `queue`, if there is one.
    fn dequeue(&self, queue: QueueType, op: &str) -> Result<Option<Dequeued>, HalError> {
        match ioctl::dqbuf::<UncheckedV4l2Buffer>(&self.fd, queue) {
            Ok(b) => {
                let (bytes, offset) = match &b.1 {
                    Some(planes) => (planes[0].bytesused, planes[0].data_offset),
                    None => (b.0.bytesused, 0),
                };
                Ok(Some(Dequeued {
                    index: b.0.index,
                    flags: BufferFlags::from_bits_truncate(b.0.flags),
                    bytes: bytes as usize,
                    offset: offset as usize,
                }))
            }
            Err(IoctlConvertError::IoctlError(DqBufIoctlError::NotReady)) => Ok(None),
            Err(IoctlConvertError::IoctlError(e)) => {
                Err(HalError::device(&self.name, op, errno(e)))
            }
            Err(IoctlConvertError::ConversionError(never)) => match never {},
        }
    }

    /// Collects the pictures the encoder has finished and gives their
    /// buffers back to it.
    fn collect(&mut self) -> Result<(), HalError> {
        while let Some(b) = self.dequeue(self.capture_q, "dequeuing a coded buffer")? {
            let data = self
                .capture
                .get(b.index as usize)
                .and_then(|m| m.get(b.offset..b.bytes.min(m.len())))
                .ok_or_else(|| {
                    HalError::VideoEncoder(format!(
                        "{}: coded buffer {} out of bounds ({} bytes at {})",
                        self.name, b.index, b.bytes, b.offset
                    ))
                })?;
            // An errored buffer holds a lost picture; an empty one ends a drain.
            if !b.flags.contains(BufferFlags::ERROR) && !data.is_empty() {
                let keyframe_flag = b.flags.contains(BufferFlags::KEYFRAME);
                self.pictures
                    .push(parse_coded(self.coded, data, keyframe_flag));
            }
            self.queue(self.capture_q, b.index, 0, "queueing a coded buffer")?;
        }
        Ok(())
    }

    /// Raw buffers the encoder has finished with.
    fn reclaim(&mut self) -> Result<(), HalError> {
        while let Some(b) = self.dequeue(self.output_q, "dequeuing a picture buffer")? {
            if (b.index as usize) < self.output.len() && !self.free_output.contains(&b.index) {
                self.free_output.push(b.index);
            }
        }
        Ok(())
    }

    /// Waits up to `timeout` for the device to have a buffer to give back
    /// (a finished picture or a coded one); false when none came.
    fn wait(&self, timeout: Duration, op: &str) -> Result<bool, HalError> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN | libc::POLLOUT,
            revents: 0,
        };
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // SAFETY: one valid pollfd for the duration of the call.
            let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(HalError::device(&self.name, op, e));
            }
            if r == 0 {
                return Ok(false);
            }
            if pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                return Err(HalError::device(
                    &self.name,
                    op,
                    io::Error::from_raw_os_error(libc::EIO),
                ));
            }
            return Ok(true);
        }
    }

    /// A free raw buffer, waiting up to [`STUCK_TIMEOUT`] for the encoder
    /// to hand one back.
    fn free_buffer(&mut self) -> Result<u32, HalError> {
        let deadline = Instant::now() + STUCK_TIMEOUT;
        loop {
            self.reclaim()?;
            // Coded pictures are taken meanwhile: an encoder with no free
            // coded buffer would not take another picture.
            self.collect()?;
            if let Some(index) = self.free_output.pop() {
                return Ok(index);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.wait(left, "waiting for a free picture buffer")? {
                return Err(HalError::device(
                    &self.name,
                    "waiting for the encoder to take a picture",
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("none taken for {} s", STUCK_TIMEOUT.as_secs()),
                    ),
                ));
            }
        }
    }

    fn request_keyframe(&mut self) -> Result<(), HalError> {
        if self.has_force_control {
            return controls::force_key_frame(&self.fd, &self.name);
        }
        // No button (vicodec): restart the CAPTURE queue, which the stateful
        // encoder interface defines as a reset, so the next picture starts
        // a new stream with a key frame. Coded pictures not yet taken are lost.
        ioctl::streamoff(&self.fd, self.capture_q)
            .map_err(|e| HalError::device(&self.name, "stopping the coded queue", errno(e)))?;
        self.start_capture()
    }

    /// Copies `image` into raw buffer `index`, line by line where the
    /// driver's lines are longer than the picture's.
    fn fill(&mut self, index: u32, image: &I420Image<'_>) -> Result<usize, HalError> {
        let (height, stride) = self.layout;
        let mapping = self.output.get_mut(index as usize).ok_or_else(|| {
            HalError::VideoEncoder(format!("{}: no picture buffer {index}", self.name))
        })?;
        copy_i420(image, mapping, height, stride).ok_or_else(|| {
            HalError::VideoEncoder(format!(
                "{}: picture buffer {index} of {} bytes is too small",
                self.name,
                mapping.len()
            ))
        })
    }
}

/// Coded pictures taken from the device, not yet handed out.
#[derive(Default)]
struct Pictures {
    h264: bool,
    ready: VecDeque<EncodedPicture>,
    /// Parameter sets that came in a buffer of their own (some encoders
    /// send SPS/PPS apart, first): they go in front of the next picture.
    headers: Vec<Vec<u8>>,
}

impl Pictures {
    fn push(&mut self, mut picture: EncodedPicture) {
        if self.h264 && !picture.nals.iter().any(|n| is_slice(n)) {
            self.headers.append(&mut picture.nals);
            return;
        }
        if !self.headers.is_empty() {
            picture.nals.splice(0..0, self.headers.drain(..));
        }
        self.ready.push_back(picture);
    }
}

struct Dequeued {
    index: u32,
    flags: BufferFlags,
    bytes: usize,
    offset: usize,
}

impl VideoEncoder for M2mEncoder {
    fn encode(&mut self, image: &I420Image<'_>) -> Result<EncodedPicture, HalError> {
        let (w, h) = (image.width as usize, image.height as usize);
        if image.width != self.config.width || image.height != self.config.height {
            return Err(HalError::InvalidInput(format!(
                "picture is {w}x{h}, encoder expects {}x{}",
                self.config.width, self.config.height
            )));
        }
        if image.data.len() < w * h * 3 / 2 {
            return Err(HalError::InvalidInput(format!(
                "I420 buffer of {} bytes is too short for {w}x{h}",
                image.data.len()
            )));
        }
        if self.keyframe_wanted {
            self.request_keyframe()?;
            self.keyframe_wanted = false;
        }
        let index = self.free_buffer()?;
        let queued = self
            .fill(index, image)
            .and_then(|bytes| self.queue(self.output_q, index, bytes, "queueing a picture"));
        if let Err(e) = queued {
            self.free_output.push(index);
            return Err(e);
        }
        // Give the encoder about a frame's time to finish this picture; a
        // slower one (or one that holds a picture back) lags, and what it
        // finishes comes out of later calls.
        let grace = Duration::from_millis(1000 / u64::from(self.config.fps.max(1)));
        let deadline = Instant::now() + grace;
        loop {
            self.collect()?;
            self.reclaim()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.pictures.ready.is_empty()
                || left.is_zero()
                || !self.wait(left, "waiting for a coded picture")?
            {
                break;
            }
        }
        Ok(self.pictures.ready.pop_front().unwrap_or(EncodedPicture {
            nals: Vec::new(),
            keyframe: false,
        }))
    }

    fn force_keyframe(&mut self) {
        self.keyframe_wanted = true;
    }
}

impl Drop for M2mEncoder {
    fn drop(&mut self) {
        // Now, rather than when the file goes with the last buffer mapping.
        let _ = ioctl::streamoff(&self.fd, self.capture_q);
        let _ = ioctl::streamoff(&self.fd, self.output_q);
    }
}

/// The first encoder node that gives H.264 (Raspberry Pi: /dev/video11).
pub fn find_h264_encoder() -> Option<PathBuf> {
    list_video_devices()
        .into_iter()
        .find(|d| {
            d.role == VideoDeviceRole::Encoder && d.formats.iter().any(|f| f.fourcc == "H264")
        })
        .map(|d| d.path)
}

/// The layout (lines, luma bytes per line) of the raw format the driver
/// settled on, if it can carry the configured picture.
fn check_raw_format(
    name: &str,
    config: &H264EncoderConfig,
    raw: &Format,
) -> Result<(usize, usize), HalError> {
    let plane = match raw.plane_fmt.as_slice() {
        [plane] if raw.pixelformat.to_fourcc() == *b"YU12" => plane,
        _ => {
            return Err(HalError::Unsupported {
                device: name.to_owned(),
                message: format!(
                    "refused YU12 in one plane, gave {} in {}",
                    raw.pixelformat,
                    raw.plane_fmt.len()
                ),
            })
        }
    };
    let (width, height, stride) = (
        raw.width as usize,
        raw.height as usize,
        plane.bytesperline as usize,
    );
    if width < config.width as usize || height < config.height as usize || stride < width {
        return Err(HalError::Unsupported {
            device: name.to_owned(),
            message: format!(
                "cannot take {}x{} pictures: it gives {}x{} with {} bytes per line",
                config.width, config.height, raw.width, raw.height, plane.bytesperline
            ),
        });
    }
    Ok((height, stride))
}

/// Encodes the top-left `config` rectangle of the driver's larger (aligned,
/// or minimum) size.
fn crop(fd: &File, name: &str, config: &H264EncoderConfig) -> Result<(), HalError> {
    let want = v4l2_rect {
        left: 0,
        top: 0,
        width: config.width,
        height: config.height,
    };
    // The selection API takes the single-planar type for both APIs.
    let got: v4l2_rect = ioctl::s_selection(
        fd,
        SelectionType::Output,
        SelectionTarget::Crop,
        want,
        SelectionFlags::empty(),
    )
    .map_err(|e| HalError::device(name, "setting the visible size", errno(e)))?;
    if (got.left, got.top, got.width, got.height) != (0, 0, config.width, config.height) {
        return Err(HalError::Unsupported {
            device: name.to_owned(),
            message: format!(
                "cannot encode {}x{}: it crops to {}x{}",
                config.width, config.height, got.width, got.height
            ),
        });
    }
    Ok(())
}

/// Frame rate on the OUTPUT queue, which rate control works from. Not every
/// encoder takes it.
fn set_frame_rate(fd: &File, output_q: QueueType, fps: u32) {
    let mut parm = v4l2_streamparm {
        type_: output_q as u32,
        ..Default::default()
    };
    // `output` is the member of the union for an OUTPUT queue.
    parm.parm.output.timeperframe.numerator = 1;
    parm.parm.output.timeperframe.denominator = fps.max(1);
    let _ = ioctl::s_parm::<_, v4l2_streamparm>(fd, parm);
}

/// Allocates `count` MMAP buffers on `queue` and maps their first plane.
fn map_buffers(
    fd: &File,
    name: &str,
    queue: QueueType,
    count: u32,
) -> Result<Vec<PlaneMapping>, HalError> {
    let n: usize = ioctl::reqbufs(fd, queue, MemoryType::Mmap, count)
        .map_err(|e| HalError::device(name, "allocating buffers", errno(e)))?;
    if n == 0 {
        return Err(HalError::device(
            name,
            "allocating buffers",
            io::Error::from_raw_os_error(libc::ENOMEM),
        ));
    }
    (0..n)
        .map(|index| {
            let buffer: QueryBuffer = ioctl::querybuf(fd, queue, index).map_err(|e| match e {
                IoctlConvertError::IoctlError(e) => {
                    HalError::device(name, "querying a buffer", errno(e))
                }
                IoctlConvertError::ConversionError(never) => match never {},
            })?;
            let plane = buffer.planes.first().ok_or_else(|| {
                HalError::device(
                    name,
                    "querying a buffer",
                    io::Error::from_raw_os_error(libc::EINVAL),
                )
            })?;
            ioctl::mmap(fd, plane.mem_offset, plane.length)
                .map_err(|e| HalError::device(name, "mapping a buffer", errno(e)))
        })
        .collect()
}

/// Copies an I420 picture into a YU12 buffer of `height` lines of `stride`
/// bytes (chroma: half of each); the bytes used, or `None` if it is too small.
fn copy_i420(image: &I420Image<'_>, dst: &mut [u8], height: usize, stride: usize) -> Option<usize> {
    let (w, h) = (image.width as usize, image.height as usize);
    let (cw, ch, cstride) = (w / 2, h / 2, stride / 2);
    let size = stride * height + 2 * cstride * (height / 2);
    if w > stride || h > height || dst.len() < size || image.data.len() < w * h * 3 / 2 {
        return None;
    }
    let (y, chroma) = image.data.split_at(w * h);
    let (u, v) = chroma.split_at(cw * ch);
    let planes = [
        (y, w, h, 0, stride),
        (u, cw, ch, stride * height, cstride),
        (
            &v[..cw * ch],
            cw,
            ch,
            stride * height + cstride * (height / 2),
            cstride,
        ),
    ];
    for (src, width, lines, start, dst_stride) in planes {
        if width == dst_stride {
            dst[start..start + width * lines].copy_from_slice(&src[..width * lines]);
        } else {
            for (row, line) in src.chunks_exact(width).take(lines).enumerate() {
                let at = start + row * dst_stride;
                dst[at..at + width].copy_from_slice(line);
            }
        }
    }
    Some(size)
}

/// One coded buffer as a picture. H.264: its NAL units (Annex B split),
/// a key frame when it has an IDR slice. Anything else (FWHT): the whole
/// buffer as one unit, a key frame when the driver flags it so or (FWHT)
/// its header says intra.
fn parse_coded(coded: [u8; 4], data: &[u8], keyframe_flag: bool) -> EncodedPicture {
    if coded == *b"H264" {
        let nals: Vec<Vec<u8>> = split_annex_b(data).map(<[u8]>::to_vec).collect();
        let keyframe = nals
            .iter()
            .any(|n| n.first().is_some_and(|b| b & 0x1f == 5));
        return EncodedPicture { nals, keyframe };
    }
    let fwht_intra = coded == *b"FWHT"
        && data
            .get(20..24)
            .is_some_and(|f| u32::from_be_bytes([f[0], f[1], f[2], f[3]]) & FWHT_FL_I_FRAME != 0);
    EncodedPicture {
        nals: vec![data.to_vec()],
        keyframe: keyframe_flag || fwht_intra,
    }
}

/// A coded slice (NAL types 1-5), as opposed to parameter sets and SEI.
fn is_slice(nal: &[u8]) -> bool {
    nal.first().is_some_and(|b| (1..=5).contains(&(b & 0x1f)))
}

/// The NAL units of an Annex B stream, without start codes (3 or 4 bytes)
/// or the zero bytes that pad between units.
fn split_annex_b(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i);
            i += 3;
        } else {
            i += 1;
        }
    }
    let first = starts.first().copied().unwrap_or(data.len());
    let ends = starts.clone().into_iter().skip(1).chain([data.len()]);
    // Bytes before the first start code (none from a well-behaved driver)
    // are kept as a unit rather than dropped.
    std::iter::once(&data[..first])
        .chain(starts.into_iter().zip(ends).map(|(s, e)| &data[s + 3..e]))
        .map(|nal| {
            let end = nal.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            &nal[..end]
        })
        .filter(|nal| !nal.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v4l2::VideoDeviceInfo;

    #[test]
    fn annex_b_is_split_into_nal_units() {
        let sps = [0x67, 0x42, 0x00, 0x1f];
        let pps = [0x68, 0xce, 0x3c, 0x80];
        let idr = [0x65, 0x88, 0x80, 0x00, 0x10];
        let mut stream = vec![0, 0, 0, 1];
        stream.extend(sps);
        stream.extend([0, 0, 1]);
        stream.extend(pps);
        // trailing_zero_8bits before a 4-byte start code
        stream.extend([0, 0, 0, 0, 1]);
        stream.extend(idr);
        stream.extend([0, 0]);
        let picture = parse_coded(*b"H264", &stream, false);
        assert_eq!(picture.nals, vec![sps.to_vec(), pps.to_vec(), idr.to_vec()]);
        assert!(picture.keyframe);

        // A P slice is no key frame, whatever the buffer flag says.
        let p = parse_coded(*b"H264", &[0, 0, 0, 1, 0x41, 0x9a, 0x02], true);
        assert_eq!(p.nals, vec![vec![0x41, 0x9a, 0x02]]);
        assert!(!p.keyframe);

        assert!(split_annex_b(&[]).next().is_none());
        assert!(split_annex_b(&[0, 0, 0, 1]).next().is_none());
        assert_eq!(
            split_annex_b(&[0x09, 0xf0]).collect::<Vec<_>>(),
            [[0x09, 0xf0]]
        );
    }

    #[test]
    fn parameter_sets_alone_go_in_front_of_the_next_picture() {
        let mut pictures = Pictures {
            h264: true,
            ..Pictures::default()
        };
        pictures.push(parse_coded(
            *b"H264",
            &[0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2],
            false,
        ));
        assert!(pictures.ready.is_empty());
        pictures.push(parse_coded(*b"H264", &[0, 0, 0, 1, 0x65, 3], false));
        let picture = pictures.ready.pop_front().unwrap();
        assert_eq!(picture.nals, [vec![0x67, 1], vec![0x68, 2], vec![0x65, 3]]);
        assert!(picture.keyframe);
    }

    #[test]
    fn fwht_key_frames_come_from_the_header_or_the_flag() {
        let mut header = vec![0u8; 44];
        header[20..24].copy_from_slice(&FWHT_FL_I_FRAME.to_be_bytes());
        let intra = parse_coded(*b"FWHT", &header, false);
        assert!(intra.keyframe);
        assert_eq!(intra.nals, [header.clone()]);
        header[20..24].fill(0);
        assert!(!parse_coded(*b"FWHT", &header, false).keyframe);
        assert!(parse_coded(*b"VP80", &header, true).keyframe);
        // Too short for a header: no key frame, no panic.
        assert!(!parse_coded(*b"FWHT", &[0xff; 8], false).keyframe);
    }

    #[test]
    fn pictures_are_copied_line_by_line_into_padded_buffers() {
        // 4x2 picture into a 6-byte stride, 4-line buffer.
        let data = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let image = I420Image {
            width: 4,
            height: 2,
            data: &data,
        };
        let mut dst = vec![0u8; 6 * 4 * 3 / 2];
        assert_eq!(copy_i420(&image, &mut dst, 4, 6), Some(36));
        assert_eq!(&dst[0..6], [1, 2, 3, 4, 0, 0]);
        assert_eq!(&dst[6..12], [5, 6, 7, 8, 0, 0]);
        // U from 6 * 4, V after two chroma lines of 3.
        assert_eq!(&dst[24..27], [9, 10, 0]);
        assert_eq!(&dst[30..33], [11, 12, 0]);
        assert_eq!(copy_i420(&image, &mut dst[..35], 4, 6), None);
        assert_eq!(copy_i420(&image, &mut dst, 1, 6), None);
        // No padding: whole planes.
        let mut tight = vec![0u8; 12];
        assert_eq!(copy_i420(&image, &mut tight, 2, 4), Some(12));
        assert_eq!(tight, data);
    }

    #[test]
    fn bad_devices_give_clean_errors() {
        let config = config(640, 360);
        match M2mEncoder::open(
            Path::new("/dev/streamswitch-no-such-video"),
            &config,
            *b"H264",
        ) {
            Err(e @ HalError::Device { .. }) => assert!(e.is_device_gone(), "{e}"),
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("opened a missing device"),
        }
        // Not a V4L2 device at all.
        match M2mEncoder::open(Path::new("/dev/null"), &config, *b"H264") {
            Err(HalError::Device { op, .. }) => assert_eq!(op, "querying capabilities"),
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("/dev/null is no encoder"),
        }
    }

    fn config(width: u32, height: u32) -> H264EncoderConfig {
        H264EncoderConfig {
            width,
            height,
            fps: 5,
            bitrate_bps: 500_000,
            keyframe_interval: 30,
        }
    }

    /// The vicodec nodes (the kernel's virtual codec: `modprobe vicodec`),
    /// or `None` when there are none and the test is to be skipped, which
    /// STREAMSWITCH_HAL_REQUIRE_VICODEC=1 (the VM tests) turns into a failure.
    fn vicodec() -> Option<Vec<VideoDeviceInfo>> {
        let nodes: Vec<_> = list_video_devices()
            .into_iter()
            .filter(|d| d.driver == "vicodec" || d.card == "vicodec")
            .collect();
        if !nodes.is_empty() {
            return Some(nodes);
        }
        let required = std::env::var("STREAMSWITCH_HAL_REQUIRE_VICODEC").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "STREAMSWITCH_HAL_REQUIRE_VICODEC=1 but no vicodec device"
        );
        eprintln!("did not run: no vicodec device (STREAMSWITCH_HAL_REQUIRE_VICODEC=1 makes this a failure)");
        None
    }

    #[test]
    fn scan_classifies_vicodec() {
        let Some(nodes) = vicodec() else { return };
        let fourccs =
            |f: &[crate::v4l2::FormatInfo]| f.iter().map(|f| f.fourcc.clone()).collect::<Vec<_>>();
        for d in &nodes {
            println!(
                "{}: {} ({}) {:?} takes {:?} gives {:?}",
                d.path.display(),
                d.card,
                d.driver,
                d.role,
                fourccs(&d.input_formats),
                fourccs(&d.formats)
            );
        }
        let encoder = nodes
            .iter()
            .find(|d| d.role == VideoDeviceRole::Encoder)
            .expect("no vicodec node classified as an encoder");
        assert!(fourccs(&encoder.formats).contains(&"FWHT".to_owned()));
        assert!(fourccs(&encoder.input_formats).contains(&"YU12".to_owned()));
        let decoder = nodes
            .iter()
            .find(|d| d.role == VideoDeviceRole::Decoder)
            .expect("no vicodec node classified as a decoder");
        assert!(fourccs(&decoder.input_formats).contains(&"FWHT".to_owned()));
        assert!(fourccs(&decoder.formats).contains(&"YU12".to_owned()));
        // vicodec codes FWHT only: it is no H.264 encoder.
        let h264 = find_h264_encoder();
        assert!(
            !nodes.iter().any(|d| Some(&d.path) == h264.as_ref()),
            "{h264:?}"
        );
    }

    /// A diagonal gradient that moves 4 pixels a picture, grey chroma.
    fn gradient(width: usize, height: usize, n: usize) -> Vec<u8> {
        let mut data = vec![128u8; width * height * 3 / 2];
        for y in 0..height {
            for x in 0..width {
                data[y * width + x] = ((x + y + 4 * n) % 256) as u8;
            }
        }
        data
    }

    #[test]
    fn m2m_encoder_encodes_on_vicodec() {
        let Some(nodes) = vicodec() else { return };
        let node = nodes
            .iter()
            .find(|d| {
                d.role == VideoDeviceRole::Encoder && d.formats.iter().any(|f| f.fourcc == "FWHT")
            })
            .expect("no vicodec encoder node");
        let path = &node.path;
        let caps: Capability = ioctl::querycap(&File::open(path).unwrap()).unwrap();
        let mplane = caps.device_caps().contains(Capabilities::VIDEO_M2M_MPLANE);
        println!("{}: multi-planar API: {mplane}", path.display());

        // vicodec's smallest picture is 640x360: a smaller one is refused
        // (it cannot crop below that), not silently enlarged.
        match M2mEncoder::open(path, &config(320, 240), *b"FWHT") {
            Err(e @ HalError::Unsupported { .. }) => println!("320x240: {e}"),
            Err(e) => panic!("320x240: unexpected error: {e}"),
            Ok(_) => panic!("320x240 accepted"),
        }
        // No H.264 here.
        assert!(matches!(
            M2mEncoder::open(path, &config(640, 360), *b"H264"),
            Err(HalError::Unsupported { .. })
        ));

        // 648 wide: vicodec pads lines to 656 and the height to 368, so this
        // takes the line-by-line copy and the crop.
        let (w, h) = (648, 360);
        let mut encoder = M2mEncoder::open(path, &config(w, h), *b"FWHT").expect("open");
        let raw = (w * h * 3 / 2) as usize;
        let mut pictures = Vec::new();
        for n in 0..30 {
            if n == 20 {
                encoder.force_keyframe();
            }
            let data = gradient(w as usize, h as usize, n);
            let image = I420Image {
                width: w,
                height: h,
                data: &data,
            };
            let picture = encoder.encode(&image).expect("encode");
            let bytes: usize = picture.nals.iter().map(Vec::len).sum();
            println!("picture {n}: {bytes} bytes, keyframe {}", picture.keyframe);
            pictures.push(picture);
        }
        let coded = pictures.iter().filter(|p| !p.nals.is_empty()).count();
        assert!(coded >= 28, "only {coded} of 30 pictures came out");
        let first = pictures.iter().find(|p| !p.nals.is_empty()).unwrap();
        assert!(first.keyframe, "the first picture is no key frame");
        for p in pictures.iter().filter(|p| !p.nals.is_empty()) {
            let data = &p.nals[0];
            assert_eq!(p.nals.len(), 1);
            assert!(data.len() > 44 && data.len() < raw, "{} bytes", data.len());
            // FWHT header: the visible size is the picture's, not the padded one.
            let be = |at: usize| {
                u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
            };
            assert_eq!((be(12), be(16)), (w, h));
        }
        assert!(
            pictures[1..5].iter().any(|p| !p.keyframe),
            "no predicted pictures: a forced key frame would prove nothing"
        );
        // keyframe_interval 30 is clamped to vicodec's largest GOP, 16
        // (its default is 10).
        assert!(
            pictures[16].keyframe && !pictures[10].keyframe,
            "GOP size not set"
        );
        assert!(pictures[20].keyframe, "force_keyframe gave no key frame");

        let wrong = vec![0u8; 16];
        assert!(matches!(
            encoder.encode(&I420Image {
                width: 4,
                height: 2,
                data: &wrong
            }),
            Err(HalError::InvalidInput(_))
        ));
    }
}
