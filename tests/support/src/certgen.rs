//! Test-time certificate generator that reproduces what the original Go
//! `ciao-cert` makes (checked against its output with openssl), byte layout
//! included:
//!
//! * subject only `O=<org>`; a leaf's issuer is the anchor's subject (so equal
//!   to its own subject); no AuthorityKeyIdentifier; SubjectKeyIdentifier on
//!   the anchor only (as Go >= 1.15 adds it to CA certificates);
//! * KeyUsage (critical) digitalSignature + keyEncipherment + keyCertSign on
//!   anchor *and* leaf; EKU anyExtendedKeyUsage first, then the role OIDs in
//!   the order agent, scheduler, controller, netagent, server, cnciagent;
//!   BasicConstraints (critical) CA:TRUE on the anchor, CA:FALSE on leaves;
//!   SAN: DNS names, the e-mail address, IP addresses;
//! * random serial < 2^128, notBefore = now, notAfter = now + 365 days;
//! * RSA-2048 with sha256WithRSAEncryption, or P-521 with ecdsa-with-SHA512;
//!   the key follows the certificate in the same PEM file as `RSA PRIVATE KEY`
//!   (PKCS#1) or `EC PRIVATE KEY` (SEC1).
//!
//! The DER is written by hand (keys and signatures come from aws-lc-rs), so
//! every field is exactly under control, including the odd ones that stock
//! generators would "fix". [`CertSpec`] also makes the certificates negative
//! tests need: expired, no role, another role, another CA.
//!
//! Used by `tests/` and by `examples/ciao-cert.rs`.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};

/// Which key (and signature algorithm) a certificate gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA 2048, sha256WithRSAEncryption (ciao-cert's default).
    Rsa,
    /// ECDSA P-521, ecdsa-with-SHA512 (ciao-cert `-elliptic-key`).
    P521,
}

/// Role bits, as in `ciao::ssntp::role` (kept here so that this file has no
/// dependency on the crate under test).
pub mod roles {
    pub const SERVER: u32 = 0x01;
    pub const CONTROLLER: u32 = 0x02;
    pub const AGENT: u32 = 0x04;
    pub const SCHEDULER: u32 = 0x08;
    pub const NETAGENT: u32 = 0x10;
    pub const CNCIAGENT: u32 = 0x20;
}

/// (bit, `-role` word, Go `Role.String()` name, last OID arc), in the order
/// ciao-cert writes the OIDs into the EKU.
pub const ROLE_TABLE: [(u32, &str, &str, u8); 6] = [
    (roles::AGENT, "agent", "CNAgent", 1),
    (roles::SCHEDULER, "scheduler", "Scheduler", 2),
    (roles::CONTROLLER, "controller", "Controller", 3),
    (roles::NETAGENT, "netagent", "NetworkingAgent", 4),
    (roles::SERVER, "server", "Server", 5),
    (roles::CNCIAGENT, "cnciagent", "CNCIAgent", 6),
];

/// Go's `Role.String()`: names of the set bits in the order Server,
/// Controller, CNAgent, Scheduler, NetworkingAgent, CNCIAgent, joined by `-`.
pub fn role_string(mask: u32) -> String {
    let order = [
        (roles::SERVER, "Server"),
        (roles::CONTROLLER, "Controller"),
        (roles::AGENT, "CNAgent"),
        (roles::SCHEDULER, "Scheduler"),
        (roles::NETAGENT, "NetworkingAgent"),
        (roles::CNCIAGENT, "CNCIAgent"),
    ];
    let names: Vec<&str> = order
        .iter()
        .filter(|(b, _)| mask & b != 0)
        .map(|(_, n)| *n)
        .collect();
    names.join("-")
}

/// Parses ciao-cert's `-role` list (`agent,netagent`).
pub fn parse_roles(list: &str) -> Result<u32, String> {
    let mut mask = 0;
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        if word == "unknown" {
            continue;
        }
        let bit = ROLE_TABLE
            .iter()
            .find(|r| r.1 == word)
            .map(|r| r.0)
            .ok_or_else(|| format!("unknown role '{word}'"))?;
        mask |= bit;
    }
    Ok(mask)
}

