//! The SSNTP TLS layer against certificates made exactly as the original
//! `ciao-cert` makes them (tests/support/src/certgen.rs), over real rustls
//! connections wired together in memory (no sockets): who accepts whom, with
//! RSA-2048 and P-521 keys, TLS 1.2 and 1.3. Plus the DER walk and the
//! launcher's server address list on the same certificates.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ciao::ssntp::cert::{parse_certificate, pem_blocks};
use ciao::ssntp::role;
use ciao::ssntp::tls::{self, TlsError};
use ciao_test_support::certgen::{self, roles, CertSpec, KeyKind};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, Connection, ServerConnection};

const KINDS: [KeyKind; 2] = [KeyKind::Rsa, KeyKind::P521];

fn tmpdir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "tls_verify-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// What each side saw of one handshake.
struct Outcome {
    client: Result<(), rustls::Error>,
    server: Result<(), rustls::Error>,
    version: Option<rustls::ProtocolVersion>,
    /// Roles the server read from the client's leaf.
    client_roles: Option<u32>,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.client.is_ok() && self.server.is_ok()
    }
}

/// Moves TLS bytes from one side to the other; Err if the receiver rejects them.
fn pump(from: &mut Connection, to: &mut Connection) -> Result<(), rustls::Error> {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        to.read_tls(&mut rd).unwrap();
        to.process_new_packets()?;
    }
    Ok(())
}

/// Runs a full handshake plus one application record each way.
fn connect(
    ccfg: Arc<rustls::ClientConfig>,
    scfg: Arc<rustls::ServerConfig>,
    name: &str,
) -> Outcome {
    use std::io::{Read, Write};
    let name = ServerName::try_from(name.to_string()).unwrap();
    let mut c = Connection::Client(ClientConnection::new(ccfg, name).unwrap());
    let mut s = Connection::Server(ServerConnection::new(scfg).unwrap());
    let mut out = Outcome {
        client: Ok(()),
        server: Ok(()),
        version: None,
        client_roles: None,
    };
    c.writer().write_all(b"CONNECT").unwrap();
    for _ in 0..20 {
        if let Err(e) = pump(&mut c, &mut s) {
            out.server = Err(e);
            // Deliver the server's alert to the client.
            if let Err(e) = pump(&mut s, &mut c) {
                out.client = Err(e);
            }
            return out;
        }
        if let Err(e) = pump(&mut s, &mut c) {
            out.client = Err(e);
            if let Err(e) = pump(&mut c, &mut s) {
                out.server = Err(e);
            }
            return out;
        }
        if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() && !s.wants_write() {
            break;
        }
    }
    let mut got = Vec::new();
    let _ = s.reader().read_to_end(&mut got);
    assert_eq!(got, b"CONNECT", "application data did not arrive");
    s.writer().write_all(b"CONNECTED").unwrap();
    pump(&mut s, &mut c).unwrap();
    let mut got = Vec::new();
    let _ = c.reader().read_to_end(&mut got);
    assert_eq!(got, b"CONNECTED");
    out.version = c.protocol_version();
    assert_eq!(out.version, s.protocol_version());
    out.client_roles = s
        .peer_certificates()
        .and_then(|p| p.first())
        .map(|leaf| parse_certificate(leaf).unwrap().roles);
    out
}

fn identity(p: &Path) -> tls::Identity {
    tls::load_identity(p).unwrap_or_else(|e| panic!("{e}"))
}

/// Client config for `client_pem` trusting `ca`, server config for `server_pem`
/// trusting `server_ca`.
fn configs(
    ca: &Path,
    client_pem: &Path,
    server_ca: &Path,
    server_pem: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>) {
    let c = tls::client_config_with_versions(
        &tls::load_ca(ca).unwrap(),
        &identity(client_pem),
        versions,
    )
    .unwrap();
    let s = tls::server_config_with_versions(
        &tls::load_ca(server_ca).unwrap(),
        &identity(server_pem),
        versions,
    )
    .unwrap();
    (c, s)
}

fn run(set: &certgen::CertSet, client_pem: &Path, server_pem: &Path, name: &str) -> Outcome {
    let (c, s) = configs(
        &set.ca_pem_path,
        client_pem,
        &set.ca_pem_path,
        server_pem,
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    );
    connect(c, s, name)
}

