//! The test source's `format` key end to end: the pattern as a YUYV and as
//! an MJPEG camera delivers it goes through the capture pipeline's
//! conversion and decoding, and ffprobe and ffmpeg see an H.264 stream of
//! the size asked that decodes to the pattern. With `encoder = "copy"` the
//! MJPEG pictures are served as they are: over RTSP (RFC 2435) to ffmpeg,
//! and into recordings; HLS refuses the stream with a reason.

mod record_common;

use std::path::Path;
use std::time::Duration;

use record_common::{closed_files, decode_errors, ffprobe_csv, http, media_span, wait_for};
use streamswitch_tests::watch::{ffmpeg_decode, ffprobe, probed_stream};
use streamswitch_tests::Agent;

const FRAMES: usize = 20;

#[test]
fn yuyv_and_mjpeg_test_cameras_stream_at_their_size() {
    let mut config = String::new();
    for format in ["yuyv", "mjpeg"] {
        config.push_str(&format!(
            "[[stream]]\nname = \"{format}\"\nsource = {{ kind = \"test\", format = \"{format}\", width = 640, height = 480, fps = 30, bitrate_kbps = 1000, audio = false }}\n"
        ));
    }
    let agent = Agent::start(&config);
    agent.wait_ready(2);
    let dir = tempfile::tempdir().expect("tempdir");
    for format in ["yuyv", "mjpeg"] {
        let url = agent.rtsp_url(format);
        let probed = ffprobe(&["-rtsp_transport", "tcp"], &url)
            .unwrap_or_else(|e| panic!("ffprobe {format}: {e}"));
        let video = probed_stream(&probed, "video").expect("a video stream");
        assert_eq!(video["codec_name"], "h264", "{format}");
        assert_eq!(
            (&video["width"], &video["height"]),
            (&640.into(), &480.into())
        );

        decodes_to_the_pattern(&url, &dir.path().join(format!("{format}.gray")), format);
    }
}

#[test]
fn mjpeg_is_served_as_it_is_over_rtsp_and_recorded() {
    let agent = Agent::start(
        "[[stream]]\nname = \"mj\"\nsource = { kind = \"test\", format = \"mjpeg\", encoder = \"copy\", width = 640, height = 480, fps = 15, audio = true }\nrecord = { enabled = true, segment_seconds = 2, fragment_ms = 500 }\n",
    );
    agent.wait_ready(1);
    let url = agent.rtsp_url("mj");
    for transport in ["tcp", "udp"] {
        let probed = ffprobe(&["-rtsp_transport", transport], &url)
            .unwrap_or_else(|e| panic!("ffprobe over {transport}: {e}"));
        let video = probed_stream(&probed, "video").expect("a video stream");
        assert_eq!(video["codec_name"], "mjpeg", "{transport}");
        assert_eq!(
            (&video["width"], &video["height"]),
            (&640.into(), &480.into()),
            "{transport}"
        );
        let audio = probed_stream(&probed, "audio").expect("an audio stream");
        assert_eq!(audio["codec_name"], "aac", "{transport}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    decodes_to_the_pattern(&url, &dir.path().join("mj.gray"), "mjpeg copy");

    // HLS players cannot take MJPEG: a clear refusal, no muxer.
    let refused = http(agent.http_port, "GET", "/mj/index.m3u8", &[]);
    let body = String::from_utf8_lossy(&refused.body);
    assert_eq!(refused.status, 415, "{body}");
    assert!(body.contains("MJPEG") && body.contains("RTSP"), "{body}");

    let data = agent.data_dir();
    let file = wait_for("a closed recording", Duration::from_secs(30), || {
        closed_files(&data).into_iter().next()
    });
    let codecs = ffprobe_csv(&file, &["-show_entries", "stream=codec_name,width"]);
    assert!(codecs.contains("mjpeg,640"), "{}: {codecs}", file.display());
    assert!(codecs.contains("aac"), "{}: {codecs}", file.display());
    assert_eq!(decode_errors(&file), "", "{}", file.display());
    let span = media_span(&file);
    assert!((1.9..=2.6).contains(&span), "{}: {span} s", file.display());
}

/// Decodes FRAMES pictures of `url` (RTSP over TCP) to grey: whole
/// pictures, with the pattern's ramp in them.
fn decodes_to_the_pattern(url: &str, file: &Path, what: &str) {
    let file_arg = file.to_str().expect("a UTF-8 path");
    let (ok, _, err) = ffmpeg_decode(
        url,
        FRAMES,
        &["-f", "rawvideo", "-pix_fmt", "gray", "-y", file_arg],
    );
    assert!(ok, "ffmpeg could not decode {what}: {err}");
    let luma = std::fs::read(file).expect("decoded pictures");
    assert_eq!(luma.len(), FRAMES * 640 * 480, "{what}: {err}");
    let first_row = &luma[..640];
    let (lo, hi) = (
        *first_row.iter().min().unwrap(),
        *first_row.iter().max().unwrap(),
    );
    assert!(hi - lo > 100, "{what}: a flat row ({lo}..{hi})");
}
