//! HTTP correctness around HLS and /metrics: status codes, HEAD, content
//! types, cache headers, CORS, authentication, the Prometheus text format
//! and the viewer gauge that follows an HLS client and its idle timeout.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use streamswitch_tests::http::{get, request};
use streamswitch_tests::m3u8;
use streamswitch_tests::{run_with_timeout, test_stream, Agent};

const ORIGIN: &str = "https://ui.example";

#[test]
fn status_codes_head_content_types_cache_and_cors() {
    // The fixture's config ends inside [http]: the first lines go there.
    let agent = Agent::start(&format!(
        "cors_origin = \"{ORIGIN}\"\n\n{}",
        test_stream("cam", 320, 240, 25)
    ));
    agent.wait_ready(1);
    let url = |path: &str| agent.http_url(path);

    assert_eq!(get(&url("/nope/index.m3u8")).status, 404);
    // No muxer runs yet: media of a known stream is not there either.
    assert_eq!(get(&url("/cam/init0.mp4")).status, 404);

    let playlist = get(&url("/cam/index.m3u8"));
    assert_eq!(playlist.status, 200);
    assert_eq!(
        playlist.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(playlist.header("cache-control"), Some("no-cache"));
    assert_eq!(playlist.header("access-control-allow-origin"), Some(ORIGIN));
    let p = m3u8::parse(&playlist.text()).unwrap();
    let segment = p.segments.last().unwrap().uri.clone();
    let part = p.parts().last().unwrap().uri.clone();

    let init = p.map_uri.clone().expect("EXT-X-MAP");
    for path in [init.as_str(), segment.as_str(), part.as_str()] {
        let res = get(&url(&format!("/cam/{path}")));
        assert_eq!(res.status, 200, "{path}");
        assert_eq!(res.header("content-type"), Some("video/mp4"), "{path}");
        assert_eq!(res.header("access-control-allow-origin"), Some(ORIGIN));
        let box_type = if path == init { b"ftyp" } else { b"moof" };
        assert_eq!(&res.body[4..8], box_type, "{path}");
        // HEAD: the same status and length, no body.
        let head = request("HEAD", &url(&format!("/cam/{path}")), &[]).unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(
            head.header("content-length"),
            Some(res.body.len().to_string().as_str())
        );
        assert!(head.body.is_empty(), "{path}: HEAD with a body");
    }
    // Segments and parts never change; playlists do.
    let seg = get(&url(&format!("/cam/{segment}")));
    let cache = seg.header("cache-control").unwrap();
    assert!(
        cache.contains("max-age=31536000") && cache.contains("immutable"),
        "{cache}"
    );
    let head = request("HEAD", &url("/cam/index.m3u8"), &[]).unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(head.header("content-length").is_some());

    for missing in [
        "/cam/seg1.m4s",
        "/cam/part1.0.m4s",
        "/cam/nothing.txt",
        "/nope/init0.mp4",
        "/cam/seg99999999999999999999999.m4s",
    ] {
        let res = get(&url(missing));
        assert_eq!(res.status, 404, "{missing}");
        assert_eq!(res.header("cache-control"), Some("no-cache"), "{missing}");
    }

    // A browser's preflight is answered without reaching the routes.
    let pre = request(
        "OPTIONS",
        &url("/cam/index.m3u8"),
        &[
            ("Origin", ORIGIN),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "authorization"),
        ],
    )
    .unwrap();
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-origin"), Some(ORIGIN));
    assert!(pre
        .header("access-control-allow-methods")
        .unwrap()
        .contains("GET"));
    assert!(pre
        .header("access-control-allow-headers")
        .unwrap()
        .contains("Authorization"));
}

#[test]
fn without_cors_origin_no_cors_header_and_disabled_hls_is_not_found() {
    let agent = Agent::start(&format!(
        "\n[hls]\nenabled = false\n\n{}",
        test_stream("cam", 160, 120, 15)
    ));
    agent.wait_ready(1);
    let res = get(&agent.http_url("/api/streams"));
    assert_eq!(res.status, 200);
    assert_eq!(res.header("access-control-allow-origin"), None);
    assert_eq!(get(&agent.http_url("/cam/index.m3u8")).status, 404);
}