fn err_text(r: &Result<(), rustls::Error>) -> String {
    match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn good_handshake_tls13_and_tls12_rsa_and_p521() {
    for kind in KINDS {
        let dir = tmpdir("good");
        let set = certgen::make_ciao_certs(&dir, kind);
        for (versions, want) in [
            (
                vec![&rustls::version::TLS13, &rustls::version::TLS12],
                rustls::ProtocolVersion::TLSv1_3,
            ),
            (
                vec![&rustls::version::TLS13],
                rustls::ProtocolVersion::TLSv1_3,
            ),
            (
                vec![&rustls::version::TLS12],
                rustls::ProtocolVersion::TLSv1_2,
            ),
        ] {
            // The scheduler's certificate is the CA certificate: accepted by name and by IP.
            for name in ["localhost", "127.0.0.1"] {
                let (c, s) = configs(
                    &set.ca_pem_path,
                    &set.client_pem_path,
                    &set.ca_pem_path,
                    &set.server_pem_path,
                    &versions,
                );
                let o = connect(c, s, name);
                assert!(
                    o.ok(),
                    "{kind:?} {name}: client {} / server {}",
                    err_text(&o.client),
                    err_text(&o.server)
                );
                assert_eq!(o.version, Some(want));
                assert_eq!(o.client_roles, Some(role::AGENT | role::NETAGENT));
            }
        }
    }
}

#[test]
fn client_cert_from_another_ca_fails() {
    for kind in KINDS {
        let dir = tmpdir("otherca");
        let set = certgen::make_ciao_certs(&dir, kind);
        let other_dir = tmpdir("otherca2");
        let other = certgen::make_ciao_certs(&other_dir, kind);
        let o = run(
            &set,
            &other.client_pem_path,
            &set.server_pem_path,
            "localhost",
        );
        // Both CAs are "O=Intel": webpki finds a candidate issuer by name and
        // the signature check fails.
        assert!(
            matches!(
                o.server,
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::BadSignature
                ))
            ),
            "{kind:?}: server {}",
            err_text(&o.server)
        );
        // TLS 1.3: the client learns it from the alert.
        assert!(
            matches!(o.client, Err(rustls::Error::AlertReceived(_))),
            "{}",
            err_text(&o.client)
        );
        // A CA with another organization: no issuer by that name at all.
        let acme = certgen::anchor(&CertSpec::new(roles::SCHEDULER, kind).organization("Acme"));
        let acme_leaf = certgen::write_leaf(
            &other_dir,
            &acme,
            &CertSpec::new(roles::AGENT, kind)
                .organization("Acme")
                .hosts(&["acme"]),
        );
        let o = run(&set, &acme_leaf, &set.server_pem_path, "localhost");
        assert!(
            matches!(
                o.server,
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer
                ))
            ),
            "{kind:?}: server {}",
            err_text(&o.server)
        );
        // And the other way round: a scheduler of another CA is refused by the client.
        let o = run(
            &set,
            &set.client_pem_path,
            &other.server_pem_path,
            "localhost",
        );
        assert!(
            o.client.is_err(),
            "{kind:?}: client accepted a foreign scheduler"
        );
    }
}

#[test]
fn client_without_any_role_fails() {
    for kind in KINDS {
        let dir = tmpdir("norole");
        let set = certgen::make_ciao_certs(&dir, kind);
        let norole = certgen::write_leaf(
            &dir,
            &set.anchor,
            &CertSpec::new(0, kind).hosts(&["norole"]),
        );
        let o = run(&set, &norole, &set.server_pem_path, "localhost");
        let text = err_text(&o.server);
        assert!(text.contains("no ciao role"), "{kind:?}: server {text}");
        assert!(
            matches!(o.client, Err(rustls::Error::AlertReceived(_))),
            "{}",
            err_text(&o.client)
        );
    }
}

#[test]
fn any_single_role_client_is_accepted_by_tls() {
    // The TLS layer only requires *a* role; which one may be claimed is the SSNTP layer's check.
    let dir = tmpdir("controller");
    let set = certgen::make_ciao_certs(&dir, KeyKind::Rsa);
    let ctl = certgen::write_leaf(
        &dir,
        &set.anchor,
        &CertSpec::new(roles::CONTROLLER, KeyKind::Rsa),
    );
    let o = run(&set, &ctl, &set.server_pem_path, "localhost");
    assert!(o.ok(), "{} / {}", err_text(&o.client), err_text(&o.server));
    assert_eq!(o.client_roles, Some(role::CONTROLLER));
}

