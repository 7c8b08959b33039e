//! The microphone's loop: PCM periods, AAC-encoded, stamped from the
//! device's capture times.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use bytes::Bytes;

use super::timeline::Timeline;
use super::AudioInput;
use crate::media::aac::AacParams;
use crate::media::{Frame, TrackInfo, TrackParams};
use crate::source::Sink;

/// The track the microphone's frames go to.
pub const TRACK: usize = 1;
/// A capture time this far from the sample count's reckoning means samples
/// were lost (an overrun): the count starts again from the device's time.
const RESYNC_TICKS_PER_SECOND: i64 = 10;

pub fn track_info(input: &AudioInput) -> TrackInfo {
    let format = input.capture.format();
    let mut params = AacParams::lc(format.rate, format.channels);
    params.config = Bytes::copy_from_slice(input.encoder.audio_specific_config());
    TrackInfo {
        params: TrackParams::Aac(params),
        clock_rate: format.rate,
    }
}

pub fn run(sink: &Sink, mut input: AudioInput, stop: &AtomicBool) -> Result<()> {
    let format = input.capture.format();
    let rate = format.rate;
    let timeline = Timeline::new(sink.epoch());
    let frames = input.encoder.frame_samples();
    let mut pcm = vec![0i16; frames * format.channels.max(1) as usize];
    // Ticks of the first sample of the current run, samples read and
    // AAC frames written since.
    let (mut start, mut read, mut written) = (None::<i64>, 0i64, 0i64);
    let mut overruns = 0;
    while !stop.load(Ordering::Relaxed) {
        let captured = input.capture.read(&mut pcm).context("microphone")?;
        let now_overruns = input.capture.overruns();
        if now_overruns > overruns {
            sink.capture_overruns(now_overruns - overruns);
            overruns = now_overruns;
        }
        let t = timeline.ticks(captured, rate);
        let expected = start.map(|s| s + read);
        if expected.is_none_or(|e| (t - e).abs() > i64::from(rate) / RESYNC_TICKS_PER_SECOND) {
            // Keep the track's time moving forward across the jump.
            let floor = start.map_or(i64::MIN, |s| s + written);
            start = Some(t.max(floor));
            read = 0;
            written = 0;
        }
        read += frames as i64;
        let au = input.encoder.encode(&pcm).context("AAC encoder")?;
        if au.is_empty() {
            continue;
        }
        let pts = start.unwrap_or(t) + written;
        sink.frame(Frame {
            track: TRACK,
            pts,
            dts: pts,
            key: true,
            data: Bytes::from(au),
        });
        written += frames as i64;
    }
    Ok(())
}
