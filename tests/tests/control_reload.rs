//! Live reconfiguration through SIGHUP: streams added, removed and changed
//! while the agent runs, without touching the others; a bad file changes
//! nothing.

use std::time::{Duration, Instant};

use serde_json::Value;
use streamswitch_tests::http::get;
use streamswitch_tests::watch::{ffprobe, probed_stream, RtpWatch};
use streamswitch_tests::{test_stream, Agent};

const FPS: u32 = 15;

fn stream(name: &str, width: u32, fps: u32) -> String {
    test_stream(name, width, width * 3 / 4, fps)
}

fn recorded(name: &str) -> String {
    format!(
        "{}record = {{ enabled = true, segment_seconds = 60, fragment_ms = 500 }}\n",
        stream(name, 320, FPS)
    )
}

fn stream_names(agent: &Agent) -> Vec<String> {
    let v: Value = serde_json::from_slice(&get(&agent.http_url("/api/streams")).body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Closed recordings of `stream` (not `.partial`).
fn closed_files(agent: &Agent, stream: &str) -> Vec<std::path::PathBuf> {
    let dir = agent.data_dir().join("recordings").join(stream);
    let mut out = Vec::new();
    for day in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(day.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if f.path().extension().is_some_and(|e| e == "mp4") {
                out.push(f.path());
            }
        }
    }
    out
}

#[test]
fn sighup_adds_removes_and_changes_streams_and_leaves_the_others_alone() {
    let initial = format!(
        "{}{}{}",
        stream("keep", 320, FPS),
        recorded("gone"),
        stream("change", 320, FPS)
    );
    let agent = Agent::start(&initial);
    agent.wait_ready(3);
    let keep = RtpWatch::start(agent.rtsp_port, &agent.rtsp_url("keep")).unwrap();
    let gone = RtpWatch::start(agent.rtsp_port, &agent.rtsp_url("gone")).unwrap();
    assert!(keep.wait_for(Duration::from_secs(10), |s| s.frames > FPS as u64));
    assert!(gone.wait_for(Duration::from_secs(10), |s| s.packets > 0));
    // The recording of `gone` needs a fragment or two on disk.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all: Value =
            serde_json::from_slice(&get(&agent.http_url("/api/recordings/status")).body).unwrap();
        let fragments = all
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stream"] == "gone")
            .and_then(|s| s["fragments"].as_u64())
            .unwrap_or(0);
        if fragments >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gone recorded no fragment: {all}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = keep.stats();
    let started = Instant::now();

    let changed = format!(
        "{}{}{}",
        stream("keep", 320, FPS),
        stream("change", 320, 10),
        stream("added", 320, FPS)
    );
    agent.write_config("", &changed);
    let applied = agent.count_log("config applied");
    agent.sighup();
    agent.wait_for_more_log("config applied", applied, Duration::from_secs(20));
    let line = agent
        .log()
        .into_iter()
        .rfind(|l| l.contains("config applied"))
        .unwrap();
    assert!(
        line.contains(r#"added ["added"]"#)
            && line.contains(r#"removed ["gone"]"#)
            && line.contains(r#"restarted ["change"]"#),
        "{line}"
    );

    // The added stream serves.
    let probed = ffprobe(&["-rtsp_transport", "tcp"], &agent.rtsp_url("added")).unwrap();
    assert_eq!(probed_stream(&probed, "video").unwrap()["width"], 320);
    // The removed stream's reader is closed, and its recording is a closed,
    // decodable file.
    assert!(
        gone.wait_for(Duration::from_secs(10), |s| s.ended),
        "the removed stream's RTSP reader was not closed"
    );
    let files = closed_files(&agent, "gone");
    assert_eq!(files.len(), 1, "{files:?}");
    let probed = ffprobe(&[], files[0].to_str().unwrap()).unwrap();
    assert!(probed_stream(&probed, "video").is_some());
    // The changed stream runs at its new rate.
    let changed_probe = ffprobe(&["-rtsp_transport", "tcp"], &agent.rtsp_url("change")).unwrap();
    assert_eq!(
        probed_stream(&changed_probe, "video").unwrap()["r_frame_rate"],
        "10/1"
    );
    assert_eq!(stream_names(&agent), ["added", "change", "keep"]);

    // The untouched stream's reader lost nothing meanwhile.
    std::thread::sleep(Duration::from_secs(1));
    let after = keep.stats();
    let seconds = started.elapsed().as_secs_f64();
    let frames = (after.frames - before.frames) as f64;
    assert!(!after.ended);
    assert_eq!(after.seq_gaps, 0, "sequence gaps on the untouched stream");
    assert_eq!(after.ts_back, 0);
    assert!(
        frames >= (seconds - 0.5) * FPS as f64,
        "{frames} frames in {seconds:.1} s on the untouched stream"
    );

    // A bad file: refused with file, line and key; everything keeps running.
    agent.write_config(
        "",
        &format!("{changed}\n[hls]\npart_ms = 200\nsegmnets = 3\n"),
    );
    let refused = agent.count_log("config not reloaded");
    agent.sighup();
    agent.wait_for_more_log("config not reloaded", refused, Duration::from_secs(20));
    let line = agent
        .log()
        .into_iter()
        .rfind(|l| l.contains("config not reloaded"))
        .unwrap();
    let file_line = format!("{}:", agent.config_path.display());
    assert!(
        line.contains(&file_line) && line.contains("segmnets"),
        "no file:line and key in {line}"
    );
    assert_eq!(stream_names(&agent), ["added", "change", "keep"]);
    let frames_before = keep.stats().frames;
    assert!(keep.wait_for(Duration::from_secs(5), |s| s.frames
        > frames_before + FPS as u64));
    assert_eq!(keep.stats().seq_gaps, 0);
}

#[test]
fn changing_a_record_section_restarts_only_the_recorder() {
    let agent = Agent::start(&stream("cam", 320, FPS));
    agent.wait_ready(1);
    let watch = RtpWatch::start(agent.rtsp_port, &agent.rtsp_url("cam")).unwrap();
    assert!(watch.wait_for(Duration::from_secs(10), |s| s.frames > 5));
    agent.write_config("", &recorded("cam"));
    let applied = agent.count_log("config applied");
    agent.sighup();
    agent.wait_for_more_log("config applied", applied, Duration::from_secs(20));
    agent.wait_for_log("recording (segments of 60 s)", Duration::from_secs(10));
    let frames = watch.stats().frames;
    assert!(watch.wait_for(Duration::from_secs(5), |s| s.frames > frames + FPS as u64));
    let s = watch.stats();
    assert_eq!(s.seq_gaps, 0, "the source did not restart: no gap");
    assert!(!s.ended);
    assert_eq!(agent.count_log("source restarting"), 0);
}
