//! Random bytes from the kernel (node UUIDs, jitter seeds).

use std::io::{self, Read};

/// Fills `buf` from `/dev/urandom`.
pub(crate) fn fill(buf: &mut [u8]) -> io::Result<()> {
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(buf))
}
