//! Advisory whole-file locks (`flock(2)`), as the original used for its
//! single-instance check (one launcher per data root) and its node-UUID
//! file (see `uuidstore`).
//!
//! `flock` locks belong to the open file description, so the lock lives as
//! long as the [`Flock`] value, is released when it is dropped (or when the
//! process dies, however it dies) and is not inherited by children (the
//! descriptor is close-on-exec). Two `Flock`s on one path in one process
//! conflict like two processes would.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::cvt;

/// Why a lock was not taken.
#[derive(Debug)]
pub(crate) enum LockError {
    /// Another open file description holds the lock (another process,
    /// normally another launcher with the same data root).
    Busy(PathBuf),
    /// The lock file could not be opened or locked.
    Io(PathBuf, io::Error),
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Busy(p) => write!(
                f,
                "lock {} is held by another process (is another launcher running with this data root?)",
                p.display()
            ),
            LockError::Io(p, e) => write!(f, "cannot lock {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for LockError {}

/// An exclusive `flock` on a file, held until drop.
#[derive(Debug)]
pub(crate) struct Flock {
    file: File,
}

impl Flock {
    /// Opens (creating with mode 0600 if needed, close-on-exec, read-only)
    /// `path` and takes `LOCK_EX | LOCK_NB` on it. Never blocks. The parent
    /// directory must exist.
    pub(crate) fn try_lock(path: &Path) -> Result<Flock, LockError> {
        let file = OpenOptions::new()
            .read(true)
            .write(false)
            .create(false)
            .custom_flags(libc::O_CREAT | libc::O_CLOEXEC)
            .mode(0o600)
            .open(path)
            .map_err(|e| LockError::Io(path.to_path_buf(), e))?;
        loop {
            // SAFETY: the descriptor is valid while `file` lives; flock takes
            // no pointers.
            let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            match cvt(r) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
                    return Err(LockError::Busy(path.to_path_buf()))
                }
                Err(e) => return Err(LockError::Io(path.to_path_buf(), e)),
            }
        }
        Ok(Flock { file })
    }
}

impl Drop for Flock {
    fn drop(&mut self) {
        // Closing the descriptor (dropping `file` right after) releases the
        // lock anyway; unlocking first just makes the intent explicit.
        // SAFETY: the descriptor is still open here.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ciao-lock-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn second_lock_is_busy_until_drop() {
        let d = tmpdir("busy");
        let p = d.join("client-agent.lock");
        let a = Flock::try_lock(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o600, 0, "mode {mode:o}");
        match Flock::try_lock(&p) {
            Err(LockError::Busy(q)) => assert_eq!(q, p),
            other => panic!("expected Busy, got {other:?}"),
        }
        let msg = Flock::try_lock(&p).unwrap_err().to_string();
        assert!(msg.contains("held by another process"), "{msg}");
        drop(a);
        let _b = Flock::try_lock(&p).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_directory_is_io_error() {
        let p = Path::new("/nonexistent-ciao-dir/x.lock");
        assert!(matches!(Flock::try_lock(p), Err(LockError::Io(..))));
    }
}
