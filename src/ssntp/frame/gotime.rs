//! Go's `time.Time` as gob carries it (the v1 `MarshalBinary` form), and
//! its RFC 3339 text for trace reports.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ssntp::gob::GobError;

/// A Go `time.Time` as its v1 binary encoding carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GoTime {
    /// Seconds since 0001-01-01T00:00:00Z.
    pub secs_since_year1: i64,
    /// Nanoseconds within the second (< 1e9).
    pub nanos: u32,
    /// Zone offset in minutes east of UTC; −1 means UTC.
    pub offset_min: i16,
}

impl GoTime {
    /// Go's zero `time.Time` (0001-01-01T00:00:00Z).
    pub const ZERO: GoTime = GoTime {
        secs_since_year1: 0,
        nanos: 0,
        offset_min: -1,
    };
    /// Seconds from 0001-01-01 to 1970-01-01.
    pub const UNIX_EPOCH_SECS: i64 = 62_135_596_800;
    const LEN: usize = 15;

    /// The current time, in UTC.
    pub fn now() -> GoTime {
        GoTime::from(SystemTime::now())
    }

    /// Go's `IsZero()`: the instant 0001-01-01T00:00:00Z in any zone.
    pub fn is_zero(&self) -> bool {
        self.secs_since_year1 == 0 && self.nanos == 0
    }

    /// The v1 binary form (Go `MarshalBinary`, always version 1).
    pub fn to_binary(&self) -> [u8; 15] {
        let mut b = [0u8; Self::LEN];
        b[0] = 1;
        b[1..9].copy_from_slice(&self.secs_since_year1.to_be_bytes());
        b[9..13].copy_from_slice(&self.nanos.to_be_bytes());
        b[13..15].copy_from_slice(&self.offset_min.to_be_bytes());
        b
    }

    /// Parses the v1 binary form; anything else is an error (Go ≥ 1.17's
    /// v2, which adds offset seconds, is refused: no real peer sends it).
    pub fn from_binary(b: &[u8]) -> Result<GoTime, GobError> {
        match b.first() {
            None => return Err(GobError::BadTime("no data")),
            Some(1) => {}
            Some(2) => return Err(GobError::BadTime("version 2 is not supported")),
            Some(_) => return Err(GobError::BadTime("unknown version")),
        }
        let b: &[u8; 15] = b
            .try_into()
            .map_err(|_| GobError::BadTime("length is not 15 bytes"))?;
        let mut secs = [0u8; 8];
        secs.copy_from_slice(&b[1..9]);
        let nanos = u32::from_be_bytes([b[9], b[10], b[11], b[12]]);
        if nanos >= 1_000_000_000 {
            return Err(GobError::BadTime("nanoseconds out of range"));
        }
        Ok(GoTime {
            secs_since_year1: i64::from_be_bytes(secs),
            nanos,
            offset_min: i16::from_be_bytes([b[13], b[14]]),
        })
    }

