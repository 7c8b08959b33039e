//! One agent per data dir: two agents on one `data_dir` would repair
//! (rename) each other's open `.partial` recordings at start-up and race
//! each other's retention. The first holds an exclusive `flock` on
//! `<data_dir>/.lock` for its life; a second one gets a clear error and
//! exits before it touches anything. The lock goes with the process (and
//! with an exec restart: the descriptor is close-on-exec).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{bail, Context, Result};

pub const LOCK_FILE: &str = ".lock";

/// Holds the data dir's lock until dropped.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Takes the lock of `data_dir` (created if missing), or says who has it.
pub fn lock_data_dir(data_dir: &Path) -> Result<DataDirLock> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    let path = data_dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            bail!(
                "another agent (pid {}) is using the data dir {}: one agent per data_dir",
                if holder.is_empty() { "unknown" } else { holder },
                data_dir.display()
            );
        }
        return Err(e).with_context(|| format!("cannot lock {}", path.display()));
    }
    // Who holds it, for the next one's message; the lock is the flock.
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok(DataDirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_data_dir(dir.path()).unwrap();
        let err = lock_data_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("another agent"), "{err}");
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        lock_data_dir(dir.path()).unwrap();
    }
}
