//! Writing a connection's pending output to a non-blocking socket from the
//! event loop: as much as the socket takes now, the rest when it is
//! writable again.

use std::io::{self, Write};

/// Writes `out` to `w` until it is empty or `w` would block, removing from
/// `out` what was written. `Ok` with bytes left in `out`: wait for the
/// socket to be writable. `Err`: the connection is broken (a write of zero
/// bytes counts as broken, so the caller cannot spin on it).
pub(crate) fn flush(w: &mut impl Write, out: &mut Vec<u8>) -> io::Result<()> {
    while !out.is_empty() {
        match w.write(out) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `room` bytes in all, `step` at a time, then would
    /// block; one `Interrupted` first.
    struct Sock {
        got: Vec<u8>,
        room: usize,
        step: usize,
        interrupted: bool,
    }

    impl Write for Sock {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if !self.interrupted {
                self.interrupted = true;
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = b.len().min(self.step).min(self.room - self.got.len());
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.got.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_what_the_socket_takes_and_keeps_the_rest() {
        let mut s = Sock {
            got: Vec::new(),
            room: 7,
            step: 3,
            interrupted: false,
        };
        let mut out = b"0123456789".to_vec();
        flush(&mut s, &mut out).unwrap();
        assert_eq!(s.got, b"0123456");
        assert_eq!(out, b"789");
        s.room = 100;
        flush(&mut s, &mut out).unwrap();
        assert_eq!(s.got, b"0123456789");
        assert!(out.is_empty());
    }

    #[test]
    fn a_zero_write_is_an_error() {
        let mut w: &mut [u8] = &mut [];
        let mut out = b"x".to_vec();
        let e = flush(&mut w, &mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WriteZero);
        assert_eq!(out, b"x");
    }
}