/// Default e-mail SAN of ciao-cert.
pub const DEFAULT_EMAIL: &str = "ciao-devel@lists.clearlinux.org";
/// One year, ciao-cert's validity.
pub const YEAR: i64 = 365 * 86_400;

/// What to put into a certificate.
#[derive(Clone, Debug)]
pub struct CertSpec {
    /// `O=` of the subject (may be empty, as ciao-cert without -organization).
    pub organization: String,
    /// Role bits (0 = no role OID, for negative tests).
    pub roles: u32,
    /// `-host` entries; those that parse as IP addresses are dropped (as Go did).
    pub hosts: Vec<String>,
    /// `-ip` entries.
    pub ips: Vec<IpAddr>,
    /// rfc822Name SAN (`-email`); empty = none.
    pub email: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// Key type of this certificate.
    pub key: KeyKind,
}

impl CertSpec {
    /// ciao-cert's defaults: valid from now for 365 days, organization "Intel",
    /// host localhost, no IP.
    pub fn new(roles: u32, key: KeyKind) -> Self {
        let now = now();
        CertSpec {
            organization: "Intel".to_string(),
            roles,
            hosts: vec!["localhost".to_string()],
            ips: Vec::new(),
            email: DEFAULT_EMAIL.to_string(),
            not_before: now,
            not_after: now + YEAR,
            key,
        }
    }

    /// Builder: IP SANs.
    pub fn ips(mut self, ips: &[&str]) -> Self {
        self.ips = ips.iter().filter_map(|s| s.parse().ok()).collect();
        self
    }

    /// Builder: DNS SANs.
    pub fn hosts(mut self, hosts: &[&str]) -> Self {
        self.hosts = hosts.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Builder: a validity period that ended a year ago.
    pub fn expired(mut self) -> Self {
        let now = now();
        self.not_before = now - 2 * YEAR;
        self.not_after = now - YEAR;
        self
    }

    /// Builder: the organization.
    pub fn organization(mut self, org: &str) -> Self {
        self.organization = org.to_string();
        self
    }
}

/// Current Unix time in seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A private key able to sign certificates.
pub enum Key {
    Rsa(signature::RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl Key {
    /// A fresh key.
    pub fn generate(kind: KeyKind) -> Key {
        match kind {
            KeyKind::Rsa => Key::Rsa(
                signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .expect("RSA key generation"),
            ),
            KeyKind::P521 => Key::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P521_SHA512_ASN1_SIGNING)
                    .expect("P-521 key generation"),
            ),
        }
    }

