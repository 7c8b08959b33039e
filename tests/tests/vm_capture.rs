//! Real capture against the kernel's own drivers, in a VM (tests/vm.rs):
//! vivid (a camera giving raw YUYV), snd-aloop (a tone played into the
//! loopback's playback side is the microphone), v4l2loopback (MJPEG and
//! H.264 cameras fed by `v4l2-feed`; one MJPEG camera decoded and encoded
//! to H.264, one served as MJPEG with `encoder = "copy"`). One boot for the whole group: the
//! agent runs inside, the host reads it over forwarded ports with
//! ffprobe/ffmpeg and the HTTP API.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use streamswitch_tests::http;
use streamswitch_tests::vm::{Vm, VmConfig};
use streamswitch_tests::watch::ffprobe;

const T: Duration = Duration::from_secs(30);
/// vivid offers 1 to 60 fps at this size; 10 is what the emulated CPU
/// converts and encodes in full beside the other streams (TCG, 2 vCPUs).
const CAM: (u32, u32, u32) = (320, 180, 10);
const LOOP: (u32, u32, u32) = (160, 120, 10);
const TONE_HZ: f64 = 1000.0;

fn v4l2loopback() -> PathBuf {
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("vm/build-v4l2loopback.sh"))
        .output()
        .expect("running build-v4l2loopback.sh");
    assert!(
        out.status.success(),
        "build-v4l2loopback.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap_or(""),
    )
}

/// Pictures made by the host's ffmpeg, as v4l2-feed's records.
fn coded_frames(dir: &Path, codec: &str) -> PathBuf {
    let (w, h, fps) = LOOP;
    let src = format!("testsrc=size={w}x{h}:rate={fps}");
    let frames: Vec<Vec<u8>> = if codec == "mjpeg" {
        let pattern = dir.join("f%03d.jpg");
        run_ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &src,
            "-frames:v",
            "30",
            "-q:v",
            "5",
            // What a webcam sends, and what RFC 2435 carries: 4:2:0
            // with the standard Huffman tables.
            "-pix_fmt",
            "yuvj420p",
            "-huffman",
            "default",
            pattern.to_str().unwrap(),
        ]);
        (1..=30)
            .map(|i| std::fs::read(dir.join(format!("f{i:03}.jpg"))).unwrap())
            .collect()
    } else {
        let out = dir.join("v.h264");
        run_ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &src,
            "-frames:v",
            "30",
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-bf",
            "0",
            "-g",
            "15",
            "-x264-params",
            "aud=1:repeat-headers=1",
            "-f",
            "h264",
            out.to_str().unwrap(),
        ]);
        split_at_auds(&std::fs::read(&out).unwrap())
    };
    assert_eq!(frames.len(), 30, "{codec}: pictures made");
    let mut records = Vec::new();
    for f in &frames {
        records.extend_from_slice(&(f.len() as u32).to_le_bytes());
        records.extend_from_slice(f);
    }
    let path = dir.join(format!("{codec}.frames"));
    std::fs::write(&path, records).unwrap();
    path
}

fn run_ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "ffmpeg {args:?}");
}

/// Annex B cut into access units at each access unit delimiter.
fn split_at_auds(data: &[u8]) -> Vec<Vec<u8>> {
    let mut starts: Vec<usize> = (0..data.len().saturating_sub(4))
        .filter(|&i| data[i..i + 4] == [0, 0, 0, 1] && data[i + 4] & 0x1f == 9)
        .collect();
    starts.push(data.len());
    starts
        .windows(2)
        .map(|w| data[w[0]..w[1]].to_vec())
        .collect()
}

/// A mono 48 kHz S16 WAV of the tone, 60 s.
fn tone_wav(path: &Path) {
    let rate = 48_000u32;
    let samples: Vec<u8> = (0..rate * 60)
        .flat_map(|i| {
            let v = (f64::from(i) * TONE_HZ * std::f64::consts::TAU / f64::from(rate)).sin();
            ((v * 12_000.0) as i16).to_le_bytes()
        })
        .collect();
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + samples.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    wav.extend_from_slice(&samples);
    std::fs::write(path, wav).unwrap();
}

