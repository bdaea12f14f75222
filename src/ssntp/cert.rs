//! A small DER walk over X.509 certificates, and a PEM reader.
//!
//! rustls does not parse certificates for its users, and the design keeps X.509
//! crates out of the runtime (see the README's list of runtime crates), so this
//! module reads the few fields SSNTP needs straight from the DER: the ciao role
//! OIDs in the extended key usage (a node's own role and the role check of the
//! peer), the CA flag, the validity period (the anchor-as-leaf path of the
//! client verifier bypasses webpki and checks dates itself), the SANs (the
//! launcher's server address list, `tls::server_addresses`) and the raw
//! subject/issuer names.
//!
//! The walk never recurses beyond the fixed depth of the certificate structure,
//! never indexes out of bounds and never panics, whatever the input: every read
//! goes through [`Der`], which returns [`CertError`] on anything short, long or
//! unexpected. It is a reader, not a verifier: signatures are checked by webpki
//! in `tls.rs`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::role;

/// What the DER walk found in a certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertInfo {
    /// OR of the ciao role bits of every role OID in the extended key usage
    /// (`ciao::ssntp::role`); unknown OIDs and anyExtendedKeyUsage add nothing.
    pub roles: u32,
    /// The EKU lists anyExtendedKeyUsage (2.5.29.37.0), as every ciao-cert certificate does.
    pub any_eku: bool,
    /// The EKU lists id-kp-serverAuth.
    pub server_auth: bool,
    /// The EKU lists id-kp-clientAuth.
    pub client_auth: bool,
    /// BasicConstraints says `CA:TRUE`.
    pub is_ca: bool,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// dNSName entries of the SubjectAltName extension, in certificate order.
    pub dns_names: Vec<String>,
    /// iPAddress entries of the SubjectAltName extension, in certificate order.
    pub ips: Vec<IpAddr>,
    /// Raw DER (tag and length included) of the subject Name.
    pub subject: Vec<u8>,
    /// Raw DER (tag and length included) of the issuer Name.
    pub issuer: Vec<u8>,
}

/// Why a certificate could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertError {
    /// The input ended inside `what`.
    Truncated(&'static str),
    /// A different DER tag was found where `what` was expected.
    UnexpectedTag {
        /// The field being read.
        what: &'static str,
        /// The tag expected there.
        expected: u8,
        /// The tag found.
        found: u8,
    },
    /// A length is malformed (indefinite, over-long or larger than 4 GiB).
    BadLength(&'static str),
    /// Bytes follow the end of `what`.
    TrailingData(&'static str),
    /// A field's content is not valid (`what` names the field).
    BadValue(&'static str),
    /// A validity time is not a valid UTCTime/GeneralizedTime.
    BadTime,
    /// The same extension appears twice (RFC 5280 forbids it).
    DuplicateExtension(&'static str),
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertError::Truncated(w) => write!(f, "malformed certificate: {w} is truncated"),
            CertError::UnexpectedTag {
                what,
                expected,
                found,
            } => write!(
                f,
                "malformed certificate: expected DER tag 0x{expected:02x} for {what}, found 0x{found:02x}"
            ),
            CertError::BadLength(w) => write!(f, "malformed certificate: bad DER length in {w}"),
            CertError::TrailingData(w) => {
                write!(f, "malformed certificate: unexpected bytes after {w}")
            }
            CertError::BadValue(w) => write!(f, "malformed certificate: invalid {w}"),
            CertError::BadTime => write!(f, "malformed certificate: invalid validity time"),
            CertError::DuplicateExtension(w) => {
                write!(f, "malformed certificate: the {w} extension appears twice")
            }
        }
    }
}

impl std::error::Error for CertError {}

// DER tags used below.
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const CTX_0_CONS: u8 = 0xa0;
const CTX_3_CONS: u8 = 0xa3;
const SAN_DNS: u8 = 0x82;
const SAN_IP: u8 = 0x87;

/// Extension OIDs (DER content bytes).
const OID_EKU: &[u8] = &[0x55, 0x1d, 0x25];
const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];
/// Key purposes (DER content bytes).
pub(crate) const OID_ANY_EKU: &[u8] = &[0x55, 0x1d, 0x25, 0x00];
/// id-kp-serverAuth 1.3.6.1.5.5.7.3.1.
pub(crate) const OID_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
/// id-kp-clientAuth 1.3.6.1.5.5.7.3.2.
pub(crate) const OID_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

/// A cursor over DER bytes. Every method checks bounds; nothing panics.
struct Der<'a> {
    data: &'a [u8],
}

