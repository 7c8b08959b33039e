//! From the exec child's bytes to the stream's parameters and frames
//! (H.264 or H.265 video, AAC audio).
//!
//! Timestamps: MPEG-TS PTS/DTS (90 kHz, 33 bits, unwrapped) are mapped onto
//! the stream's timeline by pinning the first one to its arrival time; a
//! jump of more than [`MAX_JUMP`] (the program restarted its clock) pins
//! again. Raw Annex B has no timestamps: frames are paced at `fps` from
//! their arrival, and pinned again when that drifts a second away.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use bytes::Bytes;

use super::super::Sink;
use crate::media::aac::AacParams;
use crate::media::annexb::{AccessUnit, AccessUnitAssembler, AnnexBSplitter, VideoCodec};
use crate::media::h264::{self, H264Params};
use crate::media::h265::{self, H265Params};
use crate::media::mpegts::{StreamKind, TimestampUnwrapper, TsDemuxer};
use crate::media::{adts, rescale, ticks_since, Frame, TrackInfo, TrackParams};

const VIDEO_RATE: u32 = 90_000;
/// A timestamp step larger than this is a new clock, not media time.
const MAX_JUMP: Duration = Duration::from_secs(10);

/// The parameters announced so far and what is still missing.
#[derive(Default)]
struct Tracks {
    /// Whether the input has video and audio at all (from the PMT).
    has_video: bool,
    has_audio: bool,
    video: Option<TrackParams>,
    audio: Option<AacParams>,
    announced: Option<Vec<TrackInfo>>,
}

impl Tracks {
    fn video_index(&self) -> Option<usize> {
        self.has_video.then_some(0)
    }

    fn audio_index(&self) -> Option<usize> {
        self.has_audio.then_some(usize::from(self.has_video))
    }

    /// Announces the tracks once every one of them has its parameters, and
    /// again when they change. False while something is missing.
    fn announce(&mut self, sink: &Sink) -> bool {
        let mut tracks = Vec::new();
        if self.has_video {
            let Some(v) = &self.video else { return false };
            tracks.push(TrackInfo {
                params: v.clone(),
                clock_rate: VIDEO_RATE,
            });
        }
        if self.has_audio {
            let Some(a) = &self.audio else { return false };
            tracks.push(TrackInfo {
                clock_rate: a.sample_rate,
                params: TrackParams::Aac(a.clone()),
            });
        }
        if tracks.is_empty() {
            return false;
        }
        if self.announced.as_ref() != Some(&tracks) {
            sink.params(tracks.clone());
            self.announced = Some(tracks);
        }
        true
    }

    /// Takes the parameter sets of a keyframe; an error for a stream whose
    /// SPS says nothing of its size.
    fn take_video(&mut self, au: &AccessUnit, codec: VideoCodec) -> Result<()> {
        let (Some(sps), Some(pps)) = (&au.sps, &au.pps) else {
            return Ok(());
        };
        let unreadable = || anyhow!("cannot read the picture size from the SPS");
        self.video = Some(match codec {
            VideoCodec::H264 => {
                let (width, height) = h264::sps_size(sps).ok_or_else(unreadable)?;
                TrackParams::H264(H264Params {
                    sps: sps.clone(),
                    pps: pps.clone(),
                    width,
                    height,
                })
            }
            VideoCodec::H265 => {
                let Some(vps) = &au.vps else { return Ok(()) };
                let (width, height) = h265::sps_size(sps).ok_or_else(unreadable)?;
                TrackParams::H265(H265Params {
                    vps: vps.clone(),
                    sps: sps.clone(),
                    pps: pps.clone(),
                    width,
                    height,
                })
            }
        });
        Ok(())
    }
}

/// Maps 90 kHz timestamps onto the stream's timeline.
struct Clock {
    epoch: Instant,
    /// (input timestamp, stream ticks) pinned together.
    pin: Option<(i64, i64)>,
    last: Option<i64>,
}

impl Clock {
    fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            pin: None,
            last: None,
        }
    }

    /// Stream ticks (90 kHz) of the unwrapped input timestamp `ts`.
    fn map(&mut self, ts: i64) -> i64 {
        let jump = MAX_JUMP.as_secs() as i64 * i64::from(VIDEO_RATE);
        let jumped = self.last.is_some_and(|l| (ts - l).abs() > jump);
        if self.pin.is_none() || jumped {
            let now = ticks_since(self.epoch, Instant::now(), VIDEO_RATE);
            self.pin = Some((ts, now));
        }
        self.last = Some(ts);
        let (at, ticks) = self.pin.unwrap_or((ts, 0));
        ticks + (ts - at)
    }
}

/// MPEG-TS input: H.264 video and AAC (ADTS) audio.
pub struct TsInput {
    demux: TsDemuxer,
    clock: Clock,
    unwrap: HashMap<u16, TimestampUnwrapper>,
    tracks: Tracks,
}

impl TsInput {
    pub fn new(epoch: Instant) -> Self {
        Self {
            demux: TsDemuxer::new(),
            clock: Clock::new(epoch),
            unwrap: HashMap::new(),
            tracks: Tracks::default(),
        }
    }