/// Every route the agent's router serves, read from its source: each
/// `.route("<path>", <methods>)` under agent/src, with the HTTP methods
/// its method router names. A route added anywhere shows up here, so the
/// authentication test below cannot miss it.
fn agent_routes() -> Vec<(String, String)> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/src");
    let mut files = vec![src];
    let mut routes = Vec::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for e in std::fs::read_dir(&path).unwrap() {
                files.push(e.unwrap().path());
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            // The call's arguments, up to the matching parenthesis.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .unwrap_or_else(|| panic!("unbalanced .route( in {}", path.display()));
            let args = &rest[..end];
            let open = args.find('"').expect("a path literal");
            let close = open + 1 + args[open + 1..].find('"').unwrap();
            let route = &args[open + 1..close];
            let methods = &args[close..];
            let mut found = 0;
            for m in ["get", "post", "put", "patch", "delete"] {
                let named = methods
                    .match_indices(&format!("{m}("))
                    .any(|(i, _)| i == 0 || !methods.as_bytes()[i - 1].is_ascii_alphanumeric());
                if named {
                    routes.push((m.to_ascii_uppercase(), route.to_owned()));
                    found += 1;
                }
            }
            assert!(found > 0, "no method for {route} in {}", path.display());
        }
    }
    routes.sort();
    routes
}

/// A concrete request path for a route: each `{parameter}` gets a value
/// that names something real (or at least well-formed) on the test agent.
fn example_path(route: &str) -> String {
    let file = match route {
        "/assets/{file}" => "app.js",
        "/{stream}/{file}" => "index.m3u8",
        "/recordings/{stream}/{day}/{file}" => "cam_20000101T000000.000Z.mp4",
        _ => "",
    };
    let mut out = route.to_owned();
    for (name, value) in [
        ("{stream}", "cam"),
        ("{target}", "0"),
        ("{action}", "keyframe"),
        ("{day}", "2000-01-01"),
        ("{file}", file),
    ] {
        out = out.replace(name, value);
    }
    assert!(
        !out.contains('{') && !out.ends_with('/') || out == "/",
        "no example for {route}: add one to example_path"
    );
    out
}

#[test]
fn authentication_covers_every_route() {
    let agent = Agent::start(&format!(
        "cors_origin = \"*\"\n\n[http.auth]\nusers = [{{ name = \"admin\", password = \"pw:1\" }}]\ntokens = [\"tok-42\"]\n\n{}",
        test_stream("cam", 160, 120, 15)
    ));
    agent.wait_ready(1);
    // "admin:pw:1" in base64.
    let basic = ("Authorization", "Basic YWRtaW46cHc6MQ==");
    let wrong = ("Authorization", "Basic YWRtaW46cHc6Mg==");
    let bearer = ("Authorization", "Bearer tok-42");
    let bad_token = ("Authorization", "Bearer tok-43");
    let playlist = request("GET", &agent.http_url("/cam/index.m3u8"), &[bearer]).unwrap();
    let init = format!(
        "/cam/{}",
        m3u8::parse(&playlist.text())
            .unwrap()
            .map_uri
            .expect("EXT-X-MAP")
    );
    let routes = agent_routes();
    println!("routes: {routes:?}");
    for expected in [
        "/",
        "/metrics",
        "/api/status",
        "/api/config",
        "/assets/{file}",
    ] {
        assert!(
            routes.iter().any(|(_, r)| r == expected),
            "{expected} not found among {routes:?}: the route reader is broken"
        );
    }
    let mut cases: Vec<(String, String)> = routes
        .iter()
        .map(|(m, r)| (m.clone(), example_path(r)))
        .collect();
    // The HLS route serves more than playlists.
    cases.push(("GET".into(), init));
    cases.push(("HEAD".into(), "/cam/index.m3u8".into()));
    for (method, path) in &cases {
        let url = agent.http_url(path);
        let body: &[u8] = match method.as_str() {
            "PUT" | "PATCH" => b"{}",
            _ => b"",
        };
        // Requests that change state need a JSON body type (or get 415):
        // every request says so, so that only authentication decides.
        let send = |headers: &[(&str, &str)]| {
            let mut headers = headers.to_vec();
            headers.push(("Content-Type", "application/json"));
            streamswitch_tests::http::send(method, &url, &headers, body)
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
        };
        let res = send(&[]);
        assert_eq!(res.status, 401, "{method} {path} without credentials");
        let challenges = res.all("www-authenticate").join(" | ");
        assert!(
            challenges.contains("Basic realm="),
            "{method} {path}: {challenges}"
        );
        assert!(
            challenges.contains("Bearer"),
            "{method} {path}: {challenges}"
        );
        assert_eq!(send(&[wrong]).status, 401, "{method} {path} wrong password");
        assert_eq!(
            send(&[bad_token]).status,
            401,
            "{method} {path} wrong token"
        );
        for good in [basic, bearer] {
            let res = send(&[good]);
            assert!(
                res.status != 401 && res.status != 405,
                "{method} {path} with {}: {} {}",
                good.1,
                res.status,
                res.text()
            );
        }
    }
    // Preflights carry no credentials and still pass.
    let pre = request(
        "OPTIONS",
        &agent.http_url("/cam/index.m3u8"),
        &[("Origin", ORIGIN), ("Access-Control-Request-Method", "GET")],
    )
    .unwrap();
    assert_eq!(pre.status, 204);
}

