//! The writer against an independent reader: real H.264 and AAC from the
//! encoders in hal/, written to a file and checked with ffprobe/ffmpeg.

use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use streamswitch_hal::{
    AacEncoder, AacEncoderConfig, AudioEncoder, H264Encoder, H264EncoderConfig, I420Image,
    VideoEncoder,
};

use super::*;
use crate::media::aac::AacParams;
use crate::media::h264::{self, H264Params};
use crate::media::{Frame, StreamInfo, TrackInfo, TrackParams};

const FPS: i64 = 25;
const W: u32 = 320;
const H: u32 = 240;

/// `seconds` of 25 fps video (an IDR every second) and 48 kHz AAC, in
/// decode order, interleaved as a live source would deliver them.
fn media(seconds: i64) -> (StreamInfo, Vec<Frame>) {
    let mut video = H264Encoder::new(H264EncoderConfig {
        width: W,
        height: H,
        fps: FPS as u32,
        bitrate_bps: 300_000,
        keyframe_interval: FPS as u32,
    })
    .unwrap();
    let mut audio = AacEncoder::new(AacEncoderConfig {
        sample_rate: 48_000,
        channels: 1,
        bitrate_bps: 64_000,
    })
    .unwrap();
    let mut frames = Vec::new();
    let mut params = None;
    for n in 0..seconds * FPS {
        let shade = (n * 7 % 200) as u8 + 16;
        let mut data = vec![shade; (W * H * 3 / 2) as usize];
        data[(n as usize * 97) % (W * H) as usize] = 255;
        if n > 0 && n % FPS == 0 {
            video.force_keyframe();
        }
        let pic = video
            .encode(&I420Image {
                width: W,
                height: H,
                data: &data,
            })
            .unwrap();
        if params.is_none() {
            let find = |k: u8| {
                pic.nals
                    .iter()
                    .find(|n| n[0] & 0x1f == k)
                    .map(|n| Bytes::copy_from_slice(n))
                    .unwrap()
            };
            params = Some(H264Params {
                sps: find(h264::NAL_SPS),
                pps: find(h264::NAL_PPS),
                width: W,
                height: H,
            });
        }
        let pts = n * 90_000 / FPS;
        frames.push(Frame {
            track: 0,
            pts,
            dts: pts,
            key: pic.keyframe,
            data: h264::length_prefixed(pic.nals.iter().map(Vec::as_slice)),
        });
    }
    let samples = audio.frame_samples();
    let pcm: Vec<i16> = (0..samples)
        .map(|i| ((i as f32 * 0.13).sin() * 8000.0) as i16)
        .collect();
    let mut written = 0i64;
    let mut audio_frames = Vec::new();
    while written < seconds * 48_000 {
        let au = audio.encode(&pcm).unwrap();
        if au.is_empty() {
            continue;
        }
        audio_frames.push(Frame {
            track: 1,
            pts: written,
            dts: written,
            key: true,
            data: Bytes::from(au),
        });
        written += samples as i64;
    }
    let mut asc = AacParams::lc(48_000, 1);
    asc.config = Bytes::copy_from_slice(audio.audio_specific_config());
    frames.extend(audio_frames);
    // Interleave by capture time.
    frames.sort_by_key(|f| {
        if f.track == 0 {
            f.dts * 1_000_000 / 90_000
        } else {
            f.dts * 1_000_000 / 48_000
        }
    });
    let info = StreamInfo {
        tracks: vec![
            TrackInfo {
                params: TrackParams::H264(params.unwrap()),
                clock_rate: 90_000,
            },
            TrackInfo {
                params: TrackParams::Aac(asc),
                clock_rate: 48_000,
            },
        ],
        epoch: Instant::now(),
    };
    (info, frames)
}

/// Cuts a fragment at each video frame once `part` seconds are ready, or
/// only at keyframes when `at_keys`.
fn fragments(info: &StreamInfo, frames: &[Frame], part: f64, at_keys: bool) -> Vec<Fragment> {
    let mut b = FragmentBuilder::new(info, Timeline::ZeroAtFirstFrame).unwrap();
    let mut out = Vec::new();
    for f in frames {
        let video = f.track == 0;
        b.push(f.clone()).unwrap();
        if video && b.ready_secs() >= part && (!at_keys || f.key) {
            out.extend(b.cut().unwrap());
        }
    }
    let end = frames.iter().filter(|f| f.track == 0).last().unwrap().dts + 90_000 / FPS;
    out.extend(b.finish(Some(end)).unwrap());
    out
}

