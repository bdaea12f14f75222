//! `ciao-cert`: makes throwaway SSNTP certificates the way the original Go
//! tool does (same flags, same file names, same certificate layout; see
//! `tests/support/src/certgen.rs`).
//!
//! ```sh
//! cargo run --example ciao-cert -- -anchor -role scheduler -host localhost -ip 127.0.0.1 -directory certs
//! cargo run --example ciao-cert -- -role agent,netagent -host localhost \
//!     -anchor-cert certs/cert-Scheduler-localhost.pem -directory certs -verify
//! cargo run --example ciao-cert -- -dump certs/cert-CNAgent-NetworkingAgent-localhost.pem
//! ```
//!
//! Flags are accepted in Go's forms (`-flag value`, `-flag=value`, `--flag`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ciao_test_support::certgen::{self, CertSpec, Generated, KeyKind};

const USAGE: &str = "\
Usage: ciao-cert [flags]

  -anchor               make a self-signed trust anchor (CA) certificate
  -anchor-cert FILE     sign with this anchor (its certificate and private key,
                        i.e. the cert-<Role>-<host>.pem of the -anchor run)
  -role LIST            comma-separated roles: agent, scheduler, controller,
                        netagent, server, cnciagent (unknown = no role)
  -host LIST            comma-separated host names (the first names the files;
                        entries that are IP addresses are not put in the SAN)
  -ip LIST              comma-separated IP addresses for the SAN
  -organization ORG     subject O= (default empty)
  -email ADDR           e-mail SAN (default ciao-devel@lists.clearlinux.org)
  -elliptic-key         ECDSA P-521 / SHA-512 instead of RSA 2048 / SHA-256
  -directory DIR        where to write the files (default .)
  -verify               check the new certificate against the anchor
  -dump FILE            print what a certificate file holds, then exit
  -help                 this text

Writes DIR/CAcert-<host>.pem (anchor only) and DIR/cert-<Role>-<host>.pem
(certificate followed by its private key).";

#[derive(Default)]
struct Opts {
    anchor: bool,
    anchor_cert: Option<PathBuf>,
    roles: Option<String>,
    hosts: String,
    ips: String,
    organization: String,
    email: Option<String>,
    elliptic: bool,
    directory: Option<PathBuf>,
    verify: bool,
    dump: Option<PathBuf>,
}

fn parse_bool(name: &str, v: Option<&str>) -> Result<bool, String> {
    match v {
        None | Some("true") | Some("1") | Some("t") | Some("T") | Some("TRUE") | Some("True") => {
            Ok(true)
        }
        Some("false") | Some("0") | Some("f") | Some("F") | Some("FALSE") | Some("False") => {
            Ok(false)
        }
        Some(other) => Err(format!("invalid boolean value {other:?} for -{name}")),
    }
}

fn parse_args() -> Result<Option<Opts>, String> {
    let mut o = Opts::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        let mut value = |inline: Option<String>| -> Result<String, String> {
            inline
                .or_else(|| args.next())
                .ok_or_else(|| format!("flag needs an argument: -{name}"))
        };
        match name.as_str() {
            "h" | "help" => return Ok(None),
            "anchor" => o.anchor = parse_bool(&name, inline.as_deref())?,
            "elliptic-key" => o.elliptic = parse_bool(&name, inline.as_deref())?,
            "verify" => o.verify = parse_bool(&name, inline.as_deref())?,
            "anchor-cert" => o.anchor_cert = Some(value(inline)?.into()),
            "role" => o.roles = Some(value(inline)?),
            "host" => o.hosts = value(inline)?,
            "ip" => o.ips = value(inline)?,
            "organization" => o.organization = value(inline)?,
            "email" => o.email = Some(value(inline)?),
            "directory" => o.directory = Some(value(inline)?.into()),
            "dump" => o.dump = Some(value(inline)?.into()),
            _ => return Err(format!("flag provided but not defined: -{name}")),
        }
    }
    Ok(Some(o))
}

