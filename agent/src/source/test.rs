//! The built-in test source: the test pattern encoded to H.264 and a tone
//! encoded to AAC-LC, paced in real time on the monotonic clock. Encoding
//! runs on two threads of its own so that it never stalls the reactor.
//!
//! Test hook: when `STREAMSWITCH_TEST_SOURCE_FAIL_FILE` names a file that
//! exists, the source fails (at start and within a second while running),
//! so that tests can exercise restarts without an external program.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use streamswitch_hal::{AacEncoder, AacEncoderConfig, H264Encoder, H264EncoderConfig, I420Image};

use super::pattern::Pattern;
use super::{Sink, Source, SourceFuture};
use crate::config::TestSourceConfig;
use crate::media::aac::AacParams;
use crate::media::h264::{self, H264Params};
use crate::media::{ticks_since, Frame, TrackInfo, TrackParams};

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
        Box::pin(run(sink, &self.config, self.fail_hook.clone()))
    }
}

/// Runs until the sink is cancelled or an encoder fails.
async fn run(sink: &Sink, config: &TestSourceConfig, fail_hook: Option<PathBuf>) -> Result<()> {
    check_hook(fail_hook.as_ref())?;
    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Result<()>>(2);
    let threads = {
        let (sink, stop, done, config) =
            (sink.clone(), stop.clone(), done_tx.clone(), config.clone());
        thread::Builder::new()
            .name(format!("test-src-{}", sink.stream()))
            .spawn(move || {
                let r = produce(&sink, &config, &stop);
                let _ = done.blocking_send(r);
            })
            .context("starting the test source thread")?
    };
    drop(done_tx);
    let mut hook_tick = tokio::time::interval(Duration::from_secs(1));
    let result = loop {
        tokio::select! {
            r = done_rx.recv() => break r.unwrap_or(Ok(())),
            _ = sink.cancelled() => break Ok(()),
            _ = hook_tick.tick() => if let Err(e) = check_hook(fail_hook.as_ref()) {
                break Err(e);
            },
        }
    };
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || threads.join()).await;
    result
}

fn check_hook(hook: Option<&PathBuf>) -> Result<()> {
    match hook {
        Some(path) if path.exists() => {
            bail!("forced failure (test hook: {} exists)", path.display())
        }
        _ => Ok(()),
    }
}

/// Sets up both encoders, announces the tracks and runs the video loop on
/// this thread and the audio loop on another.
fn produce(sink: &Sink, config: &TestSourceConfig, stop: &Arc<AtomicBool>) -> Result<()> {
    let keyframe_interval = ((config.fps as f64 * config.keyframe_seconds).round() as u32).max(1);
    let mut video = H264Encoder::new(H264EncoderConfig {
        width: config.width,
        height: config.height,
        fps: config.fps,
        bitrate_bps: config.bitrate_kbps * 1000,
        keyframe_interval,
    })?;
    let mut pattern = Pattern::new(config.width, config.height);
    let epoch = sink.epoch();
    let frame_time = Duration::from_secs(1) / config.fps;
    // Frames are numbered on the stream's timeline, so that the burnt-in
    // counter and the timestamps run on across restarts.
    let mut n = (epoch.elapsed().as_nanos() / frame_time.as_nanos()) as u64 + 1;
    let captured = epoch + frame_time * n as u32;

    // The first picture is an IDR and carries the parameter sets.
    let first = video.encode(&I420Image {
        width: config.width,
        height: config.height,
        data: pattern.draw(n),
    })?;
    let sps = find_nal(&first.nals, h264::NAL_SPS).ok_or_else(|| anyhow!("encoder gave no SPS"))?;
    let pps = find_nal(&first.nals, h264::NAL_PPS).ok_or_else(|| anyhow!("encoder gave no PPS"))?;
    // The size the stream announces is the one its SPS describes.
    let (width, height) =
        h264::sps_size(sps).ok_or_else(|| anyhow!("cannot read the encoder's SPS"))?;
    let mut tracks = vec![TrackInfo {
        params: TrackParams::H264(H264Params {
            sps: Bytes::copy_from_slice(sps),
            pps: Bytes::copy_from_slice(pps),
            width,
            height,
        }),
        clock_rate: 90_000,
    }];
    let audio_thread = if config.audio {
        let encoder = AacEncoder::new(AacEncoderConfig {
            sample_rate: AUDIO_RATE,
            channels: 1,
            bitrate_bps: AUDIO_BITRATE,
        })?;
        let mut params = AacParams::lc(AUDIO_RATE, 1);
        params.config = Bytes::copy_from_slice(encoder.audio_specific_config());
        tracks.push(TrackInfo {
            params: TrackParams::Aac(params),
            clock_rate: AUDIO_RATE,
        });
        let (sink, stop) = (sink.clone(), stop.clone());
        sink.params(tracks);
        Some(
            thread::Builder::new()
                .name(format!("test-aac-{}", sink.stream()))
                .spawn(move || audio_loop(&sink, encoder, epoch, &stop))
                .context("starting the test audio thread")?,
        )
    } else {
        sink.params(tracks);
        None
    };
    sink.frame(video_frame(
        &first.nals,
        true,
        ticks_since(epoch, captured, 90_000),
    ));
    n += 1;
    let result = video_loop(sink, &mut video, &mut pattern, config, n, stop);
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = audio_thread {
        t.join()
            .map_err(|_| anyhow!("test audio thread panicked"))??;
    }
    result
}

