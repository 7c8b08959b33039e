//! One recording file on disk, written in fragment-sized writes, synced
//! in the order docs/recording.md sets out:
//!
//! 1. create the day directory if needed, then sync its parent;
//! 2. create `<name>.mp4.partial`, write the header, sync the file, sync
//!    the day directory (the new entry survives a power cut);
//! 3. per fragment: one write, then (fsync = "fragment") fdatasync;
//! 4. close: rewrite the header in place with the duration, sync the
//!    file, rename to `<name>.mp4`, sync the day directory.
//!
//! With fsync = "segment" only step 4 syncs; with "never", nothing does.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::paths::{self, Order};
use crate::config::FsyncPolicy;
use crate::fmp4;

/// Attempts at creating the day directory and the file in it: retention
/// (on another thread) removes an empty day directory, possibly between
/// the two steps; then both are done again.
const CREATE_ATTEMPTS: usize = 5;

/// Write calls, syncs and bytes, for the status and the benchmark.
#[derive(Clone, Copy, Debug, Default)]
pub struct IoCounters {
    pub writes: u64,
    pub fsyncs: u64,
    pub bytes: u64,
}

pub struct RecordingFile {
    file: File,
    dir: PathBuf,
    partial: PathBuf,
    path: PathBuf,
    /// The URL path under /recordings/.
    pub relative: String,
    header: Bytes,
    /// Bytes of complete fragments written: the length to cut back to if a
    /// write fails half-way.
    len: u64,
    policy: FsyncPolicy,
}

/// `e` with what was being done, same kind (ENOSPC stays ENOSPC).
fn context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn sync_dir(dir: &Path, io: &mut IoCounters) -> io::Result<()> {
    File::open(dir)?.sync_all()?;
    io.fsyncs += 1;
    Ok(())
}

fn create_dir(dir: &Path, policy: FsyncPolicy, io: &mut IoCounters) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir(parent, policy, io)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if policy != FsyncPolicy::Never {
        if let Some(parent) = dir.parent() {
            sync_dir(parent, io)?;
        }
    }
    Ok(())
}

impl RecordingFile {
    /// Creates the file of `stream` starting at `start` under `root` and
    /// writes `header`. A name already taken moves the time on by 1 ms.
    pub fn create(
        root: &Path,
        stream: &str,
        start: DateTime<Utc>,
        order: Option<Order>,
        header: Bytes,
        policy: FsyncPolicy,
        io: &mut IoCounters,
    ) -> io::Result<Self> {
        Self::create_with(root, stream, start, order, header, policy, io, &mut |_| {})
    }

    /// [`RecordingFile::create`], calling `between` after the day directory
    /// is there and before the file is created in it (tests remove it).
    #[allow(clippy::too_many_arguments)]
    fn create_with(
        root: &Path,
        stream: &str,
        mut start: DateTime<Utc>,
        order: Option<Order>,
        header: Bytes,
        policy: FsyncPolicy,
        io: &mut IoCounters,
        between: &mut dyn FnMut(&Path),
    ) -> io::Result<Self> {
        let mut attempts = 0;
        let (file, dir, path, relative, partial) = loop {
            let dir = root.join(stream).join(paths::day_dir_name(start));
            create_dir(&dir, policy, io)
                .map_err(|e| context(e, format!("cannot create {}", dir.display())))?;
            between(&dir);
            let name = paths::file_name(stream, start, order);
            let path = dir.join(&name);
            let partial = dir.join(format!("{name}{}", paths::PARTIAL_SUFFIX));
            if !path.exists() {
                match OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&partial)
                {
                    Ok(f) => {
                        let relative = paths::relative_path(stream, start, order);
                        break (f, dir, path, relative, partial);
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    // The day directory went (retention found it empty):
                    // make it again.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        attempts += 1;
                        if attempts >= CREATE_ATTEMPTS {
                            return Err(context(e, format!("cannot create {}", partial.display())));
                        }
                        continue;
                    }
                    Err(e) => {
                        return Err(context(e, format!("cannot create {}", partial.display())))
                    }
                }
            }
            start += chrono::Duration::milliseconds(1);
        };
        let mut this = Self {
            file,
            dir,
            partial,
            path,
            relative,
            header: header.clone(),
            len: 0,
            policy,
        };
        if let Err(e) = this.write_and_sync(&header, io) {
            // Nothing playable in it yet.
            let _ = std::fs::remove_file(&this.partial);
            return Err(e);
        }
        if policy == FsyncPolicy::Fragment {
            sync_dir(&this.dir, io)?;
        }
        Ok(this)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one fragment with a single write. On failure the file is cut
    /// back to its last complete fragment, so it stays playable.
    pub fn append(&mut self, fragment: &[u8], io: &mut IoCounters) -> io::Result<()> {
        self.write_and_sync(fragment, io)
    }