fn agent_config() -> String {
    let (w, h, fps) = CAM;
    let (lw, lh, lfps) = LOOP;
    format!(
        r#"
[agent]
device_id = "vm"
data_dir = "/tmp/data"

[rtsp]
listen = "0.0.0.0:8554"

[http]
listen = "0.0.0.0:8888"

[[stream]]
name = "cam"
source = {{ kind = "v4l2", device = "/dev/video0", width = {w}, height = {h}, fps = {fps}, bitrate_kbps = 300 }}
audio = {{ kind = "alsa", device = "hw:Loopback,1,0", rate = 48000, channels = 1 }}
record = {{ enabled = true, segment_seconds = 4 }}

[[stream]]
name = "mjpeg"
source = {{ kind = "v4l2", device = "/dev/video10", width = {lw}, height = {lh}, fps = {lfps}, bitrate_kbps = 300 }}

[[stream]]
name = "mjcopy"
source = {{ kind = "v4l2", device = "/dev/video12", width = {lw}, height = {lh}, fps = {lfps}, format = "mjpeg", encoder = "copy" }}

[[stream]]
name = "h264"
source = {{ kind = "v4l2", device = "/dev/video11", width = {lw}, height = {lh}, fps = {lfps}, format = "h264" }}
"#
    )
}

struct Group {
    vm: Vm,
    rtsp: u16,
    http: u16,
    _dir: tempfile::TempDir,
}

fn boot() -> Group {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, agent_config()).unwrap();
    let tone = dir.path().join("tone.wav");
    tone_wav(&tone);
    let mjpeg = coded_frames(dir.path(), "mjpeg");
    let h264 = coded_frames(dir.path(), "h264");
    let vm = Vm::boot(
        &VmConfig::new()
            // Only the webcam capture node: /dev/video0.
            .module("vivid", "n_devs=1 node_types=0x1 input_types=0x0")
            .module("snd-aloop", "index=1 id=Loopback")
            .out_of_tree_module(
                v4l2loopback(),
                "devices=3 video_nr=10,11,12 exclusive_caps=1,1,1 card_label=mjpeg,h264,mjcopy",
            )
            .file(streamswitch_tests::agent_bin(), "/bin/streamswitch")
            .file(env!("CARGO_BIN_EXE_v4l2-feed"), "/bin/v4l2-feed")
            .file(streamswitch_tests::vm::host_tool("aplay"), "/bin/aplay")
            .file(&config, "/etc/agent.toml")
            .file(&tone, "/tone.wav")
            .file(&mjpeg, "/mjpeg.frames")
            .file(&h264, "/h264.frames")
            .forward(8554)
            .forward(8888),
    )
    .unwrap();
    let rtsp = vm.host_port(8554).unwrap();
    let http = vm.host_port(8888).unwrap();
    Group {
        vm,
        rtsp,
        http,
        _dir: dir,
    }
}

impl Group {
    fn sh(&self, cmd: &str) -> String {
        let (code, out) = self.vm.exec(cmd, T).unwrap();
        assert_eq!(code, 0, "guest: {cmd}: {out}");
        out
    }

    fn url(&self, stream: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{stream}", self.rtsp)
    }

    fn get(&self, path: &str) -> Vec<u8> {
        let r = http::get(&format!("http://127.0.0.1:{}{path}", self.http));
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.body
    }

    /// The stream's state from the API (`Null` while the agent is not up).
    fn state(&self, stream: &str) -> Value {
        let url = format!("http://127.0.0.1:{}/api/streams", self.http);
        let Ok(r) = http::request("GET", &url, &[]) else {
            return Value::Null;
        };
        let all: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        all.as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == stream))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Waits until `stream` is live; how long that took.
    fn wait_live(&self, stream: &str, timeout: Duration) -> Duration {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if self.state(stream)["state"] == "live" {
                return t0.elapsed();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{stream} not live after {timeout:?}: {:#}\nagent log:\n{}",
            self.state(stream),
            self.sh("grep -v 'fell behind' /tmp/agent.log | tail -n 30; tail -n 5 /tmp/feed-*.log")
        );
    }

    /// Decoded video frames of `seconds` from the stream, the rate, and
    /// ffprobe's view of the video stream.
    fn count_frames(&self, stream: &str, seconds: u32) -> (u64, f64, Value) {
        let v = ffprobe(
            &[
                "-rtsp_transport",
                "tcp",
                "-read_intervals",
                &format!("%+{seconds}"),
                "-count_frames",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=width,height,nb_read_frames,codec_name",
            ],
            &self.url(stream),
        )
        .unwrap();
        let s = v["streams"][0].clone();
        let n: u64 = s["nb_read_frames"].as_str().unwrap_or("0").parse().unwrap();
        (n, n as f64 / f64::from(seconds), s)
    }
}