fn video_loop(
    sink: &Sink,
    encoder: &mut H264Encoder,
    pattern: &mut Pattern,
    config: &TestSourceConfig,
    mut n: u64,
    stop: &AtomicBool,
) -> Result<()> {
    let epoch = sink.epoch();
    let frame_time = Duration::from_secs(1) / config.fps;
    while !stop.load(Ordering::Relaxed) {
        let due = epoch + frame_time * n as u32;
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        } else if now - due > frame_time * 2 {
            // Too slow to keep up: skip ahead rather than drift. The counter
            // keeps counting, so the skipped numbers show the loss.
            let skipped = ((now - due).as_nanos() / frame_time.as_nanos()) as u64;
            n += skipped;
            // Logged: a stall shows as a frame lasting longer (the tests
            // tell a stalled machine from a muxer fault by this line).
            tracing::warn!("test source fell behind: skipped {skipped} frames");
            continue;
        }
        // A camera stamps a picture when it is captured, on schedule; the
        // time the encoder gets to it (late after a slow first encode)
        // must not make the timestamps jitter.
        let captured = due;
        if sink.keyframe_requested() {
            encoder.force_keyframe();
        }
        let picture = encoder.encode(&I420Image {
            width: config.width,
            height: config.height,
            data: pattern.draw(n),
        })?;
        n += 1;
        if picture.nals.is_empty() {
            continue;
        }
        let pts = ticks_since(epoch, captured, 90_000);
        sink.frame(video_frame(&picture.nals, picture.keyframe, pts));
    }
    Ok(())
}

fn audio_loop(
    sink: &Sink,
    mut encoder: AacEncoder,
    epoch: Instant,
    stop: &AtomicBool,
) -> Result<()> {
    let samples = encoder.frame_samples();
    let start = ticks_since(epoch, Instant::now(), AUDIO_RATE);
    let mut pcm = vec![0i16; samples];
    let mut phase = 0f32;
    let step = TONE_HZ * std::f32::consts::TAU / AUDIO_RATE as f32;
    let (mut read, mut written) = (0i64, 0i64);
    while !stop.load(Ordering::Relaxed) {
        // PCM "arrives" once the last of its samples would have been captured.
        let due = epoch
            + Duration::from_nanos(
                ((start + read + samples as i64) as u64) * 1_000_000_000 / AUDIO_RATE as u64,
            );
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        for s in pcm.iter_mut() {
            *s = (phase.sin() * 8000.0) as i16;
            phase = (phase + step) % std::f32::consts::TAU;
        }
        read += samples as i64;
        let au = encoder.encode(&pcm)?;
        if au.is_empty() {
            continue;
        }
        sink.frame(Frame {
            track: 1,
            pts: start + written,
            dts: start + written,
            key: true,
            data: Bytes::from(au),
        });
        written += samples as i64;
    }
    Ok(())
}

fn find_nal(nals: &[Vec<u8>], kind: u8) -> Option<&[u8]> {
    nals.iter()
        .find(|n| n.first().map(|b| b & 0x1f) == Some(kind))
        .map(Vec::as_slice)
}

fn video_frame(nals: &[Vec<u8>], key: bool, pts: i64) -> Frame {
    Frame {
        track: 0,
        pts,
        dts: pts,
        key,
        data: h264::length_prefixed(nals.iter().map(Vec::as_slice)),
    }
}
