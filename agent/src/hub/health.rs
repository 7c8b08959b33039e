//! A stream's source health: what it is doing and the last thing that went
//! wrong, for the API, the web UI, /metrics and MQTT.

use std::time::Instant;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceState {
    /// Started (or restarting) and no frame yet.
    Starting,
    /// Frames are arriving.
    Live,
    /// Failed; the supervisor retries after a pause.
    Down,
    /// Stopped by a command or removed.
    Stopped,
}

impl SourceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Starting => "starting",
            SourceState::Live => "live",
            SourceState::Down => "down",
            SourceState::Stopped => "stopped",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Health {
    pub state: SourceState,
    /// Kept after recovery, so that a flapping source can be diagnosed.
    pub last_error: Option<String>,
    /// When `state` was entered.
    pub since: Instant,
    /// Times the source was started again after it ended or failed.
    pub restarts: u64,
}

impl Health {
    pub(super) fn starting() -> Self {
        Self {
            state: SourceState::Starting,
            last_error: None,
            since: Instant::now(),
            restarts: 0,
        }
    }

    pub(super) fn set(&mut self, state: SourceState, error: Option<String>) {
        if state == SourceState::Starting && self.state != SourceState::Stopped {
            self.restarts += u64::from(self.state != SourceState::Starting);
        }
        if self.state != state {
            self.since = Instant::now();
        }
        self.state = state;
        if error.is_some() {
            self.last_error = error;
        }
    }

    /// A frame arrived: true when that changed the state.
    pub(super) fn mark_live(&mut self) -> bool {
        if self.state == SourceState::Live {
            return false;
        }
        self.state = SourceState::Live;
        self.since = Instant::now();
        true
    }
}
