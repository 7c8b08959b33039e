//! The exec source fed by a real ffmpeg: served over RTSP (TCP and UDP)
//! and HLS, recorded; and what its viewers see when the child dies, comes
//! back at another size, or never works at all.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streamswitch_tests::http::get;
use streamswitch_tests::rtsp_client::{receive, strictly_increasing, transport};
use streamswitch_tests::watch::{ffprobe, probed_stream, RtpWatch};
use streamswitch_tests::{exec_stream, m3u8, run_with_timeout, test_stream, Agent};

const FPS: u32 = 25;
const RECORD: &str = "record = { enabled = true, segment_seconds = 60, fragment_ms = 500 }\n";

fn recordings(agent: &Agent, stream: &str) -> Vec<std::path::PathBuf> {
    let dir = agent.data_dir().join("recordings").join(stream);
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|day| {
            std::fs::read_dir(day.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|f| f.path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    out.sort();
    out
}

/// `ffmpeg -xerror` decodes the whole file.
fn decodes(path: &std::path::Path) {
    let (ok, _, err) = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-v", "error", "-xerror", "-i"])
            .arg(path)
            .args(["-f", "null", "-"]),
        Duration::from_secs(60),
    );
    assert!(ok, "{} does not decode: {err}", path.display());
}

/// SIGKILLs the stream's ffmpeg (the agent's only child).
fn kill_child(agent: &Agent) {
    let children = agent.children();
    assert_eq!(children.len(), 1, "children: {children:?}");
    let status = Command::new("kill")
        .args(["-KILL", &children[0].to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn ffmpeg_through_exec_is_served_over_rtsp_and_hls_and_recorded() {
    let mut agent = Agent::start(&format!("{}{RECORD}", exec_stream("ex", "320x240", FPS)));
    agent.wait_ready(1);
    for t in ["tcp", "udp"] {
        let probed = ffprobe(&["-rtsp_transport", t], &agent.rtsp_url("ex"))
            .unwrap_or_else(|e| panic!("ffprobe over {t}: {e}"));
        let video = probed_stream(&probed, "video").expect("video");
        assert_eq!(video["codec_name"], "h264");
        assert_eq!(
            (video["width"].clone(), video["height"].clone()),
            (320.into(), 240.into())
        );
        let audio = probed_stream(&probed, "audio").expect("audio");
        assert_eq!(audio["codec_name"], "aac");
        assert_eq!(audio["sample_rate"], "48000");
    }
    let probed = ffprobe(&[], &agent.http_url("/ex/index.m3u8")).unwrap();
    assert_eq!(
        probed_stream(&probed, "video").expect("video")["codec_name"],
        "h264"
    );
    assert_eq!(
        probed_stream(&probed, "audio").expect("audio")["codec_name"],
        "aac"
    );
    std::thread::sleep(Duration::from_secs(2));
    let status = agent.terminate(Duration::from_secs(10)).expect("exit");
    assert!(status.success(), "{status}");
    let files = recordings(&agent, "ex");
    assert_eq!(files.len(), 1, "{files:?}");
    decodes(&files[0]);
}

/// An HLS reader on a thread: reloads the playlist, fetches each new
/// segment, and remembers failures and whether a discontinuity was listed.
struct HlsReader {
    stop: Arc<AtomicBool>,
    failures: Arc<Mutex<Vec<String>>>,
    maps: Arc<Mutex<Vec<String>>>,
    discontinuity: Arc<AtomicBool>,
    segments: Arc<Mutex<u32>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HlsReader {
    fn start(agent: &Agent, stream: &str) -> HlsReader {
        let playlist = agent.http_url(&format!("/{stream}/index.m3u8"));
        let base = agent.http_url(&format!("/{stream}/"));
        let reader = HlsReader {
            stop: Arc::default(),
            failures: Arc::default(),
            maps: Arc::default(),
            discontinuity: Arc::default(),
            segments: Arc::default(),
            thread: None,
        };
        let (stop, failures, maps, disc, segments) = (
            reader.stop.clone(),
            reader.failures.clone(),
            reader.maps.clone(),
            reader.discontinuity.clone(),
            reader.segments.clone(),
        );
        let thread = std::thread::spawn(move || {
            let mut last = None;
            while !stop.load(Ordering::Relaxed) {
                let r = get(&playlist);
                if r.status != 200 {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("playlist {}", r.status));
                    std::thread::sleep(Duration::from_millis(300));
                    continue;
                }
                let p = match m3u8::parse(&r.text()) {
                    Ok(p) => p,
                    Err(e) => {
                        failures.lock().unwrap().push(e);
                        continue;
                    }
                };
                for seg in p.segments.iter().filter(|s| Some(s.msn) > last) {
                    if seg.discontinuity {
                        disc.store(true, Ordering::Relaxed);
                    }
                    let map = seg.map_uri.clone().unwrap_or_default();
                    let mut maps = maps.lock().unwrap();
                    if maps.last() != Some(&map) {
                        maps.push(map);
                    }
                    let s = get(&format!("{base}{}", seg.uri));
                    if s.status != 200 {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{} {}", seg.uri, s.status));
                    }
                    *segments.lock().unwrap() += 1;
                }
                last = p.segments.last().map(|s| s.msn).or(last);
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        HlsReader {
            thread: Some(thread),
            ..reader
        }
    }

    fn finish(mut self) -> (Vec<String>, Vec<String>, bool, u32) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.failures.lock().unwrap().clone(),
            self.maps.lock().unwrap().clone(),
            self.discontinuity.load(Ordering::Relaxed),
            *self.segments.lock().unwrap(),
        )
    }
}

/// Counts the video frames an `ffmpeg -c copy` RTSP reader writes for
/// `seconds` of media time.
fn ffmpeg_frames(url: &str, seconds: u32) -> std::thread::JoinHandle<usize> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let (ok, out, err) = run_with_timeout(
            Command::new("ffmpeg").args([
                "-v",
                "error",
                "-rtsp_transport",
                "tcp",
                "-i",
                &url,
                "-t",
                &seconds.to_string(),
                "-map",
                "0:v",
                "-c",
                "copy",
                "-f",
                "framecrc",
                "-",
            ]),
            Duration::from_secs(u64::from(seconds) + 30),
        );
        assert!(ok, "the ffmpeg reader failed: {err}");
        out.lines().filter(|l| l.starts_with("0,")).count()
    })
}

#[test]
fn killing_the_child_keeps_every_viewer() {
    let agent = Agent::start(&format!("{}{RECORD}", exec_stream("ex", "320x240", FPS)));
    agent.wait_ready(1);
    let url = agent.rtsp_url("ex");
    let retina = {
        let url = url.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(receive(
                &url,
                transport("tcp"),
                None,
                Duration::from_secs(12),
            ))
        })
    };
    let ffmpeg = ffmpeg_frames(&url, 15);
    let hls = HlsReader::start(&agent, "ex");
    std::thread::sleep(Duration::from_secs(4));
    let killed = Instant::now();
    kill_child(&agent);

    let got = retina
        .join()
        .unwrap()
        .expect("retina's session ended with an error");
    let frames = ffmpeg.join().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (failures, maps, discontinuity, segments) = hls.finish();

    assert!(
        strictly_increasing(&got.video_timestamps),
        "retina saw time go back"
    );
    assert!(strictly_increasing(&got.audio_timestamps));
    let after = got.video_arrivals.iter().filter(|t| **t > killed).count();
    assert!(
        after as u32 > 4 * FPS,
        "retina got {after} frames after the kill"
    );
    // The restart time: the longest pause between two frames at retina.
    let gap = got
        .video_arrivals
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .fold(0.0, f64::max);
    println!("restart pause seen by retina: {gap:.2} s");
    assert!(gap < 5.0, "the restart took {gap:.2} s");
    let needed = ((15.0 - gap - 1.0) * f64::from(FPS)) as usize;
    assert!(
        frames >= needed,
        "ffmpeg got {frames} frames, needs {needed}"
    );

    assert_eq!(failures, Vec::<String>::new());
    assert!(discontinuity, "no EXT-X-DISCONTINUITY in the playlist");
    assert!(maps.len() >= 2, "no new EXT-X-MAP: {maps:?}");
    assert!(segments > 5);

    let state = agent.stream_state("ex");
    assert_eq!(state["state"], "live");
    assert_eq!(state["restarts"], 1, "{state}");
    assert!(
        state["last_error"].as_str().unwrap().contains("SIGKILL"),
        "{state}"
    );
    let mut agent = agent;
    agent.terminate(Duration::from_secs(10)).expect("exit");
    let files = recordings(&agent, "ex");
    assert_eq!(
        files.len(),
        2,
        "one file before the kill, one after: {files:?}"
    );
    for f in &files {
        decodes(f);
    }
}

