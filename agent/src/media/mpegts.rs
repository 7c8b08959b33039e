//! MPEG-TS demuxer (ISO/IEC 13818-1): bytes of a transport stream in,
//! completed PES packets of its H.264, H.265 and AAC (ADTS) elementary
//! streams out. Pure and incremental: packets may be split across pushes.
//!
//! It follows the PAT to the PMTs and the PMTs to the elementary streams,
//! and follows PMT version changes. Damage is never fatal: after garbage it
//! resyncs on the 0x47 sync byte, and continuity errors, bad sections and
//! bad PES headers come out as [`DemuxError`]s (counted in [`DemuxStats`])
//! between the PES packets.

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};

pub const PACKET_SIZE: usize = 188;
const SYNC: u8 = 0x47;
const PAT_PID: u16 = 0;
const NULL_PID: u16 = 0x1fff;

/// A PES packet larger than this is dropped (a video PES without length
/// whose next packet start never comes).
pub const MAX_PES_SIZE: usize = 16 << 20;

/// The elementary streams the demuxer extracts, by PMT stream_type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// stream_type 0x1B.
    H264,
    /// stream_type 0x24.
    H265,
    /// stream_type 0x0F: AAC with ADTS framing.
    Aac,
}

impl StreamKind {
    pub fn from_stream_type(stream_type: u8) -> Option<StreamKind> {
        match stream_type {
            0x1b => Some(StreamKind::H264),
            0x24 => Some(StreamKind::H265),
            0x0f => Some(StreamKind::Aac),
            _ => None,
        }
    }

    pub fn is_video(self) -> bool {
        !matches!(self, StreamKind::Aac)
    }
}

/// One completed PES packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pes {
    pub pid: u16,
    pub kind: StreamKind,
    /// 33-bit presentation time, 90 kHz (see [`TimestampUnwrapper`]).
    pub pts: Option<u64>,
    /// 33-bit decode time, 90 kHz; present only when it differs from `pts`.
    pub dts: Option<u64>,
    /// The elementary stream bytes (Annex B video or ADTS audio).
    pub payload: Bytes,
}

/// Something wrong in the stream; the demuxer goes on after it.
/// `offset` is the byte offset in the stream of the packet concerned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DemuxError {
    #[error("MPEG-TS at offset {offset}: lost sync, skipped {skipped} bytes")]
    Resync { offset: u64, skipped: u64 },
    #[error(
        "MPEG-TS at offset {offset}, PID {pid}: continuity counter {got}, expected {expected}"
    )]
    Continuity {
        offset: u64,
        pid: u16,
        expected: u8,
        got: u8,
    },
    #[error("MPEG-TS at offset {offset}, PID {pid}: {what}")]
    Packet {
        offset: u64,
        pid: u16,
        what: &'static str,
    },
    #[error("MPEG-TS at offset {offset}, PID {pid}: bad section: {what}")]
    Section {
        offset: u64,
        pid: u16,
        what: &'static str,
    },
    #[error("MPEG-TS at offset {offset}, PID {pid}: bad PES packet: {what}")]
    Pes {
        offset: u64,
        pid: u16,
        what: &'static str,
    },
}

/// What the demuxer has seen, for status pages and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DemuxStats {
    pub packets: u64,
    pub pes_packets: u64,
    /// Bytes skipped to find the sync byte again.
    pub skipped_bytes: u64,
    pub continuity_errors: u64,
    /// Every other [`DemuxError`].
    pub other_errors: u64,
}

/// Reassembles PSI sections (PAT, PMT) of one PID across packets.
#[derive(Debug, Default)]
struct SectionBuffer {
    buf: Vec<u8>,
    /// Whether `buf` holds the start of a section.
    started: bool,
}

/// An elementary stream being reassembled.
#[derive(Debug)]
struct EsState {
    kind: StreamKind,
    /// The PMT it was announced in.
    pmt_pid: u16,
    /// The PES packet so far, header included.
    pes: BytesMut,
    /// Where the current PES packet started, for errors.
    pes_offset: u64,
    /// Whether `pes` holds a packet (from a payload_unit_start onwards).
    in_pes: bool,
}

/// The MPEG-TS demuxer; see the module doc.
#[derive(Debug, Default)]
pub struct TsDemuxer {
    /// Bytes not yet parsed; `buf[0]` is at stream offset `offset`.
    buf: BytesMut,
    offset: u64,
    /// Whether the last packet was whole: then a sync byte at `buf[0]` is
    /// taken at once. Otherwise (at the start, after garbage) a sync byte
    /// counts only when another follows a packet later.
    synced: bool,
    /// Garbage skipped since sync was lost, not yet reported: (offset, bytes).
    skipping: Option<(u64, u64)>,
    /// Last continuity counter per PID that carried a payload.
    continuity: HashMap<u16, u8>,
    pat: SectionBuffer,
    /// PMT PIDs from the PAT, with their sections and version.
    pmts: HashMap<u16, (SectionBuffer, Option<u8>)>,
    streams: HashMap<u16, EsState>,
    stats: DemuxStats,
}

