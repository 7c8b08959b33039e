//! Reading back what [`super::FragmentBuilder`] wrote: the top-level boxes
//! of a file, its complete moof + mdat pairs, its length in time, and the
//! header rewrite that records a duration. Used to repair a recording
//! after a crash; works on any `Read + Seek` so tests use a `Cursor`.

use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use bytes::Bytes;
use mp4_atom::{Decode, Encode, Free, Mehd, Moof, Moov};

use super::{Error, Result, MOVIE_TIMESCALE};

/// One complete moof + mdat pair.
#[derive(Clone, Debug)]
pub struct ScannedFragment {
    /// Offset of the moof.
    pub offset: u64,
    /// Offset just past the mdat.
    pub end: u64,
    pub sequence: u32,
}

#[derive(Clone, Debug)]
pub struct Scan {
    pub file_len: u64,
    /// Bytes before the first moof: ftyp, moov and any padding.
    pub header_len: u64,
    pub moov: Moov,
    pub fragments: Vec<ScannedFragment>,
    /// Offset just past the last complete fragment: truncating the file
    /// here drops a torn trailing fragment.
    pub complete_len: u64,
    /// From the earliest decode time to the latest sample end, over all
    /// tracks of the complete fragments.
    pub media_duration: Duration,
    /// The duration the header declares (mvhd), zero until the file was
    /// closed.
    pub declared_duration: Duration,
}

impl Scan {
    /// True when the header already declares the media's duration and no
    /// torn bytes follow the last fragment.
    pub fn is_closed(&self) -> bool {
        self.complete_len == self.file_len
            && self.declared_duration.as_millis() == self.media_duration.as_millis()
            && !self.declared_duration.is_zero()
    }
}

struct BoxHeader {
    kind: [u8; 4],
    offset: u64,
    /// Total size, header included.
    size: u64,
}

fn read_box_header<R: Read + Seek>(
    r: &mut R,
    offset: u64,
    file_len: u64,
) -> Result<Option<BoxHeader>> {
    if file_len.saturating_sub(offset) < 8 {
        return Ok(None);
    }
    r.seek(SeekFrom::Start(offset))?;
    let mut h = [0u8; 8];
    r.read_exact(&mut h)?;
    let kind = [h[4], h[5], h[6], h[7]];
    let (size, header_len) = match u32::from_be_bytes([h[0], h[1], h[2], h[3]]) {
        0 => (file_len - offset, 8),
        1 => {
            if file_len - offset < 16 {
                return Ok(None);
            }
            let mut l = [0u8; 8];
            r.read_exact(&mut l)?;
            (u64::from_be_bytes(l), 16)
        }
        n => (n as u64, 8),
    };
    if size < header_len {
        return Err(Error::Malformed {
            what: "box header",
            offset,
            detail: format!("size {size} is smaller than the header"),
        });
    }
    Ok(Some(BoxHeader { kind, offset, size }))
}

