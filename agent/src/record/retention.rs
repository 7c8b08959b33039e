//! Retention: deletes closed recordings, oldest first, while one is older
//! than `max_age_hours`, the total is above `max_bytes`, or the filesystem
//! has less than `min_free_percent` free. Files being written (`.partial`)
//! are never touched. [`plan`] decides, [`Retention::run`] looks and deletes.
//!
//! "Oldest" is the order files were made in (the sequence in their names),
//! never the wall-clock time in the names, which jumps when the clock does.
//! A file's age is that of the earliest trusted name at or after it in
//! that order: a file named while the clock was not trusted (1970 after
//! boot) is as old as the first file named after NTP synced, and is not
//! aged at all until there is one. See docs/recording.md.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::paths::{self, Order};
use crate::config::RecordingConfig;

/// A closed recording.
#[derive(Clone, Debug)]
pub struct RecordingEntry {
    pub stream: String,
    pub path: PathBuf,
    /// `<stream>/<day>/<file>`.
    pub relative: String,
    pub start: DateTime<Utc>,
    /// `None` for names of earlier versions (made before any ordered one).
    pub order: Option<Order>,
    pub bytes: u64,
}

impl RecordingEntry {
    /// Whether the name's time can be believed.
    fn trusted(&self) -> bool {
        self.order.is_none_or(|o| o.trusted)
    }

    /// Sort key: old-style names first, by time; then by sequence.
    fn made(&self) -> (bool, u64, DateTime<Utc>) {
        match self.order {
            Some(o) => (true, o.seq, self.start),
            None => (false, 0, self.start),
        }
    }
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
            let Some(paths::Name {
                stream,
                start,
                order,
            }) = name.to_str().and_then(paths::parse_name)
            else {
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
                relative: paths::relative_path(stream, start, order),
                start,
                order,
                bytes: meta.len(),
            });
        }
    }
    out.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    out
}

/// The order of [`list`]: the order files were made in.
pub fn sort_key(f: &RecordingEntry) -> ((bool, u64, DateTime<Utc>), &Path) {
    (f.made(), &f.path)
}

/// The next sequence number: one more than any on disk.
pub fn next_seq(files: &[RecordingEntry]) -> u64 {
    files
        .iter()
        .filter_map(|f| f.order.map(|o| o.seq + 1))
        .max()
        .unwrap_or(0)
}

/// The time each file (in the order made) is aged by: the earliest trusted
/// name at or after it. Never later than the truth for a file whose
/// successors were named by a trusted clock, and non-decreasing, so the
/// oldest-first walk of [`plan`] can stop at the first young file. `None`:
/// no trusted name follows, the file is not aged.
fn age_times(files: &[RecordingEntry]) -> Vec<Option<DateTime<Utc>>> {
    let mut out = vec![None; files.len()];
    let mut earliest: Option<DateTime<Utc>> = None;
    for (i, f) in files.iter().enumerate().rev() {
        if f.trusted() {
            earliest = Some(earliest.map_or(f.start, |e| e.min(f.start)));
        }
        out[i] = earliest;
    }
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
    let max_age = chrono::Duration::try_hours(config.max_age_hours.min(i64::MAX as u64) as i64);
    let aged = age_times(files);
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let too_old = match (max_age, aged[i]) {
            (Some(max), Some(t)) => config.max_age_hours > 0 && now - t > max,
            _ => false,
        };
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
                    relative: paths::relative_path("cam", start, None),
                    start,
                    order: None,
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

    /// Files in the order made, each `(seq, minutes after 2026-01-01
    /// 12:00 or None for a 1970 name, trusted)`.
    fn ordered(spec: &[(u64, Option<i64>, bool)]) -> Vec<RecordingEntry> {
        let noon = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        spec.iter()
            .map(|&(seq, minutes, trusted)| {
                let start = match minutes {
                    Some(m) => noon + chrono::Duration::minutes(m),
                    None => Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, seq as u32).unwrap(),
                };
                let order = Some(Order { seq, trusted });
                RecordingEntry {
                    stream: "cam".into(),
                    path: PathBuf::from(format!("f{seq}")),
                    relative: paths::relative_path("cam", start, order),
                    start,
                    order,
                    bytes: 100,
                }
            })
            .collect()
    }

    #[test]
    fn files_named_at_1970_are_not_aged_by_their_names() {
        // Booted without RTC: three files at 1970, then NTP synced.
        let files = ordered(&[
            (0, None, false),
            (1, None, false),
            (2, None, false),
            (3, Some(0), true),
            (4, Some(1), true),
        ]);
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 30, 0).unwrap();
        assert!(plan(&files, now, &config(1, 0, 0.0), None).is_empty());
        // Not aged at all until a trusted name follows them.
        assert!(plan(&files[..3], now, &config(1, 0, 0.0), None).is_empty());
        // Once the first trusted file is old enough, they go before it.
        let later = now + chrono::Duration::hours(2);
        assert_eq!(
            plan(&files, later, &config(1, 0, 0.0), None),
            vec![0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn a_clock_stepped_back_does_not_make_new_files_go_first() {
        // 12:00, 12:01, then the clock steps back an hour: 11:02, 11:03.
        let mut files = ordered(&[
            (7, Some(0), true),
            (8, Some(1), true),
            (9, Some(-58), true),
            (10, Some(-57), true),
        ]);
        files.reverse();
        let sorted = {
            let dir = tempfile::tempdir().unwrap();
            for f in &files {
                let p = dir.path().join(&f.relative);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, [0u8; 100]).unwrap();
            }
            list(dir.path())
        };
        let seqs: Vec<u64> = sorted.iter().map(|f| f.order.unwrap().seq).collect();
        assert_eq!(seqs, [7, 8, 9, 10]);
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 11, 10, 0).unwrap();
        // Under byte pressure the oldest media goes first.
        assert_eq!(plan(&sorted, now, &config(0, 250, 0.0), None), vec![0, 1]);
        assert_eq!(next_seq(&sorted), 11);
    }

    #[test]
    fn a_huge_max_age_ages_nothing_and_does_not_panic() {
        let files = entries(3);
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        assert!(plan(&files, now, &config(u64::MAX, 0, 0.0), None).is_empty());
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
