//! Helpers shared by the recording tests: a raw HTTP/1.1 client (so that
//! paths reach the agent exactly as written), ffprobe/ffmpeg checks, and
//! the recordings on disk.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use streamswitch_tests::run_with_timeout;

/// A 320x240 test stream with recording on.
pub fn recorded_stream(name: &str, segment_seconds: u32, extra: &str) -> String {
    format!(
        "[[stream]]\nname = \"{name}\"\nsource = {{ kind = \"test\", width = 320, height = 240, fps = 25, bitrate_kbps = 400, audio = true, keyframe_seconds = 1.0 }}\nrecord = {{ enabled = true, segment_seconds = {segment_seconds}, fragment_ms = 500 }}\n{extra}"
    )
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One request, `Connection: close`, the path sent byte for byte.
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
}

/// ffmpeg's complaints while decoding the whole file (empty: clean).
pub fn decode_errors(path: &Path) -> String {
    let (ok, _, err) = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-v", "error", "-xerror", "-i"])
            .arg(path)
            .args(["-f", "null", "-"]),
        Duration::from_secs(60),
    );
    if ok {
        err
    } else {
        format!("ffmpeg failed: {err}")
    }
}

/// ffprobe's CSV output for `args` (such as `-show_entries ...`) on
/// `path`; panics with ffprobe's error if it fails.
pub fn ffprobe_csv(path: &Path, args: &[&str]) -> String {
    let (ok, out, err) = run_with_timeout(
        Command::new("ffprobe")
            .args(["-v", "error"])
            .args(args)
            .args(["-of", "csv=p=0"])
            .arg(path),
        Duration::from_secs(30),
    );
    assert!(ok, "ffprobe {}: {err}", path.display());
    out
}

/// ffprobe's format duration, seconds.
pub fn probe_duration(path: &Path) -> f64 {
    let out = ffprobe_csv(path, &["-show_entries", "format=duration"]);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe duration of {}: {out:?}", path.display()))
}

/// Closed recordings under the data dir, by name (= by start time).
pub fn closed_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(&data_dir.join("recordings"), &mut out);
    out.retain(|p| p.extension().is_some_and(|e| e == "mp4"));
    out.sort_by_key(|p| p.file_name().map(|n| n.to_owned()));
    out
}

