//! The capture pipeline every local source runs: a camera's pictures
//! (coded H.264 passed through; MJPEG decoded and raw converted to I420,
//! then encoded) and a microphone's PCM (AAC-encoded) onto the hub, on two
//! threads of their own so that device waits never stall the reactor.
//! The devices come from hal: a V4L2 camera and an ALSA microphone, or the
//! test pattern camera and the tone microphone of the built-in test source.

mod audio;
pub mod convert;
mod timeline;
mod video;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use anyhow::{anyhow, Context, Result};
use streamswitch_hal::{AudioCapture, AudioEncoder, VideoCapture, VideoEncoder};

use super::Sink;

/// A camera, and the encoder for its pictures (`None`: it gives H.264).
pub struct VideoInput {
    pub capture: Box<dyn VideoCapture>,
    pub encoder: Option<Box<dyn VideoEncoder>>,
}

pub struct AudioInput {
    pub capture: Box<dyn AudioCapture>,
    pub encoder: Box<dyn AudioEncoder>,
}

/// Opens the devices (on the capture thread: opening may block).
pub type Open = Box<dyn FnOnce() -> Result<(VideoInput, Option<AudioInput>)> + Send>;

/// Runs the pipeline until the sink is cancelled (`Ok`) or a device or
/// an encoder fails.
pub async fn run(sink: &Sink, open: Open) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Result<()>>(1);
    let worker = {
        let (sink, stop) = (sink.clone(), stop.clone());
        thread::Builder::new()
            .name(format!("capture-{}", sink.stream()))
            .spawn(move || {
                let result = open().and_then(|(v, a)| video::run(&sink, v, a, &stop));
                let _ = done_tx.blocking_send(result);
            })
            .context("starting the capture thread")?
    };
    let result = tokio::select! {
        r = done_rx.recv() => r.unwrap_or(Ok(())),
        _ = sink.cancelled() => Ok(()),
    };
    stop.store(true, Ordering::Relaxed);
    // A device read returns within its timeout (2 s at most), then the
    // thread sees `stop` and lets go of the devices before this returns.
    tokio::task::spawn_blocking(move || worker.join())
        .await
        .map_err(|e| anyhow!("capture thread: {e}"))?
        .map_err(|_| anyhow!("capture thread panicked"))?;
    result
}
