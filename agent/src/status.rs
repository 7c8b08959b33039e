//! What the agent process costs and how full its disk is: uptime, CPU time
//! and resident memory from `/proc/self`, and the data disk from statvfs.
//! The `/proc` parsers are pure (text in, numbers out); the readers around
//! them do the system calls and block, so async callers run them on a
//! blocking thread.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The agent process, as the kernel accounts it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ProcessStats {
    /// Seconds since the process started.
    pub uptime_s: f64,
    /// User + system CPU time of all threads, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory (VmRSS).
    pub rss_bytes: u64,
}

/// The filesystem that holds a directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    /// The directory measured: the data dir, or its nearest existing parent
    /// while the data dir does not exist yet.
    pub path: PathBuf,
    pub total_bytes: u64,
    /// Space an unprivileged writer may still use (ext4's reserved blocks
    /// are not counted).
    pub free_bytes: u64,
}

/// The fields of `/proc/<pid>/stat` this module needs, in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatTicks {
    pub utime: u64,
    pub stime: u64,
    /// Start time after boot.
    pub starttime: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses
/// and may itself hold spaces and parentheses, so fields are counted from
/// the last `)`.
pub fn parse_stat(text: &str) -> Option<StatTicks> {
    let after_comm = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is the first after the command name.
    let fields: Vec<&str> = after_comm.split_ascii_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(StatTicks {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
    })
}

/// A `kB` field of `/proc/<pid>/status` (such as `VmRSS`), in bytes.
pub fn parse_status_kb(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// The first number of `/proc/uptime`: seconds since boot.
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_ascii_whitespace().next()?.parse().ok()
}

/// Reads this process's figures from `/proc`.
pub fn process() -> io::Result<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let status = std::fs::read_to_string("/proc/self/status")?;
    let uptime = std::fs::read_to_string("/proc/uptime")?;
    let bad =
        |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("cannot parse {what}"));
    let ticks = parse_stat(&stat).ok_or_else(|| bad("/proc/self/stat"))?;
    let rss_bytes = parse_status_kb(&status, "VmRSS").ok_or_else(|| bad("VmRSS"))?;
    let boot_uptime = parse_uptime(&uptime).ok_or_else(|| bad("/proc/uptime"))?;
    // SAFETY: sysconf has no preconditions.
    let hz = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as f64,
        _ => 100.0,
    };
    Ok(ProcessStats {
        uptime_s: centiseconds(boot_uptime - ticks.starttime as f64 / hz).max(0.0),
        cpu_seconds: centiseconds((ticks.utime + ticks.stime) as f64 / hz),
        rss_bytes,
    })
}

/// Rounded to the clock tick's precision, so JSON shows 12.34, not 12.340000000000002.
fn centiseconds(seconds: f64) -> f64 {
    (seconds * 100.0).round() / 100.0
}

/// `dir`, or its nearest ancestor that exists.
pub fn nearest_existing(dir: &Path) -> Option<&Path> {
    dir.ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists())
        .or_else(|| dir.is_relative().then_some(Path::new(".")))
}

/// Size and free space of the filesystem holding `dir` (or, while `dir`
/// does not exist, its nearest existing parent).
pub fn disk(dir: &Path) -> io::Result<DiskUsage> {
    let path = nearest_existing(dir)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no existing parent directory"))?;
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: c_path is NUL-terminated and st is writable memory of the
    // right type; statvfs fills it on success.
    if unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so st is initialised.
    let st = unsafe { st.assume_init() };
    // The statvfs fields are 32-bit on 32-bit ARM, 64-bit here.
    #[allow(clippy::unnecessary_cast)]
    let (blocks, available, unit) = (st.f_blocks as u64, st.f_bavail as u64, st.f_frsize as u64);
    Ok(DiskUsage {
        path: path.to_path_buf(),
        total_bytes: blocks * unit,
        free_bytes: available * unit,
    })
}

/// Whether the kernel says the system clock is synchronised (NTP or PTP
/// keeps it: adjtimex's STA_UNSYNC is clear); `None` when it cannot say.
pub fn clock_synchronized() -> Option<bool> {
    // SAFETY: a zeroed timex with modes 0 only reads the clock's state.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return None;
    }
    Some(tx.status & libc::STA_UNSYNC == 0 && state != libc::TIME_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with spaces and a ')' must not shift the fields.
        let text = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    731 269 0 0 20 0 9 0 55501 123456789 2048 18446744073709551615";
        assert_eq!(
            parse_stat(text),
            Some(StatTicks {
                utime: 731,
                stime: 269,
                starttime: 55501
            })
        );
    }

    #[test]
    fn truncated_or_garbled_stat_is_refused() {
        assert_eq!(parse_stat("4242 (agent) S 1 2 3"), None);
        assert_eq!(parse_stat("no parenthesis here"), None);
        assert_eq!(
            parse_stat("1 (a) S 1 1 1 0 -1 0 0 0 0 0 x 2 0 0 20 0 1 0 5"),
            None
        );
    }

    #[test]
    fn status_kb_fields_are_read_in_bytes() {
        let text = "Name:\tstreamswitch\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t5\n";
        assert_eq!(parse_status_kb(text, "VmRSS"), Some(10240 * 1024));
        assert_eq!(parse_status_kb(text, "VmHWM"), Some(20480 * 1024));
        assert_eq!(parse_status_kb(text, "VmSwap"), None);
        assert_eq!(parse_status_kb(text, "Threads"), None);
    }

    #[test]
    fn uptime_is_the_first_number() {
        assert_eq!(parse_uptime("12345.67 54321.00\n"), Some(12345.67));
        assert_eq!(parse_uptime(""), None);
    }

    #[test]
    fn this_process_has_plausible_figures() {
        let p = process().unwrap();
        assert!(p.rss_bytes > 0);
        assert!(p.cpu_seconds >= 0.0);
        assert!(p.uptime_s >= 0.0 && p.uptime_s < 24.0 * 3600.0, "{p:?}");
    }

    #[test]
    fn a_missing_dir_is_measured_at_its_nearest_parent() {
        let tmp = std::env::temp_dir();
        let missing = tmp.join("streamswitch-no-such-dir/a/b");
        let usage = disk(&missing).unwrap();
        assert_eq!(usage.path, tmp);
        assert!(usage.total_bytes > 0);
        assert!(usage.free_bytes <= usage.total_bytes);
        assert_eq!(
            nearest_existing(Path::new("no-such-relative-dir")),
            Some(Path::new("."))
        );
    }
}
