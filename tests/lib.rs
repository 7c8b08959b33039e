//! Fixtures for the end-to-end tests: start the built `streamswitch` binary
//! on free ports with a config of the test's choosing, read its log, and
//! kill it when the test ends.

pub mod http;
pub mod m3u8;
pub mod mqtt;
pub mod vm;

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod rtsp_client;
pub mod rtsp_receiver;
pub mod watch;

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

/// An exec stream fed by ffmpeg: `testsrc2` at `size` (`WxH`, or shell
/// text such as `$(cat /path)`, the command runs through `sh`) and `fps`
/// with a 1 kHz tone, H.264 (1 s GOP) + AAC in MPEG-TS on stdout.
pub fn exec_stream(name: &str, size: &str, fps: u32) -> String {
    let video =
        format!("-c:v libx264 -preset ultrafast -tune zerolatency -g {fps} -pix_fmt yuv420p");
    exec_stream_with(name, size, fps, &video, "mpegts")
}

/// Like [`exec_stream`] with other video encoder arguments and output
/// `format`: `mpegts` (with AAC audio), or a raw `h264` / `hevc` stream
/// (video only; the exec source's format `h264` / `h265`).
pub fn exec_stream_with(name: &str, size: &str, fps: u32, video: &str, format: &str) -> String {
    let (audio, output, source_format) = match format {
        "mpegts" => (
            "-f lavfi -i sine=frequency=1000:sample_rate=48000",
            "-c:a aac -b:a 64k -f mpegts -".to_owned(),
            "format = \"mpegts\"".to_owned(),
        ),
        raw => (
            "",
            format!("-f {raw} -"),
            format!(
                "format = \"{}\", fps = {fps}",
                if raw == "hevc" { "h265" } else { raw }
            ),
        ),
    };
    let ffmpeg = format!(
        "exec ffmpeg -hide_banner -loglevel error -re \
         -f lavfi -i testsrc2=size={size}:rate={fps} {audio} {video} {output}"
    );
    format!(
        "[[stream]]\nname = \"{name}\"\nsource = {{ kind = \"exec\", {source_format}, command = [\"sh\", \"-c\", {:?}] }}\n",
        ffmpeg.split_whitespace().collect::<Vec<_>>().join(" ")
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
    /// Extra environment of the agent process (test hooks).
    env: Vec<(String, String)>,
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
        Self::start_program(vec![agent_bin().into()], dir, rtsp, extra, &[])
    }

    /// Like [`Agent::start`], with extra environment variables (test hooks
    /// such as `STREAMSWITCH_TEST_SOURCE_FAIL_FILE`).
    pub fn start_with_env(extra: &str, env: &[(&str, &str)]) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_program(vec![agent_bin().into()], dir, "", extra, env)
    }

    /// Like [`Agent::start`], with the agent started as `program` (a binary,
    /// or an emulator and a binary for another architecture) instead of the
    /// built `streamswitch`.
    pub fn start_under(program: Vec<OsString>, extra: &str) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_program(program, dir, "", extra, &[])
    }

    fn start_program(
        program: Vec<OsString>,
        dir: tempfile::TempDir,
        rtsp: &str,
        extra: &str,
        env: &[(&str, &str)],
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
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        for _ in 0..3 {
            [agent.rtsp_port, agent.http_port] = free_ports();
            agent.write_config(rtsp, extra);
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

    /// Writes the config file: the fixture's head (device id, data dir,
    /// this agent's ports, `rtsp` lines in `[rtsp]`) and `extra`. The
    /// running agent reads it on SIGHUP ([`Agent::sighup`]).
    pub fn write_config(&self, rtsp: &str, extra: &str) {
        let config = format!(
            "# Written by the test fixture.\n[agent]\ndevice_id = \"test\"\ndata_dir = \"{}\"\n\n[rtsp]\nlisten = \"127.0.0.1:{}\"\n{rtsp}\n\n[http]\nlisten = \"127.0.0.1:{}\"\n\n{extra}",
            self.data_dir().display(),
            self.rtsp_port,
            self.http_port,
        );
        std::fs::write(&self.config_path, config).expect("write config");
    }

    /// Asks the agent to reload its config file.
    pub fn sighup(&self) {
        unsafe_kill(self.pid(), "HUP");
    }

    /// Log lines that contain `needle`.
    pub fn count_log(&self, needle: &str) -> usize {
        self.log().iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits until `count_log(needle)` exceeds `before`.
    pub fn wait_for_more_log(&self, needle: &str, before: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.count_log(needle) > before {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "agent did not log {needle:?} again within {timeout:?}; log:\n{}",
            self.log().join("\n")
        );
    }

    /// Starts the binary again on the same ports (a camera that comes back
    /// where its pullers look for it). Fails if another test took a port
    /// meanwhile, which the short gap makes unlikely.
    pub fn restart_in_place(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "the agent did not start again on its ports; log:\n{}",
            self.log().join("\n")
        );
    }

    /// Starts the binary again on the same config file (as the test or
    /// the agent left it) and data dir, on fresh ports: the old ones may
    /// be taken by another test while the agent is down. Retries with new
    /// ports like [`Agent::start`].
    pub fn restart(&mut self) {
        self.kill();
        for _ in 0..3 {
            let config = std::fs::read_to_string(&self.config_path).expect("read config");
            let (old_rtsp, old_http) = (self.rtsp_port, self.http_port);
            [self.rtsp_port, self.http_port] = free_ports();
            let config = config
                .replace(
                    &format!("listen = \"127.0.0.1:{old_rtsp}\""),
                    &format!("listen = \"127.0.0.1:{}\"", self.rtsp_port),
                )
                .replace(
                    &format!("listen = \"127.0.0.1:{old_http}\""),
                    &format!("listen = \"127.0.0.1:{}\"", self.http_port),
                );
            assert!(
                config.contains(&format!("127.0.0.1:{}", self.rtsp_port))
                    && config.contains(&format!("127.0.0.1:{}", self.http_port)),
                "the config no longer holds the fixture's listen lines:\n{config}"
            );
            std::fs::write(&self.config_path, config).expect("write config");
            let lines_before = self.log().len();
            if self.spawn() {
                return;
            }
            let since: Vec<String> = self.log()[lines_before..].to_vec();
            if !since.iter().any(|l| l.contains("cannot listen")) {
                break;
            }
        }
        panic!(
            "the agent did not start again; log:\n{}",
            self.log().join("\n")
        );
    }

    /// The value of one series of `/metrics`, such as
    /// `streamswitch_stream_viewers{stream="cam",protocol="hls"}`; panics
    /// when the agent does not export it.
    pub fn metric(&self, series: &str) -> f64 {
        let text = http::get(&self.http_url("/metrics")).text();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
    }

    /// Waits until `cond` holds for the value of `series` in `/metrics`;
    /// panics with the last value after `timeout`.
    pub fn wait_for_metric(
        &self,
        series: &str,
        timeout: Duration,
        cond: impl Fn(f64) -> bool,
    ) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.metric(series);
            if cond(v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{series} is {v} after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts the binary; false if it exited before listening.
    fn spawn(&mut self) -> bool {
        let mut child = Command::new(&self.program[0])
            .args(&self.program[1..])
            .arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
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

    /// The stream `name` as `/api/streams` reports it; `null` when the agent
    /// does not list it.
    pub fn stream_state(&self, name: &str) -> serde_json::Value {
        let all: serde_json::Value =
            serde_json::from_slice(&http::get(&self.http_url("/api/streams")).body)
                .expect("/api/streams is JSON");
        all.as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name))
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    /// The agent's child processes (exec sources), by pid.
    pub fn children(&self) -> Vec<u32> {
        let me = self.pid();
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may hold spaces, so split
            // after its closing parenthesis.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let ppid = rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(me) {
                out.push(pid);
            }
        }
        out
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
        self.stop_with("TERM", timeout)
    }

    /// Sends `signal` (`TERM`, `INT`), then waits up to `timeout` for the
    /// exit status.
    pub fn stop_with(
        &mut self,
        signal: &str,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        unsafe_kill(child.id(), signal);
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

/// utime + stime, in seconds, from a `/proc/.../stat` file (a process or
/// one of its threads); 0 once it is gone (a thread that just ended).
pub fn stat_cpu_seconds(path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let Some(end) = stat.rfind(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = stat[end + 1..].split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (field(11) + field(12)) as f64 / hz
}

/// Waits until something listens on 127.0.0.1:`port`, without connecting
/// to it (a server that takes one client, like ffmpeg's RTSP listener,
/// would take the probe for it): reads the kernel's socket table.
pub fn wait_for_listener(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let needle = format!(":{port:04X} ");
    while Instant::now() < deadline {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        // st 0A is LISTEN.
        if table.lines().any(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|a| format!("{a} ").ends_with(&needle))
                && l.split_whitespace().nth(3) == Some("0A")
        }) {
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
