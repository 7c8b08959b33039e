//! bench-record: the cost of recording one 1280x720 30 fps 2 Mbit/s stream
//! (with AAC). The agent runs the stream first without recording, then
//! with it, for the same window each; reports (BENCHMARKS.md):
//! - overhead: bytes written / media bytes;
//! - CPU per recorded stream: agent CPU-s per minute with minus without;
//! - write calls and fsyncs per minute (recorder status, and /proc/PID/io).
//!
//! Usage: bench-record [window_seconds=60] [fsync=fragment|segment|never]

use std::time::{Duration, Instant};

use streamswitch_tests::Agent;

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command name (which may hold spaces).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime: fields 14 and 15, so 11 and 12 after the state.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// utime + stime of the agent's thread named `name` (the recorder of a
/// stream runs on `record-<stream>`): the recorder's own CPU, which the
/// encoder's noise in the whole-process figure hides.
fn thread_ticks(pid: u32, name: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f[11].parse::<u64>().ok()? + f[12].parse::<u64>().ok()?)
        })
        .sum()
}

fn clock_ticks_per_second() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output();
    out.ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn proc_io(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(": ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One HTTP/1.1 request to the agent; the response body.
fn http(agent: &Agent, method: &str, path: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", agent.http_port)).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers")
        + 4;
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{method} {path}: {}",
        String::from_utf8_lossy(&raw)
    );
    raw.split_off(head_end)
}

fn status(agent: &Agent) -> serde_json::Value {
    let all: serde_json::Value =
        serde_json::from_slice(&http(agent, "GET", "/api/recordings/status")).expect("status JSON");
    all[0].clone()
}

struct Window {
    cpu_s: f64,
    recorder_cpu_s: f64,
    minutes: f64,
    syscw: u64,
}

fn measure(agent: &Agent, seconds: u64) -> Window {
    let pid = agent.pid();
    let r0 = thread_ticks(pid, "record-cam");
    let (c0, w0, t0) = (cpu_ticks(pid), proc_io(pid, "syscw"), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let (c1, w1) = (cpu_ticks(pid), proc_io(pid, "syscw"));
    let r1 = thread_ticks(pid, "record-cam");
    Window {
        cpu_s: (c1 - c0) as f64 / clock_ticks_per_second(),
        recorder_cpu_s: (r1 - r0) as f64 / clock_ticks_per_second(),
        minutes: t0.elapsed().as_secs_f64() / 60.0,
        syscw: w1 - w0,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(60);
    let fsync = args.next().unwrap_or_else(|| "fragment".into());
    if std::env::var_os("STREAMSWITCH_BIN").is_none() {
        let exe = std::env::current_exe().expect("current_exe");
        std::env::set_var("STREAMSWITCH_BIN", exe.with_file_name("streamswitch"));
    }
    let config = format!(
        "[recording]\nfsync = \"{fsync}\"\n\n[[stream]]\nname = \"cam\"\nsource = {{ kind = \"test\", width = 1280, height = 720, fps = 30, bitrate_kbps = 2000, audio = true, keyframe_seconds = 2.0 }}\nrecord = {{ enabled = false, segment_seconds = 60, fragment_ms = 1000 }}\n"
    );
    let agent = Agent::start(&config);
    agent.wait_ready(1);
    std::thread::sleep(Duration::from_secs(3));
    eprintln!("bench-record: {seconds} s without recording...");
    let idle = measure(&agent, seconds);
    http(&agent, "POST", "/api/recordings/cam/start");
    std::thread::sleep(Duration::from_secs(2));
    let s0 = status(&agent);
    eprintln!("bench-record: {seconds} s recording (fsync = {fsync})...");
    let rec = measure(&agent, seconds);
    let s1 = status(&agent);
    let d = |k: &str| s1[k].as_u64().unwrap_or(0) - s0[k].as_u64().unwrap_or(0);
    let (written, media) = (d("bytes_written"), d("media_bytes"));
    let idle_rate = idle.cpu_s / idle.minutes;
    let rec_rate = rec.cpu_s / rec.minutes;
    println!("bench-record: 1280x720 30 fps 2 Mbit/s + AAC, fsync = {fsync}, {seconds} s windows");
    println!("  bytes written      {written} (media {media})");
    println!(
        "  overhead           {:.2}% (bytes written / media bytes - 1)",
        (written as f64 / media.max(1) as f64 - 1.0) * 100.0
    );
    println!("  agent CPU          {idle_rate:.3} CPU-s/min without recording, {rec_rate:.3} with");
    println!(
        "  CPU per recorded stream  {:.3} CPU-s/min (with - without; noisy: the encoder dominates)",
        rec_rate - idle_rate
    );
    let thread_rate = rec.recorder_cpu_s / rec.minutes;
    println!(
        "  recorder thread CPU      {thread_rate:.3} CPU-s/min ({:.2}% of a core)",
        thread_rate / 60.0 * 100.0
    );
    println!(
        "  write calls/min    {:.1} (recorder), {:.1} (/proc syscw, whole agent; {:.1} without recording)",
        d("write_calls") as f64 / rec.minutes,
        rec.syscw as f64 / rec.minutes,
        idle.syscw as f64 / idle.minutes
    );
    println!(
        "  fsyncs/min         {:.1}",
        d("fsyncs") as f64 / rec.minutes
    );
    println!(
        "  files {} fragments {} errors {}",
        d("files"),
        d("fragments"),
        d("errors")
    );
}
