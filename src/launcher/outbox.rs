//! Frames that are facts, kept while the SSNTP link is down.
//!
//! An InstanceDeleted event or a command's failure says something happened
//! once; if it is dropped the scheduler never learns it (the original
//! dropped them all). Snapshots (STATUS, STATS) are not kept: a fresh one
//! is sent on every connection. The queue is bounded by frames and bytes;
//! past the bound the oldest facts go, and the loss is counted so that one
//! log line says how many when the link is back.

use std::collections::VecDeque;

use crate::ssntp::frame::{Frame, Op};

/// Default bounds: enough for a burst of failures during an outage, small
/// enough for a constrained node.
pub(crate) const MAX_FRAMES: usize = 4096;
pub(crate) const MAX_BYTES: usize = 4 << 20;

/// The queue of facts waiting for the link.
#[derive(Debug)]
pub(crate) struct Outbox {
    frames: VecDeque<Frame>,
    bytes: usize,
    max_frames: usize,
    max_bytes: usize,
    dropped: usize,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox::new(MAX_FRAMES, MAX_BYTES)
    }
}

impl Outbox {
    pub(crate) fn new(max_frames: usize, max_bytes: usize) -> Outbox {
        Outbox {
            frames: VecDeque::new(),
            bytes: 0,
            max_frames: max_frames.max(1),
            max_bytes,
            dropped: 0,
        }
    }

    /// True for frames that report something that happened (events and
    /// errors); false for snapshots, which are resent fresh.
    pub(crate) fn is_fact(op: Op) -> bool {
        matches!(op, Op::Event(_) | Op::Error(_))
    }

    /// Keeps `f` for later, dropping the oldest facts past the bounds.
    pub(crate) fn push(&mut self, f: Frame) {
        self.bytes += f.payload.len();
        self.frames.push_back(f);
        while self.frames.len() > self.max_frames
            || (self.bytes > self.max_bytes && self.frames.len() > 1)
        {
            if let Some(old) = self.frames.pop_front() {
                self.bytes -= old.payload.len();
                self.dropped += 1;
            }
        }
    }

    /// Everything kept, oldest first, and how many were dropped.
    pub(crate) fn drain(&mut self) -> (Vec<Frame>, usize) {
        self.bytes = 0;
        let frames = self.frames.drain(..).collect();
        (frames, std::mem::take(&mut self.dropped))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.frames.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssntp::frame::{Command, ErrorCode, Event, Status};

    fn f(op: impl Into<Op>, n: usize) -> Frame {
        Frame::new(op, [0; 16], vec![b'x'; n])
    }

    #[test]
    fn facts_are_events_and_errors_snapshots_are_not() {
        assert!(Outbox::is_fact(Event::InstanceDeleted.into()));
        assert!(Outbox::is_fact(ErrorCode::StartFailure.into()));
        assert!(!Outbox::is_fact(Command::Stats.into()));
        assert!(!Outbox::is_fact(Status::Ready.into()));
    }

    #[test]
    fn order_is_kept_and_the_oldest_go_past_the_bounds() {
        let mut o = Outbox::new(3, 1000);
        for i in 0..5 {
            o.push(f(Event::InstanceDeleted, i));
        }
        assert_eq!(o.len(), 3);
        let (frames, dropped) = o.drain();
        assert_eq!(dropped, 2);
        let sizes: Vec<usize> = frames.iter().map(|f| f.payload.len()).collect();
        assert_eq!(sizes, [2, 3, 4], "oldest first, the two oldest dropped");
        assert_eq!(o.drain(), (Vec::new(), 0), "drained and the count reset");

        let mut o = Outbox::new(100, 10);
        o.push(f(Event::InstanceDeleted, 6));
        o.push(f(ErrorCode::StartFailure, 6));
        let (frames, dropped) = o.drain();
        assert_eq!((frames.len(), dropped), (1, 1), "byte bound");
        let mut o = Outbox::new(100, 10);
        o.push(f(Event::InstanceDeleted, 50));
        assert_eq!(o.len(), 1, "one fact larger than the bound is kept");
    }
}