#[test]
fn a_child_back_at_another_size_sends_the_new_sps_in_band() {
    let dir = tempfile::tempdir().unwrap();
    let size_file = dir.path().join("size");
    std::fs::write(&size_file, "320x240").unwrap();
    let size = format!("$(cat {})", size_file.display());
    let agent = Agent::start(&exec_stream("ex", &size, FPS));
    agent.wait_ready(1);
    let hls = HlsReader::start(&agent, "ex");
    let out = dir.path().join("through-rtsp.ts");
    let recorder = {
        let (url, out) = (agent.rtsp_url("ex"), out.clone());
        std::thread::spawn(move || {
            run_with_timeout(
                Command::new("ffmpeg")
                    .args(["-v", "error", "-rtsp_transport", "tcp", "-i", &url])
                    .args(["-t", "10", "-c", "copy", "-f", "mpegts"])
                    .arg(&out),
                Duration::from_secs(40),
            )
        })
    };
    std::thread::sleep(Duration::from_secs(3));
    std::fs::write(&size_file, "480x360").unwrap();
    kill_child(&agent);
    let (ok, _, err) = recorder.join().unwrap();
    assert!(ok, "ffmpeg's RTSP recording failed: {err}");
    let (failures, maps, discontinuity, _) = hls.finish();

    // What ffmpeg recorded through RTSP decodes at both sizes, in order.
    let (ok, sizes, err) = run_with_timeout(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v", "-show_entries"])
            .args(["frame=width,height", "-of", "csv=p=0"])
            .arg(&out),
        Duration::from_secs(60),
    );
    assert!(ok, "{err}");
    let mut seen: Vec<&str> = Vec::new();
    for line in sizes.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if seen.last() != Some(&line) {
            seen.push(line);
        }
    }
    assert_eq!(seen, ["320,240", "480,360"], "frame sizes in order");
    assert_eq!(failures, Vec::<String>::new());
    assert!(discontinuity);
    assert!(maps.len() >= 2, "{maps:?}");
    let state = agent.stream_state("ex");
    assert!(
        state["tracks"].as_str().unwrap().contains("480x360"),
        "{state}"
    );
}

