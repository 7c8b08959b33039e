//! The exec source, the seed's plugin door: any program that writes a
//! stream to its stdout (MPEG-TS with H.264 or H.265 + AAC, or raw H.264
//! or H.265 Annex B)
//! feeds the stream. The child runs in a process group of its own
//! ([`process`]); its stderr goes to the log and its last lines
//! become the stream's error; a child that exits, or sends no frame for
//! `stall_seconds`, is stopped and the supervisor starts it again.
//!
//! The demuxing is pure ([`crate::media::mpegts`], [`crate::media::annexb`],
//! [`crate::media::adts`]); [`frames`] turns what they give into the
//! stream's frames and parameters, on the stream's timeline.

mod frames;
pub mod process;

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

use super::{Sink, Source, SourceFuture};
use crate::config::{ExecFormat, ExecSourceConfig};
use crate::media::annexb::VideoCodec;
use frames::{AnnexBInput, TsInput};
use process::ExecProcess;

/// Bytes read from the child's stdout at a time.
const READ_SIZE: usize = 64 * 1024;

pub struct ExecSource {
    config: ExecSourceConfig,
}

impl ExecSource {
    pub fn new(config: ExecSourceConfig) -> Self {
        Self { config }
    }
}

impl Source for ExecSource {
    fn run<'a>(&'a self, sink: &'a Sink) -> SourceFuture<'a> {
        Box::pin(run(sink, &self.config))
    }
}

/// What turns the child's bytes into frames.
enum Input {
    Ts(TsInput),
    AnnexB(AnnexBInput),
}

impl Input {
    fn push(&mut self, data: &[u8], sink: &Sink) -> Result<usize> {
        match self {
            Input::Ts(t) => t.push(data, sink),
            Input::AnnexB(a) => a.push(data, sink),
        }
    }
}

async fn run(sink: &Sink, config: &ExecSourceConfig) -> Result<()> {
    let env: Vec<(String, String)> = config
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut child = ExecProcess::spawn(sink.stream(), &config.command, &env)
        .with_context(|| format!("cannot start `{}`", config.command.join(" ")))?;
    tracing::info!(
        stream = sink.stream(),
        pid = child.pid(),
        "exec source started: {}",
        config.command.join(" ")
    );
    let mut input = match config.format {
        ExecFormat::Mpegts => Input::Ts(TsInput::new(sink.epoch())),
        ExecFormat::H264 => Input::AnnexB(AnnexBInput::new(
            sink.epoch(),
            VideoCodec::H264,
            config.fps.unwrap_or(30),
        )),
        ExecFormat::H265 => Input::AnnexB(AnnexBInput::new(
            sink.epoch(),
            VideoCodec::H265,
            config.fps.unwrap_or(30),
        )),
    };
    let result = pump(&mut child, &mut input, sink, config).await;
    // Stopped first: the child's last stderr lines are in by then.
    let status = child.stop().await;
    let stderr = child.last_error();
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            let tail = stderr.lines().last().unwrap_or("").trim().to_owned();
            if tail.is_empty() {
                Err(e.context(format!("exec source ({status})")))
            } else {
                Err(e.context(format!("exec source ({status}); stderr: {tail}")))
            }
        }
    }
}

/// Reads the child's stdout until the sink is cancelled (`Ok`), the child
/// closes it, or no frame came for `stall_seconds`.
async fn pump(
    child: &mut ExecProcess,
    input: &mut Input,
    sink: &Sink,
    config: &ExecSourceConfig,
) -> Result<()> {
    let stall = Duration::from_secs(u64::from(config.stall_seconds));
    let mut buf = vec![0u8; READ_SIZE];
    let mut last_frame = Instant::now();
    let mut check = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            read = child.read(&mut buf) => {
                let n = read.context("reading the program's output")?;
                if n == 0 {
                    return Err(anyhow!("the program closed its output"));
                }
                if input.push(&buf[..n], sink)? > 0 {
                    last_frame = Instant::now();
                }
            }
            _ = check.tick() => {
                if last_frame.elapsed() >= stall {
                    return Err(anyhow!("no frame for {} s", config.stall_seconds));
                }
            }
            _ = sink.cancelled() => return Ok(()),
        }
    }
}
