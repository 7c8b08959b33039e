//! The stream manager: the one owner of every stream's hub, source task
//! and recorder, and of the running config. [`Control::apply`] diffs a new
//! config against the running one and touches only what changed; the
//! command set ([`commands`]) is what the HTTP API, SIGHUP and MQTT call.
//!
//! Servers are not owned here: the RTSP server and the HTTP server are
//! handed their listeners and settings by `app`, and this module sends
//! them new settings and new listeners through channels.

pub mod commands;
pub mod report;
mod streams;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, watch, Mutex};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use commands::{CommandError, StreamState};
use streams::RunningStream;

use crate::config::{persist, Config, ConfigError, HttpConfig, RtspConfig};
use crate::hls::Hls;
use crate::hub::Streams;
use crate::record::Recorders;

/// The channels through which the servers take new settings.
pub struct ServerLinks {
    pub rtsp_config: watch::Sender<RtspConfig>,
    pub rtsp_rebind: mpsc::Sender<std::net::TcpListener>,
    pub http_config: watch::Sender<HttpConfig>,
    pub http_rebind: mpsc::Sender<std::net::TcpListener>,
}

pub struct Control {
    streams: Arc<Streams>,
    hls: Arc<Hls>,
    recorders: Arc<Recorders>,
    links: ServerLinks,
    /// The file the config came from and is written back to.
    config_file: Option<PathBuf>,
    /// The running config, for readers that must not wait and for those
    /// that follow its changes (MQTT).
    config: watch::Sender<Arc<Config>>,
    /// Changes one at a time: apply, stream start/stop.
    state: Mutex<State>,
    /// Increases with every applied change.
    revision: AtomicU64,
    shutdown: CancellationToken,
    /// Set by the `restart` command: the agent stops, then starts again.
    restart: AtomicBool,
    started: std::time::Instant,
}

struct State {
    running: BTreeMap<String, RunningStream>,
    /// The text the config file holds now (what `persist` edits).
    file_text: String,
}

/// What an applied change did, for logs and replies.
#[derive(Debug, Default, serde::Serialize)]
pub struct Applied {
    pub revision: u64,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub restarted: Vec<String>,
    /// Sections other than streams that changed.
    pub sections: Vec<&'static str>,
}

impl Applied {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.restarted.is_empty()
            && self.sections.is_empty()
    }
}

