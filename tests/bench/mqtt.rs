//! MQTT benchmark: command round trip (publish to reply received, MQTT 5
//! request/response through a local Mosquitto) p50/p99 over 1000 commands
//! sent one after the other, and the agent's idle CPU with MQTT connected
//! against without. Not a test: it prints figures.
//!
//! cargo build --release --bins && ./target/release/bench-mqtt

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use streamswitch_tests::mqtt::{agent_section, Broker, Client};
use streamswitch_tests::{stat_cpu_seconds, test_stream, Agent};

const COMMANDS: usize = 1000;
const IDLE_WINDOW: Duration = Duration::from_secs(60);

fn idle_cpu(extra: &str) -> f64 {
    let agent = Agent::start(extra);
    std::thread::sleep(Duration::from_secs(3));
    let pid = agent.pid();
    let before = stat_cpu_seconds(&format!("/proc/{pid}/stat"));
    std::thread::sleep(IDLE_WINDOW);
    (stat_cpu_seconds(&format!("/proc/{pid}/stat")) - before) * 60.0 / IDLE_WINDOW.as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() -> Result<()> {
    if std::env::var_os("STREAMSWITCH_BIN").is_none() {
        let bin: PathBuf = std::env::current_exe()?.with_file_name("streamswitch");
        if !bin.exists() {
            bail!("{} is missing: cargo build --release --bins", bin.display());
        }
        std::env::set_var("STREAMSWITCH_BIN", bin);
    }
    let broker = Broker::start();
    // The default telemetry interval, as a deployed agent runs.
    let section =
        agent_section(&broker.url(), "").replace("telemetry_seconds = 2", "telemetry_seconds = 10");

    let agent = Agent::start(&format!("{}{section}", test_stream("cam", 160, 120, 10)));
    agent.wait_ready(1);
    let client = Client::connect(broker.port, &[]);
    client.request("ss/test/cmd/status", "{}");
    let mut times = Vec::with_capacity(COMMANDS);
    for i in 0..COMMANDS {
        let started = Instant::now();
        let reply = client.request(
            "ss/test/cmd/keyframe",
            &format!("{{\"id\": {i}, \"stream\": \"cam\"}}"),
        );
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        if reply["ok"] != true {
            bail!("command {i} failed: {reply}");
        }
    }
    let mut status_times = Vec::with_capacity(100);
    for _ in 0..100 {
        let started = Instant::now();
        client.request("ss/test/cmd/status", "{}");
        status_times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    drop(agent);
    times.sort_by(|a, b| a.total_cmp(b));
    status_times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "round trip over {COMMANDS} `keyframe` commands: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1]
    );
    println!(
        "round trip over 100 `status` commands (disk and recordings read): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&status_times, 0.5),
        percentile(&status_times, 0.99)
    );

    let without = idle_cpu("");
    let with = idle_cpu(&section);
    println!(
        "idle agent (no stream), CPU-s per minute over {} s: without MQTT {without:.3}, with MQTT connected (telemetry every 10 s) {with:.3}",
        IDLE_WINDOW.as_secs()
    );
    Ok(())
}
