//! The test source's `format` key end to end: the pattern as a YUYV and as
//! an MJPEG camera delivers it goes through the capture pipeline's
//! conversion and decoding, and ffprobe and ffmpeg see an H.264 stream of
//! the size asked that decodes to the pattern.

use std::process::Command;
use std::time::Duration;

use streamswitch_tests::watch::{ffprobe, probed_stream};
use streamswitch_tests::{run_with_timeout, Agent};

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

        // Decoded: whole pictures, with the pattern's ramp in them.
        let file = dir.path().join(format!("{format}.gray"));
        let (ok, _, err) = run_with_timeout(
            Command::new("ffmpeg")
                .args([
                    "-v",
                    "error",
                    "-xerror",
                    "-rtsp_transport",
                    "tcp",
                    "-i",
                    &url,
                    "-frames:v",
                    &FRAMES.to_string(),
                    "-f",
                    "rawvideo",
                    "-pix_fmt",
                    "gray",
                    "-y",
                ])
                .arg(&file),
            Duration::from_secs(30),
        );
        assert!(ok, "ffmpeg could not decode {format}: {err}");
        let luma = std::fs::read(&file).expect("decoded pictures");
        assert_eq!(luma.len(), FRAMES * 640 * 480, "{format}: {err}");
        let first_row = &luma[..640];
        let (lo, hi) = (
            *first_row.iter().min().unwrap(),
            *first_row.iter().max().unwrap(),
        );
        assert!(hi - lo > 100, "{format}: a flat row ({lo}..{hi})");
    }
}
