//! Uplinks against real receivers: nginx with the RTMP module, ffmpeg's RTSP
//! listener, and a RECORD receiver of the tests' own that demands Digest
//! credentials, hangs up, or reads slowly. The local viewers never notice.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use streamswitch_tests::http::{get, post_json};
use streamswitch_tests::rtsp_receiver::{Behaviour, Receiver};
use streamswitch_tests::watch::{ffprobe, probed_stream, RtpWatch};
use streamswitch_tests::{run_with_timeout, test_stream, Agent};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn with_uplinks(stream: &str, uplinks: &[String]) -> String {
    let list: Vec<String> = uplinks.iter().map(|u| format!("{{ {u} }}")).collect();
    format!("{stream}uplink = [{}]\n", list.join(", "))
}

fn uplinks(agent: &Agent) -> Vec<Value> {
    let all: Value = serde_json::from_slice(&get(&agent.http_url("/api/streams")).body).unwrap();
    all[0]["uplinks"].as_array().cloned().unwrap_or_default()
}

fn wait_uplink(agent: &Agent, i: usize, cond: impl Fn(&Value) -> bool, what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let u = uplinks(agent).get(i).cloned().unwrap_or(Value::Null);
        if cond(&u) {
            return u;
        }
        assert!(Instant::now() < deadline, "uplink {i} never {what}: {u}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start() -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = format!(
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
             daemon off;\nmaster_process off;\nerror_log {dir}/error.log;\npid {dir}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096; application live {{ live on; }} }} }}\n",
            dir = dir.path().display()
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("nginx")
            .args(["-p"])
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (tests/setup.sh installs nginx and libnginx-mod-rtmp)");
        streamswitch_tests::wait_for_port(port, Duration::from_secs(10));
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn rtmp_push_to_nginx_is_read_back_as_h264_720p_and_aac() {
    let nginx = Nginx::start();
    let target = format!("rtmp://127.0.0.1:{}/live/cam", nginx.port);
    let agent = Agent::start(&with_uplinks(
        &test_stream("cam", 1280, 720, 15),
        &[format!("url = \"{target}\"")],
    ));
    agent.wait_ready(1);
    wait_uplink(&agent, 0, |u| u["state"] == "publishing", "publishing");
    let probed = ffprobe(&[], &target).unwrap_or_else(|e| panic!("ffprobe {target}: {e}"));
    let v = probed_stream(&probed, "video").expect("video from nginx");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(1280), Some(720))
    );
    assert_eq!(
        probed_stream(&probed, "audio").expect("audio from nginx")["codec_name"],
        "aac"
    );
    let u = &uplinks(&agent)[0];
    assert!(u["bytes_sent"].as_u64() > Some(10_000), "{u}");
    let metrics = get(&agent.http_url("/metrics")).text();
    assert!(
        metrics.contains("streamswitch_uplink_publishing{stream=\"cam\""),
        "{metrics}"
    );

    // Disabled and enabled again at run time.
    let r = post_json(&agent.http_url("/api/streams/cam/uplinks/0/disable"), "{}");
    assert_eq!(r.status, 200, "{}", r.text());
    wait_uplink(&agent, 0, |u| u["state"] == "disabled", "disabled");
    let r = post_json(&agent.http_url("/api/streams/cam/uplinks/0/enable"), "{}");
    assert_eq!(r.status, 200);
    wait_uplink(
        &agent,
        0,
        |u| u["state"] == "publishing" && u["connects"] == 2,
        "back",
    );
    assert_eq!(
        post_json(&agent.http_url("/api/streams/cam/uplinks/7/enable"), "{}").status,
        404
    );
}

#[test]
fn rtsp_push_to_ffmpegs_listener_is_a_file_with_video_and_audio() {
    push_to_ffmpegs_listener(&test_stream("cam", 320, 240, 15), "h264");
}

/// MJPEG (RFC 2435) goes up as it is.
#[test]
fn mjpeg_is_pushed_over_rtsp_too() {
    push_to_ffmpegs_listener(MJPEG_STREAM, "mjpeg");
}

const MJPEG_STREAM: &str = "[[stream]]\nname = \"cam\"\nsource = { kind = \"test\", format = \"mjpeg\", encoder = \"copy\", width = 320, height = 240, fps = 15 }\n";

