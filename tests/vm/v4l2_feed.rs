//! A tool the VM tests run inside the guest, where no v4l2-ctl or ffmpeg
//! is: feeds coded pictures into a v4l2loopback device, and sets a
//! control by name (vivid's "Disconnect" button, to unplug a camera).
//!
//! ```text
//! v4l2-feed feed DEVICE FOURCC WIDTH HEIGHT FPS FRAMES   # loops FRAMES forever
//! v4l2-feed ctrl DEVICE NAME VALUE
//! ```
//! FRAMES holds records of a little-endian u32 length and that many bytes:
//! one picture each.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use v4l2r::bindings::v4l2_queryctrl;
use v4l2r::ioctl::{self, QueryCtrlFlags};
use v4l2r::{Format, PixelFormat, PlaneLayout, QueueType};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["feed", device, fourcc, width, height, fps, frames] => feed(
            device,
            fourcc,
            width.parse()?,
            height.parse()?,
            fps.parse()?,
            frames,
        ),
        ["ctrl", device, name, value] => set_control(device, name, value.parse()?),
        _ => bail!("usage: v4l2-feed feed DEVICE FOURCC W H FPS FRAMES | ctrl DEVICE NAME VALUE"),
    }
}

fn read_frames(path: &str) -> Result<Vec<Vec<u8>>> {
    let data = std::fs::read(path).with_context(|| path.to_owned())?;
    let mut frames = Vec::new();
    let mut rest = &data[..];
    while rest.len() >= 4 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let frame = rest
            .get(4..4 + len)
            .ok_or_else(|| anyhow!("{path}: record cut short"))?;
        frames.push(frame.to_vec());
        rest = &rest[4 + len..];
    }
    Ok(frames)
}

fn feed(device: &str, fourcc: &str, width: u32, height: u32, fps: u32, path: &str) -> Result<()> {
    let frames = read_frames(path)?;
    let largest = frames.iter().map(Vec::len).max().unwrap_or(0);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .with_context(|| device.to_owned())?;
    let code: [u8; 4] = fourcc
        .as_bytes()
        .try_into()
        .map_err(|_| anyhow!("fourcc must be 4 characters"))?;
    let format = Format {
        width,
        height,
        pixelformat: PixelFormat::from_fourcc(&code),
        plane_fmt: vec![PlaneLayout {
            sizeimage: largest as u32,
            bytesperline: 0,
        }],
    };
    let _: Format = ioctl::s_fmt(&mut file, (QueueType::VideoOutput, &format))
        .map_err(|e| anyhow!("{device}: setting the output format: {e}"))?;
    let interval = Duration::from_secs(1) / fps.max(1);
    let start = Instant::now();
    for (n, frame) in frames.iter().cycle().enumerate() {
        file.write_all(frame)
            .with_context(|| format!("{device}: writing picture {n}"))?;
        let due = start + interval * (n as u32 + 1);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    Ok(())
}

fn set_control(device: &str, name: &str, value: i32) -> Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .with_context(|| device.to_owned())?;
    let mut id = 0;
    while let Ok(q) = ioctl::queryctrl::<v4l2_queryctrl>(
        &file,
        ioctl::parse_ctrl_id_and_flags(id).0,
        QueryCtrlFlags::NEXT,
    ) {
        if q.id <= id {
            break;
        }
        id = q.id;
        let text = String::from_utf8_lossy(&q.name);
        let label: String = text.trim_end_matches('\0').to_lowercase().replace(' ', "_");
        if label == name {
            ioctl::s_ctrl(&file, q.id, value)
                .map_err(|e| anyhow!("{device}: setting {name}: {e}"))?;
            return Ok(());
        }
    }
    bail!("{device}: no control {name}")
}
