//! The pull source (proxy mode): another camera or agent over RTSP, made a
//! local stream, through `retina` (the RTSP client Moonfire NVR uses).
//!
//! - H.264, H.265 and AAC tracks are taken; G.711 and anything else is
//!   dropped with a log line that says so (no output carries it yet).
//! - Timestamps: the streams' RTP times (aligned by the PLAY's RTP-Info) are
//!   pinned to the arrival of the first frame on the stream's timeline; the
//!   camera's wall clock (RTCP SR) is not trusted for anything.
//! - New parameter sets mid-stream go through the ring like any change.
//! - The supervisor reconnects with backoff when the session fails, ends
//!   or sends no frame for `stall_seconds`.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use retina::client::{
    Credentials, InitialTimestampPolicy, PlayOptions, Session, SessionOptions, SetupOptions,
    Transport,
};
use retina::codec::{CodecItem, ParametersRef, VideoParametersCodec};

use super::{Sink, Source, SourceFuture};
use crate::config::{PullTransport, RtspSourceConfig};
use crate::media::aac::AacParams;
use crate::media::h264::H264Params;
use crate::media::h265::{self, H265Params};
use crate::media::jpeg::JpegParams;
use crate::media::{ticks_since, Frame, TrackInfo, TrackParams};

pub struct PullSource {
    config: RtspSourceConfig,
}

impl PullSource {
    pub fn new(config: RtspSourceConfig) -> Self {
        Self { config }
    }
}

impl Source for PullSource {
    fn run<'a>(&'a self, sink: &'a Sink) -> SourceFuture<'a> {
        Box::pin(async move {
            tokio::select! {
                r = run(sink, &self.config) => r,
                _ = sink.cancelled() => Ok(()),
            }
        })
    }
}

/// The URL without credentials, and the credentials (from the URL or the
/// config's keys).
fn target(config: &RtspSourceConfig) -> Result<(url::Url, Option<Credentials>)> {
    let mut url = url::Url::parse(&config.url).with_context(|| format!("url {}", config.url))?;
    let mut creds = None;
    if !url.username().is_empty() {
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        creds = Some(Credentials {
            username: decode(url.username()),
            password: decode(url.password().unwrap_or("")),
        });
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    if let Some(username) = &config.username {
        creds = Some(Credentials {
            username: username.clone(),
            password: config.password.clone().unwrap_or_default(),
        });
    }
    Ok((url, creds))
}

/// Where a camera's stream goes among the stream's tracks.
struct Mapped {
    /// Our track index, by retina stream index.
    by_stream: Vec<Option<usize>>,
    params: Vec<Option<TrackParams>>,
    clock_rates: Vec<u32>,
    announced: Option<Vec<TrackInfo>>,
}

impl Mapped {
    /// Announces once every track has its parameters, and on change.
    fn announce(&mut self, sink: &Sink) -> bool {
        let mut tracks = Vec::new();
        for (p, rate) in self.params.iter().zip(&self.clock_rates) {
            let Some(p) = p else { return false };
            tracks.push(TrackInfo {
                params: p.clone(),
                clock_rate: *rate,
            });
        }
        if self.announced.as_ref() != Some(&tracks) {
            sink.params(tracks.clone());
            self.announced = Some(tracks);
        }
        true
    }
}

fn video_params(p: Option<ParametersRef<'_>>) -> Option<TrackParams> {
    let Some(ParametersRef::Video(v)) = p else {
        return None;
    };
    let (width, height) = v.pixel_dimensions();
    Some(match v.codec_params() {
        VideoParametersCodec::H264 { sps, pps } => TrackParams::H264(H264Params {
            sps: sps.clone(),
            pps: pps.clone(),
            width,
            height,
        }),
        VideoParametersCodec::H265 { vps, sps, pps } => TrackParams::H265(H265Params {
            vps: vps.clone(),
            sps: sps.clone(),
            pps: pps.clone(),
            width,
            height,
        }),
        // retina rebuilds whole JPEG pictures (RFC 2435 appendix B).
        VideoParametersCodec::Jpeg => TrackParams::Jpeg(JpegParams { width, height }),
        _ => return None,
    })
}

fn audio_params(p: Option<ParametersRef<'_>>) -> Option<TrackParams> {
    let Some(ParametersRef::Audio(a)) = p else {
        return None;
    };
    Some(TrackParams::Aac(AacParams {
        config: Bytes::copy_from_slice(a.extra_data()),
        sample_rate: a.clock_rate(),
        channels: a.channels().get(),
    }))
}

async fn run(sink: &Sink, config: &RtspSourceConfig) -> Result<()> {
    let (url, creds) = target(config)?;
    let options = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("StreamSwitch/{}", env!("CARGO_PKG_VERSION")));
    let mut session = Session::describe(url.clone(), options)
        .await
        .with_context(|| format!("DESCRIBE {url}"))?;
    let transport = match config.transport {
        PullTransport::Tcp => Transport::Tcp(Default::default()),
        PullTransport::Udp => Transport::Udp(Default::default()),
    };
    let mut by_stream = vec![None; session.streams().len()];
    let (mut video, mut audio) = (None, None);
    for (i, s) in session.streams().iter().enumerate() {
        let encoding = s.encoding_name().to_ascii_lowercase();
        match (s.media(), encoding.as_str()) {
            ("video", "h264" | "h265" | "jpeg") if video.is_none() => video = Some(i),
            ("audio", "mpeg4-generic") if audio.is_none() => audio = Some(i),
            (media, _) => tracing::info!(
                stream = sink.stream(),
                "pull: {media} track {i} ({encoding}) dropped: no output carries it"
            ),
        }
    }
    if video.is_none() && audio.is_none() {
        bail!("{url} has no H.264, H.265, MJPEG or AAC track");
    }
    let mut mapped = Mapped {
        by_stream: Vec::new(),
        params: Vec::new(),
        clock_rates: Vec::new(),
        announced: None,
    };
    for (i, kind) in [(video, true), (audio, false)]
        .into_iter()
        .filter_map(|(i, v)| i.map(|i| (i, v)))
    {
        session
            .setup(i, SetupOptions::default().transport(transport.clone()))
            .await
            .with_context(|| format!("SETUP of track {i} of {url}"))?;
        by_stream[i] = Some(mapped.params.len());
        let s = &session.streams()[i];
        if kind {
            mapped.params.push(video_params(s.parameters()));
            mapped.clock_rates.push(90_000);
        } else {
            let p = audio_params(s.parameters());
            mapped.clock_rates.push(s.clock_rate_hz().max(1));
            mapped.params.push(p);
        }
    }
    mapped.by_stream = by_stream;
    let playing = session
        .play(PlayOptions::default().initial_timestamp(InitialTimestampPolicy::Default))
        .await
        .with_context(|| format!("PLAY {url}"))?;
    let mut demuxed = playing.demuxed().context("demuxing")?;
    tracing::info!(stream = sink.stream(), "pulling {url}");
    let stall = Duration::from_secs(u64::from(config.stall_seconds));
    let mut pin: Option<(i128, i64)> = None;
    loop {
        let item = match tokio::time::timeout(stall, demuxed.next()).await {
            Err(_) => bail!("no frame for {} s from {url}", config.stall_seconds),
            Ok(None) => bail!("{url} ended the session"),
            Ok(Some(item)) => item.with_context(|| format!("from {url}"))?,
        };
        let (stream_id, timestamp, key, data, new_params) = match item {
            CodecItem::VideoFrame(f) => {
                let new = f.has_new_parameters();
                let (id, ts, key) = (f.stream_id(), f.timestamp(), f.is_random_access_point());
                (id, ts, key, Bytes::from(f.into_data()), new)
            }
            CodecItem::AudioFrame(f) => (
                f.stream_id(),
                f.timestamp(),
                true,
                Bytes::copy_from_slice(f.data()),
                false,
            ),
            _ => continue,
        };
        let Some(track) = mapped.by_stream.get(stream_id).copied().flatten() else {
            continue;
        };
        if new_params {
            if let Some(p) = video_params(demuxed.streams()[stream_id].parameters()) {
                mapped.params[track] = Some(p);
            }
        }
        if mapped.params[track].is_none() {
            let s = &demuxed.streams()[stream_id];
            mapped.params[track] = if Some(stream_id) == video {
                video_params(s.parameters())
            } else {
                audio_params(s.parameters())
            };
        }
        if !mapped.announce(sink) {
            continue;
        }
        // Keyframes are told by their NAL units: retina's random-access flag
        // is not set for every kind of H.265 IRAP picture.
        let key = match &mapped.params[track] {
            Some(TrackParams::H264(_)) => key || has_nal(&data, |n| n[0] & 0x1f == 5),
            Some(TrackParams::H265(_)) => has_nal(&data, |n| h265::is_irap((n[0] >> 1) & 0x3f)),
            _ => key,
        };
        let rate = mapped.clock_rates[track];
        let npt_ns = npt_nanos(timestamp.elapsed(), timestamp.clock_rate());
        let (pin_npt, pin_ns) = *pin.get_or_insert_with(|| {
            let now = ticks_since(sink.epoch(), Instant::now(), 1_000_000_000);
            (npt_ns, now)
        });
        let ns = pin_ns as i128 + (npt_ns - pin_npt);
        let ticks = (ns * i128::from(rate) / 1_000_000_000) as i64;
        sink.frame(Frame {
            track,
            pts: ticks,
            dts: ticks,
            key,
            data,
        });
    }
}

