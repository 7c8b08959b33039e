//! Sources: what feeds a stream's hub. Each runs on its own, supervised:
//! a source that fails is restarted with backoff, and the hub reports no
//! stream meanwhile. Sources never know who listens.

pub mod exec_process;
mod pattern;
pub mod test;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info};

use crate::config::SourceConfig;
use crate::hub::Hub;

/// Runs the configured source for `hub` until `shutdown` turns true,
/// restarting it after failures.
pub async fn supervise(hub: Arc<Hub>, config: SourceConfig, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let result = match &config {
            SourceConfig::Test(c) => test::run(hub.clone(), c.clone(), shutdown.clone()).await,
        };
        hub.clear_info();
        if *shutdown.borrow() {
            return;
        }
        match result {
            Ok(()) => info!(stream = hub.name(), "source ended; restarting"),
            Err(e) => error!(
                stream = hub.name(),
                "source failed: {e:#}; restarting in {backoff:?}"
            ),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
