//! Cuts a stream into recording files and fragments. Pure: frames in,
//! actions out; the recorder does the I/O.
//!
//! - A file opens on a keyframe (any frame of an audio-only stream) and
//!   closes at the first keyframe at or after `segment_seconds`, which
//!   opens the next file: every file starts with a keyframe.
//! - A fragment is cut at the first main-track frame at or after
//!   `fragment_ms`.
//! - A split can be asked for (a wall-clock step): the file closes at the
//!   next keyframe. A jump of the frames' own timestamps (the reader lost
//!   frames, the source restarted) also closes the file, so that media
//!   time inside a file never jumps.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::fmp4::{self, Fragment, FragmentBuilder, Timeline};
use crate::media::{Frame, SharedStreamInfo};

/// Room left after the moov for the duration written at close (mehd).
const HEADER_RESERVE: usize = 64;
/// A gap in main-track decode times larger than this is a jump.
const MAX_GAP: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub enum Action {
    /// Start a file with `header`; `start` is the first frame's capture instant.
    Open {
        start: Instant,
        header: Bytes,
    },
    Fragment(Fragment),
    /// Close the file, declaring `duration`.
    Close {
        duration: Duration,
    },
}

struct OpenFile {
    info: SharedStreamInfo,
    builder: FragmentBuilder,
    main: usize,
    /// Decode time (frame timeline) of the file's first main-track frame.
    first_dts: i64,
    last_dts: i64,
    /// Main-track ticks emitted in fragments so far.
    emitted: u64,
}

pub struct Segmenter {
    segment: Duration,
    fragment: Duration,
    open: Option<OpenFile>,
    split_requested: bool,
}

impl Segmenter {
    pub fn new(segment: Duration, fragment: Duration) -> Self {
        Self {
            segment,
            fragment,
            open: None,
            split_requested: false,
        }
    }

    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Closes the file at the next keyframe.
    pub fn request_split(&mut self) {
        if self.open.is_some() {
            self.split_requested = true;
        }
    }

    /// Forgets the open file without closing it (its writer failed).
    pub fn reset(&mut self) {
        self.open = None;
        self.split_requested = false;
    }

    /// Feeds one frame of a stream described by `info`.
    pub fn push(&mut self, frame: Frame, info: &SharedStreamInfo) -> fmp4::Result<Vec<Action>> {
        let mut actions = Vec::new();
        let main = info.video_track().unwrap_or(0);
        let starts_gop = frame.track == main && frame.key;
        if let Some(open) = &self.open {
            let same_stream = std::sync::Arc::ptr_eq(&open.info, info);
            let rate = info.tracks.get(main).map_or(90_000, |t| t.clock_rate) as i64;
            let jumped = frame.track == main
                && (frame.dts < open.last_dts
                    || frame.dts - open.last_dts > MAX_GAP.as_millis() as i64 * rate / 1000);
            let long_enough =
                (frame.dts - open.first_dts) as f64 / rate as f64 >= self.segment.as_secs_f64();
            if !same_stream || jumped {
                // The old file ends at its last frame.
                actions.extend(self.close(None)?);
            } else if starts_gop && (long_enough || self.split_requested) {
                actions.extend(self.close(Some(frame.dts))?);
            }
        }
        if self.open.is_none() {
            if !starts_gop {
                return Ok(actions);
            }
            let init = fmp4::init_segment(info, None)?;
            let header = fmp4::padded_init_segment(info, None, init.len() + HEADER_RESERVE)?;
            actions.push(Action::Open {
                start: info.instant_of(frame.track, frame.dts),
                header,
            });
            self.open = Some(OpenFile {
                info: info.clone(),
                builder: FragmentBuilder::new(info, Timeline::ZeroAtFirstFrame)?,
                main,
                first_dts: frame.dts,
                last_dts: frame.dts,
                emitted: 0,
            });
        }
        let Some(open) = self.open.as_mut() else {
            return Ok(actions);
        };
        let on_main = frame.track == main;
        if on_main {
            open.last_dts = frame.dts;
        }
        open.builder.push(frame)?;
        if on_main && open.builder.ready_secs() >= self.fragment.as_secs_f64() {
            if let Some(f) = open.builder.cut()? {
                open.emitted += f.duration;
                actions.push(Action::Fragment(f));
            }
        }
        Ok(actions)
    }