fn write_file(path: &Path, header: &[u8], frags: &[Fragment]) {
    let mut bytes = header.to_vec();
    for f in frags {
        bytes.extend_from_slice(&f.bytes);
    }
    std::fs::write(path, bytes).unwrap();
}

fn ffmpeg_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg is installed (tests/setup.sh)");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ffprobe_duration(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn ffprobe_streams(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height,sample_rate,nb_read_frames",
            "-count_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn one_second_fragments_decode_and_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let (info, frames) = media(4);
    let frags = fragments(&info, &frames, 1.0, true);
    assert_eq!(frags.len(), 4, "one fragment per second of keyframes");
    for (i, f) in frags.iter().enumerate() {
        assert!(f.starts_with_key, "fragment {i} starts with a sync sample");
        assert_eq!(f.sequence, i as u32 + 1);
        assert_eq!(f.duration, 90_000);
        assert_eq!(f.start, i as u64 * 90_000);
    }
    let total: f64 = frags.iter().map(Fragment::duration_secs).sum();
    assert!((total - 4.0).abs() < 1e-9, "{total}");
    let path = dir.path().join("a.mp4");
    write_file(&path, &init_segment(&info, None).unwrap(), &frags);
    assert_eq!(ffmpeg_errors(&path), "");
    let streams = ffprobe_streams(&path);
    assert!(streams.contains("h264,320,240,100"), "{streams}");
    assert!(streams.contains("aac,48000"), "{streams}");
    let d = ffprobe_duration(&path);
    assert!((d - 4.0).abs() < 0.05, "ffprobe duration {d}");
}

#[test]
fn short_parts_cut_at_any_frame_keep_every_sample() {
    let dir = tempfile::tempdir().unwrap();
    let (info, frames) = media(3);
    let frags = fragments(&info, &frames, 0.2, false);
    assert!(frags.len() >= 14, "{} parts", frags.len());
    assert_eq!(frags.iter().filter(|f| f.starts_with_key).count(), 3);
    for w in frags.windows(2) {
        assert_eq!(
            w[0].start + w[0].duration,
            w[1].start,
            "parts are contiguous"
        );
        assert_eq!(w[0].sequence + 1, w[1].sequence);
    }
    let media_in: usize = frames.iter().map(|f| f.data.len()).sum();
    let media_out: usize = frags.iter().map(|f| f.media_bytes).sum();
    assert_eq!(media_in, media_out);
    let path = dir.path().join("b.mp4");
    write_file(&path, &init_segment(&info, None).unwrap(), &frags);
    assert_eq!(ffmpeg_errors(&path), "");
    assert!(ffprobe_streams(&path).contains("h264,320,240,75"));
}

#[test]
fn stream_timeline_keeps_the_frames_decode_times() {
    let (info, frames) = media(2);
    let mut b = FragmentBuilder::new(&info, Timeline::Stream).unwrap();
    b.set_next_sequence(40);
    for f in frames
        .iter()
        .skip_while(|f| !(f.track == 0 && f.dts >= 90_000))
    {
        b.push(f.clone()).unwrap();
    }
    let f = b.finish(None).unwrap().unwrap();
    assert_eq!(f.start, 90_000);
    assert_eq!(f.sequence, 40);
    assert_eq!(b.next_sequence(), 41);
    assert!(f.starts_with_key);
    assert!(b.cut().unwrap().is_none());
}

#[test]
fn bad_input_gives_errors() {
    let (info, _) = media(1);
    let mut b = FragmentBuilder::new(&info, Timeline::Stream).unwrap();
    let e = b
        .push(Frame {
            track: 7,
            pts: 0,
            dts: 0,
            key: true,
            data: Bytes::new(),
        })
        .unwrap_err();
    assert!(matches!(e, Error::NoSuchTrack { track: 7, .. }));
    let empty = StreamInfo {
        tracks: vec![],
        epoch: Instant::now(),
    };
    assert!(matches!(init_segment(&empty, None), Err(Error::NoTracks)));
    assert!(scan(&mut Cursor::new(b"garbage".to_vec())).is_err());
}

