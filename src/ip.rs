//! IP addresses as keys of one 128-bit space.
//!
//! This is the only place where an address becomes a number. IPv4 addresses are
//! mapped into `::ffff:0:0/96` (RFC 4291 §2.5.5.2, as Whip does), so one ordered `u128`
//! space holds both families, IPv4 sorts before almost all of IPv6, and
//! `::ffff:a.b.c.d` *is* the IPv4 address `a.b.c.d`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The first key of the IPv4-mapped block `::ffff:0:0/96`.
const V4_MAPPED_FIRST: u128 = 0xffff_0000_0000;
/// The last key of the IPv4-mapped block.
const V4_MAPPED_LAST: u128 = 0xffff_ffff_ffff;

/// An address as a key in the 128-bit space (IPv4 mapped into `::ffff:0:0/96`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct IpKey(pub u128);

/// The address family a key belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Family {
    V4,
    V6,
}

/// Why a text is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpParseError {
    #[error("empty address")]
    Empty,
    #[error("IPv6 zone ids are not supported: {0:?}")]
    ZoneId(String),
    /// The text is an excerpt: an error never repeats a huge input whole.
    #[error("not an IP address: {0:?}")]
    Invalid(String),
}

impl IpKey {
    pub const MIN: IpKey = IpKey(0);
    pub const MAX: IpKey = IpKey(u128::MAX);
    /// The whole IPv4-mapped block, as keys.
    pub const V4_FIRST: IpKey = IpKey(V4_MAPPED_FIRST);
    pub const V4_LAST: IpKey = IpKey(V4_MAPPED_LAST);

    pub fn from_v4(v4: Ipv4Addr) -> IpKey {
        IpKey(V4_MAPPED_FIRST | u128::from(u32::from(v4)))
    }

    pub fn from_ip(ip: IpAddr) -> IpKey {
        match ip {
            IpAddr::V4(v4) => IpKey::from_v4(v4),
            IpAddr::V6(v6) => IpKey(u128::from(v6)),
        }
    }

    /// Parses IPv4 dotted quads and IPv6 text (including `::ffff:a.b.c.d`).
    pub fn parse(text: &str) -> Result<IpKey, IpParseError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(IpParseError::Empty);
        }
        // The common forms without the standard parsers (read the same).
        if let Some(v4) = dotted_quad(text.as_bytes()) {
            return Ok(IpKey(V4_MAPPED_FIRST | u128::from(v4)));
        }
        if let Some(v6) = hex_groups(text.as_bytes()) {
            return Ok(IpKey(v6));
        }
        if let Ok(v4) = Ipv4Addr::from_str(text) {
            return Ok(IpKey::from_v4(v4));
        }
        // A zone id only follows an IPv6 address (`fe80::1%eth0`); any other
        // `%` (`%zz`, an undecoded escape) is just not an address.
        if let Some((addr, _zone)) = text.split_once('%') {
            if Ipv6Addr::from_str(addr).is_ok() {
                return Err(IpParseError::ZoneId(crate::lines::excerpt(text)));
            }
            return Err(IpParseError::Invalid(crate::lines::excerpt(text)));
        }
        // Bracketed IPv6 (`[2001:db8::1]`) is common in logs and URLs.
        let inner = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        Ipv6Addr::from_str(inner)
            .map(|v6| IpKey(u128::from(v6)))
            .map_err(|_| IpParseError::Invalid(crate::lines::excerpt(text)))
    }

    pub fn family(self) -> Family {
        if (V4_MAPPED_FIRST..=V4_MAPPED_LAST).contains(&self.0) {
            Family::V4
        } else {
            Family::V6
        }
    }

    /// The IPv4 address if the key is in the mapped block.
    pub fn as_v4(self) -> Option<Ipv4Addr> {
        match self.family() {
            Family::V4 => Some(Ipv4Addr::from(self.0 as u32)),
            Family::V6 => None,
        }
    }

    pub fn to_ip(self) -> IpAddr {
        match self.as_v4() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(self.0)),
        }
    }

    /// The next key, or `None` past the end of the space.
    pub fn next(self) -> Option<IpKey> {
        self.0.checked_add(1).map(IpKey)
    }

    /// Appends the canonical text (dotted quad for IPv4, RFC 5952 for IPv6) to `out`
    /// without going through `fmt` for IPv4, the hot case.
    pub fn write_text(self, out: &mut Vec<u8>) {
        match self.as_v4() {
            Some(v4) => {
                for (i, octet) in v4.octets().iter().enumerate() {
                    if i > 0 {
                        out.push(b'.');
                    }
                    push_decimal_u8(out, *octet);
                }
            }
            None => write_v6(out, Ipv6Addr::from(self.0)),
        }
    }
}