/// Pushes `stream` to ffmpeg listening as an RTSP server; the file it
/// writes holds `codec` at 320x240 and AAC.
fn push_to_ffmpegs_listener(stream: &str, codec: &str) {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pushed.mkv");
    let listener = {
        let out = out.clone();
        std::thread::spawn(move || {
            run_with_timeout(
                Command::new("ffmpeg")
                    .args(["-v", "error", "-rtsp_flags", "listen", "-timeout", "30"])
                    .args(["-i", &format!("rtsp://127.0.0.1:{port}/live")])
                    .args(["-t", "4", "-c", "copy", "-y"])
                    .arg(&out),
                Duration::from_secs(60),
            )
        })
    };
    streamswitch_tests::wait_for_listener(port, Duration::from_secs(10));
    let agent = Agent::start(&with_uplinks(
        stream,
        &[format!("url = \"rtsp://127.0.0.1:{port}/live\"")],
    ));
    agent.wait_ready(1);
    let (ok, _, err) = listener.join().unwrap();
    assert!(ok, "ffmpeg's listener: {err}");
    let probed = ffprobe(&[], out.to_str().unwrap()).unwrap();
    let v = probed_stream(&probed, "video").expect("video in the pushed file");
    assert_eq!(v["codec_name"], codec);
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert_eq!(
        probed_stream(&probed, "audio").expect("audio")["codec_name"],
        "aac"
    );
}

