//! The V4L2 mem2mem encoder (hal/src/v4l2/m2m.rs) against a real stateful
//! encoder driver: the kernel's vicodec (FWHT), built for the guest by
//! tests/vm/build-vicodec.sh, in single- and then multi-planar mode (the
//! Raspberry Pi's encoder is multi-planar). The checks are hal's own unit
//! tests, which need a vicodec: inside the VM they run with
//! STREAMSWITCH_HAL_REQUIRE_VICODEC=1, so a missing device fails them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use streamswitch_tests::vm::{Vm, VmConfig};

const VICODEC_TESTS: [&str; 2] = ["m2m_encoder_encodes_on_vicodec", "scan_classifies_vicodec"];

fn vicodec_modules() -> (PathBuf, PathBuf) {
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("vm/build-vicodec.sh"))
        .output()
        .expect("running build-vicodec.sh");
    assert!(
        out.status.success(),
        "build-vicodec.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let m2m = PathBuf::from(lines.next().expect("v4l2-mem2mem.ko"));
    let vicodec = PathBuf::from(lines.next().expect("vicodec.ko"));
    (m2m, vicodec)
}

/// The hal crate's unit-test binary (cargo builds it with the workspace's
/// tests; asking again only finds it).
fn hal_tests() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "test",
            "-p",
            "streamswitch-hal",
            "--lib",
            "--no-run",
            "--message-format=json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo test --no-run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|m| m["target"]["name"] == "streamswitch_hal" && m["executable"].is_string())
        .and_then(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("no hal test binary in cargo's output")
}

#[test]
fn m2m_encoder_on_vicodec_single_and_multi_planar() {
    let (m2m, vicodec) = vicodec_modules();
    let vm = Vm::boot(
        &VmConfig::new()
            .module("videobuf2-vmalloc", "")
            .module("videobuf2-v4l2", "")
            .out_of_tree_module(&m2m, "")
            .out_of_tree_module(&vicodec, "")
            .file(hal_tests(), "/bin/hal-tests"),
    )
    .unwrap();
    let run = |mode: &str| {
        let (code, out) = vm
            .exec(
                "STREAMSWITCH_HAL_REQUIRE_VICODEC=1 hal-tests vicodec --test-threads=1",
                Duration::from_secs(300),
            )
            .unwrap();
        assert_eq!(code, 0, "{mode}: {out}");
        for t in VICODEC_TESTS {
            assert!(
                out.contains(&format!("{t} ... ok")),
                "{mode}: {t} did not pass:\n{out}"
            );
        }
        assert!(!out.contains("did not run"), "{mode}: {out}");
    };
    run("single-planar");
    let (code, out) = vm
        .exec(
            "rmmod vicodec && insmod /vm/modules/vicodec.ko multiplanar=1",
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(code, 0, "reloading vicodec: {out}");
    run("multi-planar");
}
