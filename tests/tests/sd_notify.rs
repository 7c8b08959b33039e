//! systemd's notification protocol, with this test as the service manager:
//! the agent runs with `NOTIFY_SOCKET` pointing at a socket the test reads.
//! READY=1 comes only once the RTSP and HTTP ports accept, WATCHDOG=1 at
//! the interval `WATCHDOG_USEC` asks for, STOPPING=1 on SIGTERM.

use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use streamswitch_tests::{agent_bin, free_ports, test_stream};

/// The agent's process, killed if the test ends before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The agent, started on free ports with `env` added, its notifications
/// read from a socket in `dir`. Returns the process, the socket and the
/// RTSP and HTTP ports.
fn start(dir: &Path, env: &[(&str, String)]) -> (Running, UnixDatagram, [u16; 2]) {
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let ports = free_ports();
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\ndevice_id = \"test\"\ndata_dir = \"{}\"\n\n[rtsp]\nlisten = \"127.0.0.1:{}\"\n\n[http]\nlisten = \"127.0.0.1:{}\"\n\n{}",
            dir.join("data").display(),
            ports[0],
            ports[1],
            test_stream("cam", 320, 240, 15)
        ),
    )
    .unwrap();
    let child = Command::new(agent_bin())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn agent");
    (Running(child), socket, ports)
}

/// The next notification within `timeout`, with the time it arrived.
fn next(socket: &UnixDatagram, timeout: Duration) -> Option<(Instant, String)> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            return Some((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
    }
    None
}

/// Reads notifications until one contains `state`; panics after `timeout`.
/// Returns the ones before it and its arrival time.
fn until(socket: &UnixDatagram, state: &str, timeout: Duration) -> (Vec<String>, Instant) {
    let deadline = Instant::now() + timeout;
    let mut before = Vec::new();
    while let Some((at, msg)) = next(socket, deadline.saturating_duration_since(Instant::now())) {
        if msg.lines().any(|l| l == state) {
            return (before, at);
        }
        before.push(msg);
    }
    panic!("no {state} within {timeout:?}; got {before:?}");
}

fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
}

fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("the agent did not exit within {timeout:?} of SIGTERM");
}

#[test]
fn ready_after_the_ports_accept_then_watchdog_pings_then_stopping() {
    let dir = tempfile::tempdir().unwrap();
    // 1 s: pings every 0.5 s.
    let (mut child, socket, ports) = start(dir.path(), &[("WATCHDOG_USEC", "1000000".into())]);

    let (before, _) = until(&socket, "READY=1", Duration::from_secs(30));
    // At READY=1 both listeners are bound: a connection made now succeeds.
    for port in ports {
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "READY=1 came before port {port} accepted"
        );
    }
    assert!(
        before.iter().all(|m| !m.contains("WATCHDOG=1")),
        "watchdog before ready: {before:?}"
    );

    // 4 s of pings: one every half interval, none late.
    let mut pings = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        if let Some((at, msg)) = next(&socket, Duration::from_millis(200)) {
            assert_eq!(msg.trim(), "WATCHDOG=1", "unexpected notification");
            pings.push(at);
        }
    }
    assert!(
        (7..=9).contains(&pings.len()),
        "{} pings in 4 s, expected 8",
        pings.len()
    );
    for gap in pings.windows(2).map(|w| w[1] - w[0]) {
        assert!(
            gap < Duration::from_millis(800),
            "a gap of {gap:?} between pings (interval 1 s)"
        );
    }

    terminate(&child.0);
    until(&socket, "STOPPING=1", Duration::from_secs(5));
    let status = wait_exit(&mut child.0, Duration::from_secs(10));
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[test]
fn no_watchdog_pings_unless_asked_for_this_process() {
    let dir = tempfile::tempdir().unwrap();
    // WATCHDOG_PID names another process (this test): the agent must not ping.
    let (mut child, socket, _) = start(
        dir.path(),
        &[
            ("WATCHDOG_USEC", "400000".into()),
            ("WATCHDOG_PID", std::process::id().to_string()),
        ],
    );
    until(&socket, "READY=1", Duration::from_secs(30));
    if let Some((_, msg)) = next(&socket, Duration::from_millis(1500)) {
        panic!("unexpected notification: {msg}");
    }
    // SIGHUP (`systemctl reload`) does not end the agent.
    let _ = Command::new("kill")
        .arg("-HUP")
        .arg(child.0.id().to_string())
        .status();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "SIGHUP ended the agent"
    );
    terminate(&child.0);
    until(&socket, "STOPPING=1", Duration::from_secs(5));
    assert!(wait_exit(&mut child.0, Duration::from_secs(10)).success());
}