    fn write_and_sync(&mut self, data: &[u8], io: &mut IoCounters) -> io::Result<()> {
        io.writes += 1;
        let result = self.file.write_all(data).and_then(|()| {
            if self.policy == FsyncPolicy::Fragment {
                io.fsyncs += 1;
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => {
                self.len += data.len() as u64;
                io.bytes += data.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                let _ = std::io::Seek::seek(&mut self.file, io::SeekFrom::Start(self.len));
                Err(e)
            }
        }
    }

    /// Declares `duration`, syncs and renames the file to its final name.
    /// Needs no free space: the header is rewritten in place.
    pub fn close(self, duration: Duration, io: &mut IoCounters) -> io::Result<PathBuf> {
        let header = fmp4::with_duration(&self.header, duration)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.file.write_all_at(&header, 0)?;
        io.writes += 1;
        if self.policy != FsyncPolicy::Never {
            self.file.sync_all()?;
            io.fsyncs += 1;
        }
        std::fs::rename(&self.partial, &self.path)?;
        if self.policy != FsyncPolicy::Never {
            sync_dir(&self.dir, io)?;
        }
        Ok(self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_taken_name_moves_on_by_a_millisecond_and_close_renames() {
        let dir = tempfile::tempdir().unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let mut io = IoCounters::default();
        let header = Bytes::from_static(b"\0\0\0\x10ftypiso6\0\0\0\0");
        let a = RecordingFile::create(
            dir.path(),
            "cam",
            t,
            None,
            header.clone(),
            FsyncPolicy::Fragment,
            &mut io,
        )
        .unwrap();
        let b = RecordingFile::create(
            dir.path(),
            "cam",
            t,
            None,
            header,
            FsyncPolicy::Fragment,
            &mut io,
        )
        .unwrap();
        assert_eq!(a.relative, "cam/2026-01-02/cam_20260102T030405.000Z.mp4");
        assert_eq!(b.relative, "cam/2026-01-02/cam_20260102T030405.001Z.mp4");
        assert!(dir
            .path()
            .join("cam/2026-01-02/cam_20260102T030405.000Z.mp4.partial")
            .exists());
        assert_eq!(a.len, 16);
        assert!(io.fsyncs >= 4, "{io:?}");
        assert_eq!(io.writes, 2);
    }

    #[test]
    fn a_day_directory_removed_before_the_file_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let order = Some(Order {
            seq: 3,
            trusted: true,
        });
        let mut io = IoCounters::default();
        let mut removed = 0;
        // Retention finds the new, empty day directory and removes it
        // between the recorder's two steps, twice.
        let f = RecordingFile::create_with(
            dir.path(),
            "cam",
            t,
            order,
            Bytes::from_static(b"\0\0\0\x10ftypiso6\0\0\0\0"),
            FsyncPolicy::Fragment,
            &mut io,
            &mut |day| {
                if removed < 2 {
                    std::fs::remove_dir(day).unwrap();
                    removed += 1;
                }
            },
        )
        .expect("the file is made despite retention");
        assert_eq!(
            f.relative,
            "cam/2026-01-02/cam_20260102T030405.000Z_s0000000003.mp4"
        );
        assert!(dir.path().join(format!("{}.partial", f.relative)).exists());
    }
}
