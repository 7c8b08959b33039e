//! Finding recordings: the closed files of a stream (or all) that overlap
//! a time range, with their declared duration. Shared by the HTTP API and
//! MQTT; blocking (it lists the directories and reads headers), so async
//! callers run it on a blocking thread. A closed file never changes, so
//! each one's duration is read once and cached (by path and size); pages
//! ([`find_page`]) read only the headers they need.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::paths;
use super::retention::{self, RecordingEntry};

/// Most recordings one page gives.
pub const MAX_PAGE: usize = 1000;

#[derive(Clone, Debug, Serialize)]
pub struct Recording {
    pub stream: String,
    /// URL path of the file on the agent's HTTP server.
    pub path: String,
    /// RFC 3339, UTC.
    pub start: String,
    /// Seconds.
    pub duration: f64,
    pub bytes: u64,
}

/// Parses an RFC 3339 time given as `what`, for a clear error.
pub fn parse_time(what: &str, v: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    v.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("`{what}` is not an RFC 3339 time: {e}"))
    })
    .transpose()
}

/// Closed recordings under `root`, oldest first, of `stream` (or every
/// stream) that overlap [`from`, `to`].
pub fn find(
    root: &Path,
    stream: Option<&str>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Vec<Recording> {
    find_page(root, stream, from, to, None, usize::MAX).0
}

/// Like [`find`], at most `limit` recordings from just after `cursor` (a
/// recording's path under /recordings/, as the last page's last one; it
/// need not exist any more). Also returns the cursor of the next page,
/// when there may be one.
pub fn find_page(
    root: &Path,
    stream: Option<&str>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    cursor: Option<&str>,
    limit: usize,
) -> (Vec<Recording>, Option<String>) {
    let files = retention::list(root);
    let after = cursor.and_then(|c| cursor_key(root, c));
    let mut page = Vec::new();
    let mut next = None;
    let candidates = files
        .iter()
        .filter(|r| {
            after
                .as_ref()
                .is_none_or(|a| retention::sort_key(r) > a.as_key())
        })
        .filter(|r| stream.is_none_or(|s| s == r.stream))
        .filter(|r| to.is_none_or(|to| r.start <= to));
    for r in candidates {
        if page.len() == limit {
            next = page
                .last()
                .map(|p: &Recording| p.path["/recordings/".len()..].to_owned());
            break;
        }
        let Some(duration) = cached_duration(r) else {
            continue;
        };
        let Ok(length) = chrono::Duration::from_std(duration) else {
            continue;
        };
        if from.is_some_and(|from| r.start + length <= from) {
            continue;
        }
        page.push(Recording {
            path: format!("/recordings/{}", r.relative),
            start: r.start.to_rfc3339_opts(SecondsFormat::Millis, true),
            duration: duration.as_secs_f64(),
            bytes: r.bytes,
            stream: r.stream.clone(),
        });
    }
    forget_missing(&files);
    (page, next)
}

/// Where a cursor (`<stream>/<day>/<file>`) sorts.
struct CursorKey {
    made: (bool, u64, DateTime<Utc>),
    path: PathBuf,
}

impl CursorKey {
    fn as_key(&self) -> ((bool, u64, DateTime<Utc>), &Path) {
        (self.made, &self.path)
    }
}

fn cursor_key(root: &Path, cursor: &str) -> Option<CursorKey> {
    let mut parts = cursor.split('/');
    let (stream, day, file) = (parts.next()?, parts.next()?, parts.next()?);
    let name = paths::parse_name(file)?;
    if parts.next().is_some() || name.stream != stream || !paths::is_day_dir_name(day) {
        return None;
    }
    let made = match name.order {
        Some(o) => (true, o.seq, name.start),
        None => (false, 0, name.start),
    };
    Some(CursorKey {
        made,
        path: root.join(stream).join(day).join(file),
    })
}

/// Durations read so far, by path, with the size they were read at.
static DURATIONS: Mutex<Option<HashMap<PathBuf, (u64, Duration)>>> = Mutex::new(None);

fn cached_duration(r: &RecordingEntry) -> Option<Duration> {
    {
        let cache = DURATIONS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((bytes, d)) = cache.as_ref().and_then(|c| c.get(&r.path)) {
            if *bytes == r.bytes {
                return Some(*d);
            }
        }
    }
    let d = read_duration(&r.path)?;
    DURATIONS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(r.path.clone(), (r.bytes, d));
    Some(d)
}

/// Drops cached durations of files no longer on disk (deleted by
/// retention), so the cache stays as big as the recordings.
fn forget_missing(files: &[RecordingEntry]) {
    let mut cache = DURATIONS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = cache.as_mut() {
        if c.len() > files.len() {
            let present: std::collections::HashSet<&Path> =
                files.iter().map(|f| f.path.as_path()).collect();
            c.retain(|p, _| present.contains(p.as_path()));
        }
    }
}

/// Bytes of every closed recording under `root`.
pub fn total_bytes(root: &Path) -> u64 {
    retention::list(root).iter().map(|r| r.bytes).sum()
}

fn read_duration(path: &Path) -> Option<std::time::Duration> {
    use std::io::Read;
    // ftyp + moov + padding: under 2 KiB for our files.
    let mut prefix = Vec::with_capacity(4 << 10);
    std::fs::File::open(path)
        .ok()?
        .take(4 << 10)
        .read_to_end(&mut prefix)
        .ok()?;
    crate::fmp4::declared_duration(&prefix)
}
