//! The web UI and `/api/status`: plain HTTP checks of what the agent
//! serves, and the page driven in a real headless Chromium
//! (tests/browser/web_ui.mjs, installed by tests/setup.sh).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use streamswitch_tests::http::{self, Response};
use streamswitch_tests::{run_with_timeout, test_stream, wait_for_port, Agent};

/// GET `path` on the agent with extra request headers.
fn get(agent: &Agent, path: &str, headers: &[(&str, &str)]) -> Response {
    http::request("GET", &agent.http_url(path), headers).expect("GET")
}

fn json(response: &Response) -> Value {
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.text()))
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// `df`'s view of the filesystem holding `path`: (size, available) in bytes.
fn df(path: &Path) -> (u64, u64) {
    let out = Command::new("df")
        .args(["-B1", "--output=size,avail"])
        .arg(path)
        .output()
        .expect("df");
    let text = String::from_utf8_lossy(&out.stdout);
    let numbers: Vec<u64> = text
        .lines()
        .nth(1)
        .expect("df row")
        .split_whitespace()
        .map(|n| n.parse().expect("df number"))
        .collect();
    (numbers[0], numbers[1])
}

#[test]
fn status_reports_uptime_cpu_memory_and_the_data_disk() {
    let agent = Agent::start(&test_stream("cam", 320, 240, 15));
    agent.wait_ready(1);
    // Let the source run, so that its CPU time is counted in whole ticks.
    std::thread::sleep(Duration::from_millis(1000));
    let cpu_before = cpu_seconds_of(agent.pid());
    let response = get(&agent, "/api/status", &[]);
    let cpu_after = cpu_seconds_of(agent.pid());
    assert_eq!(response.status, 200);
    assert!(response
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json")));
    let status = json(&response);
    let rss_kb = agent.status_kb("VmRSS");

    assert_eq!(status["device_id"], "test");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    let uptime = status["uptime_s"].as_f64().expect("uptime_s");
    assert!(uptime > 1.0 && uptime < 60.0, "uptime {uptime}");
    // The agent's own CPU time, as the test reads it from /proc around the request.
    let cpu = status["cpu_seconds"].as_f64().expect("cpu_seconds");
    assert!(
        cpu >= cpu_before - 0.005 && cpu <= cpu_after + 0.005,
        "cpu_seconds {cpu}, /proc says {cpu_before}..{cpu_after}"
    );
    let rss = status["rss_bytes"].as_u64().expect("rss_bytes");
    let rss_now = rss_kb * 1024;
    assert!(
        rss > rss_now / 2 && rss < rss_now * 2,
        "rss_bytes {rss} vs VmRSS {rss_now}"
    );

    // The data dir or, until something creates it, its nearest parent.
    let disk = &status["disk"];
    let path = PathBuf::from(disk["path"].as_str().expect("disk.path"));
    assert!(
        agent.data_dir().starts_with(&path) && path.exists(),
        "{} is not the data dir or a parent of it",
        path.display()
    );
    let total = disk["total_bytes"].as_u64().expect("total_bytes");
    let free = disk["free_bytes"].as_u64().expect("free_bytes");
    let (df_total, df_free) = df(&path);
    assert_eq!(total, df_total, "total_bytes vs df");
    // Other writers share the disk: allow 1 GB of movement.
    assert!(
        free.abs_diff(df_free) < 1_000_000_000,
        "free_bytes {free} vs df {df_free}"
    );
    assert!(free <= total);

    // The figures move: CPU time grows while the source runs.
    std::thread::sleep(Duration::from_millis(1500));
    let later = json(&get(&agent, "/api/status", &[]));
    assert!(later["uptime_s"].as_f64().unwrap() > uptime);
    assert!(later["cpu_seconds"].as_f64().unwrap() > cpu, "{later}");
}

/// utime + stime of a process in seconds, from `/proc/<pid>/stat`.
fn cpu_seconds_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .collect();
    // Fields 14 and 15 of the man page; the list starts at field 3.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    let hz: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("CLK_TCK");
    ticks as f64 / hz
}

