//! TLS for SSNTP: loading ciao certificates and the rustls configurations
//! with the certificate verifiers ciao certificates need.
//!
//! ciao-cert certificates defeat stock verifiers: they carry
//! anyExtendedKeyUsage plus ciao role OIDs but no serverAuth/clientAuth, the
//! scheduler's certificate *is* the CA certificate, and leaves have
//! issuer DN == subject DN. So both sides use custom verifiers built on
//! webpki:
//!
//! * **client side** ([`client_config`]): a server leaf byte-identical to a
//!   certificate of the CA file is trusted as such (ciao's normal deployment),
//!   after its validity dates and SANs are checked; any other leaf must chain
//!   to the CA file through webpki with an EKU of serverAuth, anyExtendedKeyUsage
//!   or a ciao role. Then the SAN must match the dialled host (DNS name or IP).
//! * **server side** ([`server_config`]): a client certificate is mandatory and
//!   must chain to the CA file with an EKU of clientAuth, anyExtendedKeyUsage
//!   or a ciao role — or be byte-identical to a certificate of the CA file
//!   (dates checked), because Go accepts a trust anchor as a leaf on both
//!   sides and a component holding the CA certificate (a scheduler-role
//!   client) may connect with it.
//!
//! **Role policy** (what "certificate roles are enforced on both sides" means here):
//!
//! * the client rejects, during the handshake, a server certificate without the
//!   SCHEDULER or SERVER role ([`SERVER_ROLES`]): a launcher only ever talks to
//!   a scheduler or to a test server, and a leaked agent key must not be able to
//!   impersonate one. (Go did not check this; it is stricter by design.)
//! * the server rejects, during the handshake, a client certificate that carries
//!   no ciao role OID at all: such a peer could never pass SSNTP's CONNECT role
//!   check except by claiming role 0, which Go let through (S2.2.1 in
//!   docs/compatibility.md) and we do not want to rely on. Which role a client
//!   may claim is decided later by the SSNTP layer: the claimed CONNECT role
//!   must be a subset of the certificate's roles
//!   ([`crate::ssntp::cert::parse_certificate`] on `peer_certificates()[0]`).
//!
//! Both rejections abort the handshake with a TLS alert (certificate_unknown),
//! and the local error names the reason.
//!
//! Signatures on the handshake are always verified with the aws-lc-rs
//! provider's algorithms (P-521/SHA-512 certificates from `ciao-cert
//! -elliptic-key` need aws-lc-rs; *ring* cannot verify them). TLS 1.2 and 1.3
//! are both enabled.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
    SupportedProtocolVersion,
};

use super::cert::{self, CertError, CertInfo};
use super::role;

/// SSNTP's TCP port (both sides; the launcher cannot change it).
pub(crate) const SSNTP_PORT: u16 = 8888;

/// A server certificate must carry at least one of these roles for the client
/// to accept it (see the module documentation).
pub(crate) const SERVER_ROLES: u32 = role::SCHEDULER | role::SERVER;

