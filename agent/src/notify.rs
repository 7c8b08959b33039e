//! systemd readiness and watchdog (`sd_notify(3)`), through the `sd-notify`
//! crate: a datagram to `$NOTIFY_SOCKET`, no libsystemd. Outside systemd
//! (no `NOTIFY_SOCKET`) every call here does nothing.

use std::future::Future;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// `READY=1`: the listeners are bound and the streams started.
pub fn ready() {
    send(NotifyState::Ready);
}

/// `STOPPING=1`: shutdown has begun.
pub fn stopping() {
    send(NotifyState::Stopping);
}

fn send(state: NotifyState) {
    if let Err(e) = sd_notify::notify(std::slice::from_ref(&state)) {
        warn!("sd_notify {state}: {e}");
    }
}

/// Pings `WATCHDOG=1` every half of `$WATCHDOG_USEC` for as long as `probe`
/// answers true within that half, until `shutdown`. Returns at
/// once when systemd asked for no watchdog (or asked another process).
///
/// The probe is what proves the agent alive: a ping from a task that only
/// proves this task runs would keep a wedged agent from being restarted.
pub async fn watchdog<P, F>(probe: P, shutdown: CancellationToken)
where
    P: Fn() -> F,
    F: Future<Output = bool>,
{
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    debug!("systemd watchdog every {interval:?}");
    pings(interval / 2, probe, shutdown, || {
        send(NotifyState::Watchdog)
    })
    .await;
}

/// The watchdog loop with its period and its ping given, for tests: probe,
/// ping if it answered true in time, sleep out the rest of the period.
async fn pings<P, F>(
    period: Duration,
    probe: P,
    shutdown: CancellationToken,
    mut ping: impl FnMut(),
) where
    P: Fn() -> F,
    F: Future<Output = bool>,
{
    loop {
        let next = tokio::time::Instant::now() + period;
        let answer = tokio::select! {
            _ = shutdown.cancelled() => return,
            answer = tokio::time::timeout(period, probe()) => answer,
        };
        match answer {
            Ok(true) => ping(),
            Ok(false) => warn!("watchdog: the agent reports a fault; not pinging systemd"),
            Err(_) => warn!("watchdog: no answer within {period:?}; not pinging systemd"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Runs the loop for `periods` periods of 100 ms with a probe that
    /// answers `answer(call)` (None: never answers); returns the pings.
    async fn count_pings(periods: u32, answer: fn(usize) -> Option<bool>) -> usize {
        let period = Duration::from_millis(100);
        let rx = CancellationToken::new();
        let tx = rx.clone();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut count = 0;
        let probe = || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                match answer(n) {
                    Some(a) => a,
                    None => std::future::pending().await,
                }
            }
        };
        let stop = async {
            tokio::time::sleep(period * periods - period / 2).await;
            tx.cancel();
        };
        tokio::join!(pings(period, probe, rx, || count += 1), stop);
        count
    }

    #[tokio::test(start_paused = true)]
    async fn pings_once_a_period_while_the_probe_answers() {
        assert_eq!(count_pings(10, |_| Some(true)).await, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn no_ping_while_the_probe_reports_a_fault() {
        assert_eq!(count_pings(10, |n| Some(n < 3)).await, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn no_ping_while_the_probe_hangs() {
        assert_eq!(count_pings(10, |n| (n < 2).then_some(true)).await, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_on_shutdown() {
        assert_eq!(count_pings(1, |_| Some(true)).await, 1);
    }
}
