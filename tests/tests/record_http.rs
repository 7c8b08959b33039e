//! Recordings over HTTP: the list API, Range requests, and nothing
//! outside the recordings directory reachable.

mod record_common;

use std::time::Duration;

use record_common::*;
use streamswitch_tests::Agent;

/// Unix milliseconds of an RFC 3339 UTC time (the whole date counts, so
/// files on both sides of midnight compare right).
fn parse_rfc3339_ms(s: &str) -> i64 {
    streamswitch_tests::m3u8::rfc3339_ms(s).unwrap_or_else(|| panic!("not RFC 3339 UTC: {s}"))
}

#[test]
fn list_range_and_traversal() {
    let agent = Agent::start(&recorded_stream("cam", 2, ""));
    agent.wait_ready(1);
    let data = agent.data_dir();
    wait_for("three closed files", Duration::from_secs(30), || {
        (closed_files(&data).len() >= 3).then_some(())
    });
    let port = agent.http_port;

    // The list: every closed file with its duration and size.
    let list = http(port, "GET", "/api/recordings?stream=cam", &[]).json();
    let list = list.as_array().unwrap().clone();
    assert!(list.len() >= 3, "{list:?}");
    for r in &list {
        let path = r["path"].as_str().unwrap();
        let rel = path.strip_prefix("/recordings/").unwrap();
        let file = data.join("recordings").join(rel);
        assert_eq!(
            r["bytes"].as_u64().unwrap(),
            std::fs::metadata(&file).unwrap().len()
        );
        let d = r["duration"].as_f64().unwrap();
        // ffprobe's packets: first start to last end over both tracks.
        let span = media_span(&file);
        assert!(
            (d - span).abs() < 0.1,
            "{path}: api {d} s, packets span {span} s"
        );
        assert_eq!(r["stream"], "cam");
        assert!(r["start"].as_str().unwrap().ends_with('Z'));
    }
    for w in list.windows(2) {
        let gap = parse_rfc3339_ms(w[1]["start"].as_str().unwrap())
            - parse_rfc3339_ms(w[0]["start"].as_str().unwrap());
        let d = (w[0]["duration"].as_f64().unwrap() * 1000.0) as i64;
        assert!(
            (gap - d).abs() < 150,
            "next file starts {gap} ms later, duration {d} ms"
        );
    }
    // Time filters: `to` before the first start gives nothing; `from` after
    // the first file's end drops it.
    let first_start = list[0]["start"].as_str().unwrap();
    let none = http(port, "GET", "/api/recordings?to=2000-01-01T00:00:00Z", &[]).json();
    assert_eq!(none.as_array().unwrap().len(), 0);
    // Within the second file (it lasts at least 1.9 s), after the first.
    let second_start = list[1]["start"].as_str().unwrap();
    let inside_second = format!("{}999Z", &second_start[..20]);
    let later = http(
        port,
        "GET",
        &format!("/api/recordings?from={inside_second}"),
        &[],
    )
    .json();
    assert!(later
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["start"] != first_start));
    assert_eq!(
        http(port, "GET", "/api/recordings?from=yesterday", &[]).status,
        400
    );
    assert_eq!(
        http(port, "GET", "/api/recordings?stream=nope", &[])
            .json()
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // The file, whole and in ranges.
    let path = list[0]["path"].as_str().unwrap().to_owned();
    let on_disk = std::fs::read(
        data.join("recordings")
            .join(path.strip_prefix("/recordings/").unwrap()),
    )
    .unwrap();
    let len = on_disk.len();
    let whole = http(port, "GET", &path, &[]);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-type"), Some("video/mp4"));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(whole.body, on_disk);
    let part = http(port, "GET", &path, &[("Range", "bytes=100-1099")]);
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 100-1099/{len}").as_str())
    );
    assert_eq!(part.body, on_disk[100..1100]);
    let tail = http(port, "GET", &path, &[("Range", "bytes=-500")]);
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, on_disk[len - 500..]);
    let open = http(
        port,
        "GET",
        &path,
        &[("Range", &format!("bytes={}-", len - 10))],
    );
    assert_eq!(open.body, on_disk[len - 10..]);
    let bad = http(port, "GET", &path, &[("Range", &format!("bytes={len}-"))]);
    assert_eq!(bad.status, 416);
    assert_eq!(
        bad.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );

    // Nothing else is reachable: a secret next to the data dir, and a
    // symlink inside the recordings dir that points at it.
    let secret = agent.dir.path().join("secret.mp4");
    std::fs::write(&secret, b"secret").unwrap();
    let day_dir = std::path::Path::new(&path)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let day = day_dir.rsplit('/').next().unwrap().to_owned();
    let link_name = "cam_20000101T000000.000Z.mp4";
    std::os::unix::fs::symlink(
        &secret,
        data.join("recordings/cam").join(&day).join(link_name),
    )
    .unwrap();
    std::os::unix::fs::symlink(agent.dir.path(), data.join("recordings/cam/2000-01-01")).unwrap();
    let attempts = [
        format!("/recordings/cam/{day}/{link_name}"),
        format!("/recordings/cam/2000-01-01/{link_name}"),
        "/recordings/cam/2000-01-01/secret.mp4".to_string(),
        "/recordings/../secret.mp4".to_string(),
        "/recordings/cam/../../secret.mp4".to_string(),
        "/recordings/cam/%2e%2e/%2e%2e%2fsecret.mp4".to_string(),
        "/recordings/cam/x/..%2f..%2f..%2fsecret.mp4".to_string(),
        "/recordings/cam/%252e%252e/%252e%252e%252fsecret.mp4".to_string(),
        "/recordings/%2e%2e/%2e%2e/secret.mp4".to_string(),
        format!("/recordings/cam/{day}/%2Fetc%2Fpasswd"),
        format!("/recordings/cam/{day}/..%5c..%5csecret.mp4"),
        "/recordings//etc/passwd".to_string(),
        format!("/recordings/cam/{day}/{}", secret.display()),
    ];
    for a in &attempts {
        let r = http(port, "GET", a, &[]);
        assert!(r.status == 400 || r.status == 404, "{a}: {}", r.status);
        assert!(
            !String::from_utf8_lossy(&r.body).contains("secret"),
            "{a} leaked the file"
        );
    }
    // The symlinked file is not listed either.
    let list = http(port, "GET", "/api/recordings", &[]).json();
    assert!(!list.to_string().contains("20000101"), "{list}");
}
