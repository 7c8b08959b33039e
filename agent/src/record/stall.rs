//! Test seam: a disk stall on demand. When `STREAMSWITCH_TEST_WRITE_STALL_FILE`
//! names a file and that file exists, the next fragment write first sleeps
//! for the milliseconds written in it, and the file is removed (one stall
//! per file written). Without the variable this costs one check of an
//! environment variable read once.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

pub const TEST_STALL_ENV: &str = "STREAMSWITCH_TEST_WRITE_STALL_FILE";

fn path() -> Option<&'static PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        let p = std::env::var_os(TEST_STALL_ENV).map(PathBuf::from);
        if let Some(p) = &p {
            tracing::warn!("recording write stalls read from {p:?} (test seam)");
        }
        p
    })
    .as_ref()
}

/// Sleeps (on the recorder's thread) when a stall was asked for.
pub fn before_write() {
    let Some(path) = path() else { return };
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let _ = std::fs::remove_file(path);
    if let Ok(ms) = text.trim().parse::<u64>() {
        tracing::warn!("recording write stalled for {ms} ms (test seam)");
        std::thread::sleep(Duration::from_millis(ms));
    }
}