/// Samples of a strictly parsed Prometheus text exposition (format
/// 0.0.4): every sample belongs to a family declared by HELP and TYPE.
struct Metrics {
    samples: BTreeMap<String, f64>,
}

impl Metrics {
    fn parse(text: &str) -> Result<Metrics, String> {
        let mut types: BTreeMap<String, String> = BTreeMap::new();
        let mut helped = Vec::new();
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').ok_or(line)?;
                check_name(name)?;
                if help.is_empty() {
                    return Err(format!("empty help: {line}"));
                }
                helped.push(name.to_owned());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or(line)?;
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(format!("bad type: {line}"));
                }
                if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                    return Err(format!("family declared twice: {name}"));
                }
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                return Err(format!("unexpected line: {line:?}"));
            }
            let (series, value) = line.rsplit_once(' ').ok_or(line)?;
            let value: f64 = value.parse().map_err(|_| format!("bad value: {line}"))?;
            let name = series.split('{').next().unwrap_or(series);
            check_name(name)?;
            let kind = types.get(name).ok_or(format!("no TYPE for {name}"))?;
            if !helped.iter().any(|h| h == name) {
                return Err(format!("no HELP for {name}"));
            }
            if kind == "counter" && !name.ends_with("_total") {
                return Err(format!("counter without _total: {name}"));
            }
            if let Some(labels) = series.strip_prefix(name) {
                if !labels.is_empty() {
                    check_labels(labels)?;
                }
            }
            if samples.insert(series.to_owned(), value).is_some() {
                return Err(format!("duplicate series: {series}"));
            }
        }
        Ok(Metrics { samples })
    }

    fn get(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in {:?}", self.samples.keys()))
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    ok.then_some(()).ok_or(format!("bad metric name {name:?}"))
}

/// `{k="v",k2="v2"}` with escaped values.
fn check_labels(labels: &str) -> Result<(), String> {
    let inner = labels
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .ok_or(format!("bad labels {labels}"))?;
    let mut rest = inner;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .ok_or(format!("bad labels {labels}"))?;
        check_name(key)?;
        let mut escaped = false;
        let end = after
            .char_indices()
            .find(|&(_, c)| {
                let close = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                close
            })
            .map(|(i, _)| i)
            .ok_or(format!("unterminated label in {labels}"))?;
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(())
}

