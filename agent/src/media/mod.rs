//! The media model every part of the agent shares: frames, tracks and
//! codec parameters. Timestamps are ticks of the track's clock, counted
//! from the stream's epoch on the monotonic clock (see [`StreamInfo`]).

pub mod aac;
pub mod adts;
pub mod annexb;
pub mod codecs;
pub mod h264;
pub mod h265;
pub mod jpeg;
pub mod mpegts;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// One access unit: a whole H.264 or H.265 picture (length-prefixed NAL
/// units, as in MP4), a whole JPEG picture, or one raw AAC frame.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Index into [`StreamInfo::tracks`].
    pub track: usize,
    /// Presentation time in the track's clock.
    pub pts: i64,
    /// Decode time in the track's clock.
    pub dts: i64,
    /// An IDR picture, or any audio frame.
    pub key: bool,
    pub data: Bytes,
}

/// What travels in a stream's ring, in order: codec parameters sit exactly
/// between the frames they belong between, so every reader, however far
/// behind, applies a change where it happened.
#[derive(Clone, Debug)]
pub enum Item {
    /// The parameters of the frames that follow. Sent when they change,
    /// and again before every keyframe, so that a reader that joins or
    /// skips ahead always starts with them.
    Params(SharedStreamInfo),
    Frame(Frame),
    /// The source restarted: the frames that follow continue the stream's
    /// timeline after a gap. Outputs that keep files or segments cut here.
    Discontinuity,
}

/// Codec and its parameters for one track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackParams {
    H264(h264::H264Params),
    H265(h265::H265Params),
    Aac(aac::AacParams),
    /// MJPEG: every picture a whole JPEG, each one a keyframe.
    Jpeg(jpeg::JpegParams),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackInfo {
    pub params: TrackParams,
    /// Ticks per second of `Frame::pts` for this track.
    pub clock_rate: u32,
}

impl TrackInfo {
    pub fn is_video(&self) -> bool {
        matches!(
            self.params,
            TrackParams::H264(_) | TrackParams::H265(_) | TrackParams::Jpeg(_)
        )
    }
}

/// What a stream carries, and when its clock started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    pub tracks: Vec<TrackInfo>,
    /// The monotonic instant at which every track's timestamp is zero.
    pub epoch: Instant,
}

impl StreamInfo {
    pub fn video_track(&self) -> Option<usize> {
        self.tracks.iter().position(TrackInfo::is_video)
    }

    /// A short description for logs, like `H264 1280x720, AAC 48000 Hz`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .tracks
            .iter()
            .map(|t| match &t.params {
                TrackParams::H264(p) => format!("H264 {}x{}", p.width, p.height),
                TrackParams::H265(p) => format!("H265 {}x{}", p.width, p.height),
                TrackParams::Aac(p) => format!("AAC {} Hz {} ch", p.sample_rate, p.channels),
                TrackParams::Jpeg(p) => format!("MJPEG {}x{}", p.width, p.height),
            })
            .collect();
        parts.join(", ")
    }

    /// True when `other` has the same tracks in the same order with the
    /// same codecs and clocks: an RTSP client's SETUP still holds, only
    /// parameter sets (SPS/PPS, sizes) may differ.
    pub fn same_layout(&self, other: &StreamInfo) -> bool {
        self.tracks.len() == other.tracks.len()
            && self.tracks.iter().zip(&other.tracks).all(|(a, b)| {
                a.clock_rate == b.clock_rate
                    && std::mem::discriminant(&a.params) == std::mem::discriminant(&b.params)
                    && match (&a.params, &b.params) {
                        (TrackParams::Aac(x), TrackParams::Aac(y)) => x == y,
                        _ => true,
                    }
            })
    }

    pub fn audio_track(&self) -> Option<usize> {
        self.tracks.iter().position(|t| !t.is_video())
    }

    /// The monotonic instant at which a frame of `track` with `pts` was captured.
    pub fn instant_of(&self, track: usize, pts: i64) -> Instant {
        let rate = self.tracks.get(track).map_or(90_000, |t| t.clock_rate) as i64;
        let pts = pts.max(0);
        let d = Duration::from_secs((pts / rate) as u64)
            + Duration::from_nanos(((pts % rate) * 1_000_000_000 / rate) as u64);
        self.epoch + d
    }
}

pub type SharedStreamInfo = Arc<StreamInfo>;

/// Converts a duration since the epoch into ticks of `rate`.
pub fn ticks_since(epoch: Instant, at: Instant, rate: u32) -> i64 {
    let d = at.saturating_duration_since(epoch);
    (d.as_secs() as i64) * rate as i64 + (d.subsec_nanos() as i64 * rate as i64) / 1_000_000_000
}

/// Rescales `ticks` from one clock rate to another, rounding down.
pub fn rescale(ticks: i64, from: u32, to: u32) -> i64 {
    ((ticks as i128 * to as i128) / from as i128) as i64
}

/// A stream of one 320x240 H.264 track and one AAC-LC 48 kHz mono track,
/// with made-up parameter sets: for unit tests of the outputs.
#[cfg(test)]
pub fn test_stream_info() -> StreamInfo {
    StreamInfo {
        tracks: vec![
            TrackInfo {
                params: TrackParams::H264(h264::H264Params {
                    sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f, 0xda]),
                    pps: Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]),
                    width: 320,
                    height: 240,
                }),
                clock_rate: 90_000,
            },
            TrackInfo {
                params: TrackParams::Aac(aac::AacParams::lc(48_000, 1)),
                clock_rate: 48_000,
            },
        ],
        epoch: Instant::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_round_trip_through_instants() {
        let epoch = Instant::now();
        let info = StreamInfo {
            tracks: vec![TrackInfo {
                params: TrackParams::Aac(aac::AacParams::lc(48_000, 1)),
                clock_rate: 48_000,
            }],
            epoch,
        };
        let at = info.instant_of(0, 48_000 * 3 + 24_000);
        assert_eq!(ticks_since(epoch, at, 48_000), 48_000 * 3 + 24_000);
        assert_eq!(rescale(90_000, 90_000, 1000), 1000);
    }
}
