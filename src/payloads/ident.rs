//! Identifier and address checks applied to payload fields (docs/architecture.md, "Safety").
//!
//! Instance and volume ids become directory names and command-line arguments, so they are
//! checked before anything uses them; MAC, IP and CIDR parsing follows Go's `net` package
//! (modern Go: IPv4 octets with leading zeros are refused).

use std::net::{IpAddr, Ipv4Addr};

/// The original's identifier check: hexadecimal groups joined by single hyphens
/// (`^[0-9a-fA-F]+(-[0-9a-fA-F]+)*$`). Group count and lengths are not checked, case is kept.
pub(crate) fn is_hex_id(s: &str) -> bool {
    !s.is_empty()
        && s.split('-')
            .all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One file-name component that cannot leave its directory: not empty, no `/`, no NUL,
/// not `.` or `..`.
pub(crate) fn is_safe_path_component(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0'])
}

/// Go's `net.ParseMAC`: `aa:bb:..`, `aa-bb-..` or `aabb.ccdd.eeff`, 6, 8 or 20 bytes.
pub(crate) fn parse_mac(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() < 14 {
        return None;
    }
    let hex = |s: &[u8]| -> Option<u8> {
        let s = std::str::from_utf8(s).ok()?;
        u8::from_str_radix(s, 16)
            .ok()
            .filter(|_| s.bytes().all(|c| c.is_ascii_hexdigit()))
    };
    let valid_len = |n: usize| matches!(n, 6 | 8 | 20);
    if b[2] == b':' || b[2] == b'-' {
        if (b.len() + 1) % 3 != 0 {
            return None;
        }
        let n = (b.len() + 1) / 3;
        if !valid_len(n) {
            return None;
        }
        let sep = b[2];
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let at = i * 3;
            if i + 1 < n && b[at + 2] != sep {
                return None;
            }
            out.push(hex(&b[at..at + 2])?);
        }
        Some(out)
    } else if b[4] == b'.' {
        if (b.len() + 1) % 5 != 0 {
            return None;
        }
        let n = 2 * (b.len() + 1) / 5;
        if !valid_len(n) {
            return None;
        }
        let mut out = Vec::with_capacity(n);
        for i in 0..n / 2 {
            let at = i * 5;
            if i + 1 < n / 2 && b[at + 4] != b'.' {
                return None;
            }
            out.push(hex(&b[at..at + 2])?);
            out.push(hex(&b[at + 2..at + 4])?);
        }
        Some(out)
    } else {
        None
    }
}

/// Go's `net.ParseIP`: dotted IPv4 or any IPv6 text form (no zone).
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok()
}

/// Go's `net.ParseCIDR`: `address/prefix`, prefix in decimal within the address length.
pub(crate) fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = s.split_once('/')?;
    let ip = parse_ip(addr)?;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = prefix.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (n <= max).then_some((ip, n as u8))
}

/// The IPv4 form of an address (IPv4, or IPv4-mapped IPv6), as Go's `To4`.
pub(crate) fn to_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    }
}

/// The SSH port reported for an instance, as the original computes it: 0 for network-node instances
/// and for a private IP that is empty or not IPv4, else 33000 + 256 × third octet + fourth
/// octet, and 0 when that reaches 65535.
pub(crate) fn ssh_port(private_ip: &str, network_node: bool) -> u16 {
    if network_node {
        return 0;
    }
    let Some(v4) = parse_ip(private_ip.trim()).and_then(to_ipv4) else {
        return 0;
    };
    let o = v4.octets();
    let port = 33_000 + 256 * u32::from(o[2]) + u32::from(o[3]);
    if port >= 65_535 {
        0
    } else {
        port as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids() {
        for ok in [
            "abc",
            "12345",
            "ABC",
            "67d86208-b46c-4465-9018-e14087d415f",
            "d7d86208-b46c-4465-9018-fe14087d415f",
        ] {
            assert!(is_hex_id(ok), "{ok}");
        }
        for bad in [
            "",
            "g7d86208",
            "-d7d8",
            "d7d8-",
            "d7d8--b46c",
            "d7 d8",
            "../x",
            "ab\n",
        ] {
            assert!(!is_hex_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn path_components() {
        assert!(is_safe_path_component(
            "clear-1ff6bf3883708a56446d863f20c810c99b3aea6f"
        ));
        assert!(is_safe_path_component(
            "b286cd45-7d0c-4525-a140-4db6c95e41fa"
        ));
        assert!(is_safe_path_component("..."));
        for bad in ["", ".", "..", "../x", "a/b", "/etc/passwd", "a\0b"] {
            assert!(!is_safe_path_component(bad), "{bad:?}");
        }
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("02:00:e6:f5:af:f9"),
            Some(vec![2, 0, 0xe6, 0xf5, 0xaf, 0xf9])
        );
        assert_eq!(
            parse_mac("CA-FE-00-02-02-03"),
            Some(vec![0xca, 0xfe, 0, 2, 2, 3])
        );
        assert_eq!(
            parse_mac("0200.e6f5.aff9"),
            Some(vec![2, 0, 0xe6, 0xf5, 0xaf, 0xf9])
        );
        assert_eq!(
            parse_mac("02:00:e6:f5:af:f9:00:01").map(|m| m.len()),
            Some(8)
        );
        assert!(parse_mac(&["00"; 20].join(":")).is_some());
        for bad in [
            "",
            "02:00:e6:f5:af",
            "02:00:e6:f5:af:fg",
            "02:00-e6:f5:af:f9",
            "02:00:e6:f5:af:f9:",
            "0200.e6f5:aff9",
            "+2:00:e6:f5:af:f9",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn ips_and_cidrs() {
        assert!(parse_ip("192.168.42.21").is_some());
        assert!(parse_ip("::ffff:192.168.8.2").is_some());
        assert!(parse_ip("192.168.008.002").is_none());
        assert!(parse_ip("192.168.8").is_none());
        assert_eq!(parse_cidr("192.168.8.0/21").map(|c| c.1), Some(21));
        assert_eq!(parse_cidr("192.168.8.0/021").map(|c| c.1), Some(21));
        assert!(parse_cidr("192.168.8.0/33").is_none());
        assert!(parse_cidr("192.168.8.0").is_none());
        assert!(parse_cidr("192.168.8.0/").is_none());
        assert!(parse_cidr("192.168.8.0/+8").is_none());
        assert!(parse_cidr("fd00::/64").is_some());
    }

    #[test]
    fn ssh_ports() {
        assert_eq!(ssh_port("192.168.8.2", false), 35050);
        assert_eq!(ssh_port("192.168.111.102", false), 61518);
        assert_eq!(ssh_port(" 192.168.8.3 ", false), 35051);
        assert_eq!(ssh_port("192.168.8.2", true), 0);
        assert_eq!(ssh_port("", false), 0);
        assert_eq!(ssh_port("fd00::1", false), 0);
        assert_eq!(ssh_port("::ffff:10.0.1.2", false), 33258);
        assert_eq!(ssh_port("10.0.127.22", false), 65_534);
        assert_eq!(ssh_port("10.0.127.23", false), 0); // 65535
        assert_eq!(ssh_port("10.0.255.255", false), 0);
        assert_eq!(ssh_port("10.0.126.255", false), 65_511);
    }
}