impl Control {
    /// Starts every configured stream. Must be called inside the runtime.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        config: Config,
        config_file: Option<PathBuf>,
        file_text: String,
        streams: Arc<Streams>,
        hls: Arc<Hls>,
        recorders: Arc<Recorders>,
        links: ServerLinks,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let mut running = BTreeMap::new();
        for s in &config.streams {
            let r = RunningStream::start(s, &streams, &recorders, &shutdown);
            running.insert(s.name.clone(), r);
        }
        Arc::new(Self {
            streams,
            hls,
            recorders,
            links,
            config_file,
            config: watch::Sender::new(Arc::new(config)),
            state: Mutex::new(State { running, file_text }),
            revision: AtomicU64::new(1),
            shutdown,
            restart: AtomicBool::new(false),
            started: std::time::Instant::now(),
        })
    }

    pub fn streams(&self) -> &Arc<Streams> {
        &self.streams
    }

    pub fn hls(&self) -> &Arc<Hls> {
        &self.hls
    }

    pub fn recorders(&self) -> &Arc<Recorders> {
        &self.recorders
    }

    /// The running config.
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// Follows the running config.
    pub fn watch_config(&self) -> watch::Receiver<Arc<Config>> {
        self.config.subscribe()
    }

    /// Stops the agent so that it starts again (the `restart` command).
    pub fn request_restart(&self) {
        info!("restart requested");
        self.restart.store(true, Ordering::Relaxed);
        self.shutdown.cancel();
    }

    pub fn restart_requested(&self) -> bool {
        self.restart.load(Ordering::Relaxed)
    }

    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Relaxed)
    }

    /// Applies `new` (already validated) and, when `persist`, writes it to
    /// the config file first. Listeners are bound and the file written
    /// before anything changes, so a refusal leaves the agent as it was.
    pub async fn apply(&self, new: Config, persist: bool) -> Result<Applied, CommandError> {
        let mut state = self.state.lock().await;
        let old = self.config();
        if new.agent.data_dir != old.agent.data_dir {
            return Err(CommandError::Config(ConfigError {
                file: self.file_name(),
                line: None,
                key: Some("agent.data_dir".into()),
                message: "cannot change while the agent runs: restart it".into(),
            }));
        }
        let rtsp_listener = self.rebind(old.rtsp.listen, new.rtsp.listen, "rtsp.listen")?;
        let http_listener = self.rebind(old.http.listen, new.http.listen, "http.listen")?;
        if persist {
            if let Some(path) = &self.config_file {
                let text = persist::render(&state.file_text, &old, &new)
                    .map_err(CommandError::Internal)?;
                let (path, written) = (path.clone(), text.clone());
                tokio::task::spawn_blocking(move || persist::write_atomic(&path, &written))
                    .await
                    .map_err(|e| CommandError::Internal(e.to_string()))?
                    .map_err(|e| CommandError::Internal(format!("cannot save the config: {e}")))?;
                state.file_text = text;
            }
        }

        let mut applied = Applied::default();
        if let Some(l) = rtsp_listener {
            let _ = self.links.rtsp_rebind.send(l).await;
        }
        if let Some(l) = http_listener {
            let _ = self.links.http_rebind.send(l).await;
        }
        if new.rtsp != old.rtsp {
            self.links.rtsp_config.send_replace(new.rtsp.clone());
            applied.sections.push("rtsp");
        }
        if new.http != old.http {
            self.links.http_config.send_replace(new.http.clone());
            applied.sections.push("http");
        }
        if new.hls != old.hls {
            self.hls.set_config(new.hls.clone());
            applied.sections.push("hls");
        }
        if new.recording != old.recording {
            self.recorders.set_config(&new.recording);
            applied.sections.push("recording");
        }
        if new.agent != old.agent {
            applied.sections.push("agent");
        }
        self.apply_streams(&mut state, &new, &mut applied).await;
        applied.revision = self.revision.fetch_add(1, Ordering::Relaxed) + 1;
        if new.mqtt != old.mqtt {
            applied.sections.push("mqtt");
        }
        self.config.send_replace(Arc::new(new));
        if !applied.is_empty() {
            info!(
                revision = applied.revision,
                "config applied: added {:?}, removed {:?}, restarted {:?}, sections {:?}",
                applied.added,
                applied.removed,
                applied.restarted,
                applied.sections
            );
        }
        Ok(applied)
    }

    async fn apply_streams(&self, state: &mut State, new: &Config, applied: &mut Applied) {
        let gone: Vec<String> = state
            .running
            .keys()
            .filter(|name| !new.streams.iter().any(|s| &s.name == *name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(r) = state.running.remove(&name) {
                r.stop(&self.streams, &self.recorders).await;
                applied.removed.push(name);
            }
        }
        for s in &new.streams {
            match state.running.get_mut(&s.name) {
                None => {
                    let r = RunningStream::start(s, &self.streams, &self.recorders, &self.shutdown);
                    state.running.insert(s.name.clone(), r);
                    applied.added.push(s.name.clone());
                }
                Some(r) if r.config() != s => {
                    r.reconfigure(s, &self.recorders, &self.shutdown).await;
                    applied.restarted.push(s.name.clone());
                }
                Some(_) => {}
            }
        }
    }

    /// A listener on `new` when the address changed; a refusal that names
    /// `key` when it cannot be bound.
    fn rebind(
        &self,
        old: SocketAddr,
        new: SocketAddr,
        key: &str,
    ) -> Result<Option<std::net::TcpListener>, CommandError> {
        if old == new {
            return Ok(None);
        }
        bind(new).map(Some).map_err(|e| {
            CommandError::Config(ConfigError {
                file: self.file_name(),
                line: None,
                key: Some(key.into()),
                message: format!("cannot listen on {new}: {e}"),
            })
        })
    }

    fn file_name(&self) -> PathBuf {
        self.config_file
            .clone()
            .unwrap_or_else(|| crate::config::JSON_SOURCE.into())
    }

    /// Stops every stream: sources end, recorders close their files.
    pub async fn stop_all(&self) {
        let mut state = self.state.lock().await;
        let running = std::mem::take(&mut state.running);
        for (_, r) in running {
            r.stop(&self.streams, &self.recorders).await;
        }
    }
}

/// A non-blocking listener on `addr`, ready for either runtime.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}
