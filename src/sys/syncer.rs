//! Durable file replacement off the loop: the `fdatasync`s, renames and
//! directory `fsync`s of a batch of files, and the sync (or the rewrite)
//! of the state log, on a helper thread.
//!
//! These calls have no non-blocking form, and on a busy disk one of them
//! may wait behind other processes' writeback (a journal commit shared
//! with a VM's disk image) for a long time. So they follow the
//! helper-thread rule stated in [`super::resolve`]: the thread only makes
//! the calls a [`Job`] lists, in the order that keeps a crash harmless,
//! and hands back one result per file; one job at a time; it wakes the
//! loop through a socket pair (a second `mio::Waker` is not allowed on one
//! `Poll`, and the resolver's is its own); it is detached, never joined,
//! and inherits the loop thread's blocked shutdown signals. Which files go
//! into a job, in which order, and what the results mean is decided on
//! the loop (`launcher::durable`).

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::Duration;

use mio::{Interest, Registry, Token};

use super::fs::{sync_data, sync_dir};

/// Why a job could not be handed to the thread (the caller may run it
/// inline with [`run`] instead).
#[derive(Debug)]
pub(crate) enum SyncError {
    /// A job is still running.
    Busy,
    /// The wake-up socket could not be made or registered.
    Wake(io::Error),
    /// The helper thread could not be started.
    Spawn(io::Error),
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::Busy => f.write_str("a sync job is already running"),
            SyncError::Wake(e) => write!(f, "cannot set up the syncer's wake-up socket: {e}"),
            SyncError::Spawn(e) => write!(f, "cannot start the syncer thread: {e}"),
        }
    }
}

impl std::error::Error for SyncError {}

/// A batch of durable replacements.
#[derive(Debug, Default)]
pub(crate) struct Job {
    /// `(temporary file, file it replaces)`, already written, in order.
    pub files: Vec<(PathBuf, PathBuf)>,
    /// Directories to `fsync` after the renames, each with the indices (in
    /// `files`) of the files whose durability depends on it.
    pub dirs: Vec<(PathBuf, Vec<usize>)>,
    /// The append-only log the loop has appended to, if it did.
    pub log: Option<Box<LogJob>>,
}

/// Makes an appended log durable.
#[derive(Debug)]
pub(crate) struct LogJob {
    /// The log, appended to by the loop (which appends again only once
    /// the job is done).
    pub file: File,
    /// Directories to `fsync` after the log (new ones whose names the
    /// appended records depend on).
    pub dirs: Vec<PathBuf>,
    /// Then rewrite it (`rewrite(path)` puts a compact copy in its place
    /// and opens it). The rewrite comes after the sync, so whichever of
    /// the two files a crash leaves under the name holds every record.
    pub rewrite: Option<(PathBuf, Rewrite)>,
}

/// Puts a compact copy of the log at the path in its place, and returns
/// its length (an error: the old log is still in place).
pub(crate) type Rewrite = fn(&std::path::Path) -> io::Result<u64>;

/// The results of a [`Job`].
#[derive(Debug, Default)]
pub(crate) struct Done {
    /// One per file, in its order.
    pub files: Vec<io::Result<()>>,
    /// The log's, if the job had one.
    pub log: Option<LogDone>,
}

/// What became of the log.
#[derive(Debug)]
pub(crate) struct LogDone {
    /// Whether the appended records are durable.
    pub result: io::Result<()>,
    /// The rewritten log's length, if the job asked for a rewrite and
    /// the records were durable.
    pub rewritten: Option<io::Result<u64>>,
}

impl Done {
    /// Every result failed with `why` (the thread ended).
    fn failed(files: usize, log: bool, why: &str) -> Done {
        Done {
            files: (0..files).map(|_| Err(io::Error::other(why))).collect(),
            log: log.then(|| LogDone {
                result: Err(io::Error::other(why)),
                rewritten: None,
            }),
        }
    }
}

