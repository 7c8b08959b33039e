//! MQTT control against a real Mosquitto: availability and last will,
//! every command's success and error paths (MQTT 5 request/response and
//! 3.1.1 reply topics), state, Home Assistant discovery, a broker that
//! restarts, a burst of commands, TLS, and the restart command.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use streamswitch_tests::mqtt::{agent_section, Broker, Client};
use streamswitch_tests::watch::RtpWatch;
use streamswitch_tests::{http::get, run_with_timeout, test_stream, Agent};

const WAIT: Duration = Duration::from_secs(20);

fn agent_with(broker: &Broker, extra: &str) -> Agent {
    let agent = Agent::start(&format!(
        "{}{}{}",
        test_stream("cam", 320, 240, 15),
        test_stream("yard", 320, 240, 15),
        agent_section(&broker.url(), extra)
    ));
    agent.wait_ready(2);
    agent
}

fn cmd(name: &str) -> String {
    format!("ss/test/cmd/{name}")
}

#[test]
fn availability_is_retained_and_the_last_will_says_offline() {
    let broker = Broker::start();
    let mut agent = agent_with(&broker, "");
    let watcher = Client::connect(broker.port, &["ss/test/availability"]);
    let online = watcher
        .latest("ss/test/availability", WAIT, |m| m.text() == "online")
        .expect("online");
    assert!(online.retain, "availability must be retained");

    agent.kill();
    let late = Client::connect(broker.port, &["ss/test/availability"]);
    let will = late
        .latest("ss/test/availability", WAIT, |m| m.text() == "offline")
        .expect("the last will");
    assert!(will.retain);

    agent.restart();
    let back = Client::connect(broker.port, &["ss/test/availability"]);
    back.latest("ss/test/availability", WAIT, |m| m.text() == "online")
        .expect("online again");
    let status = agent.terminate(Duration::from_secs(10)).expect("exit");
    assert!(status.success());
    back.latest("ss/test/availability", WAIT, |m| m.text() == "offline")
        .expect("offline on SIGTERM");
}

