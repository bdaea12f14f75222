//! A timer heap for the event loop: arm `(instant, key)`, ask for the
//! earliest deadline, collect what expired. Cancelling is not needed:
//! every key carries a generation, and stale keys are ignored by whoever
//! receives them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Pending timers, earliest first.
pub struct Timers<K> {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    keys: std::collections::HashMap<u64, K>,
    seq: u64,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers::new()
    }
}

impl<K> Timers<K> {
    pub fn new() -> Timers<K> {
        Timers {
            heap: BinaryHeap::new(),
            keys: std::collections::HashMap::new(),
            seq: 0,
        }
    }

    /// Arms a timer.
    pub fn arm(&mut self, at: Instant, key: K) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq)));
        self.keys.insert(self.seq, key);
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns every timer due at `now`, earliest first.
    pub fn expired(&mut self, now: Instant) -> Vec<K> {
        let mut out = Vec::new();
        while let Some(Reverse((at, seq))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if let Some(k) = self.keys.remove(&seq) {
                out.push(k);
            }
        }
        out
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_order() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.arm(t0 + Duration::from_millis(30), "c");
        t.arm(t0 + Duration::from_millis(10), "a");
        t.arm(t0 + Duration::from_millis(20), "b");
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(t.expired(t0 + Duration::from_millis(20)), vec!["a", "b"]);
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.expired(t0 + Duration::from_millis(25)),
            Vec::<&str>::new()
        );
        assert_eq!(t.expired(t0 + Duration::from_secs(1)), vec!["c"]);
        assert!(t.is_empty());
    }
}
