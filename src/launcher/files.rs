//! The executor of [`FileOp`]s: the one place where the launcher's cores
//! get files written, read and removed.
//!
//! Operations run inline (small local files: the loop never waits for
//! another process here), except the durable part of a durable write: its
//! temporary file is written inline and staged; at the end of each turn
//! [`Files::flush`] hands the staged files, as one batch, to the syncer
//! thread (`fdatasync`, rename, `fsync` of the directories), and the
//! writes are answered when it is done ([`Files::on_wake`]). A core that
//! waits for that answer before reporting a change therefore never
//! reports something a crash could undo, and the loop goes on serving
//! everything else meanwhile. Operations that touch a file of a pending
//! batch wait for it (`launcher/durable.rs` decides the order).
//!
//! The state log's records (`statelog.rs`) are staged the same way and
//! appended in one write when their batch leaves; the syncer syncs the log
//! once per batch, and rewrites it compactly when it has grown
//! ([`StateLog`]).
//!
//! Also here, because it is the same kind of I/O: reading the state log
//! and the instances directory at start-up ([`recover`]).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{error, info, warn};
use mio::{Registry, Token};

use super::durable::{Batches, Finished};
use super::state::{Found, LEGACY_FILE, STATE_MODE};
use super::statelog::{self, Replay, LOCK_FILE, LOG_FILE, MAX_BODY};
use crate::driver::{FileAction, FileError, FileOp, Input, Key, Res, Routed};
use crate::payloads::ident::is_hex_id;
use crate::sys::fs::{mkdir_p, remove_dir_all_same_fs, sync_dir, write_atomic, write_temp};
use crate::sys::lock::Flock;
use crate::sys::syncer::{self, Done, LogDone, LogJob, Rewrite, Syncer};

/// The state log. Opened for each batch's append and closed once the
/// batch is synced: an idle launcher holds no file of its data root open
/// for writing (a read-only remount works, a log put back by hand is
/// the one used).
#[derive(Debug)]
pub(crate) struct StateLog {
    path: PathBuf,
    /// `state.log.lock`, held for the life of the process: one writer.
    _lock: Flock,
    /// Its length (what was appended).
    len: u64,
    /// Its length after its last rewrite.
    base: u64,
    /// [`REWRITE_MIN`] (smaller in tests).
    rewrite_min: u64,
}

/// A log shorter than this is never rewritten while the launcher runs.
const REWRITE_MIN: u64 = 1 << 20;
/// A log is rewritten once it is this many times its length after its
/// last rewrite (and at every start-up): at most a quarter of it is
/// then live records, and rewriting costs one read and one write of it.
const REWRITE_GROWTH: u64 = 4;

impl StateLog {
    fn new(path: PathBuf, len: u64, lock: Flock) -> StateLog {
        StateLog {
            path,
            _lock: lock,
            len,
            base: len,
            rewrite_min: REWRITE_MIN,
        }
    }

    /// Appends `bytes`; on an error, cuts the log back to its length.
    /// Returns the file, to be synced.
    fn append(&mut self, bytes: &[u8]) -> io::Result<File> {
        let mut file = OpenOptions::new().append(true).open(&self.path)?;
        let len = file.metadata()?.len();
        match file.write_all(bytes) {
            Ok(()) => {
                self.len = len + bytes.len() as u64;
                Ok(file)
            }
            Err(e) => {
                let _ = file.set_len(len);
                Err(e)
            }
        }
    }

    /// Whether the next sync should rewrite it.
    fn rewrite_due(&self) -> bool {
        self.len
            > self
                .rewrite_min
                .max(REWRITE_GROWTH.saturating_mul(self.base))
    }

    /// The outcome of a rewrite the syncer was asked for.
    fn rewritten(&mut self, r: io::Result<u64>) {
        match r {
            Ok(len) => {
                info!(
                    "{}: rewritten, {} bytes down to {len}",
                    self.path.display(),
                    self.len
                );
                self.len = len;
                self.base = len;
            }
            Err(e) => {
                // Tried again once it has grown as much again.
                error!("cannot rewrite {}: {e}", self.path.display());
                self.base = self.len;
            }
        }
    }
}

/// Durable writes on their way to the disk, and the operations waiting
/// for them.
pub(crate) struct Files {
    batches: Batches<Key<Res>, FileOp>,
    syncer: Syncer,
    log: StateLog,
    /// Why the records of the batch in flight could not be appended.
    append_failed: Option<io::Error>,
}

