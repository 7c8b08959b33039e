//! The VM harness (tests/vm.rs) itself: a guest boots, runs commands and
//! returns their exit codes, loads a module with options, runs a host
//! program with its libraries, serves a forwarded port, and is gone after
//! kill.

use std::time::{Duration, Instant};

use streamswitch_tests::http;
use streamswitch_tests::vm::{VmConfig, VmImage};

const T: Duration = Duration::from_secs(20);

#[test]
fn guest_boots_answers_commands_serves_a_forwarded_port_and_dies_on_kill() {
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "hello from the guest\n").unwrap();
    let started = Instant::now();
    let image = VmImage::build(
        &VmConfig::new()
            .module("snd-aloop", "pcm_substreams=2")
            .file("/usr/bin/ls", "/opt/ls")
            .file(www.path(), "/www")
            .forward(80),
    )
    .unwrap();
    let built = started.elapsed();
    let mut vm = image.boot().unwrap();
    eprintln!(
        "initramfs built in {:.2} s, booted in {:.2} s",
        built.as_secs_f64(),
        (started.elapsed() - built).as_secs_f64()
    );

    let (code, out) = vm.exec("uname -r", T).unwrap();
    assert_eq!(code, 0);
    assert!(out.trim().ends_with("-amd64"), "uname -r: {out:?}");
    assert_eq!(vm.exec("exit 3", T).unwrap().0, 3);
    let (code, out) = vm.exec("echo out; echo err >&2; false", T).unwrap();
    assert_eq!((code, out.as_str()), (1, "out\nerr\n"));

    let (code, out) = vm
        .exec("cat /sys/module/snd_aloop/parameters/pcm_substreams", T)
        .unwrap();
    assert_eq!(code, 0);
    assert!(out.starts_with("2,8,"), "pcm_substreams: {out}");
    // A dynamically linked host program runs with the libraries the
    // harness copied.
    let (code, out) = vm.exec("/opt/ls /www", T).unwrap();
    assert_eq!((code, out.as_str()), (0, "index.html\n"));

    // A command that outlives its timeout is an error, and the channel
    // answers the next one.
    let t0 = Instant::now();
    let err = vm.exec("sleep 30", Duration::from_secs(1)).unwrap_err();
    assert!(format!("{err:#}").contains("did not finish"), "{err:#}");
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(vm.exec("echo again", T).unwrap(), (0, "again\n".into()));

    vm.spawn("httpd -f -p 80 -h /www", "/tmp/httpd.log")
        .unwrap();
    let url = format!("http://127.0.0.1:{}/index.html", vm.host_port(80).unwrap());
    let deadline = Instant::now() + T;
    let body = loop {
        // qemu accepts on the host side at once; until the guest listens
        // the connection closes without an answer.
        match http::request("GET", &url, &[]) {
            Ok(r) if r.status == 200 => break r.text(),
            other => {
                assert!(
                    Instant::now() < deadline,
                    "no answer from the guest: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert_eq!(body, "hello from the guest\n");
    assert_eq!(vm.host_port(81), None);

    vm.kill();
    assert!(vm.exec("true", T).is_err());
    assert!(http::request("GET", &url, &[]).is_err());
    assert!(
        vm.console_log().contains("vm: init ready"),
        "console log: {}",
        vm.console_log()
    );
}
