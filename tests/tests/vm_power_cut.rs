//! A real power cut (issue #13 item 6): the agent records onto ext4 on a
//! virtio disk in a VM, and qemu is killed (SIGKILL) at a random moment, 20
//! times, one boot per cut, on the same disk image. After each cut the host
//! looks at the image as the cut left it (on a copy whose journal the host
//! replays, as a mount would; the next boot replays the original itself):
//! the filesystem is consistent, every `.mp4` decodes, the file in flight
//! is a `.partial`. The next boot's start-up repair must turn it into a
//! playable `.mp4` whose header declares what its fragments hold (or a
//! `.corrupt`, counted), and the media lost per cut must stay within what
//! `fsync = "fragment"` promises.
//!
//! The disk is `cache=none`: the guest sees a volatile write cache, as on
//! an SD card or eMMC, so ext4 and the agent's fdatasync send real flushes,
//! and writes go to the image with O_DIRECT as they leave the guest. A
//! SIGKILL of qemu loses nothing qemu had handed to the host in either
//! mode, so the cut takes exactly what the guest held in RAM: the page
//! cache, the agent's unsynced data, the journal not yet committed.

mod record_common;

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use record_common::*;
use streamswitch_tests::vm::{host_tool, DiskCache, Vm, VmConfig, VmImage};
use streamswitch_tests::{agent_bin, run_with_timeout};

const CUTS: usize = 20;
const FRAGMENT_S: f64 = 0.5;
/// Media lost per cut, at most: with `fsync = "fragment"` the fragment
/// being filled (up to one fragment of media, in memory) and the one being
/// written and synced when the power goes (one more), so two fragments;
/// plus what is between capture and the recorder's queue (the encoders'
/// latency, larger in an emulated CPU) and the boot jitter of the
/// measurement (the cut's time is read in the guest just before qemu is
/// killed, and a file's name holds its first frame's time to the ms).
const MAX_LOST_S: f64 = 2.0 * FRAGMENT_S + 0.6;
const T: Duration = Duration::from_secs(30);

const CONFIG: &str = r#"[agent]
device_id = "vm"
data_dir = "/data/agent"

[rtsp]
listen = "127.0.0.1:8554"

[http]
listen = "127.0.0.1:8888"

[recording]
fsync = "fragment"

[[stream]]
name = "cam"
source = { kind = "test", width = 320, height = 240, fps = 15, bitrate_kbps = 300, audio = true, keyframe_seconds = 1.0 }
record = { enabled = true, segment_seconds = 2, fragment_ms = 500 }
"#;

