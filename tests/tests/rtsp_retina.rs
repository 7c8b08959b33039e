//! The RTSP server against retina, an independent RTSP client library:
//! DESCRIBE/SETUP/PLAY over TCP interleaved and over UDP, both tracks
//! depacketized, real-time frame rate, sane timestamps, RTCP sender reports.

use std::time::Duration;

use streamswitch_tests::rtsp_client::{receive, span_secs, strictly_increasing, transport};
use streamswitch_tests::{test_stream, Agent};

const FPS: u32 = 20;
const SECONDS: u64 = 6;
/// 48 kHz AAC-LC: 1024 samples a frame.
const AAC_FRAME: i64 = 1024;

fn plays_both_tracks(transport_name: &str) {
    let agent = Agent::start(&test_stream("cam", 320, 240, FPS));
    agent.wait_ready(1);
    let url = agent.rtsp_url("cam");
    let got = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(receive(
            &url,
            transport(transport_name),
            None,
            Duration::from_secs(SECONDS),
        ))
        .unwrap_or_else(|e| panic!("retina over {transport_name}: {e}"));

    assert_eq!(got.encodings, ["h264", "mpeg4-generic"], "{got:?}");
    assert_eq!(got.pixel_dimensions, Some((320, 240)));
    assert_eq!(got.audio_clock_rate, Some(48_000));

    let fps = got.steady_video_fps(Duration::from_secs(1));
    assert!(
        (fps - f64::from(FPS)).abs() <= 0.1 * f64::from(FPS),
        "steady video rate {fps:.1} fps, stream has {FPS}"
    );
    let frames = got.video_timestamps.len();
    let expected = (SECONDS - 1) as f64 * f64::from(FPS);
    assert!(
        frames as f64 >= expected,
        "{frames} video frames in {SECONDS} s"
    );
    assert_eq!(
        got.video_keyframes.first(),
        Some(&true),
        "playback starts on an IDR"
    );

    assert!(
        strictly_increasing(&got.video_timestamps),
        "video timestamps go back"
    );
    let video_span = span_secs(&got.video_timestamps, 90_000);
    let frame_span = (frames - 1) as f64 / f64::from(FPS);
    assert!(
        (video_span - frame_span).abs() <= 0.1 * frame_span,
        "{frames} frames span {video_span:.2} s of RTP time, expected {frame_span:.2}"
    );

    let audio = &got.audio_timestamps;
    let audio_expected = (SECONDS - 1) as f64 * 48_000.0 / AAC_FRAME as f64;
    assert!(
        audio.len() as f64 >= audio_expected,
        "{} audio frames in {SECONDS} s",
        audio.len()
    );
    assert!(
        audio.windows(2).all(|w| w[1] - w[0] == AAC_FRAME),
        "audio timestamps do not step by {AAC_FRAME}"
    );

    let lag = got
        .audio_lag_secs(Duration::from_secs(1))
        .expect("steady audio and video");
    assert!(
        lag.abs() <= 0.2,
        "audio is {lag:.3} s off video by RTP-Info and arrival times"
    );

    assert!(
        got.sender_reports >= 1,
        "no RTCP sender report in {SECONDS} s"
    );
}

#[test]
fn retina_plays_h264_and_aac_over_tcp() {
    plays_both_tracks("tcp");
}

#[test]
fn retina_plays_h264_and_aac_over_udp() {
    plays_both_tracks("udp");
}
