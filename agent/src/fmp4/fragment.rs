//! Frames in, moof + mdat fragments out.
//!
//! A sample's duration is the distance to the next frame of its track, so
//! the builder holds back the last frame of each track until the next one
//! arrives ([`FragmentBuilder::cut`] leaves it for the next fragment) or the
//! stream ends ([`FragmentBuilder::finish`] gives it an explicit end).
//! Decode times are the running sum of durations, so they never jump
//! inside one builder, whatever the frames' timestamps do.

use bytes::Bytes;
use mp4_atom::{Encode, Mfhd, Moof, Tfdt, Tfhd, Traf, Trun, TrunEntry, TrunSamples};

use super::{Error, Result};
use crate::media::{Frame, StreamInfo};

/// sample_depends_on = 2 (an I picture, or audio): a sync sample.
const FLAGS_SYNC: u32 = 0x0200_0000;
/// sample_depends_on = 1 and sample_is_non_sync_sample.
const FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// Where decode times start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeline {
    /// As the frames carry them (ticks since the stream's epoch): one
    /// timeline for a whole live stream, as HLS wants.
    Stream,
    /// Zero at the first frame pushed: a file that plays on its own.
    ZeroAtFirstFrame,
}

/// One moof + mdat.
#[derive(Clone, Debug)]
pub struct Fragment {
    pub bytes: Bytes,
    /// The mfhd sequence number.
    pub sequence: u32,
    /// Decode time of the first sample of the main track (the video track,
    /// or the first track), in its clock.
    pub start: u64,
    /// Summed sample durations of the main track, in its clock.
    pub duration: u64,
    /// The main track's clock rate.
    pub timescale: u32,
    /// The main track's first sample is a sync sample (an IDR picture).
    pub starts_with_key: bool,
    pub samples: usize,
    /// Payload bytes (the mdat body).
    pub media_bytes: usize,
}

impl Fragment {
    pub fn duration_secs(&self) -> f64 {
        self.duration as f64 / self.timescale as f64
    }

    pub fn start_secs(&self) -> f64 {
        self.start as f64 / self.timescale as f64
    }
}

struct Sample {
    decode_time: u64,
    duration: u32,
    cts: i64,
    key: bool,
    data: Bytes,
}

struct Track {
    clock_rate: u32,
    video: bool,
    /// The last frame pushed, waiting for its duration, and its decode time.
    held: Option<(Frame, u64)>,
    ready: Vec<Sample>,
    last_duration: u32,
}

impl Track {
    fn default_duration(&self) -> u32 {
        if self.last_duration > 0 {
            self.last_duration
        } else if self.video {
            (self.clock_rate / 30).max(1)
        } else {
            1024
        }
    }

    /// Moves the held frame to `ready` with `duration`; returns the decode
    /// time that follows it.
    fn release(&mut self, duration: Option<u32>) -> Option<u64> {
        let (frame, decode_time) = self.held.take()?;
        let duration = duration.unwrap_or_else(|| self.default_duration());
        self.last_duration = duration;
        self.ready.push(Sample {
            decode_time,
            duration,
            cts: (frame.pts - frame.dts).clamp(i32::MIN as i64, i32::MAX as i64),
            key: frame.key || !self.video,
            data: frame.data,
        });
        Some(decode_time + duration as u64)
    }
}

pub struct FragmentBuilder {
    tracks: Vec<Track>,
    main: usize,
    timeline: Timeline,
    /// The first frame's time in nanoseconds since the stream epoch.
    origin_ns: Option<i128>,
    next_sequence: u32,
}

impl FragmentBuilder {
    pub fn new(info: &StreamInfo, timeline: Timeline) -> Result<Self> {
        if info.tracks.is_empty() {
            return Err(Error::NoTracks);
        }
        Ok(Self {
            tracks: info
                .tracks
                .iter()
                .map(|t| Track {
                    clock_rate: t.clock_rate.max(1),
                    video: t.is_video(),
                    held: None,
                    ready: Vec::new(),
                    last_duration: 0,
                })
                .collect(),
            main: info.video_track().unwrap_or(0),
            timeline,
            origin_ns: None,
            next_sequence: 1,
        })
    }

    /// The mfhd sequence number of the next fragment (1 at the start).
    pub fn set_next_sequence(&mut self, sequence: u32) {
        self.next_sequence = sequence;
    }

    pub fn next_sequence(&self) -> u32 {
        self.next_sequence
    }

    /// The main track's clock rate.
    pub fn timescale(&self) -> u32 {
        self.tracks[self.main].clock_rate
    }

    pub fn push(&mut self, frame: Frame) -> Result<()> {
        let tracks = self.tracks.len();
        let Some(track) = self.tracks.get_mut(frame.track) else {
            return Err(Error::NoSuchTrack {
                track: frame.track,
                tracks,
            });
        };
        let frame_ns = frame.dts as i128 * 1_000_000_000 / track.clock_rate as i128;
        let origin_ns = *self.origin_ns.get_or_insert(frame_ns);
        let decode_time = match &track.held {
            Some((held, _)) => {
                let delta = frame.dts - held.dts;
                let duration = if delta > 0 && delta <= u32::MAX as i64 {
                    Some(delta as u32)
                } else {
                    None
                };
                track.release(duration).unwrap_or(0)
            }
            None => match track.ready.last() {
                Some(s) => s.decode_time + s.duration as u64,
                None => match self.timeline {
                    Timeline::Stream => frame.dts.max(0) as u64,
                    Timeline::ZeroAtFirstFrame => {
                        let ns = (frame_ns - origin_ns).max(0);
                        (ns * track.clock_rate as i128 / 1_000_000_000) as u64
                    }
                },
            },
        };
        track.held = Some((frame, decode_time));
        Ok(())
    }