impl TsDemuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes of the stream; returns the PES packets they complete and
    /// the errors met, in stream order.
    pub fn push(&mut self, data: &[u8]) -> Vec<Result<Pes, DemuxError>> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(packet) = self.next_packet(&mut out) {
            let offset = self.offset - PACKET_SIZE as u64;
            self.packet(&packet, offset, &mut out);
        }
        self.count(&out);
        out
    }

    /// Ends the stream: returns the PES packets still open (video PES
    /// packets without a length end only at the next one's start).
    pub fn flush(&mut self) -> Vec<Result<Pes, DemuxError>> {
        let mut out = Vec::new();
        // The last packet has no next sync byte to confirm it.
        if self.buf.len() >= PACKET_SIZE && self.buf[0] == SYNC {
            self.synced = true;
            self.report_skipped(&mut out);
            while let Some(packet) = self.next_packet(&mut out) {
                let offset = self.offset - PACKET_SIZE as u64;
                self.packet(&packet, offset, &mut out);
            }
        }
        let rest = self.buf.len();
        self.skip(rest);
        self.report_skipped(&mut out);
        self.synced = false;
        let mut pids: Vec<u16> = self.streams.keys().copied().collect();
        pids.sort_unstable();
        for pid in pids {
            self.finish_pes(pid, &mut out);
        }
        self.count(&out);
        out
    }

    /// The elementary streams announced by the current PMTs, by PID.
    pub fn streams(&self) -> impl Iterator<Item = (u16, StreamKind)> + '_ {
        self.streams.iter().map(|(&pid, es)| (pid, es.kind))
    }

    pub fn stats(&self) -> &DemuxStats {
        &self.stats
    }

    fn count(&mut self, out: &[Result<Pes, DemuxError>]) {
        for r in out {
            match r {
                Ok(_) => self.stats.pes_packets += 1,
                Err(DemuxError::Resync { skipped, .. }) => self.stats.skipped_bytes += skipped,
                Err(DemuxError::Continuity { .. }) => self.stats.continuity_errors += 1,
                Err(_) => self.stats.other_errors += 1,
            }
        }
    }

    /// The next whole packet, synchronised; `None` until more bytes come.
    fn next_packet(&mut self, out: &mut Vec<Result<Pes, DemuxError>>) -> Option<Bytes> {
        loop {
            if self.buf.len() < PACKET_SIZE {
                return None;
            }
            if self.synced && self.buf[0] == SYNC {
                self.offset += PACKET_SIZE as u64;
                return Some(self.buf.split_to(PACKET_SIZE).freeze());
            }
            self.synced = false;
            let candidate = (0..self.buf.len()).find(|&i| {
                self.buf[i] == SYNC && self.buf.get(i + PACKET_SIZE).is_none_or(|&b| b == SYNC)
            });
            match candidate {
                Some(i) if i + PACKET_SIZE < self.buf.len() => {
                    self.skip(i);
                    self.synced = true;
                    self.report_skipped(out);
                }
                // Not confirmed yet: wait for the next packet's sync byte.
                Some(i) => {
                    self.skip(i);
                    return None;
                }
                None => {
                    self.skip(self.buf.len());
                    return None;
                }
            }
        }
    }

    fn skip(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let (_, skipped) = self.skipping.get_or_insert((self.offset, 0));
        *skipped += n as u64;
        self.buf.advance(n);
        self.offset += n as u64;
    }

    fn report_skipped(&mut self, out: &mut Vec<Result<Pes, DemuxError>>) {
        if let Some((offset, skipped)) = self.skipping.take() {
            out.push(Err(DemuxError::Resync { offset, skipped }));
        }
    }

    fn packet(&mut self, p: &Bytes, offset: u64, out: &mut Vec<Result<Pes, DemuxError>>) {
        self.stats.packets += 1;
        let pid = u16::from_be_bytes([p[1] & 0x1f, p[2]]);
        let err = |what| Err(DemuxError::Packet { offset, pid, what });
        if p[1] & 0x80 != 0 {
            out.push(err("transport error indicator set"));
            return;
        }
        if pid == NULL_PID {
            return;
        }
        let unit_start = p[1] & 0x40 != 0;
        let scrambled = p[3] & 0xc0 != 0;
        let has_adaptation = p[3] & 0x20 != 0;
        let has_payload = p[3] & 0x10 != 0;
        let cc = p[3] & 0x0f;
        let mut start = 4;
        let mut discontinuity = false;
        if has_adaptation {
            let len = p[4] as usize;
            start = 5 + len;
            if start > PACKET_SIZE {
                out.push(err("adaptation field runs past the packet"));
                return;
            }
            discontinuity = len > 0 && p[5] & 0x80 != 0;
        }
        if !has_payload {
            return;
        }
        if self.check_continuity(pid, cc, discontinuity, offset, out) == Continuity::Duplicate {
            return;
        }
        if scrambled {
            out.push(err("scrambled"));
            return;
        }
        let payload = p.slice(start..);
        if pid == PAT_PID {
            let mut pat = std::mem::take(&mut self.pat);
            for section in pat.push(&payload, unit_start) {
                self.section(pid, &section, offset, out);
            }
            self.pat = pat;
        } else if let Some((mut sections, version)) = self.pmts.remove(&pid) {
            let mut version = version;
            for section in sections.push(&payload, unit_start) {
                if let Some(v) = self.pmt(pid, &section, version, offset, out) {
                    version = Some(v);
                }
            }
            self.pmts.insert(pid, (sections, version));
        } else if self.streams.contains_key(&pid) {
            self.es_payload(pid, payload, unit_start, offset, out);
        }
    }

    fn check_continuity(
        &mut self,
        pid: u16,
        cc: u8,
        discontinuity: bool,
        offset: u64,
        out: &mut Vec<Result<Pes, DemuxError>>,
    ) -> Continuity {
        let last = self.continuity.insert(pid, cc);
        match last {
            Some(last) if !discontinuity && cc == last => Continuity::Duplicate,
            Some(last) if !discontinuity && cc != (last + 1) & 0x0f => {
                out.push(Err(DemuxError::Continuity {
                    offset,
                    pid,
                    expected: (last + 1) & 0x0f,
                    got: cc,
                }));
                // The PES packet in progress misses bytes: drop it.
                if let Some(es) = self.streams.get_mut(&pid) {
                    es.pes.clear();
                    es.in_pes = false;
                }
                Continuity::Error
            }
            _ => Continuity::Ok,
        }
    }

    /// A complete PAT section (on PID 0).
    fn section(&mut self, pid: u16, s: &[u8], offset: u64, out: &mut Vec<Result<Pes, DemuxError>>) {
        let body = match check_section(s, 0x00) {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(what) => {
                out.push(Err(DemuxError::Section { offset, pid, what }));
                return;
            }
        };
        if body.len() % 4 != 0 {
            out.push(Err(DemuxError::Section {
                offset,
                pid,
                what: "PAT entries are not 4 bytes each",
            }));
            return;
        }
        let pmt_pids: Vec<u16> = body
            .chunks_exact(4)
            .filter(|e| u16::from_be_bytes([e[0], e[1]]) != 0) // 0 is the NIT
            .map(|e| u16::from_be_bytes([e[2] & 0x1f, e[3]]))
            .collect();
        self.pmts.retain(|pid, _| pmt_pids.contains(pid));
        for pmt_pid in pmt_pids {
            self.pmts.entry(pmt_pid).or_default();
        }
        let pmts = &self.pmts;
        self.streams.retain(|_, es| pmts.contains_key(&es.pmt_pid));
    }

    /// A complete PMT section; returns its version when it was applied.
    fn pmt(
        &mut self,
        pmt_pid: u16,
        s: &[u8],
        version: Option<u8>,
        offset: u64,
        out: &mut Vec<Result<Pes, DemuxError>>,
    ) -> Option<u8> {
        let err = |what| {
            Err(DemuxError::Section {
                offset,
                pid: pmt_pid,
                what,
            })
        };
        let body = match check_section(s, 0x02) {
            Ok(Some(body)) => body,
            Ok(None) => return None,
            Err(what) => {
                out.push(err(what));
                return None;
            }
        };
        let new_version = (s[5] >> 1) & 0x1f;
        if version == Some(new_version) {
            return None;
        }
        if body.len() < 4 {
            out.push(err("PMT shorter than its fixed fields"));
            return None;
        }
        let info_len = (u16::from_be_bytes([body[2], body[3]]) & 0x0fff) as usize;
        let Some(mut es) = body.get(4 + info_len..) else {
            out.push(err("program info runs past the section"));
            return None;
        };
        let mut found = Vec::new();
        while !es.is_empty() {
            if es.len() < 5 {
                out.push(err("elementary stream entry cut short"));
                return None;
            }
            let stream_type = es[0];
            let pid = u16::from_be_bytes([es[1] & 0x1f, es[2]]);
            let es_info_len = (u16::from_be_bytes([es[3], es[4]]) & 0x0fff) as usize;
            let Some(rest) = es.get(5 + es_info_len..) else {
                out.push(err("ES info runs past the section"));
                return None;
            };
            es = rest;
            if let Some(kind) = StreamKind::from_stream_type(stream_type) {
                found.push((pid, kind));
            }
        }
        // Streams this PMT no longer lists (or lists as another kind) go,
        // with whatever they had buffered.
        self.streams.retain(|pid, es| {
            es.pmt_pid != pmt_pid || found.iter().any(|&(p, k)| p == *pid && k == es.kind)
        });
        for (pid, kind) in found {
            self.streams.entry(pid).or_insert_with(|| EsState {
                kind,
                pmt_pid,
                pes: BytesMut::new(),
                pes_offset: 0,
                in_pes: false,
            });
        }
        Some(new_version)
    }

    fn es_payload(
        &mut self,
        pid: u16,
        payload: Bytes,
        unit_start: bool,
        offset: u64,
        out: &mut Vec<Result<Pes, DemuxError>>,
    ) {
        if unit_start {
            self.finish_pes(pid, out);
        }
        let Some(es) = self.streams.get_mut(&pid) else {
            return;
        };
        if unit_start {
            es.in_pes = true;
            es.pes_offset = offset;
        }
        if !es.in_pes {
            return; // Joined mid-packet, or dropped after an error.
        }
        if es.pes.len() + payload.len() > MAX_PES_SIZE {
            es.pes.clear();
            es.in_pes = false;
            out.push(Err(DemuxError::Pes {
                offset: es.pes_offset,
                pid,
                what: "larger than the limit",
            }));
            return;
        }
        es.pes.extend_from_slice(&payload);
        // A PES packet with a length is complete as soon as it is all here.
        if let Some(len) = declared_len(&es.pes) {
            if es.pes.len() >= len {
                self.finish_pes(pid, out);
            }
        }
    }

    /// Parses and returns the PES packet in progress on `pid`, if any.
    fn finish_pes(&mut self, pid: u16, out: &mut Vec<Result<Pes, DemuxError>>) {
        let Some(es) = self.streams.get_mut(&pid) else {
            return;
        };
        if !std::mem::replace(&mut es.in_pes, false) {
            return;
        }
        let mut data = std::mem::take(&mut es.pes).freeze();
        if let Some(len) = declared_len(&data) {
            if data.len() < len {
                out.push(Err(DemuxError::Pes {
                    offset: es.pes_offset,
                    pid,
                    what: "shorter than its PES_packet_length",
                }));
                return;
            }
            data.truncate(len);
        }
        out.push(
            parse_pes(data)
                .map(|(pts, dts, payload)| Pes {
                    pid,
                    kind: es.kind,
                    pts,
                    dts,
                    payload,
                })
                .map_err(|what| DemuxError::Pes {
                    offset: es.pes_offset,
                    pid,
                    what,
                }),
        );
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Continuity {
    Ok,
    Duplicate,
    Error,
}

impl SectionBuffer {
    /// Adds one packet's payload; returns the sections it completes.
    fn push(&mut self, payload: &[u8], unit_start: bool) -> Vec<Vec<u8>> {
        let mut done = Vec::new();
        let mut data = payload;
        if unit_start {
            let Some((&pointer, rest)) = data.split_first() else {
                return done;
            };
            let pointer = (pointer as usize).min(rest.len());
            if self.started {
                self.buf.extend_from_slice(&rest[..pointer]);
                self.take_complete(&mut done);
            }
            self.buf.clear();
            self.started = true;
            data = &rest[pointer..];
        } else if !self.started {
            return done;
        }
        self.buf.extend_from_slice(data);
        self.take_complete(&mut done);
        done
    }

    /// Moves the complete sections at the start of `buf` into `done`.
    fn take_complete(&mut self, done: &mut Vec<Vec<u8>>) {
        loop {
            // 0xff is stuffing: no more sections in this packet.
            if self.buf.first().is_none_or(|&b| b == 0xff) {
                if !self.buf.is_empty() {
                    self.buf.clear();
                    self.started = false;
                }
                return;
            }
            if self.buf.len() < 3 {
                return;
            }
            let len = 3 + (u16::from_be_bytes([self.buf[1], self.buf[2]]) & 0x0fff) as usize;
            if self.buf.len() < len {
                return;
            }
            let rest = self.buf.split_off(len);
            done.push(std::mem::replace(&mut self.buf, rest));
        }
    }
}

/// Checks a long-form section of `table_id`: returns the bytes between the
/// 8-byte header and the CRC, or `None` for a section that is not current
/// (current_next_indicator 0) or not the table wanted.
fn check_section(s: &[u8], table_id: u8) -> Result<Option<&[u8]>, &'static str> {
    if s.len() < 12 {
        return Err("shorter than a section header and CRC");
    }
    if s[0] != table_id {
        return Ok(None);
    }
    if s[1] & 0x80 == 0 {
        return Err("section_syntax_indicator is 0");
    }
    if crc32_mpeg2(s) != 0 {
        return Err("CRC mismatch");
    }
    if s[5] & 0x01 == 0 {
        return Ok(None);
    }
    Ok(Some(&s[8..s.len() - 4]))
}

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, no reflection, no final xor). Over
/// a section including its CRC field it is 0.
fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffff_u32;
    for &b in data {
        crc ^= (b as u32) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The whole length of a PES packet from its PES_packet_length, once the
/// first 6 bytes are in; `None` while unknown or for "unbounded" (0).
fn declared_len(pes: &[u8]) -> Option<usize> {
    let len = u16::from_be_bytes([*pes.get(4)?, *pes.get(5)?]) as usize;
    (len != 0).then_some(6 + len)
}

/// Splits a PES packet into PTS, DTS and payload (13818-1 2.4.3.6).
fn parse_pes(data: Bytes) -> Result<(Option<u64>, Option<u64>, Bytes), &'static str> {
    if data.len() < 6 {
        return Err("shorter than its header");
    }
    if data[..3] != [0, 0, 1] {
        return Err("no start code prefix");
    }
    let stream_id = data[3];
    // Streams without the optional header (program_stream_map, padding,
    // private_stream_2, ECM, EMM, directory, DSMCC, H.222.1 type E).
    if matches!(
        stream_id,
        0xbc | 0xbe | 0xbf | 0xf0 | 0xf1 | 0xf2 | 0xf8 | 0xff
    ) {
        return Ok((None, None, data.slice(6..)));
    }
    if data.len() < 9 {
        return Err("shorter than its optional header");
    }
    if data[6] & 0xc0 != 0x80 {
        return Err("optional header marker bits are not 10");
    }
    let flags = data[7] >> 6;
    let header_end = 9 + data[8] as usize;
    if header_end > data.len() {
        return Err("header runs past the packet");
    }
    let timestamp = |at: usize| -> Result<u64, &'static str> {
        let t = data
            .get(at..at + 5)
            .ok_or("timestamp runs past the header")?;
        if at + 5 > header_end {
            return Err("timestamp runs past the header");
        }
        Ok((((t[0] >> 1) & 0x07) as u64) << 30
            | (t[1] as u64) << 22
            | ((t[2] >> 1) as u64) << 15
            | (t[3] as u64) << 7
            | (t[4] >> 1) as u64)
    };
    let (pts, dts) = match flags {
        0b10 => (Some(timestamp(9)?), None),
        0b11 => (Some(timestamp(9)?), Some(timestamp(14)?)),
        0b01 => return Err("PTS_DTS_flags is 01"),
        _ => (None, None),
    };
    Ok((
        pts,
        dts.filter(|d| Some(*d) != pts),
        data.slice(header_end..),
    ))
}

