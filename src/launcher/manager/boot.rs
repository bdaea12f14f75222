//! The boot data of STARTs waiting for their state file, packed into a
//! few large buffers instead of one small heap block per START.
//!
//! A START's cloud-init user data (about 1 kB with an ssh key) and meta
//! data are kept from its receipt until its state file is durable, which
//! in a burst is until the end of the burst. As ordinary heap blocks they
//! sit between the instances' long-lived allocations and, once freed,
//! leave a hole of their size in every page: measured, about 0.8 MB of the
//! heap at 1000 instances was such holes (docs/memory.md). Packed, they
//! live in buffers larger than glibc's mmap threshold (`sys::mem`), which
//! are mappings of their own, returned to the kernel when the last START
//! of the buffer is done with its data.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

/// Room in one buffer: large enough to be a mapping of its own (above the
/// 64 KiB mmap threshold), small enough that a few STARTs left over do not
/// hold much; only the pages written to are resident.
const BUFFER: usize = 256 * 1024;

type Buffer = Rc<RefCell<Vec<u8>>>;

/// One START's user data and meta data, in a shared buffer. The buffer is
/// freed when the last of its `BootData` is dropped.
pub(super) struct BootData {
    buf: Buffer,
    at: usize,
    user: usize,
    meta: usize,
}

impl BootData {
    /// Calls `f` with the user data and the meta data.
    pub(super) fn with<R>(&self, f: impl FnOnce(&[u8], &[u8]) -> R) -> R {
        let buf = self.buf.borrow();
        let user_end = self.at + self.user;
        let user = buf.get(self.at..user_end).unwrap_or_default();
        let meta = buf.get(user_end..user_end + self.meta).unwrap_or_default();
        f(user, meta)
    }
}

/// Packs boot data into the current buffer while it has room and is still
/// in use; a new buffer otherwise.
#[derive(Default)]
pub(super) struct BootPack {
    current: Weak<RefCell<Vec<u8>>>,
}

impl BootPack {
    /// A copy of `user` and `meta` in a shared buffer.
    pub(super) fn pack(&mut self, user: &[u8], meta: &[u8]) -> BootData {
        let len = user.len() + meta.len();
        let buf = match self.current.upgrade() {
            Some(b) if b.borrow().capacity() - b.borrow().len() >= len => b,
            _ => {
                let b: Buffer = Rc::new(RefCell::new(Vec::with_capacity(BUFFER.max(len))));
                self.current = Rc::downgrade(&b);
                b
            }
        };
        let at = {
            let mut v = buf.borrow_mut();
            let at = v.len();
            v.extend_from_slice(user);
            v.extend_from_slice(meta);
            at
        };
        BootData {
            buf,
            at,
            user: user.len(),
            meta: meta.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_into_one_buffer_and_frees_it_with_the_last_start() {
        let mut p = BootPack::default();
        let a = p.pack(b"user-a", b"meta-a");
        let b = p.pack(b"", b"meta-b");
        assert!(Rc::ptr_eq(&a.buf, &b.buf), "one buffer for both");
        a.with(|u, m| assert_eq!((u, m), (&b"user-a"[..], &b"meta-a"[..])));
        b.with(|u, m| assert_eq!((u, m), (&b""[..], &b"meta-b"[..])));
        drop(a);
        assert!(p.current.upgrade().is_some(), "b still holds it");
        drop(b);
        assert!(p.current.upgrade().is_none(), "freed with the last one");
        let c = p.pack(b"u", b"m");
        c.with(|u, m| assert_eq!((u, m), (&b"u"[..], &b"m"[..])));
    }

    #[test]
    fn a_full_buffer_is_followed_by_a_new_one() {
        let mut p = BootPack::default();
        let big = vec![7u8; BUFFER - 10];
        let a = p.pack(&big, b"");
        let b = p.pack(b"0123456789ab", b"");
        assert!(!Rc::ptr_eq(&a.buf, &b.buf));
        let huge = vec![1u8; BUFFER * 2];
        let c = p.pack(&huge, b"m");
        c.with(|u, m| assert_eq!((u.len(), m), (BUFFER * 2, &b"m"[..])));
        a.with(|u, _| assert_eq!(u, &big[..]));
    }
}