    /// The key type.
    pub fn kind(&self) -> KeyKind {
        match self {
            Key::Rsa(_) => KeyKind::Rsa,
            Key::Ec(_) => KeyKind::P521,
        }
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn spki(&self) -> Vec<u8> {
        match self {
            Key::Rsa(k) => k.public_key().as_der().expect("RSA SPKI").as_ref().to_vec(),
            Key::Ec(k) => k.public_key().as_der().expect("EC SPKI").as_ref().to_vec(),
        }
    }

    /// The AlgorithmIdentifier of the signatures this key makes (Go picks it
    /// from the signing key: sha256WithRSA for RSA, ecdsa-with-SHA512 for P-521).
    pub fn sig_alg(&self) -> Vec<u8> {
        match self {
            Key::Rsa(_) => seq(&[
                tlv(
                    0x06,
                    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b],
                ),
                vec![0x05, 0x00],
            ]),
            Key::Ec(_) => seq(&[tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04])]),
        }
    }

    /// Signs `msg` (DER signature for ECDSA, PKCS#1 v1.5 for RSA).
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Key::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .expect("RSA signature");
                sig
            }
            Key::Ec(k) => k
                .sign(&rng, msg)
                .expect("ECDSA signature")
                .as_ref()
                .to_vec(),
        }
    }

    /// PEM label and DER as ciao-cert writes the key: PKCS#1 `RSA PRIVATE KEY`
    /// or SEC1 `EC PRIVATE KEY`.
    pub fn traditional_der(&self) -> (&'static str, Vec<u8>) {
        match self {
            Key::Rsa(k) => {
                let pkcs8 = k.as_der().expect("RSA PKCS#8");
                ("RSA PRIVATE KEY", pkcs8_inner(pkcs8.as_ref()))
            }
            Key::Ec(k) => {
                let sec1 = k.private_key().as_der().expect("EC SEC1");
                ("EC PRIVATE KEY", sec1.as_ref().to_vec())
            }
        }
    }

    /// The key as PKCS#8 `PRIVATE KEY` DER (for the PKCS#8 loading test).
    pub fn pkcs8_der(&self) -> Vec<u8> {
        match self {
            Key::Rsa(k) => k.as_der().expect("RSA PKCS#8").as_ref().to_vec(),
            Key::Ec(k) => k.to_pkcs8v1().expect("EC PKCS#8").as_ref().to_vec(),
        }
    }

    /// Loads a key from a PEM block as ciao-cert writes it (or PKCS#8).
    pub fn from_pem_block(label: &str, der: &[u8]) -> Result<Key, String> {
        match label {
            "RSA PRIVATE KEY" => signature::RsaKeyPair::from_der(der)
                .map(Key::Rsa)
                .map_err(|e| format!("bad RSA key: {e}")),
            "EC PRIVATE KEY" => {
                EcdsaKeyPair::from_private_key_der(&signature::ECDSA_P521_SHA512_ASN1_SIGNING, der)
                    .map(Key::Ec)
                    .map_err(|e| format!("bad EC key (only P-521 is supported): {e}"))
            }
            "PRIVATE KEY" => signature::RsaKeyPair::from_pkcs8(der)
                .map(Key::Rsa)
                .or_else(|_| {
                    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P521_SHA512_ASN1_SIGNING, der)
                        .map(Key::Ec)
                })
                .map_err(|e| format!("bad PKCS#8 key: {e}")),
            other => Err(format!("not a private key block: {other}")),
        }
    }
}

/// A generated certificate with its key.
pub struct Generated {
    /// The certificate DER.
    pub der: Vec<u8>,
    /// Its private key.
    pub key: Key,
    /// Raw DER of its subject Name (a leaf's issuer).
    pub subject: Vec<u8>,
}

impl Generated {
    /// The certificate alone, PEM.
    pub fn cert_pem(&self) -> String {
        pem("CERTIFICATE", &self.der)
    }

    /// The certificate followed by its key, as ciao-cert writes `cert-*.pem`.
    pub fn cert_and_key_pem(&self) -> String {
        let (label, der) = self.key.traditional_der();
        self.cert_pem() + &pem(label, &der)
    }

    /// The certificate followed by its key in PKCS#8.
    pub fn cert_and_pkcs8_pem(&self) -> String {
        self.cert_pem() + &pem("PRIVATE KEY", &self.key.pkcs8_der())
    }

    /// Loads a certificate + key file (the `-anchor-cert` input of ciao-cert).
    pub fn from_pem(text: &str) -> Result<Generated, String> {
        let blocks = pem_decode(text);
        let der = blocks
            .iter()
            .find(|(l, _)| l == "CERTIFICATE")
            .map(|(_, d)| d.clone())
            .ok_or("no CERTIFICATE block")?;
        let key = blocks
            .iter()
            .find_map(|(l, d)| Key::from_pem_block(l, d).ok())
            .ok_or("no usable private key block")?;
        let subject = cert_subject(&der).ok_or("cannot find the certificate's subject")?;
        Ok(Generated { der, key, subject })
    }
}

/// Makes a self-signed trust anchor (ciao-cert `-anchor`).
pub fn anchor(spec: &CertSpec) -> Generated {
    let key = Key::generate(spec.key);
    let subject = name(&spec.organization);
    let der = build(spec, true, &subject, &key, &subject, &key);
    Generated { der, key, subject }
}

