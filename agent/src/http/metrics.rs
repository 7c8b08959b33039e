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

use crate::control::Control;
use crate::hub::Output;
use crate::status::{self, ProcessStats};

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn routes() -> Router<Arc<Control>> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(ctx): State<Arc<Control>>) -> impl IntoResponse {
    let mut m = Exposition::default();
    let hubs = ctx.streams().all();
    let stats: Vec<_> = hubs
        .iter()
        .map(|h| {
            let live = h.health().state == crate::hub::SourceState::Live;
            (h.name(), h.stats(), live)
        })
        .collect();

    m.family(
        "streamswitch_stream_up",
        "gauge",
        "1 while the stream's source produces.",
    );
    for (name, _, live) in &stats {
        m.sample(&[("stream", name)], u64::from(*live));
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
        "Frames (and parameter items) that readers too slow to keep up skipped, per output: RTSP sessions and the RTP stage, the HLS muxer, the recorder.",
    );
    for (name, s, _) in &stats {
        for o in Output::ALL {
            m.sample(
                &[("stream", name), ("output", o.as_str())],
                s.dropped[o as usize],
            );
        }
    }
    m.family(
        "streamswitch_capture_dropped_frames_total",
        "counter",
        "Pictures a camera dropped before the agent read them (gaps in the device's frame counter).",
    );
    for (name, s, _) in &stats {
        m.sample(&[("stream", name)], s.capture_dropped_frames);
    }
    m.family(
        "streamswitch_capture_overruns_total",
        "counter",
        "Microphone overruns: audio lost because the agent did not read it in time.",
    );
    for (name, s, _) in &stats {
        m.sample(&[("stream", name)], s.capture_overruns);
    }
    m.family(
        "streamswitch_stream_viewers",
        "gauge",
        "Readers of the stream per output: RTSP sessions playing, HLS clients (distinct addresses seen within two target durations), the recorder.",
    );
    for (name, s, _) in &stats {
        for o in Output::ALL {
            m.sample(
                &[("stream", name), ("protocol", o.as_str())],
                s.viewers[o as usize],
            );
        }
    }
    let uplinks: Vec<(String, crate::uplink::UplinkStatus)> = ctx
        .stream_states()
        .await
        .into_iter()
        .flat_map(|s| {
            let name = s.name;
            s.uplinks.into_iter().map(move |u| (name.clone(), u))
        })
        .collect();
    m.family(
        "streamswitch_uplink_publishing",
        "gauge",
        "1 while the uplink publishes to its target.",
    );
    for (name, u) in &uplinks {
        let up = u.state == crate::uplink::UplinkState::Publishing;
        m.sample(&[("stream", name), ("target", &u.target)], u64::from(up));
    }
    m.family(
        "streamswitch_uplink_bytes_total",
        "counter",
        "Bytes the uplink sent to its target.",
    );
    for (name, u) in &uplinks {
        m.sample(&[("stream", name), ("target", &u.target)], u.bytes_sent);
    }
    m.family(
        "streamswitch_uplink_dropped_frames_total",
        "counter",
        "Frames the uplink dropped because its link was too slow.",
    );
    for (name, u) in &uplinks {
        m.sample(&[("stream", name), ("target", &u.target)], u.dropped_frames);
    }
    m.family(
        "streamswitch_uplink_connects_total",
        "counter",
        "Connections the uplink made to its target.",
    );
    for (name, u) in &uplinks {
        m.sample(&[("stream", name), ("target", &u.target)], u.connects);
    }
    m.family(
        "streamswitch_hls_muxers",
        "gauge",
        "HLS muxers running (streams watched over HLS).",
    );
    m.sample(&[], ctx.hls().active() as u64);

    let recorders = ctx.recorders().statuses();
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
        "streamswitch_recording_dropped_frames_total",
        "counter",
        "Frames lost before the disk: the recorder's queue was full.",
    );
    for r in &recorders {
        m.sample(&[("stream", &r.stream)], r.dropped_frames);
    }
    m.family(
        "streamswitch_recording_fsyncs_total",
        "counter",
        "fsync calls of the stream's recorder.",
    );
    for r in &recorders {
        m.sample(&[("stream", &r.stream)], r.fsyncs);
    }

    // Zeros where /proc does not tell (a restricted /proc).
    let process = status::process().unwrap_or(ProcessStats {
        uptime_s: 0.0,
        cpu_seconds: 0.0,
        rss_bytes: 0,
    });
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
    m.sample_f64(&[], process.uptime_s);
    m.family(
        "streamswitch_rtsp_refused_total",
        "counter",
        "RTSP connections, sessions and SETUPs refused, by limit.",
    );
    for (reason, n) in crate::rtsp::limits::refusals() {
        m.sample(&[("reason", reason)], n);
    }
    let (refused, timed_out) = super::limits::counts();
    m.family(
        "streamswitch_http_refused_total",
        "counter",
        "HTTP connections closed at the connection cap or by a timeout.",
    );
    m.sample(&[("reason", "connections")], refused);
    m.sample(&[("reason", "timeout")], timed_out);

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

#[cfg(test)]
mod tests {
    use super::*;

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
