//! The command line: version, config checking, start-up and clean stop.

use std::process::Command;
use std::time::Duration;

use streamswitch_tests::{agent_bin, test_stream, Agent};

#[test]
fn version_prints_the_package_version() {
    let out = Command::new(agent_bin()).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
}

/// A machine without cameras (this one): empty lists and exit 0, in JSON
/// and as text, with the back-ends this build has.
#[test]
fn devices_lists_nothing_on_a_machine_without_cameras() {
    let out = Command::new(agent_bin())
        .args(["devices", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inv: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let backends: Vec<&str> = inv["backends"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b.as_str())
        .collect();
    for b in ["v4l2", "alsa", "openh264", "fdk-aac"] {
        assert!(backends.contains(&b), "{backends:?}");
    }
    let has_video = std::path::Path::new("/dev/video0").exists();
    assert_eq!(
        inv["cameras"].as_array().unwrap().is_empty(),
        !has_video,
        "{inv:#}"
    );
    assert!(
        inv["encoders"].is_array() && inv["microphones"].is_array(),
        "{inv:#}"
    );
    let out = Command::new(agent_bin()).arg("devices").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Back-ends: v4l2, alsa"), "{text}");
    assert!(
        text.contains("Cameras (") && text.contains("Microphones ("),
        "{text}"
    );
}

#[test]
fn shipped_configs_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../config");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = Command::new(agent_bin())
                .arg("check-config")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn a_bad_config_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[agent]\ndevice_id = \"x\"\n\n[rtsp]\nlisten = \"0.0.0.0:8554\"\nmax_sesions = 3\n",
    )
    .unwrap();
    let out = Command::new(agent_bin())
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:6"), "{err}");
    assert!(err.contains("max_sesions"), "{err}");
    // `run` refuses it the same way, before opening any port.
    let out = Command::new(agent_bin())
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_sesions"));
}

#[test]
fn logs_each_stream_url_and_stops_cleanly_on_sigterm() {
    let mut agent =
        Agent::start(&(test_stream("one", 160, 120, 10) + &test_stream("two", 160, 120, 10)));
    agent.wait_ready(2);
    let url_one = agent.rtsp_url("one");
    let url_two = agent.rtsp_url("two");
    let log = agent.log().join("\n");
    assert!(log.contains(&url_one), "{log}");
    assert!(log.contains(&url_two), "{log}");
    let status = agent
        .terminate(Duration::from_secs(10))
        .expect("agent exits on SIGTERM");
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn a_busy_port_is_a_clear_error_and_nothing_starts() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.toml");
    std::fs::write(
        &path,
        format!(
            "[agent]\ndevice_id = \"x\"\ndata_dir = \"{}\"\n[rtsp]\nlisten = \"127.0.0.1:{port}\"\n[http]\nlisten = \"127.0.0.1:0\"\n{}",
            dir.path().join("data").display(),
            test_stream("cam", 160, 120, 10)
        ),
    )
    .unwrap();
    let (ok, out, err) = streamswitch_tests::run_with_timeout(
        Command::new(agent_bin())
            .args(["run", "--config"])
            .arg(&path),
        Duration::from_secs(20),
    );
    assert!(!ok, "the agent ran with its RTSP port taken");
    let text = format!("{out}{err}");
    assert!(
        text.contains(&format!("cannot listen for rtsp on 127.0.0.1:{port}")),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
    assert!(!text.contains("source ready"), "a source started: {text}");
}
