//! What one client address may hold (connections, sessions), and the count
//! of everything the server refused, for /metrics. A place is a guard that
//! gives itself back on drop, so no path can leak one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Why the server turned something away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The server-wide connection cap.
    Connections,
    /// `max_connections_per_client`.
    ClientConnections,
    /// `max_sessions`.
    Sessions,
    /// `max_sessions_per_client`.
    ClientSessions,
    /// No complete request within `first_request_timeout_seconds`.
    FirstRequestTimeout,
    /// More SETUPs on one session than it has any use for.
    Setups,
}

impl Refusal {
    pub const ALL: [Refusal; 6] = [
        Refusal::Connections,
        Refusal::ClientConnections,
        Refusal::Sessions,
        Refusal::ClientSessions,
        Refusal::FirstRequestTimeout,
        Refusal::Setups,
    ];

    /// The `reason` label in /metrics.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Connections => "connections",
            Refusal::ClientConnections => "client_connections",
            Refusal::Sessions => "sessions",
            Refusal::ClientSessions => "client_sessions",
            Refusal::FirstRequestTimeout => "first_request_timeout",
            Refusal::Setups => "setups",
        }
    }
}

/// Refusals since start, process-wide: the server is one per process and
/// /metrics reads them without a handle on it.
static REFUSED: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

pub fn refused(why: Refusal) {
    REFUSED[why as usize].fetch_add(1, Ordering::Relaxed);
}

/// `(reason label, count)` of every kind of refusal.
pub fn refusals() -> impl Iterator<Item = (&'static str, u64)> {
    Refusal::ALL
        .into_iter()
        .map(|r| (r.label(), REFUSED[r as usize].load(Ordering::Relaxed)))
}

#[derive(Default)]
struct Held {
    connections: usize,
    sessions: usize,
}

/// Connections and sessions held per client address.
#[derive(Default)]
pub struct PerClient {
    held: Mutex<HashMap<IpAddr, Held>>,
}

#[derive(Clone, Copy)]
enum Kind {
    Connection,
    Session,
}

/// A connection or session place of one client; given back on drop.
pub struct ClientPlace {
    owner: Arc<PerClient>,
    ip: IpAddr,
    kind: Kind,
}

impl PerClient {
    pub fn connection(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientPlace> {
        self.take(ip, max, Kind::Connection)
    }

    pub fn session(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientPlace> {
        self.take(ip, max, Kind::Session)
    }

    fn take(self: &Arc<Self>, ip: IpAddr, max: usize, kind: Kind) -> Option<ClientPlace> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let h = held.entry(ip).or_default();
        let n = match kind {
            Kind::Connection => &mut h.connections,
            Kind::Session => &mut h.sessions,
        };
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientPlace {
            owner: self.clone(),
            ip,
            kind,
        })
    }

    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

impl Drop for ClientPlace {
    fn drop(&mut self) {
        let mut held = self.owner.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = held.get_mut(&self.ip) {
            match self.kind {
                Kind::Connection => h.connections = h.connections.saturating_sub(1),
                Kind::Session => h.sessions = h.sessions.saturating_sub(1),
            }
            // Forget an address that holds nothing: the map stays as small
            // as the set of clients connected now.
            if h.connections == 0 && h.sessions == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_per_address_bounded_and_given_back() {
        let limits = Arc::new(PerClient::default());
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = limits.connection(a, 2).unwrap();
        let _second = limits.connection(a, 2).unwrap();
        assert!(limits.connection(a, 2).is_none());
        // Another address and the session places are counted apart.
        let other = limits.connection(b, 2).unwrap();
        let session = limits.session(a, 1).unwrap();
        assert!(limits.session(a, 1).is_none());
        drop(first);
        assert!(limits.connection(a, 2).is_some());
        drop((other, session, _second));
        assert_eq!(limits.addresses(), 0);
    }
}