#[test]
fn server_without_scheduler_role_fails_on_the_client() {
    for kind in KINDS {
        let dir = tmpdir("agentserver");
        let set = certgen::make_ciao_certs(&dir, kind);
        // A valid leaf of the right CA and the right name, but an agent's.
        let agent = certgen::write_leaf(&dir, &set.anchor, &CertSpec::new(roles::AGENT, kind));
        let o = run(&set, &set.client_pem_path, &agent, "localhost");
        let text = err_text(&o.client);
        assert!(
            text.contains("no Scheduler or Server role"),
            "{kind:?}: client {text}"
        );
        assert!(
            matches!(o.server, Err(rustls::Error::AlertReceived(_))),
            "{}",
            err_text(&o.server)
        );
    }
}

#[test]
fn server_leaf_with_server_role_chains_to_the_ca() {
    // Not the anchor itself: a ciao leaf (issuer DN == subject DN, keyCertSign,
    // no AKI) must still chain to the CA through webpki, with RSA and P-521,
    // and with a P-521 leaf under an RSA anchor.
    for (anchor_kind, leaf_kind) in [
        (KeyKind::Rsa, KeyKind::Rsa),
        (KeyKind::P521, KeyKind::P521),
        (KeyKind::Rsa, KeyKind::P521),
    ] {
        let dir = tmpdir("serverleaf");
        let set = certgen::make_ciao_certs(&dir, anchor_kind);
        let server = certgen::write_leaf(
            &dir,
            &set.anchor,
            &CertSpec::new(roles::SERVER, leaf_kind).ips(&["127.0.0.1"]),
        );
        let client =
            certgen::write_leaf(&dir, &set.anchor, &CertSpec::new(roles::AGENT, leaf_kind));
        for name in ["localhost", "127.0.0.1"] {
            let o = run(&set, &client, &server, name);
            assert!(
                o.ok(),
                "{anchor_kind:?}/{leaf_kind:?} {name}: {} / {}",
                err_text(&o.client),
                err_text(&o.server)
            );
        }
    }
}

#[test]
fn expired_certificates_fail() {
    for kind in KINDS {
        let dir = tmpdir("expired");
        let set = certgen::make_ciao_certs(&dir, kind);
        // Expired client leaf.
        let old = certgen::write_leaf(
            &dir,
            &set.anchor,
            &CertSpec::new(roles::AGENT, kind).expired(),
        );
        let o = run(&set, &old, &set.server_pem_path, "localhost");
        assert!(
            matches!(
                o.server,
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ExpiredContext { .. }
                ))
            ),
            "{kind:?}: server {}",
            err_text(&o.server)
        );
        // Expired scheduler (anchor-as-leaf path, dates checked by the DER walk).
        let old_dir = tmpdir("expired-anchor");
        let a = certgen::anchor(&CertSpec::new(roles::SCHEDULER, kind).expired());
        let (ca, server) = certgen::write_anchor(&old_dir, "localhost", roles::SCHEDULER, &a);
        let client = certgen::write_leaf(&old_dir, &a, &CertSpec::new(roles::AGENT, kind));
        let (c, s) = configs(&ca, &client, &ca, &server, &[&rustls::version::TLS13]);
        let o = connect(c, s, "localhost");
        assert!(
            matches!(
                o.client,
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Expired
                ))
            ),
            "{kind:?}: client {}",
            err_text(&o.client)
        );
    }
}

#[test]
fn wrong_hostname_fails() {
    for kind in KINDS {
        let dir = tmpdir("name");
        let set = certgen::make_ciao_certs(&dir, kind);
        for name in ["example.com", "127.0.0.2", "::1"] {
            let o = run(&set, &set.client_pem_path, &set.server_pem_path, name);
            assert!(
                matches!(
                    o.client,
                    Err(rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidForNameContext { .. }
                    ))
                ),
                "{kind:?} {name}: client {}",
                err_text(&o.client)
            );
        }
    }
}

