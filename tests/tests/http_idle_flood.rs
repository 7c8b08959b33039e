//! 2000 idle connections to the HTTP port on a board's usual limit of 1024
//! descriptors: the agent caps and times them out, and recording goes on.
//! One test in this file: it lowers the descriptor limit of the agent it
//! spawns through this process's own limit.

mod record_common;

use std::net::TcpStream;
use std::time::Duration;

use record_common::*;
use streamswitch_tests::http::get;
use streamswitch_tests::Agent;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn set_soft_nofile(limit: u64) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain struct in, plain struct out.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        let old = r.rlim_cur;
        r.rlim_cur = limit.min(r.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &r), 0);
        old
    }
}

#[test]
fn two_thousand_idle_sockets_do_not_stop_recording() {
    // The agent inherits 1024; this process takes its own limit back for
    // the 2000 sockets once the agent runs.
    let old = set_soft_nofile(1024);
    let agent = Agent::start(&recorded_stream(
        "cam",
        1,
        "[recording]\nfsync = \"segment\"\nmin_free_percent = 0.0\n",
    ));
    set_soft_nofile(old.max(4096));
    agent.wait_ready(1);
    let data = agent.data_dir();
    wait_for("a first file", Duration::from_secs(20), || {
        (!closed_files(&data).is_empty()).then_some(())
    });

    let mut idle = Vec::new();
    for _ in 0..2000 {
        if let Ok(s) = TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], agent.http_port)),
            Duration::from_millis(500),
        ) {
            idle.push(s);
        }
    }
    let before = closed_files(&data).len();
    std::thread::sleep(Duration::from_secs(5));
    let fds = open_fds(agent.pid());
    let after = closed_files(&data).len();
    eprintln!(
        "{} idle sockets open: the agent holds {fds} descriptors; {} files recorded in 5 s",
        idle.len(),
        after - before
    );
    assert!(fds < 600, "the agent holds {fds} descriptors");
    assert!(
        after >= before + 3,
        "recording stalled: {before} -> {after} files"
    );
    assert!(
        agent.count_log("Too many open files") == 0,
        "{}",
        agent.log().join("\n")
    );
    // Idle connections go after the header timeout: HTTP serves again.
    std::thread::sleep(Duration::from_secs(7));
    let metrics = get(&agent.http_url("/metrics")).text();
    assert!(
        metrics.contains("streamswitch_http_refused_total{reason=\"connections\"}"),
        "{metrics}"
    );
    let st = status(agent.http_port, "cam");
    assert_eq!(st["errors"], 0, "{st}");
    drop(idle);
}
