//! Durable writes in batches, and the order of the file operations around
//! them. Pure: `files.rs` writes the temporary files and executes the
//! operations, `sys::syncer` makes a batch durable on its thread.
//!
//! A durable write is staged into the *next* batch (its temporary file is
//! already written); the next batch goes to the syncer only when no batch
//! is in flight, so batches complete in the order they were made and a
//! later write of a file is never renamed before an earlier one. A burst
//! of writes costs one `fdatasync` per file and one `fsync` per distinct
//! directory, not one round of syncs per file. A file written twice
//! before its batch leaves is written once, and both writers are answered.
//!
//! Records of the state log (`statelog.rs`) ride in the same batches:
//! the loop appends a batch's records in one write when the batch leaves,
//! and the syncer syncs the log once for all of them. A record names its
//! instance's directory, so it is ordered against the operations on that
//! tree like a write of a file in it.
//!
//! Every other operation runs at once on the loop, unless it touches a
//! path (the same path, or one inside the other) that a staged, in-flight
//! or deferred operation touches: then it is deferred, and run once those
//! are done, in the order the operations were asked for. So removing an
//! instance's directory never races the rename of its state file into
//! it, and a read sees the last write. A durable write waits only behind
//! deferred operations (staging it behind a batch already keeps it in
//! order).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use crate::sys::syncer::{Done, Job};

/// One file of a batch: where it goes, its temporary file, who waits.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Staged<K> {
    pub path: PathBuf,
    pub tmp: PathBuf,
    /// Every writer of this path in the batch, in order.
    pub waiting: Vec<K>,
}

/// The state log records of a batch.
#[derive(Debug)]
pub(crate) struct Records<K> {
    /// The frames, in order.
    pub bytes: Vec<u8>,
    /// The instance directory of each record, in order.
    pub dirs: Vec<PathBuf>,
    /// Who waits, in order.
    pub waiting: Vec<K>,
}

impl<K> Default for Records<K> {
    fn default() -> Self {
        Records {
            bytes: Vec::new(),
            dirs: Vec::new(),
            waiting: Vec::new(),
        }
    }
}

/// The log part of a batch leaving for the syncer: what to append, and
/// the directories to sync after the log.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LogBatch {
    pub bytes: Vec<u8>,
    pub dirs: Vec<PathBuf>,
}

/// What a finished batch answers.
#[derive(Debug)]
pub(crate) struct Finished<K> {
    /// Each file with its result.
    pub files: Vec<(Staged<K>, io::Result<()>)>,
    /// The waiters of the records, all answered with `log`.
    pub records: Vec<K>,
    pub log: io::Result<()>,
}

/// A deferred operation with what it touches.
#[derive(Debug)]
struct Deferred<T> {
    path: PathBuf,
    durable: bool,
    op: T,
}

/// The batches of durable writes (`K`: who waits for a write) and the
/// operations (`T`) deferred behind them.
#[derive(Debug)]
pub(crate) struct Batches<K, T> {
    next: Vec<Staged<K>>,
    /// Where each path of `next` is in it.
    in_next: HashMap<PathBuf, usize>,
    flying: Option<Vec<Staged<K>>>,
    next_log: Records<K>,
    flying_log: Records<K>,
    /// Every path of `next` and `flying` (a record's: its directory), with how many of the two hold
    /// it: a burst of 1000 writes is checked against in O(log n), not
    /// by a walk over all of them for each operation.
    batched: BTreeMap<PathBuf, usize>,
    deferred: VecDeque<Deferred<T>>,
    /// Directories made since a batch last synced their parent: a file
    /// renamed into one lasts only if the directory's own name does.
    fresh: BTreeSet<PathBuf>,
}

impl<K, T> Default for Batches<K, T> {
    fn default() -> Self {
        Batches {
            next: Vec::new(),
            in_next: HashMap::new(),
            flying: None,
            next_log: Records::default(),
            flying_log: Records::default(),
            batched: BTreeMap::new(),
            deferred: VecDeque::new(),
            fresh: BTreeSet::new(),
        }
    }
}