    /// Feeds bytes; returns the frames published.
    pub fn push(&mut self, data: &[u8], sink: &Sink) -> Result<usize> {
        let mut published = 0;
        for pes in self.demux.push(data) {
            let pes = match pes {
                Ok(p) => p,
                Err(e) => {
                    tracing::debug!(stream = sink.stream(), "mpegts: {e}");
                    continue;
                }
            };
            self.tracks.has_video = self.demux.streams().any(|(_, k)| k.is_video());
            self.tracks.has_audio = self.demux.streams().any(|(_, k)| k == StreamKind::Aac);
            let Some(pts) = pes.pts else { continue };
            let unwrap = self.unwrap.entry(pes.pid).or_default();
            let pts = unwrap.extend(pts);
            let dts = pes.dts.map_or(pts, |d| unwrap.extend(d));
            let (pts, dts) = (self.clock.map(pts), self.clock.map(dts));
            match pes.kind {
                StreamKind::H264 => {
                    published += self.video(pes.payload, VideoCodec::H264, pts, dts, sink)?
                }
                StreamKind::H265 => {
                    published += self.video(pes.payload, VideoCodec::H265, pts, dts, sink)?
                }
                StreamKind::Aac => published += self.audio(&pes.payload, pts, sink),
            }
        }
        Ok(published)
    }

    /// One video PES: one access unit (what encoders and ffmpeg write).
    fn video(
        &mut self,
        payload: Bytes,
        codec: VideoCodec,
        pts: i64,
        dts: i64,
        sink: &Sink,
    ) -> Result<usize> {
        let mut splitter = AnnexBSplitter::new();
        let mut assembler = AccessUnitAssembler::new(codec);
        splitter.push(&payload);
        let mut units = Vec::new();
        while let Some(nal) = splitter.next_nal() {
            units.extend(assembler.push(nal));
        }
        if let Some(nal) = splitter.finish() {
            units.extend(assembler.push(nal));
        }
        units.extend(assembler.flush());
        let mut published = 0;
        for au in units {
            if au.key {
                self.tracks.take_video(&au, codec)?;
            }
            if !self.tracks.announce(sink) {
                continue;
            }
            let Some(track) = self.tracks.video_index() else {
                continue;
            };
            sink.frame(Frame {
                track,
                pts,
                dts,
                key: au.key,
                data: au.data,
            });
            published += 1;
        }
        Ok(published)
    }

    /// One audio PES: ADTS frames of 1024 samples from its PTS on.
    fn audio(&mut self, payload: &Bytes, pts: i64, sink: &Sink) -> usize {
        let mut published = 0;
        for (i, frame) in adts::frames(payload).enumerate() {
            let frame = match frame {
                Ok(f) => f,
                Err(e) => {
                    tracing::debug!(stream = sink.stream(), "adts: {e}");
                    break;
                }
            };
            let params = frame.header.params();
            let rate = params.sample_rate;
            if self.tracks.audio.as_ref() != Some(&params) {
                self.tracks.audio = Some(params);
            }
            if !self.tracks.announce(sink) {
                continue;
            }
            let Some(track) = self.tracks.audio_index() else {
                continue;
            };
            let at = rescale(pts, VIDEO_RATE, rate) + i as i64 * i64::from(adts::SAMPLES_PER_FRAME);
            sink.frame(Frame {
                track,
                pts: at,
                dts: at,
                key: true,
                data: frame.data,
            });
            published += 1;
        }
        published
    }
}

/// Raw H.264 or H.265 Annex B input, paced at `fps`.
pub struct AnnexBInput {
    epoch: Instant,
    codec: VideoCodec,
    frame_ticks: i64,
    splitter: AnnexBSplitter,
    assembler: AccessUnitAssembler,
    tracks: Tracks,
    next: Option<i64>,
}

impl AnnexBInput {
    pub fn new(epoch: Instant, codec: VideoCodec, fps: u32) -> Self {
        Self {
            epoch,
            codec,
            frame_ticks: i64::from(VIDEO_RATE / fps.max(1)),
            splitter: AnnexBSplitter::new(),
            assembler: AccessUnitAssembler::new(codec),
            tracks: Tracks {
                has_video: true,
                ..Tracks::default()
            },
            next: None,
        }
    }

    pub fn push(&mut self, data: &[u8], sink: &Sink) -> Result<usize> {
        self.splitter.push(data);
        let mut published = 0;
        while let Some(nal) = self.splitter.next_nal() {
            let Some(au) = self.assembler.push(nal) else {
                continue;
            };
            if au.key {
                self.tracks.take_video(&au, self.codec)?;
            }
            if !self.tracks.announce(sink) {
                continue;
            }
            let pts = self.pace();
            sink.frame(Frame {
                track: 0,
                pts,
                dts: pts,
                key: au.key,
                data: au.data,
            });
            published += 1;
        }
        Ok(published)
    }

    /// The next frame's time: one frame after the last, or the arrival time
    /// when that is more than a second away.
    fn pace(&mut self) -> i64 {
        let now = ticks_since(self.epoch, Instant::now(), VIDEO_RATE);
        let second = i64::from(VIDEO_RATE);
        let t = match self.next {
            Some(next) if (next - now).abs() <= second => next,
            _ => now,
        };
        self.next = Some(t + self.frame_ticks);
        t
    }
}
