//! The built-in test source: the test pattern camera and the tone
//! microphone of hal, through the capture pipeline a real camera uses
//! (openh264 and FDK AAC). With `format = "yuyv"` or `"mjpeg"` the pattern
//! comes as a raw or MJPEG camera delivers it, so that the pipeline's
//! conversion and decoding run (tests, `bench-capture`); with
//! `encoder = "copy"` too, the MJPEG pictures are served as they are.
//!
//! Test hook: when `STREAMSWITCH_TEST_SOURCE_FAIL_FILE` names a file that
//! exists, the source fails (at start and within a second while running),
//! so that tests can exercise restarts without an external program.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use streamswitch_hal::fake::{LoopCamera, PatternCamera, ToneMicrophone};
use streamswitch_hal::{
    AacEncoder, AacEncoderConfig, H264Encoder, H264EncoderConfig, Monotonic, PixelFormat,
    VideoCapture, VideoEncoder,
};

use super::capture::{self, AudioInput, VideoInput};
use super::{Sink, Source, SourceFuture};
use crate::config::{EncoderChoice, TestFormat, TestSourceConfig};

pub const AUDIO_RATE: u32 = 48_000;
const TONE_HZ: f32 = 1000.0;
const AUDIO_BITRATE: u32 = 64_000;
const FAIL_HOOK_ENV: &str = "STREAMSWITCH_TEST_SOURCE_FAIL_FILE";

pub struct TestSource {
    config: TestSourceConfig,
    fail_hook: Option<PathBuf>,
}

impl TestSource {
    pub fn new(config: TestSourceConfig) -> Self {
        Self {
            config,
            fail_hook: std::env::var_os(FAIL_HOOK_ENV).map(PathBuf::from),
        }
    }
}

impl Source for TestSource {
    fn run<'a>(&'a self, sink: &'a Sink) -> SourceFuture<'a> {
        Box::pin(run(sink, self.config.clone(), self.fail_hook.clone()))
    }
}

async fn run(sink: &Sink, config: TestSourceConfig, fail_hook: Option<PathBuf>) -> Result<()> {
    check_hook(fail_hook.as_ref())?;
    let (child, token) = sink.child();
    let pipeline = capture::run(&child, Box::new(move || open(&config)));
    tokio::pin!(pipeline);
    let mut hook_tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            r = &mut pipeline => return r,
            _ = hook_tick.tick() => if let Err(e) = check_hook(fail_hook.as_ref()) {
                token.cancel();
                let _ = pipeline.await;
                return Err(e);
            },
        }
    }
}

fn check_hook(hook: Option<&PathBuf>) -> Result<()> {
    match hook {
        Some(path) if path.exists() => {
            bail!("forced failure (test hook: {} exists)", path.display())
        }
        _ => Ok(()),
    }
}

fn open(config: &TestSourceConfig) -> Result<(VideoInput, Option<AudioInput>)> {
    let clock = Arc::new(Monotonic);
    let keyframe_interval = ((config.fps as f64 * config.keyframe_seconds).round() as u32).max(1);
    let encoder: Option<Box<dyn VideoEncoder>> = match config.encoder {
        EncoderChoice::Copy => None,
        _ => Some(Box::new(H264Encoder::new(H264EncoderConfig {
            width: config.width,
            height: config.height,
            fps: config.fps,
            bitrate_bps: config.bitrate_kbps * 1000,
            keyframe_interval,
        })?)),
    };
    let (width, height, fps) = (config.width, config.height, config.fps);
    let capture: Box<dyn VideoCapture> = match config.format {
        TestFormat::Yu12 => Box::new(PatternCamera::new(width, height, fps, clock.clone())),
        TestFormat::Yuyv => Box::new(LoopCamera::new(
            PixelFormat::Yuyv,
            width,
            height,
            fps,
            clock.clone(),
        )?),
        TestFormat::Mjpeg => Box::new(LoopCamera::new(
            PixelFormat::Mjpeg,
            width,
            height,
            fps,
            clock.clone(),
        )?),
    };
    let video = VideoInput { capture, encoder };
    let audio = if config.audio {
        Some(AudioInput {
            capture: Box::new(ToneMicrophone::new(AUDIO_RATE, 1, TONE_HZ, clock)),
            encoder: Box::new(AacEncoder::new(AacEncoderConfig {
                sample_rate: AUDIO_RATE,
                channels: 1,
                bitrate_bps: AUDIO_BITRATE,
            })?),
        })
    } else {
        None
    };
    Ok((video, audio))
}
