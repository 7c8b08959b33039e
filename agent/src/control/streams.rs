//! One configured stream while it runs: its hub (which outlives source
//! restarts and reconfiguration, so viewers stay), its supervised source
//! task with a cancellation token of its own, and its recorder.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::StreamConfig;
use crate::hub::{Hub, SourceState, Streams};
use crate::record::Recorders;
use crate::source;
use crate::uplink::{UplinkStatus, Uplinks};

pub(super) struct RunningStream {
    config: StreamConfig,
    hub: Arc<Hub>,
    /// `None` while the source is stopped by a command.
    source: Option<SourceTask>,
    uplinks: Uplinks,
}

struct SourceTask {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl SourceTask {
    fn start(hub: &Arc<Hub>, config: &StreamConfig, shutdown: &CancellationToken) -> Self {
        let cancel = shutdown.child_token();
        let task = tokio::spawn(source::supervise(
            hub.clone(),
            source::build(config),
            cancel.clone(),
        ));
        Self { cancel, task }
    }

    /// Cancels the source and waits until it has let go of its devices,
    /// threads and children.
    async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

impl RunningStream {
    pub(super) fn start(
        config: &StreamConfig,
        streams: &Streams,
        recorders: &Recorders,
        shutdown: &CancellationToken,
    ) -> Self {
        let hub = Arc::new(Hub::new(&config.name));
        streams.insert(hub.clone());
        recorders.add(hub.clone(), &config.record);
        info!(stream = config.name, "stream started");
        Self {
            source: Some(SourceTask::start(&hub, config, shutdown)),
            uplinks: Uplinks::start(&hub, &config.uplink, shutdown),
            config: config.clone(),
            hub,
        }
    }

    pub(super) fn config(&self) -> &StreamConfig {
        &self.config
    }

    pub(super) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub(super) fn source_running(&self) -> bool {
        self.source.is_some()
    }

    pub(super) fn uplinks(&self) -> &Uplinks {
        &self.uplinks
    }

    pub(super) fn uplink_statuses(&self) -> Vec<UplinkStatus> {
        self.uplinks.statuses()
    }

    /// Takes a changed section: the source restarts if its config changed,
    /// the recorder if its config did; the hub and its viewers stay.
    pub(super) async fn reconfigure(
        &mut self,
        config: &StreamConfig,
        recorders: &Recorders,
        shutdown: &CancellationToken,
    ) {
        if config.source != self.config.source || config.audio != self.config.audio {
            if let Some(s) = self.source.take() {
                s.stop().await;
            }
            self.source = Some(SourceTask::start(&self.hub, config, shutdown));
        }
        if config.record != self.config.record {
            recorders.remove(&config.name).await;
            recorders.add(self.hub.clone(), &config.record);
        }
        if config.uplink != self.config.uplink {
            let old = std::mem::replace(
                &mut self.uplinks,
                Uplinks::start(&self.hub, &config.uplink, shutdown),
            );
            old.stop().await;
        }
        self.config = config.clone();
    }

    pub(super) async fn stop_source(&mut self) {
        if let Some(s) = self.source.take() {
            s.stop().await;
            self.hub.set_state(SourceState::Stopped, None);
            info!(stream = self.config.name, "source stopped by command");
        }
    }

    pub(super) fn start_source(&mut self, shutdown: &CancellationToken) {
        if self.source.is_none() {
            self.source = Some(SourceTask::start(&self.hub, &self.config, shutdown));
            info!(stream = self.config.name, "source started by command");
        }
    }

    /// Removes the stream: the source stops, the recorder closes its file,
    /// and every reader of the hub ends.
    pub(super) async fn stop(self, streams: &Streams, recorders: &Recorders) {
        if let Some(s) = self.source {
            s.stop().await;
        }
        self.uplinks.stop().await;
        recorders.remove(&self.config.name).await;
        streams.remove(&self.config.name);
        self.hub.close();
        info!(stream = self.config.name, "stream removed");
    }
}
