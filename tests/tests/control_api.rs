//! The stream manager over HTTP: the config read, replaced and patched
//! (applied, saved with its comments, refused whole when bad), the RTSP
//! port moved while an HLS reader plays on, and a stream's source and
//! recording started and stopped.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use streamswitch_tests::http::{get, post_json, send};
use streamswitch_tests::m3u8;
use streamswitch_tests::rtsp_client::RawRtsp;
use streamswitch_tests::watch::{ffprobe, probed_stream};
use streamswitch_tests::{agent_bin, run_with_timeout, test_stream, Agent};

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

fn patch(agent: &Agent, body: &Value) -> (u16, Value) {
    let r = send(
        "PATCH",
        &agent.http_url("/api/config"),
        &[("Content-Type", "application/merge-patch+json")],
        body.to_string().as_bytes(),
    )
    .unwrap();
    (r.status, json_of(&r.body))
}

fn wait_state(agent: &Agent, name: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if agent.stream_state(name)["state"] == state {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{name} never became {state}: {}", agent.stream_state(name));
}

fn check_config(path: &Path) {
    let (ok, out, err) = run_with_timeout(
        Command::new(agent_bin()).arg("check-config").arg(path),
        Duration::from_secs(10),
    );
    assert!(ok, "the saved config does not check: {out}{err}");
}

#[test]
fn patch_and_put_are_applied_and_saved_and_a_bad_patch_changes_nothing() {
    let agent = Agent::start(&test_stream("cam", 320, 240, 15));
    agent.wait_ready(1);
    let (status, body) = patch(
        &agent,
        &json!({"stream": {"extra": {"source": {"kind": "test", "width": 320, "height": 240, "fps": 10}}}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["added"], json!(["extra"]));
    wait_state(&agent, "extra", "live");
    let saved = std::fs::read_to_string(&agent.config_path).unwrap();
    assert!(saved.contains("# Written by the test fixture."), "{saved}");
    assert!(saved.contains("extra"), "{saved}");
    check_config(&agent.config_path);
    let running = json_of(&get(&agent.http_url("/api/config")).body);
    assert_eq!(running["stream"][1]["source"]["fps"], 10);

    // A bad patch: 400 naming the path; nothing changes on disk or in memory.
    let (status, body) = patch(
        &agent,
        &json!({"stream": {"extra": {"source": {"fps": 0}}}, "hls": {"segments": 5}}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["key"], "stream[1].source.fps", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("1 to 120"),
        "{body}"
    );
    assert_eq!(std::fs::read_to_string(&agent.config_path).unwrap(), saved);
    assert_eq!(json_of(&get(&agent.http_url("/api/config")).body), running);
    let (status, body) = patch(&agent, &json!({"rtsp": {"bogus": 1}}));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("bogus"), "{body}");

    // PUT a whole config as TOML: the extra stream goes.
    let toml = std::fs::read_to_string(&agent.config_path)
        .unwrap()
        .split("[[stream]]")
        .take(2)
        .collect::<Vec<_>>()
        .join("[[stream]]");
    let r = send(
        "PUT",
        &agent.http_url("/api/config"),
        &[("Content-Type", "application/toml")],
        toml.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json_of(&r.body)["removed"], json!(["extra"]));
    assert!(agent.stream_state("extra").is_null());
    check_config(&agent.config_path);
    assert!(!std::fs::read_to_string(&agent.config_path)
        .unwrap()
        .contains("extra"));

    // PUT as JSON, the shape GET gives: a change of [hls] only.
    let mut config = json_of(&get(&agent.http_url("/api/config")).body);
    config["hls"]["segments"] = json!(4);
    let r = send(
        "PUT",
        &agent.http_url("/api/config"),
        &[("Content-Type", "application/json")],
        config.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json_of(&r.body)["sections"], json!(["hls"]));
    // The config survives a restart of the agent.
    let mut agent = agent;
    agent.restart();
    assert_eq!(
        json_of(&get(&agent.http_url("/api/config")).body)["hls"]["segments"],
        4
    );
}

#[test]
fn moving_the_rtsp_port_keeps_hls_readers_playing() {
    let agent = Agent::start(&test_stream("cam", 320, 240, 15));
    agent.wait_ready(1);
    let playlist_url = agent.http_url("/cam/index.m3u8");
    assert_eq!(get(&playlist_url).status, 200);
    // An HLS reader: reloads the playlist and fetches each new segment.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let fetched = Arc::new(Mutex::new(0u32));
    let reader = {
        let (stop, failures, fetched) = (stop.clone(), failures.clone(), fetched.clone());
        let base = agent.http_url("/cam/");
        std::thread::spawn(move || {
            let mut last = None;
            while !stop.load(Ordering::Relaxed) {
                let r = get(&playlist_url);
                if r.status != 200 {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("playlist {}", r.status));
                    continue;
                }
                let Ok(p) = m3u8::parse(&r.text()) else {
                    failures.lock().unwrap().push("bad playlist".into());
                    continue;
                };
                let newer: Vec<_> = p.segments.iter().filter(|s| Some(s.msn) > last).collect();
                for seg in newer {
                    let s = get(&format!("{base}{}", seg.uri));
                    if s.status != 200 {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{} {}", seg.uri, s.status));
                    }
                    *fetched.lock().unwrap() += 1;
                }
                last = p.segments.last().map(|s| s.msn).or(last);
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    // The HLS reader is reading before the port moves.
    let deadline = Instant::now() + Duration::from_secs(20);
    while *fetched.lock().unwrap() == 0 {
        assert!(Instant::now() < deadline, "the HLS reader fetched nothing");
        std::thread::sleep(Duration::from_millis(100));
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (status, body) = patch(
        &agent,
        &json!({"rtsp": {"listen": format!("127.0.0.1:{port}")}}),
    );
    assert_eq!(status, 200, "{body}");
    let url = format!("rtsp://127.0.0.1:{port}/cam");
    let probed = ffprobe(&["-rtsp_transport", "tcp"], &url).unwrap();
    assert!(probed_stream(&probed, "video").is_some());
    assert!(
        RawRtsp::connect(agent.rtsp_port).is_err(),
        "the old port still accepts"
    );
    let fetched_then = *fetched.lock().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert!(
        *fetched.lock().unwrap() > fetched_then,
        "HLS stopped advancing"
    );
    assert_eq!(*failures.lock().unwrap(), Vec::<String>::new());
}

#[test]
fn a_stream_and_its_recording_start_and_stop_through_the_api() {
    let agent = Agent::start(&test_stream("cam", 320, 240, 15));
    agent.wait_ready(1);
    let r = post_json(&agent.http_url("/api/streams/cam/stop"), "{}");
    assert_eq!(r.status, 200, "{}", r.text());
    wait_state(&agent, "cam", "stopped");
    assert_eq!(agent.stream_state("cam")["source_enabled"], false);
    let mut rtsp = RawRtsp::connect(agent.rtsp_port).unwrap();
    let describe = rtsp
        .request("DESCRIBE", &agent.rtsp_url("cam"), &[])
        .unwrap();
    assert_eq!(describe.status, 503);
    assert!(describe.header("Retry-After").is_some());

    let r = post_json(&agent.http_url("/api/streams/cam/start"), "{}");
    assert_eq!(r.status, 200, "{}", r.text());
    wait_state(&agent, "cam", "live");
    let probed = ffprobe(&["-rtsp_transport", "tcp"], &agent.rtsp_url("cam")).unwrap();
    assert!(probed_stream(&probed, "video").is_some());

    let r = post_json(&agent.http_url("/api/recordings/cam/start"), "{}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json_of(&r.body)["enabled"], true);
    let deadline = Instant::now() + Duration::from_secs(15);
    while agent.stream_state("cam")["recording"]["fragments"].as_u64() < Some(2) {
        assert!(Instant::now() < deadline, "no fragments recorded");
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = post_json(&agent.http_url("/api/recordings/cam/stop"), "{}");
    assert_eq!(r.status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while agent.stream_state("cam")["recording"]["files"].as_u64() < Some(1) {
        assert!(Instant::now() < deadline, "the file was not closed");
        std::thread::sleep(Duration::from_millis(100));
    }
    for (path, status) in [
        ("/api/streams/nope/stop", 404),
        ("/api/recordings/nope/start", 404),
        ("/api/streams/cam/explode", 404),
    ] {
        let r = post_json(&agent.http_url(path), "{}");
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(json_of(&r.body)["error"].is_string());
    }
    let r = post_json(&agent.http_url("/api/streams/cam/keyframe"), "{}");
    assert_eq!(r.status, 200);
}

/// Threads, open descriptors, child processes and runtime tasks of the
/// agent. The runtime's own threads (named `streamswitch`: its workers and
/// its blocking pool, which tokio grows and shrinks by itself, and which
/// this very request uses) are not counted; every thread the agent starts
/// itself (recorders, encoders, RTSP) is.
fn resources(agent: &Agent) -> (usize, usize, usize, u64) {
    let pid = agent.pid();
    let count = |dir: String| std::fs::read_dir(dir).map_or(0, |d| d.count());
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() != "streamswitch")
        })
        .count();
    let status = json_of(&get(&agent.http_url("/api/status")).body);
    (
        threads,
        count(format!("/proc/{pid}/fd")),
        agent.children().len(),
        status["tasks"].as_u64().expect("tasks in /api/status"),
    )
}

#[test]
fn fifty_add_remove_cycles_leave_nothing_behind() {
    let agent = Agent::start(&test_stream("base", 160, 120, 10));
    agent.wait_ready(1);
    wait_state(&agent, "base", "live");
    // One cycle first, so that lazily created things (blocking-pool
    // threads, the first recorder) exist before counting.
    let cycle = |i: u32| {
        let name = format!("s{i}");
        let exec = i % 2 == 1;
        let source = if exec {
            json!({"kind": "exec", "command": ["sh", "-c", "exec sleep 30"], "stall_seconds": 30})
        } else {
            json!({"kind": "test", "width": 64, "height": 64, "fps": 5, "audio": false})
        };
        let (status, body) = patch(
            &agent,
            &json!({"stream": {&name: {"source": source, "record": {"enabled": true}}}}),
        );
        assert_eq!(status, 200, "{body}");
        if exec {
            let deadline = Instant::now() + Duration::from_secs(10);
            while agent.children().is_empty() {
                assert!(Instant::now() < deadline, "the exec child never started");
                std::thread::sleep(Duration::from_millis(20));
            }
        } else {
            wait_state(&agent, &name, "live");
        }
        let (status, body) = patch(&agent, &json!({"stream": {&name: null}}));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["removed"], json!([name]));
    };
    cycle(0);
    cycle(1);
    std::thread::sleep(Duration::from_secs(1));
    let before = resources(&agent);
    for i in 2..52 {
        cycle(i);
    }
    // Let what is being torn down finish.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut after = resources(&agent);
    while after != before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        after = resources(&agent);
    }
    println!("threads, fds, children, tasks: before {before:?}, after 50 cycles {after:?}");
    assert_eq!(after, before, "(threads, fds, children, tasks)");
    assert_eq!(agent.stream_state("base")["state"], "live");
}

#[test]
fn auth_changes_apply_to_the_next_request_and_playing_sessions_go_on() {
    let agent = Agent::start(&test_stream("cam", 320, 240, 15));
    agent.wait_ready(1);
    let playing =
        streamswitch_tests::watch::RtpWatch::start(agent.rtsp_port, &agent.rtsp_url("cam"))
            .unwrap();
    let (status, body) = patch(&agent, &json!({"http": {"auth": {"tokens": ["t-1"]}}}));
    assert_eq!(status, 200, "{body}");
    let url = agent.http_url("/api/streams");
    assert_eq!(get(&url).status, 401);
    let bearer = ("Authorization", "Bearer t-1");
    assert_eq!(
        streamswitch_tests::http::request("GET", &url, &[bearer])
            .unwrap()
            .status,
        200
    );
    let r = send(
        "PATCH",
        &agent.http_url("/api/config"),
        &[("Content-Type", "application/json"), bearer],
        json!({"rtsp": {"auth": {"methods": ["basic"], "users": [{"name": "u", "password": "p"}]}}})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let describe = RawRtsp::connect(agent.rtsp_port)
        .unwrap()
        .request("DESCRIBE", &agent.rtsp_url("cam"), &[])
        .unwrap();
    assert_eq!(describe.status, 401);
    let frames = playing.stats().frames;
    assert!(playing.wait_for(Duration::from_secs(5), |s| s.frames > frames + 15));
    let s = playing.stats();
    assert!(!s.ended);
    assert_eq!(s.seq_gaps, 0);
}
