//! File helpers: atomic replacement, durable replacement, `statfs`,
//! `mkdir -p` and an `rm -rf` that never crosses a mount point.
//!
//! Durability (docs/architecture.md, "durable before reported"): a state
//! file is replaced by writing a temporary file in the same directory,
//! `fdatasync`ing it, renaming it over the old one and `fsync`ing the
//! directory, so a reader (and a reboot) sees the old or the new content,
//! never a mix, and only our own files are flushed: never the whole file
//! system, whose other dirty pages (a VM's disk) are not ours to wait for.
//! On the loop the steps are split: [`write_temp`] runs inline, the syncs
//! and renames run in batches on the syncer thread (`sys::syncer`).
//! [`write_durable`] does all of it at once, for start-up (before the loop);
//! [`write_atomic`] is the unsynced form for files that need no durability.

use std::ffi::{CString, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::cvt;

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary name beside `path`: `.<name>.tmp-<pid>-<n>`. Hidden, so
/// directory scans that skip dot files never mistake it for real content.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let mut t = OsString::from(".");
    t.push(name);
    t.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    Ok(path.with_file_name(t))
}

/// Writes `bytes` to a fresh temporary file (mode `mode`, subject to the
/// umask) next to `path`; returns the temporary path. Removes it on error.
pub(crate) fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> io::Result<PathBuf> {
    let tmp = temp_path(path)?;
    let res = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes));
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// Replaces `path` with `bytes` atomically (temporary file in the same
/// directory, then `rename`). **No sync**: for files that need not
/// survive a crash (they are rebuilt), see [`write_durable`] otherwise.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = write_temp(path, bytes, mode)?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Replaces `path` with `bytes` atomically and durably, blocking: temporary
/// file, `fdatasync`, `rename`, `fsync` of the directory. For start-up
/// only; the loop uses the syncer thread instead.
pub(crate) fn write_durable(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = write_temp(path, bytes, mode)?;
    let renamed = sync_data(&tmp).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = renamed {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// `fdatasync(2)` of the file at `path`: its data (and the size that
/// reads need) is on disk; other files are not touched.
pub(crate) fn sync_data(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_data()
}

/// `fsync(2)` of directory `dir`: the names in it (a rename into it, a
/// new subdirectory) are on disk.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `mkdir -p` with `mode` (subject to the umask) for the directories it
/// creates; existing directories are left as they are.
pub(crate) fn mkdir_p(path: &Path, mode: u32) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
}

/// Mount points at or below `root`, from `/proc/self/mountinfo`.
fn mount_points_under(root: &Path) -> io::Result<Vec<PathBuf>> {
    let text = fs::read("/proc/self/mountinfo")?;
    Ok(parse_mountinfo_points(&text)
        .into_iter()
        .filter(|p| p.starts_with(root))
        .collect())
}

/// Field 5 of every mountinfo line, with the kernel's octal escapes
/// (`\040` for a space and so on) decoded.
pub fn parse_mountinfo_points(text: &[u8]) -> Vec<PathBuf> {
    text.split(|&b| b == b'\n')
        .filter_map(|line| line.split(|&b| b == b' ').nth(4))
        .filter(|f| !f.is_empty())
        .map(|f| PathBuf::from(std::ffi::OsStr::from_bytes(&unescape_mountinfo(f))))
        .collect()
}

/// A mountinfo field with the kernel's octal escapes (`\040` for a space,
/// `\134` for a backslash…) decoded.
pub(crate) fn unescape_mountinfo(f: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(f.len());
    let mut i = 0;
    while i < f.len() {
        let oct = f
            .get(i + 1..i + 4)
            .filter(|o| f[i] == b'\\' && o.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(o) => {
                let v = (o[0] - b'0') as u32 * 64 + (o[1] - b'0') as u32 * 8 + (o[2] - b'0') as u32;
                out.push(v as u8);
                i += 4;
            }
            None => {
                out.push(f[i]);
                i += 1;
            }
        }
    }
    out
}

fn crossing_error(p: &Path) -> io::Error {
    io::Error::other(format!(
        "{} is a mount point (or on another file system); refusing to remove through it",
        p.display()
    ))
}

/// First directory at or below `dir` (not following symlinks) whose device
/// differs from `dev`. Only directories are compared: on overlayfs a file
/// reports the device of the layer it comes from, not the overlay's, while
/// directories report the overlay's (a mounted file is caught by the
/// mount table check).
fn find_other_fs(dir: &Path, dev: u64) -> io::Result<Option<PathBuf>> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let p = entry.path();
        let m = fs::symlink_metadata(&p)?;
        if m.is_dir() && m.dev() != dev {
            return Ok(Some(p));
        }
        if m.is_dir() {
            if let Some(found) = find_other_fs(&p, dev)? {
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

fn remove_tree(dir: &Path, dev: u64) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let p = entry?.path();
        let m = fs::symlink_metadata(&p)?;
        if m.is_dir() && m.dev() != dev {
            return Err(crossing_error(&p));
        }
        if m.is_dir() {
            remove_tree(&p, dev)?;
        } else {
            fs::remove_file(&p)?;
        }
    }
    fs::remove_dir(dir)
}

/// `rm -rf path` that never crosses a file-system boundary (launcher defect
/// 26 in docs/compatibility.md: the original removed instance directories
/// through mounted ceph volumes).
///
/// Before removing anything it checks the whole tree: if any mount point
/// (from `/proc/self/mountinfo`, which also catches bind mounts of the same
/// file system) or any entry on another device lies at or below `path`, it
/// returns an error naming it and removes **nothing**, so the caller can
/// report the failure with the tree intact. Symlinks are removed, never
/// followed. A missing `path` is success.
pub(crate) fn remove_dir_all_same_fs(path: &Path) -> io::Result<()> {
    let top = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !top.is_dir() {
        return fs::remove_file(path);
    }
    let canon = fs::canonicalize(path)?;
    if let Some(m) = mount_points_under(&canon)?.first() {
        return Err(crossing_error(m));
    }
    if let Some(p) = find_other_fs(path, top.dev())? {
        return Err(crossing_error(&p));
    }
    remove_tree(path, top.dev())
}

/// The `statfs(2)` figures the node statistics need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StatFs {
    /// `f_bsize`: what the original multiplied block counts by.
    pub bsize: u64,
    /// `f_frsize`: the fundamental block size (usually equal to `bsize`).
    pub frsize: u64,
    /// `f_blocks`: total blocks.
    pub blocks: u64,
    /// `f_bfree`: free blocks.
    pub bfree: u64,
    /// `f_bavail`: blocks free for unprivileged users.
    pub bavail: u64,
}