/// Extends 33-bit 90 kHz timestamps (PTS, DTS, which wrap every 26.5 hours)
/// into a continuous i64 timeline. Each value is placed nearest to the
/// previous one, so a stream may step back a little (B-frames) or forwards
/// across the wrap. The first value is taken as is.
#[derive(Clone, Debug, Default)]
pub struct TimestampUnwrapper {
    last: Option<i64>,
}

const WRAP: i64 = 1 << 33;

impl TimestampUnwrapper {
    pub fn new() -> Self {
        Self::default()
    }

    /// The extended value of the 33-bit timestamp `ts` (higher bits ignored).
    pub fn extend(&mut self, ts: u64) -> i64 {
        let ts = (ts & (WRAP as u64 - 1)) as i64;
        let value = match self.last {
            None => ts,
            Some(last) => {
                // The step from the last value, in [-2^32, 2^32).
                let step = (ts - last.rem_euclid(WRAP) + WRAP / 2).rem_euclid(WRAP) - WRAP / 2;
                last + step
            }
        };
        self.last = Some(value);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::aac::AacParams;
    use crate::media::annexb::{AccessUnit, AccessUnitAssembler, AnnexBSplitter, VideoCodec};
    use crate::media::{adts, h264, h265};

    /// Builds TS packets for tests.
    #[derive(Default)]
    struct Muxer {
        cc: HashMap<u16, u8>,
    }

    impl Muxer {
        /// Packets carrying `payload` on `pid`, the first with
        /// payload_unit_start, padded with adaptation-field stuffing.
        fn packets(&mut self, pid: u16, payload: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            let mut first = true;
            let mut rest = payload;
            while first || !rest.is_empty() {
                let take = rest.len().min(184);
                let cc = self.cc.entry(pid).or_insert(15);
                *cc = (*cc + 1) & 0x0f;
                let mut p = vec![
                    SYNC,
                    ((first as u8) << 6) | (pid >> 8) as u8,
                    pid as u8,
                    0x10 | *cc,
                ];
                if take < 184 {
                    p[3] |= 0x20;
                    let af_len = 183 - take;
                    p.push(af_len as u8);
                    if af_len > 0 {
                        p.push(0);
                        p.extend(std::iter::repeat_n(0xff, af_len - 1));
                    }
                }
                p.extend_from_slice(&rest[..take]);
                assert_eq!(p.len(), PACKET_SIZE);
                out.extend(p);
                rest = &rest[take..];
                first = false;
            }
            out
        }

        fn section(&mut self, pid: u16, table_id: u8, version: u8, body: &[u8]) -> Vec<u8> {
            let mut s = vec![table_id, 0xb0, 0, 0, 1, 0xc1 | (version << 1), 0, 0];
            s.extend_from_slice(body);
            let len = s.len() + 4 - 3;
            s[1] |= (len >> 8) as u8;
            s[2] = len as u8;
            let crc = crc32_mpeg2(&s);
            s.extend(crc.to_be_bytes());
            let mut payload = vec![0]; // pointer_field
            payload.extend(s);
            self.packets(pid, &payload)
        }

        fn pat(&mut self, pmt_pid: u16) -> Vec<u8> {
            let body = [0, 1, 0xe0 | (pmt_pid >> 8) as u8, pmt_pid as u8];
            self.section(PAT_PID, 0, 0, &body)
        }

        fn pmt(&mut self, pmt_pid: u16, version: u8, streams: &[(u8, u16)]) -> Vec<u8> {
            let mut body = vec![0xe1, 0x00, 0xf0, 0x00];
            for &(stream_type, pid) in streams {
                body.extend([stream_type, 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 0]);
            }
            self.section(pmt_pid, 2, version, &body)
        }
    }

    fn timestamp(marker: u8, t: u64) -> [u8; 5] {
        [
            (marker << 4) | (((t >> 30) as u8 & 0x07) << 1) | 1,
            (t >> 22) as u8,
            (((t >> 15) as u8) << 1) | 1,
            (t >> 7) as u8,
            ((t as u8) << 1) | 1,
        ]
    }

    fn pes(stream_id: u8, pts: u64, dts: Option<u64>, payload: &[u8], bounded: bool) -> Vec<u8> {
        let mut header = Vec::new();
        match dts {
            Some(dts) => {
                header.extend(timestamp(3, pts));
                header.extend(timestamp(1, dts));
            }
            None => header.extend(timestamp(2, pts)),
        }
        let flags = if dts.is_some() { 0xc0 } else { 0x80 };
        let len = if bounded {
            3 + header.len() + payload.len()
        } else {
            0
        };
        let mut p = vec![0, 0, 1, stream_id, (len >> 8) as u8, len as u8, 0x80, flags];
        p.push(header.len() as u8);
        p.extend(header);
        p.extend_from_slice(payload);
        p
    }

    /// PAT, PMT (H.264 on 0x100, AAC on 0x101), then a video PES of 500
    /// bytes, an audio PES, and a second video PES.
    fn stream() -> Vec<u8> {
        let mut m = Muxer::default();
        let mut ts = m.pat(0x1000);
        ts.extend(m.pmt(0x1000, 0, &[(0x1b, 0x100), (0x0f, 0x101)]));
        let video: Vec<u8> = (0..500).map(|i| i as u8).collect();
        ts.extend(m.packets(0x100, &pes(0xe0, 9000, Some(6000), &video, false)));
        ts.extend(m.packets(0x101, &pes(0xc0, 8000, None, &[0xff, 0xf1, 1, 2], true)));
        ts.extend(m.packets(0x100, &pes(0xe0, 12000, None, &[0, 0, 1, 9], false)));
        ts
    }

    fn demux_chunks(chunks: &[&[u8]]) -> (Vec<Result<Pes, DemuxError>>, DemuxStats) {
        let mut d = TsDemuxer::new();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(d.push(c));
        }
        out.extend(d.flush());
        (out, d.stats().clone())
    }

