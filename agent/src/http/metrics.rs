//! `/metrics`: Prometheus text exposition format 0.0.4. Per stream: frames,
//! bytes, frame rate, frames lost by slow readers, viewers per protocol,
//! recording bytes and errors; per process: CPU seconds, resident memory,
//! uptime.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::app::AppContext;
use crate::hub::Output;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn routes() -> Router<Arc<AppContext>> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(ctx): State<Arc<AppContext>>) -> impl IntoResponse {
    let mut m = Exposition::default();
    let hubs = ctx.streams.all();
    let stats: Vec<_> = hubs
        .iter()
        .map(|h| (h.name(), h.stats(), h.info()))
        .collect();

    m.family(
        "streamswitch_stream_up",
        "gauge",
        "1 while the stream's source produces.",
    );
    for (name, _, info) in &stats {
        m.sample(&[("stream", name)], u64::from(info.is_some()));
    }
    m.family(
        "streamswitch_stream_frames_total",
        "counter",
        "Frames published by the stream's source.",
    );
    for (name, s, _) in &stats {
        m.sample(&[("stream", name), ("kind", "video")], s.video_frames);
        m.sample(&[("stream", name), ("kind", "audio")], s.audio_frames);
    }
    m.family(
        "streamswitch_stream_bytes_total",
        "counter",
        "Media payload bytes published by the stream's source.",
    );
    for (name, s, _) in &stats {
        m.sample(&[("stream", name)], s.bytes);
    }
    m.family(
        "streamswitch_stream_fps",
        "gauge",
        "Video frames in the last full second of media time.",
    );
    for (name, s, _) in &stats {
        m.sample(&[("stream", name)], s.fps);
    }
    m.family(
        "streamswitch_stream_dropped_frames_total",
        "counter",
        "Frames that readers too slow to keep up skipped.",
    );
    for (name, s, _) in &stats {
        m.sample(&[("stream", name)], s.dropped);
    }
    m.family(
        "streamswitch_stream_viewers",
        "gauge",
        "Readers of the stream per output (an HLS muxer counts as one).",
    );
    for (name, s, _) in &stats {
        for o in Output::ALL {
            m.sample(
                &[("stream", name), ("protocol", o.as_str())],
                s.viewers[o as usize],
            );
        }
    }
    m.family(
        "streamswitch_hls_muxers",
        "gauge",
        "HLS muxers running (streams watched over HLS).",
    );
    m.sample(&[], ctx.hls.active() as u64);

    let recorders = ctx.recorders.statuses();
    m.family(
        "streamswitch_recording_active",
        "gauge",
        "1 while the stream's recorder has a file open.",
    );
    for r in &recorders {
        m.sample(&[("stream", &r.stream)], u64::from(r.recording));
    }
    m.family(
        "streamswitch_recording_bytes_total",
        "counter",
        "Bytes the stream's recorder wrote to disk.",
    );
    for r in &recorders {
        m.sample(&[("stream", &r.stream)], r.bytes_written);
    }
    m.family(
        "streamswitch_recording_errors_total",
        "counter",
        "Write, sync and file errors of the stream's recorder.",
    );
    for r in &recorders {
        m.sample(&[("stream", &r.stream)], r.errors);
    }
    m.family(
        "streamswitch_recording_fsyncs_total",
        "counter",
        "fsync calls of the stream's recorder.",
    );
    for r in &recorders {
        m.sample(&[("stream", &r.stream)], r.fsyncs);
    }

    let process = process::read();
    m.family(
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time of the agent, all threads.",
    );
    m.sample_f64(&[], process.cpu_seconds);
    m.family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident set size (VmRSS).",
    );
    m.sample(&[], process.rss_bytes);
    m.family(
        "streamswitch_uptime_seconds",
        "gauge",
        "Seconds since the agent process started.",
    );
    m.sample_f64(&[], process.uptime_seconds);

    ([(header::CONTENT_TYPE, CONTENT_TYPE)], m.text)
}

/// Builds the text format: a family's HELP and TYPE, then its samples.
#[derive(Default)]
struct Exposition {
    text: String,
    family: &'static str,
}

