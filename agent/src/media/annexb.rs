//! Annex B byte streams (H.264 and H.265 as a program writes them to a pipe):
//! [`AnnexBSplitter`] cuts arbitrary chunks of bytes into NAL units, and
//! [`AccessUnitAssembler`] groups those NAL units into access units, the
//! length-prefixed pictures a [`super::Frame`] carries.
//!
//! Both are pure and incremental: bytes in, NAL units or access units out,
//! so a start code or a picture may be split across any number of reads.

use bytes::{Buf, Bytes, BytesMut};

use super::h264::length_prefixed;

/// A NAL unit longer than this is garbage (or a stream without start codes):
/// the splitter drops it rather than buffer without bound.
pub const MAX_NAL_SIZE: usize = 16 << 20;

/// An access unit larger than this is dropped by the assembler.
pub const MAX_ACCESS_UNIT_SIZE: usize = 32 << 20;

/// Incremental Annex B splitter: push chunks, take complete NAL units
/// (without start codes, without trailing zero bytes).
///
/// A NAL unit is complete once the next start code arrives, so the last one
/// of a stream comes out of [`AnnexBSplitter::finish`]. Bytes before the
/// first start code are skipped.
#[derive(Debug, Default)]
pub struct AnnexBSplitter {
    /// Bytes not yet returned. When `in_nal`, `buf[0]` is the first byte of
    /// a NAL unit (just after a start code).
    buf: BytesMut,
    /// Where to look for the next start code: earlier bytes hold none.
    scan: usize,
    /// Whether a start code has been seen since the last reset.
    in_nal: bool,
    /// How many bytes were skipped: before the first start code, or as
    /// NAL units longer than [`MAX_NAL_SIZE`].
    skipped: u64,
}

impl AnnexBSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream. Take the NAL units they complete
    /// with [`AnnexBSplitter::next_nal`].
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete NAL unit, or `None` until more bytes are pushed.
    pub fn next_nal(&mut self) -> Option<Bytes> {
        loop {
            let Some(at) = find_start_code(&self.buf, self.scan) else {
                self.discard_unbounded();
                return None;
            };
            let before = self.buf.split_to(at);
            self.buf.advance(3);
            self.scan = 0;
            let was_in_nal = std::mem::replace(&mut self.in_nal, true);
            if !was_in_nal {
                self.skipped += before.len() as u64;
                continue;
            }
            let nal = trim_trailing_zeros(before.freeze());
            if !nal.is_empty() {
                return Some(nal);
            }
        }
    }

    /// The NAL unit the stream ended with, if any; the splitter starts over.
    pub fn finish(&mut self) -> Option<Bytes> {
        let rest = std::mem::take(&mut self.buf).freeze();
        let was_in_nal = std::mem::replace(&mut self.in_nal, false);
        self.scan = 0;
        if !was_in_nal {
            self.skipped += rest.len() as u64;
            return None;
        }
        Some(trim_trailing_zeros(rest)).filter(|nal| !nal.is_empty())
    }

    /// Bytes skipped so far: garbage before the first start code and NAL
    /// units over [`MAX_NAL_SIZE`].
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// No start code in `buf`: remember where to search next, and drop what
    /// can never become part of a NAL unit we keep.
    fn discard_unbounded(&mut self) {
        // A start code may begin in the last two bytes.
        let keep_from = self.buf.len().saturating_sub(2);
        if !self.in_nal || self.buf.len() > MAX_NAL_SIZE {
            self.skipped += keep_from as u64;
            self.buf.advance(keep_from);
            // An oversized NAL unit is dropped whole, up to the next start code.
            self.in_nal = false;
            self.scan = 0;
        } else {
            self.scan = keep_from;
        }
    }
}

/// The index of the first `00 00 01` at or after `from`.
fn find_start_code(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 3 <= buf.len() {
        // Step by the third byte: if it is not 0 or 1, no start code can
        // begin at i, i+1 or i+2.
        match buf[i + 2] {
            1 if buf[i] == 0 && buf[i + 1] == 0 => return Some(i),
            0 | 1 => i += 1,
            _ => i += 3,
        }
    }
    None
}