#[test]
fn commands_answer_with_results_and_clear_errors() {
    let broker = Broker::start();
    let agent = agent_with(&broker, "");
    let c = Client::connect(broker.port, &["ss/test/state"]);
    c.latest("ss/test/state", WAIT, |_| true).expect("a state");
    let yard = RtpWatch::start(agent.rtsp_port, &agent.rtsp_url("yard")).unwrap();

    let status = c.request(&cmd("status"), r#"{"id": 1}"#);
    assert_eq!(status["id"], 1);
    assert_eq!(status["ok"], true, "{status}");
    assert_eq!(status["result"]["streams"]["cam"]["state"], "live");
    assert_eq!(status["result"]["device_id"], "test");
    assert!(status["result"]["disk"]["free_bytes"].as_u64() > Some(0));

    // record: files appear, and stop.
    let r = c.request(
        &cmd("record"),
        r#"{"id": "r1", "stream": "cam", "enabled": true}"#,
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["enabled"], true);
    let deadline = Instant::now() + WAIT;
    loop {
        let s = c.request(&cmd("status"), "{}");
        if s["result"]["streams"]["cam"]["recording"] == true {
            let st: Value =
                serde_json::from_slice(&get(&agent.http_url("/api/recordings/status")).body)
                    .unwrap();
            if st[0]["fragments"].as_u64() >= Some(2) {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no recording");
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = c.request(
        &cmd("record"),
        r#"{"id": "r2", "stream": "cam", "enabled": false}"#,
    );
    assert_eq!(r["result"]["enabled"], false, "{r}");
    let deadline = Instant::now() + WAIT;
    loop {
        let listed = c.request(&cmd("recordings"), r#"{"stream": "cam"}"#);
        assert_eq!(listed["ok"], true, "{listed}");
        if listed["result"].as_array().is_some_and(|a| a.len() == 1) {
            assert!(listed["result"][0]["duration"].as_f64() > Some(0.5));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the file was not listed: {listed}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // stream: stops and starts a source; the other stream's reader loses nothing.
    let r = c.request(&cmd("stream"), r#"{"stream": "cam", "enabled": false}"#);
    assert_eq!(r["result"]["state"], "stopped", "{r}");
    let r = c.request(&cmd("stream"), r#"{"stream": "cam", "enabled": true}"#);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        c.request(&cmd("keyframe"), r#"{"stream": "cam"}"#)["ok"],
        true
    );
    let frames = yard.stats().frames;
    assert!(yard.wait_for(Duration::from_secs(5), |s| s.frames > frames + 15));
    assert_eq!(yard.stats().seq_gaps, 0);

    // The same id again: answered again, not carried out again.
    let again = c.request(
        &cmd("record"),
        r#"{"id": "r1", "stream": "cam", "enabled": true}"#,
    );
    assert_eq!(again["result"]["enabled"], true, "the cached reply");
    let now = c.request(&cmd("status"), "{}");
    assert_eq!(
        now["result"]["streams"]["cam"]["recording"], false,
        "not carried out twice"
    );

    // Errors.
    for (name, payload, needle) in [
        ("explode", "{}", "unknown command `explode`"),
        (
            "record",
            r#"{"stream": "nope", "enabled": true}"#,
            "no stream named `nope`",
        ),
        (
            "stream",
            r#"{"stream": "nope", "enabled": true}"#,
            "no stream named `nope`",
        ),
        (
            "keyframe",
            r#"{"stream": "nope"}"#,
            "no stream named `nope`",
        ),
        (
            "recordings",
            r#"{"stream": "nope"}"#,
            "no stream named `nope`",
        ),
        ("record", "{not json", "bad JSON"),
        (
            "record",
            r#"{"stream": "cam", "enabled": "yes"}"#,
            "invalid type",
        ),
        ("record", r#"{"stream": "cam"}"#, "missing field `enabled`"),
        (
            "recordings",
            r#"{"stream": "cam", "from": "yesterday"}"#,
            "RFC 3339",
        ),
        ("status", "[1, 2]", "JSON object"),
    ] {
        let r = c.request(&cmd(name), payload);
        assert_eq!(r["ok"], false, "{name} {payload}: {r}");
        let error = r["error"].as_str().unwrap_or("");
        assert!(
            error.contains(needle),
            "{name} {payload}: {error:?} lacks {needle:?}"
        );
    }
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(70_000));
    let r = c.request(&cmd("status"), &big);
    assert!(
        r["error"].as_str().unwrap().contains("over the limit"),
        "{r}"
    );

    // config.get / config.set: applied, saved; a bad one changes nothing.
    let got = c.request(&cmd("config.get"), "{}");
    assert_eq!(got["result"]["mqtt"]["prefix"], "ss");
    let before = std::fs::read_to_string(&agent.config_path).unwrap();
    let bad = c.request(
        &cmd("config.set"),
        r#"{"config": {"stream": {"cam": {"source": {"fps": 500}}}}}"#,
    );
    assert_eq!(bad["ok"], false);
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .contains("stream[0].source.fps"),
        "{bad}"
    );
    assert_eq!(std::fs::read_to_string(&agent.config_path).unwrap(), before);
    let set = c.request(
        &cmd("config.set"),
        r#"{"config": {"hls": {"segments": 5}}}"#,
    );
    assert_eq!(set["ok"], true, "{set}");
    assert_eq!(set["result"]["sections"], json!(["hls"]));
    let saved = std::fs::read_to_string(&agent.config_path).unwrap();
    assert!(saved.contains("segments = 5"), "{saved}");
    let mut agent = agent;
    agent.restart();
    let c = Client::connect(broker.port, &[]);
    let got = c.request(&cmd("config.get"), "{}");
    assert_eq!(got["result"]["hls"]["segments"], 5, "survives a restart");
}

#[test]
fn a_311_client_gets_its_reply_on_the_reply_topic() {
    let broker = Broker::start();
    let _agent = agent_with(&broker, "protocol = \"3.1.1\"");
    let port = broker.port.to_string();
    let sub = std::thread::spawn(move || {
        run_with_timeout(
            Command::new("mosquitto_sub").args([
                "-V",
                "mqttv311",
                "-p",
                &port,
                "-t",
                "ss/test/reply/status",
                "-C",
                "1",
                "-W",
                "20",
            ]),
            Duration::from_secs(30),
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    let (ok, _, err) = run_with_timeout(
        Command::new("mosquitto_pub").args([
            "-V",
            "mqttv311",
            "-p",
            &broker.port.to_string(),
            "-t",
            "ss/test/cmd/status",
            "-m",
            r#"{"id": "legacy"}"#,
        ]),
        Duration::from_secs(10),
    );
    assert!(ok, "{err}");
    let (ok, out, err) = sub.join().unwrap();
    assert!(ok, "no reply on ss/test/reply/status: {err}");
    let reply: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(reply["id"], "legacy");
    assert_eq!(reply["ok"], true);
}

#[test]
fn state_and_home_assistant_discovery() {
    let broker = Broker::start();
    let agent = agent_with(&broker, "");
    let c = Client::connect(
        broker.port,
        &["ss/test/state", "homeassistant/device/test/config"],
    );
    let state = c
        .latest("ss/test/state", WAIT, |_| true)
        .expect("state")
        .json();
    for key in [
        "version",
        "uptime_s",
        "config_revision",
        "streams",
        "disk",
        "clock",
    ] {
        assert!(state.get(key).is_some(), "state lacks {key}: {state}");
    }
    let cam = &state["streams"]["cam"];
    for key in [
        "state",
        "last_error",
        "fps",
        "bitrate_kbps",
        "viewers",
        "recording",
    ] {
        assert!(cam.get(key).is_some(), "stream state lacks {key}: {cam}");
    }
    let discovery = c
        .latest("homeassistant/device/test/config", WAIT, |m| {
            !m.payload.is_empty()
        })
        .expect("discovery")
        .json();
    assert_eq!(discovery["dev"]["ids"], json!(["test"]));
    let cmps = discovery["cmps"].as_object().unwrap();
    for key in [
        "cam_recording",
        "cam_fps",
        "cam_bitrate",
        "cam_viewers",
        "cam_source",
        "cam_keyframe",
        "disk_free",
        "restart",
    ] {
        let e = &cmps[key];
        assert!(
            e["p"].is_string() && e["unique_id"].is_string(),
            "{key}: {e}"
        );
        assert_eq!(e["availability_topic"], "ss/test/availability");
    }
    // A change is published promptly (not only at the telemetry interval).
    c.clear();
    let stopped = Instant::now();
    c.request(&cmd("stream"), r#"{"stream": "yard", "enabled": false}"#);
    c.wait_for(Duration::from_secs(3), |m| {
        m.topic == "ss/test/state" && m.json()["streams"]["yard"]["state"] == "stopped"
    })
    .expect("the change in the state");
    assert!(stopped.elapsed() < Duration::from_secs(2));

    // The keyframe button's payload is a command the agent takes.
    let press = cmps["cam_keyframe"]["payload_press"].as_str().unwrap();
    assert_eq!(
        c.request(
            cmps["cam_keyframe"]["command_topic"].as_str().unwrap(),
            press
        )["ok"],
        true
    );

    // Home Assistant restarts: the agent announces again.
    c.clear();
    c.publish("homeassistant/status", "online", false);
    c.wait_for(WAIT, |m| {
        m.topic == "homeassistant/device/test/config" && !m.payload.is_empty()
    })
    .expect("announced again");

    // Discovery switched off at run time: the device is removed.
    c.clear();
    let r = c.request(
        &cmd("config.set"),
        r#"{"config": {"mqtt": {"homeassistant": false}}}"#,
    );
    assert_eq!(r["ok"], true, "{r}");
    let removed = c
        .wait_for(WAIT, |m| m.topic == "homeassistant/device/test/config")
        .expect("the removal");
    assert!(removed.payload.is_empty(), "{}", removed.text());
    // Removed for good: the retained announcement is gone for a newcomer.
    let newcomer = Client::connect(broker.port, &["homeassistant/device/test/config"]);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        newcomer.messages().iter().all(|m| m.payload.is_empty()),
        "still announced"
    );
    drop(agent);
}

#[test]
fn a_broker_restart_is_survived() {
    let mut broker = Broker::start();
    let agent = agent_with(&broker, "");
    let watch = RtpWatch::start(agent.rtsp_port, &agent.rtsp_url("cam")).unwrap();
    Client::connect(broker.port, &["ss/test/availability"])
        .latest("ss/test/availability", WAIT, |m| m.text() == "online")
        .expect("online");
    broker.restart();
    // The restarted broker has no retained messages: what comes is new.
    let c = Client::connect(broker.port, &["ss/test/availability", "ss/test/state"]);
    c.latest("ss/test/availability", Duration::from_secs(40), |m| {
        m.text() == "online"
    })
    .expect("online again after the broker restart");
    c.latest("ss/test/state", WAIT, |_| true)
        .expect("state again");
    let r = c.request(&cmd("status"), "{}");
    assert_eq!(r["ok"], true, "commands are answered after the reconnect");
    let s = watch.stats();
    assert!(!s.ended);
    assert_eq!(s.seq_gaps, 0, "streaming went on");
}

#[test]
fn a_burst_of_100_commands_is_answered_in_order() {
    let broker = Broker::start();
    let _agent = agent_with(&broker, "");
    let c = Client::connect(broker.port, &[]);
    for i in 0..100 {
        c.send_command(
            &cmd("status"),
            &format!("{{\"id\": {i}}}"),
            &format!("b{i}"),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let replies = loop {
        let got: Vec<_> = c
            .messages()
            .into_iter()
            .filter(|m| m.topic == c.response_topic)
            .collect();
        if got.len() >= 100 || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(replies.len(), 100);
    let ids: Vec<i64> = replies
        .iter()
        .map(|m| m.json()["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (0..100).collect::<Vec<_>>());
    assert!(replies.iter().all(|m| m.json()["ok"] == true));
}

#[test]
fn tls_with_the_right_ca_and_a_refusal_with_the_wrong_one() {
    let broker = Broker::start_tls();
    let ca = broker.ca().display().to_string();
    let agent = agent_with(&broker, &format!("ca_file = \"{ca}\""));
    let port = broker.port.to_string();
    let (ok, out, err) = run_with_timeout(
        Command::new("mosquitto_sub").args([
            "-p",
            &port,
            "-h",
            "127.0.0.1",
            "--cafile",
            &ca,
            "-t",
            "ss/test/availability",
            "-C",
            "1",
            "-W",
            "20",
        ]),
        Duration::from_secs(30),
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "online");
    drop(agent);

    // Another CA: the agent refuses the broker, says so, publishes nothing.
    let other = tempfile::tempdir().unwrap();
    let (ok, _, err) = run_with_timeout(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=other",
            ])
            .args(["-keyout", "o.key", "-out", "o.pem"])
            .current_dir(other.path()),
        Duration::from_secs(30),
    );
    assert!(ok, "{err}");
    let wrong = other.path().join("o.pem").display().to_string();
    let untrusting = Agent::start(&format!(
        "{}{}",
        test_stream("cam", 160, 120, 10),
        agent_section(&broker.url(), &format!("ca_file = \"{wrong}\""))
            .replace("prefix = \"ss\"", "prefix = \"untrusting\"")
    ));
    untrusting.wait_for_log("mqtt: mqtts://", WAIT);
    let line = untrusting
        .log()
        .into_iter()
        .find(|l| l.contains("mqtt: mqtts://"))
        .unwrap();
    assert!(
        line.to_lowercase().contains("certificate") || line.contains("TLS"),
        "{line}"
    );
    let (ok, out, _) = run_with_timeout(
        Command::new("mosquitto_sub").args([
            "-p",
            &port,
            "-h",
            "127.0.0.1",
            "--cafile",
            &ca,
            "-t",
            "untrusting/#",
            "-W",
            "3",
        ]),
        Duration::from_secs(10),
    );
    assert!(!ok || out.trim().is_empty(), "published anyway: {out}");
    assert!(
        out.trim().is_empty(),
        "state or availability published: {out}"
    );
}

#[test]
fn the_restart_command_starts_the_agent_again_in_place() {
    let broker = Broker::start();
    let agent = agent_with(&broker, "");
    let pid = agent.pid();
    let c = Client::connect(broker.port, &["ss/test/availability"]);
    c.latest("ss/test/availability", WAIT, |m| m.text() == "online")
        .expect("online");
    c.clear();
    let r = c.request(&cmd("restart"), r#"{"id": "again"}"#);
    assert_eq!(r["ok"], true, "{r}");
    c.wait_for(WAIT, |m| {
        m.topic == "ss/test/availability" && m.text() == "offline"
    })
    .expect("offline while restarting");
    c.wait_for(WAIT, |m| {
        m.topic == "ss/test/availability" && m.text() == "online"
    })
    .expect("online after the restart");
    assert_eq!(agent.pid(), pid, "the same process, started again");
    agent.wait_for_log("restarting", WAIT);
    let deadline = Instant::now() + WAIT;
    while get(&agent.http_url("/api/streams")).status != 200 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(agent.count_log("http listening"), 2, "started twice");
}
