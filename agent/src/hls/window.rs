//! The live window of one HLS muxer: the init segment, the last
//! `capacity` complete segments and the one being written, each made of
//! partial segments. Pure state: the muxer task fills it, HTTP handlers
//! read it. A segment's bytes are its parts' bytes in order, so the window
//! holds every media byte once.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

/// Most media bytes a window holds: beyond, the oldest complete segments
/// go even if fewer than `capacity` remain (a high bitrate with long
/// segments). The open segment is bounded by the segmenter's
/// `MAX_SEGMENT_MS`.
pub const MAX_WINDOW_BYTES: usize = 48 << 20;

/// One partial segment: a moof+mdat pair.
#[derive(Clone, Debug)]
pub struct Part {
    pub data: Bytes,
    /// Media time of its first sample, since the stream's epoch.
    pub start: Duration,
    pub duration: Duration,
    /// Starts with a keyframe: a player can begin decoding here.
    pub independent: bool,
}

#[derive(Debug)]
pub struct Segment {
    pub msn: u64,
    /// The init segment its parts need (see [`Window::init`]).
    pub init: u64,
    /// The first segment after a source restart or a parameter change:
    /// timestamps jump and a new init segment applies.
    pub discontinuity: bool,
    /// Wall-clock time of its first sample.
    pub program_date_time: SystemTime,
    pub parts: Vec<Part>,
    /// False while parts are still being added.
    pub complete: bool,
}

impl Segment {
    pub fn duration(&self) -> Duration {
        self.parts.iter().map(|p| p.duration).sum()
    }

    fn bytes(&self) -> usize {
        self.parts.iter().map(|p| p.data.len()).sum()
    }
}

/// Where a requested partial segment stands.
#[derive(Debug, PartialEq, Eq)]
pub enum PartState {
    Ready,
    /// Not yet written, and the next or a near one: worth waiting for.
    Soon,
    /// Too far ahead of the live edge, or gone from the window.
    Never,
}

pub struct Window {
    /// Init segments by id (the MSN of their first segment), oldest first:
    /// the current one and those of segments still in the window.
    inits: VecDeque<(u64, Bytes)>,
    /// The next segment starts after a discontinuity.
    pending_discontinuity: bool,
    /// RFC 6381 codecs and the picture size of the current init segment,
    /// for the multivariant playlist.
    codecs: String,
    resolution: Option<(u32, u32)>,
    /// Discontinuities before the first segment in the window.
    discontinuity_sequence: u64,
    part_target: Duration,
    capacity: usize,
    /// Wall-clock time at the stream's media time zero.
    wall_epoch: SystemTime,
    segments: VecDeque<Segment>,
    next_msn: u64,
    /// The largest rounded segment duration seen: the target duration
    /// never shrinks during a muxer's life.
    target_duration: u64,
}

impl Window {
    pub fn new(
        init: Bytes,
        part_target: Duration,
        capacity: usize,
        wall_epoch: SystemTime,
        first_msn: u64,
    ) -> Self {
        Self {
            inits: VecDeque::from([(first_msn, init)]),
            pending_discontinuity: false,
            codecs: String::new(),
            resolution: None,
            discontinuity_sequence: 0,
            part_target,
            capacity: capacity.max(1),
            wall_epoch,
            segments: VecDeque::new(),
            next_msn: first_msn,
            target_duration: 1,
        }
    }

    /// The init segment `id`, while a segment in the window needs it.
    pub fn init(&self, id: u64) -> Option<&Bytes> {
        self.inits.iter().find(|(i, _)| *i == id).map(|(_, b)| b)
    }

    /// The id of the init segment new segments use.
    pub fn current_init(&self) -> u64 {
        self.inits.back().map_or(0, |(id, _)| *id)
    }

    /// What the stream carries now: RFC 6381 codecs and the picture size.
    pub fn set_format(&mut self, codecs: String, resolution: Option<(u32, u32)>) {
        self.codecs = codecs;
        self.resolution = resolution;
    }