/// Strips the zero bytes that belong to the next start code (`00 00 00 01`)
/// or are trailing_zero_8bits.
fn trim_trailing_zeros(nal: Bytes) -> Bytes {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    nal.slice(..end)
}

/// The video codec of an Annex B stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    H265,
}

/// One picture: its NAL units with 4-byte big-endian lengths (no access unit
/// delimiters), whether it can start decoding, and the parameter sets it
/// carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnit {
    pub data: Bytes,
    /// H.264 IDR, or H.265 IRAP (NAL types 16 to 23).
    pub key: bool,
    /// The last VPS in this access unit (H.265 only).
    pub vps: Option<Bytes>,
    /// The last SPS in this access unit.
    pub sps: Option<Bytes>,
    /// The last PPS in this access unit.
    pub pps: Option<Bytes>,
}

/// How one NAL unit bears on access unit boundaries.
#[derive(Debug, Default)]
struct NalRole {
    /// An access unit delimiter: starts an access unit and is left out.
    aud: bool,
    /// Parameter sets, SEI and the like: start an access unit when the
    /// current one already has a picture.
    starts_au: bool,
    /// A slice (VCL NAL unit).
    vcl: bool,
    /// The first slice of a picture.
    first_slice: bool,
    key: bool,
    vps: bool,
    sps: bool,
    pps: bool,
}

impl NalRole {
    /// `None` for NAL units to drop: empty, or with forbidden_zero_bit set.
    fn of(codec: VideoCodec, nal: &[u8]) -> Option<NalRole> {
        let header = *nal.first()?;
        if header & 0x80 != 0 {
            return None;
        }
        let mut role = NalRole::default();
        match codec {
            VideoCodec::H264 => {
                let kind = header & 0x1f;
                match kind {
                    1..=5 => {
                        role.vcl = true;
                        // first_mb_in_slice is ue(v): 0 is the single bit 1.
                        role.first_slice = nal.get(1).is_some_and(|b| b & 0x80 != 0);
                        role.key = kind == 5;
                    }
                    9 => role.aud = true,
                    6..=8 | 14..=18 => {
                        role.starts_au = true;
                        role.sps = kind == 7;
                        role.pps = kind == 8;
                    }
                    _ => {}
                }
            }
            VideoCodec::H265 => {
                let kind = (header >> 1) & 0x3f;
                match kind {
                    0..=31 => {
                        role.vcl = true;
                        // first_slice_segment_in_pic_flag, after the 2-byte header.
                        role.first_slice = nal.get(2).is_some_and(|b| b & 0x80 != 0);
                        role.key = (16..=23).contains(&kind);
                    }
                    35 => role.aud = true,
                    32..=34 | 39 | 41..=44 | 48..=55 => {
                        role.starts_au = true;
                        role.vps = kind == 32;
                        role.sps = kind == 33;
                        role.pps = kind == 34;
                    }
                    _ => {}
                }
            }
        }
        Some(role)
    }
}

/// Groups NAL units into access units.
///
/// An access unit ends where the next begins: at an access unit delimiter,
/// a parameter set or SEI, or the first slice of a new picture, once the
/// current one holds a slice. So access units come out one NAL unit late,
/// and the last one from [`AccessUnitAssembler::flush`]. Access units
/// without any slice are never returned.
#[derive(Debug)]
pub struct AccessUnitAssembler {
    codec: VideoCodec,
    nals: Vec<Bytes>,
    size: usize,
    has_vcl: bool,
    key: bool,
    vps: Option<Bytes>,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    dropped: u64,
}

impl AccessUnitAssembler {
    pub fn new(codec: VideoCodec) -> Self {
        Self {
            codec,
            nals: Vec::new(),
            size: 0,
            has_vcl: false,
            key: false,
            vps: None,
            sps: None,
            pps: None,
            dropped: 0,
        }
    }

    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Adds one NAL unit (without start code); returns the access unit it
    /// completes, if it begins a new one.
    pub fn push(&mut self, nal: Bytes) -> Option<AccessUnit> {
        let Some(role) = NalRole::of(self.codec, &nal) else {
            self.dropped += 1;
            return None;
        };
        let boundary = role.aud || role.starts_au || (role.vcl && role.first_slice);
        let done = if boundary && self.has_vcl {
            self.take()
        } else {
            None
        };
        if role.aud {
            return done;
        }
        if self.size + nal.len() + 4 > MAX_ACCESS_UNIT_SIZE {
            self.reset();
            self.dropped += 1;
            return done;
        }
        self.has_vcl |= role.vcl;
        self.key |= role.key;
        if role.vps {
            self.vps = Some(nal.clone());
        }
        if role.sps {
            self.sps = Some(nal.clone());
        }
        if role.pps {
            self.pps = Some(nal.clone());
        }
        self.size += nal.len() + 4;
        self.nals.push(nal);
        done
    }

