//! Start-up repair: a `.partial` file is one the agent was writing when it
//! died. Its torn trailing fragment (if any) is cut off, the duration of
//! what remains goes into its header, and it gets its final name. A file
//! with no complete fragment holds no media and is removed.
//!
//! A header that does not decode (a power cut while it was rewritten in
//! place at close, a flash page gone bad) is not taken as "died before the
//! header was on disk" when complete fragments follow it: such a file is
//! never deleted but moved aside as `<name>.mp4.corrupt` (which retention
//! and the listing leave alone) and reported, for a person to look at.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::paths::PARTIAL_SUFFIX;

/// Suffix of a file repair could not close but that holds media.
pub const CORRUPT_SUFFIX: &str = ".corrupt";
/// How far into a file with an unreadable header fragments are looked for:
/// our headers are under 2 KiB, the first fragment follows them.
const FRAGMENT_SEARCH: u64 = 1 << 20;
use crate::fmp4;

#[derive(Debug, PartialEq, Eq)]
pub enum Repaired {
    /// Closed under its final name, after cutting `truncated` torn bytes.
    Closed {
        path: PathBuf,
        truncated: u64,
    },
    /// The header does not decode but `fragments` complete fragments
    /// follow it: moved aside to `path` (`.corrupt`), nothing deleted.
    Quarantined {
        path: PathBuf,
        fragments: usize,
    },
    Removed,
}

/// Repairs every `.partial` file under `root` (`<stream>/<day>/`).
pub fn repair_all(root: &Path) -> Vec<(PathBuf, io::Result<Repaired>)> {
    let mut out = Vec::new();
    for day in super::retention::day_dirs(root) {
        let Ok(entries) = std::fs::read_dir(&day) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.to_str().is_some_and(|p| p.ends_with(PARTIAL_SUFFIX)) {
                let r = repair(&path);
                match &r {
                    Ok(Repaired::Closed { path, truncated }) => info!(
                        "repaired recording {} ({truncated} torn bytes cut)",
                        path.display()
                    ),
                    Ok(Repaired::Quarantined { path, fragments }) => warn!(
                        "recording {} has an unreadable header but {fragments} complete fragments: \
                         kept aside as is, not played nor deleted",
                        path.display()
                    ),
                    Ok(Repaired::Removed) => {
                        info!(
                            "removed recording {} (no complete fragment)",
                            path.display()
                        )
                    }
                    Err(err) => warn!("cannot repair recording {}: {err}", path.display()),
                }
                out.push((path, r));
            }
        }
    }
    out
}

pub fn repair(partial: &Path) -> io::Result<Repaired> {
    let mut file = OpenOptions::new().read(true).write(true).open(partial)?;
    let scan = match fmp4::scan(&mut file) {
        Ok(s) => s,
        Err(fmp4::Error::Malformed { .. }) => {
            let fragments = fmp4::fragments_without_header(&mut file, FRAGMENT_SEARCH)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if fragments.is_empty() {
                // Died before the header was on disk: no media.
                std::fs::remove_file(partial)?;
                return Ok(Repaired::Removed);
            }
            return quarantine(partial, fragments.len());
        }
        Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
    };
    if scan.fragments.is_empty() {
        std::fs::remove_file(partial)?;
        return Ok(Repaired::Removed);
    }
    let truncated = scan.file_len - scan.complete_len;
    if truncated > 0 {
        file.set_len(scan.complete_len)?;
    }
    let mut header = vec![0u8; scan.header_len as usize];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut header)?;
    let header = fmp4::with_duration(&header, scan.media_duration)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    file.write_all_at(&header, 0)?;
    file.sync_all()?;
    let name = partial
        .to_str()
        .and_then(|p| p.strip_suffix(PARTIAL_SUFFIX))
        .map(PathBuf::from)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a .partial file"))?;
    std::fs::rename(partial, &name)?;
    if let Some(dir) = name.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(Repaired::Closed {
        path: name,
        truncated,
    })
}