/// The same path, or one inside the other.
fn overlap(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

impl<K, T> Batches<K, T> {
    /// Whether a staged or in-flight path is `path`, inside it, or holds it.
    fn batched_overlaps(&self, path: &Path) -> bool {
        path.ancestors().any(|a| self.batched.contains_key(a))
            || self
                .batched
                .range::<Path, _>((Bound::Included(path), Bound::Unbounded))
                .next()
                .is_some_and(|(q, _)| q.starts_with(path))
    }

    /// Whether an operation on `path` (a durable write, or anything else)
    /// must be deferred rather than run now.
    pub(crate) fn must_wait(&self, path: &Path, durable: bool) -> bool {
        self.deferred.iter().any(|d| overlap(&d.path, path))
            || (!durable && self.batched_overlaps(path))
    }

    /// Keeps `op` until [`Batches::next_runnable`] gives it back.
    pub(crate) fn defer(&mut self, path: PathBuf, durable: bool, op: T) {
        self.deferred.push_back(Deferred { path, durable, op });
    }

    /// The first deferred operation that may run now (nothing earlier and
    /// unfinished touches its path). Call again after running it.
    pub(crate) fn next_runnable(&mut self) -> Option<T> {
        let i = (0..self.deferred.len()).find(|&i| {
            let d = &self.deferred[i];
            let behind_earlier = self
                .deferred
                .iter()
                .take(i)
                .any(|e| overlap(&e.path, &d.path));
            let behind_batch = !d.durable && self.batched_overlaps(&d.path);
            !behind_earlier && !behind_batch
        })?;
        self.deferred.remove(i).map(|d| d.op)
    }

    /// Adds the written temporary file `tmp` of `path` to the next batch;
    /// returns the temporary file it supersedes (to be removed), if `path`
    /// was already in it.
    pub(crate) fn stage(&mut self, path: PathBuf, tmp: PathBuf, who: K) -> Option<PathBuf> {
        if let Some(s) = self.in_next.get(&path).and_then(|&i| self.next.get_mut(i)) {
            s.waiting.push(who);
            return Some(std::mem::replace(&mut s.tmp, tmp));
        }
        self.in_next.insert(path.clone(), self.next.len());
        *self.batched.entry(path.clone()).or_default() += 1;
        self.next.push(Staged {
            path,
            tmp,
            waiting: vec![who],
        });
        None
    }

    /// Adds the log record `frame` about the instance whose directory is
    /// `dir` to the next batch.
    pub(crate) fn stage_record(&mut self, dir: PathBuf, frame: &[u8], who: K) {
        self.next_log.bytes.extend_from_slice(frame);
        *self.batched.entry(dir.clone()).or_default() += 1;
        self.next_log.dirs.push(dir);
        self.next_log.waiting.push(who);
    }

    /// Directory `dir` was made.
    pub(crate) fn created_dir(&mut self, dir: PathBuf) {
        self.fresh.insert(dir);
    }

    /// The tree at `path` was removed.
    pub(crate) fn removed_tree(&mut self, path: &Path) {
        self.fresh.retain(|d| !d.starts_with(path));
    }

    /// The next batch as a job for the syncer, unless one is in flight or
    /// nothing is staged. Each file's directory is synced after the
    /// renames, and its parent too when the directory is new; the log
    /// records, if any, come back apart (the caller appends them and adds
    /// the log to the job), with the parents of their new directories.
    pub(crate) fn take_job(&mut self) -> Option<(Job, Option<LogBatch>)> {
        if self.flying.is_some() || (self.next.is_empty() && self.next_log.waiting.is_empty()) {
            return None;
        }
        let batch = std::mem::take(&mut self.next);
        self.in_next.clear();
        let mut dirs: BTreeMap<PathBuf, Vec<usize>> = BTreeMap::new();
        let mut synced_new = Vec::new();
        for (i, s) in batch.iter().enumerate() {
            let dir = s.path.parent().unwrap_or(Path::new("."));
            dirs.entry(dir.to_path_buf()).or_default().push(i);
            if self.fresh.contains(dir) {
                let up = dir.parent().unwrap_or(Path::new("."));
                dirs.entry(up.to_path_buf()).or_default().push(i);
                synced_new.push(dir.to_path_buf());
            }
        }
        let records = std::mem::take(&mut self.next_log);
        let mut log_dirs = BTreeSet::new();
        for dir in &records.dirs {
            if self.fresh.contains(dir) {
                log_dirs.insert(dir.parent().unwrap_or(Path::new(".")).to_path_buf());
                synced_new.push(dir.clone());
            }
        }
        for d in synced_new {
            self.fresh.remove(&d);
        }
        let job = Job {
            files: batch
                .iter()
                .map(|s| (s.tmp.clone(), s.path.clone()))
                .collect(),
            dirs: dirs.into_iter().collect(),
            log: None,
        };
        let Records {
            bytes,
            dirs: record_dirs,
            waiting,
        } = records;
        let log = (!waiting.is_empty()).then(|| LogBatch {
            bytes,
            dirs: log_dirs.into_iter().collect(),
        });
        self.flying_log = Records {
            bytes: Vec::new(),
            dirs: record_dirs,
            waiting,
        };
        self.flying = Some(batch);
        Some((job, log))
    }

    /// True while a batch is with the syncer.
    pub(crate) fn in_flight(&self) -> bool {
        self.flying.is_some()
    }

    fn unbatch(&mut self, path: &Path) {
        if let Some(n) = self.batched.get_mut(path) {
            *n -= 1;
            if *n == 0 {
                self.batched.remove(path);
            }
        }
    }

    /// The batch in flight is done (`done`: one result per file, and the
    /// log's): each of its files with its result, and the waiters of its
    /// records with the log's. A result the syncer did not give (it
    /// ended) is an error.
    pub(crate) fn finished(&mut self, done: Done) -> Finished<K> {
        let batch = self.flying.take().unwrap_or_default();
        for s in &batch {
            self.unbatch(&s.path);
        }
        let records = std::mem::take(&mut self.flying_log);
        for d in &records.dirs {
            self.unbatch(d);
        }
        let mut results = done.files.into_iter();
        let files = batch
            .into_iter()
            .map(|s| {
                let r = results
                    .next()
                    .unwrap_or_else(|| Err(io::Error::other("lost from the write batch")));
                (s, r)
            })
            .collect();
        let log = done
            .log
            .map(|l| l.result)
            .unwrap_or_else(|| Err(io::Error::other("the state log was not synced")));
        Finished {
            files,
            records: records.waiting,
            log,
        }
    }

    /// Deferred operations, for the log at exit.
    pub(crate) fn deferred_len(&self) -> usize {
        self.deferred.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::syncer::LogDone;

    type B = Batches<&'static str, &'static str>;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn ok(n: usize) -> Done {
        Done {
            files: (0..n).map(|_| Ok(())).collect(),
            log: None,
        }
    }

    /// A burst: one job, one fdatasync per file, each directory once, and
    /// the parent of a new directory once.
    #[test]
    fn a_burst_is_one_job_with_each_directory_once() {
        let mut b = B::default();
        b.created_dir(p("/i/a"));
        b.created_dir(p("/i/b"));
        assert_eq!(b.stage(p("/i/a/s"), p("/i/a/.s1"), "w1"), None);
        assert_eq!(b.stage(p("/i/b/s"), p("/i/b/.s1"), "w2"), None);
        assert_eq!(b.stage(p("/i/b/d"), p("/i/b/.d1"), "w3"), None);
        let job = b.take_job().unwrap().0;
        assert_eq!(
            job.files,
            [
                (p("/i/a/.s1"), p("/i/a/s")),
                (p("/i/b/.s1"), p("/i/b/s")),
                (p("/i/b/.d1"), p("/i/b/d"))
            ]
        );
        assert_eq!(
            job.dirs,
            [
                (p("/i"), vec![0, 1, 2]),
                (p("/i/a"), vec![0]),
                (p("/i/b"), vec![1, 2])
            ]
        );
        assert!(b.take_job().is_none(), "one batch in flight");
        let answers = b.finished(ok(3));
        let who: Vec<_> = answers
            .files
            .iter()
            .flat_map(|(s, _)| s.waiting.clone())
            .collect();
        assert_eq!(who, ["w1", "w2", "w3"]);
        // The new directories' names are synced: not again.
        b.stage(p("/i/a/s"), p("/i/a/.s2"), "w4");
        assert_eq!(b.take_job().unwrap().0.dirs, [(p("/i/a"), vec![0])]);
    }

    /// The same file twice in a batch: written once, both answered; the
    /// superseded temporary file is handed back for removal.
    #[test]
    fn a_file_written_twice_in_a_batch_is_written_once() {
        let mut b = B::default();
        b.stage(p("/d/s"), p("/d/.1"), "first");
        assert_eq!(b.stage(p("/d/s"), p("/d/.2"), "second"), Some(p("/d/.1")));
        let job = b.take_job().unwrap().0;
        assert_eq!(job.files, [(p("/d/.2"), p("/d/s"))]);
        let answers = b.finished(ok(1));
        assert_eq!(answers.files[0].0.waiting, ["first", "second"]);
    }

    /// A later write of a file in flight goes into the next batch, which
    /// leaves only once the first is done: renames stay in order.
    #[test]
    fn a_later_write_waits_for_the_batch_in_flight() {
        let mut b = B::default();
        b.stage(p("/d/s"), p("/d/.1"), "first");
        let first = b.take_job().unwrap().0;
        assert!(!b.must_wait(&p("/d/s"), true), "staged, not deferred");
        b.stage(p("/d/s"), p("/d/.2"), "second");
        assert!(b.take_job().is_none(), "not while the first is in flight");
        assert!(b.in_flight());
        assert_eq!(first.files, [(p("/d/.1"), p("/d/s"))]);
        let answers = b.finished(Done {
            files: vec![Err(io::Error::other("disk"))],
            log: None,
        });
        assert!(answers.files[0].1.is_err());
        assert_eq!(answers.files[0].0.waiting, ["first"]);
        assert!(b.must_wait(&p("/d/s"), false), "still staged in the next");
        assert!(b.must_wait(&p("/d"), false));
        assert!(!b.must_wait(&p("/d/t"), false));
        let second = b.take_job().unwrap().0;
        assert_eq!(second.files, [(p("/d/.2"), p("/d/s"))]);
        // A short result (the syncer ended) fails the rest.
        let answers = b.finished(Done::default());
        assert!(answers.files[0].1.is_err());
        assert!(!b.must_wait(&p("/d/s"), false), "nothing pending any more");
    }

    /// Removing a tree with a pending write inside waits for the batch;
    /// a write into the tree asked for after the removal waits behind it;
    /// operations elsewhere run at once.
    #[test]
    fn a_removal_waits_for_writes_inside_and_keeps_later_ones_behind() {
        let mut b = B::default();
        b.stage(p("/i/a/s"), p("/i/a/.1"), "w1");
        assert!(b.must_wait(&p("/i/a"), false), "rm -rf of the directory");
        assert!(b.must_wait(&p("/i/a/s"), false), "read of the file");
        assert!(b.must_wait(&p("/i"), false), "an enclosing tree");
        assert!(!b.must_wait(&p("/i/b"), false), "another instance");
        assert!(!b.must_wait(&p("/i/ab"), false), "components, not prefixes");
        b.defer(p("/i/a"), false, "rm");
        assert!(
            b.must_wait(&p("/i/a/s"), true),
            "a write behind the removal"
        );
        b.defer(p("/i/a/s"), true, "w2");
        assert!(!b.must_wait(&p("/i/b/s"), true));
        assert_eq!(b.next_runnable(), None, "the batch is not even sent");
        b.take_job().unwrap();
        assert_eq!(b.next_runnable(), None, "the batch is in flight");
        b.finished(ok(1));
        assert_eq!(b.next_runnable(), Some("rm"));
        assert_eq!(b.next_runnable(), Some("w2"));
        assert_eq!(b.next_runnable(), None);
        assert_eq!(b.deferred_len(), 0);
    }

    /// Deferred operations on unrelated paths do not hold each other up,
    /// and a deferred durable write is released past a batch in flight.
    #[test]
    fn unrelated_deferred_operations_run_independently() {
        let mut b = B::default();
        b.stage(p("/i/a/s"), p("/i/a/.1"), "w1");
        b.take_job().unwrap();
        b.defer(p("/i/a/s"), false, "read a");
        b.defer(p("/i/a/s"), true, "write a");
        assert!(!b.must_wait(&p("/i/b/s"), false));
        assert_eq!(b.next_runnable(), None, "read a waits; write a behind it");
        b.finished(ok(1));
        assert_eq!(b.next_runnable(), Some("read a"));
        assert_eq!(b.next_runnable(), Some("write a"));
        // Removed trees forget their new directories.
        b.created_dir(p("/i/c"));
        b.created_dir(p("/i/c/x"));
        b.removed_tree(&p("/i/c"));
        assert!(b.fresh.is_empty());
    }

    /// Records ride in the batch: appended together, answered with the
    /// log's result, ordered against their instance's tree, and the
    /// parent of a new instance directory is synced after the log.
    #[test]
    fn records_ride_in_the_batch() {
        let mut b = B::default();
        b.created_dir(p("/i/a"));
        b.stage_record(p("/i/a"), b"one", "r1");
        b.stage_record(p("/i/b"), b"two", "r2");
        assert!(
            b.must_wait(&p("/i/a"), false),
            "rm -rf waits for the record"
        );
        assert!(!b.must_wait(&p("/i/c"), false));
        let (job, log) = b.take_job().unwrap();
        assert!(job.files.is_empty() && job.dirs.is_empty());
        assert_eq!(
            log,
            Some(LogBatch {
                bytes: b"onetwo".to_vec(),
                dirs: vec![p("/i")],
            })
        );
        b.stage_record(p("/i/a"), b"three", "r3");
        assert!(b.take_job().is_none(), "one batch in flight");
        let done = b.finished(Done {
            files: Vec::new(),
            log: Some(LogDone {
                result: Ok(()),
                rewritten: None,
            }),
        });
        assert_eq!(done.records, ["r1", "r2"]);
        assert!(done.log.is_ok() && done.files.is_empty());
        assert!(b.must_wait(&p("/i/a"), false), "r3 is still staged");
        let (_, log) = b.take_job().unwrap();
        assert_eq!(log.unwrap().dirs, Vec::<PathBuf>::new(), "/i was synced");
        // A job the syncer never ran fails its records.
        let done = b.finished(Done::default());
        assert_eq!(done.records, ["r3"]);
        assert!(done.log.is_err());
        assert!(!b.must_wait(&p("/i/a"), false));
    }
}