pub fn partial_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(&data_dir.join("recordings"), &mut out);
    out.retain(|p| p.to_string_lossy().ends_with(".partial"));
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Polls `f` until it gives `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The recorder status of `stream` from the HTTP API.
pub fn status(port: u16, stream: &str) -> serde_json::Value {
    let all = http(port, "GET", "/api/recordings/status", &[]).json();
    all.as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == stream)
        .cloned()
        .unwrap_or_else(|| panic!("no status for {stream}: {all}"))
}

/// The duration a file's header declares (moov/mvhd), read with a few
/// lines of box walking independent of the agent's code.
pub fn declared_duration(path: &Path) -> f64 {
    let data = std::fs::read(path).unwrap();
    let be32 = |b: &[u8]| u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
    let mut pos = 0;
    while pos + 8 <= data.len() {
        let size = be32(&data[pos..]);
        if &data[pos + 4..pos + 8] == b"moov" {
            // The first child is mvhd.
            let m = pos + 8;
            assert_eq!(&data[m + 4..m + 8], b"mvhd");
            let version = data[m + 8];
            let (timescale, duration) = if version == 1 {
                let ts = be32(&data[m + 28..]) as f64;
                let d = u64::from_be_bytes(data[m + 32..m + 40].try_into().unwrap()) as f64;
                (ts, d)
            } else {
                (be32(&data[m + 20..]) as f64, be32(&data[m + 24..]) as f64)
            };
            return duration / timescale;
        }
        assert!(size >= 8, "bad box in {}", path.display());
        pos += size;
    }
    panic!("no moov in {}", path.display());
}

/// First packet start to last packet end over all tracks, seconds, as
/// ffprobe reads the packets.
pub fn media_span(path: &Path) -> f64 {
    let out = ffprobe_csv(path, &["-show_entries", "packet=pts_time,duration_time"]);
    let (mut start, mut end) = (f64::INFINITY, 0f64);
    for l in out.lines() {
        let Some((p, d)) = l.split_once(',') else {
            continue;
        };
        let Ok(p) = p.parse::<f64>() else { continue };
        // ffprobe shows N/A for some packets' durations.
        let d = d.parse::<f64>().unwrap_or(0.0);
        start = start.min(p);
        end = end.max(p + d);
    }
    end - start
}

/// A tmpfs of `size` (like "4m") mounted on `dir`, unmounted on drop.
/// The small-filesystem checks need it: when this user may not mount, the
/// test fails, unless `STREAMSWITCH_TESTS_NO_TMPFS=1` says the developer
/// knowingly runs without them (CI runs as root and never sets it); then
/// `None`, and the caller returns early.
pub struct Tmpfs {
    pub dir: PathBuf,
}

/// The opt-out of the tmpfs checks (never set in CI).
pub const NO_TMPFS: &str = "STREAMSWITCH_TESTS_NO_TMPFS";

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        let why = match out {
            Ok(o) if o.status.success() => {
                return Some(Tmpfs {
                    dir: dir.to_owned(),
                })
            }
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
            Err(e) => format!("cannot run mount: {e}"),
        };
        if std::env::var(NO_TMPFS).is_ok_and(|v| v == "1") {
            eprintln!("\n*** {NO_TMPFS}=1: the small-filesystem check did not run ({why}) ***\n");
            return None;
        }
        panic!(
            "cannot mount a tmpfs ({why}): run the tests as root, or set {NO_TMPFS}=1 to leave the small-filesystem checks out knowingly"
        );
    }

    /// Free space in percent of the filesystem.
    pub fn free_percent(&self) -> f64 {
        let out = Command::new("df")
            .args(["--output=size,avail", "-B1"])
            .arg(&self.dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().nth(1).unwrap();
        let v: Vec<f64> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        v[1] * 100.0 / v[0]
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// The `YYYYMMDDTHHMMSS.mmmZ` part of a recording's name, with or without
/// the `_s0000000012` order part that follows it.
pub fn name_time(name: &str) -> &str {
    let base = name.strip_suffix(".mp4").expect("a .mp4 name");
    let base = match base.rsplit_once('_') {
        Some((rest, order))
            if order.len() == 11
                && (order.starts_with('s') || order.starts_with('u'))
                && order[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            rest
        }
        _ => base,
    };
    &base[base.len() - 20..]
}

/// A recording file name for `secs_ago` seconds before now.
pub fn name_for_seconds_ago(stream: &str, secs_ago: u64) -> (String, String) {
    let t = std::time::SystemTime::now() - Duration::from_secs(secs_ago);
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%d %Y%m%dT%H%M%S"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (day, stamp) = text.trim().split_once(' ').unwrap();
    (day.to_owned(), format!("{stream}_{stamp}.000Z.mp4"))
}

/// Milliseconds since the epoch that a recording name encodes.
pub fn name_time_ms(name: &str) -> i64 {
    let t = &name_time(name)[..19]; // YYYYMMDDTHHMMSS.mmm
    let secs_of_day = |s: &str| -> i64 { s.parse().unwrap() };
    let (y, mo, d) = (
        secs_of_day(&t[0..4]),
        secs_of_day(&t[4..6]),
        secs_of_day(&t[6..8]),
    );
    let (h, mi, s, ms) = (
        secs_of_day(&t[9..11]),
        secs_of_day(&t[11..13]),
        secs_of_day(&t[13..15]),
        secs_of_day(&t[16..19]),
    );
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (mo + if mo > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + h) * 60 + mi) * 60_000 + s * 1000 + ms
}
