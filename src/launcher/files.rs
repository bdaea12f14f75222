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
//! Also here, because it is the same kind of I/O: the scan of the
//! instances directory at start-up ([`scan`]).

use std::collections::VecDeque;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use log::{error, warn};
use mio::{Registry, Token};

use super::durable::Batches;
use crate::driver::{FileAction, FileError, FileOp, Input, Key, Res, Routed};
use crate::payloads::ident::is_hex_id;
use crate::sys::fs::{mkdir_p, remove_dir_all_same_fs, write_atomic, write_temp};
use crate::sys::syncer::{self, Done, Syncer};

/// Durable writes on their way to the disk, and the operations waiting
/// for them.
pub(crate) struct Files {
    batches: Batches<Key<Res>, FileOp>,
    syncer: Syncer,
}

impl Files {
    /// An executor whose syncer wakes the loop with `token`.
    pub(crate) fn new(token: Token) -> Files {
        Files {
            batches: Batches::default(),
            syncer: Syncer::new(token),
        }
    }

    /// Executes one operation, or defers it behind pending writes of the
    /// same files; its answer goes to `out` now, or later (a durable
    /// write: when its batch is durable, see [`Files::on_wake`]).
    pub(crate) fn apply(&mut self, op: FileOp, out: &mut VecDeque<Routed>) {
        let durable = matches!(op.action, FileAction::Write { durable: true, .. });
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
        let Some(job) = self.batches.take_job() else {
            return;
        };
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

    fn finish(&mut self, done: Done, out: &mut VecDeque<Routed>) {
        for (staged, r) in self.batches.finished(done) {
            let result = r
                .map(|()| Vec::new())
                .map_err(|e| FileError::new(&staged.path, &e));
            for key in staged.waiting {
                answer(key, result.clone(), out);
            }
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
                        self.batches.finished(done);
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

/// Every direct child directory of the instances directory, in name
/// order, with the bytes of its state file (or why it could not be read).
/// Never descends further (a container's volume tree is not an instance).
pub(crate) fn scan(root: &Path, state_file: &str) -> Vec<(String, Result<Vec<u8>, String>)> {
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
    names
        .into_iter()
        .filter(|name| {
            // Only a valid id becomes a path.
            let ok = is_hex_id(name);
            if !ok {
                warn!("ignoring {}: not an instance id", root.join(name).display());
            }
            ok
        })
        .filter(|name| {
            let dir = root.join(name);
            if !unfinished_creation(&dir_entries(&dir), state_file) {
                return true;
            }
            // A START killed before its state file was durable: nothing
            // was reported for it, so it is removed, never reported.
            match remove_dir_all_same_fs(&dir) {
                Ok(()) => warn!(
                    "removed {}: an unfinished creation (no {state_file})",
                    dir.display()
                ),
                Err(e) => error!("cannot remove unfinished {}: {e}", dir.display()),
            }
            false
        })
        .map(|name| {
            let path = root.join(&name).join(state_file);
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()));
            (name, bytes)
        })
        .collect()
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
/// creation leaves: no entry at all, or only temporary files of the state
/// file (`.<state file>.tmp-*`, see `sys::fs`).
fn unfinished_creation(names: &Option<Vec<String>>, state_file: &str) -> bool {
    let Some(names) = names else {
        return false;
    };
    let prefix = format!(".{state_file}.tmp-");
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
        let mut f = Files::new(Token(5));
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

    /// The original's gob `state` file is never read: a directory that
    /// holds only that is quarantined (reported, never re-adopted) and the
    /// scan leaves the file where it is.
    #[test]
    fn original_gob_state_file_is_quarantined_not_read() {
        use crate::launcher::state::{Found, STATE_FILE};
        let root = tmp("gob");
        std::fs::create_dir_all(root.join("d7d86208")).unwrap();
        let gob = b"\x3f\xff\x81\x03\x01\x01\x0bvmConfig\x01\xff\x82";
        std::fs::write(root.join("d7d86208").join("state"), gob).unwrap();
        let found: Vec<Found> = scan(&root, STATE_FILE)
            .into_iter()
            .map(|(id, bytes)| Found::classify(id, bytes))
            .collect();
        match &found[..] {
            [Found::Quarantined(id, why)] => {
                assert_eq!(id, "d7d86208");
                assert!(why.contains(STATE_FILE), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            std::fs::read(root.join("d7d86208").join("state")).unwrap(),
            gob
        );
        let _ = std::fs::remove_dir_all(root);
    }

    /// A directory holding only a temporary state file (or nothing) is
    /// an unfinished creation: the scan removes it and never reports it
    /// (issue 14: kill -9 during a START burst).
    #[test]
    fn unfinished_creations_are_removed_not_reported() {
        let names = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
        let f = "instance.yaml";
        assert!(unfinished_creation(&names(&[".instance.yaml.tmp-12-3"]), f));
        assert!(unfinished_creation(&names(&[]), f));
        assert!(!unfinished_creation(
            &names(&[".instance.yaml.tmp-1-1", "image.qcow2"]),
            f
        ));
        assert!(!unfinished_creation(&names(&["instance.yaml"]), f));
        assert!(!unfinished_creation(&names(&["state"]), f));
        assert!(!unfinished_creation(&None, f));
        let root = tmp("unfinished");
        std::fs::create_dir_all(root.join("abc1")).unwrap();
        std::fs::write(root.join("abc1").join(".instance.yaml.tmp-7-1"), "x").unwrap();
        std::fs::create_dir_all(root.join("abc2")).unwrap();
        std::fs::write(root.join("abc2").join("instance.yaml"), "y").unwrap();
        let found = scan(&root, f);
        let ids: Vec<_> = found.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["abc2"]);
        assert!(!root.join("abc1").exists());
        let _ = std::fs::remove_dir_all(root);
    }

    /// Only direct children of the instances directory whose names are
    /// instance ids are read; nested directories are never scanned.
    #[test]
    fn scan_reads_only_direct_children_with_valid_ids() {
        let root = tmp("scan");
        std::fs::create_dir_all(root.join("abc1").join("volumes").join("abc2")).unwrap();
        std::fs::write(root.join("abc1").join("instance.yaml"), "x").unwrap();
        std::fs::write(root.join("abc1/volumes/abc2/instance.yaml"), "y").unwrap();
        std::fs::create_dir_all(root.join("not-an-id")).unwrap();
        std::fs::create_dir_all(root.join("e0e0")).unwrap();
        std::fs::write(root.join("e0e0").join("console.log"), "z").unwrap();
        let found = scan(&root, "instance.yaml");
        let ids: Vec<_> = found.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["abc1", "e0e0"]);
        assert_eq!(found[0].1.as_deref(), Ok(&b"x"[..]));
        assert!(found[1].1.is_err(), "no state file");
        let _ = std::fs::remove_dir_all(root);
    }
}
