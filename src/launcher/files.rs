//! The executor of [`FileOp`]s: the one place where the launcher's cores
//! get files written, read and removed.
//!
//! Operations run inline (small local files: the loop never waits for
//! another process here), except that a durable write is only staged: the
//! shell calls [`Files::commit`] once per loop turn, which makes every
//! staged file durable in one batch and only then answers the writes. A
//! core that waits for that answer before reporting a change therefore
//! never reports something a crash could undo.
//!
//! Also here, because it is the same kind of I/O: the scan of the
//! instances directory at start-up ([`scan`]).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use log::{error, warn};

use crate::driver::{FileAction, FileError, FileOp, Input, Key, Res, Routed};
use crate::payloads::ident::is_hex_id;
use crate::sys::fs::{mkdir_p, remove_dir_all_same_fs, write_atomic, WriteBatch};

/// Durable writes staged in this loop turn.
#[derive(Default)]
pub(crate) struct Files {
    batch: WriteBatch,
    waiting: Vec<(Key<Res>, PathBuf)>,
}

impl Files {
    pub(crate) fn new() -> Files {
        Files::default()
    }

    /// Executes one operation; its answer goes to `out` now, or at the next
    /// [`Files::commit`] for a durable write.
    pub(crate) fn apply(&mut self, op: FileOp, out: &mut VecDeque<Routed>) {
        let FileOp { key, action } = op;
        let result = match action {
            FileAction::CreateDir { path, mode } => create_dir(&path, mode),
            FileAction::Write {
                path,
                bytes,
                mode,
                durable,
            } => {
                if durable {
                    match self.stage(&path, &bytes, mode) {
                        Ok(()) => {
                            self.waiting.push((key, path));
                            return;
                        }
                        Err(e) => Err(e),
                    }
                } else {
                    with_parents(&path, || write_atomic(&path, &bytes, mode))
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
            FileAction::RemoveTree { path } => remove_dir_all_same_fs(&path)
                .map(|()| Vec::new())
                .map_err(|e| FileError::new(&path, &e)),
        };
        out.push_back((
            key.inst,
            Input::File {
                res: key.what,
                result,
            },
        ));
    }

    fn stage(&mut self, path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
        with_parents(path, || self.batch.stage(path, bytes, mode))
            .map_err(|e| FileError::new(path, &e))
    }

    /// True when durable writes wait for [`Files::commit`].
    pub(crate) fn pending(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Makes the staged writes durable and answers them.
    pub(crate) fn commit(&mut self, out: &mut VecDeque<Routed>) {
        if self.waiting.is_empty() {
            return;
        }
        let results: HashMap<PathBuf, io::Result<()>> = std::mem::take(&mut self.batch)
            .commit()
            .into_iter()
            .collect();
        for (key, path) in std::mem::take(&mut self.waiting) {
            let result = match results.get_key_value(&path) {
                Some((_, Ok(()))) => Ok(Vec::new()),
                Some((_, Err(e))) => Err(FileError::new(&path, e)),
                None => Err(FileError {
                    kind: io::ErrorKind::Other,
                    detail: format!("{}: lost from the write batch", path.display()),
                }),
            };
            out.push_back((
                key.inst,
                Input::File {
                    res: key.what,
                    result,
                },
            ));
        }
    }
}

fn create_dir(path: &Path, mode: u32) -> Result<Vec<u8>, FileError> {
    let made = with_parents(path, || {
        std::fs::DirBuilder::new().mode(mode).create(path)?;
        // The mode must not depend on the umask.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    });
    made.map(|()| Vec::new())
        .map_err(|e| FileError::new(path, &e))
}

/// Runs `f`; if it failed because the parent directory is missing, makes
/// it (0755) and runs `f` again.
fn with_parents<T>(path: &Path, mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    match f() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                mkdir_p(parent, 0o755)?;
            }
            f()
        }
        r => r,
    }
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

    /// A durable write is answered only at the commit, replaces the file
    /// whole (no temporary file left) with its mode whatever the umask.
    #[test]
    fn durable_writes_are_answered_at_commit() {
        let root = tmp("durable");
        let mut f = Files::new();
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
        for text in ["one", "two"] {
            let path = dir.join("instance.yaml");
            let out = run(
                &mut f,
                FileAction::Write {
                    path,
                    bytes: text.as_bytes().to_vec(),
                    mode: 0o600,
                    durable: true,
                },
            );
            assert!(
                out.is_empty() && f.pending(),
                "not answered before the commit"
            );
            let mut done = VecDeque::new();
            f.commit(&mut done);
            let done = Vec::from(done);
            assert!(
                matches!(&done[..], [(_, Input::File { result: Ok(_), .. })]),
                "{done:?}"
            );
        }
        let path = dir.join("instance.yaml");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["instance.yaml"], "no temporary file left");
        let out = run(&mut f, FileAction::RemoveTree { path: dir.clone() });
        assert!(matches!(&out[..], [(_, Input::File { result: Ok(_), .. })]));
        assert!(!dir.exists());
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