/// A node's own certificate, chain and key, as loaded from a ciao-cert file.
pub struct Identity {
    /// The certificate(s) of the file, leaf first (ciao-cert writes one).
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key of the leaf.
    pub key: PrivateKeyDer<'static>,
    /// What the DER walk read from the leaf; `info.roles` is the node's role.
    pub info: CertInfo,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("chain_len", &self.chain.len())
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Why certificates could not be loaded or a TLS configuration not be built.
#[derive(Debug)]
pub enum TlsError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        err: std::io::Error,
    },
    /// The file holds no PEM `CERTIFICATE` block.
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no usable PEM private-key block.
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The private key is password-protected.
    EncryptedKey {
        /// The file.
        path: PathBuf,
    },
    /// A certificate of the file cannot be read.
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// 1-based position of the certificate in the file.
        index: usize,
        /// Why.
        err: CertError,
    },
    /// A certificate is well formed but webpki/rustls refuse to use it.
    Unusable {
        /// The file.
        path: PathBuf,
        /// 1-based position of the certificate in the file.
        index: usize,
        /// Why.
        reason: String,
    },
    /// The private key cannot be used (unsupported type or malformed).
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why (from rustls).
        reason: String,
    },
    /// The private key does not belong to the certificate.
    KeyMismatch {
        /// The file.
        path: PathBuf,
    },
    /// A CA certificate cannot serve as a trust anchor.
    BadCa {
        /// 1-based position of the certificate in the CA list.
        index: usize,
        /// Why (from webpki).
        reason: String,
    },
    /// The CA list is empty.
    NoCa,
    /// rustls refused the configuration.
    Config(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { path, err } => write!(f, "cannot read {}: {err}", path.display()),
            TlsError::NoCertificate { path } => write!(
                f,
                "{}: no certificate found (expected a PEM 'CERTIFICATE' block)",
                path.display()
            ),
            TlsError::NoKey { path } => write!(
                f,
                "{}: no private key found (expected a PEM 'RSA PRIVATE KEY', 'EC PRIVATE KEY' \
                 or 'PRIVATE KEY' block after the certificate, as ciao-cert writes)",
                path.display()
            ),
            TlsError::EncryptedKey { path } => write!(
                f,
                "{}: the private key is encrypted; ciao needs an unencrypted key",
                path.display()
            ),
            TlsError::BadCertificate { path, index, err } => {
                write!(f, "{}: certificate #{index}: {err}", path.display())
            }
            TlsError::Unusable {
                path,
                index,
                reason,
            } => write!(
                f,
                "{}: certificate #{index} cannot be used: {reason}",
                path.display()
            ),
            TlsError::BadKey { path, reason } => {
                write!(f, "{}: unusable private key: {reason}", path.display())
            }
            TlsError::KeyMismatch { path } => write!(
                f,
                "{}: the private key does not belong to the certificate",
                path.display()
            ),
            TlsError::BadCa { index, reason } => {
                write!(
                    f,
                    "CA certificate #{index} cannot be a trust anchor: {reason}"
                )
            }
            TlsError::NoCa => write!(f, "no CA certificate given"),
            TlsError::Config(e) => write!(f, "TLS configuration refused: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// The crypto provider every SSNTP connection uses (never the process default).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|err| TlsError::Read {
        path: path.to_path_buf(),
        err,
    })
}

/// The CERTIFICATE blocks of a PEM text, each checked by the DER walk.
fn certificates(
    path: &Path,
    blocks: &[(String, Vec<u8>)],
) -> Result<Vec<(CertificateDer<'static>, CertInfo)>, TlsError> {
    let mut out = Vec::new();
    for (label, der) in blocks {
        if label != "CERTIFICATE" {
            continue;
        }
        let info = cert::parse_certificate(der).map_err(|err| TlsError::BadCertificate {
            path: path.to_path_buf(),
            index: out.len() + 1,
            err,
        })?;
        out.push((CertificateDer::from(der.clone()), info));
    }
    if out.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// Loads a node's certificate file: the PEM certificate(s) and the private key
/// in one file, as ciao-cert writes it (`RSA PRIVATE KEY` PKCS#1 or
/// `EC PRIVATE KEY` SEC1); a PKCS#8 `PRIVATE KEY` is accepted too.
///
/// The key is loaded by the crypto provider and compared with the
/// certificate, so a wrong or unusable key is reported here, at start-up, not
/// at the first handshake. A certificate without any role is *not* refused
/// here (`info.roles == 0`); the caller decides (Go refused to run with
/// "Could not find a SSNTP role").
pub fn load_identity(path: &Path) -> Result<Identity, TlsError> {
    let blocks = cert::pem_blocks(&read(path)?);
    let certs = certificates(path, &blocks)?;
    let key = blocks
        .iter()
        .find_map(|(label, der)| match label.as_str() {
            "RSA PRIVATE KEY" => Some(Ok(PrivateKeyDer::Pkcs1(der.clone().into()))),
            "EC PRIVATE KEY" => Some(Ok(PrivateKeyDer::Sec1(der.clone().into()))),
            "PRIVATE KEY" => Some(Ok(PrivateKeyDer::Pkcs8(der.clone().into()))),
            "ENCRYPTED PRIVATE KEY" => Some(Err(())),
            _ => None,
        })
        .ok_or_else(|| TlsError::NoKey {
            path: path.to_path_buf(),
        })?
        .map_err(|()| TlsError::EncryptedKey {
            path: path.to_path_buf(),
        })?;
    let info = certs[0].1.clone();
    let chain: Vec<CertificateDer<'static>> = certs.into_iter().map(|(c, _)| c).collect();

    let signing_key = provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| TlsError::BadKey {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    match CertifiedKey::new(chain.clone(), signing_key).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(TlsError::KeyMismatch {
                path: path.to_path_buf(),
            })
        }
        Err(e) => {
            return Err(TlsError::Unusable {
                path: path.to_path_buf(),
                index: 1,
                reason: e.to_string(),
            })
        }
    }
    warn_if_exposed(path);
    Ok(Identity { chain, key, info })
}

