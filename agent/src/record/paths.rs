//! Where recordings live and what they are called:
//! `<data_dir>/recordings/<stream>/<YYYY-MM-DD>/<stream>_<YYYYMMDDTHHMMSS.mmmZ>_<s|u><seq>.mp4`,
//! named by the UTC time of the first frame, then the file's place in the
//! order recordings were made ([`Order`]: a sequence number that never goes
//! back, `s` when the clock was trusted when it opened, `u` when not).
//! Names without the order part are those of earlier versions. A file
//! being written carries the extra suffix `.partial` until it is closed.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

pub const PARTIAL_SUFFIX: &str = ".partial";
/// Digits of the sequence number in a name.
const SEQ_DIGITS: usize = 10;
const TIME_FORMAT: &str = "%Y%m%dT%H%M%S%.3fZ";
const DAY_FORMAT: &str = "%Y-%m-%d";

pub fn recordings_root(data_dir: &Path) -> PathBuf {
    data_dir.join("recordings")
}

pub fn day_dir_name(start: DateTime<Utc>) -> String {
    start.format(DAY_FORMAT).to_string()
}

/// Where a file stands among all recordings of this data dir, whatever the
/// wall-clock time in its name says: retention orders and ages by this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Order {
    /// One more than any recording on disk when the file opened.
    pub seq: u64,
    /// The wall clock was trusted when the file opened, so the name's
    /// time means something (see `clock::trusted`).
    pub trusted: bool,
}

/// What a file name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Name<'a> {
    pub stream: &'a str,
    pub start: DateTime<Utc>,
    /// `None` for names of earlier versions.
    pub order: Option<Order>,
}

pub fn file_name(stream: &str, start: DateTime<Utc>, order: Option<Order>) -> String {
    match order {
        Some(o) => format!(
            "{stream}_{}_{}{:0width$}.mp4",
            start.format(TIME_FORMAT),
            if o.trusted { 's' } else { 'u' },
            o.seq,
            width = SEQ_DIGITS
        ),
        None => format!("{stream}_{}.mp4", start.format(TIME_FORMAT)),
    }
}

/// `<stream>/<day>/<file>` under the recordings root, with `/` separators:
/// the same string is the URL path under `/recordings/`.
pub fn relative_path(stream: &str, start: DateTime<Utc>, order: Option<Order>) -> String {
    format!(
        "{stream}/{}/{}",
        day_dir_name(start),
        file_name(stream, start, order)
    )
}

/// The stream and start time a file name encodes; `None` for any name
/// this module did not make.
pub fn parse_file_name(name: &str) -> Option<(&str, DateTime<Utc>)> {
    parse_name(name).map(|n| (n.stream, n.start))
}

/// Everything a file name encodes; `None` for any name this module did
/// not make.
pub fn parse_name(name: &str) -> Option<Name<'_>> {
    let mut base = name.strip_suffix(".mp4")?;
    let mut order = None;
    // `_s0000000012`: the time part always ends in `Z`, so this suffix
    // cannot be mistaken for the end of an old-style name.
    if let Some(split) = base.len().checked_sub(SEQ_DIGITS + 2) {
        let tail = base.as_bytes().get(split..).unwrap_or_default();
        if tail.len() == SEQ_DIGITS + 2
            && tail[0] == b'_'
            && matches!(tail[1], b's' | b'u')
            && tail[2..].iter().all(u8::is_ascii_digit)
        {
            let seq = base.get(split + 2..)?.parse().ok()?;
            order = Some(Order {
                seq,
                trusted: tail[1] == b's',
            });
            base = base.get(..split)?;
        }
    }
    // The time part has a fixed length: 8 digits T 6 digits . 3 digits Z.
    let split = base.len().checked_sub(20)?;
    let (stream, time) = (base.get(..split)?, base.get(split..)?);
    let stream = stream.strip_suffix('_')?;
    if !crate::config::is_name(stream) || !time.is_ascii() {
        return None;
    }
    let t = NaiveDateTime::parse_from_str(time, TIME_FORMAT).ok()?;
    // Only the canonical spelling, so that one time has one name.
    (file_name(stream, t.and_utc(), order) == name).then(|| Name {
        stream,
        start: t.and_utc(),
        order,
    })
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
        assert_eq!(file_name("cam", t, None), "cam_20261123T234705.123Z.mp4");
        assert_eq!(
            relative_path("cam", t, None),
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
        let order = Order {
            seq: 42,
            trusted: false,
        };
        let name = file_name("cam_s", t, Some(order));
        assert_eq!(name, "cam_s_20261123T234705.123Z_u0000000042.mp4");
        assert_eq!(
            parse_name(&name),
            Some(Name {
                stream: "cam_s",
                start: t,
                order: Some(order)
            })
        );
        for bad in [
            "cam_20261123T234705.123Z_u42.mp4",
            "cam_20261123T234705.123Z_x0000000042.mp4",
            "cam_20261123T234705.123Z_s00000000420.mp4",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
        assert!(is_day_dir_name("2026-11-23"));
        assert!(!is_day_dir_name("2026-1-23"));
        assert!(!is_day_dir_name(".."));
    }
}