/// One DER element: its tag, its content, and the whole encoding.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    raw: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(data: &'a [u8]) -> Self {
        Der { data }
    }

    /// A cursor over the content of `data`, which must be exactly one SEQUENCE.
    fn only_sequence(data: &'a [u8], what: &'static str) -> Result<Self, CertError> {
        let mut outer = Der::new(data);
        let seq = outer.expect(SEQUENCE, what)?;
        outer.finish(what)?;
        Ok(Der::new(seq.content))
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// Reads one element of any tag. Only single-byte tags (all X.509 needs)
    /// and definite lengths of at most 4 length bytes are accepted.
    fn any(&mut self, what: &'static str) -> Result<Tlv<'a>, CertError> {
        let (&tag, rest) = self.data.split_first().ok_or(CertError::Truncated(what))?;
        if tag & 0x1f == 0x1f {
            return Err(CertError::BadValue(
                "DER tag (multi-byte tags are not used in X.509)",
            ));
        }
        let (&first, mut rest) = rest.split_first().ok_or(CertError::Truncated(what))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return Err(CertError::BadLength(what));
            }
            if rest.len() < n {
                return Err(CertError::Truncated(what));
            }
            let (bytes, tail) = rest.split_at(n);
            rest = tail;
            bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        if rest.len() < len {
            return Err(CertError::Truncated(what));
        }
        let (content, tail) = rest.split_at(len);
        let header = self.data.len() - rest.len();
        let raw = &self.data[..header + len];
        self.data = tail;
        Ok(Tlv { tag, content, raw })
    }

    /// Reads one element that must carry `tag`.
    fn expect(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>, CertError> {
        let found = self.peek_tag().ok_or(CertError::Truncated(what))?;
        if found != tag {
            return Err(CertError::UnexpectedTag {
                what,
                expected: tag,
                found,
            });
        }
        self.any(what)
    }

    /// Reads an element with `tag` only if it is next.
    fn optional(&mut self, tag: u8, what: &'static str) -> Result<Option<Tlv<'a>>, CertError> {
        if self.peek_tag() == Some(tag) {
            self.any(what).map(Some)
        } else {
            Ok(None)
        }
    }

    fn finish(&self, what: &'static str) -> Result<(), CertError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(CertError::TrailingData(what))
        }
    }
}

/// Reads the fields SSNTP needs from one DER certificate.
///
/// The outer structure (Certificate, TBSCertificate up to the extensions) must be
/// well formed; unknown extensions are skipped; a malformed EKU, BasicConstraints
/// or SubjectAltName extension is an error, never silently ignored (a role OID
/// hidden in a broken extension must not be half-read).
pub fn parse_certificate(der: &[u8]) -> Result<CertInfo, CertError> {
    let mut cert = Der::only_sequence(der, "Certificate")?;
    let tbs = cert.expect(SEQUENCE, "TBSCertificate")?;
    cert.expect(SEQUENCE, "signatureAlgorithm")?;
    cert.expect(BIT_STRING, "signatureValue")?;
    cert.finish("signatureValue")?;

    let mut tbs = Der::new(tbs.content);
    tbs.optional(CTX_0_CONS, "version")?;
    tbs.expect(INTEGER, "serialNumber")?;
    tbs.expect(SEQUENCE, "signature")?;
    let issuer = tbs.expect(SEQUENCE, "issuer")?;
    let validity = tbs.expect(SEQUENCE, "validity")?;
    let subject = tbs.expect(SEQUENCE, "subject")?;
    tbs.expect(SEQUENCE, "subjectPublicKeyInfo")?;
    tbs.optional(0x81, "issuerUniqueID")?;
    tbs.optional(0x82, "subjectUniqueID")?;
    let extensions = tbs.optional(CTX_3_CONS, "extensions")?;
    tbs.finish("TBSCertificate")?;

    let mut info = CertInfo {
        issuer: issuer.raw.to_vec(),
        subject: subject.raw.to_vec(),
        ..CertInfo::default()
    };
    check_name(issuer.content, "issuer")?;
    check_name(subject.content, "subject")?;

    let mut validity = Der::new(validity.content);
    info.not_before = parse_time(validity.any("notBefore")?)?;
    info.not_after = parse_time(validity.any("notAfter")?)?;
    validity.finish("validity")?;

    if let Some(ext) = extensions {
        let mut wrapper = Der::new(ext.content);
        let list = wrapper.expect(SEQUENCE, "extensions")?;
        wrapper.finish("extensions")?;
        parse_extensions(list.content, &mut info)?;
    }
    Ok(info)
}

/// A Name is a SEQUENCE OF RelativeDistinguishedName (SET); only the shape is checked.
fn check_name(content: &[u8], what: &'static str) -> Result<(), CertError> {
    let mut rdns = Der::new(content);
    while !rdns.is_empty() {
        rdns.expect(SET, what)?;
    }
    Ok(())
}

fn parse_extensions(content: &[u8], info: &mut CertInfo) -> Result<(), CertError> {
    let (mut seen_eku, mut seen_bc, mut seen_san) = (false, false, false);
    let mut list = Der::new(content);
    while !list.is_empty() {
        let ext = list.expect(SEQUENCE, "extension")?;
        let mut ext = Der::new(ext.content);
        let oid = ext.expect(OID, "extension id")?;
        if let Some(crit) = ext.optional(BOOLEAN, "extension critical flag")? {
            if crit.content.len() != 1 {
                return Err(CertError::BadValue("extension critical flag"));
            }
        }
        let value = ext.expect(OCTET_STRING, "extension value")?;
        ext.finish("extension")?;
        match oid.content {
            OID_EKU => {
                if std::mem::replace(&mut seen_eku, true) {
                    return Err(CertError::DuplicateExtension("extended key usage"));
                }
                parse_eku(value.content, info)?;
            }
            OID_BASIC_CONSTRAINTS => {
                if std::mem::replace(&mut seen_bc, true) {
                    return Err(CertError::DuplicateExtension("basic constraints"));
                }
                info.is_ca = parse_basic_constraints(value.content)?;
            }
            OID_SAN => {
                if std::mem::replace(&mut seen_san, true) {
                    return Err(CertError::DuplicateExtension("subject alternative name"));
                }
                parse_san(value.content, info)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_eku(value: &[u8], info: &mut CertInfo) -> Result<(), CertError> {
    let mut oids = Der::only_sequence(value, "extended key usage")?;
    while !oids.is_empty() {
        let oid = oids.expect(OID, "extended key usage purpose")?;
        match oid.content {
            OID_ANY_EKU => info.any_eku = true,
            OID_SERVER_AUTH => info.server_auth = true,
            OID_CLIENT_AUTH => info.client_auth = true,
            other => info.roles |= role::from_oid(other).unwrap_or(0),
        }
    }
    Ok(())
}

fn parse_basic_constraints(value: &[u8]) -> Result<bool, CertError> {
    let mut bc = Der::only_sequence(value, "basic constraints")?;
    let is_ca = match bc.optional(BOOLEAN, "basic constraints CA flag")? {
        Some(b) => match b.content {
            [v] => *v != 0,
            _ => return Err(CertError::BadValue("basic constraints CA flag")),
        },
        None => false,
    };
    bc.optional(INTEGER, "basic constraints path length")?;
    bc.finish("basic constraints")?;
    Ok(is_ca)
}

fn parse_san(value: &[u8], info: &mut CertInfo) -> Result<(), CertError> {
    let mut names = Der::only_sequence(value, "subject alternative name")?;
    while !names.is_empty() {
        let name = names.any("subject alternative name entry")?;
        match name.tag {
            SAN_DNS => {
                let s = std::str::from_utf8(name.content)
                    .ok()
                    .filter(|s| s.is_ascii())
                    .ok_or(CertError::BadValue("DNS name in subject alternative name"))?;
                info.dns_names.push(s.to_string());
            }
            SAN_IP => {
                let ip = if let Ok(b) = <[u8; 4]>::try_from(name.content) {
                    IpAddr::V4(Ipv4Addr::from(b))
                } else if let Ok(b) = <[u8; 16]>::try_from(name.content) {
                    IpAddr::V6(Ipv6Addr::from(b))
                } else {
                    return Err(CertError::BadValue(
                        "IP address in subject alternative name",
                    ));
                };
                info.ips.push(ip);
            }
            _ => {}
        }
    }
    Ok(())
}

/// UTCTime `YYMMDDHHMMSSZ` (years 1950–2049) or GeneralizedTime `YYYYMMDDHHMMSSZ`,
/// as RFC 5280 §4.1.2.5 requires them (UTC, seconds present, no fractions).
fn parse_time(t: Tlv<'_>) -> Result<i64, CertError> {
    let s = t.content;
    let (year, rest) = match (t.tag, s.len()) {
        (UTC_TIME, 13) => {
            let yy = digits(&s[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        (GENERALIZED_TIME, 15) => (digits(&s[..4])?, &s[4..]),
        (UTC_TIME | GENERALIZED_TIME, _) => return Err(CertError::BadTime),
        (found, _) => {
            return Err(CertError::UnexpectedTag {
                what: "validity time",
                expected: UTC_TIME,
                found,
            })
        }
    };
    if rest.get(10) != Some(&b'Z') {
        return Err(CertError::BadTime);
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let hour = digits(&rest[4..6])?;
    let min = digits(&rest[6..8])?;
    let sec = digits(&rest[8..10])?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 59
    {
        return Err(CertError::BadTime);
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec)
}

fn digits(b: &[u8]) -> Result<i64, CertError> {
    b.iter().try_fold(0i64, |acc, &c| {
        if c.is_ascii_digit() {
            Ok(acc * 10 + i64::from(c - b'0'))
        } else {
            Err(CertError::BadTime)
        }
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Every PEM block in `text`, in order: (label, decoded DER).
///
/// Tolerant, like the PEM readers operators are used to: text outside blocks
/// is ignored, CRLF and surrounding whitespace are accepted, RFC 1421 header
/// lines (`Proc-Type: ...`) inside a block are skipped. A block whose END line
/// is missing or names another label, or whose base64 is invalid, is left out.
pub fn pem_blocks(text: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut current: Option<(String, Vec<u8>)> = None;
    for line in text.split(|&b| b == b'\n') {
        let line = line.trim_ascii();
        if let Some(label) = delimited(line, b"-----BEGIN ") {
            current = Some((label, Vec::new()));
        } else if let Some(label) = delimited(line, b"-----END ") {
            if let Some((begin, body)) = current.take() {
                if begin == label {
                    if let Some(der) = base64_decode(&body) {
                        out.push((label, der));
                    }
                }
            }
        } else if let Some((_, body)) = current.as_mut() {
            if !line.contains(&b':') {
                body.extend_from_slice(line);
            }
        }
    }
    out
}

/// The label of a `-----BEGIN X-----` / `-----END X-----` line.
fn delimited(line: &[u8], prefix: &[u8]) -> Option<String> {
    let label = line.strip_prefix(prefix)?.strip_suffix(b"-----")?;
    let label = std::str::from_utf8(label).ok()?;
    Some(label.to_string())
}

/// Standard base64 (RFC 4648 alphabet); whitespace is skipped, padding is
/// optional, and nothing may follow padding. `None` on any other byte.
pub(crate) fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let (mut acc, mut bits, mut pad) = (0u32, 0u32, 0usize);
    for &c in input {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pad += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        if pad > 0 {
            return None;
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A lone sextet cannot encode a byte; more than two '=' is not base64.
    if bits >= 6 || pad > 2 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_vectors() {
        assert_eq!(base64_decode(b"").unwrap(), b"");
        assert_eq!(base64_decode(b"Zg==").unwrap(), b"f");
        assert_eq!(base64_decode(b"Zm8=").unwrap(), b"fo");
        assert_eq!(base64_decode(b"Zm9v").unwrap(), b"foo");
        assert_eq!(base64_decode(b"Zm9vYg\r\n==").unwrap(), b"foob");
        assert_eq!(base64_decode(b"Zm9vYmE").unwrap(), b"fooba");
        assert!(base64_decode(b"Zm9v!").is_none());
        assert!(base64_decode(b"Z").is_none());
        assert!(base64_decode(b"Zg==Zg").is_none());
    }

    #[test]
    fn pem_blocks_with_crlf_and_headers() {
        let text = b"junk\r\n-----BEGIN CERTIFICATE-----\r\nZm9v\r\n-----END CERTIFICATE-----\r\n\
            -----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nYmFy\n-----END RSA PRIVATE KEY-----\n\
            -----BEGIN X-----\nYmFy\n-----END Y-----\n-----BEGIN Z-----\nYmFy\n";
        let blocks = pem_blocks(text);
        assert_eq!(
            blocks,
            vec![
                ("CERTIFICATE".to_string(), b"foo".to_vec()),
                ("RSA PRIVATE KEY".to_string(), b"bar".to_vec())
            ]
        );
    }

    #[test]
    fn times_follow_rfc5280() {
        let t = |tag: u8, s: &[u8]| {
            parse_time(Tlv {
                tag,
                content: s,
                raw: s,
            })
        };
        assert_eq!(t(UTC_TIME, b"700101000000Z"), Ok(0));
        assert_eq!(t(UTC_TIME, b"160527000000Z"), Ok(1_464_307_200));
        assert_eq!(t(UTC_TIME, b"491231235959Z"), Ok(2_524_607_999));
        assert_eq!(t(UTC_TIME, b"500101000000Z"), Ok(-631_152_000));
        assert_eq!(t(GENERALIZED_TIME, b"20500101000000Z"), Ok(2_524_608_000));
        assert_eq!(t(GENERALIZED_TIME, b"20240229120000Z"), Ok(1_709_208_000));
        assert_eq!(
            t(GENERALIZED_TIME, b"20230229120000Z"),
            Err(CertError::BadTime)
        );
        assert_eq!(t(UTC_TIME, b"700101000000+"), Err(CertError::BadTime));
        assert_eq!(t(UTC_TIME, b"7001010000Z"), Err(CertError::BadTime));
        assert!(t(INTEGER, b"700101000000Z").is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in [
            &b""[..],
            &[0x30],
            &[0x30, 0x80],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x1f, 0x00],
            &[0x30, 0x00],
            &[0x30, 0x02, 0x30, 0x00],
            &[0x30, 0x00, 0x00],
        ] {
            assert!(parse_certificate(input).is_err(), "{input:?}");
        }
    }
}
