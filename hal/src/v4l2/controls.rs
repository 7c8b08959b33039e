//! Camera controls by name, as `v4l2-ctl --list-ctrls` shows them
//! ("Brightness" → `brightness`, "White Balance, Automatic" →
//! `white_balance_automatic`).

use std::os::fd::AsRawFd;

use v4l2r::bindings::{self, v4l2_queryctrl};
use v4l2r::ioctl::{self, CtrlId, QueryCtrlFlags};

use super::errno;
use crate::HalError;

/// V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME: a button an H.264 camera or
/// encoder offers to make its next picture an IDR.
pub(super) const FORCE_KEY_FRAME: u32 = 0x0099_09e5;

pub(super) struct ControlInfo {
    pub id: u32,
    pub name: String,
    pub minimum: i64,
    pub maximum: i64,
}

pub(super) fn control_name(description: &[u8]) -> String {
    let text = String::from_utf8_lossy(description.split(|&b| b == 0).next().unwrap_or(&[]));
    let mut name = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.ends_with('_') && !name.is_empty() {
            name.push('_');
        }
    }
    name.trim_end_matches('_').to_owned()
}

/// The integer, boolean and menu controls of a device.
pub(super) fn list(fd: &impl AsRawFd) -> Vec<ControlInfo> {
    let mut out = Vec::new();
    let mut id = 0;
    while let Ok(q) = ioctl::queryctrl::<v4l2_queryctrl>(
        fd,
        CtrlId::new(id).unwrap_or_else(|_| ioctl::parse_ctrl_id_and_flags(id).0),
        QueryCtrlFlags::NEXT,
    ) {
        if q.id <= id {
            break;
        }
        id = q.id;
        let settable = matches!(
            q.type_,
            bindings::v4l2_ctrl_type_V4L2_CTRL_TYPE_INTEGER
                | bindings::v4l2_ctrl_type_V4L2_CTRL_TYPE_BOOLEAN
                | bindings::v4l2_ctrl_type_V4L2_CTRL_TYPE_MENU
                | bindings::v4l2_ctrl_type_V4L2_CTRL_TYPE_INTEGER_MENU
        );
        if settable && q.flags & bindings::V4L2_CTRL_FLAG_DISABLED == 0 {
            out.push(ControlInfo {
                id: q.id,
                name: control_name(&q.name),
                minimum: q.minimum.into(),
                maximum: q.maximum.into(),
            });
        }
    }
    out
}

/// Sets each named control, checking it exists and is in range.
pub(super) fn apply(
    fd: &impl AsRawFd,
    device: &str,
    wanted: &[(String, i64)],
) -> Result<(), HalError> {
    if wanted.is_empty() {
        return Ok(());
    }
    let known = list(fd);
    for (name, value) in wanted {
        let Some(c) = known.iter().find(|c| c.name == *name) else {
            let names: Vec<&str> = known.iter().map(|c| c.name.as_str()).collect();
            return Err(HalError::Unsupported {
                device: device.to_owned(),
                message: format!("no control `{name}`; it has: {}", names.join(", ")),
            });
        };
        if *value < c.minimum || *value > c.maximum {
            return Err(HalError::Unsupported {
                device: device.to_owned(),
                message: format!(
                    "control `{name}` = {value} is out of range {}..={}",
                    c.minimum, c.maximum
                ),
            });
        }
        ioctl::s_ctrl(fd, c.id, *value as i32)
            .map_err(|e| HalError::device(device, format!("setting control `{name}`"), errno(e)))?;
    }
    Ok(())
}

/// The range of control `id`, or `None` when the device lacks it (or has
/// it disabled).
pub(super) fn range(fd: &impl AsRawFd, id: u32) -> Option<(i32, i32)> {
    let q: v4l2_queryctrl =
        ioctl::queryctrl(fd, CtrlId::new(id).ok()?, QueryCtrlFlags::empty()).ok()?;
    (q.flags & bindings::V4L2_CTRL_FLAG_DISABLED == 0).then_some((q.minimum, q.maximum))
}

/// Sets control `id` to `value`, clamped to its range. A device without
/// the control is left alone: codecs differ in which ones they have.
pub(super) fn set_clamped(
    fd: &impl AsRawFd,
    device: &str,
    id: u32,
    what: &str,
    value: i64,
) -> Result<(), HalError> {
    let Some((min, max)) = range(fd, id) else {
        return Ok(());
    };
    let value = value.clamp(min.into(), max.into()) as i32;
    match ioctl::s_ctrl(fd, id, value) {
        Ok(_) | Err(ioctl::GCtrlError::Invalid) => Ok(()),
        Err(e) => Err(HalError::device(
            device,
            format!("setting the {what}"),
            errno(e),
        )),
    }
}

/// Presses the force-key-frame button.
pub(super) fn force_key_frame(fd: &impl AsRawFd, device: &str) -> Result<(), HalError> {
    ioctl::s_ctrl(fd, FORCE_KEY_FRAME, 1)
        .map(|_| ())
        .map_err(|e| HalError::device(device, "forcing a key frame", errno(e)))
}

#[cfg(test)]
mod tests {
    use super::control_name;

    #[test]
    fn names_are_lower_snake_case() {
        assert_eq!(control_name(b"Brightness\0\0"), "brightness");
        assert_eq!(
            control_name(b"White Balance, Automatic"),
            "white_balance_automatic"
        );
        assert_eq!(
            control_name(b"Power Line Frequency \0x"),
            "power_line_frequency"
        );
        assert_eq!(control_name(b"Gain \xff\xfe"), "gain");
    }
}
