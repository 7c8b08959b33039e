//! Uplink benchmark: the agent's CPU per pushed stream, RTSP (to the tests'
//! RECORD receiver) and RTMP (to nginx with the RTMP module), on a
//! 1280x720 30 fps 2000 kbps H.264 + AAC stream that an exec source copies
//! from a file (no encoder in the agent). Not a test: it prints figures.
//!
//! cargo build --release --bins && ./target/release/bench-uplink

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use streamswitch_tests::rtsp_receiver::{Behaviour, Receiver};
use streamswitch_tests::{stat_cpu_seconds, wait_for_port, Agent};

const WINDOW: Duration = Duration::from_secs(30);

/// CPU-s per minute of an agent with `uplinks` on the copied stream.
fn measure(file: &std::path::Path, uplinks: &str) -> f64 {
    let stream = format!(
        "[[stream]]\nname = \"cam\"\nsource = {{ kind = \"exec\", command = [\"ffmpeg\", \"-hide_banner\", \"-loglevel\", \"error\", \"-re\", \"-stream_loop\", \"-1\", \"-i\", {:?}, \"-c\", \"copy\", \"-f\", \"mpegts\", \"-\"] }}\n{uplinks}",
        file.display().to_string()
    );
    let agent = Agent::start(&stream);
    agent.wait_ready(1);
    std::thread::sleep(Duration::from_secs(3));
    let before = stat_cpu_seconds(&format!("/proc/{}/stat", agent.pid()));
    std::thread::sleep(WINDOW);
    (stat_cpu_seconds(&format!("/proc/{}/stat", agent.pid())) - before) * 60.0
        / WINDOW.as_secs_f64()
}

fn main() -> Result<()> {
    if std::env::var_os("STREAMSWITCH_BIN").is_none() {
        let bin: PathBuf = std::env::current_exe()?.with_file_name("streamswitch");
        if !bin.exists() {
            bail!("{} is missing: cargo build --release --bins", bin.display());
        }
        std::env::set_var("STREAMSWITCH_BIN", bin);
    }
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("bench.ts");
    let made = Command::new("ffmpeg")
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
        .context("ffmpeg")?;
    if !made.success() {
        bail!("ffmpeg could not make the file");
    }

    let receiver = Receiver::start(Behaviour::default());
    let nginx_dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let conf = format!(
        "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\ndaemon off;\nmaster_process off;\n\
         error_log {d}/error.log;\npid {d}/nginx.pid;\nevents {{ worker_connections 64; }}\n\
         rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}\n",
        d = nginx_dir.path().display()
    );
    std::fs::write(nginx_dir.path().join("nginx.conf"), conf)?;
    let mut nginx = Command::new("nginx")
        .arg("-p")
        .arg(nginx_dir.path())
        .arg("-c")
        .arg(nginx_dir.path().join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("nginx")?;
    wait_for_port(port, Duration::from_secs(10));

    let none = measure(&file, "");
    let rtsp = measure(
        &file,
        &format!("uplink = [{{ url = \"{}\" }}]\n", receiver.url("cam")),
    );
    let rtmp = measure(
        &file,
        &format!("uplink = [{{ url = \"rtmp://127.0.0.1:{port}/live/cam\" }}]\n"),
    );
    let _ = nginx.kill();
    let _ = nginx.wait();
    println!(
        "agent CPU-s per minute over {} s, 720p30 2 Mbit/s copied by an exec source: \
         no uplink {none:.3}; one RTSP uplink {rtsp:.3} (+{:.3} per pushed stream); \
         one RTMP uplink {rtmp:.3} (+{:.3})",
        WINDOW.as_secs(),
        rtsp - none,
        rtmp - none
    );
    Ok(())
}
