//! Recorded files: fragmented MP4 of the configured length, each starting
//! with a keyframe, decoding cleanly, closed with their duration on a
//! clean stop.

mod record_common;

use std::time::Duration;

use record_common::*;
use streamswitch_tests::watch::av_offsets;
use streamswitch_tests::Agent;

#[test]
fn segments_have_the_configured_length_and_decode() {
    let mut agent = Agent::start(&recorded_stream("cam", 2, ""));
    agent.wait_ready(1);
    let data = agent.data_dir();
    wait_for("four closed files", Duration::from_secs(30), || {
        (closed_files(&data).len() >= 4).then_some(())
    });
    let status = agent
        .terminate(Duration::from_secs(10))
        .expect("the agent stops within 10 s of SIGTERM");
    assert!(status.success(), "SIGTERM: the agent exited with {status}");
    assert!(
        partial_files(&data).is_empty(),
        "a clean stop closes the file"
    );
    let files = closed_files(&data);
    let (last, full) = files.split_last().unwrap();
    for f in full {
        // Files end at the first keyframe (every 1 s) at or after 2 s.
        let span = media_span(f);
        assert!(
            (1.95..=3.1).contains(&span),
            "{}: {span} s of packets",
            f.display()
        );
        // ffprobe's format duration agrees, give or take its habit of
        // adding a late-starting track's offset (the first file after the
        // source starts: its audio begins ~0.2 s after the video).
        let d = probe_duration(f);
        assert!(
            (d - span).abs() < 0.3,
            "{}: ffprobe {d} s, packets {span} s",
            f.display()
        );
        // Audio and video in step: both tracks start and end together
        // (within an audio frame and a video frame).
        let (start, end) = av_offsets(&[], f.to_str().unwrap()).unwrap();
        assert!(
            start.abs() <= 0.1 && end.abs() <= 0.1,
            "{}: audio starts {start:+.3} s and ends {end:+.3} s from video",
            f.display()
        );
        let declared = declared_duration(f);
        assert!(
            (declared - span).abs() < 0.1,
            "{}: header {declared} s, packets {span} s",
            f.display()
        );
    }
    // The last one was cut by the stop, at any length; its header still
    // declares its duration, within one fragment (500 ms) of its packets.
    let span = media_span(last);
    assert!(span > 0.0, "{}: empty", last.display());
    let declared = declared_duration(last);
    assert!(
        (declared - span).abs() <= 0.5,
        "{} (closed by SIGTERM): header {declared} s, packets {span} s",
        last.display()
    );
    for f in &files {
        assert_eq!(decode_errors(f), "", "{}", f.display());
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("cam_") && name_time(name).ends_with('Z'),
            "{name}"
        );
        let day = f.parent().unwrap().file_name().unwrap().to_str().unwrap();
        assert_eq!(&name[4..8], &day[..4], "day directory matches the name");
        // A file that plays on its own starts with a keyframe: its first
        // decoded video frame is an I frame.
        let out = ffprobe_csv(
            f,
            &[
                "-select_streams",
                "v",
                "-show_entries",
                "frame=pict_type",
                "-read_intervals",
                "%+#1",
            ],
        );
        assert!(out.trim() == "I", "{}: first frame {out:?}", f.display());
    }
    // Start times in names follow each other by the files' durations.
    let starts: Vec<&str> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]));
}