#[test]
fn identity_loading() {
    for kind in KINDS {
        let dir = tmpdir("identity");
        let set = certgen::make_ciao_certs(&dir, kind);
        let id = identity(&set.client_pem_path);
        assert_eq!(id.info.roles, role::AGENT | role::NETAGENT);
        assert_eq!(id.chain.len(), 1);
        let text = std::fs::read_to_string(&set.client_pem_path).unwrap();
        let labels: Vec<String> = pem_blocks(text.as_bytes())
            .into_iter()
            .map(|b| b.0)
            .collect();
        let key_label = if kind == KeyKind::Rsa {
            "RSA PRIVATE KEY"
        } else {
            "EC PRIVATE KEY"
        };
        assert_eq!(labels, ["CERTIFICATE", key_label]);

        // CRLF line ends are fine.
        let crlf = dir.join("crlf.pem");
        std::fs::write(&crlf, text.replace('\n', "\r\n")).unwrap();
        identity(&crlf);

        // PKCS#8 key.
        let a = certgen::leaf(&CertSpec::new(roles::AGENT, kind), &set.anchor);
        let p8 = dir.join("pkcs8.pem");
        std::fs::write(&p8, a.cert_and_pkcs8_pem()).unwrap();
        assert_eq!(identity(&p8).info.roles, role::AGENT);

        // A key that is not the certificate's.
        let b = certgen::leaf(&CertSpec::new(roles::AGENT, kind), &set.anchor);
        let mixed = dir.join("mixed.pem");
        let (label, der) = b.key.traditional_der();
        std::fs::write(&mixed, a.cert_pem() + &certgen::pem(label, &der)).unwrap();
        let e = tls::load_identity(&mixed).unwrap_err();
        assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
        assert!(e.to_string().contains("mixed.pem"), "{e}");

        // No key at all (the CA file).
        let e = tls::load_identity(&set.ca_pem_path).unwrap_err();
        assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
        // Missing file.
        let e = tls::load_identity(&dir.join("nope.pem")).unwrap_err();
        assert!(e.to_string().contains("nope.pem"), "{e}");
        // No certificate.
        let key_only = dir.join("key-only.pem");
        std::fs::write(&key_only, certgen::pem(label, &der)).unwrap();
        let e = tls::load_ca(&key_only).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
    }
}

