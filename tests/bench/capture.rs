//! bench-capture: the cost of one captured and encoded stream, the capture
//! pipeline fed by a fake camera (hal's `LoopCamera` through the test
//! source's `format` key: a few pictures made once and replayed, so the
//! camera costs the agent nothing per picture, as a real one's DMA does).
//! One agent per case, one stream, no reader, and one agent with no stream
//! for the idle figure; per case over a steady window (BENCHMARKS.md):
//! - CPU-s per minute of media, gross (whole agent) and net (minus the
//!   idle agent), and the capture thread's own (convert + encode);
//! - peak RSS (VmHWM);
//! - frames the pipeline dropped (`streamswitch_capture_dropped_frames_total`)
//!   and frames it delivered per second: a case that cannot keep up shows.
//!
//! cargo build --release --bins
//! ./target/release/bench-capture --seconds 30 --runs 3

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use streamswitch_tests::{stat_cpu_seconds, Agent};

/// A case: the test source's `format`, size and bit rate, all at 30 fps.
struct Case {
    label: &'static str,
    format: &'static str,
    width: u32,
    height: u32,
    bitrate_kbps: u32,
}

const CASES: [Case; 4] = [
    Case {
        label: "I420 1280x720 → openh264 (pattern drawn, no conversion)",
        format: "yu12",
        width: 1280,
        height: 720,
        bitrate_kbps: 2000,
    },
    Case {
        label: "YUYV 640x480 → openh264",
        format: "yuyv",
        width: 640,
        height: 480,
        bitrate_kbps: 1000,
    },
    Case {
        label: "YUYV 1280x720 → openh264",
        format: "yuyv",
        width: 1280,
        height: 720,
        bitrate_kbps: 2000,
    },
    Case {
        label: "MJPEG 1280x720 → decode → openh264",
        format: "mjpeg",
        width: 1280,
        height: 720,
        bitrate_kbps: 2000,
    },
];

const WARM_UP: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Default)]
struct Figures {
    cpu_s: f64,
    capture_s: f64,
    minutes: f64,
    hwm_kb: u64,
    dropped: f64,
    fps: f64,
}

fn stream(case: &Case) -> String {
    format!(
        "[[stream]]\nname = \"cam\"\nsource = {{ kind = \"test\", format = \"{}\", width = {}, height = {}, fps = 30, bitrate_kbps = {}, keyframe_seconds = 1.0, audio = false }}\n",
        case.format, case.width, case.height, case.bitrate_kbps
    )
}

/// CPU seconds of the thread `name` of the agent (0 if it has none).
fn thread_cpu_seconds(pid: u32, name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .map(|t| stat_cpu_seconds(&t.path().join("stat").to_string_lossy()))
        .sum()
}

/// Runs the agent with `case` (or with no stream) and measures a window.
fn measure(case: Option<&Case>, seconds: u64) -> Result<Figures> {
    let agent = Agent::start(&case.map(stream).unwrap_or_default());
    if case.is_some() {
        agent.wait_ready(1);
    }
    std::thread::sleep(WARM_UP);
    let pid = agent.pid();
    let counters = || {
        if case.is_none() {
            return (0.0, 0.0);
        }
        (
            agent.metric("streamswitch_capture_dropped_frames_total{stream=\"cam\"}"),
            agent.metric("streamswitch_stream_frames_total{stream=\"cam\",kind=\"video\"}"),
        )
    };
    let ((dropped0, frames0), cpu0, capture0, t0) = (
        counters(),
        stat_cpu_seconds(&format!("/proc/{pid}/stat")),
        thread_cpu_seconds(pid, "capture-cam"),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(seconds));
    let ((dropped1, frames1), cpu1, capture1, elapsed) = (
        counters(),
        stat_cpu_seconds(&format!("/proc/{pid}/stat")),
        thread_cpu_seconds(pid, "capture-cam"),
        t0.elapsed().as_secs_f64(),
    );
    if case.is_some() && frames1 <= frames0 {
        bail!(
            "no frame in the window; agent log:\n{}",
            agent.log().join("\n")
        );
    }
    Ok(Figures {
        cpu_s: cpu1 - cpu0,
        capture_s: capture1 - capture0,
        minutes: elapsed / 60.0,
        hwm_kb: agent.status_kb("VmHWM"),
        dropped: dropped1 - dropped0,
        fps: (frames1 - frames0) / elapsed,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// The median of each figure over runs.
fn medians(runs: &[Figures]) -> Figures {
    let med = |get: fn(&Figures) -> f64| median(runs.iter().map(get).collect());
    Figures {
        cpu_s: med(|f| f.cpu_s / f.minutes),
        capture_s: med(|f| f.capture_s / f.minutes),
        minutes: 1.0,
        hwm_kb: med(|f| f.hwm_kb as f64) as u64,
        dropped: med(|f| f.dropped),
        fps: med(|f| f.fps),
    }
}

fn main() -> Result<()> {
    let (mut seconds, mut runs) = (30u64, 1usize);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => seconds = value.parse().context("--seconds")?,
            "--runs" => runs = value.parse().context("--runs")?,
            _ => bail!("unknown flag {flag}; use --seconds 30 --runs 1"),
        }
    }
    if std::env::var_os("STREAMSWITCH_BIN").is_none() {
        let bin = std::env::current_exe()?.with_file_name("streamswitch");
        if !bin.exists() {
            bail!("{} is missing: cargo build --release --bins", bin.display());
        }
        std::env::set_var("STREAMSWITCH_BIN", bin);
    }
    let mut idle = Vec::new();
    let mut cases: Vec<Vec<Figures>> = CASES.iter().map(|_| Vec::new()).collect();
    for run in 1..=runs {
        eprintln!("bench-capture: run {run}/{runs}, idle agent...");
        idle.push(measure(None, seconds)?);
        for (case, out) in CASES.iter().zip(&mut cases) {
            eprintln!("bench-capture: run {run}/{runs}, {}...", case.label);
            out.push(measure(Some(case), seconds)?);
        }
    }
    let idle = medians(&idle);
    println!(
        "bench-capture: one stream, 30 fps, no reader, {seconds} s windows after {} s, median of {runs} run(s); \
         CPU-s per minute of media; idle agent {:.3} CPU-s/min, peak RSS {:.1} MB",
        WARM_UP.as_secs(),
        idle.cpu_s,
        idle.hwm_kb as f64 / 1024.0
    );
    println!();
    println!("| case | gross | net | capture thread | peak RSS | frames/s | dropped |");
    println!("|---|---|---|---|---|---|---|");
    for (case, figures) in CASES.iter().zip(&cases) {
        let m = medians(figures);
        println!(
            "| {} | {:.2} | **{:.2}** | {:.2} | {:.1} MB | {:.2} | {:.0} |",
            case.label,
            m.cpu_s,
            m.cpu_s - idle.cpu_s,
            m.capture_s,
            m.hwm_kb as f64 / 1024.0,
            m.fps,
            m.dropped
        );
    }
    Ok(())
}
