//! The file names a muxer serves under `/<stream>/`, and their parsing.
//! Names carry the media sequence number (and part index), so any request
//! maps straight to the window.

pub const PLAYLIST: &str = "index.m3u8";
/// The multivariant playlist: one variant, [`PLAYLIST`], with its codecs.
pub const MULTIVARIANT: &str = "main.m3u8";

#[derive(Debug, PartialEq, Eq)]
pub enum Resource {
    Playlist,
    Multivariant,
    /// An init segment, by id (the MSN of the first segment that uses it):
    /// a source restart brings a new one under a new name.
    Init(u64),
    Segment(u64),
    Part(u64, usize),
}

pub fn init(id: u64) -> String {
    format!("init{id}.mp4")
}

pub fn segment(msn: u64) -> String {
    format!("seg{msn}.m4s")
}

pub fn part(msn: u64, part: usize) -> String {
    format!("part{msn}.{part}.m4s")
}

/// The resource `name` asks for; `None` for anything we never serve.
pub fn parse(name: &str) -> Option<Resource> {
    if name == PLAYLIST {
        return Some(Resource::Playlist);
    }
    if name == MULTIVARIANT {
        return Some(Resource::Multivariant);
    }
    if let Some(id) = name
        .strip_prefix("init")
        .and_then(|n| n.strip_suffix(".mp4"))
    {
        return Some(Resource::Init(number(id)?));
    }
    let stem = name.strip_suffix(".m4s")?;
    if let Some(n) = stem.strip_prefix("seg") {
        return Some(Resource::Segment(number(n)?));
    }
    let (msn, part) = stem.strip_prefix("part")?.split_once('.')?;
    Some(Resource::Part(number(msn)?, number(part)? as usize))
}

/// Plain decimal digits only: no sign, no spaces, and it must fit.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(parse(&segment(42)), Some(Resource::Segment(42)));
        assert_eq!(parse(&part(42, 3)), Some(Resource::Part(42, 3)));
        assert_eq!(parse("index.m3u8"), Some(Resource::Playlist));
        assert_eq!(parse(&init(7)), Some(Resource::Init(7)));
        assert_eq!(parse("init.mp4"), None);
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "seg.m4s",
            "seg-1.m4s",
            "seg+1.m4s",
            "seg1.mp4",
            "part1.m4s",
            "part1.x.m4s",
            "part1.2.3.m4s",
            "seg99999999999999999999.m4s",
            "../etc/passwd",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
