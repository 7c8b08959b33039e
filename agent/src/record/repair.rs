//! Start-up repair: a `.partial` file is one the agent was writing when it
//! died. Its torn trailing fragment (if any) is cut off, the duration of
//! what remains goes into its header, and it gets its final name. A file
//! with no complete fragment holds no media and is removed.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::paths::PARTIAL_SUFFIX;
use crate::fmp4;

#[derive(Debug, PartialEq, Eq)]
pub enum Repaired {
    /// Closed under its final name, after cutting `truncated` torn bytes.
    Closed {
        path: PathBuf,
        truncated: u64,
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
        // Died before the header was on disk.
        Err(fmp4::Error::Malformed { .. }) => {
            std::fs::remove_file(partial)?;
            return Ok(Repaired::Removed);
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