/// Makes a leaf signed by `issuer` (ciao-cert `-anchor-cert`).
pub fn leaf(spec: &CertSpec, issuer: &Generated) -> Generated {
    let key = Key::generate(spec.key);
    let subject = name(&spec.organization);
    let der = build(spec, false, &subject, &key, &issuer.subject, &issuer.key);
    Generated { der, key, subject }
}

/// The certificate files of a test deployment, as ciao-cert names them.
pub struct CertSet {
    /// `CAcert-localhost.pem`: the anchor alone.
    pub ca_pem_path: PathBuf,
    /// `cert-Scheduler-localhost.pem`: the anchor + its key (the server's identity).
    pub server_pem_path: PathBuf,
    /// `cert-CNAgent-NetworkingAgent-localhost.pem`: agent+netagent leaf + key.
    pub client_pem_path: PathBuf,
    /// The anchor, to sign more leaves with [`write_leaf`].
    pub anchor: Generated,
}

impl CertSet {
    /// What every test launcher is given: this set's CA and client
    /// certificate, its data root and the server to dial, and
    /// `-network=false`: no test touches the host's links (a test that
    /// wants networking runs the launcher in a network namespace of its
    /// own and passes `-network=true` after these).
    pub fn launcher_args(&self, data: &Path, server: impl std::fmt::Display) -> Vec<String> {
        vec![
            format!("-cacert={}", self.ca_pem_path.display()),
            format!("-cert={}", self.client_pem_path.display()),
            format!("--data-root={}", data.display()),
            format!("--server={server}"),
            "-network=false".to_string(),
        ]
    }
}

/// The usual test set: a scheduler anchor (DNS localhost, IP 127.0.0.1) and
/// an agent+netagent client, written into `dir`.
pub fn make_ciao_certs(dir: &Path, kind: KeyKind) -> CertSet {
    let a = anchor(&CertSpec::new(roles::SCHEDULER, kind).ips(&["127.0.0.1"]));
    let (ca_pem_path, server_pem_path) = write_anchor(dir, "localhost", roles::SCHEDULER, &a);
    let client_pem_path = write_leaf(
        dir,
        &a,
        &CertSpec::new(roles::AGENT | roles::NETAGENT, kind),
    );
    CertSet {
        ca_pem_path,
        server_pem_path,
        client_pem_path,
        anchor: a,
    }
}

/// Writes `CAcert-<host>.pem` and `cert-<Role>-<host>.pem` for an anchor;
/// returns both paths.
pub fn write_anchor(dir: &Path, host: &str, roles: u32, a: &Generated) -> (PathBuf, PathBuf) {
    let ca = dir.join(format!("CAcert-{host}.pem"));
    let own = dir.join(format!("cert-{}-{host}.pem", role_string(roles)));
    std::fs::write(&ca, a.cert_pem()).expect("write CA file");
    std::fs::write(&own, a.cert_and_key_pem()).expect("write anchor file");
    (ca, own)
}

/// Makes a leaf for `spec` signed by `issuer` and writes it as
/// `cert-<Role>-<first host>.pem` (certificate + key); returns the path.
pub fn write_leaf(dir: &Path, issuer: &Generated, spec: &CertSpec) -> PathBuf {
    let l = leaf(spec, issuer);
    let host = spec.hosts.first().map(String::as_str).unwrap_or("");
    let path = dir.join(format!("cert-{}-{host}.pem", role_string(spec.roles)));
    std::fs::write(&path, l.cert_and_key_pem()).expect("write leaf file");
    path
}

// ---------------------------------------------------------------------------
// DER writing

