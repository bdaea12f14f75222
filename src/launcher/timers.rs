//! A timer heap for the event loop, one timer per key: arming a key that
//! is armed moves it, cancelling removes it. A superseded timer therefore
//! never fires, so cores need no sequence numbers or "armed" flags.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::time::Instant;

/// Pending timers, earliest first.
pub(crate) struct Timers<K> {
    /// `(when, sequence)`; entries whose sequence is no longer in `keys`
    /// were moved or cancelled and are skipped.
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    keys: HashMap<u64, K>,
    seqs: HashMap<K, u64>,
    seq: u64,
}

impl<K: Clone + Eq + Hash> Default for Timers<K> {
    fn default() -> Self {
        Timers::new()
    }
}

impl<K: Clone + Eq + Hash> Timers<K> {
    pub(crate) fn new() -> Timers<K> {
        Timers {
            heap: BinaryHeap::new(),
            keys: HashMap::new(),
            seqs: HashMap::new(),
            seq: 0,
        }
    }

    /// Arms the timer of `key` for `at`, moving it if it was armed.
    pub(crate) fn arm(&mut self, at: Instant, key: K) {
        self.cancel(&key);
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq)));
        self.keys.insert(self.seq, key.clone());
        self.seqs.insert(key, self.seq);
        // Moved and cancelled timers leave stale heap entries: rebuild
        // when they outnumber the live ones.
        if self.heap.len() > 64 + 2 * self.keys.len() {
            let keys = &self.keys;
            self.heap.retain(|Reverse((_, s))| keys.contains_key(s));
        }
    }

    /// Forgets the timer of `key` (nothing if it is not armed).
    pub(crate) fn cancel(&mut self, key: &K) {
        if let Some(old) = self.seqs.remove(key) {
            self.keys.remove(&old);
        }
    }

    /// The earliest deadline.
    pub(crate) fn earliest(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, seq))) = self.heap.peek().copied() {
            if self.keys.contains_key(&seq) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes and returns every timer due at `now`, earliest first.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<K> {
        let mut out = Vec::new();
        while let Some(Reverse((at, seq))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if let Some(k) = self.keys.remove(&seq) {
                self.seqs.remove(&k);
                out.push(k);
            }
        }
        out
    }

    /// Number of armed timers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
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
        assert_eq!(t.earliest(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(t.expired(t0 + Duration::from_millis(20)), vec!["a", "b"]);
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.expired(t0 + Duration::from_millis(25)),
            Vec::<&str>::new()
        );
        assert_eq!(t.expired(t0 + Duration::from_secs(1)), vec!["c"]);
        assert!(t.is_empty());
    }

    #[test]
    fn rearming_moves_and_cancelling_removes() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut t = Timers::new();
        t.arm(ms(10), "a");
        t.arm(ms(50), "a");
        t.arm(ms(20), "b");
        t.cancel(&"b");
        t.cancel(&"never armed");
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.earliest(),
            Some(ms(50)),
            "the moved timer, not the old one"
        );
        assert!(
            t.expired(ms(40)).is_empty(),
            "superseded and cancelled never fire"
        );
        assert_eq!(t.expired(ms(50)), ["a"]);
        assert_eq!(t.earliest(), None);
    }

    #[test]
    fn stale_entries_do_not_accumulate() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        for i in 0..10_000u64 {
            t.arm(t0 + Duration::from_millis(i), 7u32);
        }
        assert_eq!(t.len(), 1);
        assert!(t.heap.len() <= 64 + 2 + 1, "{}", t.heap.len());
    }
}