impl Exposition {
    fn family(&mut self, name: &'static str, kind: &str, help: &str) {
        self.family = name;
        // Writing to a String cannot fail.
        let _ = write!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<u64>) {
        let value = value.into();
        self.labels(labels);
        let _ = writeln!(self.text, " {value}");
    }

    fn sample_f64(&mut self, labels: &[(&str, &str)], value: f64) {
        self.labels(labels);
        let _ = writeln!(self.text, " {value}");
    }

    fn labels(&mut self, labels: &[(&str, &str)]) {
        self.text.push_str(self.family);
        if labels.is_empty() {
            return;
        }
        self.text.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            let _ = write!(self.text, "{k}=\"{}\"", escape(v));
        }
        self.text.push('}');
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The agent's own CPU, memory and age, from /proc/self.
mod process {
    #[derive(Default)]
    pub struct Process {
        pub cpu_seconds: f64,
        pub rss_bytes: u64,
        pub uptime_seconds: f64,
    }

    /// Zeros for what /proc does not tell (another OS, a restricted /proc).
    pub fn read() -> Process {
        let ticks = clock_ticks();
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let stat = stat.as_deref().and_then(parse_stat);
        let boot_uptime = std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok());
        let rss_kb = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| status_kb(&s, "VmRSS"));
        Process {
            cpu_seconds: stat.map_or(0.0, |s| s.cpu_ticks as f64 / ticks),
            rss_bytes: rss_kb.unwrap_or(0) * 1024,
            uptime_seconds: match (stat, boot_uptime) {
                // To the clock tick: the subtraction leaves float noise.
                (Some(s), Some(up)) => {
                    ((up - s.start_ticks as f64 / ticks) * ticks)
                        .round()
                        .max(0.0)
                        / ticks
                }
                _ => 0.0,
            },
        }
    }

    fn clock_ticks() -> f64 {
        // SAFETY: sysconf only reads a system constant.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            t as f64
        } else {
            100.0
        }
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Stat {
        /// utime + stime.
        pub cpu_ticks: u64,
        /// Start time after boot.
        pub start_ticks: u64,
    }

    /// Fields of /proc/PID/stat (proc(5)). The command name may hold
    /// spaces and parentheses, so counting starts after its last ')'.
    pub fn parse_stat(text: &str) -> Option<Stat> {
        let rest = &text[text.rfind(')')? + 1..];
        // After the name: field 3 (state) is index 0.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Stat {
            cpu_ticks: field(14)? + field(15)?,
            start_ticks: field(22)?,
        })
    }

    /// A `kB` field of /proc/PID/status.
    pub fn status_kb(text: &str, key: &str) -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_an_awkward_name() {
        let line = "1234 (a b) c)) S 1 1234 1234 0 -1 4194560 500 0 0 0 \
                    250 50 0 0 20 0 9 0 777 100000 2000 18446744073709551615";
        let s = process::parse_stat(line).unwrap();
        assert_eq!(s.cpu_ticks, 300);
        assert_eq!(s.start_ticks, 777);
        assert!(process::parse_stat("garbage").is_none());
    }

    #[test]
    fn status_rss() {
        let text = "Name:\tx\nVmHWM:\t  2000 kB\nVmRSS:\t  1500 kB\n";
        assert_eq!(process::status_kb(text, "VmRSS"), Some(1500));
        assert_eq!(process::status_kb(text, "VmSwap"), None);
    }

    #[test]
    fn exposition_text() {
        let mut m = Exposition::default();
        m.family("x_total", "counter", "Things.");
        m.sample(&[("stream", "a\"b"), ("kind", "video")], 3u32);
        m.family("y", "gauge", "Level.");
        m.sample_f64(&[], 1.5);
        assert_eq!(
            m.text,
            "# HELP x_total Things.\n# TYPE x_total counter\n\
             x_total{stream=\"a\\\"b\",kind=\"video\"} 3\n\
             # HELP y Level.\n# TYPE y gauge\ny 1.5\n"
        );
    }
}
