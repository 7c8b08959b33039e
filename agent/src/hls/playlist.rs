//! The media playlist of a window (RFC 8216 and draft-pantos-hls-rfc8216bis
//! low-latency extensions). Clients that ignore parts (ffmpeg, older
//! players) read the same playlist: whole segments are always listed.

use std::fmt::Write;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::names;
use super::window::Window;

/// Parts are listed only for segments this many target durations from the
/// end; older ones are listed whole (rfc8216bis 4.4.4.9).
const PART_LISTING_TARGETS: u32 = 3;

/// PART-HOLD-BACK in part targets: the minimum the draft allows.
const PART_HOLD_BACK_PARTS: f64 = 3.0;

pub fn render(w: &Window) -> String {
    let mut out = String::with_capacity(4096);
    let part_target = w.part_target().as_secs_f64();
    let first_msn = w.segments().next().map_or(0, |s| s.msn);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "#EXTM3U\n\
         #EXT-X-VERSION:9\n\
         #EXT-X-TARGETDURATION:{}\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3}\n\
         #EXT-X-PART-INF:PART-TARGET={:.3}\n\
         #EXT-X-MEDIA-SEQUENCE:{first_msn}\n\
         #EXT-X-DISCONTINUITY-SEQUENCE:{}\n\
         #EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-MAP:URI=\"{}\"\n",
        w.target_duration(),
        part_target * PART_HOLD_BACK_PARTS,
        part_target,
        w.discontinuity_sequence(),
        names::init(w.segments().next().map_or(w.current_init(), |s| s.init)),
    );
    let listing_from = parts_listed_from(w);
    for seg in w.segments() {
        if seg.discontinuity && seg.msn != first_msn {
            let _ = write!(
                out,
                "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"{}\"\n",
                names::init(seg.init)
            );
        }
        let pdt: DateTime<Utc> = seg.program_date_time.into();
        let _ = writeln!(
            out,
            "#EXT-X-PROGRAM-DATE-TIME:{}",
            pdt.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
        if seg.msn >= listing_from {
            for (i, p) in seg.parts.iter().enumerate() {
                let _ = write!(
                    out,
                    "#EXT-X-PART:DURATION={:.5},URI=\"{}\"",
                    p.duration.as_secs_f64(),
                    names::part(seg.msn, i)
                );
                out.push_str(if p.independent {
                    ",INDEPENDENT=YES\n"
                } else {
                    "\n"
                });
            }
        }
        if seg.complete {
            let _ = write!(
                out,
                "#EXTINF:{:.5},\n{}\n",
                seg.duration().as_secs_f64(),
                names::segment(seg.msn)
            );
        }
    }
    let (msn, part) = w.next_part();
    let _ = writeln!(
        out,
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
        names::part(msn, part)
    );
    out
}

/// The multivariant playlist: one variant, the media playlist, with its
/// CODECS (so a player knows before loading anything whether it can play
/// the stream, HEVC in particular), RESOLUTION and BANDWIDTH.
pub fn render_multivariant(w: &Window) -> String {
    let mut out = String::with_capacity(256);
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH={},CODECS=\"{}\"",
        w.bandwidth().max(1),
        w.codecs()
    );
    if let Some((width, height)) = w.resolution() {
        let _ = write!(out, ",RESOLUTION={width}x{height}");
    }
    let _ = write!(out, "\n{}\n", names::PLAYLIST);
    out
}

/// The first MSN whose parts are listed.
fn parts_listed_from(w: &Window) -> u64 {
    let horizon = Duration::from_secs(w.target_duration()) * PART_LISTING_TARGETS;
    let mut covered = Duration::ZERO;
    let mut from = u64::MAX;
    for seg in w.segments().collect::<Vec<_>>().into_iter().rev() {
        if covered >= horizon {
            break;
        }
        covered += seg.duration();
        from = seg.msn;
    }
    from
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use bytes::Bytes;

    use super::super::window::Part;
    use super::*;

    fn window(segments: u64) -> Window {
        let mut w = Window::new(
            Bytes::from_static(b"init"),
            Duration::from_millis(200),
            10,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            0,
        );
        for s in 0..segments {
            for p in 0..5 {
                w.push_part(Part {
                    data: Bytes::from_static(b"x"),
                    start: Duration::from_millis(s * 1000 + p * 200),
                    duration: Duration::from_millis(200),
                    independent: p == 0,
                });
            }
            w.close_segment();
        }
        w.push_part(Part {
            data: Bytes::from_static(b"x"),
            start: Duration::from_millis(segments * 1000),
            duration: Duration::from_millis(180),
            independent: true,
        });
        w
    }

    #[test]
    fn renders_the_low_latency_tags() {
        let text = render(&window(2));
        let expected_head = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n\
            #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600\n\
            #EXT-X-PART-INF:PART-TARGET=0.200\n#EXT-X-MEDIA-SEQUENCE:0\n\
            #EXT-X-DISCONTINUITY-SEQUENCE:0\n\
            #EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init0.mp4\"\n\
            #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n\
            #EXT-X-PART:DURATION=0.20000,URI=\"part0.0.m4s\",INDEPENDENT=YES\n\
            #EXT-X-PART:DURATION=0.20000,URI=\"part0.1.m4s\"\n";
        assert!(text.starts_with(expected_head), "{text}");
        assert!(text.contains("#EXTINF:1.00000,\nseg1.m4s\n"), "{text}");
        assert!(text.ends_with(
            "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n\
             #EXT-X-PART:DURATION=0.18000,URI=\"part2.0.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part2.1.m4s\"\n"
        ));
    }

    #[test]
    fn a_discontinuity_is_marked_with_its_new_map() {
        let mut w = window(2);
        w.push_part(Part {
            data: Bytes::from_static(b"x"),
            start: Duration::from_millis(2180),
            duration: Duration::from_millis(200),
            independent: false,
        });
        w.close_segment();
        w.start_discontinuity(Bytes::from_static(b"new init"));
        w.push_part(Part {
            data: Bytes::from_static(b"x"),
            start: Duration::from_millis(9000),
            duration: Duration::from_millis(200),
            independent: true,
        });
        let text = render(&w);
        assert!(
            text.contains(
                "seg2.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init3.mp4\"\n\
                 #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:29.000Z\n"
            ),
            "{text}"
        );
        assert_eq!(text.matches("#EXT-X-MAP").count(), 2);
    }

    #[test]
    fn the_multivariant_playlist_names_codecs_resolution_and_bandwidth() {
        let mut w = window(2);
        w.set_format("hvc1.1.6.L93.90,mp4a.40.2".into(), Some((320, 240)));
        let text = render_multivariant(&w);
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=40,CODECS=\"hvc1.1.6.L93.90,mp4a.40.2\",RESOLUTION=320x240\n\
             index.m3u8\n"
        );
    }

    #[test]
    fn old_segments_are_listed_without_parts() {
        let text = render(&window(6));
        assert!(!text.contains("part0.0.m4s"), "{text}");
        assert!(!text.contains("part2.4.m4s"), "{text}");
        assert!(text.contains("part3.0.m4s"), "{text}");
        assert!(text.contains("seg0.m4s"), "{text}");
        assert_eq!(text.matches("#EXTINF").count(), 6);
    }
}