#[test]
fn metrics_move_and_follow_an_hls_client_until_it_idles_out() {
    let agent = Agent::start(&format!(
        "\n[hls]\nidle_timeout_seconds = 2\n\n{}record = {{ enabled = true }}\n",
        test_stream("cam", 320, 240, 25)
    ));
    agent.wait_ready(1);
    let scrape = || {
        let res = get(&agent.http_url("/metrics"));
        assert_eq!(res.status, 200);
        let ct = res.header("content-type").unwrap();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        Metrics::parse(&res.text()).unwrap_or_else(|e| panic!("{e}\n{}", res.text()))
    };
    let hls_viewers = "streamswitch_stream_viewers{stream=\"cam\",protocol=\"hls\"}";
    let video = "streamswitch_stream_frames_total{stream=\"cam\",kind=\"video\"}";
    // "source ready" is logged as the first frame arrives; the state
    // follows it.
    let up = "streamswitch_stream_up{stream=\"cam\"}";
    agent.wait_for_metric(up, Duration::from_secs(5), |v| v == 1.0);
    let before = scrape();
    assert_eq!(before.get(hls_viewers), 0.0);
    assert_eq!(before.get(up), 1.0);

    // ffmpeg watches the stream for 4 s in the background.
    let url = agent.http_url("/cam/index.m3u8");
    let client = std::thread::spawn(move || {
        run_with_timeout(
            Command::new("ffmpeg").args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-i",
                &url,
                "-t",
                "4",
                "-c",
                "copy",
                "-f",
                "null",
                "-",
            ]),
            Duration::from_secs(30),
        )
    });
    // ffmpeg is reading once it counts as a viewer; the recorder has
    // written a fragment (1 s) and a full second of media is counted.
    agent.wait_for_metric(hls_viewers, Duration::from_secs(10), |v| v == 1.0);
    let recorded = "streamswitch_recording_bytes_total{stream=\"cam\"}";
    agent.wait_for_metric(recorded, Duration::from_secs(10), |v| {
        v > before.get(recorded)
    });
    agent.wait_for_metric(
        "streamswitch_stream_fps{stream=\"cam\"}",
        Duration::from_secs(10),
        |v| v > 0.0,
    );
    let during = scrape();
    assert_eq!(during.get(hls_viewers), 1.0);
    assert_eq!(during.get("streamswitch_hls_muxers"), 1.0);
    assert!(during.get(video) > before.get(video));
    let bytes = "streamswitch_stream_bytes_total{stream=\"cam\"}";
    assert!(during.get(bytes) > before.get(bytes));
    let audio = "streamswitch_stream_frames_total{stream=\"cam\",kind=\"audio\"}";
    assert!(during.get(audio) > before.get(audio));
    assert!(during.get(recorded) > before.get(recorded));
    assert_eq!(
        during.get("streamswitch_recording_active{stream=\"cam\"}"),
        1.0
    );
    assert_eq!(
        during.get("streamswitch_recording_errors_total{stream=\"cam\"}"),
        0.0
    );
    assert!(during.get("process_cpu_seconds_total") > 0.0);
    assert!(during.get("process_resident_memory_bytes") > 1e6);
    assert!(during.get("streamswitch_uptime_seconds") > 0.0);
    let fps = during.get("streamswitch_stream_fps{stream=\"cam\"}");
    assert!((20.0..=26.0).contains(&fps), "{fps}");
    let (ok, _, err) = client.join().unwrap();
    assert!(ok, "ffmpeg: {err}");

    // Nobody asks any more: the muxer stops and the gauge drops.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = scrape();
        if now.get(hls_viewers) == 0.0 && now.get("streamswitch_hls_muxers") == 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the HLS muxer did not stop");
        std::thread::sleep(Duration::from_millis(200));
    }
    agent.wait_for_log("hls muxer stopped: no requests", Duration::from_secs(1));
}

#[test]
fn the_strict_metrics_parser_refuses_what_prometheus_would() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"\"} 3\n";
    assert!(Metrics::parse(good).is_ok());
    for bad in [
        "a_total 3\n",
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1} 3\n",
        "# HELP a A.\n# TYPE a counter\na 3\n",
        "# HELP a A.\n# TYPE a gauge\na x\n",
        "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",
    ] {
        assert!(Metrics::parse(bad).is_err(), "{bad}");
    }
}
