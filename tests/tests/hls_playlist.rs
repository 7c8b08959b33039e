//! The LL-HLS playlist over several reloads: tags, numbering, part and
//! target durations, and blocking playlist reloads (rfc8216bis 6.2.5.2).

use std::time::{Duration, Instant};

use streamswitch_tests::http::get;
use streamswitch_tests::m3u8::{self, Playlist};
use streamswitch_tests::{test_stream, Agent};

fn playlist(agent: &Agent, query: &str) -> (Playlist, Duration) {
    let started = Instant::now();
    let res = get(&agent.http_url(&format!("/cam/index.m3u8{query}")));
    let took = started.elapsed();
    assert_eq!(res.status, 200, "{query}: {}", res.text());
    let p = m3u8::parse(&res.text()).unwrap_or_else(|e| panic!("{e}:\n{}", res.text()));
    (p, took)
}

/// True when `p` lists part `part` of segment `msn` (or the whole segment).
fn lists(p: &Playlist, msn: u64, part: usize) -> bool {
    if let Some(seg) = p.segments.iter().find(|s| s.msn == msn) {
        return seg.parts.len() > part || p.open_msn() > msn;
    }
    p.open_msn() > msn || (p.open_msn() == msn && p.open_parts.len() > part)
}

#[test]
fn tags_numbering_and_durations_hold_over_reloads() {
    let agent = Agent::start(&test_stream("cam", 320, 240, 25));
    agent.wait_ready(1);
    let (first, _) = playlist(&agent, "");
    let part_target = first.part_target.expect("EXT-X-PART-INF");
    assert_eq!(first.version, Some(9));
    assert!(first.can_block_reload);
    assert!(first.independent_segments);
    let map = first.map_uri.clone().expect("EXT-X-MAP");
    assert!(map.starts_with("init") && map.ends_with(".mp4"), "{map}");
    assert_eq!(first.discontinuity_sequence, Some(0));
    assert!(first.segments.iter().all(|s| !s.discontinuity));
    assert!(first.part_hold_back.unwrap() >= 3.0 * part_target);
    assert!((0.2..0.25).contains(&part_target), "{part_target}");
    let mut last_sequence = 0;
    let mut last_open = 0;
    let mut reloads = 0;
    let mut p = first;
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        reloads += 1;
        let sequence = p.media_sequence.expect("EXT-X-MEDIA-SEQUENCE");
        assert!(sequence >= last_sequence, "MSN went back");
        assert!(p.open_msn() >= last_open, "live edge went back");
        (last_sequence, last_open) = (sequence, p.open_msn());
        let target = p.target_duration.expect("EXT-X-TARGETDURATION");
        assert!(!p.segments.is_empty());
        for s in &p.segments {
            assert!(s.duration.round() as u64 <= target, "{s:?} > {target}");
            assert!(s.program_date_time.is_some(), "no PDT before {}", s.uri);
            if let Some(first_part) = s.parts.first() {
                assert!(first_part.independent, "{s:?}");
                let sum: f64 = s.parts.iter().map(|x| x.duration).sum();
                assert!((sum - s.duration).abs() < 0.002, "{s:?}");
            }
        }
        assert!(p.parts().count() >= 5);
        for part in p.parts() {
            assert!(part.duration > 0.0);
            if part.duration > part_target {
                // A part longer than PART-TARGET breaks rfc8216bis. The
                // segmenter never makes one; only a single picture that
                // lasts longer (the source stalled on a busy machine and
                // logged the frames it skipped) can be one.
                let body = get(&agent.http_url(&format!("/cam/{}", part.uri))).body;
                assert_eq!(video_samples(&body), Some(1), "{part:?} > {part_target}");
                assert!(
                    agent.count_log("capture fell behind") > 0,
                    "{part:?} is longer than PART-TARGET {part_target} and the source did not stall"
                );
            }
        }
        assert!(p.preload_hint.is_some());
        // The next reload blocks until the next part exists.
        let (msn, part) = (p.open_msn(), p.open_parts.len());
        (p, _) = playlist(&agent, &format!("?_HLS_msn={msn}&_HLS_part={part}"));
        assert!(lists(&p, msn, part));
    }
    assert!(reloads >= 15, "only {reloads} blocking reloads in 6 s");
}