    #[test]
    fn demuxes_video_and_audio_pes() {
        let (out, stats) = demux_chunks(&[&stream()]);
        let pes: Vec<Pes> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(pes.len(), 3);
        // Audio has a length: it comes out before the first video PES ends.
        assert_eq!(pes[0].kind, StreamKind::Aac);
        assert_eq!((pes[0].pts, pes[0].dts), (Some(8000), None));
        assert_eq!(&pes[0].payload[..], &[0xff, 0xf1, 1, 2]);
        assert_eq!(pes[1].kind, StreamKind::H264);
        assert_eq!(pes[1].pid, 0x100);
        assert_eq!((pes[1].pts, pes[1].dts), (Some(9000), Some(6000)));
        assert_eq!(pes[1].payload.len(), 500);
        assert_eq!(pes[1].payload[499], (499 % 256) as u8);
        assert_eq!(pes[2].pts, Some(12000));
        assert_eq!(stats.continuity_errors + stats.other_errors, 0);
        assert_eq!(stats.pes_packets, 3);
    }

    #[test]
    fn split_at_every_byte_boundary_gives_the_same_result() {
        let ts = stream();
        let (whole, _) = demux_chunks(&[&ts]);
        for i in 0..=ts.len() {
            let (a, b) = ts.split_at(i);
            assert_eq!(demux_chunks(&[a, b]).0, whole, "split at {i}");
        }
        let bytes: Vec<&[u8]> = ts.chunks(1).collect();
        assert_eq!(demux_chunks(&bytes).0, whole);
    }

