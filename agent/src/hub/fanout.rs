//! One writer, many readers, bounded memory: a broadcast ring plus a cache
//! of the current group of pictures (GOP) so a new reader starts on a
//! keyframe at once. A reader that falls behind the ring loses what it
//! missed and skips ahead to the next GOP start; it never slows the writer
//! or the other readers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// Bounds of the GOP cache. A GOP larger than this is not cached: new
/// readers then wait for the next keyframe instead of memory growing.
#[derive(Clone, Copy, Debug)]
pub struct GopLimits {
    pub max_items: usize,
    pub max_bytes: usize,
}

#[derive(Clone)]
struct Entry<T> {
    item: T,
    gop_start: bool,
}

struct GopCache<T> {
    entries: Vec<Entry<T>>,
    bytes: usize,
    /// False until a GOP start arrives, and after an overflow.
    valid: bool,
}

pub struct Fanout<T> {
    gop: Mutex<GopCache<T>>,
    /// `None` once closed: readers end after what they already have.
    tx: Mutex<Option<broadcast::Sender<Entry<T>>>>,
    limits: GopLimits,
    dropped: Arc<AtomicU64>,
    /// The ring's real length (tokio rounds it up to a power of two).
    ring: usize,
}

impl<T: Clone + Send + Sync + 'static> Fanout<T> {
    /// `capacity` is the ring length in items: how far a reader may fall
    /// behind before it starts skipping.
    pub fn new(capacity: usize, limits: GopLimits) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            gop: Mutex::new(GopCache {
                entries: Vec::new(),
                bytes: 0,
                valid: false,
            }),
            tx: Mutex::new(Some(tx)),
            limits,
            dropped: Arc::new(AtomicU64::new(0)),
            ring: capacity.max(1).next_power_of_two(),
        }
    }

    pub fn publish(&self, item: T, gop_start: bool, bytes: usize) {
        let entry = Entry { item, gop_start };
        // The cache and the ring change under one lock, so that a reader
        // subscribing in between sees every item exactly once.
        let mut gop = self.gop.lock().unwrap_or_else(|e| e.into_inner());
        let tx = lock(&self.tx);
        let Some(tx) = tx.as_ref() else {
            return;
        };
        if gop_start {
            gop.entries.clear();
            gop.bytes = 0;
            gop.valid = true;
        }
        if gop.valid {
            if gop.entries.len() >= self.limits.max_items
                || gop.bytes + bytes > self.limits.max_bytes
            {
                gop.entries.clear();
                gop.bytes = 0;
                gop.valid = false;
            } else {
                gop.entries.push(entry.clone());
                gop.bytes += bytes;
            }
        }
        let _ = tx.send(entry);
    }

    /// Ends every reader once it has read what was published; readers
    /// that subscribe later end at once.
    pub fn close(&self) {
        let mut gop = self.gop.lock().unwrap_or_else(|e| e.into_inner());
        gop.entries.clear();
        gop.valid = false;
        lock(&self.tx).take();
    }

    /// Drops the cached GOP: readers that join now wait for the next one.
    pub fn reset(&self) {
        let mut gop = self.gop.lock().unwrap_or_else(|e| e.into_inner());
        gop.entries.clear();
        gop.bytes = 0;
        gop.valid = false;
    }

    pub fn subscribe(&self) -> Reader<T> {
        self.subscribe_counting(None)
    }

    /// Like [`Fanout::subscribe`]; what this reader skips is also added to
    /// `dropped` (a per-output counter of the stream).
    pub fn subscribe_counting(&self, dropped: Option<Arc<AtomicU64>>) -> Reader<T> {
        let gop = self.gop.lock().unwrap_or_else(|e| e.into_inner());
        let backlog: VecDeque<Entry<T>> = gop.entries.iter().cloned().collect();
        let rx = match lock(&self.tx).as_ref() {
            Some(tx) => tx.subscribe(),
            // A receiver whose sender is gone: it reports Closed at once.
            None => broadcast::channel(1).1,
        };
        Reader {
            skipping: backlog.is_empty(),
            lost: false,
            backlog,
            rx,
            dropped: self.dropped.clone(),
            output_dropped: dropped,
            ring: self.ring,
        }
    }

    pub fn reader_count(&self) -> usize {
        lock(&self.tx).as_ref().map_or(0, |tx| tx.receiver_count())
    }

    /// Items that slow readers lost, over all readers.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Reader<T> {
    backlog: VecDeque<Entry<T>>,
    rx: broadcast::Receiver<Entry<T>>,
    /// Waiting for a GOP start, after joining with no cache or after lagging.
    skipping: bool,
    /// Skipping because it lagged: what it skips counts as dropped (a
    /// reader that joins without a cached GOP never had what it skips).
    lost: bool,
    dropped: Arc<AtomicU64>,
    /// The output's counter, when the subscriber gave one.
    output_dropped: Option<Arc<AtomicU64>>,
    ring: usize,
}

