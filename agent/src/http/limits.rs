//! Bounds on HTTP clients, applied below the router by wrapping the
//! listener: at most `http.max_connections` connections (more are accepted
//! and closed at once, and counted), and two timeouts on each one:
//!
//! - a request's head must arrive within `http.header_timeout_seconds` of
//!   its first byte (and a new connection's first request within that
//!   time of the accept), so a client dribbling bytes cannot hold a place;
//!   once the head is in (its empty line seen), the body and the answer
//!   (a blocking LL-HLS playlist waits seconds) get the idle timeout;
//! - a kept-alive connection with no new request for
//!   `http.idle_timeout_seconds` is closed.
//!
//! Both are read from the stream's own reads and writes: the wait for a
//! request starts when the server reads after having written (or at the
//! accept) and ends with the first byte it writes back. Settings are read
//! at each accept, so a change applies to new connections.
//!
//! `serve` wraps this listener in `tap_io`: axum then gives handlers
//! `ConnectInfo<SocketAddr>` (its impl for `TapIo<L, _>`) as it does for a
//! plain `TcpListener`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::config::HttpConfig;

static REFUSED: AtomicU64 = AtomicU64::new(0);
static TIMED_OUT: AtomicU64 = AtomicU64::new(0);

/// Connections refused at the cap, and closed by a timeout, since start.
pub fn counts() -> (u64, u64) {
    (
        REFUSED.load(Ordering::Relaxed),
        TIMED_OUT.load(Ordering::Relaxed),
    )
}

/// A listener that caps connections and times them out.
pub struct LimitedListener {
    inner: TcpListener,
    config: watch::Receiver<HttpConfig>,
    /// Places handed out; resized when `max_connections` changes.
    places: Arc<Semaphore>,
    max: usize,
}

impl LimitedListener {
    pub fn new(inner: TcpListener, config: watch::Receiver<HttpConfig>) -> Self {
        let max = config.borrow().max_connections;
        Self {
            inner,
            config,
            places: Arc::new(Semaphore::new(max)),
            max,
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = TimedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = match self.inner.accept().await {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: back off a little.
                    tracing::warn!("http accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (max, header, idle) = {
                let c = self.config.borrow();
                (
                    c.max_connections,
                    Duration::from_secs(c.header_timeout_seconds),
                    Duration::from_secs(c.idle_timeout_seconds),
                )
            };
            if max > self.max {
                self.places.add_permits(max - self.max);
                self.max = max;
            } else if max < self.max {
                // Places in use are not taken back; fewer are handed out.
                self.places.forget_permits(self.max - max);
                self.max = max;
            }
            let Ok(place) = self.places.clone().try_acquire_owned() else {
                REFUSED.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "http connection refused: {max} open");
                continue;
            };
            let _ = stream.set_nodelay(true);
            return (TimedStream::new(stream, place, header, idle), peer);
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection with its place and its timeouts.
pub struct TimedStream {
    inner: TcpStream,
    _place: OwnedSemaphorePermit,
    header_timeout: Duration,
    idle_timeout: Duration,
    /// Since when the server has been waiting for a request (it reads and
    /// has not written since); `None` while it answers.
    waiting_since: Option<Instant>,
    /// When the first byte of the awaited request came.
    first_byte: Option<Instant>,
    /// When the awaited request's head was complete (`\r\n\r\n` read).
    head_done: Option<Instant>,
    /// The last bytes read, to find `\r\n\r\n` across reads.
    tail: u32,
    /// Whether anything was written yet: a new connection's first request
    /// gets the header timeout from the accept, not the idle one.
    answered: bool,
    timer: Pin<Box<Sleep>>,
}

impl TimedStream {
    fn new(
        inner: TcpStream,
        place: OwnedSemaphorePermit,
        header: Duration,
        idle: Duration,
    ) -> Self {
        let now = Instant::now();
        Self {
            inner,
            _place: place,
            header_timeout: header,
            idle_timeout: idle,
            waiting_since: Some(now),
            first_byte: None,
            head_done: None,
            tail: 0,
            answered: false,
            timer: Box::pin(tokio::time::sleep_until(now + header)),
        }
    }

    fn deadline(&self, waiting_since: Instant) -> Instant {
        if let Some(done) = self.head_done {
            return done + self.idle_timeout;
        }
        match (self.first_byte, self.answered) {
            (Some(first), _) => first + self.header_timeout,
            (None, false) => waiting_since + self.header_timeout,
            (None, true) => waiting_since + self.idle_timeout,
        }
    }
}

impl AsyncRead for TimedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let waiting_since = *this.waiting_since.get_or_insert_with(Instant::now);
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                let new = &buf.filled()[before..];
                if !new.is_empty() && this.first_byte.is_none() {
                    this.first_byte = Some(Instant::now());
                }
                if this.head_done.is_none() {
                    for &b in new {
                        this.tail = (this.tail << 8) | u32::from(b);
                        if this.tail == u32::from_be_bytes(*b"\r\n\r\n") {
                            this.head_done = Some(Instant::now());
                            break;
                        }
                    }
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                let deadline = this.deadline(waiting_since);
                if this.timer.deadline() != deadline {
                    this.timer.as_mut().reset(deadline);
                }
                if this.timer.as_mut().poll(cx).is_ready() {
                    TIMED_OUT.fetch_add(1, Ordering::Relaxed);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no complete request in time",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for TimedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            // Answering: the next read waits for a new request.
            this.waiting_since = None;
            this.first_byte = None;
            this.head_done = None;
            this.tail = 0;
            this.answered = true;
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.waiting_since = None;
            this.first_byte = None;
            this.head_done = None;
            this.tail = 0;
            this.answered = true;
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn pair(header: Duration, idle: Duration) -> (TimedStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        let place = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        (TimedStream::new(server, place, header, idle), client)
    }

    #[tokio::test(start_paused = true)]
    async fn a_dribbled_head_times_out_and_an_answered_client_gets_the_idle_time() {
        let (mut server, mut client) = pair(Duration::from_secs(10), Duration::from_secs(60)).await;
        let mut buf = [0u8; 64];
        // A byte every 4 s: each read returns, but the head is not done
        // 10 s after its first byte.
        let dribble = tokio::spawn(async move {
            for _ in 0..5 {
                client.write_all(b"G").await.unwrap();
                tokio::time::sleep(Duration::from_secs(4)).await;
            }
            client
        });
        let started = Instant::now();
        let reads = async {
            loop {
                match server.read(&mut buf).await {
                    Ok(_) => continue,
                    Err(e) => break e,
                }
            }
        };
        let err = tokio::time::timeout(Duration::from_secs(30), reads)
            .await
            .expect("the dribbled head timed out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
            "{waited:?}"
        );
        drop(dribble);

        // A whole head, then an answer that takes 30 s (a blocking
        // playlist): the header timeout no longer applies.
        let (mut server, mut client) = pair(Duration::from_secs(10), Duration::from_secs(60)).await;
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let _ = server.read(&mut buf).await.unwrap();
        let pending = tokio::time::timeout(Duration::from_secs(30), server.read(&mut buf)).await;
        assert!(pending.is_err(), "cut while answering: {pending:?}");

        // Answered once, a kept-alive connection may sit idle up to 60 s.
        let (mut server, mut client) = pair(Duration::from_secs(10), Duration::from_secs(60)).await;
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let _ = server.read(&mut buf).await.unwrap();
        server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let started = Instant::now();
        let err = tokio::time::timeout(Duration::from_secs(90), server.read(&mut buf))
            .await
            .expect("the idle connection timed out")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(60) && waited < Duration::from_secs(61),
            "{waited:?}"
        );
    }
}