fn build(
    spec: &CertSpec,
    is_anchor: bool,
    subject: &[u8],
    key: &Key,
    issuer: &[u8],
    signer: &Key,
) -> Vec<u8> {
    let spki = key.spki();
    let sig_alg = signer.sig_alg();

    let mut exts = Vec::new();
    // KeyUsage, critical: digitalSignature(0) keyEncipherment(2) keyCertSign(5)
    // = 1010 0100, two unused trailing bits (Go trims them).
    exts.push(extension(
        &[0x55, 0x1d, 0x0f],
        true,
        &[0x03, 0x02, 0x02, 0xa4],
    ));
    // ExtendedKeyUsage: anyExtendedKeyUsage, then the roles in ciao-cert's order.
    let mut eku = vec![tlv(0x06, &[0x55, 0x1d, 0x25, 0x00])];
    for (bit, _, _, arc) in ROLE_TABLE {
        if spec.roles & bit != 0 {
            eku.push(tlv(
                0x06,
                &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x57, 0x08, arc],
            ));
        }
    }
    exts.push(extension(&[0x55, 0x1d, 0x25], false, &seq(&eku)));
    // BasicConstraints, critical: CA:TRUE (no pathlen) or CA:FALSE (empty SEQUENCE).
    let bc = if is_anchor {
        seq(&[vec![0x01, 0x01, 0xff]])
    } else {
        seq(&[])
    };
    exts.push(extension(&[0x55, 0x1d, 0x13], true, &bc));
    if is_anchor {
        // SubjectKeyIdentifier: SHA-1 of the subjectPublicKey bits (Go >= 1.15).
        let bits = spki_key_bits(&spki).unwrap_or_default();
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, bits);
        exts.push(extension(
            &[0x55, 0x1d, 0x0e],
            false,
            &tlv(0x04, hash.as_ref()),
        ));
    }
    // SubjectAltName: DNS names (hosts that are not IPs), e-mail, IPs.
    let mut san = Vec::new();
    for h in &spec.hosts {
        if h.parse::<IpAddr>().is_err() && !h.is_empty() {
            san.push(tlv(0x82, h.as_bytes()));
        }
    }
    if !spec.email.is_empty() {
        san.push(tlv(0x81, spec.email.as_bytes()));
    }
    for ip in &spec.ips {
        match ip {
            IpAddr::V4(v4) => san.push(tlv(0x87, &v4.octets())),
            IpAddr::V6(v6) => san.push(tlv(0x87, &v6.octets())),
        }
    }
    if !san.is_empty() {
        exts.push(extension(&[0x55, 0x1d, 0x11], false, &seq(&san)));
    }

    let tbs = seq(&[
        tlv(0xa0, &tlv(0x02, &[0x02])),
        random_serial(),
        sig_alg.clone(),
        issuer.to_vec(),
        seq(&[time(spec.not_before), time(spec.not_after)]),
        subject.to_vec(),
        spki,
        tlv(0xa3, &seq(&exts)),
    ]);
    let sig = signer.sign(&tbs);
    let mut bits = vec![0u8];
    bits.extend_from_slice(&sig);
    seq(&[tbs, sig_alg, tlv(0x03, &bits)])
}

fn extension(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let mut parts = vec![tlv(0x06, oid)];
    if critical {
        parts.push(vec![0x01, 0x01, 0xff]);
    }
    parts.push(tlv(0x04, value));
    seq(&parts)
}

/// `O=<org>` as Go writes it: PrintableString when possible, else UTF8String.
fn name(org: &str) -> Vec<u8> {
    let printable = org
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&c));
    let value = tlv(if printable { 0x13 } else { 0x0c }, org.as_bytes());
    let atv = seq(&[tlv(0x06, &[0x55, 0x04, 0x0a]), value]);
    seq(&[tlv(0x31, &atv)])
}

/// A positive random serial below 2^128, minimally encoded.
fn random_serial() -> Vec<u8> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).expect("random serial");
    b[0] &= 0x7f;
    if b.iter().all(|&x| x == 0) {
        b[15] = 1;
    }
    let start = b.iter().position(|&x| x != 0).unwrap_or(15);
    let mut v = b[start..].to_vec();
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    tlv(0x02, &v)
}

