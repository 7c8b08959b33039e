//! What every connection of the RTSP server shares: the streams, the
//! settings in force, the RTP stages and the session and connection
//! counts. Kept apart from `server` (which accepts) and `connection` (which
//! serves one client), so neither imports the other's internals.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::auth::Authenticator;
use super::limits::PerClient;
use super::stage::Stages;
use crate::config::RtspConfig;
use crate::hub::Streams;

/// The settings in force, swapped whole when the config changes.
pub struct Settings {
    pub config: RtspConfig,
    pub auth: Option<Arc<Authenticator>>,
}

/// What every connection shares.
pub struct Server {
    pub streams: Arc<Streams>,
    pub settings: RwLock<Arc<Settings>>,
    pub stages: Stages,
    /// Sessions open now, against `max_sessions`.
    pub sessions: Arc<AtomicUsize>,
    /// Connections open now.
    pub connections: AtomicUsize,
    /// Connections and sessions per client address.
    pub clients: Arc<PerClient>,
    /// The origin of the millisecond times connections keep.
    pub clock: Instant,
}

impl Server {
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    pub fn session_timeout(&self) -> Duration {
        Duration::from_secs(self.settings().config.session_timeout_seconds)
    }

    /// Takes new settings; the authenticator (and its nonces) is kept when
    /// the auth section did not change.
    pub fn update(&self, config: RtspConfig) {
        let mut current = self.settings.write().unwrap_or_else(|e| e.into_inner());
        let auth = if current.config.auth == config.auth {
            current.auth.clone()
        } else {
            config.auth.clone().map(|a| Arc::new(Authenticator::new(a)))
        };
        *current = Arc::new(Settings { config, auth });
    }
}
