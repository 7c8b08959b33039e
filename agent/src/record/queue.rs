//! A recorder's own queue between the hub and the disk. The hub's ring is
//! shared and short (256 items, a few seconds); a disk that stalls for
//! longer (an SD card collecting garbage, fdatasync under load) would make
//! the hub skip the recorder and lose video. A feeder task on the runtime
//! keeps reading the hub into this queue, which holds up to `max_age` of
//! media and `max_bytes`, while the recorder thread writes at the disk's
//! pace. Beyond either limit the newest media is dropped (and counted)
//! until the next GOP start, which comes after a `Discontinuity` so the
//! recorder ends its file at the last frame it has: files never hold a gap.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::hub::Subscription;
use crate::media::Item;

/// Bytes counted for an item besides its payload.
const ITEM_OVERHEAD: usize = 64;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Oldest item's age (since it left the hub) the queue may hold.
    pub max_age: Duration,
    pub max_bytes: usize,
}

/// Counters a recorder's status shows; they outlive each queue.
#[derive(Debug, Default)]
pub struct Stats {
    /// Frames dropped because the queue was full: lost before the disk.
    pub dropped_frames: AtomicU64,
    /// Bytes queued now.
    pub queued_bytes: AtomicU64,
    /// The most bytes ever queued.
    pub peak_bytes: AtomicU64,
}

struct Inner {
    items: VecDeque<(Instant, Item, usize)>,
    bytes: usize,
    /// Dropping until the next GOP start.
    dropping: bool,
    closed: bool,
}

pub struct Queue {
    inner: Mutex<Inner>,
    ready: Notify,
    limits: Limits,
    stats: Arc<Stats>,
}

fn size_of(item: &Item) -> usize {
    ITEM_OVERHEAD
        + match item {
            Item::Frame(f) => f.data.len(),
            _ => 0,
        }
}

