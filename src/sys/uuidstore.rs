//! The node's persistent SSNTP UUID, kept under the data root instead of
//! the original's fixed `/var/lib/ciao` and `/tmp/lock/ciao` (O1 in
//! docs/compatibility.md):
//!
//! * UUID file `<root>/local/uuid-storage/role/client/0x<role>`: 36 ASCII
//!   characters, no newline, mode 0600 (the same format as the Go library,
//!   so a node keeps its identity when switching implementations);
//! * lock `<root>/lock/client-role-0x<role>`, held for the life of the
//!   process through the returned [`Flock`].
//!
//! `<role>` is the role bit mask in lower-case hex without padding (`4`
//! agent, `10` netagent, `14` both, `8` scheduler). Nothing here is fatal:
//! every failure is logged and gives a fresh random UUID for this run.

use std::io;
use std::path::{Path, PathBuf};

use super::fs::{mkdir_p, sync_dir, write_durable};
use super::lock::{Flock, LockError};
use crate::ssntp::uuid::Uuid;

/// `<root>/local/uuid-storage/role/client`.
pub(crate) fn uuid_dir(data_root: &Path) -> PathBuf {
    data_root.join("local/uuid-storage/role/client")
}

/// `<root>/local/uuid-storage/role/client/0x<role>`.
pub(crate) fn uuid_path(data_root: &Path, role: u32) -> PathBuf {
    uuid_dir(data_root).join(format!("0x{role:x}"))
}

/// `<root>/lock/client-role-0x<role>`.
pub(crate) fn uuid_lock_path(data_root: &Path, role: u32) -> PathBuf {
    data_root
        .join("lock")
        .join(format!("client-role-0x{role:x}"))
}

/// What the stored bytes say.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    /// No file, or only white space: a UUID must be made and stored.
    Empty,
    /// A valid UUID.
    Valid(Uuid),
    /// Anything else: left untouched.
    Corrupt,
}

/// Interprets a UUID file's content. As the Go library, only the first 36
/// bytes count, so "UUID plus newline" (or any trailer) still works.
pub fn parse_stored(bytes: &[u8]) -> Stored {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Stored::Empty;
    }
    let Some(head) = bytes.get(..36) else {
        return Stored::Corrupt;
    };
    match std::str::from_utf8(head).ok().map(Uuid::parse) {
        Some(Ok(u)) => Stored::Valid(u),
        _ => Stored::Corrupt,
    }
}

fn load_or_create(data_root: &Path, role: u32) -> io::Result<Uuid> {
    let dir = uuid_dir(data_root);
    mkdir_p(&dir, 0o755)?;
    let path = uuid_path(data_root, role);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    match parse_stored(&bytes) {
        Stored::Valid(u) => Ok(u),
        Stored::Corrupt => {
            let u = Uuid::random();
            log::error!(
                "node UUID file {} does not hold a UUID; using {u} for this run and leaving the file as it is (remove it to get a new persistent UUID)",
                path.display()
            );
            Ok(u)
        }
        Stored::Empty => {
            let u = Uuid::random();
            write_durable(&path, u.to_string().as_bytes(), 0o600)?;
            // The directories may be new too: their names must last as well.
            for d in dir.ancestors().skip(1) {
                if !d.starts_with(data_root) {
                    break;
                }
                sync_dir(d)?;
            }
            log::info!("new node UUID {u} stored in {}", path.display());
            Ok(u)
        }
    }
}

/// The node UUID for `role`, and the lock that protects its file (keep it
/// for the life of the process; `None` when no lock was taken).
///
/// Lock busy (another process of the same role with this data root) ⇒ a
/// random UUID, not persisted. Missing or empty file ⇒ a new random UUID,
/// written atomically and synced. Unparsable file ⇒ a random UUID, file
/// untouched. Any I/O failure ⇒ a random UUID. All of these are logged.
pub(crate) fn node_uuid(data_root: &Path, role: u32) -> (Uuid, Option<Flock>) {
    let lock_path = uuid_lock_path(data_root, role);
    let lock = match lock_path.parent().map(|d| mkdir_p(d, 0o755)) {
        Some(Err(e)) => Err(LockError::Io(lock_path.clone(), e)),
        _ => Flock::try_lock(&lock_path),
    };
    let lock = match lock {
        Ok(l) => l,
        Err(e) => {
            let u = Uuid::random();
            match e {
                LockError::Busy(_) => {
                    log::warn!("{e}; using the random node UUID {u} for this run (not persisted)")
                }
                LockError::Io(..) => {
                    log::error!("{e}; using the random node UUID {u} for this run (not persisted)")
                }
            }
            return (u, None);
        }
    };
    match load_or_create(data_root, role) {
        Ok(u) => (u, Some(lock)),
        Err(e) => {
            let u = Uuid::random();
            log::error!(
                "cannot read or store the node UUID in {}: {e}; using the random UUID {u} for this run",
                uuid_path(data_root, role).display()
            );
            (u, Some(lock))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn root(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ciao-uuid-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn parse_forms() {
        let s = "181c8302-9922-41aa-af44-c74980ca4641";
        let u = Uuid::parse(s).unwrap();
        assert_eq!(parse_stored(s.as_bytes()), Stored::Valid(u));
        assert_eq!(parse_stored(format!("{s}\n").as_bytes()), Stored::Valid(u));
        assert_eq!(parse_stored(b""), Stored::Empty);
        assert_eq!(parse_stored(b" \n"), Stored::Empty);
        assert_eq!(parse_stored(b"181c8302-9922"), Stored::Corrupt);
        assert_eq!(parse_stored(&[0xffu8; 40]), Stored::Corrupt);
        assert_eq!(
            parse_stored(b"181c8302-9922-41aa-af44-c74980ca464g"),
            Stored::Corrupt
        );
    }

    #[test]
    fn persists_and_locks() {
        let r = root("persist");
        let (u1, lock) = node_uuid(&r, 0x14);
        assert!(lock.is_some());
        let path = r.join("local/uuid-storage/role/client/0x14");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, u1.to_string());
        assert_eq!(text.len(), 36);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o600, 0);
        assert!(r.join("lock/client-role-0x14").exists());

        // Same role while the lock is held: random and not persisted.
        let (u2, l2) = node_uuid(&r, 0x14);
        assert!(l2.is_none());
        assert_ne!(u1, u2);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), u1.to_string());

        drop(lock);
        let (u3, l3) = node_uuid(&r, 0x14);
        assert_eq!(u3, u1);
        assert!(l3.is_some());
        drop(l3);

        // Corrupt content: random, file untouched.
        std::fs::write(&path, b"not a uuid at all, not a uuid at all!").unwrap();
        let (u4, _l4) = node_uuid(&r, 0x14);
        assert_ne!(u4, u1);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"not a uuid at all, not a uuid at all!"
        );
        std::fs::remove_dir_all(&r).unwrap();
    }

    #[test]
    fn unusable_root_gives_random() {
        let (u, l) = node_uuid(Path::new("/proc/ciao-no-such-root"), 4);
        assert!(l.is_none());
        assert!(!u.is_nil());
    }
}
