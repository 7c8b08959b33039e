//! Retention: deletes closed recordings, oldest first, while one is older
//! than `max_age_hours`, the total is above `max_bytes`, or the filesystem
//! has less than `min_free_percent` free. Files being written (`.partial`)
//! are never touched. [`plan`] decides, [`Retention::run`] looks and deletes.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::paths;
use crate::config::RecordingConfig;

/// A closed recording.
#[derive(Clone, Debug)]
pub struct RecordingEntry {
    pub stream: String,
    pub path: PathBuf,
    /// `<stream>/<day>/<file>`.
    pub relative: String,
    pub start: DateTime<Utc>,
    pub bytes: u64,
}

/// Space of the filesystem holding the recordings, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Space {
    pub total: u64,
    /// Available to unprivileged writers (f_bavail).
    pub free: u64,
}

/// statvfs of `path`.
pub fn space(path: &Path) -> std::io::Result<Space> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated string and `st` a plain struct
    // that statvfs fills in.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let frsize = st.f_frsize as u64;
    Ok(Space {
        total: st.f_blocks as u64 * frsize,
        free: st.f_bavail as u64 * frsize,
    })
}

/// The `<stream>/<day>` directories under `root`.
pub fn day_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(streams) = std::fs::read_dir(root) else {
        return out;
    };
    for s in streams.flatten() {
        let Some(name) = s.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !crate::config::is_name(&name) || !s.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(days) = std::fs::read_dir(s.path()) else {
            continue;
        };
        for d in days.flatten() {
            let is_day = d.file_name().to_str().is_some_and(paths::is_day_dir_name);
            if is_day && d.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(d.path());
            }
        }
    }
    out
}

/// Every closed recording under `root`, oldest first. Symlinks and names
/// this agent did not make are ignored.
pub fn list(root: &Path) -> Vec<RecordingEntry> {
    let mut out = Vec::new();
    for day in day_dirs(root) {
        let Ok(entries) = std::fs::read_dir(&day) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some((stream, start)) = name.to_str().and_then(paths::parse_file_name) else {
                continue;
            };
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if !meta.is_file() || day.parent().and_then(Path::file_name) != Some(stream.as_ref()) {
                continue;
            }
            out.push(RecordingEntry {
                stream: stream.to_owned(),
                path: e.path(),
                relative: paths::relative_path(stream, start),
                start,
                bytes: meta.len(),
            });
        }
    }
    out.sort_by(|a, b| (a.start, &a.path).cmp(&(b.start, &b.path)));
    out
}

/// Indices into `files` (oldest first) to delete.
pub fn plan(
    files: &[RecordingEntry],
    now: DateTime<Utc>,
    config: &RecordingConfig,
    space: Option<Space>,
) -> Vec<usize> {
    let mut total: u64 = files.iter().map(|f| f.bytes).sum();
    let mut free = space.map(|s| s.free);
    let min_free = space.map(|s| (s.total as f64 * config.min_free_percent / 100.0) as u64);
    let max_age = chrono::Duration::hours(config.max_age_hours as i64);
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let too_old = config.max_age_hours > 0 && now - f.start > max_age;
        let too_big = config.max_bytes > 0 && total > config.max_bytes;
        let too_full = matches!((free, min_free), (Some(free), Some(min)) if free < min);
        if !(too_old || too_big || too_full) {
            break;
        }
        out.push(i);
        total -= f.bytes;
        free = free.map(|v| v + f.bytes);
    }
    out
}

pub struct Retention {
    root: PathBuf,
    /// Also serialises runs: one pass at a time.
    config: Mutex<RecordingConfig>,
}

impl Retention {
    pub fn new(root: PathBuf, config: RecordingConfig) -> Self {
        Self {
            root,
            config: Mutex::new(config),
        }
    }

    /// New limits, for the next pass.
    pub fn set_config(&self, config: RecordingConfig) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// Deletes what [`plan`] says; returns the bytes freed.
    pub fn run(&self, now: DateTime<Utc>) -> u64 {
        let config = self.config.lock().unwrap_or_else(|e| e.into_inner());
        let files = list(&self.root);
        let space = space(&self.root).ok();
        let mut freed = 0;
        for i in plan(&files, now, &config, space) {
            let f = &files[i];
            match std::fs::remove_file(&f.path) {
                Ok(()) => {
                    info!(stream = f.stream, "retention deleted {}", f.relative);
                    freed += f.bytes;
                    if let Some(day) = f.path.parent() {
                        // Succeeds only once the day is empty.
                        let _ = std::fs::remove_dir(day);
                    }
                }
                Err(e) => warn!("retention cannot delete {}: {e}", f.path.display()),
            }
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn entries(n: usize) -> Vec<RecordingEntry> {
        (0..n)
            .map(|i| {
                let start = Utc.with_ymd_and_hms(2026, 1, 1, i as u32, 0, 0).unwrap();
                RecordingEntry {
                    stream: "cam".into(),
                    path: PathBuf::from(format!("f{i}")),
                    relative: paths::relative_path("cam", start),
                    start,
                    bytes: 100,
                }
            })
            .collect()
    }

    fn config(max_age_hours: u64, max_bytes: u64, min_free_percent: f64) -> RecordingConfig {
        RecordingConfig {
            max_age_hours,
            max_bytes,
            min_free_percent,
            ..Default::default()
        }
    }

    #[test]
    fn each_limit_deletes_oldest_first() {
        let files = entries(10);
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        // Older than 5 h: started before 07:00.
        assert_eq!(
            plan(&files, now, &config(5, 0, 0.0), None),
            vec![0, 1, 2, 3, 4, 5, 6]
        );
        assert_eq!(plan(&files, now, &config(0, 750, 0.0), None), vec![0, 1, 2]);
        let space = Space {
            total: 10_000,
            free: 700,
        };
        assert_eq!(
            plan(&files, now, &config(0, 0, 10.0), Some(space)),
            vec![0, 1, 2]
        );
        assert!(plan(&files, now, &config(0, 0, 0.0), Some(space)).is_empty());
    }

    #[test]
    fn statvfs_reports_the_filesystem() {
        let s = space(Path::new("/")).unwrap();
        assert!(s.total > 0 && s.free <= s.total);
    }

    #[test]
    fn list_skips_partials_symlinks_and_strangers() {
        let dir = tempfile::tempdir().unwrap();
        let day = dir.path().join("cam/2026-01-01");
        std::fs::create_dir_all(&day).unwrap();
        for name in [
            "cam_20260101T000000.000Z.mp4",
            "cam_20260101T010000.000Z.mp4.partial",
            "notes.txt",
            "other_20260101T000000.000Z.mp4",
        ] {
            std::fs::write(day.join(name), b"x").unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", day.join("cam_20260101T020000.000Z.mp4"))
            .unwrap();
        let l = list(dir.path());
        assert_eq!(l.len(), 1, "{l:?}");
        assert_eq!(l[0].relative, "cam/2026-01-01/cam_20260101T000000.000Z.mp4");
    }
}
