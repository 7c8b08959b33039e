//! Finding recordings: the closed files of a stream (or all) that overlap
//! a time range, with their declared duration. Shared by the HTTP API and
//! MQTT; blocking (it reads every file's header), so async callers run it
//! on a blocking thread.

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::retention;

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
    retention::list(root)
        .into_iter()
        .filter(|r| stream.is_none_or(|s| s == r.stream))
        .filter(|r| to.is_none_or(|to| r.start <= to))
        .filter_map(|r| {
            let duration = read_duration(&r.path)?;
            let end = r.start + chrono::Duration::from_std(duration).ok()?;
            if from.is_some_and(|from| end <= from) {
                return None;
            }
            Some(Recording {
                path: format!("/recordings/{}", r.relative),
                start: r.start.to_rfc3339_opts(SecondsFormat::Millis, true),
                duration: duration.as_secs_f64(),
                bytes: r.bytes,
                stream: r.stream,
            })
        })
        .collect()
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