#[test]
fn twenty_power_cuts_lose_at_most_the_fragment_in_flight() {
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let disk = work.path().join("disk.img");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(256 << 20))
        .unwrap();
    run(Command::new(host_tool("mkfs.ext4"))
        .args(["-F", "-q"])
        .arg(&disk));
    let config = work.path().join("streamswitch.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let image = VmImage::build(
        &VmConfig::new()
            .module("ext4", "")
            .file(agent_bin(), "/bin/streamswitch")
            .file(&config, "/etc/streamswitch.toml")
            .disk(&disk, DiskCache::None)
            .memory_mib(512)
            .cpus(1),
    )
    .unwrap();

    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("random seed {seed}");
    let mut random = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as f64 / (1u64 << 31) as f64
    };

    // The host checks a cut's image while the next boot runs.
    let (cuts, checked) = std::sync::mpsc::channel::<Cut>();
    let checker = std::thread::spawn(move || {
        let mut book = Book::default();
        for cut in checked {
            book.repair_log(&cut.agent_log);
            book.after(cut.at_ms, &extract(cut.image));
        }
        book
    });
    let (mut boot_s, mut ready_s) = (Vec::new(), Vec::new());
    // Boot CUTS + 1 repairs the last cut and stops cleanly.
    for cut in 0..=CUTS {
        if checker.is_finished() {
            break;
        }
        let t0 = Instant::now();
        let vm = image.boot().unwrap();
        boot_s.push(t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        guest(&vm, "mkdir -p /data && mount -t ext4 /dev/vda /data");
        let pid = vm
            .spawn(
                "env RUST_LOG=info /bin/streamswitch run --config /etc/streamswitch.toml",
                "/tmp/agent.log",
            )
            .unwrap();
        // The start-up repair runs before the source starts.
        let agent_log = guest(
            &vm,
            &format!(
                "while ! grep -q 'source ready' /tmp/agent.log; do kill -0 {pid} || exit 1; usleep 50000; done; cat /tmp/agent.log"
            ),
        );
        ready_s.push(t0.elapsed().as_secs_f64());
        if cut == CUTS {
            guest(
                &vm,
                &format!("kill {pid}; while kill -0 {pid} 2>/dev/null; do usleep 50000; done; umount /data"),
            );
            drop(vm);
            let image = copy_image(&disk);
            let _ = cuts.send(Cut {
                at_ms: None,
                image,
                agent_log,
            });
            break;
        }
        let record_s = 2.0 + 4.0 * random();
        std::thread::sleep(Duration::from_secs_f64(record_s));
        // The agent must still run when the power goes; the guest's clock
        // at the last moment dates the cut.
        let out = guest(
            &vm,
            &format!(
                "kill -0 {pid} || {{ cat /tmp/agent.log; exit 1; }}; adjtimex | grep time.tv_"
            ),
        );
        let answered = Instant::now();
        let mut vm = vm;
        vm.kill();
        let at_ms = guest_clock_ms(&out) + answered.elapsed().as_secs_f64() * 1000.0;
        eprintln!("cut {cut}: after {record_s:.2} s of recording");
        let image = copy_image(&disk);
        let _ = cuts.send(Cut {
            at_ms: Some(at_ms),
            image,
            agent_log,
        });
    }
    drop(cuts);
    let book = checker
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    book.report(started.elapsed().as_secs_f64(), &boot_s, &ready_s);
}

/// A cut (`at_ms` its time on the guest clock; `None` for the clean stop
/// at the end), the disk image as it left it, and what the agent logged
/// at the start of that boot.
struct Cut {
    at_ms: Option<f64>,
    image: tempfile::TempDir,
    agent_log: String,
}

/// Runs a guest command that must succeed; its output.
fn guest(vm: &Vm, cmd: &str) -> String {
    let (code, out) = vm.exec(cmd, T).unwrap();
    assert_eq!(
        code,
        0,
        "{cmd:?} failed: {out}\nconsole:\n{}",
        vm.console_log()
    );
    out
}

