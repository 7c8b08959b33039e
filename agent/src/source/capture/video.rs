//! The camera's loop: pictures to H.264 access units (or, with
//! `encoder = "copy"`, the camera's MJPEG as it is) on the hub. It
//! announces the tracks once the first parameter sets are known (and again
//! when they change), then starts the microphone's loop beside it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use streamswitch_hal::{I420Image, PixelFormat, VideoFormat};
use tracing::{debug, warn};

use super::convert::to_i420;
use super::timeline::Timeline;
use super::{audio, AudioInput, VideoInput};
use crate::media::annexb::AnnexBSplitter;
use crate::media::h264::{self, H264Params};
use crate::media::jpeg::{self, JpegParams};
use crate::media::{Frame, TrackInfo, TrackParams};
use crate::source::Sink;

const VIDEO_RATE: u32 = 90_000;
/// Pictures that do not convert (a torn MJPEG frame, v4l2loopback's first
/// buffer) are skipped; this many in a row is a broken camera.
const MAX_BAD_PICTURES: u32 = 100;

pub fn run(
    sink: &Sink,
    mut input: VideoInput,
    audio: Option<AudioInput>,
    stop: &Arc<AtomicBool>,
) -> Result<()> {
    let format = input.capture.format();
    debug!(
        stream = sink.stream(),
        "capturing {} {}x{} at {}/{} fps",
        format.pixel,
        format.width,
        format.height,
        format.fps.0,
        format.fps.1
    );
    let timeline = Timeline::new(sink.epoch());
    let mut params = Params::new(audio.as_ref().map(audio::track_info));
    let mut audio = audio;
    let mut audio_thread = None;
    let mut i420 = Vec::new();
    let mut last_sequence: Option<u32> = None;
    let mut bad = 0u32;
    let mut last_warning = None::<Instant>;
    let result = (|| -> Result<()> {
        while !stop.load(Ordering::Relaxed) {
            if sink.keyframe_requested() {
                match input.encoder.as_mut() {
                    Some(e) => e.force_keyframe(),
                    None => input.capture.request_keyframe().context("camera")?,
                }
            }
            let frame = input.capture.next_frame().context("camera")?;
            if let Some(last) = last_sequence {
                let gap = frame.sequence.wrapping_sub(last).wrapping_sub(1);
                if gap > 0 && gap < 1 << 20 {
                    sink.capture_dropped_frames(u64::from(gap));
                    // Logged: a stall shows as a picture lasting longer (the
                    // tests tell a stalled machine from a muxer fault by this).
                    warn!(
                        stream = sink.stream(),
                        "capture fell behind: {gap} pictures dropped"
                    );
                }
            }
            last_sequence = Some(frame.sequence);
            let pts = timeline.ticks(frame.timestamp, VIDEO_RATE);
            let coded = match input.encoder.as_mut() {
                None => passthrough(&format, frame.data),
                Some(encoder) => match to_i420(&format, frame.data, &mut i420) {
                    Ok(()) => {
                        let picture = encoder
                            .encode(&I420Image {
                                width: format.width & !1,
                                height: format.height & !1,
                                data: &i420,
                            })
                            .context("H.264 encoder")?;
                        Ok(h264_picture(
                            picture.nals.into_iter().map(Bytes::from).collect(),
                            &format,
                        ))
                    }
                    Err(e) => Err(e.to_string()),
                },
            };
            let picture = match coded {
                Ok(p) => p,
                Err(e) => {
                    bad += 1;
                    if bad >= MAX_BAD_PICTURES {
                        return Err(anyhow!("{bad} pictures in a row were unusable: {e}"));
                    }
                    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        warn!(stream = sink.stream(), "picture skipped: {e}");
                        last_warning = Some(Instant::now());
                    }
                    continue;
                }
            };
            bad = 0;
            let Some(picture) = picture else {
                continue;
            };
            if let Some(track) = picture.track {
                if params.update(track) {
                    sink.params(params.tracks());
                }
            }
            if !params.announced() {
                continue;
            }
            if audio_thread.is_none() {
                if let Some(input) = audio.take() {
                    let (sink, stop) = (sink.clone(), stop.clone());
                    audio_thread = Some(
                        thread::Builder::new()
                            .name(format!("mic-{}", sink.stream()))
                            .spawn(move || audio::run(&sink, input, &stop))
                            .context("starting the microphone thread")?,
                    );
                }
            }
            sink.frame(Frame {
                track: 0,
                pts,
                dts: pts,
                key: picture.key,
                data: picture.data,
            });
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = audio_thread {
        t.join()
            .map_err(|_| anyhow!("microphone thread panicked"))??;
    }
    result
}

fn split_annexb(data: &[u8]) -> Vec<Bytes> {
    let mut splitter = AnnexBSplitter::new();
    splitter.push(data);
    let mut nals = Vec::new();
    while let Some(n) = splitter.next_nal() {
        nals.push(n);
    }
    nals.extend(splitter.finish());
    nals
}

/// The stream's tracks as the parameter sets seen so far describe them.
struct Params {
    video: Option<TrackInfo>,
    audio: Option<TrackInfo>,
}

impl Params {
    fn new(audio: Option<TrackInfo>) -> Self {
        Self { video: None, audio }
    }

    fn announced(&self) -> bool {
        self.video.is_some()
    }

    fn tracks(&self) -> Vec<TrackInfo> {
        self.video
            .iter()
            .chain(self.audio.iter())
            .cloned()
            .collect()
    }

    /// Takes the track a picture describes; true when it is new.
    fn update(&mut self, track: TrackInfo) -> bool {
        if self.video.as_ref() == Some(&track) {
            return false;
        }
        self.video = Some(track);
        true
    }
}

/// One picture, coded, as it goes onto the hub.
struct Picture {
    /// The video track as this picture describes it (H.264: when it
    /// carries SPS and PPS; MJPEG: always).
    track: Option<TrackInfo>,
    key: bool,
    data: Bytes,
}

/// A camera's own coded picture as it is: H.264 (Annex B) or, with
/// `encoder = "copy"`, MJPEG. `Ok(None)`: nothing in it; `Err`: a picture
/// that cannot be sent (a torn frame, a JPEG that RTP cannot carry).
fn passthrough(format: &VideoFormat, data: &[u8]) -> Result<Option<Picture>, String> {
    match format.pixel {
        PixelFormat::H264 => Ok(h264_picture(split_annexb(data), format)),
        PixelFormat::Mjpeg => {
            let picture = jpeg::parse(data).map_err(|e| e.to_string())?;
            Ok(Some(Picture {
                track: Some(TrackInfo {
                    params: TrackParams::Jpeg(JpegParams {
                        width: picture.width,
                        height: picture.height,
                    }),
                    clock_rate: VIDEO_RATE,
                }),
                key: true,
                data: Bytes::copy_from_slice(data),
            }))
        }
        other => Err(format!("{other} pictures need an encoder")),
    }
}

/// An H.264 access unit from its NAL units; the track when it carries SPS
/// and PPS (its size the one the SPS describes).
fn h264_picture(nals: Vec<Bytes>, format: &VideoFormat) -> Option<Picture> {
    if nals.is_empty() {
        return None;
    }
    let find = |kind| {
        nals.iter()
            .find(|n| n.first().map(|b| b & 0x1f) == Some(kind))
    };
    let track = match (find(h264::NAL_SPS), find(h264::NAL_PPS)) {
        (Some(sps), Some(pps)) => {
            let (width, height) = h264::sps_size(sps).unwrap_or((format.width, format.height));
            Some(TrackInfo {
                params: TrackParams::H264(H264Params {
                    sps: sps.clone(),
                    pps: pps.clone(),
                    width,
                    height,
                }),
                clock_rate: VIDEO_RATE,
            })
        }
        _ => None,
    };
    let key = nals
        .iter()
        .any(|n| n.first().map(|b| b & 0x1f) == Some(h264::NAL_IDR));
    Some(Picture {
        track,
        key,
        data: h264::length_prefixed(nals.iter().map(|n| &n[..])),
    })
}
