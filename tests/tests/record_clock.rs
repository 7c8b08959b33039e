//! A wall-clock step of more than 2 s closes the file and starts one named
//! with the new time; smaller changes do not; media time inside each file
//! runs on without a jump. The step comes through the agent's test seam
//! (STREAMSWITCH_TEST_CLOCK_OFFSET_FILE), not the machine's clock.

mod record_common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use record_common::*;
use streamswitch_tests::Agent;

fn name_unix_secs(path: &std::path::Path) -> i64 {
    // ..._YYYYMMDDTHHMMSS.mmmZ...: compare as seconds of the day is not
    // enough across midnight; use `date` to parse.
    let name = path.file_name().unwrap().to_str().unwrap();
    let t = &name_time(name)[..15];
    let iso = format!(
        "{}-{}-{} {}:{}:{} UTC",
        &t[0..4],
        &t[4..6],
        &t[6..8],
        &t[9..11],
        &t[11..13],
        &t[13..15]
    );
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &iso, "+%s"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Largest gap between consecutive video packets, seconds.
fn largest_video_gap(path: &std::path::Path) -> f64 {
    let out = ffprobe_csv(
        path,
        &["-select_streams", "v", "-show_entries", "packet=dts_time"],
    );
    let t: Vec<f64> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert!(
        t.first().is_some_and(|&f| f < 0.05),
        "{}: starts at {:?}",
        path.display(),
        t.first()
    );
    t.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}

#[test]
fn a_clock_step_splits_the_file() {
    let offset_dir = tempfile::tempdir().unwrap();
    let offset = offset_dir.path().join("offset_ms");
    std::fs::write(&offset, "0").unwrap();
    // This test binary runs this one test: the variable reaches only the
    // agent it spawns.
    std::env::set_var("STREAMSWITCH_TEST_CLOCK_OFFSET_FILE", &offset);
    let agent = Agent::start(&recorded_stream("cam", 60, ""));
    agent.wait_ready(1);
    let port = agent.http_port;
    let data = agent.data_dir();
    wait_for("recording", Duration::from_secs(20), || {
        (status(port, "cam")["fragments"].as_u64().unwrap() >= 2).then_some(())
    });
    // A 1.5 s adjustment is not a step.
    std::fs::write(&offset, "1500").unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert!(closed_files(&data).is_empty(), "{:?}", closed_files(&data));

    // One hour forward.
    std::fs::write(&offset, "3600000").unwrap();
    let stepped_at = now_secs();
    let first = wait_for("the file to close", Duration::from_secs(10), || {
        closed_files(&data).first().cloned()
    });
    let second = wait_for("the next file", Duration::from_secs(10), || {
        partial_files(&data).first().cloned()
    });
    let second_start = name_unix_secs(std::path::Path::new(
        second.to_str().unwrap().trim_end_matches(".partial"),
    ));
    assert!(
        (second_start - (stepped_at + 3600)).abs() <= 4,
        "new file named {second_start}, expected about {}",
        stepped_at + 3600
    );
    let first_start = name_unix_secs(&first);
    assert!(
        (first_start - now_secs()).abs() < 30,
        "first file keeps its pre-step name"
    );
    // Media time inside the first file never jumps, and it holds about
    // the time until the step (plus up to a keyframe interval).
    assert_eq!(decode_errors(&first), "");
    assert!(largest_video_gap(&first) < 0.25);
    let d = declared_duration(&first);
    let expected = (stepped_at - first_start) as f64;
    assert!(
        (d - expected).abs() < 3.5,
        "first file {d} s, step came {expected} s in"
    );
    wait_for(
        "the second file to have media",
        Duration::from_secs(10),
        || (status(port, "cam")["fragments"].as_u64().unwrap() >= 8).then_some(()),
    );
    let r = http(
        port,
        "POST",
        "/api/recordings/cam/stop",
        &[("Content-Type", "application/json")],
    );
    assert_eq!(r.status, 200);
    let files = wait_for("the second file closed", Duration::from_secs(10), || {
        let f = closed_files(&data);
        (f.len() == 2).then_some(f)
    });
    for f in &files {
        assert_eq!(decode_errors(f), "", "{}", f.display());
        assert!(largest_video_gap(f) < 0.25, "{}", f.display());
    }
}