/// Appends the text of `ip` exactly as its `Display` writes it (RFC 5952: lower
/// case hex without leading zeros, the first longest run of two or more zero
/// groups as `::`), without going through `fmt`.
fn write_v6(out: &mut Vec<u8>, ip: Ipv6Addr) {
    if ip.to_ipv4_mapped().is_some() {
        // `::ffff:a.b.c.d`: rare here (such keys are IPv4), left to `Display`.
        use std::io::Write;
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{ip}");
        return;
    }
    let segments = ip.segments();
    // The first longest run of zero groups.
    let (mut best_start, mut best_len) = (0, 0);
    let (mut start, mut len) = (0, 0);
    for (i, &g) in segments.iter().enumerate() {
        if g == 0 {
            if len == 0 {
                start = i;
            }
            len += 1;
            if len > best_len {
                (best_start, best_len) = (start, len);
            }
        } else {
            len = 0;
        }
    }
    // At most 39 bytes: 8 groups of 4 digits and 7 colons.
    let mut text = [0u8; 40];
    let mut n = 0;
    let group = |text: &mut [u8; 40], n: &mut usize, g: u16| {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digits = (16 - g.leading_zeros()).div_ceil(4).max(1);
        for d in (0..digits).rev() {
            text[*n] = HEX[usize::from((g >> (d * 4)) & 0xf)];
            *n += 1;
        }
    };
    let groups = |text: &mut [u8; 40], n: &mut usize, gs: &[u16]| {
        for (i, &g) in gs.iter().enumerate() {
            if i > 0 {
                text[*n] = b':';
                *n += 1;
            }
            group(text, n, g);
        }
    };
    if best_len > 1 {
        groups(&mut text, &mut n, &segments[..best_start]);
        text[n..n + 2].copy_from_slice(b"::");
        n += 2;
        groups(&mut text, &mut n, &segments[best_start + best_len..]);
    } else {
        groups(&mut text, &mut n, &segments);
    }
    out.extend_from_slice(&text[..n]);
}

fn push_decimal_u8(out: &mut Vec<u8>, n: u8) {
    if n >= 100 {
        out.push(b'0' + n / 100);
        out.push(b'0' + (n / 10) % 10);
        out.push(b'0' + n % 10);
    } else if n >= 10 {
        out.push(b'0' + n / 10);
        out.push(b'0' + n % 10);
    } else {
        out.push(b'0' + n);
    }
}

impl fmt::Display for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_ip().fmt(f)
    }
}

impl FromStr for IpKey {
    type Err = IpParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IpKey::parse(s)
    }
}

/// A network (`10.0.0.0/8`, `2001:db8::/32`, or a single address), as a key range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub first: IpKey,
    pub last: IpKey,
}

impl Cidr {
    /// Parses `address/prefix` (an IPv4 prefix counts within the IPv4 space) or a
    /// bare address. Host bits below the prefix are ignored.
    pub fn parse(text: &str) -> Result<Cidr, IpParseError> {
        let text = text.trim();
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let ip = IpKey::parse(addr)?;
        let bits: u32 = match ip.family() {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        let len: u32 = match len {
            None => bits,
            Some(l) => l
                .parse()
                .ok()
                .filter(|&n| n <= bits)
                .ok_or_else(|| IpParseError::Invalid(crate::lines::excerpt(text)))?,
        };
        // Position of the prefix within the 128-bit key.
        let prefix = len + (128 - bits);
        let host_mask = u128::MAX.checked_shr(prefix).unwrap_or(0);
        Ok(Cidr {
            first: IpKey(ip.0 & !host_mask),
            last: IpKey(ip.0 | host_mask),
        })
    }

    pub fn contains(&self, ip: IpKey) -> bool {
        self.first <= ip && ip <= self.last
    }
}

impl FromStr for Cidr {
    type Err = IpParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cidr::parse(s)
    }
}

/// IPv6 text of hex groups only (no embedded IPv4, brackets or zone): eight
/// groups, or fewer with one `::`; each group 1-4 hex digits. A subset of what
/// [`std::net::Ipv6Addr`]'s parser accepts, read the same.
#[inline]
fn hex_groups(b: &[u8]) -> Option<u128> {
    // Groups of one side of `::`, high first; the count.
    fn side(b: &[u8]) -> Option<(u128, usize)> {
        if b.is_empty() {
            return Some((0, 0));
        }
        let (mut value, mut n) = (0u128, 0usize);
        for group in b.split(|&c| c == b':') {
            if group.is_empty() || group.len() > 4 || n == 8 {
                return None;
            }
            let mut g = 0u128;
            for &c in group {
                g = g << 4 | u128::from((c as char).to_digit(16)?);
            }
            value = value << 16 | g;
            n += 1;
        }
        Some((value, n))
    }
    match memchr::memmem::find(b, b"::") {
        None => match side(b)? {
            (value, 8) => Some(value),
            _ => None,
        },
        Some(at) => {
            let (head, tail) = (&b[..at], &b[at + 2..]);
            let ((h, hn), (t, tn)) = (side(head)?, side(tail)?);
            if hn + tn > 7 {
                return None;
            }
            // The head's groups at the top, the tail's at the bottom.
            let h = if hn == 0 { 0 } else { h << (16 * (8 - hn)) };
            Some(h | t)
        }
    }
}

