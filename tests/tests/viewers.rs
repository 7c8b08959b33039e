//! What `/api/streams` and `/metrics` say about a stream and its viewers:
//! tracks and frame rate as configured, the RTSP viewer gauge following
//! sessions as they come and go, and HLS viewers counted as clients (two
//! client hosts are two viewers, however many connections each opens).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use streamswitch_tests::http::{get, get_from};
use streamswitch_tests::watch::RtpWatch;
use streamswitch_tests::{test_stream, Agent};

fn stream(agent: &Agent, name: &str) -> Value {
    let all: Value = serde_json::from_slice(&get(&agent.http_url("/api/streams")).body).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in {all}"))
}

/// Waits until both `/metrics` and `/api/streams` count `n` viewers of
/// `protocol` on `cam`.
fn wait_viewers(agent: &Agent, protocol: &str, n: u64, timeout: Duration) {
    let series = format!("streamswitch_stream_viewers{{stream=\"cam\",protocol=\"{protocol}\"}}");
    agent.wait_for_metric(&series, timeout, |v| v == n as f64);
    let api = stream(agent, "cam");
    assert_eq!(api["viewers"][protocol], n, "{api}");
}

#[test]
fn api_streams_reports_tracks_and_fps_and_the_rtsp_gauge_follows_sessions() {
    let agent =
        Agent::start(&(test_stream("cam", 320, 240, 25) + &test_stream("door", 160, 120, 10)));
    agent.wait_ready(2);
    let deadline = Instant::now() + Duration::from_secs(10);
    for (name, tracks, fps) in [
        ("cam", "H264 320x240, AAC 48000 Hz 1 ch", 25),
        ("door", "H264 160x120, AAC 48000 Hz 1 ch", 10),
    ] {
        // The frame rate is the last full second of media: wait for one.
        let s = loop {
            let s = stream(&agent, name);
            if s["fps"] == fps || Instant::now() > deadline {
                break s;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(s["tracks"], tracks, "{s}");
        assert_eq!(s["fps"], fps, "{s}");
        assert_eq!(s["state"], "live", "{s}");
        let fps_metric = agent.metric(&format!("streamswitch_stream_fps{{stream=\"{name}\"}}"));
        assert!(
            (fps_metric - fps as f64).abs() <= 1.0,
            "{name}: /metrics fps {fps_metric}, configured {fps}"
        );
    }

    // RTSP viewers follow sessions as they start playing and end.
    wait_viewers(&agent, "rtsp", 0, Duration::from_secs(1));
    let url = agent.rtsp_url("cam");
    let a = RtpWatch::start(agent.rtsp_port, &url).unwrap();
    wait_viewers(&agent, "rtsp", 1, Duration::from_secs(5));
    let b = RtpWatch::start(agent.rtsp_port, &url).unwrap();
    wait_viewers(&agent, "rtsp", 2, Duration::from_secs(5));
    assert_eq!(
        stream(&agent, "door")["viewers"]["rtsp"],
        0,
        "another stream's sessions counted"
    );
    drop(a); // closes its connection
    wait_viewers(&agent, "rtsp", 1, Duration::from_secs(5));
    drop(b);
    wait_viewers(&agent, "rtsp", 0, Duration::from_secs(5));
}

#[test]
fn hls_viewers_are_distinct_clients_seen_within_two_target_durations() {
    let agent = Agent::start(&test_stream("cam", 320, 240, 25));
    agent.wait_ready(1);
    let url = agent.http_url("/cam/index.m3u8");
    let (host_a, host_b): (IpAddr, IpAddr) =
        ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
    assert_eq!(get_from(host_a, &url).unwrap().status, 200);
    wait_viewers(&agent, "hls", 1, Duration::from_secs(3));

    // Two client hosts reload the playlist three times a second, each
    // request on a new connection (a new port): two viewers, not one per
    // connection and not one per muxer.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poll = |host: IpAddr| {
        let (url, stop) = (url.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let res = get_from(host, &url).unwrap();
                assert_eq!(res.status, 200);
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let a = poll(host_a);
    let b = poll(host_b);
    wait_viewers(&agent, "hls", 2, Duration::from_secs(3));
    // And it stays 2 while both keep asking.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let v = agent.metric("streamswitch_stream_viewers{stream=\"cam\",protocol=\"hls\"}");
        assert_eq!(v, 2.0, "two clients polling");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(agent.metric("streamswitch_hls_muxers"), 1.0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    a.join().unwrap();
    b.join().unwrap();

    // Silence: after two target durations (1 s segments) plus the
    // once-a-second recount, nobody is counted, though the muxer runs on
    // until its idle timeout.
    let silent = Instant::now();
    wait_viewers(&agent, "hls", 0, Duration::from_secs(5));
    assert!(
        silent.elapsed() >= Duration::from_millis(1500),
        "clients forgotten after {:?}, before two target durations",
        silent.elapsed()
    );
    assert_eq!(agent.metric("streamswitch_hls_muxers"), 1.0);
}