#[test]
fn scan_finds_the_torn_fragment_and_the_duration_is_rewritten_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (info, frames) = media(3);
    let frags = fragments(&info, &frames, 1.0, true);
    let init = init_segment(&info, None).unwrap();
    let header = padded_init_segment(&info, None, init.len() + 64).unwrap();
    let mut bytes = header.to_vec();
    for f in &frags {
        bytes.extend_from_slice(&f.bytes);
    }
    let whole = bytes.len() as u64;
    // A crash in the middle of the last fragment.
    bytes.truncate(bytes.len() - frags[2].bytes.len() / 2);
    let s = scan(&mut Cursor::new(&bytes)).unwrap();
    assert_eq!(s.header_len, header.len() as u64);
    assert_eq!(s.fragments.len(), 2);
    assert_eq!(s.complete_len, whole - frags[2].bytes.len() as u64);
    assert!(!s.is_closed());
    assert!(
        (s.media_duration.as_secs_f64() - 2.0).abs() < 0.03,
        "{:?}",
        s.media_duration
    );
    assert_eq!(s.declared_duration, Duration::ZERO);

    bytes.truncate(s.complete_len as usize);
    let fixed = with_duration(&bytes[..s.header_len as usize], s.media_duration).unwrap();
    assert_eq!(fixed.len(), header.len());
    bytes[..fixed.len()].copy_from_slice(&fixed);
    let s2 = scan(&mut Cursor::new(&bytes)).unwrap();
    assert!(s2.is_closed(), "{s2:?}");
    assert_eq!(s2.fragments.len(), 2);
    assert_eq!(
        s2.moov
            .mvex
            .as_ref()
            .unwrap()
            .mehd
            .as_ref()
            .unwrap()
            .fragment_duration,
        s.media_duration.as_millis() as u64
    );

    let path = dir.path().join("c.mp4");
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(ffmpeg_errors(&path), "");
    let d = ffprobe_duration(&path);
    assert!((d - 2.0).abs() < 0.05, "ffprobe duration {d}");
}

#[test]
fn header_without_room_is_refused() {
    let (info, _) = media(1);
    let init = init_segment(&info, None).unwrap();
    assert!(matches!(
        padded_init_segment(&info, None, init.len() + 4),
        Err(Error::NoRoom { .. })
    ));
    let tight = padded_init_segment(&info, None, init.len() + 8).unwrap();
    assert!(matches!(
        with_duration(&tight, Duration::from_secs(5)),
        Err(Error::NoRoom { .. })
    ));
}

#[test]
fn single_track_streams_work_too() {
    let dir = tempfile::tempdir().unwrap();
    let (info, frames) = media(2);
    for keep in [0usize, 1] {
        let single = StreamInfo {
            tracks: vec![info.tracks[keep].clone()],
            epoch: info.epoch,
        };
        let own: Vec<Frame> = frames
            .iter()
            .filter(|f| f.track == keep)
            .map(|f| Frame {
                track: 0,
                ..f.clone()
            })
            .collect();
        let mut b = FragmentBuilder::new(&single, Timeline::ZeroAtFirstFrame).unwrap();
        let mut frags = Vec::new();
        for f in own {
            b.push(f).unwrap();
            if b.ready_secs() >= 0.5 {
                frags.extend(b.cut().unwrap());
            }
        }
        frags.extend(b.finish(None).unwrap());
        assert!(frags.iter().all(|f| f.starts_with_key || keep == 0));
        let total: f64 = frags.iter().map(Fragment::duration_secs).sum();
        assert!((total - 2.0).abs() < 0.05, "track {keep}: {total} s");
        let path = dir.path().join(format!("single{keep}.mp4"));
        write_file(&path, &init_segment(&single, None).unwrap(), &frags);
        assert_eq!(ffmpeg_errors(&path), "", "track {keep}");
    }
}