#[test]
fn digest_credentials_are_answered_and_a_wrong_password_is_reported() {
    let receiver = Receiver::start(Behaviour {
        digest: Some(("pusher".into(), "s3cret".into())),
        ..Behaviour::default()
    });
    let good = format!(
        "url = \"{}\", username = \"pusher\", password = \"s3cret\"",
        receiver.url("site1/cam")
    );
    let bad = format!(
        "url = \"rtsp://pusher:wrong@127.0.0.1:{}/site1/other\"",
        receiver.port
    );
    let agent = Agent::start(&with_uplinks(
        &test_stream("cam", 320, 240, 15),
        &[good, bad],
    ));
    agent.wait_ready(1);
    wait_uplink(&agent, 0, |u| u["state"] == "publishing", "publishing");
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.received().rtp_packets < 100 {
        assert!(Instant::now() < deadline, "no RTP at the receiver");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = receiver.received();
    assert!(
        r.sdp.contains("m=video") && r.sdp.contains("m=audio"),
        "{}",
        r.sdp
    );
    let bad = wait_uplink(&agent, 1, |u| u["state"] == "backoff", "backing off");
    assert!(
        bad["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("credentials were refused"),
        "{bad}"
    );
    assert_eq!(
        bad["target"],
        format!("rtsp://127.0.0.1:{}/site1/other", receiver.port)
    );
}

#[test]
fn a_flapping_upstream_is_pushed_to_again_and_local_viewers_lose_nothing() {
    let receiver = Receiver::start(Behaviour {
        hang_up_after: Some(Duration::from_millis(700)),
        ..Behaviour::default()
    });
    let agent = Agent::start(&with_uplinks(
        &test_stream("cam", 320, 240, 15),
        &[format!(
            "url = \"{}\", backoff_max_seconds = 2",
            receiver.url("cam")
        )],
    ));
    agent.wait_ready(1);
    let viewer = RtpWatch::start(agent.rtsp_port, &agent.rtsp_url("cam")).unwrap();
    wait_uplink(
        &agent,
        0,
        |u| u["connects"].as_u64() >= Some(2),
        "reconnecting",
    );
    let rss_before = agent.status_kb("VmRSS");
    let started = Instant::now();
    wait_uplink(
        &agent,
        0,
        |u| u["connects"].as_u64() >= Some(22),
        "through 20 flaps",
    );
    let took = started.elapsed();
    let rss_after = agent.status_kb("VmRSS");
    println!(
        "20 upstream flaps in {:.1} s; RSS {rss_before} kB -> {rss_after} kB",
        took.as_secs_f64()
    );
    // Each flap: 0.7 s of publishing, then a pause under the 2 s cap.
    assert!(
        took < Duration::from_secs(20 * 3),
        "reconnects too slow: {took:?}"
    );
    assert!(
        rss_after < rss_before + 2048,
        "memory grew: {rss_before} -> {rss_after} kB"
    );
    assert!(receiver.received().records >= 22);
    let s = viewer.stats();
    assert!(!s.ended);
    assert_eq!(s.seq_gaps, 0, "the local viewer lost packets");
}

#[test]
fn a_slow_upstream_gets_a_bounded_queue_and_counted_drops() {
    let receiver = Receiver::start(Behaviour {
        read_rate: Some(10_000),
        small_window: true,
        ..Behaviour::default()
    });
    let agent = Agent::start(&with_uplinks(
        &test_stream("cam", 640, 480, 25).replace("bitrate_kbps = 500", "bitrate_kbps = 2000"),
        &[format!("url = \"{}\"", receiver.url("cam"))],
    ));
    agent.wait_ready(1);
    let viewer = RtpWatch::start(agent.rtsp_port, &agent.rtsp_url("cam")).unwrap();
    let u = wait_uplink(
        &agent,
        0,
        |u| u["dropped_frames"].as_u64() > Some(10),
        "dropping",
    );
    let queued = u["queued_bytes"].as_u64().unwrap();
    assert!(queued <= 2 << 20, "queue over its bound: {u}");
    let frames = viewer.stats().frames;
    assert!(viewer.wait_for(Duration::from_secs(3), |s| s.frames >= frames + 60));
    assert_eq!(viewer.stats().seq_gaps, 0, "the local viewer was disturbed");
    let metrics = get(&agent.http_url("/metrics")).text();
    let dropped = metrics
        .lines()
        .find(|l| l.starts_with("streamswitch_uplink_dropped_frames_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("the drop counter in /metrics");
    assert!(dropped > 10);
}

#[test]
fn a_receiver_that_dies_and_comes_back_is_pushed_to_again_within_the_cap() {
    let receiver = Receiver::start(Behaviour::default());
    let port = receiver.port;
    let agent = Agent::start(&with_uplinks(
        &test_stream("cam", 320, 240, 15),
        &[format!(
            "url = \"{}\", backoff_max_seconds = 3",
            receiver.url("cam")
        )],
    ));
    agent.wait_ready(1);
    let viewer = RtpWatch::start(agent.rtsp_port, &agent.rtsp_url("cam")).unwrap();
    wait_uplink(&agent, 0, |u| u["state"] == "publishing", "publishing");
    receiver.stop();
    drop(receiver);
    wait_uplink(&agent, 0, |u| u["state"] == "backoff", "backing off");
    // Down for a while: the pauses grow to the cap, not beyond.
    std::thread::sleep(Duration::from_secs(6));
    let back = Receiver::start_on(port, Behaviour::default());
    let since = Instant::now();
    wait_uplink(
        &agent,
        0,
        |u| u["state"] == "publishing" && u["connects"] == 2,
        "back",
    );
    let took = since.elapsed();
    println!(
        "pushing again {:.1} s after the receiver came back",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(4), "past the 3 s cap: {took:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while back.received().rtp_packets < 50 {
        assert!(Instant::now() < deadline, "no RTP after the comeback");
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = viewer.stats();
    assert!(!s.ended);
    assert_eq!(s.seq_gaps, 0, "the local viewer lost packets");
}

#[test]
fn hevc_and_mjpeg_on_an_rtmp_uplink_are_refused_with_a_clear_error() {
    let nginx = Nginx::start();
    let x265 = "-c:v libx265 -preset ultrafast -tune zerolatency -x265-params keyint=25:log-level=error -pix_fmt yuv420p";
    let hevc = streamswitch_tests::exec_stream_with("cam", "320x240", 25, x265, "mpegts");
    // FLV has neither (without Enhanced RTMP).
    for (stream, error) in [
        (hevc.as_str(), "H.265 over RTMP"),
        (MJPEG_STREAM, "cannot carry MJPEG"),
    ] {
        let agent = Agent::start(&with_uplinks(
            stream,
            &[format!(
                "url = \"rtmp://127.0.0.1:{}/live/cam\"",
                nginx.port
            )],
        ));
        agent.wait_ready(1);
        let u = wait_uplink(&agent, 0, |u| u["state"] == "backoff", "refusing");
        assert!(
            u["last_error"].as_str().unwrap_or("").contains(error),
            "{u}"
        );
    }
}
