//! What the launcher tells its service manager (systemd `Type=notify`):
//! READY=1 once, when recovery is done and the loop runs; STATUS= when
//! the connection state or the instance count changes (not every turn);
//! WATCHDOG=1 from the loop, so a stuck loop misses it and gets restarted;
//! STOPPING=1 at shutdown. The datagrams are written by
//! [`crate::sys::notify`].

use std::time::Instant;

use crate::sys::notify::Notifier;

/// The notification side of the loop; does nothing without a notifier.
pub(crate) struct Service {
    notifier: Option<Notifier>,
    /// What STATUS= last said: the server connected to and the instance
    /// count; `None` before READY=1.
    said: Option<(Option<String>, usize)>,
    /// When WATCHDOG=1 is next due.
    watchdog_due: Option<Instant>,
}

impl Service {
    pub(crate) fn new(notifier: Option<Notifier>) -> Service {
        Service {
            notifier,
            said: None,
            watchdog_due: None,
        }
    }

    /// Called every turn of the loop, the first time once recovery is done.
    pub(crate) fn turn(&mut self, now: Instant, connected_to: Option<&str>, instances: usize) {
        let Some(n) = self.notifier.as_mut() else {
            return;
        };
        let first = self.said.is_none();
        let changed = self
            .said
            .as_ref()
            .is_none_or(|(c, i)| c.as_deref() != connected_to || *i != instances);
        if changed {
            let link = match connected_to {
                Some(server) => format!("connected to {server}"),
                None => "not connected".to_string(),
            };
            let ready = if first { "READY=1\n" } else { "" };
            n.send(&format!("{ready}STATUS={link}; {instances} instance(s)"));
            self.said = Some((connected_to.map(str::to_string), instances));
        }
        if let Some(every) = n.watchdog() {
            if self.watchdog_due.is_none_or(|d| d <= now) {
                n.send("WATCHDOG=1");
                self.watchdog_due = Some(now + every);
            }
        }
    }

    /// When the loop must wake up for the next WATCHDOG=1.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.watchdog_due
    }

    /// Says the launcher is stopping (its instances are not).
    pub(crate) fn stopping(&mut self) {
        if let Some(n) = self.notifier.as_mut() {
            n.send("STOPPING=1\nSTATUS=stopping; instances keep running");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    use std::time::Duration;

    /// Everything the listener holds now.
    fn drain(l: &UnixDatagram) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = l.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    #[test]
    fn ready_once_status_on_change_watchdog_on_time() {
        let name = format!("@ciao-service-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(&name.as_bytes()[1..]).unwrap();
        let l = UnixDatagram::bind_addr(&addr).unwrap();
        l.set_nonblocking(true).unwrap();
        let every = Duration::from_millis(500);
        let mut s = Service::new(Some(Notifier::to(&name, Some(every)).unwrap()));
        let t0 = Instant::now();
        s.turn(t0, None, 2);
        assert_eq!(
            drain(&l),
            ["READY=1\nSTATUS=not connected; 2 instance(s)", "WATCHDOG=1"]
        );
        assert_eq!(s.deadline(), Some(t0 + every));
        s.turn(t0 + Duration::from_millis(10), None, 2);
        assert!(drain(&l).is_empty(), "nothing changed, nothing due");
        s.turn(t0 + Duration::from_millis(20), Some("server"), 2);
        s.turn(t0 + Duration::from_millis(30), Some("server"), 3);
        assert_eq!(
            drain(&l),
            [
                "STATUS=connected to server; 2 instance(s)",
                "STATUS=connected to server; 3 instance(s)"
            ]
        );
        s.turn(t0 + every, Some("server"), 3);
        assert_eq!(drain(&l), ["WATCHDOG=1"]);
        s.stopping();
        assert_eq!(
            drain(&l),
            ["STOPPING=1\nSTATUS=stopping; instances keep running"]
        );
    }

    #[test]
    fn without_a_notifier_nothing_is_due() {
        let mut s = Service::new(None);
        s.turn(Instant::now(), None, 0);
        s.stopping();
        assert_eq!(s.deadline(), None);
    }
}