    /// Ends the open file: the last main-track frame lasts until `end_dts`
    /// when given (the frame that starts the next file).
    pub fn close(&mut self, end_dts: Option<i64>) -> fmp4::Result<Vec<Action>> {
        self.split_requested = false;
        let Some(mut open) = self.open.take() else {
            return Ok(Vec::new());
        };
        let mut actions = Vec::new();
        if let Some(f) = open.builder.finish(end_dts)? {
            open.emitted += f.duration;
            actions.push(Action::Fragment(f));
        }
        let rate = open.info.tracks[open.main].clock_rate.max(1) as u64;
        actions.push(Action::Close {
            duration: Duration::from_nanos(
                (open.emitted as u128 * 1_000_000_000 / rate as u128) as u64,
            ),
        });
        Ok(actions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    fn info() -> SharedStreamInfo {
        Arc::new(crate::media::test_stream_info())
    }

    /// 25 fps video with a keyframe every `gop` frames, from frame `from`.
    fn video(n: i64, gop: i64) -> Frame {
        Frame {
            track: 0,
            pts: n * 3600,
            dts: n * 3600,
            key: n % gop == 0,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
        }
    }

    fn run(
        s: &mut Segmenter,
        info: &SharedStreamInfo,
        frames: impl Iterator<Item = Frame>,
    ) -> Vec<Action> {
        frames.flat_map(|f| s.push(f, info).unwrap()).collect()
    }

    fn summary(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Open { .. } => "open".to_string(),
                Action::Fragment(f) => format!("frag {} {}", f.duration, f.starts_with_key),
                Action::Close { duration } => format!("close {}", duration.as_millis()),
            })
            .collect()
    }

    #[test]
    fn files_start_on_keyframes_at_or_after_the_segment_length() {
        let info = info();
        let mut s = Segmenter::new(Duration::from_secs(2), Duration::from_secs(1));
        // Starts mid-GOP: the first frames wait for a keyframe. 2 s of
        // segment end at the keyframe 2.4 s in; the last fragment is short.
        let actions = run(&mut s, &info, (10..135).map(|n| video(n, 30)));
        assert_eq!(
            summary(&actions),
            [
                "open",
                "frag 90000 true",
                "frag 90000 false",
                "frag 36000 false",
                "close 2400",
                "open",
                "frag 90000 true",
            ]
        );
    }

    #[test]
    fn a_requested_split_waits_for_the_next_keyframe() {
        let info = info();
        let mut s = Segmenter::new(Duration::from_secs(60), Duration::from_secs(1));
        let mut actions = run(&mut s, &info, (0..20).map(|n| video(n, 25)));
        s.request_split();
        actions.extend(run(&mut s, &info, (20..26).map(|n| video(n, 25))));
        assert_eq!(
            summary(&actions),
            ["open", "frag 90000 true", "close 1000", "open"]
        );
    }

    #[test]
    fn a_timestamp_jump_closes_the_file() {
        let info = info();
        let mut s = Segmenter::new(Duration::from_secs(60), Duration::from_secs(1));
        let mut actions = run(&mut s, &info, (0..10).map(|n| video(n, 25)));
        // Frames 10..100 lost; the reader resumes at a keyframe.
        actions.extend(run(&mut s, &info, (100..102).map(|n| video(n, 25))));
        assert_eq!(
            summary(&actions),
            ["open", "frag 36000 true", "close 400", "open"]
        );
        // A new source (new StreamInfo) also closes the file.
        let other = self::info();
        let actions = run(&mut s, &other, (0..1).map(|n| video(n, 25)));
        assert_eq!(summary(&actions), ["frag 7200 true", "close 80", "open"]);
    }

    #[test]
    fn audio_goes_with_the_video_and_close_flushes_everything() {
        let info = info();
        let mut s = Segmenter::new(Duration::from_secs(60), Duration::from_secs(1));
        let mut frames = Vec::new();
        for n in 0..30 {
            frames.push(video(n, 25));
            if n % 2 == 0 {
                frames.push(Frame {
                    track: 1,
                    pts: n / 2 * 1024 * 3,
                    dts: n / 2 * 1024 * 3,
                    key: true,
                    data: Bytes::from_static(&[0x21, 0x10]),
                });
            }
        }
        let mut actions = run(&mut s, &info, frames.into_iter());
        actions.extend(s.close(None).unwrap());
        let samples: usize = actions
            .iter()
            .map(|a| match a {
                Action::Fragment(f) => f.samples,
                _ => 0,
            })
            .sum();
        assert_eq!(samples, 45);
        assert!(!s.is_open());
        assert!(
            matches!(actions.last(), Some(Action::Close { duration }) if duration.as_millis() == 1200)
        );
    }
}
