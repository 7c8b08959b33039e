//! RTSP fan-out benchmark, as /work/shared/BENCHMARKS.md defines it: one
//! 1280x720 30 fps 2000 kbps stream with audio, N RTSP/TCP readers
//! (retina, all in this process, receiving everything and decoding
//! nothing) plus one reader that stopped reading, and the agent's CPU and
//! memory over a steady window. Not a test: it prints figures.
//!
//! The stream comes from the test source (`--source test`: the agent
//! encodes) or from an exec source (`--source exec`: `ffmpeg -re
//! -stream_loop -1 -c copy` of a file made at start, so no encoder runs in
//! the agent); exec mode also times a restart: SIGKILL of the child to the
//! first new frame at a reader.
//!
//! cargo build --release -p streamswitch-agent
//! cargo run --release -p streamswitch-tests --bin bench -- --readers 20,200 --seconds 30 --runs 3 --source exec

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use retina::client::PacketItem;
use streamswitch_tests::rtsp_client::{play, transport, RawRtsp};
use streamswitch_tests::{stat_cpu_seconds, Agent};

const STREAM: &str = "[[stream]]\nname = \"bench\"\nsource = { kind = \"test\", width = 1280, height = 720, fps = 30, bitrate_kbps = 2000, keyframe_seconds = 1.0, audio = true }\n";

struct Args {
    readers: Vec<usize>,
    seconds: u64,
    runs: usize,
    exec: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        readers: vec![20, 200],
        seconds: 30,
        runs: 1,
        exec: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--readers" => {
                args.readers = value
                    .split(',')
                    .map(|n| n.trim().parse().context("--readers: a list like 20,200"))
                    .collect::<Result<_>>()?
            }
            "--seconds" => args.seconds = value.parse().context("--seconds")?,
            "--runs" => args.runs = value.parse().context("--runs")?,
            "--source" => {
                args.exec = match value.as_str() {
                    "exec" => true,
                    "test" => false,
                    _ => bail!("--source: test or exec"),
                }
            }
            _ => bail!(
                "unknown flag {flag}; use --readers 20,200 --seconds 30 --runs 1 --source test|exec"
            ),
        }
    }
    Ok(args)
}

/// Figures of one run at one reader count. CPU figures per client-minute:
/// gross = window / client-minutes, net = (window - idle) / client-minutes,
/// net* = the same as net without the test source's encoder threads.
#[derive(Clone, Debug)]
struct Figures {
    readers: usize,
    startup_ms: f64,
    idle_cpu_s: f64,
    window_cpu_s: f64,
    /// The same without the encoder threads.
    idle_serve_s: f64,
    window_serve_s: f64,
    window_s: f64,
    gross: f64,
    net: f64,
    /// Net from the CPU without the encoder threads.
    net_serve: f64,
    rss_idle_kb: u64,
    rss_mid_kb: u64,
    hwm_kb: u64,
    slowest_fps: f64,
    lost_packets: u64,
}

/// What one reader task counted.
#[derive(Default)]
struct ReaderCount {
    video_frames: AtomicU64,
    lost_packets: AtomicU64,
    started: AtomicBool,
}

/// CPU of the whole process (all threads, ended ones included), and of
/// the process without the test source's encoder threads (`test-*`), in
/// seconds. The second is the RTSP serving cost without the encoder's
/// run-to-run noise.
fn cpu_seconds(pid: u32) -> (f64, f64) {
    let total = stat_cpu_seconds(&format!("/proc/{pid}/stat"));
    let mut encoder = 0.0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("proc task") {
        let dir = task.expect("task").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.starts_with("test-") {
            encoder += stat_cpu_seconds(&dir.join("stat").to_string_lossy());
        }
    }
    (total, total - encoder)
}

