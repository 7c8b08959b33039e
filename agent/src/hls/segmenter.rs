//! Cuts a stream into LL-HLS partial segments and segments: a segment
//! starts at a keyframe, a part never lasts longer than the part target.
//! Pure: frames in, fMP4 fragments out, written by the shared
//! [`crate::fmp4::FragmentBuilder`]; this module only decides where to cut.
//!
//! Parts are timed on the main track (video, or the first track of an
//! audio-only stream). The builder holds each track's last frame back
//! until the next one gives its duration, so a part ends where the held
//! frame starts.

use std::time::Duration;

use crate::fmp4::{self, Fragment, FragmentBuilder, Timeline};
use crate::media::{rescale, Frame, StreamInfo};

/// A segment is cut at the first keyframe after it has lasted this long,
/// so a stream with very frequent keyframes still gets usable segments.
/// It sits below one second so that a 1 s GOP with timing jitter still
/// gives 1 s segments, and above [`super::MSN_CLOCK_MS`].
pub const MIN_SEGMENT_MS: i64 = 900;
/// A segment is cut here even without a keyframe: a source with a long GOP
/// or none at all (intra refresh) must not grow one segment without limit
/// in memory. Such a segment does not start independent; players that
/// join there wait for the next keyframe.
pub const MAX_SEGMENT_MS: i64 = 10_000;

#[derive(Debug)]
pub enum Event {
    /// One partial segment: a moof + mdat of every track.
    Part(Fragment),
    /// The segment that the last part belongs to is complete.
    SegmentEnd,
}

pub struct Segmenter {
    builder: FragmentBuilder,
    main: usize,
    tracks: usize,
    part_target: i64,
    min_segment: i64,
    max_segment: i64,
    /// Main-track decode times (frame dts) where the current segment and
    /// part start, and of the held main-track frame; `None` before the
    /// first keyframe.
    segment_start: Option<i64>,
    part_start: i64,
    held: i64,
}

impl Segmenter {
    /// Parts last at most `part_target`.
    pub fn new(info: &StreamInfo, part_target: Duration) -> fmp4::Result<Self> {
        let builder = FragmentBuilder::new(info, Timeline::Stream)?;
        let main = info.video_track().unwrap_or(0);
        let rate = builder.timescale();
        Ok(Self {
            builder,
            main,
            tracks: info.tracks.len(),
            part_target: rescale(part_target.as_micros() as i64, 1_000_000, rate),
            min_segment: rescale(MIN_SEGMENT_MS, 1000, rate),
            max_segment: rescale(MAX_SEGMENT_MS, 1000, rate),
            segment_start: None,
            part_start: 0,
            held: 0,
        })
    }

    /// Ticks per second of the fragments' times: the main track's clock.
    pub fn timescale(&self) -> u32 {
        self.builder.timescale()
    }

    /// Feeds one frame; appends what it completes to `out`.
    pub fn push(&mut self, frame: Frame, out: &mut Vec<Event>) -> fmp4::Result<()> {
        if frame.track >= self.tracks {
            return Ok(());
        }
        let Some(segment_start) = self.segment_start else {
            // Everything waits for the main track's first keyframe.
            if frame.track == self.main && frame.key {
                self.segment_start = Some(frame.dts);
                self.part_start = frame.dts;
                self.held = frame.dts;
                self.builder.push(frame)?;
            }
            return Ok(());
        };
        if frame.track != self.main {
            return self.builder.push(frame);
        }
        let (dts, key) = (frame.dts, frame.key);
        // Releasing the held frame would make the part too long: the part
        // ends where the held frame starts.
        if dts - self.part_start > self.part_target && self.builder.ready_duration() > 0 {
            self.cut(self.held, out)?;
        }
        let estimate = dts - self.held;
        self.builder.push(frame)?;
        self.held = dts;
        let length = dts - segment_start;
        if (key && length >= self.min_segment) || length >= self.max_segment {
            self.cut(dts, out)?;
            out.push(Event::SegmentEnd);
            self.segment_start = Some(dts);
        } else if dts + estimate - self.part_start > self.part_target {
            // The held frame would most likely not fit either: cut now
            // rather than one frame later.
            self.cut(dts, out)?;
        }
        Ok(())
    }

    /// Ends the open segment with everything held: the stream's parameters
    /// changed or its source restarted, and what follows is cut anew.
    pub fn finish(&mut self, out: &mut Vec<Event>) -> fmp4::Result<()> {
        if self.segment_start.take().is_none() {
            return Ok(());
        }
        if let Some(fragment) = self.builder.finish(None)? {
            out.push(Event::Part(fragment));
        }
        out.push(Event::SegmentEnd);
        Ok(())
    }

