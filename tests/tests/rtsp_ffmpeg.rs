//! The RTSP server against ffmpeg's RTSP client: ffprobe sees both tracks
//! over TCP and UDP, and ten ffmpeg readers at once each get the full frame
//! rate.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use streamswitch_tests::{http, run_with_timeout, test_stream, Agent};

const FPS: u32 = 20;

fn probe(transport: &str) {
    let agent = Agent::start(&test_stream("cam", 320, 240, FPS));
    agent.wait_ready(1);
    let (ok, out, err) = run_with_timeout(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-rtsp_transport",
            transport,
            "-show_streams",
            "-of",
            "json",
            &agent.rtsp_url("cam"),
        ]),
        Duration::from_secs(30),
    );
    assert!(ok, "ffprobe over {transport} failed: {err}");
    let probed: Value = serde_json::from_str(&out).expect("ffprobe json");
    let streams = probed["streams"].as_array().expect("streams");
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap_or_else(|| panic!("no video stream: {out}"));
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(video["width"], 320);
    assert_eq!(video["height"], 240);
    let audio = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .unwrap_or_else(|| panic!("no audio stream: {out}"));
    assert_eq!(audio["codec_name"], "aac");
    assert_eq!(audio["sample_rate"], "48000");
}

#[test]
fn ffprobe_sees_h264_and_aac_over_tcp() {
    probe("tcp");
}

#[test]
fn ffprobe_sees_h264_and_aac_over_udp() {
    probe("udp");
}

/// One `ffmpeg -c copy -f null` reader and the video frame counts it
/// reported through `-progress`, with the time each report arrived.
struct Reader {
    child: Child,
    progress: Arc<Mutex<Vec<(Instant, u64)>>>,
}

impl Reader {
    fn start(url: &str) -> Reader {
        let mut child = Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-v",
                "error",
                "-rtsp_transport",
                "tcp",
                "-i",
                url,
            ])
            .args(["-map", "0", "-c", "copy", "-f", "null", "-"])
            .args(["-progress", "pipe:1", "-stats_period", "0.25"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg");
        let out = child.stdout.take().expect("stdout");
        let progress = Arc::new(Mutex::new(Vec::new()));
        let sink = progress.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(n) = line
                    .strip_prefix("frame=")
                    .and_then(|n| n.trim().parse().ok())
                {
                    sink.lock().unwrap().push((Instant::now(), n));
                }
            }
        });
        Reader { child, progress }
    }

    /// Frames per second between the first report at least `skip` after
    /// the first frame and the last report.
    fn steady_fps(&self, skip: Duration) -> f64 {
        let reports = self.progress.lock().unwrap();
        let Some(&(first, _)) = reports.iter().find(|(_, n)| *n > 0) else {
            return 0.0;
        };
        let Some(&(t0, n0)) = reports.iter().find(|(t, _)| *t >= first + skip) else {
            return 0.0;
        };
        let &(t1, n1) = reports.last().expect("a report");
        if t1 <= t0 {
            return 0.0;
        }
        (n1 - n0) as f64 / (t1 - t0).as_secs_f64()
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ten_ffmpeg_readers_each_get_the_full_frame_rate() {
    let agent = Agent::start(&test_stream("cam", 320, 240, FPS));
    agent.wait_ready(1);
    let url = agent.rtsp_url("cam");
    let readers: Vec<Reader> = (0..10).map(|_| Reader::start(&url)).collect();
    // Every playing session counts as one RTSP viewer of the stream.
    agent.wait_for_metric(
        "streamswitch_stream_viewers{stream=\"cam\",protocol=\"rtsp\"}",
        Duration::from_secs(20),
        |v| v == 10.0,
    );
    // A window of steady playing to measure the rate over.
    std::thread::sleep(Duration::from_secs(6));
    let streams: Value =
        serde_json::from_str(&http::get(&agent.http_url("/api/streams")).text()).unwrap();
    assert_eq!(streams[0]["viewers"]["rtsp"], 10, "{streams}");
    for (i, reader) in readers.iter().enumerate() {
        let fps = reader.steady_fps(Duration::from_millis(1500));
        assert!(
            (fps - f64::from(FPS)).abs() <= 0.1 * f64::from(FPS),
            "reader {i} got {fps:.1} fps, the stream has {FPS}; log:\n{}",
            agent.log().join("\n")
        );
    }
}