/// Plays the stream and counts video frames (RTP marker bits) and lost
/// packets (sequence gaps) without depacketizing anything.
async fn read(url: String, count: Arc<ReaderCount>) -> Result<()> {
    let mut session = play(&url, transport("tcp"), None).await?;
    let video = session
        .streams()
        .iter()
        .position(|s| s.media() == "video")
        .context("no video track")?;
    while let Some(item) = session.next().await {
        if let PacketItem::Rtp(pkt) = item? {
            if pkt.stream_id() == video {
                count
                    .lost_packets
                    .fetch_add(u64::from(pkt.loss()), Ordering::Relaxed);
                if pkt.mark() {
                    count.video_frames.fetch_add(1, Ordering::Relaxed);
                    count.started.store(true, Ordering::Relaxed);
                }
            }
        }
    }
    bail!("the server ended the session")
}

/// Process start to the first RTP packet at a reader that keeps trying
/// from the moment the RTSP port opens.
async fn first_packet(url: &str, started: Instant) -> Duration {
    loop {
        if let Ok(mut session) = play(url, transport("tcp"), None).await {
            while let Some(item) = session.next().await {
                if let Ok(PacketItem::Rtp(_)) = item {
                    return started.elapsed();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Makes a 20 s 1280x720 30 fps 2000 kbps H.264 (1 s GOP) + AAC MPEG-TS
/// file, and returns the exec stream that loops it without re-encoding.
fn exec_stream(dir: &std::path::Path) -> Result<String> {
    let file = dir.join("bench.ts");
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000"])
        .args([
            "-t", "20", "-c:v", "libx264", "-preset", "veryfast", "-b:v", "2000k",
        ])
        .args([
            "-maxrate", "2000k", "-bufsize", "2000k", "-g", "30", "-pix_fmt", "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "mpegts"])
        .arg(&file)
        .status()
        .context("running ffmpeg (apt-get install ffmpeg)")?;
    if !status.success() {
        bail!("ffmpeg could not make {}", file.display());
    }
    let command = [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-stream_loop",
        "-1",
        "-i",
    ]
    .iter()
    .map(|a| format!("{a:?}"))
    .chain([format!("{:?}", file.display().to_string())])
    .chain(
        ["-c", "copy", "-f", "mpegts", "-"]
            .iter()
            .map(|a| format!("{a:?}")),
    )
    .collect::<Vec<_>>()
    .join(", ");
    Ok(format!(
        "[[stream]]\nname = \"bench\"\nsource = {{ kind = \"exec\", command = [{command}] }}\n"
    ))
}

fn measure(rt: &tokio::runtime::Runtime, n: usize, seconds: u64, stream: &str) -> Result<Figures> {
    let window = Duration::from_secs(seconds);
    let started = Instant::now();
    let agent = Agent::start_with_rtsp(
        tempfile::tempdir()?,
        // Every viewer comes from 127.0.0.1: lift the per-client caps.
        &format!(
            "max_sessions = {0}\nmax_sessions_per_client = {0}\nmax_connections_per_client = {0}",
            n + 10
        ),
        stream,
    );
    let pid = agent.pid();
    let url = agent.rtsp_url("bench");
    let startup = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), first_packet(&url, started)).await
    })?;
    std::thread::sleep(Duration::from_secs(2));

    let (cpu0, serve0) = cpu_seconds(pid);
    std::thread::sleep(window);
    let (cpu1, serve1) = cpu_seconds(pid);
    let (idle_cpu_s, idle_serve_s) = (cpu1 - cpu0, serve1 - serve0);
    let rss_idle_kb = agent.status_kb("VmRSS");

    let counts: Vec<Arc<ReaderCount>> = (0..n).map(|_| Arc::default()).collect();
    let tasks: Vec<_> = counts
        .iter()
        .map(|c| rt.spawn(read(url.clone(), c.clone())))
        .collect();
    let mut stalled = RawRtsp::connect_with_rcvbuf(agent.rtsp_port, Some(4096))?;
    stalled.play_interleaved(&url)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !counts.iter().all(|c| c.started.load(Ordering::Relaxed)) {
        if tasks.iter().any(|t| t.is_finished()) {
            bail!(
                "a reader ended before its first frame; agent log:\n{}",
                agent.log().join("\n")
            );
        }
        if Instant::now() > deadline {
            bail!("not every reader got a frame within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));

    let frames = |c: &ReaderCount| c.video_frames.load(Ordering::Relaxed);
    let lost = |c: &ReaderCount| c.lost_packets.load(Ordering::Relaxed);
    let frames0: Vec<u64> = counts.iter().map(|c| frames(c)).collect();
    let lost0: u64 = counts.iter().map(|c| lost(c)).sum();
    let t0 = Instant::now();
    let (cpu0, serve0) = cpu_seconds(pid);
    std::thread::sleep(window / 2);
    let rss_mid_kb = agent.status_kb("VmRSS");
    std::thread::sleep(window - window / 2);
    let (cpu1, serve1) = cpu_seconds(pid);
    let (window_cpu_s, window_serve_s) = (cpu1 - cpu0, serve1 - serve0);
    let window_s = t0.elapsed().as_secs_f64();
    let slowest = counts
        .iter()
        .zip(&frames0)
        .map(|(c, f0)| frames(c) - f0)
        .min()
        .unwrap_or(0);
    let lost_packets = counts.iter().map(|c| lost(c)).sum::<u64>() - lost0;
    let hwm_kb = agent.status_kb("VmHWM");
    if tasks.iter().any(|t| t.is_finished()) {
        bail!(
            "a reader ended during the window; agent log:\n{}",
            agent.log().join("\n")
        );
    }
    for t in &tasks {
        t.abort();
    }
    drop(stalled);

    let client_minutes = n as f64 * window_s / 60.0;
    Ok(Figures {
        readers: n,
        startup_ms: startup.as_secs_f64() * 1000.0,
        idle_cpu_s,
        window_cpu_s,
        idle_serve_s,
        window_serve_s,
        window_s,
        gross: window_cpu_s / client_minutes,
        net: (window_cpu_s - idle_cpu_s * window_s / window.as_secs_f64()) / client_minutes,
        net_serve: (window_serve_s - idle_serve_s * window_s / window.as_secs_f64())
            / client_minutes,
        rss_idle_kb,
        rss_mid_kb,
        hwm_kb,
        slowest_fps: slowest as f64 / window_s,
        lost_packets,
    })
}

/// SIGKILL of the exec child to the first video frame after it at a
/// reader, over `times` restarts.
fn restart_times(rt: &tokio::runtime::Runtime, stream: &str, times: usize) -> Result<Vec<f64>> {
    let agent = Agent::start(stream);
    let url = agent.rtsp_url("bench");
    let count = Arc::new(ReaderCount::default());
    let reader = rt.spawn(read(url, count.clone()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !count.started.load(Ordering::Relaxed) {
        if Instant::now() > deadline || reader.is_finished() {
            bail!("the reader got no frame");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = Vec::new();
    for _ in 0..times {
        std::thread::sleep(Duration::from_secs(3));
        let child = *agent.children().first().context("no exec child")?;
        let before = count.video_frames.load(Ordering::Relaxed);
        let killed = Instant::now();
        std::process::Command::new("kill")
            .args(["-KILL", &child.to_string()])
            .status()?;
        // Frames already in flight arrive within a frame time or two.
        std::thread::sleep(Duration::from_millis(100));
        let settled = count.video_frames.load(Ordering::Relaxed).max(before);
        while count.video_frames.load(Ordering::Relaxed) <= settled {
            if killed.elapsed() > Duration::from_secs(30) || reader.is_finished() {
                bail!("no frame after the restart");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        out.push(killed.elapsed().as_secs_f64());
    }
    reader.abort();
    Ok(out)
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

fn header() {
    let columns = [
        ("readers", ""),
        ("run", ""),
        ("start-up", "ms"),
        ("idle", "CPU-s"),
        ("window", "CPU-s"),
        ("gross", "s/c-min"),
        ("net", "s/c-min"),
        ("srv idle", "CPU-s"),
        ("srv win", "CPU-s"),
        ("net*", "s/c-min"),
        ("RSS idle", "MB"),
        ("RSS mid", "MB"),
        ("VmHWM", "MB"),
        ("slowest", "fps"),
        ("lost", "pkt"),
    ];
    let widths = [7, 6, 8, 6, 6, 7, 7, 8, 7, 7, 8, 7, 6, 7, 4];
    for line in [0, 1] {
        let cells: Vec<String> = columns
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{:>w$}", if line == 0 { c.0 } else { c.1 }))
            .collect();
        println!("{}", cells.join(" "));
    }
}

fn row(label: &str, f: &Figures) {
    println!(
        "{:>7} {:>6} {:>8.0} {:>6.2} {:>6.2} {:>7.4} {:>7.4} {:>8.3} {:>7.3} {:>7.4} {:>8.1} {:>7.1} {:>6.1} {:>7.2} {:>4}",
        f.readers,
        label,
        f.startup_ms,
        f.idle_cpu_s,
        f.window_cpu_s,
        f.gross,
        f.net,
        f.idle_serve_s,
        f.window_serve_s,
        f.net_serve,
        f.rss_idle_kb as f64 / 1024.0,
        f.rss_mid_kb as f64 / 1024.0,
        f.hwm_kb as f64 / 1024.0,
        f.slowest_fps,
        f.lost_packets
    );
}

fn main() -> Result<()> {
    let args = parse_args()?;
    if std::env::var_os("STREAMSWITCH_BIN").is_none() {
        let exe = std::env::current_exe()?;
        let bin: PathBuf = exe.with_file_name("streamswitch");
        if !bin.exists() {
            bail!(
                "{} is missing: cargo build --release -p streamswitch-agent",
                bin.display()
            );
        }
        std::env::set_var("STREAMSWITCH_BIN", bin);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let (stream, source) = if args.exec {
        (
            exec_stream(dir.path())?,
            "exec source (ffmpeg -c copy of a file, no encoder in the agent)",
        )
    } else {
        (
            STREAM.to_owned(),
            "test source (in-process H.264 + AAC encoder)",
        )
    };
    println!(
        "RTSP fan-out: {source} 1280x720 30 fps 2000 kbps; \
         {} s windows; one stalled reader beside the N; CPU-s per client-minute",
        args.seconds
    );
    header();
    let mut all: Vec<Figures> = Vec::new();
    for run in 1..=args.runs {
        for &n in &args.readers {
            let f = measure(&rt, n, args.seconds, &stream)?;
            row(&run.to_string(), &f);
            all.push(f);
        }
    }
    if args.runs > 1 {
        println!("medians of {} runs:", args.runs);
        header();
        for &n in &args.readers {
            let runs: Vec<&Figures> = all.iter().filter(|f| f.readers == n).collect();
            let med = |get: fn(&Figures) -> f64| median(runs.iter().map(|f| get(f)).collect());
            let m = Figures {
                readers: n,
                startup_ms: med(|f| f.startup_ms),
                idle_cpu_s: med(|f| f.idle_cpu_s),
                window_cpu_s: med(|f| f.window_cpu_s),
                idle_serve_s: med(|f| f.idle_serve_s),
                window_serve_s: med(|f| f.window_serve_s),
                window_s: med(|f| f.window_s),
                gross: med(|f| f.gross),
                net: med(|f| f.net),
                net_serve: med(|f| f.net_serve),
                rss_idle_kb: med(|f| f.rss_idle_kb as f64) as u64,
                rss_mid_kb: med(|f| f.rss_mid_kb as f64) as u64,
                hwm_kb: med(|f| f.hwm_kb as f64) as u64,
                slowest_fps: med(|f| f.slowest_fps),
                lost_packets: med(|f| f.lost_packets as f64) as u64,
            };
            row("median", &m);
        }
    }
    if args.exec {
        let times = restart_times(&rt, &stream, 5)?;
        let shown: Vec<String> = times.iter().map(|t| format!("{:.2}", t)).collect();
        println!(
            "SIGKILL of the exec child to the first new frame at a reader: median {:.2} s ({} s)",
            median(times),
            shown.join(", ")
        );
    }
    Ok(())
}