fn main() -> ExitCode {
    match parse_args() {
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Some(o)) => match run(o) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ciao-cert: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("ciao-cert: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

fn run(o: Opts) -> Result<(), String> {
    if let Some(file) = &o.dump {
        return dump(file);
    }
    let hosts = split_list(&o.hosts);
    let Some(first_host) = hosts.first().cloned() else {
        return Err("missing required -host parameter".into());
    };
    let Some(role_list) = &o.roles else {
        return Err("missing required -role parameter".into());
    };
    let roles = certgen::parse_roles(role_list)?;
    if !o.anchor && o.anchor_cert.is_none() {
        return Err("missing -anchor-cert (or make an anchor with -anchor)".into());
    }
    let ips = split_list(&o.ips)
        .iter()
        .map(|s| {
            s.parse::<IpAddr>()
                .map_err(|_| format!("invalid IP address {s:?} in -ip"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let kind = if o.elliptic {
        KeyKind::P521
    } else {
        KeyKind::Rsa
    };
    let mut spec = CertSpec::new(roles, kind);
    spec.organization = o.organization.clone();
    spec.hosts = hosts;
    spec.ips = ips;
    if let Some(e) = &o.email {
        spec.email = e.clone();
    }
    let dir = o.directory.clone().unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;

    if o.anchor {
        let a = certgen::anchor(&spec);
        let ca = dir.join(format!("CAcert-{first_host}.pem"));
        let own = dir.join(format!(
            "cert-{}-{first_host}.pem",
            certgen::role_string(roles)
        ));
        write(&ca, &a.cert_pem())?;
        write_private(&own, &a.cert_and_key_pem())?;
        if o.verify {
            verify(&a, &a)?;
        }
    } else if let Some(anchor_file) = &o.anchor_cert {
        let text = std::fs::read_to_string(anchor_file)
            .map_err(|e| format!("cannot read {}: {e}", anchor_file.display()))?;
        let a =
            Generated::from_pem(&text).map_err(|e| format!("{}: {e}", anchor_file.display()))?;
        let l = certgen::leaf(&spec, &a);
        let own = dir.join(format!(
            "cert-{}-{first_host}.pem",
            certgen::role_string(roles)
        ));
        write_private(&own, &l.cert_and_key_pem())?;
        if o.verify {
            verify(&l, &a)?;
        }
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}

/// Writes a file holding a private key: mode 0600 whatever the umask, also
/// when the file existed before with a wider mode (the key is written only
/// after the mode is narrowed).
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    println!("{}", path.display());
    Ok(())
}

/// Checks `cert` against `anchor` with webpki, as ciao's SSNTP verifiers do
/// (an anchor verifies as itself; a leaf must chain with anyExtendedKeyUsage).
fn verify(cert: &Generated, anchor: &Generated) -> Result<(), String> {
    use rustls::pki_types::{CertificateDer, UnixTime};
    let anchor_der = CertificateDer::from(anchor.der.clone());
    let ta = webpki::anchor_from_trusted_cert(&anchor_der)
        .map_err(|e| format!("verification failed: the anchor is unusable: {e:?}"))?;
    if cert.der != anchor.der {
        let leaf_der = CertificateDer::from(cert.der.clone());
        let ee = webpki::EndEntityCert::try_from(&leaf_der)
            .map_err(|e| format!("verification failed: {e:?}"))?;
        let algs = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
        ee.verify_for_usage(
            algs.all,
            &[ta],
            &[],
            UnixTime::now(),
            webpki::KeyUsage::required(&[0x55, 0x1d, 0x25, 0x00]),
            None,
            None,
        )
        .map_err(|e| format!("verification failed: {e:?}"))?;
    }
    println!("Certificate verified");
    Ok(())
}

/// `-dump FILE`: what the certificate (and key) in a file say.
fn dump(file: &Path) -> Result<(), String> {
    let text = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let blocks = ciao::ssntp::cert::pem_blocks(&text);
    let der = blocks
        .iter()
        .find(|(l, _)| l == "CERTIFICATE")
        .map(|(_, d)| d)
        .ok_or_else(|| format!("{}: no certificate", file.display()))?;
    let info = ciao::ssntp::cert::parse_certificate(der)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let key = blocks
        .iter()
        .find_map(|(l, _)| match l.as_str() {
            "RSA PRIVATE KEY" => Some("RSA (PKCS#1)"),
            "EC PRIVATE KEY" => Some("ECDSA (SEC1)"),
            "PRIVATE KEY" => Some("PKCS#8"),
            _ => None,
        })
        .unwrap_or("none in this file");
    let join = |v: Vec<String>| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    println!("Certificate:  {}", file.display());
    println!(
        "Organization: {}",
        certgen::organization(&info.subject).unwrap_or_default()
    );
    println!("Is CA:        {}", info.is_ca);
    println!("Valid from:   {}", certgen::utc_string(info.not_before));
    println!("Valid until:  {}", certgen::utc_string(info.not_after));
    println!("Role:         {}", certgen::role_string(info.roles));
    println!("Hosts:        {}", join(info.dns_names.clone()));
    println!(
        "IPs:          {}",
        join(info.ips.iter().map(|i| i.to_string()).collect())
    );
    println!("Private key:  {key}");
    Ok(())
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// The file with the key is 0600 even under umask 000 and even when it
    /// existed with a wider mode; the CA certificate (public) is not narrowed.
    #[test]
    fn key_files_are_private() {
        let dir = std::env::temp_dir().join(format!("ciao-cert-modes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let own = dir.join("cert-Scheduler-localhost.pem");
        std::fs::write(&own, "old").unwrap();
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o666)).unwrap();
        // SAFETY: umask(2) only changes this process's file-creation mask;
        // this binary runs no other test that creates files meanwhile.
        let old = unsafe { libc::umask(0) };
        let o = Opts {
            anchor: true,
            roles: Some("scheduler".into()),
            hosts: "localhost".into(),
            directory: Some(dir.clone()),
            ..Opts::default()
        };
        run(o).unwrap();
        assert_eq!(mode(&own), 0o600);
        let leaf_dir = dir.join("leaf");
        let o = Opts {
            anchor_cert: Some(own.clone()),
            roles: Some("agent".into()),
            hosts: "node1".into(),
            directory: Some(leaf_dir.clone()),
            ..Opts::default()
        };
        run(o).unwrap();
        assert_eq!(mode(&leaf_dir.join("cert-CNAgent-node1.pem")), 0o600);
        // SAFETY: as above, restoring the mask.
        unsafe { libc::umask(old) };
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