/// Executes a job, blocking: `fdatasync` every temporary file, then rename
/// each one whose sync succeeded over its target, then `fsync` every
/// directory once. A file is durable (its result `Ok`) only when all three
/// steps succeeded for it; a failed file's temporary file is removed and
/// the others go on. The syncs of a large job run on several short-lived
/// threads at once ([`in_parallel`]). Then the log: rewritten, or synced,
/// and its directories synced.
pub(crate) fn run(job: &Job) -> Done {
    let mut results = in_parallel(&job.files, |(tmp, _)| sync_data(tmp));
    for ((tmp, path), r) in job.files.iter().zip(results.iter_mut()) {
        if r.is_ok() {
            *r = std::fs::rename(tmp, path);
        }
        if r.is_err() {
            let _ = std::fs::remove_file(tmp);
        }
    }
    let dirs = in_parallel(&job.dirs, |(dir, _)| sync_dir(dir));
    for ((dir, users), synced) in job.dirs.iter().zip(dirs) {
        if let Err(e) = synced {
            for &i in users {
                if let Some(r @ Ok(())) = results.get_mut(i) {
                    *r = Err(io::Error::new(
                        e.kind(),
                        format!("fsync of {}: {e}", dir.display()),
                    ));
                }
            }
        }
    }
    Done {
        files: results,
        log: job.log.as_deref().map(run_log),
    }
}

fn run_log(job: &LogJob) -> LogDone {
    let mut result = job.file.sync_data();
    for dir in &job.dirs {
        if result.is_ok() {
            result = sync_dir(dir)
                .map_err(|e| io::Error::new(e.kind(), format!("fsync of {}: {e}", dir.display())));
        }
    }
    let rewritten = match (&result, &job.rewrite) {
        (Ok(()), Some((path, rewrite))) => Some(rewrite(path)),
        _ => None,
    };
    LogDone { result, rewritten }
}

/// Items per extra thread of [`in_parallel`], and the most threads.
const PER_THREAD: usize = 8;
const MAX_THREADS: usize = 16;

/// `f` on every item, in order of the results. A file system commits
/// concurrent syncs together (one journal commit, one cache flush for
/// all), so a burst of N files costs far fewer disk round trips when up to
/// [`MAX_THREADS`] threads sync at once than when one thread syncs them
/// one after the other. A thread that cannot be started leaves its share
/// to this one.
fn in_parallel<T: Sync>(
    items: &[T],
    f: impl Fn(&T) -> io::Result<()> + Sync,
) -> Vec<io::Result<()>> {
    let threads = (items.len() / PER_THREAD).clamp(1, MAX_THREADS);
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let f = &f;
    let share = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let started: Vec<_> = items
            .chunks(share)
            .map(|chunk| {
                let t = std::thread::Builder::new()
                    .name("ciao-sync-n".into())
                    .stack_size(64 * 1024)
                    .spawn_scoped(s, move || chunk.iter().map(f).collect::<Vec<_>>());
                (chunk, t)
            })
            .collect();
        started
            .into_iter()
            .flat_map(|(chunk, t)| match t {
                Ok(handle) => handle.join().unwrap_or_else(|_| {
                    chunk
                        .iter()
                        .map(|_| Err(io::Error::other("a sync thread failed")))
                        .collect()
                }),
                Err(_) => chunk.iter().map(f).collect(),
            })
            .collect()
    })
}

/// The running thread and its channels.
struct Link {
    jobs: Sender<Job>,
    done: Receiver<Done>,
    /// The loop's end of the wake-up socket pair (registered, non-blocking).
    wake: mio::net::UnixStream,
}

/// Runs at most one [`Job`] at a time on a helper thread, started at the
/// first job (an idle launcher has no thread), and wakes the loop with its
/// token when the results are there.
pub(crate) struct Syncer {
    token: Token,
    link: Option<Link>,
    /// Files in the job being run, and whether it has a log, while one is.
    running: Option<(usize, bool)>,
}

impl Syncer {
    /// A syncer whose results wake the loop with `token`.
    pub(crate) fn new(token: Token) -> Syncer {
        Syncer {
            token,
            link: None,
            running: None,
        }
    }

    /// True while a job runs.
    #[cfg(test)]
    pub(crate) fn busy(&self) -> bool {
        self.running.is_some()
    }

    /// Hands `job` to the thread (starting it if need be). On error the job
    /// comes back, not run.
    pub(crate) fn submit(&mut self, registry: &Registry, job: Job) -> Result<(), (SyncError, Job)> {
        if self.running.is_some() {
            return Err((SyncError::Busy, job));
        }
        if self.link.is_none() {
            match start(registry, self.token) {
                Ok(l) => self.link = Some(l),
                Err(e) => return Err((e, job)),
            }
        }
        let n = (job.files.len(), job.log.is_some());
        let Some(link) = self.link.as_ref() else {
            return Err((SyncError::Spawn(io::Error::other("no syncer thread")), job));
        };
        if let Err(mpsc::SendError(job)) = link.jobs.send(job) {
            // The thread is gone: start afresh next time.
            self.link = None;
            return Err((
                SyncError::Spawn(io::Error::other("the syncer thread ended")),
                job,
            ));
        }
        self.running = Some(n);
        Ok(())
    }