/// Fields the DER walk reads, on certificates as ciao-cert makes them.
#[test]
fn der_walk_reads_ciao_certificates() {
    for kind in KINDS {
        let spec = CertSpec::new(roles::SCHEDULER, kind)
            .hosts(&["localhost", "10.0.0.9", "sched.example"])
            .ips(&["127.0.0.1", "::1"]);
        let a = certgen::anchor(&spec);
        let info = parse_certificate(&a.der).unwrap();
        assert_eq!(info.roles, role::SCHEDULER);
        assert!(info.any_eku && !info.server_auth && !info.client_auth);
        assert!(info.is_ca);
        assert_eq!(info.not_before, spec.not_before);
        assert_eq!(info.not_after, spec.not_before + 365 * 86_400);
        // IP-looking hosts are dropped from the DNS SANs, as ciao-cert does.
        assert_eq!(info.dns_names, ["localhost", "sched.example"]);
        assert_eq!(
            info.ips,
            [
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(info.subject, info.issuer);
        assert_eq!(info.subject, a.subject);

        let all =
            roles::AGENT | roles::NETAGENT | roles::CNCIAGENT | roles::SERVER | roles::CONTROLLER;
        let l = certgen::leaf(&CertSpec::new(all, kind).hosts(&["node1"]), &a);
        let info = parse_certificate(&l.der).unwrap();
        assert_eq!(info.roles, all);
        assert!(!info.is_ca);
        assert_eq!(info.dns_names, ["node1"]);
        assert!(info.ips.is_empty());
        // A ciao leaf's issuer DN equals its own subject DN.
        assert_eq!(info.issuer, a.subject);
        assert_eq!(info.subject, info.issuer);

        // Dates far away use GeneralizedTime.
        let mut far = CertSpec::new(roles::AGENT, kind);
        far.not_before = 946_684_800; // 2000-01-01
        far.not_after = 4_102_444_800; // 2100-01-01
        let f = certgen::leaf(&far, &a);
        let info = parse_certificate(&f.der).unwrap();
        assert_eq!(
            (info.not_before, info.not_after),
            (946_684_800, 4_102_444_800)
        );
    }
}

/// The EKU bytes match the ones observed from the original ciao-cert.
#[test]
fn eku_layout_matches_ciao_cert() {
    let a = certgen::anchor(&CertSpec::new(roles::SCHEDULER, KeyKind::Rsa));
    let l = certgen::leaf(
        &CertSpec::new(roles::AGENT | roles::NETAGENT, KeyKind::Rsa),
        &a,
    );
    let observed = [
        0x30, 0x1c, 0x06, 0x04, 0x55, 0x1d, 0x25, 0x00, 0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01,
        0x82, 0x57, 0x08, 0x01, 0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x57, 0x08, 0x04,
    ];
    assert!(l.der.windows(observed.len()).any(|w| w == observed));
    // Leaf: no SubjectKeyIdentifier / AuthorityKeyIdentifier; anchor: SKI.
    let ski = [0x06, 0x03, 0x55, 0x1d, 0x0e];
    let aki = [0x06, 0x03, 0x55, 0x1d, 0x23];
    assert!(!l.der.windows(5).any(|w| w == ski || w == aki));
    assert!(a.der.windows(5).any(|w| w == ski));
}

#[test]
fn server_addresses_follow_the_ca_certificate() {
    let a = certgen::anchor(
        &CertSpec::new(roles::SCHEDULER, KeyKind::P521)
            .hosts(&["localhost", "sched.example"])
            .ips(&["127.0.0.1", "::1"]),
    );
    let other = certgen::anchor(&CertSpec::new(roles::SCHEDULER, KeyKind::Rsa).ips(&["10.1.1.1"]));
    // Only the first certificate of the file counts.
    let pem = a.cert_pem() + &other.cert_pem();
    let list: Vec<String> = tls::server_addresses(pem.as_bytes())
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(
        list,
        [
            "127.0.0.1:8888",
            "[::1]:8888",
            "localhost:8888",
            "sched.example:8888",
            "localhost:8888"
        ]
    );
    let addrs = tls::server_addresses(pem.as_bytes());
    assert!(matches!(
        addrs[1].server_name(),
        Some(ServerName::IpAddress(_))
    ));
    assert_eq!(addrs[2].host, "localhost");
    assert_eq!(addrs[2].port, 8888);
}

#[test]
fn ca_file_with_several_anchors_trusts_each() {
    let dir = tmpdir("multica");
    let set = certgen::make_ciao_certs(&dir, KeyKind::Rsa);
    let other = certgen::anchor(&CertSpec::new(roles::SCHEDULER, KeyKind::P521));
    let client = certgen::leaf(&CertSpec::new(roles::AGENT, KeyKind::P521), &other);
    let both = dir.join("both.pem");
    std::fs::write(
        &both,
        other.cert_pem() + &std::fs::read_to_string(&set.ca_pem_path).unwrap(),
    )
    .unwrap();
    let client_pem = dir.join("client.pem");
    std::fs::write(&client_pem, client.cert_and_key_pem()).unwrap();
    assert_eq!(tls::load_ca(&both).unwrap().len(), 2);
    let (c, s) = configs(
        &both,
        &client_pem,
        &both,
        &set.server_pem_path,
        &[&rustls::version::TLS12],
    );
    let o = connect(c, s, "localhost");
    assert!(o.ok(), "{} / {}", err_text(&o.client), err_text(&o.server));
}

#[test]
fn certificates_are_discovered_as_the_original_does() {
    let dir = std::env::temp_dir().join(format!("ciao-discover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let set = certgen::make_ciao_certs(&dir, certgen::KeyKind::Rsa);
    let (ca, cert) = ciao::ssntp::tls::discover_certificates(&dir).unwrap();
    assert_eq!(ca, set.ca_pem_path);
    assert_eq!(cert, set.client_pem_path);
    // A second agent certificate makes the choice ambiguous...
    let spec =
        certgen::CertSpec::new(certgen::roles::AGENT, certgen::KeyKind::Rsa).hosts(&["other"]);
    certgen::write_leaf(&dir, &set.anchor, &spec);
    assert!(ciao::ssntp::tls::discover_certificates(&dir).is_err());
    // ...unless client.pem names this node's certificate.
    std::fs::copy(&set.client_pem_path, dir.join("client.pem")).unwrap();
    let (ca, cert) = ciao::ssntp::tls::discover_certificates(&dir).unwrap();
    assert_eq!(
        (ca, cert),
        (dir.join("CAcert-localhost.pem"), dir.join("client.pem"))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