#[test]
fn the_page_and_its_assets_are_served_with_types_and_caching() {
    let agent = Agent::start(&test_stream("cam", 160, 120, 10));
    wait_for_port(agent.http_port, Duration::from_secs(10));
    let page = get(&agent, "/", &[]);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let html = String::from_utf8(page.body.clone()).unwrap();
    assert!(html.contains("<title>StreamSwitch Edge</title>"));

    // Revalidation with the page's ETag costs no body.
    let etag = page.header("etag").expect("etag").to_owned();
    let again = get(&agent, "/", &[("If-None-Match", &etag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    let expected = [
        ("style.css", "text/css; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("hls.min.js", "text/javascript; charset=utf-8"),
        ("hls.js-LICENSE.txt", "text/plain; charset=utf-8"),
    ];
    for (name, content_type) in expected {
        // The page links each asset with a version; that URL is cached for good.
        let prefix = format!("\"/assets/{name}?v=");
        let at = html
            .find(&prefix)
            .unwrap_or_else(|| panic!("no link to {name}"));
        let link_start = at + 1;
        let link_end = link_start + html[link_start..].find('"').unwrap();
        let link = &html[link_start..link_end];
        let versioned = get(&agent, link, &[]);
        assert_eq!(versioned.status, 200, "{link}");
        assert_eq!(
            versioned.header("content-type"),
            Some(content_type),
            "{link}"
        );
        assert_eq!(
            versioned.header("cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{link}"
        );
        // Without the version (or with a stale one), it is revalidated.
        for path in [format!("/assets/{name}"), format!("/assets/{name}?v=old")] {
            let plain = get(&agent, &path, &[]);
            assert_eq!(plain.status, 200, "{path}");
            assert_eq!(plain.header("cache-control"), Some("no-cache"), "{path}");
            assert_eq!(plain.body, versioned.body, "{path}");
        }
    }

    // The embedded hls.js is the pinned npm package, byte for byte.
    let npm_copy = browser_dir().join("node_modules/hls.js/dist/hls.min.js");
    let npm_bytes = std::fs::read(&npm_copy)
        .unwrap_or_else(|e| panic!("{}: {e} (run tests/setup.sh)", npm_copy.display()));
    assert!(get(&agent, "/assets/hls.min.js", &[]).body == npm_bytes);

    let missing = get(&agent, "/assets/nope.js", &[]);
    assert_eq!(missing.status, 404);
    let traversal = get(&agent, "/assets/..%2Fsrc%2Fmain.rs", &[]);
    assert_eq!(traversal.status, 404);
}

/// Runs tests/browser/web_ui.mjs against `agent`; returns its JSON report.
fn drive_browser(agent: &Agent, screenshot: &Path, extra: &[&str]) -> Value {
    let script = browser_dir().join("web_ui.mjs");
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "tests/browser/node_modules is missing: run tests/setup.sh"
    );
    let (ok, stdout, stderr) = run_with_timeout(
        Command::new("node")
            .arg(&script)
            .arg(agent.http_url(""))
            .arg(screenshot)
            .args(extra),
        Duration::from_secs(180),
    );
    assert!(ok, "node {} failed:\n{stdout}\n{stderr}", script.display());
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("browser script printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

/// (first, last) currentTime of a sample series, and the wall time in
/// seconds between those two samples.
fn progress(samples: &Value) -> (f64, f64, f64) {
    let points: Vec<(f64, f64)> = samples
        .as_array()
        .expect("samples")
        .iter()
        .map(|s| {
            (
                s["wall_ms"].as_f64().unwrap() / 1000.0,
                s["current_time"].as_f64().unwrap(),
            )
        })
        .collect();
    assert!(points.len() >= 2, "{samples}");
    let (first, last) = (points[0], *points.last().unwrap());
    (first.1, last.1, last.0 - first.0)
}

/// A live player must keep up: at least 4 s of media in 5 s of wall time.
fn assert_keeps_up(what: &str, samples: &Value) {
    let (first, last, waited) = progress(samples);
    assert!(
        waited >= 4.5,
        "{what}: sampled only {waited:.2} s: {samples}"
    );
    assert!(
        last - first >= 4.0 * waited / 5.0,
        "{what} advanced {:.2} s in {waited:.2} s: {samples}",
        last - first
    );
}

#[test]
fn the_page_lists_and_plays_the_stream_and_a_recording_and_hls_js_plays_it_too() {
    // Short recording files, so that one is closed and listed within seconds.
    let stream =
        test_stream("cam", 640, 360, 25) + "record = { enabled = true, segment_seconds = 4 }\n";
    let agent = Agent::start(&stream);
    agent.wait_ready(1);
    let screenshot = agent.dir.path().join("ui-screenshot.png");
    let report = drive_browser(&agent, &screenshot, &["--stream", "cam", "--recordings"]);
    println!("browser report: {report}");
    assert_eq!(report["errors"], Value::Array(vec![]), "{report:#}");

    let page = &report["page"];
    assert_eq!(page["status"], 200);
    let streams = page["streams"].as_array().expect("streams listed");
    assert_eq!(streams.len(), 1, "{page}");
    assert_eq!(streams[0]["name"], "cam");
    assert_eq!(streams[0]["state"], "live");
    assert!(streams[0]["text"]
        .as_str()
        .unwrap()
        .contains("H264 640x360"));
    let tiles = page["status_tiles"].to_string();
    for label in ["UPTIME", "CPU", "MEMORY", "DISK"] {
        assert!(tiles.to_uppercase().contains(label), "{tiles}");
    }

    // The page's own player (the embedded hls.js) plays for 5 s and keeps up.
    assert_keeps_up("the page's player", &page["live_samples"]);

    // The screenshot exists and is more than an empty frame.
    let png = std::fs::read(&screenshot).expect("screenshot saved");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(png.len() > 20_000, "screenshot only {} bytes", png.len());
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    std::fs::create_dir_all(&target).expect("target dir");
    std::fs::copy(&screenshot, target.join("ui-screenshot.png")).expect("copy screenshot");

    // The test harness's own hls.js, on a bare page, plays the LL-HLS stream.
    let bare = &report["bare"];
    assert_eq!(bare["mse"], true, "{bare}");
    assert_keeps_up("hls.js", &bare["samples"]);
    assert_eq!(bare["low_latency_playlist"], true, "{bare}");
    // hls.js raised no fatal error (non-fatal ones it recovers from are
    // printed).
    let hls_errors = bare["hls_errors"].as_array().expect("hls_errors");
    println!("hls.js errors: {hls_errors:?}");
    assert!(
        hls_errors
            .iter()
            .all(|e| !e.as_str().unwrap_or("").ends_with("fatal=true")),
        "hls.js fatal error: {hls_errors:?}"
    );
    let latency = bare["latency"].as_f64().expect("hls.latency");
    println!(
        "hls.js {} latency: {latency:.2} s (target {}, samples {})",
        bare["hls_js_version"], bare["target_latency"], bare["latency_samples"]
    );
    // With PART-HOLD-BACK 0.63 s and 1 s GOPs, measured 0.98-1.09 s here.
    assert!(
        latency > 0.0 && latency <= 2.5,
        "hls.js latency {latency:.2} s (bound 2.5 s)"
    );

    // The recordings list shows the closed files, and one plays.
    let recordings = &page["recordings"];
    let items = recordings["items"].as_array().expect("recordings listed");
    assert!(!items.is_empty(), "{recordings}");
    let path = items[0]["path"].as_str().unwrap();
    assert!(
        path.starts_with("/recordings/cam/") && path.ends_with(".mp4"),
        "{path}"
    );
    assert!(items[0]["text"].as_str().unwrap().contains("cam"));
    assert!(
        recordings["src"].as_str().unwrap().ends_with(path),
        "{recordings}"
    );
    let duration = recordings["duration"].as_f64().unwrap();
    assert!(duration >= 3.5, "recording lasts {duration} s");
    // Playback advances as fast as the wall clock, give or take 1 s.
    let (first, last, waited) = progress(&recordings["samples"]);
    assert!(waited >= 2.5, "sampled only {waited:.2} s");
    assert!(
        last - first >= waited - 1.0,
        "recording playback advanced {first} -> {last} in {waited:.2} s: {recordings}"
    );
}

#[test]
fn the_page_buttons_stop_and_start_the_stream_and_its_recording() {
    let agent = Agent::start(&test_stream("cam", 320, 240, 15));
    agent.wait_ready(1);
    let shot = agent.dir.path().join("buttons.png");
    let seen = drive_browser(&agent, &shot, &["--buttons"]);
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    let steps = seen["page"]["buttons"].as_array().expect("button steps");
    let summary: Vec<(String, String, bool)> = steps
        .iter()
        .map(|s| {
            (
                s["clicked"].as_str().unwrap().to_owned(),
                s["badge"].as_str().unwrap().to_owned(),
                s["rec_shown"].as_bool().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("Stop stream", "Stopped", false),
        ("Start stream", "Live", false),
        ("Start recording", "Live", true),
        ("Stop recording", "Live", false),
    ];
    assert_eq!(
        summary,
        expected.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c)),
        "{seen}"
    );
    // The clicks went through the API: the agent itself says so.
    let streams = json(&get(&agent, "/api/streams", &[]));
    let cam = &streams[0];
    assert_eq!(cam["state"], "live");
    assert_eq!(cam["recording"]["enabled"], false);
    assert!(cam["recording"]["files"].as_u64() >= Some(1), "{cam}");
    assert!(cam["restarts"].as_u64() == Some(0), "{cam}");
    assert!(agent.count_log("source stopped by command") == 1);
}