/// Warns (once per load, which is once per start-up) when the file holding a
/// private key can be read or written by users other than its owner, as ssh
/// does for its keys. A warning, not a refusal: existing deployments keep
/// starting, and the operator learns which file to `chmod 600`.
fn warn_if_exposed(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if key_mode_exposed(mode) {
            log::warn!(
                "private key file {} has mode {mode:04o}: it is accessible by other users; \
                 it should be 0600 (chmod 600 {})",
                path.display(),
                path.display()
            );
        }
    }
}

/// Whether a key file's permission bits give group or others any access
/// (the test ssh applies).
fn key_mode_exposed(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// Loads the CA file: every PEM `CERTIFICATE` block (all become trust anchors).
pub fn load_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let blocks = cert::pem_blocks(&read(path)?);
    let certs = certificates(path, &blocks)?;
    for (i, (c, _)) in certs.iter().enumerate() {
        webpki::anchor_from_trusted_cert(c).map_err(|e| TlsError::Unusable {
            path: path.to_path_buf(),
            index: i + 1,
            reason: webpki_reason(&e).to_string(),
        })?;
    }
    Ok(certs.into_iter().map(|(c, _)| c).collect())
}

/// A short reason for a webpki parse error (its Display is Debug-like).
fn webpki_reason(e: &webpki::Error) -> &'static str {
    match e {
        webpki::Error::BadDer | webpki::Error::BadDerTime | webpki::Error::TrailingData(_) => {
            "webpki cannot parse it"
        }
        webpki::Error::UnsupportedCertVersion => "only X.509 v3 certificates are supported",
        _ => "webpki refuses it",
    }
}

/// One entry of the launcher's server address list (`server_addresses`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAddr {
    /// A DNS name or an IP literal (IPv6 without brackets).
    pub host: String,
    /// [`SSNTP_PORT`] unless the launcher's `--server` names another.
    pub port: u16,
}

impl ServerAddr {
    /// The name the server's certificate must match: an IP address when the
    /// host is an IP literal (checked against IP SANs, no SNI sent), else a DNS
    /// name (sent as SNI, checked against DNS SANs) — as Go's dialer did.
    pub fn server_name(&self) -> Option<ServerName<'static>> {
        ServerName::try_from(self.host.clone()).ok()
    }
}