impl Files {
    /// An executor appending to `log`, whose syncer wakes the loop with
    /// `token`.
    pub(crate) fn new(token: Token, log: StateLog) -> Files {
        Files {
            batches: Batches::default(),
            syncer: Syncer::new(token),
            log,
            append_failed: None,
        }
    }

    /// Executes one operation, or defers it behind pending writes of the
    /// same files; its answer goes to `out` now, or later (a durable
    /// write: when its batch is durable, see [`Files::on_wake`]).
    pub(crate) fn apply(&mut self, op: FileOp, out: &mut VecDeque<Routed>) {
        let durable = matches!(
            op.action,
            FileAction::Write { durable: true, .. } | FileAction::Record { .. }
        );
        let path = op.action.path();
        if self.batches.must_wait(path, durable) {
            self.batches.defer(path.to_path_buf(), durable, op);
            return;
        }
        self.run(op, out);
    }

    fn run(&mut self, op: FileOp, out: &mut VecDeque<Routed>) {
        let FileOp { key, action } = op;
        let result = match action {
            FileAction::CreateDir { path, mode } => {
                let made = self.create_dir(&path, mode);
                if made.is_ok() {
                    self.batches.created_dir(path);
                }
                made
            }
            FileAction::Write {
                path,
                bytes,
                mode,
                durable,
            } => {
                if durable {
                    match self.with_parents(&path, || write_temp(&path, &bytes, mode)) {
                        Ok(tmp) => {
                            if let Some(old) = self.batches.stage(path, tmp, key) {
                                let _ = std::fs::remove_file(old);
                            }
                            return;
                        }
                        Err(e) => Err(FileError::new(&path, &e)),
                    }
                } else {
                    self.with_parents(&path, || write_atomic(&path, &bytes, mode))
                        .map(|()| Vec::new())
                        .map_err(|e| FileError::new(&path, &e))
                }
            }
            FileAction::Record { dir, frame } => {
                self.batches.stage_record(dir, &frame, key);
                return;
            }
            FileAction::CheckAbsent { path } => match std::fs::symlink_metadata(&path) {
                Ok(_) => Err(FileError::new(
                    &path,
                    &io::Error::from(io::ErrorKind::AlreadyExists),
                )),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(FileError::new(&path, &e)),
            },
            FileAction::Read { path } => {
                std::fs::read(&path).map_err(|e| FileError::new(&path, &e))
            }
            FileAction::RemoveFile { path } => match std::fs::remove_file(&path) {
                Ok(()) => Ok(Vec::new()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(FileError::new(&path, &e)),
            },
            FileAction::RemoveTree { path } => {
                let removed = remove_dir_all_same_fs(&path);
                self.batches.removed_tree(&path);
                removed
                    .map(|()| Vec::new())
                    .map_err(|e| FileError::new(&path, &e))
            }
        };
        answer(key, result, out);
    }

    /// Hands the staged writes to the syncer as one batch, unless a batch
    /// is still in flight (they leave when it is done). Call at the end of
    /// every turn's effects. Without a syncer thread (it cannot start) the
    /// batch is made durable here, and answered into `out`.
    pub(crate) fn flush(&mut self, registry: &Registry, out: &mut VecDeque<Routed>) {
        let Some((mut job, records)) = self.batches.take_job() else {
            return;
        };
        if let Some(records) = records {
            match self.log.append(&records.bytes) {
                Ok(file) => {
                    job.log = Some(Box::new(LogJob {
                        file,
                        dirs: records.dirs,
                        rewrite: self
                            .log
                            .rewrite_due()
                            .then(|| (self.log.path.clone(), rewrite as Rewrite)),
                    }))
                }
                Err(e) => self.append_failed = Some(e),
            }
        }
        if job.files.is_empty() && job.log.is_none() {
            self.finish(Done::default(), out);
            return;
        }
        if let Err((e, job)) = self.syncer.submit(registry, job) {
            warn!("{e}: syncing {} file(s) on the loop", job.files.len());
            let done = syncer::run(&job);
            self.finish(done, out);
        }
    }

    /// The syncer's token fired: answers the writes of a finished batch
    /// and runs the operations that waited for it.
    pub(crate) fn on_wake(&mut self, out: &mut VecDeque<Routed>) {
        if let Some(done) = self.syncer.take() {
            self.finish(done, out);
        }
    }

    /// The batch in flight is done: takes up a rewritten log.
    fn finished(&mut self, mut done: Done) -> Finished<Key<Res>> {
        if let Some(e) = self.append_failed.take() {
            done.log = Some(LogDone {
                result: Err(e),
                rewritten: None,
            });
        }
        if let Some(r) = done.log.as_mut().and_then(|l| l.rewritten.take()) {
            self.log.rewritten(r);
        }
        self.batches.finished(done)
    }

    fn finish(&mut self, done: Done, out: &mut VecDeque<Routed>) {
        let finished = self.finished(done);
        for (staged, r) in finished.files {
            let result = r
                .map(|()| Vec::new())
                .map_err(|e| FileError::new(&staged.path, &e));
            for key in staged.waiting {
                answer(key, result.clone(), out);
            }
        }
        let result = finished
            .log
            .map(|()| Vec::new())
            .map_err(|e| FileError::new(&self.log.path, &e));
        for key in finished.records {
            answer(key, result.clone(), out);
        }
        while let Some(op) = self.batches.next_runnable() {
            self.run(op, out);
        }
    }

    /// At exit: makes what is staged or in flight durable, waiting up to
    /// `limit`; nothing is answered (the loop is over). Operations still
    /// deferred are dropped, as a crash would.
    pub(crate) fn flush_at_exit(&mut self, registry: &Registry, limit: Duration) {
        let end = Instant::now() + limit;
        let mut out = VecDeque::new();
        loop {
            if self.batches.in_flight() {
                let left = end.saturating_duration_since(Instant::now());
                match self.syncer.wait(left) {
                    Some(done) => {
                        self.finished(done);
                    }
                    None => {
                        error!("state files not yet durable after {limit:?}: exiting anyway");
                        return;
                    }
                }
            }
            self.flush(registry, &mut out);
            if !self.batches.in_flight() {
                break;
            }
        }
        let n = self.batches.deferred_len();
        if n > 0 {
            warn!("{n} file operation(s) waiting for a durable write were not run at exit");
        }
    }

    /// Removes the state log and its lock file (a hard reset deleted
    /// every instance, and the process ends).
    pub(crate) fn remove_log(&mut self) {
        let path = &self.log.path;
        let removed = std::fs::remove_file(path)
            .and_then(|()| std::fs::remove_file(path.with_file_name(LOCK_FILE)))
            .and_then(|()| sync_dir(path.parent().unwrap_or(Path::new("."))));
        match removed {
            Ok(()) => info!("{} removed", path.display()),
            Err(e) => warn!("cannot remove {}: {e}", path.display()),
        }
    }

    fn create_dir(&mut self, path: &Path, mode: u32) -> Result<Vec<u8>, FileError> {
        let made = self.with_parents(path, || {
            std::fs::DirBuilder::new().mode(mode).create(path)?;
            // The mode must not depend on the umask.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        });
        made.map(|()| Vec::new())
            .map_err(|e| FileError::new(path, &e))
    }

    /// Runs `f`; if it failed because the parent directory is missing,
    /// makes it (0755, remembered as new) and runs `f` again.
    fn with_parents<T>(
        &mut self,
        path: &Path,
        mut f: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    mkdir_p(parent, 0o755)?;
                    self.batches.created_dir(parent.to_path_buf());
                }
                f()
            }
            r => r,
        }
    }
}

