//! Run-time control: recording stops and starts per stream, and the status
//! says so.

mod record_common;

use std::time::Duration;

use record_common::*;
use streamswitch_tests::{test_stream, Agent};

#[test]
fn start_and_stop_per_stream() {
    // `cam` records from the start; `idle` only once started.
    let config = format!(
        "{}{}",
        recorded_stream("cam", 60, ""),
        test_stream("idle", 320, 240, 15)
    );
    let agent = Agent::start(&config);
    agent.wait_ready(2);
    let port = agent.http_port;
    let data = agent.data_dir();
    let cam = wait_for("cam recording", Duration::from_secs(20), || {
        let s = status(port, "cam");
        (s["recording"] == true && s["fragments"].as_u64().unwrap() >= 2).then_some(s)
    });
    assert_eq!(cam["enabled"], true);
    assert!(cam["current_file"].as_str().unwrap().starts_with("cam/"));
    assert!(cam["bytes_written"].as_u64().unwrap() > 0);
    assert!(
        cam["fsyncs"].as_u64().unwrap() > 0,
        "fsync = fragment is the default"
    );
    let idle = status(port, "idle");
    assert_eq!(
        (idle["enabled"].clone(), idle["recording"].clone()),
        (false.into(), false.into())
    );

    // Stop: the open file is closed and playable.
    let r = http(
        port,
        "POST",
        "/api/recordings/cam/stop",
        &[("Content-Type", "application/json")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["enabled"], false);
    wait_for("cam stopped", Duration::from_secs(10), || {
        (status(port, "cam")["recording"] == false && partial_files(&data).is_empty()).then_some(())
    });
    let files = closed_files(&data);
    assert_eq!(files.len(), 1);
    assert_eq!(decode_errors(&files[0]), "");
    let bytes = status(port, "cam")["bytes_written"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        status(port, "cam")["bytes_written"].as_u64().unwrap(),
        bytes,
        "nothing written while stopped"
    );

    // Start the other stream, then cam again.
    assert_eq!(
        http(
            port,
            "POST",
            "/api/recordings/idle/start",
            &[("Content-Type", "application/json")]
        )
        .status,
        200
    );
    assert_eq!(
        http(
            port,
            "POST",
            "/api/recordings/cam/start",
            &[("Content-Type", "application/json")]
        )
        .status,
        200
    );
    wait_for("both recording", Duration::from_secs(20), || {
        (status(port, "idle")["recording"] == true && status(port, "cam")["recording"] == true)
            .then_some(())
    });
    assert_eq!(
        http(
            port,
            "POST",
            "/api/recordings/nope/start",
            &[("Content-Type", "application/json")]
        )
        .status,
        404
    );
}
