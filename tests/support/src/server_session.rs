//! The three real binaries together, as a user runs them: a
//! `ciao-launcher-server` on loopback, a launcher in simulation connected
//! to it, and `ciaolc` against the server's REST API. Used by the tests
//! that drive the launcher through `ciaolc` (the README's session, volume
//! failures over SSNTP) and by those of the server's HTTP limits.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use crate::certgen::{self, CertSet, KeyKind};
use crate::proc::{wait_for, Proc, TempDir};

/// How long the server, the launcher and their answers may take.
const LONG: Duration = Duration::from_secs(60);

/// The binaries of the test being compiled (its `CARGO_BIN_EXE_*`: Cargo
/// tells only the test, not this crate).
#[derive(Clone, Copy)]
pub struct Binaries {
    pub server: &'static str,
    pub launcher: &'static str,
    pub ciaolc: &'static str,
}

/// A loopback TCP port free at the time of asking.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `N` distinct free ports of 127.0.0.1 (held together while found).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// Sends `request` as it is to `addr` and reads until the server closes
/// (at most `timeout` between reads); the status line of the answer, ""
/// if none. A failed write is not an error: the server may answer and
/// close before the whole request is written.
pub fn status_line(addr: SocketAddr, request: &[u8], timeout: Duration) -> String {
    let mut t = TcpStream::connect(addr).unwrap();
    t.set_read_timeout(Some(timeout)).unwrap();
    let _ = t.write_all(request);
    let mut reply = Vec::new();
    let _ = t.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// A running server with certificates made like the original's, and the
/// launcher once [`Session::start_launcher`] started it. Field order:
/// processes end before the directory goes.
pub struct Session {
    pub launcher: Option<Proc>,
    pub server: Proc,
    pub certs: CertSet,
    /// The REST API (`-server` of `ciaolc`).
    pub rest: SocketAddr,
    /// Where the server listens for SSNTP.
    pub ssntp: SocketAddr,
    pub tmp: TempDir,
    bins: Binaries,
}

impl Session {
    /// Starts the server (`server_extra`: flags after the defaults) and
    /// waits until its REST API answers.
    pub fn new(bins: Binaries, tag: &str, server_extra: &[&str]) -> Session {
        let tmp = TempDir::new(tag);
        let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
        // Both ports found while both are held: two separate look-ups may
        // return the same port, and the REST probe below would then reach
        // the SSNTP listener.
        let [rest, ssntp] = free_ports::<2>().map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
        let mut args = vec![
            format!("-ca-server-cert={}", certs.ca_pem_path.display()),
            format!("-server-cert={}", certs.server_pem_path.display()),
            format!("--ssntp-listen={ssntp}"),
            format!("-server={rest}"),
            format!("--data-root={}", tmp.path().join("server").display()),
            "-disk-limit=false".into(),
            "-mem-limit=false".into(),
        ];
        args.extend(server_extra.iter().map(|s| s.to_string()));
        let server = Proc::start(bins.server, &args, tmp.path(), "server");
        let s = Session {
            launcher: None,
            server,
            certs,
            rest,
            ssntp,
            tmp,
            bins,
        };
        wait_for(LONG, "the REST API", || TcpStream::connect(s.rest).ok());
        s
    }

    /// The launcher's data root.
    pub fn data(&self) -> PathBuf {
        self.tmp.path().join("launcher")
    }

    /// Starts the launcher in simulation, without networking (`extra`:
    /// flags after the defaults), and waits until the server lists it; its
    /// UUID.
    pub fn start_launcher(&mut self, extra: &[&str]) -> String {
        let data = self.data();
        let mut args = vec![
            format!("-cacert={}", self.certs.ca_pem_path.display()),
            format!("-cert={}", self.certs.client_pem_path.display()),
            format!("--server={}", self.ssntp),
            format!("--data-root={}", data.display()),
            "-simulation".into(),
            "--simulation-delay=100".into(),
            "-network=false".into(),
            "-logtostderr".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        self.launcher = Some(Proc::start(
            self.bins.launcher,
            &args,
            self.tmp.path(),
            "launcher",
        ));
        let id = wait_for(LONG, "the launcher's UUID file", || {
            std::fs::read_to_string(data.join("local/uuid-storage/role/client/0x14")).ok()
        });
        wait_for(LONG, "the launcher to be listed", || {
            (self.ok(&["clients"]) == format!("{id}\n")).then_some(())
        });
        id
    }

    /// Runs `ciaolc -server <REST> args...`.
    pub fn ciaolc(&self, args: &[&str]) -> Output {
        let mut a = vec!["-server".to_string(), self.rest.to_string()];
        a.extend(args.iter().map(|s| s.to_string()));
        Command::new(self.bins.ciaolc).args(&a).output().unwrap()
    }

    /// Runs ciaolc and returns stdout; panics with stderr on failure.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.ciaolc(args);
        assert!(
            o.status.success(),
            "ciaolc {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// POSTs `body` to `path` of the REST API; the status line of the
    /// answer.
    pub fn post(&self, path: &str, body: &[u8]) -> String {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        status_line(self.rest, &request, Duration::from_secs(10))
    }

    /// The server's log so far.
    pub fn server_log(&self) -> String {
        self.server.output()
    }
}