fn answer(key: Key<Res>, result: Result<Vec<u8>, FileError>, out: &mut VecDeque<Routed>) {
    out.push_back((
        key.inst,
        Input::File {
            res: key.what,
            result,
        },
    ));
}

/// What the launcher remembers at start-up, from the state log in the
/// instances directory `root` and the instance directories beside it, in
/// id order; and the log, rewritten (compact, durable) and open for
/// appending. Blocking: before the loop.
///
/// - A log of another format is an error: nothing is guessed or lost.
/// - Damaged records are skipped and reported, and a copy of the damaged
///   log is kept beside it; a torn tail (appends whose sync never
///   finished, so nothing was reported for them) is dropped.
/// - A directory without a record but with an `instance.yaml` (the
///   layout before the log) is moved into the log, and the file removed
///   once the log is durable.
/// - A directory without a record holding nothing (or only temporary
///   files of an `instance.yaml`) is a START that a crash interrupted
///   before its record was durable: nothing was reported, it is removed.
/// - A directory without a record holding anything else is quarantined:
///   reported exited, kept until it is deleted.
pub(crate) fn recover(root: &Path) -> Result<(Vec<Found>, StateLog), String> {
    let path = root.join(LOG_FILE);
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    // Before anything is read: two launchers on one log would each
    // rewrite it without the other's records (a simulated launcher takes
    // no agent lock, and neither does a hard reset).
    let lock = Flock::try_lock(&root.join(LOCK_FILE)).map_err(|e| e.to_string())?;
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(fail(&e)),
    };
    let replay = Replay::of(&bytes).map_err(|e| {
        fail(&format!(
            "{e}; refusing to start rather than lose instances"
        ))
    })?;
    for (at, len) in &replay.damaged {
        error!(
            "{}: {len} damaged byte(s) at offset {at} skipped: the records there are lost",
            path.display()
        );
    }
    if let Some((at, len)) = replay.tail {
        warn!(
            "{}: {len} byte(s) of unfinished records at offset {at} dropped (never synced, never reported)",
            path.display()
        );
    }
    if !replay.damaged.is_empty() {
        keep_damaged(&path, &bytes);
    }
    drop(bytes);
    let mut live = replay.live;
    let mut quarantined = Vec::new();
    let mut migrated = Vec::new();
    for name in instance_dirs(root) {
        let dir = root.join(&name);
        let names = dir_entries(&dir);
        let legacy = names.iter().flatten().any(|n| n == LEGACY_FILE);
        if live.contains_key(&name) {
            if legacy {
                migrated.push(dir);
            }
            continue;
        }
        if legacy {
            let file = dir.join(LEGACY_FILE);
            match std::fs::read(&file) {
                Ok(b) if b.len() <= MAX_BODY => {
                    info!("{}: moved into {LOG_FILE}", file.display());
                    live.insert(name, b);
                    migrated.push(dir);
                }
                Ok(_) => {
                    quarantined.push((name, format!("{LEGACY_FILE}: larger than {MAX_BODY} bytes")))
                }
                Err(e) => quarantined.push((name, format!("{}: {e}", file.display()))),
            }
        } else if unfinished_creation(&names) {
            match remove_dir_all_same_fs(&dir) {
                Ok(()) => warn!(
                    "removed {}: an unfinished creation (no state recorded)",
                    dir.display()
                ),
                Err(e) => error!("cannot remove unfinished {}: {e}", dir.display()),
            }
        } else {
            quarantined.push((
                name,
                format!("its directory holds files but {LOG_FILE} has no state for it"),
            ));
        }
    }
    let len = rewrite_log(
        &path,
        live.iter().map(|(id, s)| (id.as_str(), s.as_slice())),
    )
    .map_err(|e| fail(&format!("cannot write it: {e}")))?;
    let log = StateLog::new(path.clone(), len, lock);
    for dir in migrated {
        for n in dir_entries(&dir).into_iter().flatten() {
            if n == LEGACY_FILE || n.starts_with(&format!(".{LEGACY_FILE}.tmp-")) {
                if let Err(e) = std::fs::remove_file(dir.join(&n)) {
                    warn!("cannot remove {}: {e}", dir.join(&n).display());
                }
            }
        }
    }
    let mut found: Vec<Found> = live
        .into_iter()
        .map(|(id, state)| Found::classify(id, Ok(state)))
        .chain(
            quarantined
                .into_iter()
                .map(|(id, why)| Found::Quarantined(id, why)),
        )
        .collect();
    found.sort_by(|a, b| a.id().cmp(b.id()));
    Ok((found, log))
}

