//! A camera on the board (`kind = "v4l2"`), with the stream's microphone
//! (`audio = { kind = "alsa", ... }`), through the capture pipeline.
//!
//! Hot-plug: a camera that goes away (unplugged, driver unloaded) fails
//! the run, so the stream shows `down` with the error and its viewers stay.
//! While down, the device path is polled every 250 ms (no udev needed on a
//! minimal board); when it comes back the pause is cut short, so capture
//! resumes well within 2 s of its return.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use super::capture::{self, AudioInput, VideoInput};
use super::{ReadyFuture, Sink, Source, SourceFuture};
use crate::config::{AudioConfig, V4l2SourceConfig};

const DEVICE_POLL: Duration = Duration::from_millis(250);

pub struct CameraSource {
    config: V4l2SourceConfig,
    audio: Option<AudioConfig>,
}

impl CameraSource {
    pub fn new(config: V4l2SourceConfig, audio: Option<AudioConfig>) -> Self {
        Self { config, audio }
    }
}

impl Source for CameraSource {
    fn run<'a>(&'a self, sink: &'a Sink) -> SourceFuture<'a> {
        let (config, audio) = (self.config.clone(), self.audio.clone());
        Box::pin(capture::run(
            sink,
            Box::new(move || {
                let video = devices::open_camera(&config)?;
                let audio = audio.as_ref().map(devices::open_microphone).transpose()?;
                Ok((video, audio))
            }),
        ))
    }

    /// Resolves once the camera's path has been seen missing and then back.
    fn ready(&self) -> ReadyFuture<'_> {
        let path = PathBuf::from(&self.config.device);
        Box::pin(async move {
            let mut missing = false;
            loop {
                tokio::time::sleep(DEVICE_POLL).await;
                let present = path.exists();
                if present && missing {
                    return;
                }
                missing |= !present;
            }
        })
    }
}

/// Opening the devices of a build: each back-end only when compiled in.
mod devices {
    use super::*;

    #[cfg(feature = "v4l2")]
    pub fn open_camera(config: &V4l2SourceConfig) -> Result<VideoInput> {
        use anyhow::Context;
        use streamswitch_hal::v4l2::{CaptureRequest, V4l2Capture};
        use streamswitch_hal::{H264EncoderConfig, PixelFormat, VideoCapture};

        let capture = V4l2Capture::open(&CaptureRequest {
            device: PathBuf::from(&config.device),
            width: config.width,
            height: config.height,
            fps: config.fps,
            format: config.format.0,
            controls: config
                .controls
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        })
        .context("camera")?;
        let format = capture.format();
        // H.264 is passed through; `copy` passes MJPEG through too.
        let encoder: Option<Box<dyn streamswitch_hal::VideoEncoder>> = if format.pixel
            == PixelFormat::H264
            || config.encoder == crate::config::EncoderChoice::Copy
        {
            None
        } else {
            let (num, den) = format.fps;
            let fps = num.checked_div(den).map_or(config.fps, |f| f.max(1));
            let keyframe_interval = ((fps as f64 * config.keyframe_seconds).round() as u32).max(1);
            Some(open_encoder(
                config,
                &H264EncoderConfig {
                    width: format.width & !1,
                    height: format.height & !1,
                    fps,
                    bitrate_bps: config.bitrate_kbps * 1000,
                    keyframe_interval,
                },
            )?)
        };
        Ok(VideoInput {
            capture: Box::new(capture),
            encoder,
        })
    }

    /// `auto`: the board's mem2mem encoder when the scan finds one and it
    /// opens, else openh264.
    #[cfg(feature = "v4l2")]
    fn open_encoder(
        config: &V4l2SourceConfig,
        settings: &streamswitch_hal::H264EncoderConfig,
    ) -> Result<Box<dyn streamswitch_hal::VideoEncoder>> {
        use crate::config::EncoderChoice;
        use anyhow::Context;
        use streamswitch_hal::v4l2::{find_h264_encoder, M2mEncoder};
        use streamswitch_hal::H264Encoder;

        let hardware =
            match config.encoder {
                EncoderChoice::Openh264 | EncoderChoice::Copy => None,
                EncoderChoice::V4l2m2m => Some(find_h264_encoder().context(
                    "encoder = \"v4l2m2m\": no V4L2 mem2mem H.264 encoder on this board",
                )?),
                EncoderChoice::Auto => find_h264_encoder(),
            };
        if let Some(device) = hardware {
            match M2mEncoder::open(&device, settings, *b"H264") {
                Ok(e) => {
                    tracing::info!("H.264 encoder: {}", device.display());
                    return Ok(Box::new(e));
                }
                Err(e) if config.encoder == EncoderChoice::Auto => {
                    tracing::warn!("{e}; encoding with openh264 instead");
                }
                Err(e) => return Err(e).context("H.264 encoder"),
            }
        }
        Ok(Box::new(
            H264Encoder::new(*settings).context("H.264 encoder")?,
        ))
    }

    #[cfg(not(feature = "v4l2"))]
    pub fn open_camera(config: &V4l2SourceConfig) -> Result<VideoInput> {
        anyhow::bail!(
            "camera {}: this build has no V4L2 support (see `streamswitch devices`)",
            config.device
        )
    }

    #[cfg(feature = "alsa")]
    pub fn open_microphone(config: &AudioConfig) -> Result<AudioInput> {
        use anyhow::Context;
        use streamswitch_hal::alsa::{AlsaCapture, AlsaRequest};
        use streamswitch_hal::{AacEncoder, AacEncoderConfig};

        let capture = AlsaCapture::open(&AlsaRequest {
            device: config.device.clone(),
            rate: config.rate,
            channels: config.channels,
        })
        .context("microphone")?;
        let encoder = AacEncoder::new(AacEncoderConfig {
            sample_rate: config.rate,
            channels: config.channels,
            bitrate_bps: config.bitrate_kbps * 1000,
        })
        .context("AAC encoder")?;
        Ok(AudioInput {
            capture: Box::new(capture),
            encoder: Box::new(encoder),
        })
    }

    #[cfg(not(feature = "alsa"))]
    pub fn open_microphone(config: &AudioConfig) -> Result<AudioInput> {
        anyhow::bail!(
            "microphone {}: this build has no ALSA support (see `streamswitch devices`)",
            config.device
        )
    }
}
