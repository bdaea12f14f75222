//! Character device nodes: reading what a node points at, and making a
//! private node (for a macvtap's queue device, see `net::tapdev`).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use super::cvt;

/// A device number split in major and minor.
pub(crate) type DevNum = (u32, u32);

/// `Some(major, minor)` when `path` is a character device (not following a
/// symbolic link), `None` when it is something else, an error when it cannot
/// be looked at (missing: `NotFound`).
pub(crate) fn char_device(path: &Path) -> io::Result<Option<DevNum>> {
    let m = std::fs::symlink_metadata(path)?;
    if !m.file_type().is_char_device() {
        return Ok(None);
    }
    let rdev = m.rdev() as libc::dev_t;
    Ok(Some((libc::major(rdev), libc::minor(rdev))))
}

/// Makes the character device node `path` for `dev`, mode 0600 (whatever
/// the umask).
pub(crate) fn make_char_device(path: &Path, dev: DevNum) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))?;
    let rdev = libc::makedev(dev.0, dev.1);
    // SAFETY: `c` is a NUL-terminated path alive for the call.
    cvt(unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, rdev) })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Whether this process may make device nodes (effective uid 0; for the
/// tests that need it).
#[cfg(test)]
pub(crate) fn can_mknod() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_null_is_a_character_device_1_3_and_a_directory_is_not() {
        assert_eq!(char_device(Path::new("/dev/null")).unwrap(), Some((1, 3)));
        assert_eq!(char_device(Path::new("/")).unwrap(), None);
        let e = char_device(Path::new("/nonexistent/x")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