/// A reader finds out what it lost when it reads again; one that ends
/// first (its client stalled until the write timeout) counts its loss as
/// it goes, so that every lost item is counted.
impl<T> Drop for Reader<T> {
    fn drop(&mut self) {
        let behind = self.rx.len();
        if behind > self.ring {
            let n = (behind - self.ring) as u64;
            self.dropped.fetch_add(n, Ordering::Relaxed);
            if let Some(c) = &self.output_dropped {
                c.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

impl<T: Clone> Reader<T> {
    /// The next item; `None` once the writer is gone.
    pub async fn recv(&mut self) -> Option<T> {
        if let Some(e) = self.backlog.pop_front() {
            return Some(e.item);
        }
        loop {
            let result = self.rx.recv().await;
            match self.accept(result.map_err(|e| match e {
                RecvError::Lagged(n) => Lag::Lagged(n),
                RecvError::Closed => Lag::Closed,
            })) {
                Step::Item(item) => return Some(item),
                Step::Skip => continue,
                Step::Closed => return None,
            }
        }
    }

    /// The next item if one is ready now, without waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        if let Some(e) = self.backlog.pop_front() {
            return Some(e.item);
        }
        loop {
            let result = self.rx.try_recv();
            let result = match result {
                Ok(e) => Ok(e),
                Err(TryRecvError::Lagged(n)) => Err(Lag::Lagged(n)),
                Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => return None,
            };
            match self.accept(result) {
                Step::Item(item) => return Some(item),
                Step::Skip => continue,
                Step::Closed => return None,
            }
        }
    }

    fn count_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        if let Some(c) = &self.output_dropped {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn accept(&mut self, result: Result<Entry<T>, Lag>) -> Step<T> {
        match result {
            Ok(e) => {
                if self.skipping {
                    if !e.gop_start {
                        if self.lost {
                            self.count_dropped(1);
                        }
                        return Step::Skip;
                    }
                    self.skipping = false;
                    self.lost = false;
                }
                Step::Item(e.item)
            }
            Err(Lag::Lagged(n)) => {
                self.count_dropped(n);
                self.skipping = true;
                self.lost = true;
                Step::Skip
            }
            Err(Lag::Closed) => Step::Closed,
        }
    }
}

enum Lag {
    Lagged(u64),
    Closed,
}

enum Step<T> {
    Item(T),
    Skip,
    Closed,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: GopLimits = GopLimits {
        max_items: 100,
        max_bytes: 1 << 20,
    };

    #[tokio::test]
    async fn late_reader_starts_at_the_cached_gop() {
        let f = Fanout::new(16, LIMITS);
        f.publish(1, false, 1);
        f.publish(2, true, 1);
        f.publish(3, false, 1);
        let mut r = f.subscribe();
        f.publish(4, false, 1);
        assert_eq!(r.recv().await, Some(2));
        assert_eq!(r.recv().await, Some(3));
        assert_eq!(r.recv().await, Some(4));
        assert_eq!(r.try_recv(), None);
    }

    #[tokio::test]
    async fn reader_without_cache_waits_for_a_gop_start() {
        let f = Fanout::new(16, LIMITS);
        let mut r = f.subscribe();
        f.publish(1, false, 1);
        f.publish(2, true, 1);
        assert_eq!(r.recv().await, Some(2));
    }

    #[tokio::test]
    async fn slow_reader_skips_to_the_next_gop_and_the_fast_one_loses_nothing() {
        let f = Fanout::new(4, LIMITS);
        f.publish(0, true, 1);
        let mut slow = f.subscribe();
        let mut fast = f.subscribe();
        assert_eq!(fast.recv().await, Some(0));
        for i in 1..=10 {
            f.publish(i, i == 8, 1);
            assert_eq!(fast.recv().await, Some(i));
        }
        assert_eq!(slow.recv().await, Some(0));
        assert_eq!(slow.recv().await, Some(8));
        assert_eq!(slow.recv().await, Some(9));
        assert!(f.dropped() > 0);
    }

    #[tokio::test]
    async fn drops_are_counted_per_reader_counter_and_a_join_is_no_drop() {
        let f = Fanout::new(4, LIMITS);
        let (slow_count, fast_count) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        // Joins before any GOP start: what it skips it never had.
        let mut slow = f.subscribe_counting(Some(slow_count.clone()));
        let mut fast = f.subscribe_counting(Some(fast_count.clone()));
        f.publish(0, false, 1);
        f.publish(1, true, 1);
        assert_eq!(fast.recv().await, Some(1));
        assert_eq!(slow.recv().await, Some(1));
        for i in 2..=10 {
            f.publish(i, i == 9, 1);
            assert_eq!(fast.recv().await, Some(i));
        }
        assert_eq!(slow.recv().await, Some(9));
        assert_eq!(fast_count.load(Ordering::Relaxed), 0);
        // 2..=8 lost: some by the ring's lag, the rest skipped to the GOP.
        assert_eq!(slow_count.load(Ordering::Relaxed), 7);
        assert_eq!(f.dropped(), 7);
    }

    #[tokio::test]
    async fn a_reader_that_ends_behind_counts_what_it_lost() {
        let f = Fanout::new(4, LIMITS);
        let count = Arc::new(AtomicU64::new(0));
        f.publish(0, true, 1);
        let r = f.subscribe_counting(Some(count.clone()));
        for i in 1..=10 {
            f.publish(i, false, 1);
        }
        drop(r);
        // 10 items published since it joined (0 is in its backlog), of
        // which the ring holds the last 4.
        assert_eq!(count.load(Ordering::Relaxed), 6);
        assert_eq!(f.dropped(), 6);
    }

    #[tokio::test]
    async fn an_oversized_gop_is_not_cached() {
        let f = Fanout::new(
            16,
            GopLimits {
                max_items: 2,
                max_bytes: 100,
            },
        );
        f.publish(1, true, 1);
        f.publish(2, false, 1);
        f.publish(3, false, 1);
        let mut r = f.subscribe();
        f.publish(4, false, 1);
        f.publish(5, true, 1);
        assert_eq!(r.recv().await, Some(5));
    }

    #[tokio::test]
    async fn close_ends_readers_after_what_they_have_and_later_ones_at_once() {
        let f = Fanout::new(4, LIMITS);
        f.publish(1, true, 1);
        let mut r = f.subscribe();
        f.publish(2, false, 1);
        f.close();
        f.publish(3, false, 1);
        assert_eq!(r.recv().await, Some(1));
        assert_eq!(r.recv().await, Some(2));
        assert_eq!(r.recv().await, None);
        let mut late = f.subscribe();
        assert_eq!(late.recv().await, None);
    }

    #[tokio::test]
    async fn closed_writer_ends_readers() {
        let f = Fanout::new(4, LIMITS);
        f.publish(1, true, 1);
        let mut r = f.subscribe();
        drop(f);
        assert_eq!(r.recv().await, Some(1));
        assert_eq!(r.recv().await, None);
    }
}
