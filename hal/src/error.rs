use std::io;

/// An error from a device or a codec library, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum HalError {
    #[error("H.264 encoder: {0}")]
    VideoEncoder(String),
    #[error("AAC encoder: {0}")]
    AudioEncoder(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A device call failed: which device, what was being done.
    #[error("{device}: {op}: {source}")]
    Device {
        device: String,
        op: String,
        source: io::Error,
    },
    /// The device works but cannot do what was asked.
    #[error("{device}: {message}")]
    Unsupported { device: String, message: String },
}

impl HalError {
    pub fn device(device: impl Into<String>, op: impl Into<String>, source: io::Error) -> Self {
        HalError::Device {
            device: device.into(),
            op: op.into(),
            source,
        }
    }

    /// True when the device has gone away (unplugged, driver unloaded, node
    /// removed): worth waiting for it to come back rather than retrying.
    pub fn is_device_gone(&self) -> bool {
        match self {
            HalError::Device { source, .. } => matches!(
                source.raw_os_error(),
                Some(libc::ENODEV | libc::ENOENT | libc::ENXIO | libc::EIO)
            ),
            _ => false,
        }
    }
}