/// Milliseconds since the epoch from busybox adjtimex's `time.tv_sec` and
/// `time.tv_usec` lines.
fn guest_clock_ms(adjtimex: &str) -> f64 {
    let field = |name: &str| -> f64 {
        adjtimex
            .lines()
            .find_map(|l| l.trim().strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {adjtimex:?}"))
    };
    field("time.tv_sec:") * 1000.0 + field("time.tv_usec:") / 1000.0
}

fn run(cmd: &mut Command) -> String {
    let (ok, out, err) = run_with_timeout(cmd, T);
    assert!(ok, "{cmd:?} failed: {out}{err}");
    out
}

/// A copy of the disk image (`disk.img` in the returned dir), for the
/// host to look at while the next boot uses the image.
fn copy_image(disk: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    run(Command::new("cp")
        .arg("--sparse=always")
        .arg(disk)
        .arg(dir.path().join("disk.img")));
    dir
}

/// The recordings in a copy of the image, as the cut left them: the
/// journal replayed (as the next mount will do), the filesystem checked,
/// and the recordings copied out with debugfs.
fn extract(dir: tempfile::TempDir) -> tempfile::TempDir {
    let copy = dir.path().join("disk.img");
    // Exit 1: the journal was replayed.
    let (_, out, err) = run_with_timeout(
        Command::new(host_tool("e2fsck"))
            .args(["-y", "-E", "journal_only"])
            .arg(&copy),
        T,
    );
    let fsck = run_with_timeout(
        Command::new(host_tool("e2fsck"))
            .args(["-f", "-n"])
            .arg(&copy),
        T,
    );
    assert!(
        fsck.0,
        "the filesystem is damaged after the cut:\n{}{}\n(journal replay: {out}{err})",
        fsck.1, fsck.2
    );
    run(Command::new(host_tool("debugfs"))
        .arg("-R")
        .arg(format!("rdump /agent/recordings {}", dir.path().display()))
        .arg(&copy));
    std::fs::remove_file(&copy).unwrap();
    dir
}

/// What the test learned, cut after cut.
#[derive(Default)]
struct Book {
    /// Closed `.mp4` files already decoded: name, content hash.
    decoded: HashMap<String, u64>,
    /// Every name seen (without `.partial` / `.corrupt`), and the cut whose
    /// boot made it.
    made_by: BTreeMap<String, usize>,
    /// Per cut: its time on the guest clock (ms), and the `.partial` it
    /// left with the complete fragments it held.
    cuts: Vec<(f64, Vec<(String, usize)>)>,
    /// Media lost per cut, seconds.
    lost: Vec<f64>,
    repaired: usize,
    removed: usize,
    corrupt: Vec<String>,
    /// The largest difference between a repaired file's declared duration
    /// and the span of its packets, seconds.
    duration_error: f64,
    /// From the agent's log: repairs and torn bytes cut.
    logged_repairs: usize,
    torn_bytes: Vec<u64>,
}

impl Book {
    fn repair_log(&mut self, log: &str) {
        for l in log.lines() {
            if let Some(rest) = l.split("repaired recording ").nth(1) {
                self.logged_repairs += 1;
                let torn = rest
                    .split(" (")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok());
                self.torn_bytes.extend(torn);
            }
        }
    }

    /// Checks the files after a cut (`cut_ms` its time), or after the last
    /// boot stopped cleanly (`None`).
    fn after(&mut self, cut_ms: Option<f64>, snap: &tempfile::TempDir) {
        let n = self.cuts.len();
        let files = all_files(snap.path());
        assert!(
            cut_ms.is_none() || !files.is_empty(),
            "cut {n}: no recording on the disk"
        );
        let mut partials = Vec::new();
        let mut names = Vec::new();
        for f in &files {
            let name = f.file_name().unwrap().to_str().unwrap().to_owned();
            let base = name
                .trim_end_matches(".partial")
                .trim_end_matches(".corrupt")
                .to_owned();
            self.made_by.entry(base.clone()).or_insert(n);
            if name.ends_with(".mp4") {
                self.check_closed(n, f, &name);
            } else if name.ends_with(".partial") {
                partials.push((base.clone(), complete_fragments(f)));
            } else if !name.ends_with(".corrupt") {
                panic!("cut {n}: unexpected file {name}");
            }
            names.push(name);
        }
        // Only the file in flight is open, and only at a cut.
        assert!(
            partials.len() <= usize::from(cut_ms.is_some()),
            "cut {n}: open files {partials:?}"
        );
        // The previous cut's file in flight has been repaired.
        if let Some((prev_cut_ms, prev_partials)) = self.cuts.last().cloned() {
            for (base, fragments) in &prev_partials {
                let corrupt = format!("{base}.corrupt");
                if names.contains(base) {
                    self.repaired += 1;
                    let f = files.iter().find(|f| f.ends_with(base)).unwrap();
                    let (declared, media) = (declared_duration(f), media_span(f));
                    self.duration_error = self.duration_error.max((declared - media).abs());
                    assert!(
                        (declared - media).abs() < 0.1,
                        "cut {}: {base} declares {declared:.3} s, its fragments hold {media:.3} s",
                        n - 1
                    );
                } else if names.contains(&corrupt) {
                    self.corrupt.push(corrupt);
                } else {
                    assert_eq!(
                        *fragments,
                        0,
                        "cut {}: {base} held {fragments} fragments and was removed",
                        n - 1
                    );
                    self.removed += 1;
                }
            }
            self.lost.push(self.lost_by(n - 1, prev_cut_ms, &files));
        }
        if let Some(cut_ms) = cut_ms {
            self.cuts.push((cut_ms, partials));
        }
    }

    /// Decodes a closed file the first time it is seen; a closed file
    /// never changes.
    fn check_closed(&mut self, n: usize, f: &Path, name: &str) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::fs::read(f).unwrap().hash(&mut h);
        let hash = h.finish();
        match self.decoded.get(name) {
            Some(&known) => assert_eq!(known, hash, "cut {n}: closed file {name} changed"),
            None => {
                assert_eq!(decode_errors(f), "", "cut {n}: {name}");
                self.decoded.insert(name.to_owned(), hash);
            }
        }
    }

    /// The time the boot before `cut` recorded (from its first file's
    /// first frame to the cut) minus the media its files hold, once
    /// repaired. Its files follow each other without a gap.
    fn lost_by(&self, cut: usize, cut_ms: f64, files: &[PathBuf]) -> f64 {
        let mine: Vec<&PathBuf> = files
            .iter()
            .filter(|f| {
                let name = f.file_name().unwrap().to_str().unwrap();
                name.ends_with(".mp4") && self.made_by.get(name) == Some(&cut)
            })
            .collect();
        let Some(first) = mine.first() else {
            panic!("cut {cut}: nothing was recorded");
        };
        let start_ms = name_time_ms(first.file_name().unwrap().to_str().unwrap()) as f64;
        let recorded_s = (cut_ms - start_ms) / 1000.0;
        let mut media_s = 0.0;
        let mut files = String::new();
        for f in &mine {
            let name = f.file_name().unwrap().to_str().unwrap();
            let span = media_span(f);
            media_s += span;
            files += &format!(
                "\n  {name}: starts at +{:.3} s, holds {span:.3} s",
                (name_time_ms(name) as f64 - start_ms) / 1000.0
            );
        }
        let lost = recorded_s - media_s;
        let what = format!(
            "cut {cut}: recorded {recorded_s:.2} s, {media_s:.2} s on disk, lost {lost:.2} s{files}"
        );
        eprintln!("{what}");
        assert!(lost <= MAX_LOST_S, "{what}\nlost more than {MAX_LOST_S} s");
        // More media than time: the measurement is wrong.
        assert!(lost >= -0.2, "{what}\nmore media than recording time");
        lost
    }

    fn report(&self, run_s: f64, boot_s: &[f64], ready_s: &[f64]) {
        let lost: Vec<f64> = self.lost.iter().map(|l| l / FRAGMENT_S).collect();
        let (lost, boots, ready) = (sorted(&lost), sorted(boot_s), sorted(ready_s));
        eprintln!(
            "power cuts: {} cuts, {} files, fragments lost per cut min {:.2} median {:.2} max {:.2}, \
             {} repaired ({} by the agent's log, torn bytes cut {:?}, declared duration off by at most \
             {:.3} s), {} removed (no fragment), \
             {} corrupt {:?}; boot {:.1}-{:.1} s, agent ready {:.1}-{:.1} s; run {run_s:.0} s",
            self.cuts.len(),
            self.made_by.len(),
            lost[0],
            lost[lost.len() / 2],
            lost[lost.len() - 1],
            self.repaired,
            self.logged_repairs,
            self.torn_bytes,
            self.duration_error,
            self.removed,
            self.corrupt.len(),
            self.corrupt,
            boots[0],
            boots[boots.len() - 1],
            ready[0],
            ready[ready.len() - 1],
        );
        assert_eq!(self.cuts.len(), CUTS);
        assert_eq!(self.lost.len(), CUTS);
        assert!(
            self.made_by.len() >= 2 * CUTS,
            "only {} files in {CUTS} boots",
            self.made_by.len()
        );
    }
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else if e.file_name() != "disk.img" {
                out.push(e.path());
            }
        }
    }
    out.sort_by_key(|p| p.file_name().map(|n| n.to_owned()));
    out
}

/// Complete `moof` + `mdat` pairs in a file as written (top-level boxes
/// walked; a torn box ends the walk).
fn complete_fragments(path: &Path) -> usize {
    let data = std::fs::read(path).unwrap();
    let mut pos = 0;
    let mut fragments = 0;
    let mut after_moof = false;
    while pos + 8 <= data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        if size < 8 || pos + size > data.len() {
            break;
        }
        match &data[pos + 4..pos + 8] {
            b"moof" => after_moof = true,
            b"mdat" if after_moof => {
                fragments += 1;
                after_moof = false;
            }
            _ => after_moof = false,
        }
        pos += size;
    }
    fragments
}