/// `statfs(2)` on `path`.
pub(crate) fn statfs(path: &Path) -> io::Result<StatFs> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: plain data, filled in by statfs below.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated string and `st` a writable statfs,
    // both alive across the call.
    cvt(unsafe { libc::statfs(c.as_ptr(), &mut st) })?;
    // f_bsize and f_frsize are signed (__fsword_t), the counts unsigned.
    Ok(StatFs {
        bsize: u64::try_from(st.f_bsize).unwrap_or(0),
        frsize: u64::try_from(st.f_frsize).unwrap_or(0),
        blocks: st.f_blocks,
        bfree: st.f_bfree,
        bavail: st.f_bavail,
    })
}

/// Whether this process may write in `path` now: `access(2)` with `W_OK`,
/// which fails with EROFS on a read-only mount (even for root) and EACCES
/// without permission. Cheap enough to ask at every STATUS.
pub(crate) fn writable(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: `c` is a NUL-terminated string alive across the call.
    cvt(unsafe { libc::access(c.as_ptr(), libc::W_OK) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writable_tells_a_missing_directory() {
        let d = tmpdir("writable");
        assert!(writable(&d).is_ok());
        assert!(writable(&d.join("missing")).is_err());
        let _ = fs::remove_dir_all(&d);
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ciao-fs-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn entries(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tmpdir("atomic");
        let p = d.join("instance.yaml");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o077, 0);
        assert_eq!(entries(&d), ["instance.yaml"]);
        write_durable(&p, b"three", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"three");
        assert_eq!(entries(&d), ["instance.yaml"]);
        sync_dir(&d).unwrap();
        assert!(write_durable(&d.join("no/such/dir/x"), b"", 0o600).is_err());
        assert!(write_atomic(&d.join("no/such/dir/x"), b"", 0o600).is_err());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn mkdir_p_and_remove() {
        let d = tmpdir("rm");
        let deep = d.join("a/b/c");
        mkdir_p(&deep, 0o755).unwrap();
        mkdir_p(&deep, 0o755).unwrap();
        fs::write(deep.join("f"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc", d.join("a/link")).unwrap();
        remove_dir_all_same_fs(&d.join("a")).unwrap();
        assert!(fs::metadata("/etc/hostname").is_ok() || fs::metadata("/etc").is_ok());
        assert!(!d.join("a").exists());
        remove_dir_all_same_fs(&d.join("a")).unwrap(); // missing is fine
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_to_cross_a_mount() {
        // /proc is a mount point below "/": the pre-check must refuse and
        // remove nothing. (Only the check runs; "/" is never walked.)
        let e = mount_points_under(Path::new("/")).unwrap();
        assert!(e.iter().any(|p| p == Path::new("/proc")));
        let d = tmpdir("cross");
        fs::write(d.join("keep"), b"x").unwrap();
        // Files are not compared (overlayfs reports their layer's device).
        assert!(find_other_fs(&d, u64::MAX).unwrap().is_none());
        // A tree whose walk meets a directory on another device: simulate
        // with find_other_fs on a dev number that cannot match.
        mkdir_p(&d.join("sub"), 0o755).unwrap();
        assert!(find_other_fs(&d, u64::MAX).unwrap().is_some());
        // The walk itself refuses too (the pre-check above is what keeps
        // everything; the walk stops at the directory).
        assert!(remove_tree(&d, u64::MAX).is_err());
        assert!(d.join("sub").exists());
        fs::remove_dir_all(&d).unwrap();
    }

    /// A real tmpfs mounted inside the tree (needs root; skipped, with a
    /// message, where mounting is not allowed).
    #[test]
    fn refuses_a_real_mount_and_keeps_everything() {
        let d = tmpdir("realmount");
        let m = d.join("inst/volumes/v1");
        mkdir_p(&m, 0o755).unwrap();
        fs::write(d.join("inst/image.qcow2"), b"x").unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "ciao-test"])
            .arg(&m)
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("skipped: cannot mount tmpfs here");
            fs::remove_dir_all(&d).unwrap();
            return;
        }
        fs::write(m.join("precious"), b"data").unwrap();
        let e = remove_dir_all_same_fs(&d.join("inst")).unwrap_err();
        assert!(e.to_string().contains("mount point"), "{e}");
        assert!(m.join("precious").exists());
        assert!(d.join("inst/image.qcow2").exists());
        let _ = std::process::Command::new("umount").arg(&m).status();
        remove_dir_all_same_fs(&d.join("inst")).unwrap();
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn mountinfo_escapes() {
        let t = b"36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw\n\
                  37 35 98:0 / /var/lib/ciao rw - ext4 /dev/sda1 rw\n";
        let v = parse_mountinfo_points(t);
        assert_eq!(
            v,
            [
                PathBuf::from("/mnt/with space"),
                PathBuf::from("/var/lib/ciao")
            ]
        );
        assert!(parse_mountinfo_points(b"garbage\n\n1 2").is_empty());
    }

    #[test]
    fn statfs_root() {
        let s = statfs(Path::new("/")).unwrap();
        assert!(s.bsize > 0 && s.blocks > 0 && s.bavail <= s.blocks);
        assert!(statfs(Path::new("/no/such/path")).is_err());
    }
}