#[test]
fn the_test_source_forced_to_fail_restarts_under_its_viewers() {
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("fail");
    let agent = Agent::start_with_env(
        &test_stream("cam", 320, 240, 15),
        &[("STREAMSWITCH_TEST_SOURCE_FAIL_FILE", hook.to_str().unwrap())],
    );
    agent.wait_ready(1);
    let url = agent.rtsp_url("cam");
    let retina = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(receive(
            &url,
            transport("udp"),
            None,
            Duration::from_secs(10),
        ))
    });
    std::thread::sleep(Duration::from_secs(2));
    std::fs::write(&hook, "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while agent.stream_state("cam")["state"] != "down" {
        assert!(Instant::now() < deadline, "never down");
        std::thread::sleep(Duration::from_millis(50));
    }
    let describe = streamswitch_tests::rtsp_client::RawRtsp::connect(agent.rtsp_port)
        .unwrap()
        .request("DESCRIBE", &agent.rtsp_url("cam"), &[])
        .unwrap();
    assert_eq!(describe.status, 503, "DESCRIBE while down");
    assert_eq!(describe.header("Retry-After"), Some("2"));
    std::fs::remove_file(&hook).unwrap();
    let got = retina
        .join()
        .unwrap()
        .expect("retina's session ended with an error");
    assert!(strictly_increasing(&got.video_timestamps));
    let last = *got.video_arrivals.last().expect("frames");
    assert!(
        last.elapsed() < Duration::from_secs(2),
        "no frames after the restart"
    );
    let state = agent.stream_state("cam");
    assert_eq!(state["state"], "live");
    assert!(state["restarts"].as_u64() >= Some(1));
    assert!(
        state["last_error"].as_str().unwrap().contains("test hook"),
        "{state}"
    );
}