/// `a.b.c.d` with each part 0-255 in decimal without leading zeros and nothing
/// else: a subset of what [`std::net::Ipv4Addr`]'s parser accepts, read the same.
#[inline]
fn dotted_quad(b: &[u8]) -> Option<u32> {
    let mut value = 0u32;
    let mut at = 0;
    for part in 0..4 {
        if part > 0 {
            if b.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
        let start = at;
        let mut octet = 0u32;
        while let Some(d) = b.get(at).filter(|d| d.is_ascii_digit()) {
            octet = octet * 10 + u32::from(d - b'0');
            at += 1;
            if at - start > 3 {
                return None;
            }
        }
        let len = at - start;
        if len == 0 || octet > 255 || (len > 1 && b[start] == b'0') {
            return None;
        }
        value = value << 8 | octet;
    }
    (at == b.len()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dotted_quads_read_as_std_reads_them() {
        for text in [
            "0.0.0.0",
            "255.255.255.255",
            "1.2.3.4",
            "10.20.30.40",
            "100.200.250.9",
        ] {
            let want = u32::from(text.parse::<std::net::Ipv4Addr>().unwrap());
            assert_eq!(dotted_quad(text.as_bytes()), Some(want), "{text}");
        }
        for text in [
            "",
            "1.2.3",
            "1.2.3.4.",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.256",
            "1..3.4",
            "1.2.3.0004",
            " 1.2.3.4",
            "1.2.3.4 ",
            "+1.2.3.4",
            "1.2.3.x",
            "::1",
        ] {
            assert_eq!(dotted_quad(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn hex_groups_read_as_std_reads_them() {
        for text in [
            "::",
            "::1",
            "1::",
            "2001:db8::",
            "2c0f:fff0:ffff:ffff:ffff:ffff:ffff:ffff",
            "1:2:3:4:5:6:7::",
            "::1:2:3:4:5:6:7",
            "0:0:0:0:0:0:0:0",
            "ABCD:ef01::0",
            "::ffff:102:304",
            "1:2:3::4:5:6:7",
        ] {
            let want = u128::from(text.parse::<std::net::Ipv6Addr>().unwrap());
            assert_eq!(hex_groups(text.as_bytes()), Some(want), "{text}");
        }
        for text in [
            "",
            ":",
            ":::",
            "1:::2",
            "::1::",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7:8::",
            "::1:2:3:4:5:6:7:8",
            "12345::",
            "g::",
            "::ffff:1.2.3.4",
            "[::1]",
            "fe80::1%eth0",
            " ::1",
            ":1::",
            "1::2:",
        ] {
            assert_eq!(hex_groups(text.as_bytes()), None, "{text}");
        }
    }

    proptest! {
        #[test]
        fn hex_groups_agree_with_std(text in "[0-9a-fA-F:g.]{0,24}", ip in any::<u128>(), n in 0..8u32) {
            let std = text.parse::<std::net::Ipv6Addr>().ok().map(u128::from);
            if let Some(v) = hex_groups(text.as_bytes()) {
                prop_assert_eq!(Some(v), std);
            }
            // Runs of zero groups, so that `::` appears in many places.
            let ip = ip & !(0xffff_ffffu128 << (16 * (n % 7)));
            let text = std::net::Ipv6Addr::from(ip).to_string();
            if !text.contains('.') {
                prop_assert_eq!(hex_groups(text.as_bytes()), Some(ip), "{}", text);
            }
        }

        #[test]
        fn dotted_quads_agree_with_std(text in "[0-9.]{0,16}", ip in any::<u32>()) {
            let std = text.parse::<std::net::Ipv4Addr>().ok().map(u32::from);
            if let Some(v) = dotted_quad(text.as_bytes()) {
                prop_assert_eq!(Some(v), std);
            }
            let text = std::net::Ipv4Addr::from(ip).to_string();
            prop_assert_eq!(dotted_quad(text.as_bytes()), Some(ip));
        }
    }

    #[test]
    fn ipv4_is_mapped_and_round_trips() {
        let k = IpKey::parse("1.2.3.4").unwrap();
        assert_eq!(k.0, 0xffff_0102_0304);
        assert_eq!(k.family(), Family::V4);
        assert_eq!(k.to_string(), "1.2.3.4");
        let mut out = Vec::new();
        k.write_text(&mut out);
        assert_eq!(out, b"1.2.3.4");
    }

    #[test]
    fn mapped_ipv6_text_is_the_ipv4_address() {
        assert_eq!(
            IpKey::parse("::ffff:97.146.26.26").unwrap(),
            IpKey::parse("97.146.26.26").unwrap()
        );
        assert_eq!(
            IpKey::parse("::ffff:6192:1a1a").unwrap().to_string(),
            "97.146.26.26"
        );
    }

    #[test]
    fn ipv6_sorts_after_ipv4_except_the_low_block() {
        let v4 = IpKey::parse("255.255.255.255").unwrap();
        let v6 = IpKey::parse("2001:db8::").unwrap();
        let low = IpKey::parse("::1").unwrap();
        assert!(v4 < v6);
        assert!(low < v4);
        assert_eq!(low.family(), Family::V6);
        assert_eq!(v6.to_string(), "2001:db8::");
    }

    #[test]
    fn rejects_garbage_zone_ids_and_out_of_range_octets() {
        assert_eq!(IpKey::parse(""), Err(IpParseError::Empty));
        assert!(matches!(
            IpKey::parse("fe80::1%eth0"),
            Err(IpParseError::ZoneId(_))
        ));
        assert!(matches!(
            IpKey::parse("999.1.1.1"),
            Err(IpParseError::Invalid(_))
        ));
        assert!(IpKey::parse("1.2.3").is_err());
        assert!(IpKey::parse("hello").is_err());
        // A `%` after no address is not a zone id.
        for text in ["%zz", "1.2.3.4%eth0", "nope%1"] {
            assert!(
                matches!(IpKey::parse(text), Err(IpParseError::Invalid(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(IpKey::parse("10.255.0.1").unwrap()));
        assert!(c.contains(IpKey::parse("::ffff:10.1.2.3").unwrap()));
        assert!(!c.contains(IpKey::parse("11.0.0.0").unwrap()));
        let all4 = Cidr::parse("0.0.0.0/0").unwrap();
        assert_eq!((all4.first, all4.last), (IpKey::V4_FIRST, IpKey::V4_LAST));
        let all = Cidr::parse("::/0").unwrap();
        assert_eq!((all.first, all.last), (IpKey::MIN, IpKey::MAX));
        let one = Cidr::parse("2001:db8::1").unwrap();
        assert_eq!(one.first, one.last);
        let net = Cidr::parse("2001:db8::1/32").unwrap();
        assert!(net.contains(IpKey::parse("2001:db8:ffff::").unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0.0/x").is_err());
    }

    #[test]
    fn brackets_are_accepted_for_ipv6() {
        assert_eq!(
            IpKey::parse("[2001:db8::1]").unwrap(),
            IpKey::parse("2001:db8::1").unwrap()
        );
    }

    /// Every pattern of zero and non-zero groups (runs of every length and
    /// position, ties between runs), with group values of every digit count,
    /// comes out exactly as `Display` writes it.
    #[test]
    fn ipv6_text_matches_display() {
        let values = [
            0x1u16, 0xa, 0x10, 0xff, 0x100, 0xabc, 0x1000, 0xffff, 0x2001,
        ];
        let mut checked = 0;
        for zeros in 0u32..256 {
            for (k, _) in values.iter().enumerate() {
                let mut segments = [0u16; 8];
                for (i, s) in segments.iter_mut().enumerate() {
                    if zeros & (1 << i) == 0 {
                        *s = values[(k + i) % values.len()];
                    }
                }
                let ip = Ipv6Addr::from(segments);
                let mut out = Vec::new();
                write_v6(&mut out, ip);
                assert_eq!(std::str::from_utf8(&out).unwrap(), ip.to_string());
                checked += 1;
            }
        }
        for text in [
            "::",
            "::1",
            "1::",
            "::ffff:1.2.3.4",
            "::fffe:1.2.3.4",
            "64:ff9b::1.2.3.4",
        ] {
            let ip: Ipv6Addr = text.parse().unwrap();
            let mut out = Vec::new();
            write_v6(&mut out, ip);
            assert_eq!(std::str::from_utf8(&out).unwrap(), ip.to_string());
        }
        assert_eq!(checked, 256 * values.len());
    }

    #[test]
    fn write_text_matches_display_for_all_octet_widths() {
        for text in ["0.0.0.0", "9.10.99.100", "255.255.255.255", "10.0.200.7"] {
            let mut out = Vec::new();
            IpKey::parse(text).unwrap().write_text(&mut out);
            assert_eq!(std::str::from_utf8(&out).unwrap(), text);
        }
    }
}
