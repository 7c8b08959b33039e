//! A full disk pauses recording, reports the error, and recording resumes
//! once space returns; the files written stay playable, and RTSP readers
//! do not notice (ffmpeg and ffprobe read the stream while the disk is full).

mod record_common;

use std::time::Duration;

use record_common::*;
use std::process::Command;

use streamswitch_tests::{run_with_timeout, Agent};

#[test]
fn a_full_disk_pauses_recording_and_space_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("data"), "2m") else {
        return;
    };
    // Leave about 600 kB for recordings; retention is off, so the disk fills.
    std::fs::write(fs.dir.join("ballast"), vec![1u8; 1_400_000]).unwrap();
    let stream = "[[stream]]\nname = \"cam\"\nsource = { kind = \"test\", width = 320, height = 240, fps = 25, bitrate_kbps = 1000, audio = true, keyframe_seconds = 1.0 }\nrecord = { enabled = true, segment_seconds = 2, fragment_ms = 500 }\n[recording]\nmin_free_percent = 0\nmax_age_hours = 0\n";
    let mut agent = Agent::start_in(dir, stream);
    agent.wait_ready(1);
    let (port, data) = (agent.http_port, agent.data_dir());
    let paused = wait_for("the disk to fill", Duration::from_secs(40), || {
        let s = status(port, "cam");
        (s["paused"] == true).then_some(s)
    });
    let error = paused["last_error"].as_str().unwrap().to_owned();
    assert!(error.contains("No space left"), "{error}");
    assert!(paused["errors"].as_u64().unwrap() >= 1);
    assert_eq!(paused["recording"], false);
    // The source goes on while recording is paused.
    let before = http(port, "GET", "/api/streams", &[]).json();
    assert_eq!(before[0]["state"], "live", "{before}");
    // RTSP readers get every frame and decode cleanly while the recorder
    // keeps failing and retrying on the full disk.
    let url = agent.rtsp_url("cam");
    let probe = std::thread::spawn(move || {
        run_with_timeout(
            Command::new("ffprobe").args([
                "-v",
                "error",
                "-rtsp_transport",
                "tcp",
                "-read_intervals",
                "%+5",
                "-select_streams",
                "v",
                "-count_packets",
                "-show_entries",
                "stream=nb_read_packets",
                "-of",
                "csv=p=0",
                &url,
            ]),
            Duration::from_secs(30),
        )
    });
    let (ok, _, err) = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-v", "error", "-xerror", "-rtsp_transport", "tcp", "-i"])
            .arg(agent.rtsp_url("cam"))
            .args(["-t", "5", "-f", "null", "-"]),
        Duration::from_secs(30),
    );
    assert!(
        ok && err.is_empty(),
        "RTSP decode while the disk is full: {err}"
    );
    let (ok, packets, err) = probe.join().unwrap();
    assert!(ok, "{err}");
    let packets: u64 = packets.trim().parse().unwrap_or(0);
    // 5 s at 25 fps.
    assert!(
        packets >= 110,
        "an RTSP reader got {packets} video frames in 5 s"
    );
    let still = status(port, "cam");
    assert!(
        still["errors"].as_u64().unwrap() > paused["errors"].as_u64().unwrap(),
        "it kept retrying: {still}"
    );
    assert_eq!(still["paused"], true, "{still}");
    let files_when_full = closed_files(&data);
    assert!(!files_when_full.is_empty());
    for f in &files_when_full {
        assert_eq!(decode_errors(f), "", "{}", f.display());
    }

    // Space returns.
    std::fs::remove_file(fs.dir.join("ballast")).unwrap();
    let resumed = wait_for("recording to resume", Duration::from_secs(20), || {
        let s = status(port, "cam");
        (s["recording"] == true && s["paused"] == false).then_some(s)
    });
    let files_at_resume = resumed["files"].as_u64().unwrap();
    wait_for(
        "a new file closed after resuming",
        Duration::from_secs(20),
        || (status(port, "cam")["files"].as_u64().unwrap() > files_at_resume).then_some(()),
    );
    agent.kill();
    let files = closed_files(&data);
    assert!(files.len() > files_when_full.len());
    for f in &files {
        assert_eq!(decode_errors(f), "", "{}", f.display());
    }
    drop(fs);
    drop(agent);
}
