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

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use log::{error, warn};

use crate::driver::{FileAction, FileError, FileOp, Input, Key, Res, Routed};
use crate::payloads::ident::is_hex_id;
use crate::sys::fs::{mkdir_p, remove_dir_all_same_fs, write_atomic, WriteBatch};

/// Durable writes staged in this loop turn.
#[derive(Default)]
pub struct Files {
    batch: WriteBatch,
    waiting: Vec<(Key<Res>, PathBuf)>,
}

impl Files {
    pub fn new() -> Files {
        Files::default()
    }

    /// Executes one operation; its answer goes to `out` now, or at the next
    /// [`Files::commit`] for a durable write.
    pub fn apply(&mut self, op: FileOp, out: &mut Vec<Routed>) {
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
        out.push((
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
    pub fn pending(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Makes the staged writes durable and answers them.
    pub fn commit(&mut self, out: &mut Vec<Routed>) {
        if self.waiting.is_empty() {
            return;
        }
        let results = std::mem::take(&mut self.batch).commit();
        for (key, path) in std::mem::take(&mut self.waiting) {
            let result = match results.iter().find(|(p, _)| *p == path) {
                Some((_, Ok(()))) => Ok(Vec::new()),
                Some((_, Err(e))) => Err(FileError::new(&path, e)),
                None => Err(FileError {
                    kind: io::ErrorKind::Other,
                    detail: format!("{}: lost from the write batch", path.display()),
                }),
            };
            out.push((
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
pub fn scan(root: &Path, state_file: &str) -> Vec<(String, Result<Vec<u8>, String>)> {
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
        .map(|name| {
            let path = root.join(&name).join(state_file);
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()));
            (name, bytes)
        })
        .collect()
}
