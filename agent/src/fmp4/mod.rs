//! Fragmented MP4 (ISO/IEC 14496-12, AVC in MP4 per 14496-15): the one
//! writer the recorder and HLS share, and the reading the recorder needs
//! to repair a file after a crash. Pure: bytes in, bytes out, no I/O.
//!
//! - [`init_segment`]: ftyp + moov (with mvex), one trak per stream track,
//!   track id = track index + 1, timescale = the track's clock rate.
//! - [`FragmentBuilder`]: frames in, moof + mdat fragments out.
//! - [`scan`]: walks a file's top-level boxes and finds where its last
//!   complete fragment ends and how long it is.

mod fragment;
mod init;
mod scan;
#[cfg(test)]
mod tests;

pub use fragment::{Fragment, FragmentBuilder, Timeline};
pub use init::{init_segment, padded_init_segment};
pub use scan::{
    declared_duration, fragments_without_header, scan, with_duration, Scan, ScannedFragment,
};

/// Timescale of the movie header (mvhd, mehd, tkhd): milliseconds.
pub const MOVIE_TIMESCALE: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the stream has no tracks")]
    NoTracks,
    #[error("frame for track {track}, but the stream has {tracks} tracks")]
    NoSuchTrack { track: usize, tracks: usize },
    #[error("the header needs {needed} bytes, more than the {room} reserved")]
    NoRoom { needed: usize, room: usize },
    #[error("fragment too large for 32-bit offsets")]
    TooLarge,
    #[error("mp4: {0}")]
    Mp4(#[from] mp4_atom::Error),
    #[error("{what} at byte {offset}: {detail}")]
    Malformed {
        what: &'static str,
        offset: u64,
        detail: String,
    },
    #[error("reading: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
