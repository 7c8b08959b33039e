//! Where recordings live and what they are called:
//! `<data_dir>/recordings/<stream>/<YYYY-MM-DD>/<stream>_<YYYYMMDDTHHMMSS.mmmZ>.mp4`,
//! named by the UTC time of the first frame. A file being written carries
//! the extra suffix `.partial` until it is closed.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

pub const PARTIAL_SUFFIX: &str = ".partial";
const TIME_FORMAT: &str = "%Y%m%dT%H%M%S%.3fZ";
const DAY_FORMAT: &str = "%Y-%m-%d";

pub fn recordings_root(data_dir: &Path) -> PathBuf {
    data_dir.join("recordings")
}

pub fn day_dir_name(start: DateTime<Utc>) -> String {
    start.format(DAY_FORMAT).to_string()
}

pub fn file_name(stream: &str, start: DateTime<Utc>) -> String {
    format!("{stream}_{}.mp4", start.format(TIME_FORMAT))
}

/// `<stream>/<day>/<file>` under the recordings root, with `/` separators:
/// the same string is the URL path under `/recordings/`.
pub fn relative_path(stream: &str, start: DateTime<Utc>) -> String {
    format!(
        "{stream}/{}/{}",
        day_dir_name(start),
        file_name(stream, start)
    )
}

/// The stream and start time a file name encodes; `None` for any name
/// this module did not make.
pub fn parse_file_name(name: &str) -> Option<(&str, DateTime<Utc>)> {
    let base = name.strip_suffix(".mp4")?;
    // The time part has a fixed length: 8 digits T 6 digits . 3 digits Z.
    let split = base.len().checked_sub(20)?;
    let (stream, time) = (base.get(..split)?, base.get(split..)?);
    let stream = stream.strip_suffix('_')?;
    if !crate::config::is_name(stream) || !time.is_ascii() {
        return None;
    }
    let t = NaiveDateTime::parse_from_str(time, TIME_FORMAT).ok()?;
    // Only the canonical spelling, so that one time has one name.
    (file_name(stream, t.and_utc()) == name).then(|| (stream, t.and_utc()))
}

pub fn is_day_dir_name(name: &str) -> bool {
    name.len() == 10
        && NaiveDate::parse_from_str(name, DAY_FORMAT)
            .is_ok_and(|d| d.format(DAY_FORMAT).to_string() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_round_trip() {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 23, 47, 5).unwrap()
            + chrono::Duration::milliseconds(123);
        assert_eq!(file_name("cam", t), "cam_20261123T234705.123Z.mp4");
        assert_eq!(
            relative_path("cam", t),
            "cam/2026-11-23/cam_20261123T234705.123Z.mp4"
        );
        assert_eq!(
            parse_file_name("cam_20261123T234705.123Z.mp4"),
            Some(("cam", t))
        );
        assert_eq!(
            parse_file_name("my_cam_20261123T234705.123Z.mp4").map(|p| p.0),
            Some("my_cam")
        );
        for bad in [
            "cam_20261123T234705.123Z.mp4.partial",
            "cam_20261123T234705Z.mp4",
            "../x_20261123T234705.123Z.mp4",
            "cam_20261399T234705.123Z.mp4",
            "_20261123T234705.123Z.mp4",
            "cam_2026112éT234705.123Z.mp4",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
        assert!(is_day_dir_name("2026-11-23"));
        assert!(!is_day_dir_name("2026-1-23"));
        assert!(!is_day_dir_name(".."));
    }
}