impl fmt::Display for ServerAddr {
    /// `host:port`, with IPv6 literals bracketed (`[::1]:8888`) so that the
    /// string can be dialled (Go forgot the brackets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The ordered list of addresses a launcher dials, as the original builds
/// it: every IP SAN of the **first** PEM block of the CA file (certificate
/// order), then every DNS SAN of it, then `localhost` (always, even if
/// already listed), each with port 8888. If the first block is not a readable certificate, only
/// `localhost` remains, as in Go.
///
/// Returned as [`ServerAddr`] rather than strings so that the caller gets the
/// host for the certificate name check without re-parsing; its `Display`
/// gives the `host:port` form.
pub fn server_addresses(ca_pem: &[u8]) -> Vec<ServerAddr> {
    let addr = |host: String| ServerAddr {
        host,
        port: SSNTP_PORT,
    };
    let mut out = Vec::new();
    if let Some((_, der)) = cert::pem_blocks(ca_pem).first() {
        if let Ok(info) = cert::parse_certificate(der) {
            out.extend(
                info.ips
                    .iter()
                    .map(|ip: &IpAddr| addr(ip.to_canonical().to_string())),
            );
            out.extend(info.dns_names.into_iter().map(addr));
        }
    }
    out.push(addr("localhost".to_string()));
    out
}

/// The client configuration of an SSNTP client (the launcher), TLS 1.2 and 1.3.
pub fn client_config(
    ca: &[CertificateDer<'static>],
    id: &Identity,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    client_config_with_versions(ca, id, &[&rustls::version::TLS13, &rustls::version::TLS12])
}

/// [`client_config`] limited to some protocol versions (tests force TLS 1.2).
pub fn client_config_with_versions(
    ca: &[CertificateDer<'static>],
    id: &Identity,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let verifier = CiaoServerVerifier {
        trust: Trust::new(ca, &provider)?,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(TlsError::Config)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
        .map_err(TlsError::Config)?;
    Ok(Arc::new(config))
}

/// The server configuration of an SSNTP server (the test server), TLS 1.2 and
/// 1.3, client certificates mandatory.
pub fn server_config(
    ca: &[CertificateDer<'static>],
    id: &Identity,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_config_with_versions(ca, id, &[&rustls::version::TLS13, &rustls::version::TLS12])
}

/// [`server_config`] limited to some protocol versions.
pub fn server_config_with_versions(
    ca: &[CertificateDer<'static>],
    id: &Identity,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = provider();
    let trust = Trust::new(ca, &provider)?;
    // Go lists the CA subjects in its CertificateRequest; so do we.
    let subjects = trust
        .infos
        .iter()
        .map(|i| DistinguishedName::from(i.subject.clone()))
        .collect();
    let verifier = CiaoClientVerifier { trust, subjects };
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(id.chain.clone(), id.key.clone_key())
        .map_err(TlsError::Config)?;
    Ok(Arc::new(config))
}

/// The CA file as both verifiers need it.
#[derive(Debug)]
struct Trust {
    ders: Vec<CertificateDer<'static>>,
    infos: Vec<CertInfo>,
    anchors: Vec<TrustAnchor<'static>>,
    algs: WebPkiSupportedAlgorithms,
}

impl Trust {
    fn new(ca: &[CertificateDer<'static>], provider: &CryptoProvider) -> Result<Self, TlsError> {
        if ca.is_empty() {
            return Err(TlsError::NoCa);
        }
        let mut anchors = Vec::new();
        let mut infos = Vec::new();
        for (i, c) in ca.iter().enumerate() {
            let info = cert::parse_certificate(c).map_err(|e| TlsError::BadCa {
                index: i + 1,
                reason: e.to_string(),
            })?;
            let anchor = webpki::anchor_from_trusted_cert(c).map_err(|e| TlsError::BadCa {
                index: i + 1,
                reason: webpki_reason(&e).to_string(),
            })?;
            anchors.push(anchor.to_owned());
            infos.push(info);
        }
        Ok(Trust {
            ders: ca.to_vec(),
            infos,
            anchors,
            algs: provider.signature_verification_algorithms,
        })
    }

    /// Verifies a peer leaf: byte-identical to a CA certificate ⇒ dates only;
    /// otherwise a webpki chain to the CA with `eku`. Returns the leaf's info.
    fn verify_leaf(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        eku: &EkuPolicy,
    ) -> Result<CertInfo, rustls::Error> {
        let info = cert::parse_certificate(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if self.ders.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
            if now_secs < info.not_before {
                return Err(CertificateError::NotValidYet.into());
            }
            if now_secs > info.not_after {
                return Err(CertificateError::Expired.into());
            }
            return Ok(info);
        }
        let ee = webpki::EndEntityCert::try_from(end_entity).map_err(pki_error)?;
        ee.verify_for_usage(
            self.algs.all,
            &self.anchors,
            intermediates,
            now,
            eku,
            None,
            None,
        )
        .map_err(pki_error)?;
        Ok(info)
    }
}

/// Which key purposes a peer leaf may carry: the standard one for its side,
/// anyExtendedKeyUsage, or any ciao role OID. A certificate without an EKU
/// extension passes this check (RFC 5280: any purpose) but then has no role,
/// which the role policy rejects.
#[derive(Debug)]
struct EkuPolicy {
    standard: &'static [u8],
}

const SERVER_EKU: EkuPolicy = EkuPolicy {
    standard: cert::OID_SERVER_AUTH,
};
const CLIENT_EKU: EkuPolicy = EkuPolicy {
    standard: cert::OID_CLIENT_AUTH,
};

impl webpki::ExtendedKeyUsageValidator for EkuPolicy {
    fn validate(&self, iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let standard = webpki::KeyPurposeId::new(self.standard);
        let any = webpki::KeyPurposeId::new(cert::OID_ANY_EKU);
        let mut empty = true;
        for id in iter {
            let id = id?;
            empty = false;
            if id == standard || id == any || is_role_oid(&id) {
                return Ok(());
            }
        }
        if empty {
            Ok(())
        } else {
            #[allow(deprecated)]
            Err(webpki::Error::RequiredEkuNotFound)
        }
    }
}

/// Whether a webpki key purpose is one of the ciao role OIDs. webpki hides the
/// bytes, so compare against each known role OID.
fn is_role_oid(id: &webpki::KeyPurposeId<'_>) -> bool {
    ROLE_OIDS
        .iter()
        .any(|oid| webpki::KeyPurposeId::new(oid) == *id)
}

/// DER content bytes of the six role OIDs (prefix + last arc).
const ROLE_OIDS: [[u8; 9]; 6] = {
    let mut out = [[0u8; 9]; 6];
    let mut i = 0;
    while i < 6 {
        let mut j = 0;
        while j < 8 {
            out[i][j] = role::OID_PREFIX[j];
            j += 1;
        }
        out[i][8] = role::ROLES[i].2;
        i += 1;
    }
    out
};

/// webpki's verdicts as rustls certificate errors (so rustls sends the right
/// alert), keeping webpki's context where rustls has a place for it.
fn pki_error(e: webpki::Error) -> rustls::Error {
    use webpki::Error as W;
    let ce = match e {
        W::BadDer | W::BadDerTime | W::TrailingData(_) => CertificateError::BadEncoding,
        W::CertNotValidYet { time, not_before } => {
            CertificateError::NotValidYetContext { time, not_before }
        }
        W::CertExpired { time, not_after } => CertificateError::ExpiredContext { time, not_after },
        W::InvalidCertValidity => CertificateError::Expired,
        W::UnknownIssuer => CertificateError::UnknownIssuer,
        W::CertNotValidForName(cx) => CertificateError::NotValidForNameContext {
            expected: cx.expected,
            presented: cx.presented,
        },
        W::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        #[allow(deprecated)]
        W::UnsupportedSignatureAlgorithm | W::UnsupportedSignatureAlgorithmForPublicKey => {
            CertificateError::UnsupportedSignatureAlgorithm
        }
        #[allow(deprecated)]
        W::RequiredEkuNotFound | W::RequiredEkuNotFoundContext(_) => {
            CertificateError::InvalidPurpose
        }
        W::CaUsedAsEndEntity => rejected(
            "the peer presented a CA certificate that is not in our CA file as its own certificate"
                .to_string(),
        ),
        other => rejected(format!("certificate rejected by webpki: {other:?}")),
    };
    rustls::Error::InvalidCertificate(ce)
}

/// An operator-readable rejection (sent to the peer as certificate_unknown).
#[derive(Debug)]
struct Rejected(String);

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Rejected {}

fn rejected(msg: String) -> CertificateError {
    CertificateError::Other(OtherError(Arc::new(Rejected(msg))))
}

fn role_names(mask: u32) -> String {
    match role::name(mask) {
        n if n.is_empty() => "none".to_string(),
        n => n,
    }
}

/// The launcher's verifier of the scheduler's certificate (the client side
/// of the module documentation).
#[derive(Debug)]
struct CiaoServerVerifier {
    trust: Trust,
}

/// The handshake-signature methods that `ServerCertVerifier` and `ClientCertVerifier` both
/// require: the same for the two verifiers, checked with the algorithms of their [`Trust`].
macro_rules! signature_checks_by_trust {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.trust.algs)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.trust.algs)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.trust.algs.supported_schemes()
        }
    };
}

impl ServerCertVerifier for CiaoServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let info = self
            .trust
            .verify_leaf(end_entity, intermediates, now, &SERVER_EKU)?;
        webpki::EndEntityCert::try_from(end_entity)
            .map_err(pki_error)?
            .verify_is_valid_for_subject_name(server_name)
            .map_err(pki_error)?;
        if info.roles & SERVER_ROLES == 0 {
            return Err(rejected(format!(
                "the server certificate has no Scheduler or Server role (its roles: {})",
                role_names(info.roles)
            ))
            .into());
        }
        Ok(ServerCertVerified::assertion())
    }

    signature_checks_by_trust!();
}

/// The server's verifier of client (launcher) certificates (the server side
/// of the module documentation).
#[derive(Debug)]
struct CiaoClientVerifier {
    trust: Trust,
    subjects: Vec<DistinguishedName>,
}

impl ClientCertVerifier for CiaoClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.subjects
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let info = self
            .trust
            .verify_leaf(end_entity, intermediates, now, &CLIENT_EKU)?;
        if info.roles == 0 {
            return Err(rejected(
                "the client certificate carries no ciao role (no role OID in its extended key usage)"
                    .to_string(),
            )
            .into());
        }
        Ok(ClientCertVerified::assertion())
    }

    signature_checks_by_trust!();
}