    #[test]
    fn any_damaged_byte_is_survived() {
        let ts = stream();
        for i in 0..ts.len() {
            for flip in [0xff, 0x40, 0x01] {
                let mut damaged = ts.clone();
                damaged[i] ^= flip;
                let (out, _) = demux_chunks(&[&damaged]);
                for pes in out.into_iter().flatten() {
                    adts::frames(&pes.payload).for_each(drop);
                }
            }
        }
    }

    #[test]
    fn resyncs_after_garbage() {
        let ts = stream();
        let mut damaged = vec![0x47, 1, 2, 3, 0x47];
        damaged.extend(&ts[..188 * 2]);
        damaged.extend([0x12; 50]);
        damaged.extend(&ts[188 * 2..]);
        let (out, stats) = demux_chunks(&[&damaged]);
        assert_eq!(stats.skipped_bytes, 55);
        assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 3);
        assert!(matches!(
            out[0],
            Err(DemuxError::Resync {
                offset: 0,
                skipped: 5
            })
        ));
    }

    #[test]
    fn continuity_errors_are_counted_and_drop_the_broken_pes() {
        let ts = stream();
        // Packets: PAT, PMT, video x3, audio, video. Drop the second video one.
        let mut lossy = ts[..188 * 3].to_vec();
        lossy.extend(&ts[188 * 4..]);
        let (out, stats) = demux_chunks(&[&lossy]);
        assert_eq!(stats.continuity_errors, 1);
        let kinds: Vec<StreamKind> = out.iter().flatten().map(|p| p.kind).collect();
        assert_eq!(kinds, [StreamKind::Aac, StreamKind::H264]);
        assert!(out.iter().any(|r| matches!(
            r,
            Err(DemuxError::Continuity {
                pid: 0x100,
                offset: 564,
                expected: 1,
                got: 2
            })
        )));
        // A repeated packet is skipped, not an error.
        let mut repeated = ts[..188 * 3].to_vec();
        repeated.extend(&ts[188 * 2..]);
        let (out, stats) = demux_chunks(&[&repeated]);
        assert_eq!(stats.continuity_errors, 0);
        assert_eq!(out.iter().flatten().count(), 3);
    }

    #[test]
    fn pmt_version_change_adds_streams() {
        let mut m = Muxer::default();
        let mut ts = m.pat(0x1000);
        ts.extend(m.pmt(0x1000, 0, &[(0x1b, 0x100)]));
        ts.extend(m.packets(0x102, &pes(0xe1, 1, None, &[1], true)));
        ts.extend(m.pmt(0x1000, 1, &[(0x24, 0x102)]));
        ts.extend(m.packets(0x102, &pes(0xe1, 2, None, &[2], true)));
        let mut d = TsDemuxer::new();
        let out: Vec<Pes> = d.push(&ts).into_iter().map(Result::unwrap).collect();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, StreamKind::H265);
        assert_eq!(out[0].pts, Some(2));
        assert_eq!(d.streams().collect::<Vec<_>>(), [(0x102, StreamKind::H265)]);
    }

    #[test]
    fn bad_sections_and_pes_headers_are_errors() {
        let mut m = Muxer::default();
        let mut pat = m.pat(0x1000);
        pat[180] ^= 0xff; // inside the section: breaks the CRC
        let (out, _) = demux_chunks(&[&pat]);
        assert!(matches!(
            out[..],
            [Err(DemuxError::Section {
                pid: 0,
                offset: 0,
                what: "CRC mismatch"
            })]
        ));
        let mut ts = m.pat(0x1000);
        ts.extend(m.pmt(0x1000, 0, &[(0x1b, 0x100)]));
        ts.extend(m.packets(0x100, &[0, 0, 2, 0xe0, 0, 0, 0x80, 0, 0]));
        let (out, stats) = demux_chunks(&[&ts]);
        assert!(matches!(
            out[..],
            [Err(DemuxError::Pes {
                pid: 0x100,
                offset: 376,
                what: "no start code prefix"
            })]
        ));
        assert_eq!(stats.other_errors, 1);
    }

    #[test]
    fn other_pids_and_stream_types_are_ignored() {
        let mut m = Muxer::default();
        let mut ts = m.section(0x11, 0x42, 0, &[0xff, 0x01, 0xff]); // SDT on its own PID
        ts.extend(m.pat(0x1000));
        ts.extend(m.pmt(0x1000, 0, &[(0x1b, 0x100), (0x0f, 0x101), (0x06, 0x102)]));
        let mut d = TsDemuxer::new();
        assert!(d.push(&ts).is_empty());
        let mut streams: Vec<_> = d.streams().collect();
        streams.sort_by_key(|s| s.0);
        assert_eq!(
            streams,
            [(0x100, StreamKind::H264), (0x101, StreamKind::Aac)]
        );
    }

    /// Runs ffmpeg for an MPEG-TS of 0.4 s: 10 video frames, and AAC.
    /// `tests/setup.sh` installs ffmpeg; without it the test fails.
    fn ffmpeg_ts(video: &[&str], size: &str, audio: &[&str]) -> Vec<u8> {
        let out = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
            .arg(format!("testsrc=size={size}:rate=25"))
            .args(["-f", "lavfi", "-i", "sine=sample_rate=48000"])
            .args(["-t", "0.4", "-pix_fmt", "yuv420p"])
            .args(video)
            .args(audio)
            .args(["-f", "mpegts", "-"])
            .output();
        match out {
            Ok(out) if out.status.success() => out.stdout,
            Ok(out) => panic!("ffmpeg: {}", String::from_utf8_lossy(&out.stderr)),
            Err(e) => panic!("ffmpeg is needed (tests/setup.sh installs it): {e}"),
        }
    }

    /// The whole pure pipeline of the exec source on what ffmpeg writes:
    /// TS to PES, PES to access units and AAC frames, SPS to picture size.
    fn pipeline(ts: &[u8], codec: VideoCodec) -> (Vec<AccessUnit>, Vec<adts::AdtsFrame>) {
        let mut demuxer = TsDemuxer::new();
        let mut all = Vec::new();
        for chunk in ts.chunks(1000) {
            all.extend(demuxer.push(chunk));
        }
        all.extend(demuxer.flush());
        assert_eq!(
            demuxer.stats().continuity_errors + demuxer.stats().other_errors,
            0
        );
        let (mut aus, mut frames) = (Vec::new(), Vec::new());
        let mut assembler = AccessUnitAssembler::new(codec);
        let mut unwrapper = TimestampUnwrapper::new();
        let mut last_dts = None;
        for pes in all.into_iter().map(Result::unwrap) {
            if pes.kind == StreamKind::Aac {
                frames.extend(adts::frames(&pes.payload).map(Result::unwrap));
                continue;
            }
            let dts = unwrapper.extend(pes.dts.or(pes.pts).unwrap());
            assert!(last_dts < Some(dts));
            last_dts = Some(dts);
            let mut splitter = AnnexBSplitter::new();
            splitter.push(&pes.payload);
            while let Some(nal) = splitter.next_nal() {
                aus.extend(assembler.push(nal));
            }
            aus.extend(splitter.finish().and_then(|nal| assembler.push(nal)));
        }
        aus.extend(assembler.flush());
        (aus, frames)
    }

    #[test]
    fn demuxes_what_ffmpeg_writes() {
        let h264 = ["-c:v", "libx264", "-bf", "2"];
        let aac = ["-c:a", "aac", "-ac", "1"];
        let ts = ffmpeg_ts(&h264, "1920x1080", &aac);
        let (aus, frames) = pipeline(&ts, VideoCodec::H264);
        assert_eq!(aus.len(), 10);
        assert!(aus[0].key && !aus[1].key);
        let sps = aus[0].sps.as_ref().expect("an SPS in the keyframe");
        assert_eq!(h264::sps_size(sps), Some((1920, 1080)));
        assert_eq!(frames.len(), 20);
        assert_eq!(frames[0].header.params(), AacParams::lc(48_000, 1));
        let h265 = ["-c:v", "libx265", "-x265-params", "log-level=error"];
        let aac = ["-c:a", "aac", "-ac", "2", "-ar", "44100"];
        let ts = ffmpeg_ts(&h265, "320x240", &aac);
        let (aus, frames) = pipeline(&ts, VideoCodec::H265);
        assert_eq!(aus.len(), 10);
        assert!(aus[0].key && aus[0].vps.is_some() && aus[0].pps.is_some());
        let sps = aus[0].sps.as_ref().expect("an SPS in the keyframe");
        assert_eq!(h265::sps_size(sps), Some((320, 240)));
        assert_eq!(frames[0].header.params(), AacParams::lc(44_100, 2));
    }

    #[test]
    fn timestamps_unwrap_across_the_33_bit_wrap() {
        let mut u = TimestampUnwrapper::new();
        let near_end = (1u64 << 33) - 3000;
        assert_eq!(u.extend(near_end), near_end as i64);
        assert_eq!(u.extend(near_end - 1500), near_end as i64 - 1500);
        assert_eq!(u.extend(1000), (1i64 << 33) + 1000);
        assert_eq!(u.extend(4000), (1i64 << 33) + 4000);
        assert_eq!(u.extend((1 << 33) - 500), (1i64 << 33) - 500);
        let mut u = TimestampUnwrapper::new();
        assert_eq!(u.extend(100), 100);
        assert_eq!(u.extend((1 << 33) - 100), -100);
        assert_eq!(u.extend(u64::MAX), -1);
    }
}