impl Queue {
    pub fn new(limits: Limits, stats: Arc<Stats>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                bytes: 0,
                dropping: false,
                closed: false,
            }),
            ready: Notify::new(),
            limits,
            stats,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item` (never waits), or drops it when the queue is full.
    pub fn push(&self, item: Item, now: Instant) {
        let size = size_of(&item);
        let mut q = self.lock();
        let full = |q: &Inner, limit_bytes: usize, limit_age: Duration| {
            q.bytes + size > limit_bytes
                || q.items
                    .front()
                    .is_some_and(|(t, ..)| now.saturating_duration_since(*t) > limit_age)
        };
        if q.dropping {
            // Resume at a GOP start once half the room is back, so that a
            // disk just keeping up does not flap between the two.
            let room = !full(&q, self.limits.max_bytes / 2, self.limits.max_age / 2);
            if !(matches!(item, Item::Params(_)) && room) {
                if matches!(item, Item::Frame(_)) {
                    self.stats.dropped_frames.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            q.dropping = false;
            q.items.push_back((now, Item::Discontinuity, ITEM_OVERHEAD));
            q.bytes += ITEM_OVERHEAD;
        } else if matches!(item, Item::Frame(_))
            && full(&q, self.limits.max_bytes, self.limits.max_age)
        {
            q.dropping = true;
            self.stats.dropped_frames.fetch_add(1, Ordering::Relaxed);
            return;
        }
        q.bytes += size;
        q.items.push_back((now, item, size));
        self.publish(&q);
        drop(q);
        self.ready.notify_one();
    }

    /// The next item; waits while the queue is empty. `None` once closed
    /// and empty.
    pub async fn pop(&self) -> Option<Item> {
        loop {
            if let Some(item) = self.try_pop() {
                return Some(item);
            }
            if self.lock().closed {
                return None;
            }
            self.ready.notified().await;
        }
    }

    pub fn try_pop(&self) -> Option<Item> {
        let mut q = self.lock();
        let (_, item, size) = q.items.pop_front()?;
        q.bytes -= size;
        self.publish(&q);
        Some(item)
    }

    /// No more items will come (the hub closed): `pop` ends after the rest.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    fn publish(&self, q: &Inner) {
        let bytes = q.bytes as u64;
        self.stats.queued_bytes.store(bytes, Ordering::Relaxed);
        self.stats.peak_bytes.fetch_max(bytes, Ordering::Relaxed);
    }
}

/// Reads the hub into `queue` until `stop` or the hub's end. Runs on the
/// runtime, never on the recorder's thread, so it goes on while that
/// thread waits for the disk.
pub async fn feed(mut sub: Subscription, queue: Arc<Queue>, stop: CancellationToken) {
    loop {
        tokio::select! {
            item = sub.recv() => match item {
                Some(item) => queue.push(item, Instant::now()),
                None => break,
            },
            _ = stop.cancelled() => break,
        }
    }
    queue.close();
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::media::Frame;

    fn frame(n: i64, key: bool, len: usize) -> Item {
        Item::Frame(Frame {
            track: 0,
            pts: n,
            dts: n,
            key,
            data: Bytes::from(vec![0u8; len]),
        })
    }

    fn params() -> Item {
        Item::Params(Arc::new(crate::media::test_stream_info()))
    }

    fn kinds(q: &Queue) -> String {
        std::iter::from_fn(|| q.try_pop())
            .map(|i| match i {
                Item::Params(_) => 'P',
                Item::Frame(_) => 'F',
                Item::Discontinuity => 'D',
            })
            .collect()
    }

    #[test]
    fn a_full_queue_drops_the_newest_until_a_gop_start_and_counts_it() {
        let stats = Arc::new(Stats::default());
        let q = Queue::new(
            Limits {
                max_age: Duration::from_secs(30),
                max_bytes: 1000 + 4 * ITEM_OVERHEAD,
            },
            stats.clone(),
        );
        let t = Instant::now();
        q.push(params(), t);
        for n in 0..6 {
            q.push(frame(n, n == 0, 250), t);
        }
        // Params + 3 frames fit; frames 3..6 are dropped.
        assert_eq!(stats.dropped_frames.load(Ordering::Relaxed), 3);
        // Still full: the next GOP start is dropped too.
        q.push(params(), t);
        q.push(frame(6, true, 250), t);
        assert_eq!(stats.dropped_frames.load(Ordering::Relaxed), 4);
        assert_eq!(kinds(&q), "PFFF");
        // Room again: resume at the next GOP start, after a discontinuity.
        q.push(frame(7, false, 250), t);
        q.push(params(), t);
        q.push(frame(8, true, 250), t);
        assert_eq!(kinds(&q), "DPF");
        assert_eq!(stats.dropped_frames.load(Ordering::Relaxed), 5);
        assert_eq!(stats.queued_bytes.load(Ordering::Relaxed), 0);
        assert!(stats.peak_bytes.load(Ordering::Relaxed) >= 750);
    }

    #[test]
    fn media_older_than_max_age_makes_the_queue_full() {
        let stats = Arc::new(Stats::default());
        let q = Queue::new(
            Limits {
                max_age: Duration::from_secs(30),
                max_bytes: 1 << 30,
            },
            stats.clone(),
        );
        let t = Instant::now();
        q.push(params(), t);
        q.push(frame(0, true, 10), t);
        q.push(frame(1, false, 10), t + Duration::from_secs(29));
        q.push(frame(2, false, 10), t + Duration::from_secs(31));
        assert_eq!(stats.dropped_frames.load(Ordering::Relaxed), 1);
        assert_eq!(kinds(&q), "PFF");
    }

    #[tokio::test]
    async fn pop_waits_for_items_and_ends_after_close() {
        let q = Arc::new(Queue::new(
            Limits {
                max_age: Duration::from_secs(30),
                max_bytes: 1 << 20,
            },
            Arc::default(),
        ));
        let reader = {
            let q = q.clone();
            tokio::spawn(async move {
                let mut n = 0;
                while q.pop().await.is_some() {
                    n += 1;
                }
                n
            })
        };
        tokio::task::yield_now().await;
        q.push(params(), Instant::now());
        q.push(frame(0, true, 10), Instant::now());
        q.close();
        assert_eq!(reader.await.unwrap(), 2);
    }
}