/// Where the launcher looks for certificates when `-cacert` is not given.
pub(crate) const DEFAULT_PKI_DIR: &str = "/etc/pki/ciao";

/// Certificate discovery of the original (S14.11 in docs/compatibility.md):
/// in `dir`, in name order, the first file holding a CA certificate is the CA, and
/// the files whose certificate carries the agent or netagent role are the
/// candidates for this node's certificate. Exactly one candidate is used;
/// with several, `CAcert-localhost.pem` and `client.pem` must both exist and
/// are used. Returns `(ca file, certificate file)`.
pub fn discover_certificates(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut ca = None;
    let mut candidates = Vec::new();
    for f in &files {
        let Ok(text) = std::fs::read(f) else { continue };
        let Some(info) = cert::pem_blocks(&text)
            .into_iter()
            .find(|(label, _)| label == "CERTIFICATE")
            .and_then(|(_, der)| cert::parse_certificate(&der).ok())
        else {
            continue;
        };
        if info.is_ca && ca.is_none() {
            ca = Some(f.clone());
        }
        if info.roles & (role::AGENT | role::NETAGENT) != 0 {
            candidates.push(f.clone());
        }
    }
    let ca = ca.ok_or_else(|| format!("no CA certificate in {}", dir.display()))?;
    match candidates.len() {
        0 => Err(format!(
            "no agent or netagent certificate in {}",
            dir.display()
        )),
        1 => Ok((ca, candidates.remove(0))),
        _ => {
            let (a, b) = (dir.join("CAcert-localhost.pem"), dir.join("client.pem"));
            if a.is_file() && b.is_file() {
                Ok((a, b))
            } else {
                Err(format!(
                    "several agent certificates in {}; name the CA CAcert-localhost.pem and this \
                     node's certificate client.pem, or give -cacert and -cert",
                    dir.display()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_oid_table_matches_role_module() {
        for (oid, r) in ROLE_OIDS.iter().zip(role::ROLES.iter()) {
            assert_eq!(role::from_oid(oid), Some(r.0));
        }
    }

    #[test]
    fn server_addr_formats_ipv6_with_brackets() {
        let a = ServerAddr {
            host: "::1".into(),
            port: 8888,
        };
        assert_eq!(a.to_string(), "[::1]:8888");
        assert!(matches!(a.server_name(), Some(ServerName::IpAddress(_))));
        let b = ServerAddr {
            host: "localhost".into(),
            port: 8888,
        };
        assert_eq!(b.to_string(), "localhost:8888");
        assert!(matches!(b.server_name(), Some(ServerName::DnsName(_))));
    }

    #[test]
    fn addresses_without_a_readable_ca_are_just_localhost() {
        let only = vec![ServerAddr {
            host: "localhost".into(),
            port: 8888,
        }];
        assert_eq!(server_addresses(b""), only);
        assert_eq!(
            server_addresses(b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"),
            only
        );
    }
}