#[test]
fn broken_programs_are_down_with_a_clear_error_and_back_off() {
    let broken = |name: &str, command: &str| {
        format!("[[stream]]\nname = \"{name}\"\nsource = {{ kind = \"exec\", command = {command}, stall_seconds = 2 }}\n")
    };
    let config = [
        broken("missing", r#"["/nonexistent/camera-program"]"#),
        broken(
            "quits",
            r#"["sh", "-c", "echo camera unplugged >&2; exit 3"]"#,
        ),
        broken(
            "garbage",
            r#"["sh", "-c", "head -c 200000 /dev/urandom; sleep 60"]"#,
        ),
        test_stream("ok", 320, 240, 15),
    ]
    .concat();
    let agent = Agent::start(&config);
    let ok = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(w) = RtpWatch::start(agent.rtsp_port, &agent.rtsp_url("ok")) {
                break w;
            }
            assert!(Instant::now() < deadline, "the good stream never played");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // A window of 8 s: the good stream plays beside the broken ones while
    // they fail and back off (the checks below count what happened in it).
    std::thread::sleep(Duration::from_secs(8));
    for (name, needle) in [
        ("missing", "/nonexistent/camera-program"),
        ("quits", "camera unplugged"),
        ("garbage", "no frame for 2 s"),
    ] {
        let s = agent.stream_state(name);
        assert!(s["state"] == "down" || s["state"] == "starting", "{s}");
        let error = s["last_error"].as_str().unwrap_or("");
        assert!(error.contains(needle), "{name}: {error:?} lacks {needle:?}");
    }
    assert!(agent.stream_state("quits")["last_error"]
        .as_str()
        .unwrap()
        .contains("exit status: 3"));
    // Backoff: the pauses between the failures of `quits` grow.
    let downs: Vec<f64> = agent
        .log()
        .iter()
        .filter(|l| l.contains("source down") && l.contains("stream=\"quits\""))
        .filter_map(|l| {
            l.split("restarting in ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(downs.len() >= 3, "{downs:?}");
    assert!(downs.len() <= 6, "retried too often: {downs:?}");
    assert!(
        downs.windows(2).all(|w| w[1] > w[0] * 1.3),
        "the pauses do not grow: {downs:?}"
    );
    // The good stream never noticed.
    let s = ok.stats();
    assert!(!s.ended);
    assert_eq!(s.seq_gaps, 0);
    assert!(s.frames as f64 >= 8.0 * 15.0 * 0.9, "{s:?}");
    assert_eq!(agent.stream_state("ok")["restarts"], 0);
}

#[test]
fn no_child_is_left_after_stop_reload_and_shutdown() {
    let stanza = exec_stream("ex", "160x120", 10);
    let mut agent = Agent::start(&stanza);
    agent.wait_ready(1);
    let first = agent.children();
    assert_eq!(first.len(), 1);
    let gone = |pids: &[u32]| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while pids
            .iter()
            .any(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        {
            assert!(
                Instant::now() < deadline,
                "{pids:?} still there (a zombie or alive)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let post = |path: &str| streamswitch_tests::http::post_json(&agent.http_url(path), "{}").status;
    assert_eq!(post("/api/streams/ex/stop"), 200);
    gone(&first);
    assert_eq!(agent.children(), Vec::<u32>::new());
    assert_eq!(post("/api/streams/ex/start"), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while agent.stream_state("ex")["state"] != "live" {
        assert!(Instant::now() < deadline, "never live again");
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = agent.children();
    assert_eq!(second.len(), 1);

    // Reload without the stream: its child goes.
    agent.write_config("", &test_stream("other", 160, 120, 10));
    let applied = agent.count_log("config applied");
    agent.sighup();
    agent.wait_for_more_log("config applied", applied, Duration::from_secs(20));
    gone(&second);
    assert_eq!(agent.children(), Vec::<u32>::new());

    // Back again, then shutdown: no child outlives the agent.
    agent.write_config("", &stanza);
    let applied = agent.count_log("config applied");
    agent.sighup();
    agent.wait_for_more_log("config applied", applied, Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(10);
    while agent.children().is_empty() {
        assert!(Instant::now() < deadline, "no child after the reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    let third = agent.children();
    let status = agent.terminate(Duration::from_secs(10)).expect("exit");
    assert!(status.success());
    gone(&third);
}
