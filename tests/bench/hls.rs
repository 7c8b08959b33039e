//! `cargo run --release -p streamswitch-tests --bin bench-hls`: HLS
//! figures of the built agent (`cargo build --release --bins` first, or
//! set STREAMSWITCH_BIN).
//!
//! - Live-edge lag: an LL-HLS client doing blocking reloads part after
//!   part; the PROGRAM-DATE-TIME of each answer's newest part (its start,
//!   and its end: start + duration) against the wall clock when the
//!   answer arrives. Median and p90.
//! - Memory per active muxer: agent VmRSS with N streams watched over HLS
//!   minus the same agent before any HLS request, divided by N.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use streamswitch_tests::http::get;
use streamswitch_tests::m3u8::{self, Playlist};
use streamswitch_tests::{test_stream, Agent};

const W: u32 = 640;
const H: u32 = 360;
const FPS: u32 = 25;

fn main() {
    // The agent built beside this binary, unless told otherwise.
    if std::env::var_os("STREAMSWITCH_BIN").is_none() {
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Into::into))
        {
            let dir: std::path::PathBuf = dir;
            std::env::set_var("STREAMSWITCH_BIN", dir.join("streamswitch"));
        }
    }
    let samples: usize = arg("--samples").unwrap_or(60);
    let streams: usize = arg("--streams").unwrap_or(4);
    latency(samples);
    memory(streams);
}

fn arg(name: &str) -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn playlist(agent: &Agent, stream: &str, query: &str) -> Playlist {
    let res = get(&agent.http_url(&format!("/{stream}/index.m3u8{query}")));
    assert_eq!(res.status, 200, "{}", res.text());
    m3u8::parse(&res.text()).expect("playlist")
}

fn latency(samples: usize) {
    let agent = Agent::start(&test_stream("cam", W, H, FPS));
    agent.wait_ready(1);
    let mut p = playlist(&agent, "cam", "");
    let part_hold_back = p.part_hold_back.unwrap_or(0.0);
    // Let the muxer and the client settle for a couple of seconds.
    let warmup = Instant::now() + Duration::from_secs(2);
    let mut lags = Vec::new();
    let mut start_lags = Vec::new();
    while lags.len() < samples {
        let (msn, part) = (p.open_msn(), p.open_parts.len());
        p = playlist(&agent, "cam", &format!("?_HLS_msn={msn}&_HLS_part={part}"));
        let arrived = now_ms();
        if Instant::now() < warmup {
            continue;
        }
        let newest = p.parts().last().map_or(0.0, |x| x.duration);
        if let Some(edge) = p.live_edge_ms() {
            lags.push(arrived - edge);
            start_lags.push(arrived - edge + (newest * 1000.0) as i64);
        }
    }
    let (median, p90) = stats(&mut lags);
    let (start_median, start_p90) = stats(&mut start_lags);
    println!(
        "PDT lag of the newest part ({W}x{H} {FPS} fps, {} blocking reloads): \
         start median {start_median} ms (p90 {start_p90}), end median {median} ms (p90 {p90})",
        lags.len()
    );
    println!(
        "  end lag + PART-HOLD-BACK {:.0} ms: an LL player's latency should be about {:.0} ms",
        part_hold_back * 1000.0,
        median as f64 + part_hold_back * 1000.0
    );
}

fn memory(n: usize) {
    let config: String = (0..n)
        .map(|i| test_stream(&format!("s{i}"), W, H, FPS))
        .collect();
    let agent = Agent::start(&config);
    agent.wait_ready(n);
    std::thread::sleep(Duration::from_secs(3));
    let without = median_rss(&agent, 5);
    // Watch every stream long enough to fill the segment window (7 s by
    // default), keeping the muxers busy with blocking reloads.
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut playlists: Vec<Playlist> = (0..n)
        .map(|i| playlist(&agent, &format!("s{i}"), ""))
        .collect();
    while Instant::now() < deadline {
        for (i, p) in playlists.iter_mut().enumerate() {
            *p = playlist(&agent, &format!("s{i}"), "");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let with = median_rss(&agent, 5);
    let window_kb: f64 = playlists
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.segments
                .iter()
                .map(|s| get(&agent.http_url(&format!("/s{i}/{}", s.uri))).body.len() as f64)
                .sum::<f64>()
                / 1024.0
        })
        .sum::<f64>()
        / n as f64;
    println!(
        "memory: VmRSS {without} kB with {n} streams and no HLS, {with} kB with {n} muxers: {:.0} kB per muxer (segment window holds about {window_kb:.0} kB of media)",
        (with as f64 - without as f64) / n as f64
    );
}

/// Median and 90th percentile.
fn stats(v: &mut [i64]) -> (i64, i64) {
    v.sort_unstable();
    (v[v.len() / 2], v[v.len() * 9 / 10])
}

fn median_rss(agent: &Agent, n: usize) -> u64 {
    let mut v: Vec<u64> = (0..n)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(300));
            agent.status_kb("VmRSS")
        })
        .collect();
    v.sort_unstable();
    v[n / 2]
}