#[test]
fn the_playlist_holds_the_configured_segments_and_its_dates_are_the_wall_clock() {
    const SEGMENTS: usize = 4;
    let agent = Agent::start(&format!(
        "{}\n[hls]\nsegments = {SEGMENTS}\n",
        test_stream("cam", 320, 240, 25)
    ));
    agent.wait_ready(1);
    // 1 s GOPs: the window fills after SEGMENTS + 1 seconds.
    let (mut p, _) = playlist(&agent, "");
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.segments.len() < SEGMENTS {
        assert!(Instant::now() < deadline, "the window never filled: {p:?}");
        std::thread::sleep(Duration::from_millis(200));
        (p, _) = playlist(&agent, "");
    }
    // Blocking reloads at the live edge: the window holds exactly
    // `segments` whole segments, and the newest part ends within 0.5 s of
    // the client's wall clock as the playlist arrives.
    let mut offsets = Vec::new();
    for _ in 0..20 {
        let (msn, part) = (p.open_msn(), p.open_parts.len());
        (p, _) = playlist(&agent, &format!("?_HLS_msn={msn}&_HLS_part={part}"));
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert_eq!(p.segments.len(), SEGMENTS, "{p:?}");
        let edge = p.live_edge_ms().expect("PROGRAM-DATE-TIME");
        offsets.push(now_ms - edge);
    }
    println!("client clock minus live edge, ms: {offsets:?}");
    for o in &offsets {
        assert!(
            o.abs() <= 500,
            "the live edge's PROGRAM-DATE-TIME is {o} ms off the wall clock: {offsets:?}"
        );
    }
}

/// The number of samples of track 1 (video) in a moof + mdat part.
fn video_samples(part: &[u8]) -> Option<u32> {
    let moof = find_box(part, b"moof")?;
    let mut trafs = moof;
    while let Some((traf, rest)) = next_box(trafs, b"traf") {
        trafs = rest;
        let tfhd = find_box(traf, b"tfhd")?;
        let track_id = u32::from_be_bytes(tfhd.get(4..8)?.try_into().ok()?);
        if track_id == 1 {
            let trun = find_box(traf, b"trun")?;
            return Some(u32::from_be_bytes(trun.get(4..8)?.try_into().ok()?));
        }
    }
    None
}

/// The body of the first box of `kind` among the boxes in `data`.
fn find_box<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    next_box(data, kind).map(|(body, _)| body)
}

/// The body of the first box of `kind`, and what follows that box.
fn next_box<'a>(mut data: &'a [u8], kind: &[u8; 4]) -> Option<(&'a [u8], &'a [u8])> {
    while data.len() >= 8 {
        let size = u32::from_be_bytes(data[..4].try_into().ok()?) as usize;
        if size < 8 || size > data.len() {
            return None;
        }
        if &data[4..8] == kind {
            return Some((&data[8..size], &data[size..]));
        }
        data = &data[size..];
    }
    None
}

#[test]
fn blocking_reload_waits_for_the_part_and_answers_at_once_when_it_exists() {
    let agent = Agent::start(&test_stream("cam", 320, 240, 25));
    agent.wait_ready(1);
    let (p, _) = playlist(&agent, "");
    let part_target = Duration::from_secs_f64(p.part_target.unwrap());

    let mut waits = Vec::new();
    let mut at_once = 0;
    let mut p = p;
    for _ in 0..5 {
        let (msn, part) = (p.open_msn(), p.open_parts.len());
        assert!(!lists(&p, msn, part));
        let (next, took) = playlist(&agent, &format!("?_HLS_msn={msn}&_HLS_part={part}"));
        assert!(lists(&next, msn, part), "returned before part {msn}.{part}");
        waits.push(took);
        // Asking again for what now exists returns the same live edge:
        // the server did not wait for anything new.
        let (again, took_again) = playlist(&agent, &format!("?_HLS_msn={msn}&_HLS_part={part}"));
        if again.parts().count() == next.parts().count() && again.open_msn() == next.open_msn() {
            at_once += 1;
        }
        assert!(took_again < part_target * 2, "{took_again:?}");
        p = again;
    }
    // Each wait ends when the part is written: within a part's time plus
    // one frame held back and some slack for a busy machine.
    for w in &waits {
        assert!(*w < part_target + Duration::from_millis(600), "{waits:?}");
    }
    assert!(at_once >= 2, "{at_once} immediate answers out of 5");

    // Far beyond the live edge, or a part without an MSN: 400.
    let far = p.open_msn() + 10;
    let res = get(&agent.http_url(&format!("/cam/index.m3u8?_HLS_msn={far}")));
    assert_eq!(res.status, 400);
    let res = get(&agent.http_url("/cam/index.m3u8?_HLS_part=1"));
    assert_eq!(res.status, 400);
    let res = get(&agent.http_url("/cam/index.m3u8?_HLS_msn=abc"));
    assert_eq!(res.status, 400);
}

#[test]
fn the_hinted_part_is_served_as_soon_as_it_is_written() {
    let agent = Agent::start(&test_stream("cam", 320, 240, 25));
    agent.wait_ready(1);
    let (p, _) = playlist(&agent, "");
    let hint = p.preload_hint.clone().unwrap();
    let started = Instant::now();
    let res = get(&agent.http_url(&format!("/cam/{hint}")));
    let took = started.elapsed();
    assert_eq!(res.status, 200, "{hint}");
    assert_eq!(&res.body[4..8], b"moof");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let (p, _) = playlist(&agent, "");
    assert!(p.parts().any(|x| x.uri == hint), "{hint} not listed");
    // Once written, a part never changes.
    let again = get(&agent.http_url(&format!("/cam/{hint}")));
    assert_eq!(again.body, res.body);
}
