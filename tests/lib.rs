//! Fixtures for the end-to-end tests: start the built `streamswitch` binary
//! on free ports with a config of the test's choosing, read its log, and
//! kill it when the test ends.

pub mod http;
pub mod m3u8;

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod rtsp_client;

/// The agent binary: `$STREAMSWITCH_BIN`, or `streamswitch` in the target
/// directory this test was built into (`cargo build` builds it; `.ci/run`
/// does that before the tests).
pub fn agent_bin() -> PathBuf {
    if let Ok(p) = std::env::var("STREAMSWITCH_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = profile_dir.join("streamswitch");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bins` before the tests",
        bin.display()
    );
    bin
}

/// Two different ports nobody listens on right now, on 127.0.0.1.
pub fn free_ports() -> [u16; 2] {
    let a = TcpListener::bind("127.0.0.1:0").expect("free port");
    let b = TcpListener::bind("127.0.0.1:0").expect("free port");
    [a, b].map(|l| l.local_addr().expect("local addr").port())
}

/// A test stream section: the built-in source at a small size.
pub fn test_stream(name: &str, width: u32, height: u32, fps: u32) -> String {
    format!(
        "[[stream]]\nname = \"{name}\"\nsource = {{ kind = \"test\", width = {width}, height = {height}, fps = {fps}, bitrate_kbps = 500, audio = true }}\n"
    )
}

/// A running agent. Killed (SIGKILL) on drop if still running.
pub struct Agent {
    child: Option<Child>,
    /// The binary, after the emulator that runs it if any (qemu-user).
    program: Vec<OsString>,
    pub rtsp_port: u16,
    pub http_port: u16,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    /// Starts the agent with `extra` appended to a config that sets the
    /// device id, a fresh data dir and free RTSP/HTTP ports. `extra` holds
    /// the streams and any other tables (`[rtsp.auth]`, `[recording]`...).
    pub fn start(extra: &str) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, extra)
    }

    /// Like [`Agent::start`], with a data dir the caller made (and may
    /// reuse across restarts).
    pub fn start_in(dir: tempfile::TempDir, extra: &str) -> Agent {
        Self::start_with_rtsp(dir, "", extra)
    }

    /// Like [`Agent::start_in`], with `rtsp` lines (such as
    /// `max_sessions = 300`) added to the `[rtsp]` table.
    /// Ports are free when picked, but another test may take one before the
    /// agent binds it: then the agent exits and starts again on new ports.
    pub fn start_with_rtsp(dir: tempfile::TempDir, rtsp: &str, extra: &str) -> Agent {
        Self::start_program(vec![agent_bin().into()], dir, rtsp, extra)
    }

    /// Like [`Agent::start`], with the agent started as `program` (a binary,
    /// or an emulator and a binary for another architecture) instead of the
    /// built `streamswitch`.
    pub fn start_under(program: Vec<OsString>, extra: &str) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_program(program, dir, "", extra)
    }

    fn start_program(
        program: Vec<OsString>,
        dir: tempfile::TempDir,
        rtsp: &str,
        extra: &str,
    ) -> Agent {
        let config_path = dir.path().join("agent.toml");
        let mut agent = Agent {
            child: None,
            program,
            rtsp_port: 0,
            http_port: 0,
            dir,
            config_path,
            log: Arc::default(),
        };
        for _ in 0..3 {
            [agent.rtsp_port, agent.http_port] = free_ports();
            let config = format!(
                "[agent]\ndevice_id = \"test\"\ndata_dir = \"{}\"\n\n[rtsp]\nlisten = \"127.0.0.1:{}\"\n{rtsp}\n\n[http]\nlisten = \"127.0.0.1:{}\"\n\n{extra}",
                agent.data_dir().display(),
                agent.rtsp_port,
                agent.http_port,
            );
            std::fs::write(&agent.config_path, config).expect("write config");
            if agent.spawn() {
                return agent;
            }
            if !agent.log().iter().any(|l| l.contains("cannot listen")) {
                break;
            }
            agent.log.lock().unwrap().clear();
        }
        panic!("the agent did not start; log:\n{}", agent.log().join("\n"));
    }

    /// Starts the binary again on the same config and data dir.
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "the agent did not start again; log:\n{}",
            self.log().join("\n")
        );
    }

    /// Starts the binary; false if it exited before listening.
    fn spawn(&mut self) -> bool {
        let mut child = Command::new(&self.program[0])
            .args(&self.program[1..])
            .arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .env(
                "RUST_LOG",
                std::env::var("AGENT_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn agent");
        for out in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let log = self.log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if std::env::var_os("AGENT_ECHO").is_some() {
                        eprintln!("agent: {line}");
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.rtsp_port)).is_ok() {
                self.child = Some(child);
                return true;
            }
            if let Ok(Some(_)) = child.try_wait() {
                // Let the log readers take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return false;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("agent running").id()
    }

    pub fn rtsp_url(&self, stream: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{stream}", self.rtsp_port)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Everything the agent logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`; panics with the log after
    /// `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().iter().any(|l| l.contains(needle)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "agent did not log {needle:?} within {timeout:?}; log:\n{}",
            self.log().join("\n")
        );
    }

    /// Waits until every configured stream's source is producing.
    pub fn wait_ready(&self, streams: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let n = self
                .log()
                .iter()
                .filter(|l| l.contains("source ready"))
                .count();
            if n >= streams {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sources not ready; log:\n{}", self.log().join("\n"));
    }

    /// A `/proc/PID/status` field in kB, such as `VmRSS` or `VmHWM`.
    pub fn status_kb(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in status"))
    }

    /// SIGTERM, then waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        unsafe_kill(child.id(), "TERM");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL, as a power cut would, and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

pub fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listens on port {port} after {timeout:?}");
}

/// Runs a command to completion with a time limit; returns (status ok,
/// stdout, stderr).
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).ok();
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).ok();
        s
    });
    let deadline = Instant::now() + timeout;
    let ok = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        ok,
        out_t.join().unwrap_or_default(),
        err_t.join().unwrap_or_default(),
    )
}
