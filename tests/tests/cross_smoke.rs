//! The agent built for a board, run under qemu-user on this machine: it
//! prints its version, and its built-in 320x240 test source is served over
//! RTSP and HLS to the host's ffprobe, and it lists the device back-ends
//! it was built with.
//!
//! Which build: `$STREAMSWITCH_CROSS_TARGET` (default
//! `aarch64-unknown-linux-gnu`, what CI builds) and
//! `$STREAMSWITCH_CROSS_PROFILE` (the profile's directory: default `ci-arm`,
//! what CI builds).
//! `bash cross/build.sh armv7` and `aarch64-musl` run this test on their own
//! builds. A missing binary or emulator fails the test.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use streamswitch_tests::{run_with_timeout, test_stream, Agent};

const FPS: u32 = 15;

/// The emulator command line and the binary to run under it.
fn program() -> Vec<OsString> {
    let triple = std::env::var("STREAMSWITCH_CROSS_TARGET")
        .unwrap_or_else(|_| "aarch64-unknown-linux-gnu".into());
    let profile = std::env::var("STREAMSWITCH_CROSS_PROFILE").unwrap_or_else(|_| "ci-arm".into());
    // This test is target/<host profile>/deps/cross_smoke-<hash>.
    let exe = std::env::current_exe().expect("current_exe");
    let target_dir = exe.ancestors().nth(3).expect("target dir").to_path_buf();
    let bin = target_dir.join(&triple).join(&profile).join("streamswitch");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --profile {profile} --target {triple} \
         -p streamswitch-agent` (see tests/run.sh), or `bash cross/build.sh`",
        bin.display()
    );
    let qemu = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cross/qemu.sh");
    let mut program = match triple.as_str() {
        // Static: no loader, no sysroot.
        t if t.ends_with("-musl") => vec!["qemu-aarch64".into()],
        t if t.starts_with("aarch64") => vec![qemu.into(), "aarch64".into()],
        t if t.starts_with("armv7") => vec![qemu.into(), "arm".into()],
        other => panic!("no emulator known for {other}"),
    };
    program.push(bin.into());
    program
}

#[test]
fn version_under_qemu() {
    let program = program();
    let (ok, out, err) = run_with_timeout(
        Command::new(&program[0])
            .args(&program[1..])
            .arg("--version"),
        Duration::from_secs(60),
    );
    assert!(ok, "--version under qemu failed: {err}");
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
}

/// The device back-ends compiled in (`streamswitch devices`): the glibc
/// builds have V4L2 and ALSA; the static musl build V4L2 only (no musl
/// libasound to link: docs/boards.md).
#[test]
fn devices_under_qemu_lists_the_built_back_ends() {
    let program = program();
    let (ok, out, err) = run_with_timeout(
        Command::new(&program[0])
            .args(&program[1..])
            .args(["devices", "--json"]),
        Duration::from_secs(60),
    );
    assert!(ok, "devices under qemu failed: {err}");
    let inventory: serde_json::Value = serde_json::from_str(&out).expect(&out);
    let backends: Vec<&str> = inventory["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .filter_map(|b| b.as_str())
        .collect();
    let musl = std::env::var("STREAMSWITCH_CROSS_TARGET").is_ok_and(|t| t.ends_with("-musl"));
    assert!(backends.contains(&"v4l2"), "{backends:?}");
    assert_eq!(backends.contains(&"alsa"), !musl, "{backends:?}");
}

#[test]
fn rtsp_and_hls_under_qemu_reach_the_host_ffprobe() {
    let agent = Agent::start_under(program(), &test_stream("cam", 320, 240, FPS));
    agent.wait_ready(1);
    let cpu_start = (Instant::now(), cpu_seconds(agent.pid()));

    let (ok, out, err) = run_with_timeout(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-show_entries",
            "stream=codec_type,codec_name,width,height,sample_rate",
            "-of",
            "compact",
            &agent.rtsp_url("cam"),
        ]),
        Duration::from_secs(60),
    );
    assert!(ok, "ffprobe over RTSP failed: {err}");
    assert_tracks(&out);

    let (ok, out, err) = run_with_timeout(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,width,height,sample_rate",
            "-of",
            "compact",
            &agent.http_url("/cam/index.m3u8"),
        ]),
        Duration::from_secs(60),
    );
    assert!(ok, "ffprobe over HLS failed: {err}");
    assert_tracks(&out);

    // An indication of the cost under emulation (qemu-user translates
    // every instruction: a board's own figure is far lower), printed for
    // the README (`-- --nocapture`), over at least 10 s.
    std::thread::sleep(Duration::from_secs(10).saturating_sub(cpu_start.0.elapsed()));
    let (t0, c0) = cpu_start;
    let cpu = (cpu_seconds(agent.pid()) - c0) / t0.elapsed().as_secs_f64();
    println!(
        "under qemu: RSS {} kB, CPU {:.0}% of a core (320x240 {FPS} fps, one RTSP then one HLS reader)",
        agent.status_kb("VmRSS"),
        cpu * 100.0
    );
}

fn assert_tracks(out: &str) {
    assert!(
        out.contains("codec_name=h264|codec_type=video|width=320|height=240"),
        "{out}"
    );
    assert!(
        out.contains("codec_name=aac|codec_type=audio|sample_rate=48000"),
        "{out}"
    );
}

/// User + system CPU seconds of a process, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}