/// True when a NAL unit of the length-prefixed access unit satisfies `f`.
fn has_nal(au: &Bytes, f: impl Fn(&[u8]) -> bool) -> bool {
    crate::media::h264::nal_units(au).any(|n| !n.is_empty() && f(&n))
}

/// Nanoseconds of `elapsed` ticks of `rate`.
fn npt_nanos(elapsed: i64, rate: NonZeroU32) -> i128 {
    i128::from(elapsed) * 1_000_000_000 / i128::from(rate.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> RtspSourceConfig {
        crate::config::Config::parse(
            &format!(
                "[agent]\ndevice_id = \"x\"\n[[stream]]\nname = \"a\"\nsource = {{ kind = \"rtsp\", url = \"{url}\" }}\n"
            ),
            std::path::Path::new("x.toml"),
        )
        .map(|c| match &c.streams[0].source {
            crate::config::SourceConfig::Rtsp(r) => r.clone(),
            _ => panic!("not rtsp"),
        })
        .unwrap()
    }

    #[test]
    fn credentials_come_out_of_the_url() {
        let (url, creds) = target(&config("rtsp://ad%40min:p%3Ass@cam.lan:554/live")).unwrap();
        assert_eq!(url.as_str(), "rtsp://cam.lan:554/live");
        let creds = creds.unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("ad@min", "p:ss")
        );
        let (_, none) = target(&config("rtsp://cam.lan/live")).unwrap();
        assert!(none.is_none());
    }

    #[test]
    fn ticks_follow_the_npt() {
        let rate = NonZeroU32::new(90_000).unwrap();
        assert_eq!(npt_nanos(90_000, rate), 1_000_000_000);
        assert_eq!(npt_nanos(-45_000, rate), -500_000_000);
    }
}
