//! kill -9 at random points, ten times on the same data dir: after each
//! restart the file that was being written is repaired (torn fragment cut,
//! duration declared, final name), loses at most the fragment in flight,
//! and every file on disk decodes.

mod record_common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use record_common::*;
use streamswitch_tests::Agent;

const FRAGMENT_S: f64 = 0.5;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn kill_9_ten_times_loses_at_most_the_fragment_in_flight() {
    let mut seed = now_ms() as u64;
    eprintln!("random seed {seed}");
    let mut random = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as f64 / (1u64 << 31) as f64
    };
    let mut agent = Agent::start(&recorded_stream("cam", 3, ""));
    agent.wait_ready(1);
    let data = agent.data_dir();
    let mut repaired = 0;
    for round in 0..10 {
        // A random point: anywhere in the first seconds of a run, which
        // covers kills before the first fragment, mid-file and near a cut.
        let wait = 0.8 + random() * 3.5;
        std::thread::sleep(Duration::from_secs_f64(wait));
        let open = partial_files(&data);
        let killed_at = now_ms();
        agent.restart();
        // Repair runs at start-up, before any recorder opens a new file.
        wait_for(
            &format!("round {round}: repair of {open:?}"),
            Duration::from_secs(15),
            || open.iter().all(|p| !p.exists()).then_some(()),
        );
        for p in open {
            let closed = std::path::PathBuf::from(p.to_string_lossy().trim_end_matches(".partial"));
            let name = closed.file_name().unwrap().to_str().unwrap().to_owned();
            let existed = (killed_at - name_time_ms(&name)) as f64 / 1000.0;
            if !closed.exists() {
                // Removed: it had no complete fragment yet.
                assert!(
                    existed < 2.0 * FRAGMENT_S + 0.6,
                    "round {round}: {name} removed after {existed:.2} s"
                );
                continue;
            }
            repaired += 1;
            assert_eq!(decode_errors(&closed), "", "round {round}: {name}");
            let declared = declared_duration(&closed);
            let media = media_span(&closed);
            if (declared - media).abs() >= 0.1 {
                let keep = std::env::temp_dir().join(&name);
                std::fs::copy(&closed, &keep).unwrap();
                panic!(
                    "round {round}: {name} declares {declared} s, holds {media} s; copy in {}",
                    keep.display()
                );
            }
            // Lost: what was not yet cut into a fragment plus the fragment
            // being written, and the source's capture-to-frame latency.
            let lost = existed - media;
            assert!(
                lost <= 2.0 * FRAGMENT_S + 0.6,
                "round {round}: {name} lost {lost:.2} s (existed {existed:.2} s)"
            );
        }
        eprintln!("round {round}: killed after {wait:.2} s");
    }
    assert!(
        repaired >= 5,
        "only {repaired} of 10 kills hit an open file with fragments"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && partial_files(&data).is_empty() {
        std::thread::sleep(Duration::from_millis(100));
    }
    agent.kill();
    for f in closed_files(&data) {
        assert_eq!(decode_errors(&f), "", "{}", f.display());
    }
}
