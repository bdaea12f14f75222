//! The systemd notification protocol (`sd_notify(3)`) without libsystemd:
//! one datagram of `KEY=VALUE` lines to the socket named by
//! `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading
//! `@`). The socket is non-blocking and a failure is logged once and
//! otherwise ignored: the launcher runs on whether or not anyone listens.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where and how the service manager wants to hear from us.
pub(crate) struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
    /// A send already failed (and was logged).
    failed: bool,
    /// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when the
    /// watchdog is enabled for this process.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` and
    /// removes them from the environment, so that the processes we start
    /// (qemu, docker) do not talk to the service manager in our name.
    /// `None` when not started by a service manager that wants
    /// notifications, or when the socket cannot be made (logged).
    pub(crate) fn from_env() -> Option<Notifier> {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        for v in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            std::env::remove_var(v);
        }
        let socket = socket?;
        let watchdog = watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id());
        match Self::open(socket.as_encoded_bytes()) {
            Ok((sock, addr)) => Some(Notifier {
                sock,
                addr,
                failed: false,
                watchdog,
            }),
            Err(e) => {
                log::warn!(
                    "NOTIFY_SOCKET={}: {e}; not notifying the service manager",
                    socket.to_string_lossy()
                );
                None
            }
        }
    }

    fn open(name: &[u8]) -> io::Result<(UnixDatagram, SocketAddr)> {
        let addr = match name {
            [b'@', rest @ ..] => SocketAddr::from_abstract_name(rest)?,
            [b'/', ..] => {
                use std::os::unix::ffi::OsStrExt;
                SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(name))?
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "neither an absolute path nor an abstract (@) name",
                ))
            }
        };
        let sock = UnixDatagram::unbound()?;
        sock.set_nonblocking(true)?;
        Ok((sock, addr))
    }

    /// A notifier for `socket` (as `$NOTIFY_SOCKET` would name it), for
    /// tests.
    #[cfg(test)]
    pub(crate) fn to(socket: &str, watchdog: Option<Duration>) -> io::Result<Notifier> {
        let (sock, addr) = Self::open(socket.as_bytes())?;
        Ok(Notifier {
            sock,
            addr,
            failed: false,
            watchdog,
        })
    }

    /// How often the loop must send `WATCHDOG=1`, if at all.
    pub(crate) fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines). Never blocks;
    /// the first failure is logged, later ones are not.
    pub(crate) fn send(&mut self, state: &str) {
        match self.sock.send_to_addr(state.as_bytes(), &self.addr) {
            Ok(_) => self.failed = false,
            Err(e) if !self.failed => {
                self.failed = true;
                log::warn!("cannot notify the service manager: {e}");
            }
            Err(_) => {}
        }
    }
}

/// Half of `$WATCHDOG_USEC` (as `sd_watchdog_enabled(3)` advises), or
/// `None` when it is absent, zero or malformed, or when `$WATCHDOG_PID`
/// names another process.
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own: u32) -> Option<Duration> {
    if let Some(p) = pid {
        if p.trim().parse::<u32>().ok() != Some(own) {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_is_half_the_period_and_only_for_us() {
        let half = Some(Duration::from_millis(500));
        assert_eq!(watchdog_interval(Some("1000000"), None, 7), half);
        assert_eq!(watchdog_interval(Some("1000000"), Some("7"), 7), half);
        assert_eq!(watchdog_interval(Some("1000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval(None, Some("7"), 7), None);
    }

    #[test]
    fn messages_reach_a_path_socket_and_failures_are_not_fatal() {
        let dir = std::env::temp_dir().join(format!("ciao-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let mut n = Notifier::to(path.to_str().unwrap(), None).unwrap();
        n.send("READY=1\nSTATUS=up");
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=up");
        drop(listener);
        std::fs::remove_dir_all(&dir).unwrap();
        n.send("WATCHDOG=1");
        assert!(n.failed, "a failure is noted, not fatal");
    }

    #[test]
    fn abstract_names_and_bad_names() {
        let name = format!("ciao-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let (sock, addr) = Notifier::open(format!("@{name}").as_bytes()).unwrap();
        sock.send_to_addr(b"READY=1", &addr).unwrap();
        let mut buf = [0u8; 16];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        assert!(Notifier::open(b"relative/path").is_err());
    }
}
