//! Independent HLS clients read the agent's stream: ffprobe sees both
//! tracks, ffmpeg decodes the full frame rate. They ignore the LL-HLS
//! parts, so this also checks the playlist works for plain HLS clients.

use std::process::Command;
use std::time::Duration;

use streamswitch_tests::watch::av_offsets;
use streamswitch_tests::{run_with_timeout, test_stream, Agent};

const FPS: u32 = 25;

#[test]
fn ffprobe_sees_h264_video_and_aac_audio() {
    let agent = Agent::start(&test_stream("cam", 320, 240, FPS));
    agent.wait_ready(1);
    let url = agent.http_url("/cam/index.m3u8");
    let (ok, out, err) = run_with_timeout(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,width,height,sample_rate",
            "-of",
            "compact",
            &url,
        ]),
        Duration::from_secs(30),
    );
    assert!(ok, "ffprobe failed: {err}");
    assert!(
        out.contains("codec_name=h264|codec_type=video|width=320|height=240"),
        "{out}"
    );
    assert!(
        out.contains("codec_name=aac|codec_type=audio|sample_rate=48000"),
        "{out}"
    );
}

#[test]
fn ffmpeg_decodes_six_seconds_at_the_full_frame_rate() {
    let agent = Agent::start(&test_stream("cam", 320, 240, FPS));
    agent.wait_ready(1);
    // Past the encoder's start, which on a busy machine may skip a frame:
    // a full second of media at the full rate.
    agent.wait_for_metric(
        "streamswitch_stream_fps{stream=\"cam\"}",
        Duration::from_secs(10),
        |fps| fps == f64::from(FPS),
    );
    let url = agent.http_url("/cam/index.m3u8");
    // Decoded frames' timestamps, video then audio, over 6 s of media.
    let (ok, out, err) = run_with_timeout(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-read_intervals",
            "%+6",
            "-show_entries",
            "frame=media_type,best_effort_timestamp_time",
            "-of",
            "csv=p=0",
            &url,
        ]),
        Duration::from_secs(60),
    );
    assert!(ok, "ffprobe failed: {err}");
    let mut video = Vec::new();
    let mut audio = 0;
    for line in out.lines() {
        let mut f = line.split(',');
        match (f.next(), f.next().and_then(|t| t.parse::<f64>().ok())) {
            (Some("video"), Some(t)) => video.push(t),
            (Some("audio"), Some(_)) => audio += 1,
            _ => {}
        }
    }
    let expected = 6 * FPS as usize;
    assert!(
        video.len() >= expected * 95 / 100,
        "{} video frames decoded, expected about {expected}: {:?}..{:?}; {err}",
        video.len(),
        video.first(),
        video.last()
    );
    // 48 kHz AAC: 1024 samples a frame, about 47 a second.
    assert!(audio >= 6 * 47 * 90 / 100, "{audio} audio frames");
    // Pictures in order, no hole the size of a part (PART-TARGET: 200 ms
    // parts, 210 ms advertised). A busy machine can stall the test source's
    // encoder for a few frames; the source then logs the frames it skipped,
    // and HLS itself must lose nothing: its drop counter stays 0.
    let part_target = 0.21;
    for pair in video.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap > 0.0 && gap < part_target,
            "gap of {gap:.3} s between frames at {:.3}; the source logged: {:?}",
            pair[0],
            agent
                .log()
                .iter()
                .filter(|l| l.contains("fell behind"))
                .collect::<Vec<_>>()
        );
    }
    let dropped =
        agent.metric("streamswitch_stream_dropped_frames_total{stream=\"cam\",output=\"hls\"}");
    assert_eq!(dropped, 0.0, "the HLS muxer lost frames");

    // ffmpeg too, decoding everything to nowhere.
    let (ok, _, err) = run_with_timeout(
        Command::new("ffmpeg").args([
            "-hide_banner",
            "-nostats",
            "-i",
            &url,
            "-t",
            "6",
            "-f",
            "null",
            "-",
        ]),
        Duration::from_secs(60),
    );
    assert!(ok, "ffmpeg failed: {err}");
    let frames: usize = err
        .lines()
        .filter_map(|l| l.trim().strip_prefix("frame="))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .next_back()
        .unwrap_or(0);
    assert!(
        frames >= expected * 95 / 100,
        "ffmpeg decoded {frames} frames: {err}"
    );
}

#[test]
fn audio_and_video_stay_in_step_over_hls() {
    let agent = Agent::start(&test_stream("cam", 320, 240, FPS));
    agent.wait_ready(1);
    let url = agent.http_url("/cam/index.m3u8");
    // 6 s of packets as an HLS client reads them: both tracks start and
    // end together, within an audio frame and a video frame.
    let (start, end) = av_offsets(&["-read_intervals", "%+6"], &url).unwrap();
    println!("HLS: audio starts {start:+.3} s, ends {end:+.3} s from video");
    assert!(
        start.abs() <= 0.1 && end.abs() <= 0.1,
        "HLS: audio starts {start:+.3} s and ends {end:+.3} s from video"
    );
}