    /// Main-track time that [`FragmentBuilder::cut`] would emit, in its clock.
    pub fn ready_duration(&self) -> u64 {
        self.tracks[self.main]
            .ready
            .iter()
            .map(|s| s.duration as u64)
            .sum()
    }

    pub fn ready_secs(&self) -> f64 {
        self.ready_duration() as f64 / self.timescale() as f64
    }

    /// The main track's held frame (the first of the next fragment, after
    /// a cut) is a keyframe.
    pub fn held_is_key(&self) -> bool {
        self.tracks[self.main]
            .held
            .as_ref()
            .is_some_and(|(f, _)| f.key)
    }

    /// Decode time, in the main track's clock, at which the next fragment
    /// starts: the first sample not yet emitted.
    pub fn next_start(&self) -> Option<u64> {
        let t = &self.tracks[self.main];
        t.ready
            .first()
            .map(|s| s.decode_time)
            .or(t.held.as_ref().map(|(_, d)| *d))
    }

    /// A fragment of every sample whose duration is known; the frames held
    /// back start the next one. `None` when there is nothing to emit.
    pub fn cut(&mut self) -> Result<Option<Fragment>> {
        self.emit()
    }

    /// A fragment of everything, the held frames included. The main track's
    /// last frame lasts until `end_dts` (in its clock, on the frames'
    /// timeline) when given; other held frames last as long as the frame
    /// before them.
    pub fn finish(&mut self, end_dts: Option<i64>) -> Result<Option<Fragment>> {
        for (i, track) in self.tracks.iter_mut().enumerate() {
            let duration = match (&track.held, end_dts) {
                (Some((held, _)), Some(end)) if i == self.main => {
                    let delta = end - held.dts;
                    (delta > 0 && delta <= u32::MAX as i64).then_some(delta as u32)
                }
                _ => None,
            };
            track.release(duration);
        }
        self.emit()
    }

    fn emit(&mut self) -> Result<Option<Fragment>> {
        if self.tracks.iter().all(|t| t.ready.is_empty()) {
            return Ok(None);
        }
        let sequence = self.next_sequence;
        let mut moof = Moof {
            mfhd: Mfhd {
                sequence_number: sequence,
            },
            traf: Vec::new(),
        };
        let mut media_bytes = 0usize;
        for (i, track) in self.tracks.iter().enumerate() {
            if track.ready.is_empty() {
                continue;
            }
            let with_cts = track.ready.iter().any(|s| s.cts != 0);
            moof.traf.push(Traf {
                tfhd: Tfhd {
                    track_id: i as u32 + 1,
                    default_sample_flags: (!track.video).then_some(FLAGS_SYNC),
                    default_base_is_moof: true,
                    ..Default::default()
                },
                tfdt: Some(Tfdt {
                    base_media_decode_time: track.ready[0].decode_time,
                }),
                trun: vec![Trun {
                    data_offset: Some(0),
                    samples: TrunSamples::Explicit(
                        track
                            .ready
                            .iter()
                            .map(|s| TrunEntry {
                                duration: Some(s.duration),
                                size: Some(s.data.len() as u32),
                                flags: track.video.then_some(if s.key {
                                    FLAGS_SYNC
                                } else {
                                    FLAGS_NON_SYNC
                                }),
                                cts: with_cts.then_some(s.cts),
                            })
                            .collect(),
                    ),
                }],
                ..Default::default()
            });
            media_bytes += track.ready.iter().map(|s| s.data.len()).sum::<usize>();
        }
        // The data offsets count from the moof's first byte; the moof's size
        // does not depend on their values.
        let mut probe = Vec::new();
        moof.encode(&mut probe)?;
        let mut offset = probe.len() + 8;
        let mut traf_index = 0;
        for track in &self.tracks {
            if track.ready.is_empty() {
                continue;
            }
            let off = i32::try_from(offset).map_err(|_| Error::TooLarge)?;
            moof.traf[traf_index].trun[0].data_offset = Some(off);
            offset += track.ready.iter().map(|s| s.data.len()).sum::<usize>();
            traf_index += 1;
        }
        let mdat_size = u32::try_from(media_bytes + 8).map_err(|_| Error::TooLarge)?;
        let mut out = Vec::with_capacity(probe.len() + 8 + media_bytes);
        moof.encode(&mut out)?;
        out.extend_from_slice(&mdat_size.to_be_bytes());
        out.extend_from_slice(b"mdat");
        let main = &self.tracks[self.main];
        let (start, duration, starts_with_key) = match main.ready.first() {
            Some(first) => (
                first.decode_time,
                main.ready.iter().map(|s| s.duration as u64).sum(),
                first.key,
            ),
            None => (self.next_start().unwrap_or(0), 0, false),
        };
        let mut samples = 0;
        for track in &mut self.tracks {
            samples += track.ready.len();
            for s in track.ready.drain(..) {
                out.extend_from_slice(&s.data);
            }
        }
        self.next_sequence = self.next_sequence.wrapping_add(1);
        Ok(Some(Fragment {
            bytes: Bytes::from(out),
            sequence,
            start,
            duration,
            timescale: self.tracks[self.main].clock_rate,
            starts_with_key,
            samples,
            media_bytes,
        }))
    }
}
