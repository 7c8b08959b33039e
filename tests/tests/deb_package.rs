//! The .deb for boards: every file in its place in a scratch root
//! (`dpkg -x`), the configuration a conffile the agent accepts, the unit
//! verified by `systemd-analyze verify`, and the maintainer scripts enabling
//! the service on install and cleaning up on purge (run against stand-ins for
//! deb-systemd-helper and systemctl, which log their arguments).
//!
//! Which package: `$STREAMSWITCH_DEB` (a path in the workspace), or the
//! arm64 one `.ci/run` and `bash cross/build.sh aarch64` make in
//! target/aarch64-unknown-linux-gnu/debian/.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use streamswitch_tests::agent_bin;

fn deb() -> PathBuf {
    if let Ok(p) = std::env::var("STREAMSWITCH_DEB") {
        // Relative to the workspace, not to this crate (cargo's working
        // directory for tests).
        return Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p);
    }
    // This test is target/<host profile>/deps/deb_package-<hash>.
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .ancestors()
        .nth(3)
        .expect("target dir")
        .join("aarch64-unknown-linux-gnu/debian");
    let found = std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"));
    found.unwrap_or_else(|| {
        panic!(
            "no .deb in {}: make it with `bash cross/build.sh aarch64` (or see .ci/run)",
            dir.display()
        )
    })
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The ELF machine of a binary: 183 is aarch64, 40 is ARM.
fn elf_machine(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "{} is not ELF", path.display());
    u16::from_le_bytes([bytes[18], bytes[19]])
}

#[test]
fn the_package_installs_every_file_in_its_place() {
    let deb = deb();
    let arch = run(Command::new("dpkg-deb")
        .arg("-f")
        .arg(&deb)
        .arg("Architecture"));
    let machine = match arch.trim() {
        "arm64" => 183,
        "armhf" => 40,
        other => panic!("unexpected architecture {other}"),
    };
    assert_eq!(
        run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Package")).trim(),
        "streamswitch"
    );
    // The glibc builds link libasound (the `alsa` back-end).
    let depends = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Depends"));
    assert!(
        depends.split(',').any(|d| d.trim() == "libasound2"),
        "{depends}"
    );

    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(root));

    let bin = root.join("usr/bin/streamswitch");
    assert_eq!(
        std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(elf_machine(&bin), machine);
    let config = root.join("etc/streamswitch/streamswitch.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("data_dir = \"/var/lib/streamswitch\""),
        "{text}"
    );
    // The host's agent reads the same configuration the board's will.
    let checked = run(Command::new(agent_bin()).arg("check-config").arg(&config));
    assert!(checked.contains("ok"), "{checked}");
    for doc in [
        "copyright",
        "FDK-AAC-NOTICE",
        "openh264-LICENSE",
        "README.md",
    ] {
        assert!(
            root.join("usr/share/doc/streamswitch").join(doc).is_file(),
            "/usr/share/doc/streamswitch/{doc} missing"
        );
    }
    let fdk =
        std::fs::read_to_string(root.join("usr/share/doc/streamswitch/FDK-AAC-NOTICE")).unwrap();
    assert!(fdk.contains("Software License for The Fraunhofer FDK AAC Codec Library"));

    let unit = ["lib", "usr/lib"]
        .iter()
        .map(|d| root.join(d).join("systemd/system/streamswitch.service"))
        .find(|p| p.is_file())
        .expect("streamswitch.service installed under /lib/systemd/system");
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "Type=notify",
        "ExecStart=/usr/bin/streamswitch run --config /etc/streamswitch/streamswitch.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "StateDirectory=streamswitch",
        "ConfigurationDirectory=streamswitch",
        "ProtectSystem=strict",
        "DynamicUser=yes",
    ] {
        assert!(unit_text.lines().any(|l| l == line), "unit lacks {line}");
    }
    verify_unit(&unit_text, root);

    // Maintainer scripts and conffiles.
    let control = root.join("DEBIAN");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert!(
        conffiles
            .lines()
            .any(|l| l == "/etc/streamswitch/streamswitch.toml"),
        "{conffiles}"
    );
    let calls = run_script(&control, "postinst", "configure");
    assert!(
        calls.contains("deb-systemd-helper enable streamswitch.service"),
        "postinst does not enable the unit: {calls}"
    );
    run_script(&control, "prerm", "remove");
    let calls = run_script(&control, "postrm", "purge");
    assert!(
        calls.contains("deb-systemd-helper purge streamswitch.service"),
        "postrm purge does not clean up the unit: {calls}"
    );
}

/// `systemd-analyze verify` on the unit, with the agent's path pointing at
/// the extracted binary (verify checks that it exists).
fn verify_unit(unit_text: &str, root: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("streamswitch.service");
    let bin = root.join("usr/bin/streamswitch");
    std::fs::write(
        &unit,
        unit_text.replace("/usr/bin/streamswitch", bin.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian package systemd) must be installed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
}

/// Runs a maintainer script with `sh -e` (as dpkg does), the systemd tools
/// replaced by stand-ins that log their calls; returns the log.
fn run_script(control: &Path, script: &str, arg: &str) -> String {
    let path = control.join(script);
    assert!(path.is_file(), "no {script} in the package");
    let stubs = tempfile::tempdir().unwrap();
    let log = stubs.path().join("calls");
    for tool in [
        "deb-systemd-helper",
        "deb-systemd-invoke",
        "systemctl",
        "invoke-rc.d",
    ] {
        let stub = stubs.path().join(tool);
        std::fs::write(
            &stub,
            format!("#!/bin/sh\necho \"{tool} $*\" >> '{}'\n", log.display()),
        )
        .unwrap();
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path_var = format!(
        "{}:{}",
        stubs.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run(Command::new("sh")
        .arg("-e")
        .arg(&path)
        .arg(arg)
        .env("PATH", path_var));
    std::fs::read_to_string(&log).unwrap_or_default()
}