    /// The access unit in progress, at the end of the stream.
    pub fn flush(&mut self) -> Option<AccessUnit> {
        let au = if self.has_vcl { self.take() } else { None };
        self.reset();
        au
    }

    /// NAL units dropped: invalid headers, or access units over
    /// [`MAX_ACCESS_UNIT_SIZE`].
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn take(&mut self) -> Option<AccessUnit> {
        let au = AccessUnit {
            data: length_prefixed(self.nals.iter().map(|n| &n[..])),
            key: self.key,
            vps: self.vps.take(),
            sps: self.sps.take(),
            pps: self.pps.take(),
        };
        self.reset();
        Some(au)
    }

    fn reset(&mut self) {
        self.nals.clear();
        self.size = 0;
        self.has_vcl = false;
        self.key = false;
        self.vps = None;
        self.sps = None;
        self.pps = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::h264::nal_units;

    fn split_all(chunks: &[&[u8]]) -> Vec<Bytes> {
        let mut s = AnnexBSplitter::new();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c);
            while let Some(nal) = s.next_nal() {
                out.push(nal);
            }
        }
        out.extend(s.finish());
        out
    }

    /// An H.264 stream: AUD, SPS, PPS, IDR slice; then a P picture of two
    /// slices; then a P picture without AUD.
    const H264_STREAM: &[u8] = &[
        0, 0, 0, 1, 0x09, 0xf0, // AUD
        0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, // SPS
        0, 0, 1, 0x68, 0xce, 0x3c, 0x80, // PPS
        0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x00, 0x03, 0x01, // IDR, first_mb 0
        0, 0, 0, 1, 0x09, 0xf0, // AUD
        0, 0, 1, 0x41, 0x9a, 0x11, // P slice, first_mb 0
        0, 0, 1, 0x41, 0x2c, 0x22, // P slice, first_mb > 0
        0, 0, 1, 0x41, 0x9a, 0x33, 0x00, 0x00, // P slice, new picture, trailing zeros
    ];

    #[test]
    fn splits_start_codes_of_three_and_four_bytes() {
        let nals = split_all(&[H264_STREAM]);
        let firsts: Vec<u8> = nals.iter().map(|n| n[0]).collect();
        assert_eq!(firsts, [0x09, 0x67, 0x68, 0x65, 0x09, 0x41, 0x41, 0x41]);
        assert_eq!(&nals[3][..], &[0x65, 0x88, 0x84, 0x00, 0x00, 0x03, 0x01]);
        assert_eq!(&nals[7][..], &[0x41, 0x9a, 0x33]);
    }

    #[test]
    fn split_at_every_boundary_gives_the_same_nal_units() {
        let whole = split_all(&[H264_STREAM]);
        for i in 0..=H264_STREAM.len() {
            let (a, b) = H264_STREAM.split_at(i);
            assert_eq!(split_all(&[a, b]), whole, "split at {i}");
        }
        let bytes: Vec<&[u8]> = H264_STREAM.chunks(1).collect();
        assert_eq!(split_all(&bytes), whole);
    }

    #[test]
    fn garbage_before_the_first_start_code_is_skipped() {
        let mut s = AnnexBSplitter::new();
        s.push(&[0xff, 0x12, 0x00, 0x34]);
        assert_eq!(s.next_nal(), None);
        s.push(&[0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2]);
        assert_eq!(s.next_nal().as_deref(), Some(&[0x67, 1][..]));
        assert_eq!(s.finish().as_deref(), Some(&[0x68, 2][..]));
        assert_eq!(s.skipped(), 4);
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn data_without_start_codes_stays_bounded() {
        let mut s = AnnexBSplitter::new();
        for _ in 0..100 {
            s.push(&[0x55; 4096]);
            assert_eq!(s.next_nal(), None);
        }
        assert!(s.buf.len() <= 2);
    }

    fn assemble(codec: VideoCodec, stream: &[u8]) -> Vec<AccessUnit> {
        let mut a = AccessUnitAssembler::new(codec);
        let mut out: Vec<AccessUnit> = split_all(&[stream])
            .into_iter()
            .filter_map(|nal| a.push(nal))
            .collect();
        out.extend(a.flush());
        out
    }

    #[test]
    fn h264_access_units_by_aud_and_first_slice() {
        let aus = assemble(VideoCodec::H264, H264_STREAM);
        assert_eq!(aus.len(), 3);
        assert!(aus[0].key && !aus[1].key && !aus[2].key);
        let first: Vec<Bytes> = nal_units(&aus[0].data).collect();
        assert_eq!(
            first.iter().map(|n| n[0]).collect::<Vec<_>>(),
            [0x67, 0x68, 0x65]
        );
        assert_eq!(aus[0].sps.as_deref(), Some(&[0x67, 0x42, 0xc0, 0x1f][..]));
        assert_eq!(aus[0].pps.as_deref(), Some(&[0x68, 0xce, 0x3c, 0x80][..]));
        assert_eq!(aus[1].sps, None);
        assert_eq!(nal_units(&aus[1].data).count(), 2);
        assert_eq!(nal_units(&aus[2].data).count(), 1);
    }

    #[test]
    fn h264_sps_after_a_slice_starts_a_new_access_unit() {
        let stream = [
            0, 0, 1, 0x65, 0x88, // IDR
            0, 0, 1, 0x67, 0x42, // SPS
            0, 0, 1, 0x68, 0xce, // PPS
            0, 0, 1, 0x65, 0x88, // IDR
        ];
        let aus = assemble(VideoCodec::H264, &stream);
        assert_eq!(aus.len(), 2);
        assert_eq!(nal_units(&aus[1].data).count(), 3);
        assert!(aus[1].sps.is_some() && aus[1].key);
    }

    #[test]
    fn h265_access_units_and_keyframes() {
        let stream = [
            0, 0, 0, 1, 0x46, 0x01, 0x50, // AUD (35)
            0, 0, 1, 0x40, 0x01, 0x0c, // VPS (32)
            0, 0, 1, 0x42, 0x01, 0x01, // SPS (33)
            0, 0, 1, 0x44, 0x01, 0xc1, // PPS (34)
            0, 0, 1, 0x4e, 0x01, 0x05, // prefix SEI (39)
            0, 0, 1, 0x26, 0x01, 0xaf, // IDR_W_RADL (19), first slice
            0, 0, 1, 0x26, 0x01, 0x20, // IDR_W_RADL, second slice segment
            0, 0, 1, 0x02, 0x01, 0xd0, // TRAIL_R (1), first slice
            0, 0, 1, 0x50, 0x01, 0x05, // suffix SEI (40)
            0, 0, 1, 0x02, 0x01, 0xd0, // TRAIL_R, new picture
        ];
        let aus = assemble(VideoCodec::H265, &stream);
        assert_eq!(aus.len(), 3);
        assert!(aus[0].key && !aus[1].key);
        assert_eq!(nal_units(&aus[0].data).count(), 6);
        assert!(aus[0].vps.is_some() && aus[0].sps.is_some() && aus[0].pps.is_some());
        assert_eq!(nal_units(&aus[1].data).count(), 2);
        assert_eq!(nal_units(&aus[2].data).count(), 1);
    }

    #[test]
    fn parameter_sets_without_a_picture_are_not_an_access_unit() {
        let mut a = AccessUnitAssembler::new(VideoCodec::H264);
        assert_eq!(a.push(Bytes::from_static(&[0x67, 1])), None);
        assert_eq!(a.push(Bytes::from_static(&[0x09, 0xf0])), None);
        assert_eq!(a.push(Bytes::from_static(&[0x80])), None);
        assert_eq!(a.push(Bytes::new()), None);
        assert_eq!(a.flush(), None);
        assert_eq!(a.dropped(), 2);
    }
}
