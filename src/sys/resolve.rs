//! Host name lookups without blocking the event loop.
//!
//! # The helper-thread rule
//!
//! The launcher is one `mio` event loop, and nothing may block it: a slow
//! call stalls every instance, every timer and the shutdown signals with it.
//! Almost everything has a non-blocking form that the loop drives itself.
//! `getaddrinfo(3)` does not: it reads `/etc/hosts`, talks to DNS servers
//! and NSS modules, and may wait for minutes when a server does not answer
//! (`options timeout:`/`attempts:` in `resolv.conf`). So the rule is:
//!
//! - A helper thread exists **only** to make a blocking system call that has
//!   no non-blocking form; today that is `getaddrinfo` alone, here.
//! - It does nothing else: it makes the call, hands the raw result back
//!   through a channel and wakes the loop through a [`mio::Waker`]. What the
//!   answer means, how long to wait for it and what to do with a late one
//!   are decided on the loop by the caller (the SSNTP client).
//! - One job of a kind at a time: [`Resolver::submit`] is refused while a
//!   lookup is outstanding, even one whose caller has given up waiting. A
//!   stuck lookup is never killed and never duplicated; callers wait for it
//!   (with their own deadline) and then submit theirs.
//! - It never holds up the process: the thread is detached, never joined,
//!   and ends with the process when the loop returns from `main`. It
//!   inherits the loop thread's blocked shutdown signals (they are blocked
//!   before any thread exists), so SIGTERM still reaches the signalfd.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;

use mio::{Registry, Token, Waker};

/// Why a lookup could not be started.
#[derive(Debug)]
pub(crate) enum ResolveError {
    /// A lookup (possibly one nobody waits for any more) is still running.
    Busy,
    /// The waker could not be registered with the loop.
    Waker(io::Error),
    /// The helper thread could not be started.
    Spawn(io::Error),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Busy => f.write_str("a name lookup is already running"),
            ResolveError::Waker(e) => write!(f, "cannot create the resolver's waker: {e}"),
            ResolveError::Spawn(e) => write!(f, "cannot start the resolver thread: {e}"),
        }
    }
}

impl std::error::Error for ResolveError {}

/// A finished lookup: the name asked for and what `getaddrinfo` said.
#[derive(Debug)]
pub(crate) struct Lookup {
    pub host: String,
    pub port: u16,
    pub result: io::Result<Vec<SocketAddr>>,
}

/// The outstanding lookup.
struct Pending {
    host: String,
    port: u16,
    answer: Receiver<io::Result<Vec<SocketAddr>>>,
}

/// Runs at most one `getaddrinfo` at a time on a helper thread and wakes the
/// loop with its token when the answer is there.
pub(crate) struct Resolver {
    token: Token,
    /// Created on the first lookup (only one waker may exist per `Poll`,
    /// and a launcher configured with IP addresses never needs it).
    waker: Option<Arc<Waker>>,
    pending: Option<Pending>,
}

impl Resolver {
    /// A resolver whose answers wake the loop with `token`.
    pub(crate) fn new(token: Token) -> Resolver {
        Resolver {
            token,
            waker: None,
            pending: None,
        }
    }

    /// The name being looked up, while a lookup is outstanding.
    pub(crate) fn busy(&self) -> Option<(&str, u16)> {
        self.pending.as_ref().map(|p| (p.host.as_str(), p.port))
    }

    /// Starts looking up `host:port`; the loop is woken with the token when
    /// [`Resolver::take`] has the answer.
    pub(crate) fn submit(
        &mut self,
        registry: &Registry,
        host: &str,
        port: u16,
    ) -> Result<(), ResolveError> {
        if self.pending.is_some() {
            return Err(ResolveError::Busy);
        }
        let waker = match &self.waker {
            Some(w) => w.clone(),
            None => {
                let w = Arc::new(Waker::new(registry, self.token).map_err(ResolveError::Waker)?);
                self.waker = Some(w.clone());
                w
            }
        };
        let (tx, rx) = mpsc::channel();
        let name = host.to_string();
        std::thread::Builder::new()
            .name("ciao-resolve".into())
            .spawn(move || {
                // Only the blocking call and the hand-over happen here.
                let result = (name.as_str(), port)
                    .to_socket_addrs()
                    .map(|addrs| addrs.collect());
                // The loop may be gone (shutdown): nothing to tell then.
                if tx.send(result).is_ok() {
                    let _ = waker.wake();
                }
            })
            .map_err(ResolveError::Spawn)?;
        self.pending = Some(Pending {
            host: host.to_string(),
            port,
            answer: rx,
        });
        Ok(())
    }

    /// The finished lookup, if the outstanding one has finished; never
    /// blocks. Afterwards the resolver is free for the next lookup.
    pub(crate) fn take(&mut self) -> Option<Lookup> {
        let p = self.pending.as_ref()?;
        let result = match p.answer.try_recv() {
            Ok(result) => result,
            Err(TryRecvError::Empty) => return None,
            Err(TryRecvError::Disconnected) => Err(io::Error::other(
                "the resolver thread ended without an answer",
            )),
        };
        let p = self.pending.take()?;
        Some(Lookup {
            host: p.host,
            port: p.port,
            result,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};
    use std::time::{Duration, Instant};

    /// A numeric host goes through getaddrinfo without any DNS traffic; the
    /// answer arrives through the waker's token, and one lookup at a time.
    #[test]
    fn answer_arrives_through_the_waker() {
        let mut poll = Poll::new().unwrap();
        let mut r = Resolver::new(Token(7));
        assert!(r.take().is_none(), "nothing outstanding");
        r.submit(poll.registry(), "127.0.0.1", 8888).unwrap();
        assert_eq!(r.busy(), Some(("127.0.0.1", 8888)));
        assert!(matches!(
            r.submit(poll.registry(), "127.0.0.1", 1),
            Err(ResolveError::Busy)
        ));
        let mut events = Events::with_capacity(4);
        let end = Instant::now() + Duration::from_secs(10);
        let lookup = loop {
            assert!(Instant::now() < end, "no answer within 10 s");
            poll.poll(&mut events, Some(Duration::from_secs(1)))
                .unwrap();
            if events.iter().any(|e| e.token() == Token(7)) {
                if let Some(l) = r.take() {
                    break l;
                }
            }
        };
        assert_eq!((lookup.host.as_str(), lookup.port), ("127.0.0.1", 8888));
        let addrs = lookup.result.unwrap();
        assert_eq!(addrs[0], "127.0.0.1:8888".parse::<SocketAddr>().unwrap());
        assert_eq!(r.busy(), None);
        // Free again: a second lookup reuses the waker.
        r.submit(poll.registry(), "::1", 5).unwrap();
        assert_eq!(r.busy(), Some(("::1", 5)));
    }
}
