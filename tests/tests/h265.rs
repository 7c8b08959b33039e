//! H.265 end to end: libx265 through the exec source (in MPEG-TS and as raw
//! Annex B), read back as HEVC over RTSP (TCP and UDP) and HLS, and
//! recorded to a file that decodes at the right size.

use std::process::Command;
use std::time::Duration;

use streamswitch_tests::watch::{ffprobe, probed_stream};
use streamswitch_tests::{exec_stream_with, run_with_timeout, Agent};

const X265: &str = "-c:v libx265 -preset ultrafast -tune zerolatency -x265-params keyint=25:log-level=error -pix_fmt yuv420p";

fn recorded(agent: &Agent, stream: &str) -> Vec<std::path::PathBuf> {
    let dir = agent.data_dir().join("recordings").join(stream);
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|f| f.path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect()
}

#[test]
fn hevc_in_mpegts_is_served_over_rtsp_and_hls_and_recorded() {
    let stream = exec_stream_with("hevc", "320x240", 25, X265, "mpegts");
    let mut agent = Agent::start(&format!(
        "{stream}record = {{ enabled = true, segment_seconds = 60, fragment_ms = 500 }}\n"
    ));
    agent.wait_ready(1);
    for t in ["tcp", "udp"] {
        let probed = ffprobe(&["-rtsp_transport", t], &agent.rtsp_url("hevc"))
            .unwrap_or_else(|e| panic!("ffprobe over {t}: {e}"));
        let v = probed_stream(&probed, "video").expect("video");
        assert_eq!(v["codec_name"], "hevc", "over {t}");
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(320), Some(240))
        );
        assert_eq!(
            probed_stream(&probed, "audio").expect("audio")["codec_name"],
            "aac"
        );
    }
    let main = streamswitch_tests::http::get(&agent.http_url("/hevc/main.m3u8"));
    assert_eq!(main.status, 200);
    let text = main.text();
    assert!(
        text.contains("CODECS=\"hvc1.1.")
            && text.contains(",mp4a.40.2\"")
            && text.contains("RESOLUTION=320x240"),
        "{text}"
    );
    assert!(text.ends_with("index.m3u8\n"), "{text}");
    let probed = ffprobe(&[], &agent.http_url("/hevc/index.m3u8")).unwrap();
    let v = probed_stream(&probed, "video").expect("video over HLS");
    assert_eq!(v["codec_name"], "hevc");
    assert_eq!(v["codec_tag_string"], "hvc1");
    std::thread::sleep(Duration::from_secs(2));
    let status = agent.terminate(Duration::from_secs(10)).expect("exit");
    assert!(status.success());
    let files = recorded(&agent, "hevc");
    assert_eq!(files.len(), 1, "{files:?}");
    let (ok, _, err) = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-v", "error", "-xerror", "-i"])
            .arg(&files[0])
            .args(["-f", "null", "-"]),
        Duration::from_secs(60),
    );
    assert!(ok, "the recording does not decode: {err}");
    let probed = ffprobe(&[], files[0].to_str().unwrap()).unwrap();
    let v = probed_stream(&probed, "video").expect("video");
    assert_eq!(v["codec_name"], "hevc");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(240))
    );
}

#[test]
fn raw_hevc_is_served_over_rtsp() {
    let agent = Agent::start(&exec_stream_with("raw", "480x272", 25, X265, "hevc"));
    agent.wait_ready(1);
    let probed = ffprobe(&["-rtsp_transport", "tcp"], &agent.rtsp_url("raw")).unwrap();
    let v = probed_stream(&probed, "video").expect("video");
    assert_eq!(v["codec_name"], "hevc");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(480), Some(272))
    );
    assert!(probed_stream(&probed, "audio").is_none());
}

/// Chromium (Debian's build) has no HEVC decoder: the web UI says so on the
/// stream's card instead of showing a black box.
#[test]
fn the_web_ui_says_when_the_browser_cannot_play_hevc() {
    let agent = Agent::start(&exec_stream_with("hevc", "320x240", 25, X265, "mpegts"));
    agent.wait_ready(1);
    let browser = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let shot = agent.dir.path().join("hevc.png");
    let (ok, out, err) = run_with_timeout(
        Command::new("node")
            .arg(browser.join("web_ui.mjs"))
            .arg(agent.http_url(""))
            .arg(&shot)
            .args(["--stream", "hevc", "--overlay-only"]),
        Duration::from_secs(120),
    );
    assert!(ok, "{out}\n{err}");
    let seen: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    let overlay = &seen["page"]["overlay"];
    assert_eq!(overlay["hidden"], false, "{seen}");
    assert!(
        overlay["text"]
            .as_str()
            .unwrap_or("")
            .contains("cannot play H.265"),
        "{seen}"
    );
}
