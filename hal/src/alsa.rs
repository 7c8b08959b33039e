//! ALSA microphones: a named capture PCM (`hw:1,0`, `plughw:...`,
//! `default`), S16_LE interleaved, timestamps from ALSA's monotonic
//! clock, overruns recovered and counted.

use std::ffi::CString;
use std::io;
use std::time::Duration;

use ::alsa::device_name::HintIter;
use ::alsa::pcm::{Access, Format, Frames, HwParams, TstampType, PCM};
use ::alsa::{Direction, ValueOr};
use serde::Serialize;

use crate::audio::{AudioCapture, AudioFormat};
use crate::clock::{Clock, Monotonic};
use crate::HalError;

/// Frames per period asked of the device (about 21 ms at 48 kHz).
const PERIOD_FRAMES: Frames = 1024;
const PERIODS: u32 = 8;

#[derive(Debug, Clone, PartialEq)]
pub struct AlsaRequest {
    pub device: String,
    pub rate: u32,
    pub channels: u16,
}

pub struct AlsaCapture {
    name: String,
    pcm: PCM,
    format: AudioFormat,
    overruns: u64,
}

fn device_error(device: &str, op: &str, e: ::alsa::Error) -> HalError {
    HalError::device(device, op, io::Error::from_raw_os_error(e.errno()))
}

impl AlsaCapture {
    pub fn open(request: &AlsaRequest) -> Result<Self, HalError> {
        let name = request.device.clone();
        let pcm = PCM::new(&name, Direction::Capture, false)
            .map_err(|e| device_error(&name, "opening for capture", e))?;
        {
            let hw = HwParams::any(&pcm)
                .map_err(|e| device_error(&name, "reading its parameters", e))?;
            hw.set_access(Access::RWInterleaved)
                .map_err(|e| device_error(&name, "setting interleaved access", e))?;
            hw.set_format(Format::s16())
                .map_err(|e| device_error(&name, "setting S16_LE (try plughw:)", e))?;
            hw.set_channels(request.channels as u32).map_err(|e| {
                device_error(
                    &name,
                    &format!("setting {} channels (try plughw:)", request.channels),
                    e,
                )
            })?;
            hw.set_rate(request.rate, ValueOr::Nearest).map_err(|e| {
                device_error(
                    &name,
                    &format!("setting {} Hz (try plughw:)", request.rate),
                    e,
                )
            })?;
            hw.set_period_size_near(PERIOD_FRAMES, ValueOr::Nearest)
                .map_err(|e| device_error(&name, "setting the period", e))?;
            hw.set_periods_near(PERIODS, ValueOr::Nearest)
                .map_err(|e| device_error(&name, "setting the buffer", e))?;
            pcm.hw_params(&hw)
                .map_err(|e| device_error(&name, "applying its parameters", e))?;
        }
        {
            let sw = pcm
                .sw_params_current()
                .map_err(|e| device_error(&name, "reading its software parameters", e))?;
            // Timestamps on the clock V4L2 uses, so audio and video line up.
            sw.set_tstamp_mode(true)
                .and_then(|_| sw.set_tstamp_type(TstampType::Monotonic))
                .and_then(|_| pcm.sw_params(&sw))
                .map_err(|e| device_error(&name, "asking for monotonic timestamps", e))?;
        }
        pcm.start()
            .map_err(|e| device_error(&name, "starting", e))?;
        Ok(Self {
            name,
            pcm,
            format: AudioFormat {
                rate: request.rate,
                channels: request.channels,
            },
            overruns: 0,
        })
    }

    /// When the first of the `frames` just read was captured: ALSA's
    /// timestamp of its last pointer update, less what was captured by
    /// then (still unread, then just read).
    fn capture_time(&self, frames: usize) -> Duration {
        let rate = self.format.rate as u64;
        // Frames is a C long: 32 bits on armv7.
        let span = |n: Frames| Duration::from_nanos(n.max(0) as u64 * 1_000_000_000 / rate);
        if let Ok(status) = self.pcm.status() {
            let ts = status.get_htstamp();
            if ts.tv_sec > 0 || ts.tv_nsec > 0 {
                let at = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
                return at.saturating_sub(span(status.get_avail() + frames as Frames));
            }
        }
        let delay = self.pcm.delay().unwrap_or(0);
        Monotonic
            .now()
            .saturating_sub(span(delay + frames as Frames))
    }
}

impl AudioCapture for AlsaCapture {
    fn format(&self) -> AudioFormat {
        self.format
    }

    fn read(&mut self, pcm: &mut [i16]) -> Result<Duration, HalError> {
        let channels = self.format.channels.max(1) as usize;
        let frames = pcm.len() / channels;
        let io = self
            .pcm
            .io_i16()
            .map_err(|e| device_error(&self.name, "reading", e))?;
        let mut done = 0;
        while done < frames {
            match io.readi(&mut pcm[done * channels..frames * channels]) {
                Ok(n) => done += n,
                // An overrun: samples were lost. Start again; the caller
                // sees the jump in the timestamps.
                Err(e) if e.errno() == libc::EPIPE => {
                    self.overruns += 1;
                    self.pcm
                        .prepare()
                        .and_then(|_| self.pcm.start())
                        .map_err(|e| device_error(&self.name, "recovering from an overrun", e))?;
                    done = 0;
                }
                Err(e) if e.errno() == libc::ESTRPIPE || e.errno() == libc::EINTR => {
                    self.pcm
                        .try_recover(e, true)
                        .map_err(|e| device_error(&self.name, "resuming", e))?;
                }
                Err(e) => return Err(device_error(&self.name, "reading", e)),
            }
        }
        Ok(self.capture_time(frames))
    }

    fn overruns(&self) -> u64 {
        self.overruns
    }
}

/// A capture PCM as `arecord -L` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct AudioDeviceInfo {
    pub name: String,
    pub description: String,
}

/// The PCMs alsa-lib knows that can capture.
pub fn list_audio_devices() -> Vec<AudioDeviceInfo> {
    let Ok(pcm) = CString::new("pcm") else {
        return Vec::new();
    };
    let Ok(hints) = HintIter::new(None, &pcm) else {
        return Vec::new();
    };
    hints
        .filter(|h| h.direction.is_none_or(|d| d == Direction::Capture))
        .filter_map(|h| {
            Some(AudioDeviceInfo {
                name: h.name?,
                description: h.desc.unwrap_or_default().replace('\n', " / "),
            })
        })
        .collect()
}