/// Keeps a copy of a damaged log for the operator, beside it.
fn keep_damaged(path: &Path, bytes: &[u8]) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let copy = path.with_file_name(format!("{LOG_FILE}.damaged-{secs}"));
    match write_atomic(&copy, bytes, STATE_MODE) {
        Ok(()) => error!("a copy of the damaged log is kept as {}", copy.display()),
        Err(e) => error!("cannot keep a copy of the damaged log: {e}"),
    }
}

/// The names of the instance directories in `root` (valid ids only), in
/// name order. Never descends further (a container's volume tree is not
/// an instance).
fn instance_dirs(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(root) {
        Ok(rd) => rd
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                error!("cannot read {}: {e}", root.display());
            }
            return Vec::new();
        }
    };
    names.sort();
    names.retain(|name| {
        // Only a valid id becomes a path.
        let ok = is_hex_id(name);
        if !ok {
            warn!("ignoring {}: not an instance id", root.join(name).display());
        }
        ok
    });
    names
}

/// Puts a log holding `live` in place of the log at `path`, durably (a
/// temporary file, synced, renamed over it, the directory synced);
/// returns its length.
fn rewrite_log<'a>(
    path: &Path,
    live: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> io::Result<u64> {
    let tmp = path.with_file_name(format!(".{LOG_FILE}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(STATE_MODE)
        .open(&tmp)
        .and_then(|f| {
            let mut w = BufWriter::with_capacity(64 * 1024, &f);
            statelog::write_log(&mut w, live)?;
            w.flush()?;
            drop(w);
            f.sync_data()?;
            f.metadata()
        })
        .and_then(|meta| std::fs::rename(&tmp, path).map(|()| meta.len()));
    match written {
        Ok(len) => {
            sync_dir(path.parent().unwrap_or(Path::new(".")))?;
            Ok(len)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The syncer's [`Rewrite`] of the running launcher's log: replays it and
/// writes what is live. Refuses a log with damaged records (its copy is
/// left to the next start-up, which keeps one).
fn rewrite(path: &Path) -> io::Result<u64> {
    let bytes = std::fs::read(path)?;
    let replay = Replay::of(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if !replay.damaged.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "it has damaged records",
        ));
    }
    drop(bytes);
    rewrite_log(
        path,
        replay
            .live
            .iter()
            .map(|(id, s)| (id.as_str(), s.as_slice())),
    )
}

/// The names in directory `dir` (`None` if it cannot be read).
fn dir_entries(dir: &Path) -> Option<Vec<String>> {
    let rd = std::fs::read_dir(dir).ok()?;
    Some(
        rd.flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
    )
}

/// True when an instance directory holds nothing but what an interrupted
/// creation leaves: no entry at all, or only temporary files of an
/// `instance.yaml` (`.instance.yaml.tmp-*`, see `sys::fs`; the layout
/// before the state log).
fn unfinished_creation(names: &Option<Vec<String>>) -> bool {
    let Some(names) = names else {
        return false;
    };
    let prefix = format!(".{LEGACY_FILE}.tmp-");
    names.iter().all(|n| n.starts_with(&prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::InstanceKey;
    use std::path::PathBuf;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ciao-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn key(what: Res) -> Key<Res> {
        Key {
            inst: InstanceKey {
                id: "abc1".into(),
                generation: 1,
            },
            what,
        }
    }

    fn run(f: &mut Files, action: FileAction) -> Vec<Routed> {
        let mut out = VecDeque::new();
        f.apply(
            FileOp {
                key: key(Res::State),
                action,
            },
            &mut out,
        );
        out.into()
    }

    /// The answers of the batch in flight, through the syncer's token.
    fn synced(f: &mut Files, poll: &mut mio::Poll) -> Vec<Routed> {
        let mut events = mio::Events::with_capacity(4);
        let end = Instant::now() + Duration::from_secs(10);
        let mut out = VecDeque::new();
        while out.is_empty() {
            assert!(Instant::now() < end, "no answer within 10 s");
            poll.poll(&mut events, Some(Duration::from_secs(1)))
                .unwrap();
            if events.iter().any(|e| e.token() == Token(5)) {
                f.on_wake(&mut out);
            }
        }
        out.into()
    }

    /// A durable write is answered only once its batch is synced, replaces
    /// the file whole (no temporary file left) with its mode whatever the
    /// umask; an operation on the same tree waits for it.
    #[test]
    fn durable_writes_are_answered_after_the_sync() {
        let root = tmp("durable");
        let mut poll = mio::Poll::new().unwrap();
        std::fs::create_dir_all(&root).unwrap();
        let (_, log) = recover(&root).unwrap();
        let mut f = Files::new(Token(5), log);
        let dir = root.join("abc1");
        let out = run(
            &mut f,
            FileAction::CreateDir {
                path: dir.clone(),
                mode: 0o750,
            },
        );
        assert!(
            matches!(&out[..], [(_, Input::File { result: Ok(_), .. })]),
            "{out:?}"
        );
        let again = run(
            &mut f,
            FileAction::CreateDir {
                path: dir.clone(),
                mode: 0o750,
            },
        );
        assert!(
            matches!(&again[..], [(_, Input::File { result: Err(e), .. })] if e.kind == io::ErrorKind::AlreadyExists)
        );
        let path = dir.join("instance.yaml");
        for text in ["one", "two"] {
            let out = run(
                &mut f,
                FileAction::Write {
                    path: path.clone(),
                    bytes: text.as_bytes().to_vec(),
                    mode: 0o600,
                    durable: true,
                },
            );
            assert!(out.is_empty(), "not answered before the sync");
            let mut now = VecDeque::new();
            f.flush(poll.registry(), &mut now);
            assert!(now.is_empty(), "synced off the loop");
            let done = synced(&mut f, &mut poll);
            assert!(
                matches!(&done[..], [(_, Input::File { result: Ok(_), .. })]),
                "{done:?}"
            );
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["instance.yaml"], "no temporary file left");
        // A write, then the removal of its tree: the removal waits.
        let out = run(
            &mut f,
            FileAction::Write {
                path: path.clone(),
                bytes: b"three".to_vec(),
                mode: 0o600,
                durable: true,
            },
        );
        assert!(out.is_empty());
        let out = run(&mut f, FileAction::RemoveTree { path: dir.clone() });
        assert!(out.is_empty(), "deferred behind the write");
        f.flush(poll.registry(), &mut VecDeque::new());
        let done = synced(&mut f, &mut poll);
        assert!(
            matches!(
                &done[..],
                [
                    (_, Input::File { result: Ok(_), .. }),
                    (_, Input::File { result: Ok(_), .. })
                ]
            ),
            "the write, then the removal: {done:?}"
        );
        assert!(!dir.exists());
        // At exit, what is staged is made durable without an answer.
        run(
            &mut f,
            FileAction::Write {
                path: root.join("late"),
                bytes: b"x".to_vec(),
                mode: 0o600,
                durable: true,
            },
        );
        f.flush_at_exit(poll.registry(), Duration::from_secs(10));
        assert_eq!(std::fs::read(root.join("late")).unwrap(), b"x");
        let _ = std::fs::remove_dir_all(root);
    }

    fn state(id: &str) -> Vec<u8> {
        use crate::launcher::state::StateFile;
        use crate::payloads::InstanceConfig;
        let config = InstanceConfig {
            instance_uuid: id.into(),
            cpus: 1,
            mem_mb: 64,
            ..InstanceConfig::default()
        };
        StateFile::new(config, false).encode()
    }

    fn ids(found: &[Found]) -> Vec<(&str, bool)> {
        found
            .iter()
            .map(|f| (f.id(), matches!(f, Found::Instance(..))))
            .collect()
    }

    fn record(f: &mut Files, id: &str, frame: Vec<u8>, root: &Path) -> Vec<Routed> {
        run(
            f,
            FileAction::Record {
                dir: root.join(id),
                frame,
            },
        )
    }

    /// Records are answered once the log is synced; a restart finds the
    /// last state of each instance, forgets removed ones, and rewrites
    /// the log compactly with the mode of a state file.
    #[test]
    fn records_are_durable_before_the_answer_and_replayed_at_restart() {
        use crate::launcher::state::{removal, StateFile};
        let root = tmp("records");
        std::fs::create_dir_all(&root).unwrap();
        let mut poll = mio::Poll::new().unwrap();
        let (found, log) = recover(&root).unwrap();
        assert!(found.is_empty());
        let busy = recover(&root).unwrap_err();
        assert!(
            busy.contains("held by another process"),
            "one writer: {busy}"
        );
        let mut f = Files::new(Token(5), log);
        let put = |id: &str| {
            let s = StateFile::decode(id, &state(id)).unwrap();
            s.record(id)
        };
        for id in ["aa01", "bb02", "cc03"] {
            assert!(
                record(&mut f, id, put(id), &root).is_empty(),
                "not before the sync"
            );
        }
        assert!(record(&mut f, "bb02", removal("bb02"), &root).is_empty());
        f.flush(poll.registry(), &mut VecDeque::new());
        let mut done = Vec::new();
        while done.len() < 4 {
            done.extend(synced(&mut f, &mut poll));
        }
        assert!(
            done.iter()
                .all(|(_, i)| matches!(i, Input::File { result: Ok(_), .. })),
            "{done:?}"
        );
        // Staged at exit: made durable without an answer.
        record(&mut f, "dd04", put("dd04"), &root);
        f.flush_at_exit(poll.registry(), Duration::from_secs(10));
        drop(f);
        let before = std::fs::metadata(root.join(LOG_FILE)).unwrap().len();
        let (found, _) = recover(&root).unwrap();
        assert_eq!(
            ids(&found),
            [("aa01", true), ("cc03", true), ("dd04", true)]
        );
        let meta = std::fs::metadata(root.join(LOG_FILE)).unwrap();
        assert!(meta.len() < before, "rewritten without bb02's records");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(root);
    }

    /// Once the log has grown enough, the syncer rewrites it after
    /// syncing the batch: the records are answered, the log shrinks, and
    /// appends go on into the new file.
    #[test]
    fn a_grown_log_is_rewritten_by_the_syncer() {
        use crate::launcher::state::removal;
        let root = tmp("grown");
        std::fs::create_dir_all(&root).unwrap();
        let mut poll = mio::Poll::new().unwrap();
        let (_, mut log) = recover(&root).unwrap();
        log.rewrite_min = 4096;
        let mut f = Files::new(Token(5), log);
        let mut batch = |f: &mut Files, ids: &[String], remove: bool| {
            for id in ids {
                let frame = if remove {
                    removal(id)
                } else {
                    statelog::Record::Put {
                        id,
                        state: &state(id),
                    }
                    .frame()
                };
                record(f, id, frame, &root);
            }
            f.flush(poll.registry(), &mut VecDeque::new());
            let mut done = Vec::new();
            while done.len() < ids.len() {
                done.extend(synced(f, &mut poll));
            }
            assert!(done
                .iter()
                .all(|(_, i)| matches!(i, Input::File { result: Ok(_), .. })));
        };
        let some: Vec<String> = (0..5).map(|n| format!("{n:04x}")).collect();
        let on_disk = || std::fs::metadata(root.join(LOG_FILE)).unwrap().len();
        batch(&mut f, &some, false);
        let one = on_disk();
        batch(&mut f, &some, false);
        let two = on_disk();
        assert!(two < 4096 && f.log.base < 100, "not yet: {two}");
        batch(&mut f, &some, false);
        assert_eq!(on_disk(), one, "rewritten to one record each");
        assert_eq!((f.log.len, f.log.base), (one, one));
        batch(&mut f, &some[1..], true);
        drop(f);
        let (found, _) = recover(&root).unwrap();
        assert_eq!(ids(&found), [("0000", true)]);
        let _ = std::fs::remove_dir_all(root);
    }

    /// The running launcher's rewrite keeps what is live and drops what is
    /// not (the syncer calls it once the log has grown).
    #[test]
    fn a_rewrite_keeps_what_is_live() {
        use crate::launcher::state::removal;
        let root = tmp("rewrite");
        std::fs::create_dir_all(&root).unwrap();
        let path = root.join(LOG_FILE);
        let mut bytes = statelog::HEADER.to_vec();
        for n in 0..50 {
            let id = format!("{n:04x}");
            bytes.extend(
                statelog::Record::Put {
                    id: &id,
                    state: &state(&id),
                }
                .frame(),
            );
            if n % 5 != 0 {
                bytes.extend(removal(&id));
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        let len = rewrite(&path).unwrap();
        assert_eq!(len, std::fs::metadata(&path).unwrap().len());
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&removal("0000"))
            .unwrap();
        let replay = Replay::of(&std::fs::read(&path).unwrap()).unwrap();
        let live: Vec<_> = replay.live.keys().map(String::as_str).collect();
        assert_eq!(
            live,
            ["0005", "000a", "000f", "0014", "0019", "001e", "0023", "0028", "002d"]
        );
        assert_eq!(replay.records, 11, "ten kept, one appended after");
        // A log with a damaged record is left as it is.
        let mut damaged = std::fs::read(&path).unwrap();
        let at = statelog::HEADER.len() + 20;
        damaged[at] ^= 1;
        std::fs::write(&path, &damaged).unwrap();
        assert!(rewrite(&path).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), damaged);
        let _ = std::fs::remove_dir_all(root);
    }

    /// The layout before the log: each `instance.yaml` is moved into the
    /// log and removed once the log is durable; an unreadable one is
    /// quarantined and left; the original's gob `state` file is never
    /// read (its directory is quarantined, the file left); only direct
    /// children with instance ids count.
    #[test]
    fn instance_yaml_files_move_into_the_log() {
        let root = tmp("migrate");
        std::fs::create_dir_all(root.join("abc1").join("volumes").join("abc2")).unwrap();
        std::fs::write(root.join("abc1").join(LEGACY_FILE), state("abc1")).unwrap();
        std::fs::write(
            root.join("abc1/volumes/abc2").join(LEGACY_FILE),
            state("abc2"),
        )
        .unwrap();
        std::fs::create_dir_all(root.join("bad1")).unwrap();
        std::fs::write(root.join("bad1").join(LEGACY_FILE), "{{{ not yaml").unwrap();
        std::fs::create_dir_all(root.join("d7d86208")).unwrap();
        let gob = b"\x3f\xff\x81\x03\x01\x01\x0bvmConfig\x01\xff\x82";
        std::fs::write(root.join("d7d86208").join("state"), gob).unwrap();
        std::fs::create_dir_all(root.join("not-an-id")).unwrap();
        let (found, _) = recover(&root).unwrap();
        assert_eq!(
            ids(&found),
            [("abc1", true), ("bad1", false), ("d7d86208", false)]
        );
        match &found[2] {
            Found::Quarantined(_, why) => assert!(why.contains(LOG_FILE), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(!root.join("abc1").join(LEGACY_FILE).exists(), "moved");
        assert!(root.join("abc1/volumes/abc2").join(LEGACY_FILE).exists());
        assert_eq!(
            std::fs::read(root.join("d7d86208").join("state")).unwrap(),
            gob
        );
        // Again: the same, from the log now; the bad one is in it too.
        let (again, _) = recover(&root).unwrap();
        assert_eq!(ids(&again), ids(&found));
        assert!(!root.join("bad1").join(LEGACY_FILE).exists());
        let _ = std::fs::remove_dir_all(root);
    }

    /// A directory holding nothing, or only a temporary state file, is an
    /// unfinished creation: removed, never reported (issue 14: kill -9
    /// during a START burst).
    #[test]
    fn unfinished_creations_are_removed_not_reported() {
        let names = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
        assert!(unfinished_creation(&names(&[".instance.yaml.tmp-12-3"])));
        assert!(unfinished_creation(&names(&[])));
        assert!(!unfinished_creation(&names(&[
            ".instance.yaml.tmp-1-1",
            "image.qcow2"
        ])));
        assert!(!unfinished_creation(&names(&["instance.yaml"])));
        assert!(!unfinished_creation(&names(&["state"])));
        assert!(!unfinished_creation(&None));
        let root = tmp("unfinished");
        std::fs::create_dir_all(root.join("abc1")).unwrap();
        std::fs::write(root.join("abc1").join(".instance.yaml.tmp-7-1"), "x").unwrap();
        std::fs::create_dir_all(root.join("abc3")).unwrap();
        std::fs::create_dir_all(root.join("abc2")).unwrap();
        std::fs::write(root.join("abc2").join("instance.yaml"), state("abc2")).unwrap();
        let (found, _) = recover(&root).unwrap();
        assert_eq!(ids(&found), [("abc2", true)]);
        assert!(!root.join("abc1").exists() && !root.join("abc3").exists());
        let _ = std::fs::remove_dir_all(root);
    }

    /// A torn tail is dropped quietly; damage in the middle loses only the
    /// damaged record, and a copy of the damaged log is kept; a log of
    /// another format stops the start-up and is left alone.
    #[test]
    fn torn_and_damaged_logs_lose_only_what_was_hit() {
        let root = tmp("damaged");
        std::fs::create_dir_all(&root).unwrap();
        let path = root.join(LOG_FILE);
        let mut bytes = statelog::HEADER.to_vec();
        let mut starts = Vec::new();
        for id in ["aa01", "bb02", "cc03"] {
            starts.push(bytes.len());
            bytes.extend(
                statelog::Record::Put {
                    id,
                    state: &state(id),
                }
                .frame(),
            );
        }
        let mut torn = bytes.clone();
        torn.truncate(bytes.len() - 7);
        std::fs::write(&path, &torn).unwrap();
        let (found, _) = recover(&root).unwrap();
        assert_eq!(ids(&found), [("aa01", true), ("bb02", true)]);
        let names = |root: &Path| -> Vec<String> {
            let mut v: Vec<_> = std::fs::read_dir(root)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&root), [LOG_FILE, LOCK_FILE], "no copy of a torn log");
        let mut damaged = bytes.clone();
        damaged[starts[1] + 14] ^= 0x20;
        std::fs::write(&path, &damaged).unwrap();
        let (found, _) = recover(&root).unwrap();
        assert_eq!(ids(&found), [("aa01", true), ("cc03", true)]);
        let kept = names(&root);
        assert_eq!(kept.len(), 3, "{kept:?}");
        assert!(kept[1].starts_with("state.log.damaged-"), "{kept:?}");
        assert_eq!(std::fs::read(root.join(&kept[1])).unwrap(), damaged);
        std::fs::write(&path, "ciao-launcher state log 7\n").unwrap();
        let e = recover(&root).unwrap_err();
        assert!(e.contains("refusing to start"), "{e}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"ciao-launcher state log 7\n"
        );
        let _ = std::fs::remove_dir_all(root);
    }
}