    /// Emits the ready samples as a part; the next part starts at `next`.
    fn cut(&mut self, next: i64, out: &mut Vec<Event>) -> fmp4::Result<()> {
        if let Some(fragment) = self.builder.cut()? {
            out.push(Event::Part(fragment));
        }
        self.part_start = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use bytes::Bytes;

    use super::*;

    fn info() -> StreamInfo {
        crate::media::test_stream_info()
    }

    fn frame(track: usize, dts: i64, key: bool) -> Frame {
        Frame {
            track,
            pts: dts,
            dts,
            key,
            data: Bytes::from_static(b"x"),
        }
    }

    /// Video at `fps` with a keyframe every `gop` frames and a little
    /// timing jitter (under 1 ms), and 1024-sample audio frames, for
    /// `seconds`.
    fn run(fps: i64, gop: i64, seconds: i64) -> Vec<Event> {
        let mut s = Segmenter::new(&info(), super::super::part_target(200)).unwrap();
        let mut out = Vec::new();
        let mut audio_dts = 0i64;
        for n in 0..fps * seconds {
            let jitter = [0, 60, -40, 20][n as usize % 4];
            let dts = n * 90_000 / fps + jitter;
            // Audio arrives a little behind video, as from an encoder.
            while rescale(audio_dts, 48_000, 90_000) + 3000 < dts {
                s.push(frame(1, audio_dts, true), &mut out).unwrap();
                audio_dts += 1024;
            }
            s.push(frame(0, dts, n % gop == 0), &mut out).unwrap();
        }
        out
    }

    fn parts(events: &[Event]) -> Vec<&Fragment> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Part(p) => Some(p),
                Event::SegmentEnd => None,
            })
            .collect()
    }

    #[test]
    fn a_stream_without_keyframes_still_gets_bounded_segments() {
        // One keyframe, then 60 s of intra refresh.
        let events = run(25, 25 * 1000, 60);
        let ends = events
            .iter()
            .filter(|e| matches!(e, Event::SegmentEnd))
            .count();
        assert!(ends >= 5, "{ends} segments in 60 s");
        let mut length = 0;
        for e in &events {
            match e {
                Event::Part(p) => length += p.duration,
                Event::SegmentEnd => {
                    assert!(length <= (MAX_SEGMENT_MS as u64) * 90 + 18_900, "{length}");
                    length = 0;
                }
            }
        }
    }

    #[test]
    fn parts_never_exceed_the_target_and_fill_most_of_it() {
        for fps in [25, 30, 24, 15] {
            let events = run(fps, fps, 6);
            assert!(parts(&events).len() > 20, "{fps}");
            for (i, e) in events.iter().enumerate() {
                let Event::Part(p) = e else { continue };
                assert!(p.duration <= 18_900, "{fps}: {}", p.duration);
                // Only a segment's last part may be short: the others fill
                // 85 % of the target at least, as rfc8216bis asks.
                if !matches!(events.get(i + 1), Some(Event::SegmentEnd)) {
                    assert!(p.duration * 100 >= 18_900 * 85, "{fps}: {}", p.duration);
                }
            }
        }
    }

    #[test]
    fn segments_start_at_keyframes_and_parts_are_contiguous() {
        let events = run(25, 25, 5);
        let mut expect_start = 0;
        let mut segment_first = true;
        let mut segments = 0;
        for e in &events {
            match e {
                Event::Part(p) => {
                    assert_eq!(p.start, expect_start);
                    expect_start = p.start + p.duration;
                    if segment_first {
                        assert!(p.starts_with_key);
                    }
                    segment_first = false;
                }
                Event::SegmentEnd => {
                    segments += 1;
                    segment_first = true;
                }
            }
        }
        assert_eq!(segments, 4);
    }

    #[test]
    fn frequent_keyframes_still_give_segments_of_at_least_the_minimum() {
        // A keyframe every 0.4 s: segments wait for 0.9 s.
        let events = run(25, 10, 4);
        let parts = parts(&events);
        assert!(parts.iter().filter(|p| p.starts_with_key).count() >= 4);
        assert!(parts.iter().any(|p| !p.starts_with_key));
        let segments = events
            .iter()
            .filter(|e| matches!(e, Event::SegmentEnd))
            .count();
        assert_eq!(segments, 3);
    }

    #[test]
    fn frames_before_the_first_keyframe_are_skipped() {
        let mut s = Segmenter::new(&info(), super::super::part_target(200)).unwrap();
        let mut out = Vec::new();
        s.push(frame(0, 0, false), &mut out).unwrap();
        // Audio frames two bytes long, to tell them apart in the output.
        for dts in [0, 1024] {
            let mut audio = frame(1, dts, true);
            audio.data = Bytes::from_static(b"aa");
            s.push(audio, &mut out).unwrap();
        }
        for n in 1..30 {
            s.push(frame(0, n * 3600, n == 1), &mut out).unwrap();
        }
        let parts = parts(&out);
        assert!(!parts.is_empty());
        assert_eq!(parts[0].start, 3600);
        assert!(parts[0].starts_with_key);
        // No audio sample came after the first keyframe: only video.
        let samples: usize = parts.iter().map(|p| p.samples).sum();
        let bytes: usize = parts.iter().map(|p| p.media_bytes).sum();
        assert!(samples >= 20);
        assert_eq!(bytes, samples);
    }
}
