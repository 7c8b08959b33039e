/// An error from a device or a codec library, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum HalError {
    #[error("H.264 encoder: {0}")]
    VideoEncoder(String),
    #[error("AAC encoder: {0}")]
    AudioEncoder(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
}
