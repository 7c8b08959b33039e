//! A reader that stops reading its socket must cost the others nothing and
//! must not make the agent buffer: the hub drops that reader's frames and
//! resumes it at the next keyframe, and counts them as RTSP's drops in
//! `/metrics` while the other outputs' drops stay 0.

use std::time::{Duration, Instant};

use streamswitch_tests::http::get;
use streamswitch_tests::rtsp_client::{receive, transport, RawRtsp};
use streamswitch_tests::Agent;

const FPS: u32 = 25;
const SECONDS: u64 = 10;

/// Whether an H.264 RTP payload (RFC 6184) begins an access unit with an
/// IDR or the parameter sets that precede one.
fn starts_keyframe(payload: &[u8]) -> bool {
    let nal_type = |b: u8| b & 0x1f;
    let first = match payload {
        [h, ..] if nal_type(*h) < 24 => nal_type(*h),
        [h, _, _, nal, ..] if nal_type(*h) == 24 => nal_type(*nal),
        [h, fu, ..] if nal_type(*h) == 28 && fu & 0x80 != 0 => nal_type(*fu),
        _ => return false,
    };
    matches!(first, 5 | 7 | 8)
}

#[test]
fn a_stalled_reader_costs_the_others_nothing_and_is_not_buffered() {
    // Recorded and watched over HLS too: those outputs must lose nothing.
    let agent = Agent::start(
        "[[stream]]\nname = \"cam\"\nsource = { kind = \"test\", width = 640, height = 360, fps = 25, bitrate_kbps = 2000, audio = true }\nrecord = { enabled = true }\n",
    );
    agent.wait_ready(1);
    let url = agent.rtsp_url("cam");
    assert_eq!(get(&agent.http_url("/cam/index.m3u8")).status, 200);
    let dropped = |output: &str| {
        agent.metric(&format!(
            "streamswitch_stream_dropped_frames_total{{stream=\"cam\",output=\"{output}\"}}"
        ))
    };
    for output in ["rtsp", "hls", "record"] {
        assert_eq!(dropped(output), 0.0, "{output} dropped before any stall");
    }

    let mut stalled = RawRtsp::connect_with_rcvbuf(agent.rtsp_port, Some(4096)).unwrap();
    let sdp = stalled.play_interleaved(&url).unwrap();
    let video_index = sdp
        .lines()
        .filter(|l| l.starts_with("m="))
        .position(|l| l.starts_with("m=video"))
        .expect("a video track");
    let video_channel = 2 * video_index as u8;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            runtime.spawn(async move {
                receive(&url, transport("tcp"), None, Duration::from_secs(SECONDS)).await
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let rss_before = agent.status_kb("VmRSS");
    std::thread::sleep(Duration::from_secs(SECONDS - 4));
    let rss_after = agent.status_kb("VmRSS");
    for (i, reader) in readers.into_iter().enumerate() {
        let got = runtime.block_on(reader).unwrap().unwrap();
        let fps = got.steady_video_fps(Duration::from_secs(1));
        assert!(
            (fps - f64::from(FPS)).abs() <= 0.1 * f64::from(FPS),
            "reader {i} got {fps:.1} fps beside a stalled reader, the stream has {FPS}"
        );
    }
    assert!(
        rss_after <= rss_before + 3 * 1024,
        "RSS grew from {rss_before} kB to {rss_after} kB while a reader stalled"
    );
    assert!(
        stalled.unread_bytes() > 0,
        "the stalled reader's socket is empty: the server sent it nothing"
    );
    // Resume reading with a normal window. The interleaved framing must be
    // intact through whatever the kernel and the hub kept, the session must
    // still play, and where the hub dropped frames (a jump in RTP time)
    // video must restart on a keyframe. The server caps its send buffer,
    // so a 10 s stall is more than the kernel and the ring hold: there
    // must be such a jump.
    stalled.set_recv_buffer(1 << 20).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut video_packets = 0;
    let mut last_ts: Option<u32> = None;
    let mut resumed_on_keyframe = false;
    while Instant::now() < deadline {
        let (channel, packet) = stalled
            .read_interleaved()
            .unwrap()
            .expect("the server closed the stalled reader instead of resuming it");
        assert!(
            channel < 4,
            "interleaved channel {channel} was never set up"
        );
        if channel % 2 == 1 {
            continue; // RTCP
        }
        assert!(packet.len() > 12 && packet[0] >> 6 == 2, "not RTP v2");
        if channel != video_channel {
            continue;
        }
        video_packets += 1;
        let ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        if let Some(prev) = last_ts {
            if ts.wrapping_sub(prev) > 90_000 / 2 {
                assert!(
                    starts_keyframe(&packet[12..]),
                    "after dropping frames the stalled reader resumed on a non-keyframe"
                );
                resumed_on_keyframe = true;
            }
        }
        last_ts = Some(ts);
    }
    assert!(
        video_packets > 0,
        "no video once the stalled reader read again"
    );
    assert!(
        resumed_on_keyframe,
        "the stalled reader got every frame: the server buffered its whole stall"
    );
    // What the stalled reader lost is counted, as RTSP's, once it reads
    // again (or when it ends); the recorder and the HLS muxer, reading the
    // same hub, lost nothing.
    let (rtsp, hls, record) = (dropped("rtsp"), dropped("hls"), dropped("record"));
    println!("dropped: rtsp {rtsp}, hls {hls}, record {record}");
    assert!(
        rtsp > 0.0,
        "a reader stalled for {SECONDS} s and no RTSP drop was counted"
    );
    assert_eq!(
        hls, 0.0,
        "the HLS muxer dropped frames beside a stalled RTSP reader"
    );
    assert_eq!(
        record, 0.0,
        "the recorder dropped frames beside a stalled RTSP reader"
    );
}