/// Renames `partial` to `<name>.mp4.corrupt`, durably.
fn quarantine(partial: &Path, fragments: usize) -> io::Result<Repaired> {
    let path = partial
        .to_str()
        .and_then(|p| p.strip_suffix(PARTIAL_SUFFIX))
        .map(|p| PathBuf::from(format!("{p}{CORRUPT_SUFFIX}")))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a .partial file"))?;
    std::fs::rename(partial, &path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(Repaired::Quarantined { path, fragments })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::fmp4::{FragmentBuilder, Timeline};

    use crate::media::Frame;

    /// A header and three one-second fragments of synthetic frames.
    fn recording() -> (Bytes, Vec<Bytes>) {
        let info = Arc::new(crate::media::test_stream_info());
        let init = fmp4::init_segment(&info, None).unwrap();
        let header = fmp4::padded_init_segment(&info, None, init.len() + 64).unwrap();
        let mut b = FragmentBuilder::new(&info, Timeline::ZeroAtFirstFrame).unwrap();
        let mut fragments = Vec::new();
        for n in 0..76i64 {
            b.push(Frame {
                track: 0,
                pts: n * 3600,
                dts: n * 3600,
                key: n % 25 == 0,
                data: Bytes::from(vec![n as u8; 500]),
            })
            .unwrap();
            if n % 25 == 0 && n > 0 {
                fragments.push(b.cut().unwrap().unwrap().bytes);
            }
        }
        fragments.push(b.finish(Some(76 * 3600)).unwrap().unwrap().bytes);
        (header, fragments)
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_file_closed() {
        let dir = tempfile::tempdir().unwrap();
        let (header, fragments) = recording();
        let mut bytes = header.to_vec();
        for f in &fragments[..3] {
            bytes.extend_from_slice(f);
        }
        let torn = 300;
        bytes.extend_from_slice(&fragments[3][..torn]);
        let partial = dir.path().join("cam_20260101T000000.000Z.mp4.partial");
        std::fs::write(&partial, &bytes).unwrap();
        let r = repair(&partial).unwrap();
        let closed = dir.path().join("cam_20260101T000000.000Z.mp4");
        assert_eq!(
            r,
            Repaired::Closed {
                path: closed.clone(),
                truncated: torn as u64
            }
        );
        assert!(!partial.exists());
        let s = fmp4::scan(&mut std::fs::File::open(&closed).unwrap()).unwrap();
        assert!(s.is_closed(), "{s:?}");
        assert_eq!(s.fragments.len(), 3);
        assert_eq!(s.declared_duration.as_millis(), 3000);
    }

    #[test]
    fn a_file_whose_header_is_torn_but_holds_fragments_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let (header, fragments) = recording();
        let mut bytes = header.to_vec();
        for f in &fragments[..3] {
            bytes.extend_from_slice(f);
        }
        // Inside the moov (after the 8-byte moov header), a torn page: the
        // first child box's header is garbage.
        let moov = bytes.windows(4).position(|w| w == b"moov").unwrap() - 4;
        for b in &mut bytes[moov + 8..moov + 24] {
            *b ^= 0xff;
        }
        let partial = dir.path().join("cam_20260101T000000.000Z.mp4.partial");
        std::fs::write(&partial, &bytes).unwrap();
        let results = repair_all_in(dir.path());
        let corrupt = dir.path().join("cam_20260101T000000.000Z.mp4.corrupt");
        assert_eq!(
            results,
            vec![Repaired::Quarantined {
                path: corrupt.clone(),
                fragments: 3
            }]
        );
        assert!(!partial.exists());
        assert_eq!(std::fs::read(&corrupt).unwrap(), bytes, "nothing lost");
    }

    /// `repair` of every `.partial` in `dir`.
    fn repair_all_in(dir: &Path) -> Vec<Repaired> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_str().unwrap().ends_with(PARTIAL_SUFFIX))
            .map(|p| repair(&p).unwrap())
            .collect()
    }

    #[test]
    fn files_without_media_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (header, fragments) = recording();
        let cases: [Vec<u8>; 3] = [
            Vec::new(),
            header[..header.len() / 2].to_vec(),
            [&header[..], &fragments[0][..100]].concat(),
        ];
        for (i, bytes) in cases.iter().enumerate() {
            let p = dir.path().join(format!("f{i}.mp4.partial"));
            std::fs::write(&p, bytes).unwrap();
            assert_eq!(repair(&p).unwrap(), Repaired::Removed, "case {i}");
            assert!(!p.exists());
        }
    }

    #[test]
    fn scanning_any_truncation_never_panics() {
        let (header, fragments) = recording();
        let whole: Vec<u8> = [&header[..], &fragments[0][..], &fragments[1][..]].concat();
        for len in 0..whole.len() {
            let cut = &whole[..len];
            if let Ok(s) = fmp4::scan(&mut std::io::Cursor::new(cut)) {
                assert!(s.complete_len <= len as u64);
                assert!(s.fragments.len() <= 2);
            }
        }
        // Corrupt bytes anywhere in the fragments: never a panic either.
        for pos in (header.len()..whole.len()).step_by(7) {
            let mut bad = whole.clone();
            bad[pos] ^= 0xff;
            let _ = fmp4::scan(&mut std::io::Cursor::new(&bad));
        }
    }
}
