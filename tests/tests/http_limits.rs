//! What a hostile web page or HTTP client can do to the agent: a page on
//! another site cannot change state; the recordings listing is paged and
//! stays fast with 10,000 files.

mod record_common;

use std::time::{Duration, Instant};

use record_common::*;
use streamswitch_tests::http::{request, send};
use streamswitch_tests::Agent;

fn recording_enabled(agent: &Agent) -> bool {
    status(agent.http_port, "cam")["enabled"].as_bool().unwrap()
}

#[test]
fn a_cross_site_post_is_refused_and_changes_nothing() {
    let agent = Agent::start(&recorded_stream("cam", 60, ""));
    agent.wait_ready(1);
    let url = agent.http_url("/api/recordings/cam/stop");
    let json = ("Content-Type", "application/json");
    // A page on another site posts with fetch(), or submits a form.
    for headers in [
        vec![json, ("Origin", "http://evil.example")],
        vec![json, ("Sec-Fetch-Site", "cross-site")],
        vec![json, ("Origin", "null")],
    ] {
        let r = send("POST", &url, &headers, b"{}").unwrap();
        assert_eq!(r.status, 403, "{headers:?}: {}", r.text());
    }
    let form = send(
        "POST",
        &url,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"a=b",
    )
    .unwrap();
    assert_eq!(form.status, 415, "{}", form.text());
    let bare = request("POST", &url, &[]).unwrap();
    assert_eq!(bare.status, 415, "{}", bare.text());
    assert!(recording_enabled(&agent), "a refused request changed state");

    // The agent's own page (same origin), and clients that are no browser.
    let origin = format!("http://127.0.0.1:{}", agent.http_port);
    let r = send(
        "POST",
        &url,
        &[json, ("Origin", &origin), ("Sec-Fetch-Site", "same-origin")],
        b"{}",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!recording_enabled(&agent));
    let start = agent.http_url("/api/recordings/cam/start");
    assert_eq!(send("POST", &start, &[json], b"{}").unwrap().status, 200);
    assert!(recording_enabled(&agent));
}

/// A real recording's first 4 KiB: its header declares its duration.
fn a_recording_header() -> Vec<u8> {
    let agent = Agent::start(&recorded_stream(
        "cam",
        1,
        "[recording]\nmin_free_percent = 0.0\n",
    ));
    agent.wait_ready(1);
    let data = agent.data_dir();
    let file = wait_for("a closed file", Duration::from_secs(30), || {
        closed_files(&data).into_iter().next()
    });
    let bytes = std::fs::read(file).unwrap();
    bytes[..bytes.len().min(4096)].to_vec()
}

#[test]
fn a_listing_of_10000_files_is_paged_and_answers_in_bounded_time() {
    const FILES: u64 = 10_000;
    let header = a_recording_header();
    let dir = tempfile::tempdir().unwrap();
    let day_dir = dir.path().join("data/recordings/cam");
    // Files one second apart, ending a minute ago, named as the agent
    // names them (time, then the order they were made in).
    for i in 0..FILES {
        let ago = 60 + FILES - i;
        let (day, name) = name_for_seconds_ago("cam", ago);
        let name = name.replace(".mp4", &format!("_s{i:010}.mp4"));
        std::fs::create_dir_all(day_dir.join(&day)).unwrap();
        std::fs::write(day_dir.join(&day).join(name), &header).unwrap();
    }
    let agent = Agent::start_in(
        dir,
        &recorded_stream("cam", 60, "[recording]\nmin_free_percent = 0.0\n"),
    );
    agent.wait_ready(1);

    let started = Instant::now();
    let first = request(
        "GET",
        &agent.http_url("/api/recordings?stream=cam&limit=100"),
        &[],
    )
    .unwrap();
    let first_page = started.elapsed();
    assert_eq!(first.status, 200, "{}", first.text());
    let items: serde_json::Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 100);
    assert!(first.header("X-Next-Cursor").is_some());
    assert!(
        first_page < Duration::from_secs(3),
        "first page took {first_page:?}"
    );

    // Every file, page by page, in the order they were made.
    let started = Instant::now();
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    let mut slowest = Duration::ZERO;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/recordings?stream=cam&limit=1000&cursor={c}"),
            None => "/api/recordings?stream=cam&limit=1000".to_owned(),
        };
        let page_started = Instant::now();
        let r = request("GET", &agent.http_url(&path), &[]).unwrap();
        slowest = slowest.max(page_started.elapsed());
        assert_eq!(r.status, 200, "{}", r.text());
        let items: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let items = items.as_array().unwrap();
        assert!(items.len() <= 1000);
        seen.extend(items.iter().map(|i| i["path"].as_str().unwrap().to_owned()));
        match r.header("X-Next-Cursor") {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(seen.len() <= FILES as usize + 100, "the pages never end");
    }
    let all = started.elapsed();
    eprintln!("10,000 files: first page of 100 in {first_page:?}, all pages in {all:?}, slowest page {slowest:?}");
    let ours: Vec<_> = seen.iter().filter(|p| p.contains("_s00000")).collect();
    assert_eq!(ours.len(), FILES as usize);
    let mut sorted = ours.clone();
    sorted.sort_by_key(|p| p.rsplit('_').next().unwrap().to_owned());
    assert_eq!(ours, sorted, "pages in the order the files were made");
    assert!(slowest < Duration::from_secs(3), "a page took {slowest:?}");
    // Asking a page beyond the limit is an error, not a huge answer.
    let r = request("GET", &agent.http_url("/api/recordings?limit=100000"), &[]).unwrap();
    assert_eq!(r.status, 400);
}
