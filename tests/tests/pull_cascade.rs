//! The pull source (proxy mode): a cascade of three agents (A runs the test
//! source, B pulls A, C pulls B) read over RTSP and HLS with the latency
//! each hop adds; H.265 pulled; and a camera that goes away and comes back
//! under a puller whose viewers stay.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use futures::StreamExt;
use retina::codec::CodecItem;
use streamswitch_tests::rtsp_client::{play, transport};
use streamswitch_tests::watch::{ffmpeg_decode, ffprobe, probed_stream, RtpWatch};
use streamswitch_tests::{exec_stream_with, test_stream, Agent};

fn pull(name: &str, url: &str) -> String {
    format!("[[stream]]\nname = \"{name}\"\nsource = {{ kind = \"rtsp\", url = \"{url}\", stall_seconds = 5 }}\n")
}

fn wait_state(agent: &Agent, name: &str, want: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while agent.stream_state(name)["state"] != want {
        assert!(
            Instant::now() < deadline,
            "{name} never {want}: {}",
            agent.stream_state(name)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Arrival time of each video frame, by a hash of its bytes: the same
/// frame at every hop (nothing re-encodes it).
async fn arrivals(url: String, seconds: u64) -> HashMap<u64, Instant> {
    let session = play(&url, transport("tcp"), None).await.expect("play");
    let mut demuxed = session.demuxed().expect("demuxed");
    let mut out = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let item = tokio::select! {
            i = demuxed.next() => i,
            _ = tokio::time::sleep_until(deadline) => break,
        };
        if let Some(Ok(CodecItem::VideoFrame(f))) = item {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            f.data().hash(&mut h);
            out.entry(h.finish()).or_insert_with(Instant::now);
        }
    }
    out
}

/// Median of `later - earlier` over the frames both saw, in milliseconds.
fn median_delay(earlier: &HashMap<u64, Instant>, later: &HashMap<u64, Instant>) -> (f64, usize) {
    let mut d: Vec<f64> = later
        .iter()
        .filter_map(|(k, t)| Some(t.duration_since(*earlier.get(k)?).as_secs_f64() * 1000.0))
        .collect();
    d.sort_by(|a, b| a.total_cmp(b));
    (d.get(d.len() / 2).copied().unwrap_or(f64::NAN), d.len())
}

#[test]
fn a_cascade_of_three_agents_serves_rtsp_and_hls_and_each_hop_adds_little() {
    let a = Agent::start(&test_stream("cam", 320, 240, 15));
    a.wait_ready(1);
    let b = Agent::start(&pull("relay", &a.rtsp_url("cam")));
    b.wait_ready(1);
    let c = Agent::start(&pull("edge", &b.rtsp_url("relay")));
    c.wait_ready(1);
    let probed = ffprobe(&["-rtsp_transport", "tcp"], &c.rtsp_url("edge")).unwrap();
    let v = probed_stream(&probed, "video").expect("video at C");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert_eq!(
        probed_stream(&probed, "audio").expect("audio at C")["codec_name"],
        "aac"
    );
    let probed = ffprobe(&[], &c.http_url("/edge/index.m3u8")).unwrap();
    assert!(probed_stream(&probed, "video").is_some() && probed_stream(&probed, "audio").is_some());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (at_a, at_b, at_c) = rt.block_on(async {
        tokio::join!(
            arrivals(a.rtsp_url("cam"), 8),
            arrivals(b.rtsp_url("relay"), 8),
            arrivals(c.rtsp_url("edge"), 8)
        )
    });
    let (ab, n_ab) = median_delay(&at_a, &at_b);
    let (bc, n_bc) = median_delay(&at_b, &at_c);
    println!("latency added per hop (median over {n_ab} / {n_bc} frames): A->B {ab:.1} ms, B->C {bc:.1} ms");
    assert!(
        n_ab > 50 && n_bc > 50,
        "too few frames matched: {n_ab}, {n_bc}"
    );
    assert!(ab < 300.0 && bc < 300.0, "a hop adds {ab:.1} / {bc:.1} ms");
}

#[test]
fn hevc_is_pulled_too() {
    let x265 = "-c:v libx265 -preset ultrafast -tune zerolatency -x265-params keyint=25:log-level=error -pix_fmt yuv420p";
    let a = Agent::start(&exec_stream_with("hevc", "320x240", 25, x265, "mpegts"));
    a.wait_ready(1);
    let b = Agent::start(&pull("copy", &a.rtsp_url("hevc")));
    b.wait_ready(1);
    let probed = ffprobe(&["-rtsp_transport", "tcp"], &b.rtsp_url("copy")).unwrap();
    let v = probed_stream(&probed, "video").expect("video");
    assert_eq!(v["codec_name"], "hevc");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert!(b.stream_state("copy")["tracks"]
        .as_str()
        .unwrap()
        .starts_with("H265 320x240"));
}

/// retina (B's pull source) takes A's RFC 2435 packets back into whole
/// JPEG pictures; B sends them on, and ffmpeg decodes them.
#[test]
fn mjpeg_is_pulled_too() {
    let a = Agent::start(
        "[[stream]]\nname = \"mj\"\nsource = { kind = \"test\", format = \"mjpeg\", encoder = \"copy\", width = 320, height = 240, fps = 15 }\n",
    );
    a.wait_ready(1);
    let b = Agent::start(&pull("copy", &a.rtsp_url("mj")));
    b.wait_ready(1);
    let state = b.stream_state("copy");
    assert!(
        state["tracks"]
            .as_str()
            .is_some_and(|t| t.starts_with("MJPEG 320x240")),
        "{state}"
    );
    let (ok, out, err) = ffmpeg_decode(&b.rtsp_url("copy"), 15, &["-f", "framemd5", "-"]);
    assert!(ok, "ffmpeg: {err}");
    let pictures: Vec<&str> = out.lines().filter(|l| l.starts_with("0,")).collect();
    assert_eq!(pictures.len(), 15, "{out}{err}");
    assert!(
        pictures.iter().all(|l| l.contains(" 115200,")),
        "320x240 4:2:0 pictures: {out}"
    );
}

#[test]
fn a_camera_that_goes_away_and_comes_back_is_pulled_again_under_its_viewers() {
    let mut a = Agent::start(&test_stream("cam", 320, 240, 15));
    a.wait_ready(1);
    let b = Agent::start(&pull("relay", &a.rtsp_url("cam")));
    b.wait_ready(1);
    wait_state(&b, "relay", "live", Duration::from_secs(10));
    let viewer = RtpWatch::start(b.rtsp_port, &b.rtsp_url("relay")).unwrap();
    assert!(viewer.wait_for(Duration::from_secs(5), |s| s.frames > 15));
    a.kill();
    wait_state(&b, "relay", "down", Duration::from_secs(15));
    let error = b.stream_state("relay")["last_error"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(error.contains(&a.rtsp_url("cam")[..20]), "{error}");
    a.restart_in_place();
    let back = Instant::now();
    wait_state(&b, "relay", "live", Duration::from_secs(40));
    println!(
        "pulled again {:.1} s after the camera came back",
        back.elapsed().as_secs_f64()
    );
    let frames = viewer.stats().frames;
    assert!(
        viewer.wait_for(Duration::from_secs(10), |s| s.frames > frames + 30),
        "the viewer got nothing after the camera came back: {:?}",
        viewer.stats()
    );
    let s = viewer.stats();
    assert!(!s.ended, "the viewer's session was closed");
    assert_eq!(s.ts_back, 0, "time went back at the viewer");
    assert!(b.stream_state("relay")["restarts"].as_u64() >= Some(1));
}
