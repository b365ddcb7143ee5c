//! IP allow-list entries (docs/design/origin.md, *HTTP and access*): a single address ("127.0.0.1",
//! "::1"), CIDR ("10.0.0.0/22", "0.0.0.0/0") or an address with a dotted mask
//! ("10.0.0.1(255.255.252.0)", contiguous masks only). An IPv4 entry also matches IPv4-mapped IPv6
//! peers (`::ffff:a.b.c.d`), which is how a dual-stack listener sees IPv4 clients.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// One allow-list entry: a network (address + prefix length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AllowEntry {
    /// Network address, with host bits cleared.
    network: IpAddr,
    /// Prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    prefix: u8,
}

/// Forms accepted, for messages.
pub const ALLOW_FORMS: &str = "an address (127.0.0.1, ::1), CIDR (10.0.0.0/22, 0.0.0.0/0) or address(mask) (10.0.0.1(255.255.252.0))";

impl AllowEntry {
    /// Parses one entry; the error says what is wrong and which forms are legal.
    pub fn parse(s: &str) -> Result<Self, String> {
        let text = s.trim();
        let bad = |why: &str| {
            format!("invalid allow-list entry \"{s}\": {why} (legal forms: {ALLOW_FORMS})")
        };
        if let Some((addr, mask)) = text.split_once('(') {
            let Some(mask) = mask.strip_suffix(')') else {
                return Err(bad("missing ')'"));
            };
            let addr = Ipv4Addr::from_str(addr.trim())
                .map_err(|_| bad("not an IPv4 address before the mask"))?;
            let mask = Ipv4Addr::from_str(mask.trim())
                .map_err(|_| bad("the mask is not a dotted IPv4 mask"))?;
            let bits = u32::from(mask);
            let prefix = bits.leading_ones();
            if bits.checked_shl(prefix).unwrap_or(0) != 0 {
                return Err(bad("the mask is not contiguous"));
            }
            return Ok(Self::new(IpAddr::V4(addr), prefix as u8));
        }
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr = IpAddr::from_str(addr.trim()).map_err(|_| bad("not an IP address"))?;
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(bad(&format!("prefix length must be 0..={max}"))),
            },
        };
        Ok(Self::new(addr, prefix))
    }

    fn new(addr: IpAddr, prefix: u8) -> Self {
        let network = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix))),
        };
        AllowEntry { network, prefix }
    }

    /// Whether `ip` is inside this entry's network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if self.network.is_ipv4() => IpAddr::V4(v4),
                _ => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }

    /// Whether any entry of `list` contains `ip`; an empty list allows nobody (callers decide
    /// what an empty list means for their listener).
    pub fn any_contains(list: &[AllowEntry], ip: IpAddr) -> bool {
        list.iter().any(|e| e.contains(ip))
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for AllowEntry {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for AllowEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn single_addresses() {
        let e = AllowEntry::parse("127.0.0.1").unwrap();
        assert!(e.contains(ip("127.0.0.1")));
        assert!(!e.contains(ip("127.0.0.2")));
        let e = AllowEntry::parse("::1").unwrap();
        assert!(e.contains(ip("::1")));
        assert!(!e.contains(ip("127.0.0.1")));
    }

    #[test]
    fn cidr() {
        let e = AllowEntry::parse("10.0.0.0/22").unwrap();
        assert!(e.contains(ip("10.0.0.1")));
        assert!(e.contains(ip("10.0.3.255")));
        assert!(!e.contains(ip("10.0.4.0")));
        assert!(e.contains(ip("::ffff:10.0.1.2")));
        let any = AllowEntry::parse("0.0.0.0/0").unwrap();
        assert!(any.contains(ip("203.0.113.9")));
        assert!(!any.contains(ip("2001:db8::1")));
        let v6 = AllowEntry::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert_eq!(
            AllowEntry::parse("10.0.1.7/22").unwrap().to_string(),
            "10.0.0.0/22"
        );
    }

    #[test]
    fn dotted_mask() {
        let e = AllowEntry::parse("10.0.0.1(255.255.252.0)").unwrap();
        assert_eq!(e, AllowEntry::parse("10.0.0.0/22").unwrap());
        assert!(
            AllowEntry::parse("192.168.1.0(255.255.255.0)")
                .unwrap()
                .contains(ip("192.168.1.77"))
        );
        assert_eq!(
            AllowEntry::parse("1.2.3.4(0.0.0.0)").unwrap().to_string(),
            "0.0.0.0/0"
        );
        assert_eq!(
            AllowEntry::parse("1.2.3.4(255.255.255.255)")
                .unwrap()
                .to_string(),
            "1.2.3.4/32"
        );
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.0/",
            "::/129",
            "10.0.0.1(255.0.255.0)",
            "10.0.0.1(255.255.252.0",
            "300.1.1.1",
            "10.0.0.0/8/8",
            "host.example",
            "::1(255.255.255.0)",
        ] {
            assert!(AllowEntry::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(
            AllowEntry::parse("10.0.0.1(255.0.255.0)")
                .unwrap_err()
                .contains("contiguous")
        );
    }
}
