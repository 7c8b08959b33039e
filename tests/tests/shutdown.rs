//! SIGTERM and SIGINT with clients attached: RTSP clients (TCP and UDP)
//! see their connection closed, the recording in progress is closed with
//! its duration in its header, and the agent exits 0.

mod record_common;

use std::time::{Duration, Instant};

use record_common::*;
use streamswitch_tests::rtsp_client::{play, transport};
use streamswitch_tests::watch::RtpWatch;
use streamswitch_tests::Agent;

fn stops_cleanly_with_clients_attached(signal: &str) {
    let mut agent = Agent::start(&recorded_stream("cam", 60, ""));
    agent.wait_ready(1);
    let data = agent.data_dir();
    let url = agent.rtsp_url("cam");
    let tcp = [
        RtpWatch::start(agent.rtsp_port, &url).unwrap(),
        RtpWatch::start(agent.rtsp_port, &url).unwrap(),
    ];
    for w in &tcp {
        assert!(w.wait_for(Duration::from_secs(5), |s| s.packets > 0));
    }
    // A retina session over UDP: its RTSP connection must close too.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // retina's session must be dropped inside the runtime, even on a panic.
    let _in_runtime = runtime.enter();
    let udp = runtime
        .block_on(play(&url, transport("udp"), None))
        .unwrap();
    let mut udp = runtime.block_on(async { udp.demuxed() }).unwrap();
    // A file being written, with a few fragments (500 ms each) in it.
    wait_for("a recording in progress", Duration::from_secs(10), || {
        let s = status(agent.http_port, "cam");
        (s["recording"] == true
            && s["fragments"].as_u64().unwrap_or(0) >= 1
            && partial_files(&data).len() == 1)
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));

    let stopping = Instant::now();
    let exit = agent
        .stop_with(signal, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("SIG{signal}: still running after 10 s"));
    assert!(exit.success(), "SIG{signal}: exit status {exit}");
    println!("SIG{signal}: exited after {:?}", stopping.elapsed());
    for (i, w) in tcp.iter().enumerate() {
        assert!(
            w.wait_for(Duration::from_secs(2), |s| s.ended),
            "SIG{signal}: TCP client {i} still connected"
        );
    }
    // retina ends its stream when the server closes the connection.
    let ended = runtime.block_on(async {
        use futures::StreamExt;
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match udp.next().await {
                    None | Some(Err(_)) => return true,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
    });
    assert!(
        matches!(ended, Ok(true)),
        "SIG{signal}: the UDP client's session went on"
    );

    assert!(
        partial_files(&data).is_empty(),
        "SIG{signal}: a recording was left open"
    );
    let files = closed_files(&data);
    assert_eq!(files.len(), 1, "{files:?}");
    let file = &files[0];
    let span = media_span(file);
    let declared = declared_duration(file);
    assert!(span >= 1.5, "{}: {span} s", file.display());
    assert!(
        (declared - span).abs() <= 0.5,
        "SIG{signal}: {} declares {declared} s, holds {span} s",
        file.display()
    );
    assert_eq!(decode_errors(file), "", "{}", file.display());
}

#[test]
fn sigterm_closes_rtsp_clients_and_the_recording() {
    stops_cleanly_with_clients_attached("TERM");
}

#[test]
fn sigint_closes_rtsp_clients_and_the_recording() {
    stops_cleanly_with_clients_attached("INT");
}