#[test]
fn cameras_and_a_microphone_on_real_drivers() {
    let g = boot();

    // --- devices --json lists vivid with its formats and the loopback PCMs.
    let devices: Value = serde_json::from_str(&g.sh("streamswitch devices --json")).unwrap();
    let cameras = devices["cameras"].as_array().unwrap();
    let vivid = cameras
        .iter()
        .find(|c| c["driver"] == "vivid")
        .unwrap_or_else(|| panic!("no vivid camera in {devices:#}"));
    assert_eq!(vivid["path"], "/dev/video0");
    let yuyv = vivid["formats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["fourcc"] == "YUYV")
        .unwrap_or_else(|| panic!("vivid without YUYV: {vivid:#}"));
    assert_eq!(yuyv["supported"], true);
    let at_size = yuyv["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["width"] == CAM.0 && s["height"] == CAM.1)
        .unwrap_or_else(|| panic!("vivid YUYV without {}x{}: {yuyv:#}", CAM.0, CAM.1));
    eprintln!("vivid YUYV {}x{}: {}", CAM.0, CAM.1, at_size["fps"]);
    let mics = devices["microphones"].as_array().unwrap();
    assert!(
        mics.iter()
            .any(|m| m["name"].as_str().unwrap_or("").contains("CARD=Loopback")),
        "no loopback PCM in {mics:#?}"
    );
    assert!(devices["backends"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b == "v4l2"));

    // --- the feeders and the tone, then the agent.
    g.vm.spawn(
        &format!(
            "v4l2-feed feed /dev/video10 MJPG {} {} {} /mjpeg.frames",
            LOOP.0, LOOP.1, LOOP.2
        ),
        "/tmp/feed-mjpeg.log",
    )
    .unwrap();
    g.vm.spawn(
        &format!(
            "v4l2-feed feed /dev/video12 MJPG {} {} {} /mjpeg.frames",
            LOOP.0, LOOP.1, LOOP.2
        ),
        "/tmp/feed-mjcopy.log",
    )
    .unwrap();
    g.vm.spawn(
        &format!(
            "v4l2-feed feed /dev/video11 H264 {} {} {} /h264.frames",
            LOOP.0, LOOP.1, LOOP.2
        ),
        "/tmp/feed-h264.log",
    )
    .unwrap();
    g.vm.spawn(
        "while true; do aplay -q -D hw:Loopback,0,0 /tone.wav; done",
        "/tmp/aplay.log",
    )
    .unwrap();
    let agent =
        g.vm.spawn(
            "RUST_LOG=info streamswitch run --config /etc/agent.toml",
            "/tmp/agent.log",
        )
        .unwrap();
    for s in ["cam", "mjpeg", "mjcopy", "h264"] {
        g.wait_live(s, Duration::from_secs(60));
    }

    // --- vivid → agent → RTSP → ffprobe: the size asked, the full rate.
    let (n, fps, _) = g.count_frames("cam", 6);
    let dropped = String::from_utf8_lossy(&g.get("/metrics"))
        .lines()
        .find(|l| l.starts_with("streamswitch_capture_dropped_frames_total{stream=\"cam\"}"))
        .unwrap_or_default()
        .to_owned();
    eprintln!("cam: {n} frames in 6 s: {fps:.1} fps ({dropped})");
    // vivid's generator thread itself slips under emulation now and then
    // (a gap in its frame counter, counted by the agent): 85% of the rate.
    assert!(
        fps >= f64::from(CAM.2) * 0.85,
        "cam at {fps:.1} fps, expected {}",
        CAM.2
    );
    let probed = ffprobe(
        &[
            "-rtsp_transport",
            "tcp",
            "-show_entries",
            "stream=codec_name,width,height,sample_rate",
        ],
        &g.url("cam"),
    )
    .unwrap();
    let streams = probed["streams"].as_array().unwrap();
    assert!(
        streams
            .iter()
            .any(|s| s["codec_name"] == "h264" && s["width"] == CAM.0 && s["height"] == CAM.1),
        "{probed:#}"
    );
    assert!(
        streams
            .iter()
            .any(|s| s["codec_name"] == "aac" && s["sample_rate"] == "48000"),
        "{probed:#}"
    );

    // --- MJPEG decoded and encoded; MJPEG as it is (RFC 2435); H.264
    // passed through; all at the feed's rate and size.
    for (s, codec) in [("mjpeg", "h264"), ("mjcopy", "mjpeg"), ("h264", "h264")] {
        let (n, fps, probed) = g.count_frames(s, 4);
        eprintln!("{s}: {n} frames in 4 s: {fps:.1} fps");
        assert!(fps >= f64::from(LOOP.2) * 0.8, "{s} at {fps:.1} fps");
        assert_eq!(
            (&probed["codec_name"], &probed["width"], &probed["height"]),
            (&codec.into(), &LOOP.0.into(), &LOOP.1.into()),
            "{s}"
        );
    }

    // --- the tone comes out as AAC over RTSP at its frequency.
    let pcm = decode_audio(&g.url("cam"), &["-rtsp_transport", "tcp", "-t", "3"]);
    assert_tone(&pcm, "RTSP");

    // --- ... and in the recording, in sync with the video.
    std::thread::sleep(Duration::from_secs(5));
    let listing: Value = serde_json::from_slice(&g.get("/api/recordings?stream=cam")).unwrap();
    let file = listing
        .as_array()
        // The newest: the first file holds the start-up.
        .and_then(|r| r.last())
        .unwrap_or_else(|| panic!("no closed recording: {listing:#}"))["path"]
        .as_str()
        .unwrap()
        .to_owned();
    let local = g._dir.path().join("rec.mp4");
    std::fs::write(&local, g.get(&file)).unwrap();
    let pcm = decode_audio(local.to_str().unwrap(), &[]);
    assert_tone(&pcm, "recording");
    // Both tracks stamped from their devices' capture times on one clock:
    // they start and end together.
    let (start, end) = streamswitch_tests::watch::av_offsets(&[], local.to_str().unwrap()).unwrap();
    eprintln!("recording: video - audio at start {start:.3} s, at end {end:.3} s");
    assert!(
        start.abs() < 0.2 && end.abs() < 0.2,
        "audio and video apart by {start:.3} s at the start, {end:.3} s at the end"
    );

    // --- an overrun: the agent stopped for 2 s while the tone plays, so
    // the loopback's capture buffer overflows. The microphone recovers,
    // counts it, and the tone comes out again.
    g.sh(&format!("kill -STOP {agent}; sleep 2; kill -CONT {agent}"));
    let overruns = |g: &Group| -> f64 {
        String::from_utf8_lossy(&g.get("/metrics"))
            .lines()
            .find_map(|l| l.strip_prefix("streamswitch_capture_overruns_total{stream=\"cam\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let t0 = Instant::now();
    while overruns(&g) < 1.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no overrun counted:\n{}",
            g.sh("tail -n 30 /tmp/agent.log")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("overruns counted: {}", overruns(&g));
    // A reader joining at the very moment of the resume caught the
    // catch-up burst and ffmpeg stopped early once (0.4 s of audio): not
    // what this checks. Let the capture settle first.
    std::thread::sleep(Duration::from_secs(2));
    let pcm = decode_audio(&g.url("cam"), &["-rtsp_transport", "tcp", "-t", "2"]);
    assert_tone(&pcm, "RTSP after an overrun");

    // --- hot-plug: vivid unplugged (its Disconnect button), then unloaded
    // and loaded again. The stream goes down with the error, the agent
    // stays, and capture resumes within 2 s of the camera's return.
    g.sh("v4l2-feed ctrl /dev/video0 disconnect 1");
    // Unload while the agent waits out its pause (it let go of the device).
    g.sh("i=0; until rmmod vivid 2>/dev/null; do i=$((i+1)); [ $i -gt 200 ] && exit 1; usleep 20000; done");
    std::thread::sleep(Duration::from_secs(1));
    let down = g.state("cam");
    assert_eq!(down["state"], "down", "{down:#}");
    assert!(
        down["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("/dev/video0")),
        "{down:#}"
    );
    std::thread::sleep(Duration::from_secs(4));
    g.sh("insmod /vm/modules/vivid.ko n_devs=1 node_types=0x1 input_types=0x0");
    let back = g.wait_live("cam", Duration::from_secs(10));
    eprintln!(
        "cam live again {:.2} s after vivid came back",
        back.as_secs_f64()
    );
    assert!(
        back < Duration::from_secs(2) + Duration::from_millis(500),
        "resumed after {back:?}"
    );
    let (n, _, _) = g.count_frames("cam", 2);
    assert!(n > 0, "no frames after the camera came back");
    assert_eq!(
        g.sh(&format!("kill -0 {agent} && echo alive")).trim(),
        "alive",
        "the agent died"
    );
    let log = g.sh("cat /tmp/agent.log");
    assert!(!log.contains("panicked"), "{log}");
}

/// Decodes the audio of `input` to mono 48 kHz f32 samples.
fn decode_audio(input: &str, before: &[&str]) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error"])
        .args(before)
        .args([
            "-i", input, "-vn", "-ac", "1", "-ar", "48000", "-f", "f32le", "-",
        ])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Goertzel power at `hz`, per sample.
fn power_at(pcm: &[f32], hz: f64) -> f64 {
    let k = 2.0 * (std::f64::consts::TAU * hz / 48_000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in pcm {
        let s = f64::from(x) + k * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - k * s1 * s2) / pcm.len().max(1) as f64
}

fn assert_tone(pcm: &[f32], what: &str) {
    assert!(pcm.len() > 48_000, "{what}: only {} samples", pcm.len());
    let at = power_at(pcm, TONE_HZ);
    for other in [500.0, 800.0, 1200.0, 2000.0] {
        let p = power_at(pcm, other);
        assert!(
            at > p * 100.0,
            "{what}: {TONE_HZ} Hz power {at:.3e} vs {other} Hz {p:.3e}"
        );
    }
    eprintln!("{what}: tone at {TONE_HZ} Hz clear");
}
