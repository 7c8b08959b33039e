//! Watching what a client receives while the agent changes under it: a
//! raw RTSP/TCP reader on a thread of its own that counts the video RTP
//! packets, sequence gaps, timestamps that go back and frames, and notices
//! when the server closes the connection; and ffprobe of a URL.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;

use crate::rtsp_client::RawRtsp;
use crate::run_with_timeout;

#[derive(Clone, Debug, Default)]
pub struct RtpStats {
    /// Video RTP packets (channel 0).
    pub packets: u64,
    /// Distinct video timestamps: frames.
    pub frames: u64,
    /// Packets whose sequence number was not the last one plus one.
    pub seq_gaps: u64,
    /// Frames whose timestamp was before the previous frame's.
    pub ts_back: u64,
    /// The server closed the connection (or it failed).
    pub ended: bool,
    pub last_packet: Option<Instant>,
}

pub struct RtpWatch {
    stats: Arc<Mutex<RtpStats>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RtpWatch {
    /// PLAYs `url` over interleaved TCP and reads until stopped or closed.
    pub fn start(port: u16, url: &str) -> Result<RtpWatch> {
        let mut rtsp = RawRtsp::connect(port)?;
        rtsp.play_interleaved(url)?;
        rtsp.set_read_timeout(Duration::from_millis(500))?;
        let stats = Arc::new(Mutex::new(RtpStats::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stats, stop) = (stats.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last: Option<(u16, u32)> = None;
                while !stop.load(Ordering::Relaxed) {
                    match rtsp.read_interleaved() {
                        Ok(Some((0, p))) if p.len() >= 12 => {
                            let seq = u16::from_be_bytes([p[2], p[3]]);
                            let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                            let mut s = stats.lock().unwrap();
                            s.packets += 1;
                            s.last_packet = Some(Instant::now());
                            match last {
                                None => s.frames += 1,
                                Some((lseq, lts)) => {
                                    if seq != lseq.wrapping_add(1) {
                                        s.seq_gaps += 1;
                                    }
                                    if ts != lts {
                                        s.frames += 1;
                                        if ts.wrapping_sub(lts) >= 1 << 31 {
                                            s.ts_back += 1;
                                        }
                                    }
                                }
                            }
                            last = Some((seq, ts));
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            stats.lock().unwrap().ended = true;
                            return;
                        }
                        Err(e) => {
                            let timed_out = e.downcast_ref::<std::io::Error>().is_some_and(|e| {
                                matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                )
                            });
                            if !timed_out {
                                stats.lock().unwrap().ended = true;
                                return;
                            }
                        }
                    }
                }
            })
        };
        Ok(RtpWatch {
            stats,
            stop,
            thread: Some(thread),
        })
    }

    pub fn stats(&self) -> RtpStats {
        self.stats.lock().unwrap().clone()
    }

    /// Waits until `cond` holds for the stats; false after `timeout`.
    pub fn wait_for(&self, timeout: Duration, cond: impl Fn(&RtpStats) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if cond(&self.stats()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for RtpWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// ffprobe's `-show_streams` of `input` (with `args` before it), or the
/// error it printed.
pub fn ffprobe(args: &[&str], input: &str) -> Result<Value, String> {
    let (ok, out, err) = run_with_timeout(
        Command::new("ffprobe")
            .args(["-v", "error"])
            .args(args)
            .args(["-show_streams", "-of", "json", input]),
        Duration::from_secs(30),
    );
    if !ok {
        return Err(err);
    }
    serde_json::from_str(&out).map_err(|e| format!("ffprobe json: {e}: {out}"))
}

/// ffmpeg decoding the first `frames` video frames of the RTSP stream
/// `url` (over TCP, stopping at the first decoding error) into `output`
/// (its format options and file): whether it succeeded, its stdout and
/// stderr.
pub fn ffmpeg_decode(url: &str, frames: usize, output: &[&str]) -> (bool, String, String) {
    run_with_timeout(
        Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-xerror",
                "-rtsp_transport",
                "tcp",
                "-i",
                url,
            ])
            .args(["-frames:v", &frames.to_string()])
            .args(output),
        Duration::from_secs(30),
    )
}

/// The first stream of `kind` (`video`, `audio`) in ffprobe's output.
pub fn probed_stream<'a>(probed: &'a Value, kind: &str) -> Option<&'a Value> {
    probed["streams"]
        .as_array()?
        .iter()
        .find(|s| s["codec_type"] == kind)
}

/// Where video and audio begin and end on the timeline of `input` as
/// ffprobe reads its packets (with `args` before the input, such as
/// `-read_intervals %+4`): (audio start - video start, audio end - video
/// end) in seconds. A source whose tracks are captured together (the test
/// source stamps both from one clock) must keep both near 0: an output
/// that shifts or stretches one track moves them.
pub fn av_offsets(args: &[&str], input: &str) -> Result<(f64, f64), String> {
    let (ok, out, err) = run_with_timeout(
        Command::new("ffprobe")
            .args(["-v", "error"])
            .args(args)
            .args([
                "-show_entries",
                "packet=codec_type,pts_time,duration_time",
                "-of",
                "csv=p=0",
                input,
            ]),
        Duration::from_secs(60),
    );
    if !ok {
        return Err(err);
    }
    let mut spans = [(f64::INFINITY, f64::NEG_INFINITY); 2];
    for line in out.lines() {
        let mut f = line.split(',');
        let kind = match f.next() {
            Some("video") => 0,
            Some("audio") => 1,
            _ => continue,
        };
        let Some(pts) = f.next().and_then(|t| t.parse::<f64>().ok()) else {
            continue;
        };
        let duration = f.next().and_then(|d| d.parse::<f64>().ok()).unwrap_or(0.0);
        let span = &mut spans[kind];
        span.0 = span.0.min(pts);
        span.1 = span.1.max(pts + duration);
    }
    let [video, audio] = spans;
    if !video.0.is_finite() || !audio.0.is_finite() {
        return Err(format!("not both tracks in {input}: {out}"));
    }
    Ok((audio.0 - video.0, audio.1 - video.1))
}