    pub fn codecs(&self) -> &str {
        &self.codecs
    }

    pub fn resolution(&self) -> Option<(u32, u32)> {
        self.resolution
    }

    /// Media bits per second over the complete segments in the window.
    pub fn bandwidth(&self) -> u64 {
        let (bytes, secs) = self
            .segments
            .iter()
            .filter(|s| s.complete)
            .fold((0usize, 0f64), |(b, d), s| {
                (b + s.bytes(), d + s.duration().as_secs_f64())
            });
        if secs > 0.0 {
            (bytes as f64 * 8.0 / secs) as u64
        } else {
            0
        }
    }

    pub fn discontinuity_sequence(&self) -> u64 {
        self.discontinuity_sequence
    }

    /// The segments after this use `init` and are marked as a
    /// discontinuity. Call with no segment open.
    pub fn start_discontinuity(&mut self, init: Bytes) {
        self.inits.push_back((self.next_msn, init));
        self.pending_discontinuity = true;
    }

    pub fn part_target(&self) -> Duration {
        self.part_target
    }

    pub fn target_duration(&self) -> u64 {
        self.target_duration
    }

    /// The MSN the next segment will get.
    pub fn next_msn(&self) -> u64 {
        self.next_msn
    }

    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter()
    }

    /// A playlist is worth serving once one segment is complete: clients
    /// that ignore parts need a whole segment to start.
    pub fn is_ready(&self) -> bool {
        self.segments.iter().any(|s| s.complete)
    }

    /// Appends a part to the open segment, opening one if none is.
    pub fn push_part(&mut self, part: Part) {
        self.push_part_within(part, MAX_WINDOW_BYTES);
    }

    /// [`Window::push_part`], holding at most `max_bytes`.
    fn push_part_within(&mut self, part: Part, max_bytes: usize) {
        if self.segments.back().is_none_or(|s| s.complete) {
            self.segments.push_back(Segment {
                msn: self.next_msn,
                init: self.current_init(),
                discontinuity: std::mem::take(&mut self.pending_discontinuity),
                program_date_time: self.wall_epoch + part.start,
                parts: Vec::new(),
                complete: false,
            });
            self.next_msn += 1;
        }
        if let Some(open) = self.segments.back_mut() {
            open.parts.push(part);
        }
        // Complete segments go, oldest first, while over the byte cap.
        while self.bytes() > max_bytes && self.segments.front().is_some_and(|s| s.complete) {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        if let Some(gone) = self.segments.pop_front() {
            if gone.discontinuity {
                self.discontinuity_sequence += 1;
            }
        }
        // Inits that no segment needs any more, except the current one.
        let oldest = self.segments.front().map_or(self.next_msn, |s| s.init);
        while self.inits.len() > 1 && self.inits.front().is_some_and(|(id, _)| *id < oldest) {
            self.inits.pop_front();
        }
    }

    /// Closes the open segment and drops the oldest beyond the capacity.
    pub fn close_segment(&mut self) {
        let Some(open) = self.segments.back_mut().filter(|s| !s.complete) else {
            return;
        };
        open.complete = true;
        let rounded = (open.duration().as_secs_f64().round() as u64).max(1);
        self.target_duration = self.target_duration.max(rounded);
        while self.segments.iter().filter(|s| s.complete).count() > self.capacity {
            self.drop_oldest();
        }
    }

    /// The part a client should fetch next (EXT-X-PRELOAD-HINT).
    pub fn next_part(&self) -> (u64, usize) {
        match self.segments.back() {
            Some(s) if !s.complete => (s.msn, s.parts.len()),
            _ => (self.next_msn, 0),
        }
    }

    /// MSN of the newest complete segment.
    fn last_complete_msn(&self) -> Option<u64> {
        self.segments
            .iter()
            .rev()
            .find(|s| s.complete)
            .map(|s| s.msn)
    }

    /// True once the playlist holds part `part` of segment `msn` (or the
    /// whole segment when `part` is `None`), or anything later: the
    /// condition that ends a blocking playlist reload.
    pub fn has(&self, msn: u64, part: Option<usize>) -> bool {
        let Some(seg) = self.segment(msn) else {
            return self.next_msn > msn;
        };
        match part {
            _ if seg.complete => true,
            Some(p) => seg.parts.len() > p,
            None => false,
        }
    }

    /// A blocking reload for an MSN this far past the live edge cannot be
    /// answered (rfc8216bis 6.2.5.2: more than two segments ahead).
    pub fn too_far(&self, msn: u64) -> bool {
        let last = self.last_complete_msn().unwrap_or(self.next_msn);
        msn > last + 2
    }

    pub fn part_state(&self, msn: u64, part: usize) -> PartState {
        if let Some(seg) = self.segment(msn) {
            if seg.parts.len() > part {
                return PartState::Ready;
            }
            if seg.complete {
                return PartState::Never;
            }
        } else if msn < self.next_msn {
            return PartState::Never;
        }
        // Allow a hinted part and the one after it; a client asking
        // further ahead is confused.
        let (next_msn, next_part) = self.next_part();
        let near = (msn == next_msn && part <= next_part + 1) || (msn == next_msn + 1 && part == 0);
        if near {
            PartState::Soon
        } else {
            PartState::Never
        }
    }

    pub fn part(&self, msn: u64, part: usize) -> Option<Bytes> {
        self.segment(msn)?.parts.get(part).map(|p| p.data.clone())
    }

    /// A complete segment's bytes: its parts back to back.
    /// The parts of complete segment `msn`, in order: shared, not copied,
    /// so the caller builds the body after it lets the window go (the
    /// muxer waits for it).
    pub fn segment_data(&self, msn: u64) -> Option<Vec<Bytes>> {
        let seg = self.segment(msn).filter(|s| s.complete)?;
        Some(seg.parts.iter().map(|p| p.data.clone()).collect())
    }

    fn segment(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.front()?.msn;
        let i = usize::try_from(msn.checked_sub(first)?).ok()?;
        self.segments.get(i)
    }

    /// Media bytes held, for memory accounting.
    pub fn bytes(&self) -> usize {
        self.inits.iter().map(|(_, b)| b.len()).sum::<usize>()
            + self.segments.iter().map(Segment::bytes).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(start_ms: u64, ms: u64, independent: bool) -> Part {
        Part {
            data: Bytes::from(vec![start_ms as u8; 3]),
            start: Duration::from_millis(start_ms),
            duration: Duration::from_millis(ms),
            independent,
        }
    }

    fn window() -> Window {
        Window::new(
            Bytes::from_static(b"init"),
            Duration::from_millis(200),
            2,
            SystemTime::UNIX_EPOCH,
            0,
        )
    }

    /// Fills `n` segments of five 200 ms parts each, the last one open.
    fn filled(n: u64) -> Window {
        let mut w = window();
        for s in 0..n {
            for p in 0..5 {
                w.push_part(part(s * 1000 + p * 200, 200, p == 0));
            }
            if s + 1 < n {
                w.close_segment();
            }
        }
        w
    }

    #[test]
    fn segments_open_close_and_roll() {
        let mut w = filled(4);
        assert!(w.is_ready());
        // Two complete (capacity) plus the open one.
        let msns: Vec<u64> = w.segments().map(|s| s.msn).collect();
        assert_eq!(msns, vec![1, 2, 3]);
        assert_eq!(w.next_part(), (3, 5));
        w.close_segment();
        assert_eq!(w.next_part(), (4, 0));
        assert_eq!(w.segments().count(), 2);
        let first = w.segments().next().unwrap();
        assert_eq!(first.msn, 2);
        assert_eq!(
            first.program_date_time,
            SystemTime::UNIX_EPOCH + Duration::from_secs(2)
        );
        assert_eq!(w.target_duration(), 1);
    }

    #[test]
    fn the_window_never_holds_more_than_its_byte_cap() {
        let big = |start_ms: u64| Part {
            data: Bytes::from(vec![0u8; 1000]),
            start: Duration::from_millis(start_ms),
            duration: Duration::from_millis(200),
            independent: false,
        };
        let (mut capped, mut uncapped) = (window(), window());
        for s in 0..6u64 {
            for p in 0..5 {
                capped.push_part_within(big(s * 1000 + p * 200), 7_000);
                uncapped.push_part(big(s * 1000 + p * 200));
                // Over the cap only while the open segment is all there is.
                let complete = capped.segments().filter(|s| s.complete).count();
                assert!(
                    capped.bytes() <= 7_000 || complete == 0,
                    "{}",
                    capped.bytes()
                );
            }
            capped.close_segment();
            uncapped.close_segment();
        }
        let complete = |w: &Window| w.segments().filter(|s| s.complete).count();
        assert_eq!(complete(&uncapped), 2, "capacity");
        assert_eq!(complete(&capped), 1, "byte cap");
    }

    #[test]
    fn a_segment_is_its_parts_back_to_back() {
        let w = filled(2);
        let seg = w.segment_data(0).unwrap().concat();
        assert_eq!(seg.len(), 15);
        assert_eq!(&seg[..3], &[0, 0, 0]);
        assert_eq!(&seg[3..6], &[200, 200, 200]);
        // The open segment is not served whole; its parts are.
        assert!(w.segment_data(1).is_none());
        assert_eq!(w.part(1, 4).unwrap().len(), 3);
    }

    #[test]
    fn blocking_conditions() {
        let w = filled(2);
        assert!(w.has(1, Some(4)));
        assert!(!w.has(1, Some(5)));
        assert!(w.has(0, Some(9)), "a complete segment satisfies any part");
        assert!(!w.has(1, None));
        assert!(!w.has(2, Some(0)));
        // Segment 0 is the last complete one: up to 2 is fine.
        assert!(!w.too_far(2));
        assert!(w.too_far(3));
    }

    #[test]
    fn part_states() {
        let w = filled(2);
        assert_eq!(w.part_state(1, 2), PartState::Ready);
        assert_eq!(w.part_state(1, 5), PartState::Soon);
        assert_eq!(w.part_state(2, 0), PartState::Soon);
        assert_eq!(w.part_state(1, 9), PartState::Never);
        assert_eq!(w.part_state(0, 7), PartState::Never);
        assert_eq!(w.part_state(7, 0), PartState::Never);
    }

    #[test]
    fn a_discontinuity_brings_a_new_init_and_counts_when_it_slides_out() {
        let mut w = filled(2);
        w.close_segment();
        w.start_discontinuity(Bytes::from_static(b"init2"));
        w.push_part(part(9000, 1000, true));
        w.close_segment();
        let last = w.segments().last().unwrap();
        assert!(last.discontinuity);
        assert_eq!(last.init, 2);
        assert_eq!(w.init(2).unwrap().as_ref(), b"init2");
        assert_eq!(
            w.init(0).unwrap().as_ref(),
            b"init",
            "segment 1 still needs it"
        );
        assert_eq!(w.discontinuity_sequence(), 0);
        for s in 3..6 {
            w.push_part(part(s * 1000 + 9000, 1000, true));
            w.close_segment();
        }
        assert_eq!(w.discontinuity_sequence(), 1);
        assert!(w.init(0).is_none());
        assert!(w.segments().all(|s| !s.discontinuity && s.init == 2));
    }

    #[test]
    fn target_duration_covers_the_longest_segment_and_never_shrinks() {
        let mut w = window();
        w.push_part(part(0, 2600, true));
        w.close_segment();
        assert_eq!(w.target_duration(), 3);
        w.push_part(part(2600, 400, true));
        w.close_segment();
        assert_eq!(w.target_duration(), 3);
    }
}
