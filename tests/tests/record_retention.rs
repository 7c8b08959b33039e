//! Retention: by age at start-up, by total bytes before each new file, and
//! by free space on a small real filesystem (a tmpfs: the test fails when
//! it cannot mount one, see `Tmpfs`), and by age while the agent runs.

mod record_common;

use std::time::Duration;

use record_common::*;
use streamswitch_tests::Agent;

#[test]
fn old_files_go_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("data/recordings/cam");
    let mut kept = Vec::new();
    let mut gone = Vec::new();
    for (ago, keep) in [(400 * 86_400, false), (2 * 3600, false), (600, true)] {
        let (day, name) = name_for_seconds_ago("cam", ago);
        std::fs::create_dir_all(rec.join(&day)).unwrap();
        let path = rec.join(&day).join(&name);
        std::fs::write(&path, vec![0u8; 1000]).unwrap();
        if keep {
            kept.push(path)
        } else {
            gone.push(path)
        }
    }
    // A stranger's file is never touched, whatever its age.
    let stranger = rec.join("notes.txt");
    std::fs::write(&stranger, "keep me").unwrap();
    let agent = Agent::start_in(
        dir,
        &recorded_stream("cam", 60, "[recording]\nmax_age_hours = 1\n"),
    );
    // Start-up retention runs as the agent starts its recorders.
    wait_for("start-up retention", Duration::from_secs(15), || {
        gone.iter().all(|p| !p.exists()).then_some(())
    });
    assert!(
        !gone[0].parent().unwrap().exists(),
        "the emptied day directory goes too"
    );
    for p in &kept {
        assert!(p.exists(), "{} should stay", p.display());
    }
    assert!(stranger.exists());
    drop(agent);
}

#[test]
fn total_bytes_stay_under_max_bytes() {
    const MAX: u64 = 300_000;
    let agent = Agent::start(&recorded_stream(
        "cam",
        1,
        &format!("[recording]\nmax_bytes = {MAX}\nfsync = \"segment\"\n"),
    ));
    agent.wait_ready(1);
    let (port, data) = (agent.http_port, agent.data_dir());
    let first = wait_for("a first file", Duration::from_secs(20), || {
        closed_files(&data).first().cloned()
    });
    wait_for("many files", Duration::from_secs(60), || {
        (status(port, "cam")["files"].as_u64().unwrap() >= 10).then_some(())
    });
    let files = closed_files(&data);
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    assert!(total <= MAX, "{total} bytes in {} files", files.len());
    assert!(files.len() < 10, "oldest deleted: {} left", files.len());
    assert!(!first.exists(), "the oldest file goes first");
    for f in &files {
        assert_eq!(decode_errors(f), "", "{}", f.display());
    }
}

#[test]
fn free_space_stays_above_min_free_percent() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("data"), "6m") else {
        return;
    };
    // Something else on the disk takes 40%.
    std::fs::write(fs.dir.join("ballast"), vec![1u8; 2_400_000]).unwrap();
    let stream = "[[stream]]\nname = \"cam\"\nsource = { kind = \"test\", width = 320, height = 240, fps = 25, bitrate_kbps = 1500, audio = true, keyframe_seconds = 1.0 }\nrecord = { enabled = true, segment_seconds = 1, fragment_ms = 500 }\n[recording]\nmin_free_percent = 40\n";
    let mut agent = Agent::start_in(dir, stream);
    agent.wait_ready(1);
    let (port, data) = (agent.http_port, agent.data_dir());
    let first = wait_for("a first file", Duration::from_secs(20), || {
        closed_files(&data).first().cloned()
    });
    let mut lowest: f64 = 100.0;
    wait_for("many files", Duration::from_secs(90), || {
        lowest = lowest.min(fs.free_percent());
        (status(port, "cam")["files"].as_u64().unwrap() >= 15).then_some(())
    });
    let st = status(port, "cam");
    assert_eq!(st["errors"], 0, "{st}");
    assert!(!first.exists(), "the oldest file goes first");
    // Retention keeps 40% free before each file; the file being written
    // (about 1 s at 1.5 Mbit/s, under 5% of 6 MiB) may eat into it.
    assert!(lowest >= 33.0, "free space fell to {lowest:.1}%");
    assert!(closed_files(&data).len() < 15);
    agent.kill();
    for f in closed_files(&data) {
        assert_eq!(decode_errors(&f), "", "{}", f.display());
    }
    // Unmount before the data dir is removed.
    drop(fs);
    drop(agent);
}

#[test]
fn files_that_grow_too_old_go_while_the_agent_runs() {
    // Recording runs; then files older than max_age_hours appear (as they
    // would after an hour of running): retention removes them without a
    // restart, at the latest when the next file opens.
    let agent = Agent::start(&recorded_stream(
        "cam",
        2,
        "[recording]\nmax_age_hours = 1\n",
    ));
    agent.wait_ready(1);
    let data = agent.data_dir();
    wait_for("a first file", Duration::from_secs(20), || {
        closed_files(&data).first().cloned()
    });
    let rec = data.join("recordings/cam");
    let mut old = Vec::new();
    for ago in [3 * 3600, 2 * 3600] {
        let (day, name) = name_for_seconds_ago("cam", ago);
        std::fs::create_dir_all(rec.join(&day)).unwrap();
        let path = rec.join(&day).join(&name);
        std::fs::write(&path, vec![0u8; 1000]).unwrap();
        old.push(path);
    }
    let (day, name) = name_for_seconds_ago("cam", 1800);
    std::fs::create_dir_all(rec.join(&day)).unwrap();
    let young = rec.join(&day).join(&name);
    std::fs::write(&young, vec![0u8; 1000]).unwrap();
    wait_for("retention while running", Duration::from_secs(15), || {
        old.iter().all(|p| !p.exists()).then_some(())
    });
    assert!(young.exists(), "a file within max_age_hours went too");
    assert!(agent.count_log("retention deleted") >= 2);
}
