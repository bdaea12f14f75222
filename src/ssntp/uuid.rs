//! UUIDs as SSNTP uses them: 16 raw bytes on the wire, lowercase
//! `8-4-4-4-12` hex in payloads and files.

use std::fmt;

/// A 16-byte UUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

/// Why a text is not a UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a UUID (expected 8-4-4-4-12 hex digits)",
            self.0
        )
    }
}

impl std::error::Error for ParseError {}

impl Uuid {
    /// The all-zero UUID (an unknown peer).
    pub const NIL: Uuid = Uuid([0; 16]);

    /// A random version-4 UUID from the kernel's random source.
    pub fn random() -> Uuid {
        let mut b = [0u8; 16];
        if crate::sys::random::fill(&mut b).is_err() {
            // Fallback: time and pid mixed; only reached without /dev/urandom.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let x = t ^ ((std::process::id() as u128) << 64);
            b = x.to_le_bytes();
        }
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Uuid(b)
    }

    /// Parses the Go form: five dash-separated groups of 8-4-4-4-12 hex
    /// digits, either case; version bits are not checked.
    pub fn parse(s: &str) -> Result<Uuid, ParseError> {
        let err = || ParseError(s.to_string());
        let groups: Vec<&str> = s.split('-').collect();
        if groups.len() != 5 || groups.iter().map(|g| g.len()).ne([8, 4, 4, 4, 12]) {
            return Err(err());
        }
        let hex: String = groups.concat();
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or_else(err)?;
            if !pair.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(err());
            }
            *o = u8::from_str_radix(pair, 16).map_err(|_| err())?;
        }
        Ok(Uuid(out))
    }

    /// The UUID from a byte slice that must hold at least 16 bytes (Go takes
    /// the first 16); `None` when shorter.
    pub fn from_slice(b: &[u8]) -> Option<Uuid> {
        let a: [u8; 16] = b.get(..16)?.try_into().ok()?;
        Some(Uuid(a))
    }

    /// True for the all-zero UUID.
    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        for (i, x) in b.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{x:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = "181c8302-9922-41aa-af44-c74980ca4641";
        let u = Uuid::parse(s).unwrap();
        assert_eq!(u.0[0], 0x18);
        assert_eq!(u.to_string(), s);
        assert_eq!(Uuid::parse(&s.to_uppercase()).unwrap(), u);
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in [
            "",
            "181c8302992241aaaf44c74980ca4641",
            "181c8302-9922-41aa-af44-c74980ca464",
            "181c8302-9922-41aa-af44-c74980ca464g",
            "181c830-29922-41aa-af44-c74980ca4641",
        ] {
            assert!(Uuid::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn random_is_v4() {
        let u = Uuid::random();
        assert_eq!(u.0[6] >> 4, 4);
        assert_eq!(u.0[8] >> 6, 2);
        assert_ne!(u, Uuid::random());
    }
}