/// UTCTime for 1950..2049, GeneralizedTime otherwise (RFC 5280, as Go does).
fn time(t: i64) -> Vec<u8> {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    if (1950..2050).contains(&y) {
        let s = format!("{:02}{m:02}{d:02}{hh:02}{mm:02}{ss:02}Z", y % 100);
        tlv(0x17, s.as_bytes())
    } else {
        let s = format!("{y:04}{m:02}{d:02}{hh:02}{mm:02}{ss:02}Z");
        tlv(0x18, s.as_bytes())
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a Unix time (for `-dump`).
pub fn utc_string(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Civil date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// DER tag-length-value.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = (n as u32).to_be_bytes();
        let skip = bytes.iter().position(|&b| b != 0).unwrap_or(3);
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// DER SEQUENCE of already encoded parts.
pub fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

// ---------------------------------------------------------------------------
// DER reading (just enough for keys and SPKI)

/// Splits one element: (tag, content, rest).
fn split_tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The PKCS#1 RSAPrivateKey inside a PKCS#8 PrivateKeyInfo
/// (SEQUENCE { version, algorithm, OCTET STRING privateKey, ... }).
fn pkcs8_inner(pkcs8: &[u8]) -> Vec<u8> {
    let inner = (|| {
        let (_, info, _) = split_tlv(pkcs8)?;
        let (_, _, rest) = split_tlv(info)?; // version
        let (_, _, rest) = split_tlv(rest)?; // algorithm
        let (tag, key, _) = split_tlv(rest)?;
        (tag == 0x04).then(|| key.to_vec())
    })();
    inner.expect("PKCS#8 from aws-lc-rs has a private key")
}

/// The subjectPublicKey bits of an SPKI (without the unused-bits byte).
fn spki_key_bits(spki: &[u8]) -> Option<&[u8]> {
    let (_, body, _) = split_tlv(spki)?;
    let (_, _, rest) = split_tlv(body)?;
    let (tag, bits, _) = split_tlv(rest)?;
    (tag == 0x03).then(|| bits.get(1..)).flatten()
}

/// Raw DER of a certificate's subject Name.
pub fn cert_subject(der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert, _) = split_tlv(der)?;
    let (_, mut tbs, _) = split_tlv(cert)?;
    if tbs.first() == Some(&0xa0) {
        tbs = split_tlv(tbs)?.2;
    }
    let (_, _, rest) = split_tlv(tbs)?; // serial
    let (_, _, rest) = split_tlv(rest)?; // signature
    let (_, _, rest) = split_tlv(rest)?; // issuer
    let (_, _, rest) = split_tlv(rest)?; // validity
    let before = rest.len();
    let (_, _, after) = split_tlv(rest)?;
    Some(rest[..before - after.len()].to_vec())
}

/// The `O=` value of a Name, if any.
pub fn organization(name_der: &[u8]) -> Option<String> {
    let (_, mut rdns, _) = split_tlv(name_der)?;
    while !rdns.is_empty() {
        let (_, set, rest) = split_tlv(rdns)?;
        rdns = rest;
        let (_, atv, _) = split_tlv(set)?;
        let (_, oid, rest) = split_tlv(atv)?;
        if oid == [0x55, 0x04, 0x0a] {
            let (_, value, _) = split_tlv(rest)?;
            return Some(String::from_utf8_lossy(value).into_owned());
        }
    }
    None
}

// ---------------------------------------------------------------------------
// PEM

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// PEM block with 64-column base64, as Go's `pem.Encode`.
pub fn pem(label: &str, der: &[u8]) -> String {
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |a, (i, &b)| a | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or(""));
        out.push('\n');
    }
    let _ = writeln!(out, "-----END {label}-----");
    out
}

/// Minimal PEM reader for this file's own needs (the crate has the real one).
pub fn pem_decode(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in text.lines().map(str::trim) {
        if let Some(l) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            cur = Some((l.to_string(), String::new()));
        } else if line.starts_with("-----END ") {
            if let Some((l, body)) = cur.take() {
                let mut bytes = Vec::new();
                let (mut acc, mut bits) = (0u32, 0);
                for c in body.bytes() {
                    let Some(v) = B64.iter().position(|&x| x == c) else {
                        continue;
                    };
                    acc = (acc << 6) | v as u32;
                    bits += 6;
                    if bits >= 8 {
                        bits -= 8;
                        bytes.push((acc >> bits) as u8);
                    }
                }
                out.push((l, bytes));
            }
        } else if let Some((_, body)) = cur.as_mut() {
            body.push_str(line);
        }
    }
    out
}