    /// The results of the running job, if it has finished; never blocks.
    /// Also empties the wake-up socket (call it on every event of the
    /// token).
    pub(crate) fn take(&mut self) -> Option<Done> {
        let link = self.link.as_mut()?;
        let mut buf = [0u8; 64];
        // Edge-triggered: read until there is nothing left.
        while matches!(link.wake.read(&mut buf), Ok(n) if n > 0) {}
        let got = link.done.try_recv();
        self.finish(got.map_err(|e| e == TryRecvError::Disconnected))
    }

    /// The results of the running job, waiting up to `timeout` for them
    /// (for the exit only: the loop never waits).
    pub(crate) fn wait(&mut self, timeout: Duration) -> Option<Done> {
        let link = self.link.as_ref()?;
        let got = link.done.recv_timeout(timeout);
        self.finish(got.map_err(|e| e == RecvTimeoutError::Disconnected))
    }

    /// `got`: the results, or whether the thread is gone.
    fn finish(&mut self, got: Result<Done, bool>) -> Option<Done> {
        let (files, log) = self.running?;
        match got {
            Ok(done) => {
                self.running = None;
                Some(done)
            }
            Err(false) => None,
            Err(true) => {
                self.running = None;
                self.link = None;
                Some(Done::failed(files, log, "the syncer thread ended"))
            }
        }
    }
}

fn start(registry: &Registry, token: Token) -> Result<Link, SyncError> {
    let (ours, theirs) = UnixStream::pair().map_err(SyncError::Wake)?;
    ours.set_nonblocking(true).map_err(SyncError::Wake)?;
    let mut wake = mio::net::UnixStream::from_std(ours);
    registry
        .register(&mut wake, token, Interest::READABLE)
        .map_err(SyncError::Wake)?;
    let (jobs, job_rx) = mpsc::channel::<Job>();
    let (done_tx, done) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("ciao-sync".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut theirs = theirs;
            // Ends when the loop drops its sender (or is gone).
            for job in job_rx {
                if done_tx.send(run(&job)).is_err() {
                    return;
                }
                let _ = theirs.write_all(&[1]);
            }
        });
    if let Err(e) = spawned {
        let _ = registry.deregister(&mut wake);
        return Err(SyncError::Spawn(e));
    }
    Ok(Link { jobs, done, wake })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};
    use std::time::Instant;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ciao-syncer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A job runs on the thread, its results arrive through the token; a
    /// file whose temporary file is missing fails alone.
    #[test]
    fn results_arrive_through_the_token() {
        let d = tmpdir("token");
        let t1 = super::super::fs::write_temp(&d.join("a"), b"one", 0o600).unwrap();
        let job = Job {
            files: vec![(t1, d.join("a")), (d.join(".missing"), d.join("b"))],
            dirs: vec![(d.clone(), vec![0, 1])],
            log: None,
        };
        let mut poll = Poll::new().unwrap();
        let mut s = Syncer::new(Token(9));
        assert!(s.take().is_none(), "nothing running");
        s.submit(poll.registry(), job).unwrap();
        assert!(s.busy());
        let (e, _) = s.submit(poll.registry(), Job::default()).unwrap_err();
        assert!(matches!(e, SyncError::Busy));
        let mut events = Events::with_capacity(4);
        let end = Instant::now() + Duration::from_secs(10);
        let done = loop {
            assert!(Instant::now() < end, "no results within 10 s");
            poll.poll(&mut events, Some(Duration::from_secs(1)))
                .unwrap();
            if events.iter().any(|e| e.token() == Token(9)) {
                if let Some(d) = s.take() {
                    break d;
                }
            }
        };
        let done = done.files;
        assert!(done[0].is_ok() && done[1].is_err(), "{done:?}");
        assert!(!s.busy());
        assert_eq!(std::fs::read(d.join("a")).unwrap(), b"one");
        assert!(!d.join("b").exists());
        // Free again, same thread: wait() for the exit path.
        let t2 = super::super::fs::write_temp(&d.join("a"), b"two", 0o600).unwrap();
        let job = Job {
            files: vec![(t2, d.join("a"))],
            dirs: vec![(d.join("gone"), vec![0])],
            log: None,
        };
        s.submit(poll.registry(), job).unwrap();
        let done = s.wait(Duration::from_secs(10)).unwrap().files;
        assert!(done[0].is_err(), "the directory fsync failed: not durable");
        assert_eq!(std::fs::read(d.join("a")).unwrap(), b"two");
        let _ = std::fs::remove_dir_all(d);
    }
}
