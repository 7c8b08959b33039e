//! No recording lost to clocks, stalls or a second agent: files named
//! while the clock was not synchronised survive retention after NTP; a
//! disk that stalls for 4 s loses no frame; a second agent on the same
//! data dir exits before it touches the first one's files.
//!
//! Each test sets an environment variable for the agent it spawns only
//! through `Agent::start_with_env`; cargo runs the tests of this file in
//! threads of one process, so none uses `std::env::set_var`.

mod record_common;

use std::process::Command;
use std::time::Duration;

use record_common::*;
use streamswitch_tests::{agent_bin, run_with_timeout, Agent};

/// 56 years back, in milliseconds: a board without an RTC at boot.
const BOOT_AT_1970_MS: i64 = -56 * 365 * 86_400 * 1000;

#[test]
fn files_named_before_the_clock_synced_survive_retention() {
    let offset_dir = tempfile::tempdir().unwrap();
    let offset = offset_dir.path().join("offset_ms");
    std::fs::write(&offset, BOOT_AT_1970_MS.to_string()).unwrap();
    let agent = Agent::start_with_env(
        // No free-space limit: this test is about age alone (a shared dev
        // disk may well be under 10% free).
        &recorded_stream(
            "cam",
            1,
            "[recording]\nmax_age_hours = 1\nmin_free_percent = 0.0\n",
        ),
        &[(
            "STREAMSWITCH_TEST_CLOCK_OFFSET_FILE",
            offset.to_str().unwrap(),
        )],
    );
    agent.wait_ready(1);
    let (port, data) = (agent.http_port, agent.data_dir());
    let at_boot = wait_for("three files at 1970", Duration::from_secs(30), || {
        let f = closed_files(&data);
        (f.len() >= 3).then_some(f)
    });
    for f in &at_boot {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(name_time(name).starts_with("197"), "{name}");
    }
    // NTP syncs: the clock steps 56 years forward. Retention runs as each
    // new file opens; every 1970 name is now "56 years old".
    std::fs::write(&offset, "0").unwrap();
    let files_then = status(port, "cam")["files"].as_u64().unwrap();
    wait_for(
        "files named after the sync",
        Duration::from_secs(30),
        || (status(port, "cam")["files"].as_u64().unwrap() >= files_then + 4).then_some(()),
    );
    let now: Vec<_> = closed_files(&data);
    assert!(
        now.iter()
            .any(|f| name_time(f.file_name().unwrap().to_str().unwrap()).starts_with("20")),
        "{now:?}"
    );
    for f in &at_boot {
        assert!(
            f.exists(),
            "retention deleted {} (named at 1970)",
            f.display()
        );
    }
}

#[test]
fn a_four_second_write_stall_loses_no_frame() {
    let hook_dir = tempfile::tempdir().unwrap();
    let stall = hook_dir.path().join("stall_ms");
    let agent = Agent::start_with_env(
        &recorded_stream("cam", 60, ""),
        &[(
            "STREAMSWITCH_TEST_WRITE_STALL_FILE",
            stall.to_str().unwrap(),
        )],
    );
    agent.wait_ready(1);
    let (port, data) = (agent.http_port, agent.data_dir());
    wait_for("recording", Duration::from_secs(20), || {
        (status(port, "cam")["fragments"].as_u64().unwrap() >= 2).then_some(())
    });
    // The next fragment write waits 4 s, as an SD card collecting garbage.
    std::fs::write(&stall, "4000").unwrap();
    wait_for("the stall", Duration::from_secs(10), || {
        (!stall.exists()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(7));
    let st = status(port, "cam");
    assert_eq!(st["dropped_frames"], 0, "{st}");
    assert!(
        st["queue_peak_bytes"].as_u64().unwrap() > 50_000,
        "the queue held the stall: {st}"
    );
    let stop = http(
        port,
        "POST",
        "/api/recordings/cam/stop",
        &[("Content-Type", "application/json")],
    );
    assert_eq!(stop.status, 200);
    let files = wait_for("the file closed", Duration::from_secs(10), || {
        let f = closed_files(&data);
        (!f.is_empty() && partial_files(&data).is_empty()).then_some(f)
    });
    // One file, no gap: the hub never skipped the recorder.
    assert_eq!(files.len(), 1, "{files:?}");
    let dts: Vec<f64> = ffprobe_csv(
        &files[0],
        &["-select_streams", "v", "-show_entries", "packet=dts_time"],
    )
    .lines()
    .filter_map(|l| l.trim().parse().ok())
    .collect();
    let gap = dts.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(gap < 0.1, "a {gap:.2} s gap in the video");
    let span = dts.last().unwrap() - dts[0];
    assert!(span > 7.0, "{span:.1} s recorded");
    assert_eq!(decode_errors(&files[0]), "");
}

#[test]
fn a_second_agent_on_the_same_data_dir_exits_and_touches_nothing() {
    let agent = Agent::start(&recorded_stream("cam", 60, ""));
    agent.wait_ready(1);
    let data = agent.data_dir();
    let open = wait_for("a file being written", Duration::from_secs(20), || {
        partial_files(&data).first().cloned()
    });
    // The same config (data dir) on other ports.
    let config = std::fs::read_to_string(&agent.config_path)
        .unwrap()
        .replace(&format!(":{}\"", agent.rtsp_port), ":0\"")
        .replace(&format!(":{}\"", agent.http_port), ":0\"");
    let second = agent.dir.path().join("second.toml");
    std::fs::write(&second, config).unwrap();
    let (ok, out, err) = run_with_timeout(
        Command::new(agent_bin())
            .arg("run")
            .arg("--config")
            .arg(&second),
        Duration::from_secs(20),
    );
    let said = format!("{out}{err}");
    assert!(!ok, "the second agent ran: {said}");
    assert!(
        said.contains("another agent") && said.contains(data.to_str().unwrap()),
        "{said}"
    );
    assert!(open.exists(), "the second agent touched {}", open.display());
    assert!(
        closed_files(&data).is_empty(),
        "the second agent repaired the open file"
    );
}