    /// The instant as a `SystemTime`, if representable.
    pub fn to_system_time(&self) -> Option<SystemTime> {
        let unix = self.secs_since_year1.checked_sub(Self::UNIX_EPOCH_SECS)?;
        let base = if unix >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_secs(unix.unsigned_abs()))?
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_secs(unix.unsigned_abs()))?
        };
        base.checked_add(Duration::from_nanos(u64::from(self.nanos)))
    }

    /// Offset from UTC in seconds (the UTC marker −1 counts as 0).
    fn offset_secs(&self) -> i64 {
        if self.offset_min == -1 {
            0
        } else {
            i64::from(self.offset_min) * 60
        }
    }

    /// Go's `Format(time.RFC3339Nano)`: local time of the stored offset,
    /// fraction with trailing zeros trimmed (none when zero), `Z` for a
    /// zero offset, else `±hh:mm`. E.g. `2017-01-20T10:00:00Z`,
    /// `2026-11-25T16:45:47.18862462Z`.
    pub fn rfc3339_nano(&self) -> String {
        let local = i128::from(self.secs_since_year1) + i128::from(self.offset_secs())
            - i128::from(Self::UNIX_EPOCH_SECS);
        let (days, sod) = (local.div_euclid(86_400), local.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        let mut s = if y < 0 {
            format!("-{:04}", -y)
        } else {
            format!("{y:04}")
        };
        s.push_str(&format!(
            "-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        ));
        if self.nanos != 0 {
            let frac = format!("{:09}", self.nanos);
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
        let off = self.offset_secs();
        if off == 0 {
            s.push('Z');
        } else {
            let sign = if off < 0 { '-' } else { '+' };
            let a = off.abs();
            s.push_str(&format!("{sign}{:02}:{:02}", a / 3600, a / 60 % 60));
        }
        s
    }
}

/// Proleptic Gregorian (year, month, day) of a day count from 1970-01-01
/// (H. Hinnant's algorithm), in i128 so no input overflows.
fn civil_from_days(z: i128) -> (i128, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i128::from(m <= 2);
    (y, m, d)
}

impl From<SystemTime> for GoTime {
    /// The instant in UTC (offset −1), as Go's `time.Now().UTC()`.
    fn from(t: SystemTime) -> GoTime {
        let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                d.subsec_nanos(),
            ),
            Err(e) => {
                let d = e.duration();
                let s = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                match d.subsec_nanos() {
                    0 => (-s, 0),
                    n => (-s - 1, 1_000_000_000 - n),
                }
            }
        };
        GoTime {
            secs_since_year1: secs.saturating_add(Self::UNIX_EPOCH_SECS),
            nanos,
            offset_min: -1,
        }
    }
}

impl fmt::Display for GoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339_nano())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssntp::frame::vectors::{hex, t2017, T2017};

    #[test]
    fn time_encoding_and_formatting() {
        let t = GoTime::from_binary(&hex(T2017)).unwrap();
        assert_eq!(t, t2017());
        assert_eq!(t.to_binary().to_vec(), hex(T2017));
        assert_eq!(GoTime::ZERO.rfc3339_nano(), "0001-01-01T00:00:00Z");
        // 2026-11-25T16:45:47.18862462Z
        let unix = 1_795_625_147i64;
        let t = GoTime {
            secs_since_year1: unix + GoTime::UNIX_EPOCH_SECS,
            nanos: 188_624_620,
            offset_min: 0,
        };
        assert_eq!(t.rfc3339_nano(), "2026-11-25T16:45:47.18862462Z");
        assert_eq!(
            GoTime {
                offset_min: 60,
                ..t
            }
            .rfc3339_nano(),
            "2026-11-25T17:45:47.18862462+01:00"
        );
        assert_eq!(
            GoTime {
                offset_min: -330,
                nanos: 1,
                ..t
            }
            .to_string(),
            "2026-11-25T11:15:47.000000001-05:30"
        );
        assert_eq!(
            GoTime {
                secs_since_year1: -86_400,
                nanos: 0,
                offset_min: -1
            }
            .rfc3339_nano(),
            "0000-12-31T00:00:00Z"
        );
        assert_eq!(
            GoTime {
                secs_since_year1: -367 * 86_400,
                nanos: 0,
                offset_min: -1
            }
            .rfc3339_nano(),
            "-0001-12-31T00:00:00Z"
        );
        // Extremes format without overflow.
        for s in [i64::MIN, i64::MAX] {
            let _ = GoTime {
                secs_since_year1: s,
                nanos: 999_999_999,
                offset_min: i16::MIN,
            }
            .rfc3339_nano();
        }
        // SystemTime conversions.
        let now = SystemTime::now();
        assert_eq!(GoTime::from(now).to_system_time(), Some(now));
        let before = UNIX_EPOCH - Duration::new(5, 250);
        let g = GoTime::from(before);
        assert_eq!(g.nanos, 999_999_750);
        assert_eq!(g.to_system_time(), Some(before));
        assert_eq!(
            GoTime::from(UNIX_EPOCH).rfc3339_nano(),
            "1970-01-01T00:00:00Z"
        );
        // Malformed binary times.
        assert!(GoTime::from_binary(&[]).is_err());
        assert!(GoTime::from_binary(&hex(T2017)[..14]).is_err());
        let mut b = hex(T2017);
        b[0] = 3;
        assert!(GoTime::from_binary(&b).is_err());
        let mut b = hex(T2017);
        b[9..13].copy_from_slice(&1_000_000_000u32.to_be_bytes());
        assert!(GoTime::from_binary(&b).is_err());
    }
}