fn read_box<R: Read + Seek>(r: &mut R, b: &BoxHeader) -> Result<Vec<u8>> {
    let len = usize::try_from(b.size).map_err(|_| Error::TooLarge)?;
    // Boxes read whole are headers and moofs; a huge one is not ours.
    if len > 64 << 20 {
        return Err(Error::TooLarge);
    }
    r.seek(SeekFrom::Start(b.offset))?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// Walks the top-level boxes of a fragmented MP4. Stops at the first box
/// that runs past the end of the file or does not decode: what follows
/// the last complete moof + mdat pair is a torn write.
pub fn scan<R: Read + Seek>(r: &mut R) -> Result<Scan> {
    let file_len = r.seek(SeekFrom::End(0))?;
    let mut offset = 0u64;
    let mut moov: Option<Moov> = None;
    let mut header_len = None;
    let mut fragments = Vec::new();
    let mut complete_len = 0u64;
    // The moof waiting for its mdat, with its offset.
    let mut pending: Option<(Moof, u64)> = None;
    // Per track id: (earliest decode time, latest end) in its timescale.
    let mut spans: Vec<(u32, u64, u64)> = Vec::new();
    while let Some(b) = read_box_header(r, offset, file_len)? {
        let end = offset.saturating_add(b.size);
        if end > file_len {
            break;
        }
        match &b.kind {
            b"moov" => {
                let buf = read_box(r, &b)?;
                moov = Some(
                    Moov::decode(&mut buf.as_slice()).map_err(|e| Error::Malformed {
                        what: "moov",
                        offset,
                        detail: e.to_string(),
                    })?,
                );
            }
            b"moof" => {
                header_len.get_or_insert(offset);
                let buf = read_box(r, &b)?;
                match Moof::decode(&mut buf.as_slice()) {
                    Ok(m) => pending = Some((m, offset)),
                    Err(_) => break,
                }
            }
            b"mdat" => {
                let Some((moof, moof_offset)) = pending.take() else {
                    break;
                };
                if !data_fits(&moof, moof_offset, end) {
                    break;
                }
                add_spans(&moof, &mut spans);
                fragments.push(ScannedFragment {
                    offset: moof_offset,
                    end,
                    sequence: moof.mfhd.sequence_number,
                });
                complete_len = end;
            }
            _ => {
                if pending.is_some() {
                    break;
                }
            }
        }
        offset = end;
        if moov.is_some() && header_len.is_none() && fragments.is_empty() && pending.is_none() {
            complete_len = offset;
        }
    }
    let moov = moov.ok_or(Error::Malformed {
        what: "file",
        offset: 0,
        detail: "no complete moov box".into(),
    })?;
    let header_len = header_len.unwrap_or(complete_len);
    let media_duration = span_duration(&moov, &spans);
    let declared_duration =
        Duration::from_millis(moov.mvhd.duration * 1000 / moov.mvhd.timescale.max(1) as u64);
    Ok(Scan {
        file_len,
        header_len,
        moov,
        fragments,
        complete_len,
        media_duration,
        declared_duration,
    })
}

/// Complete moof + mdat pairs found when the header cannot be read (a
/// torn or corrupted moov): every place `moof` appears in the first
/// `window` bytes is tried as the start of a run of fragments; the longest
/// run is returned. Repair uses it to tell a file with media from one
/// without, never to play it.
pub fn fragments_without_header<R: Read + Seek>(
    r: &mut R,
    window: u64,
) -> Result<Vec<ScannedFragment>> {
    let file_len = r.seek(SeekFrom::End(0))?;
    let mut head = Vec::new();
    r.seek(SeekFrom::Start(0))?;
    r.take(window.min(file_len)).read_to_end(&mut head)?;
    let mut best = Vec::new();
    let candidates = head
        .windows(4)
        .enumerate()
        .filter(|(i, w)| *i >= 4 && *w == b"moof")
        .map(|(i, _)| i as u64 - 4)
        .take(64);
    for offset in candidates {
        let run = fragments_from(r, offset, file_len)?;
        if run.len() > best.len() {
            best = run;
        }
    }
    Ok(best)
}

/// The complete moof + mdat pairs from `offset` on, up to the first box
/// that is not one.
fn fragments_from<R: Read + Seek>(
    r: &mut R,
    mut offset: u64,
    file_len: u64,
) -> Result<Vec<ScannedFragment>> {
    let mut out = Vec::new();
    let mut pending: Option<(Moof, u64)> = None;
    loop {
        let b = match read_box_header(r, offset, file_len) {
            Ok(Some(b)) => b,
            Ok(None) | Err(Error::Malformed { .. }) => break,
            Err(e) => return Err(e),
        };
        let end = offset.saturating_add(b.size);
        if end > file_len {
            break;
        }
        match (&b.kind, pending.take()) {
            (b"moof", None) => match read_box(r, &b).map(|buf| Moof::decode(&mut buf.as_slice())) {
                Ok(Ok(m)) => pending = Some((m, offset)),
                _ => break,
            },
            (b"mdat", Some((moof, moof_offset))) if data_fits(&moof, moof_offset, end) => {
                out.push(ScannedFragment {
                    offset: moof_offset,
                    end,
                    sequence: moof.mfhd.sequence_number,
                });
            }
            _ => break,
        }
        offset = end;
    }
    Ok(out)
}

/// Every trun's samples lie inside the fragment (offsets from the moof).
fn data_fits(moof: &Moof, moof_offset: u64, end: u64) -> bool {
    moof.traf.iter().all(|traf| {
        traf.trun.iter().all(|trun| {
            let size: u64 = trun
                .samples
                .iter()
                .map(|s| s.size.or(traf.tfhd.default_sample_size).unwrap_or(0) as u64)
                .sum();
            let start = moof_offset + trun.data_offset.unwrap_or(0).max(0) as u64;
            start + size <= end
        })
    })
}

fn add_spans(moof: &Moof, spans: &mut Vec<(u32, u64, u64)>) {
    for traf in &moof.traf {
        let start = traf.tfdt.as_ref().map_or(0, |t| t.base_media_decode_time);
        let duration: u64 = traf
            .trun
            .iter()
            .flat_map(|t| t.samples.iter())
            .map(|s| {
                s.duration
                    .or(traf.tfhd.default_sample_duration)
                    .unwrap_or(0) as u64
            })
            .sum();
        let id = traf.tfhd.track_id;
        match spans.iter_mut().find(|s| s.0 == id) {
            Some(s) => {
                s.1 = s.1.min(start);
                s.2 = s.2.max(start + duration);
            }
            None => spans.push((id, start, start + duration)),
        }
    }
}

fn span_duration(moov: &Moov, spans: &[(u32, u64, u64)]) -> Duration {
    let seconds = |id: u32, ticks: u64| {
        let rate = moov
            .trak
            .iter()
            .find(|t| t.tkhd.track_id == id)
            .map_or(1, |t| t.mdia.mdhd.timescale.max(1));
        ticks as f64 / rate as f64
    };
    let start = spans
        .iter()
        .map(|s| seconds(s.0, s.1))
        .fold(f64::INFINITY, f64::min);
    let end = spans.iter().map(|s| seconds(s.0, s.2)).fold(0.0, f64::max);
    if spans.is_empty() || end <= start {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(end - start)
}

/// `header` (the bytes before the first moof: ftyp, moov, padding)
/// rewritten to declare `duration` in mvhd and mehd, the same length so it
/// can be written back in place. The padding `free` box absorbs the mehd.
pub fn with_duration(header: &[u8], duration: Duration) -> Result<Bytes> {
    let mut out = Vec::with_capacity(header.len());
    let mut pos = 0usize;
    let ms = duration.as_millis() as u64;
    while pos + 8 <= header.len() {
        let size = u32::from_be_bytes([
            header[pos],
            header[pos + 1],
            header[pos + 2],
            header[pos + 3],
        ]) as usize;
        let kind = &header[pos + 4..pos + 8];
        if size < 8 || pos + size > header.len() {
            return Err(Error::Malformed {
                what: "header box",
                offset: pos as u64,
                detail: format!("size {size}"),
            });
        }
        match kind {
            b"moov" => {
                let mut moov = Moov::decode(&mut &header[pos..pos + size])?;
                let ticks = ms * moov.mvhd.timescale as u64 / MOVIE_TIMESCALE as u64;
                moov.mvhd.duration = ticks;
                if let Some(mvex) = moov.mvex.as_mut() {
                    mvex.mehd = Some(Mehd {
                        fragment_duration: ticks,
                    });
                }
                moov.encode(&mut out)?;
            }
            b"free" | b"skip" => {}
            _ => out.extend_from_slice(&header[pos..pos + size]),
        }
        pos += size;
    }
    let room = header.len();
    if out.len() != room && out.len() + 8 > room {
        return Err(Error::NoRoom {
            needed: out.len() + 8,
            room,
        });
    }
    if out.len() < room {
        Free {
            zeroed: (room - out.len() - 8).into(),
        }
        .encode(&mut out)?;
    }
    Ok(Bytes::from(out))
}

/// The duration the header at the start of a file declares (mvhd), read
/// from the file's first bytes; `None` when they hold no complete moov.
pub fn declared_duration(prefix: &[u8]) -> Option<Duration> {
    let mut pos = 0usize;
    while pos + 8 <= prefix.len() {
        let size = u32::from_be_bytes(prefix[pos..pos + 4].try_into().ok()?) as usize;
        if size < 8 || pos + size > prefix.len() {
            return None;
        }
        if &prefix[pos + 4..pos + 8] == b"moov" {
            let moov = Moov::decode(&mut &prefix[pos..pos + size]).ok()?;
            let ms = moov.mvhd.duration as u128 * 1000 / moov.mvhd.timescale.max(1) as u128;
            return Some(Duration::from_millis(ms as u64));
        }
        pos += size;
    }
    None
}
