//! The send queue of one uplink: what the hub gave and the network has not
//! taken yet, bounded in bytes. When the link is too slow the queue is
//! emptied and refills only from the next keyframe (with its parameters in
//! front), so the receiver never gets a picture whose references are gone;
//! the frames thrown away are counted. Pure.

use std::collections::VecDeque;

use crate::media::Item;

pub struct SendQueue {
    items: VecDeque<Item>,
    bytes: usize,
    max_bytes: usize,
    /// Dropping until the next keyframe.
    skipping: bool,
    /// Frames thrown away so far.
    pub dropped: u64,
}

impl SendQueue {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            items: VecDeque::new(),
            bytes: 0,
            max_bytes,
            skipping: false,
            dropped: 0,
        }
    }

    pub fn push(&mut self, item: Item) {
        let len = match &item {
            Item::Frame(f) => f.data.len(),
            _ => 0,
        };
        if self.skipping {
            // Parameters are kept (the next keyframe needs them); frames
            // wait for a video keyframe.
            match &item {
                Item::Frame(f) if !(f.key && f.track == 0) => {
                    self.dropped += 1;
                    return;
                }
                Item::Frame(_) => self.skipping = false,
                _ => {}
            }
        }
        if self.bytes + len > self.max_bytes {
            self.dropped += self
                .items
                .iter()
                .filter(|i| matches!(i, Item::Frame(_)))
                .count() as u64
                + 1;
            // Keep the newest parameters for the keyframe to come.
            let params = self
                .items
                .iter()
                .rev()
                .find(|i| matches!(i, Item::Params(_)))
                .cloned();
            self.items.clear();
            self.bytes = 0;
            self.items.extend(params);
            self.skipping = true;
            if !matches!(item, Item::Frame(_)) {
                self.items.push_back(item);
            }
            return;
        }
        self.bytes += len;
        self.items.push_back(item);
    }

    pub fn pop(&mut self) -> Option<Item> {
        let item = self.items.pop_front()?;
        if let Item::Frame(f) = &item {
            self.bytes -= f.data.len();
        }
        Some(item)
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::media::{test_stream_info, Frame};

    fn frame(key: bool, len: usize) -> Item {
        Item::Frame(Frame {
            track: 0,
            pts: 0,
            dts: 0,
            key,
            data: Bytes::from(vec![0; len]),
        })
    }

    #[test]
    fn an_overflow_drops_to_the_next_keyframe_and_counts() {
        let mut q = SendQueue::new(100);
        q.push(Item::Params(std::sync::Arc::new(test_stream_info())));
        q.push(frame(true, 40));
        q.push(frame(false, 40));
        assert_eq!(q.bytes(), 80);
        q.push(frame(false, 40));
        assert_eq!(
            q.dropped, 3,
            "the two queued frames and the one that did not fit"
        );
        q.push(frame(false, 10));
        assert_eq!(q.dropped, 4);
        q.push(frame(true, 30));
        assert!(matches!(q.pop(), Some(Item::Params(_))), "parameters kept");
        assert!(matches!(q.pop(), Some(Item::Frame(f)) if f.key));
        assert!(q.pop().is_none());
        assert_eq!(q.bytes(), 0);
    }
}
