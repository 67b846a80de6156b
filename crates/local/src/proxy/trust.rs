//! The networks whose forwarding headers the proxy believes
//! ([`ProxyConfig::trusted_proxies`](crate::ProxyConfig::trusted_proxies)): an address range in
//! CIDR notation (`10.0.0.0/8`, `2001:db8::/32`) or one address (`192.0.2.7`, `::1`).

use std::net::IpAddr;

/// One trusted address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// Reads `text`; the error says why it is not a range, in words for a config error.
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let example = "an address or a CIDR range, as 10.0.0.0/8 or 2001:db8::/32";
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("is not {example}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => {
                    return Err(format!(
                        "has a prefix length that is not 0 to {max}: write {example}"
                    ));
                }
            },
        };
        let net = Net { addr, prefix };
        let canonical = Net {
            addr: net.network(),
            prefix,
        };
        if canonical.addr != addr {
            return Err(format!(
                "has address bits set past its /{prefix} prefix: write {}/{prefix}",
                canonical.addr
            ));
        }
        // An IPv4-mapped IPv6 range (`::ffff:10.0.0.0/104`) is the IPv4 range it maps, as the
        // clients it means are seen as IPv4 addresses.
        Ok(match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => Net {
                    addr: IpAddr::V4(v4),
                    prefix: prefix - 96,
                },
                None => net,
            },
            _ => net,
        })
    }

    /// The address with every bit past the prefix cleared.
    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub(super) fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        Net {
            addr: ip,
            prefix: self.prefix,
        }
        .network()
            == self.addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_and_single_addresses_contain_what_they_say() {
        let private = Net::parse("10.0.0.0/8").unwrap();
        assert!(private.contains(ip("10.200.3.4")));
        assert!(!private.contains(ip("11.0.0.1")));
        assert!(private.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(!private.contains(ip("::1")));
        let one = Net::parse("192.0.2.7").unwrap();
        assert!(one.contains(ip("192.0.2.7")));
        assert!(!one.contains(ip("192.0.2.8")));
        let v6 = Net::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::5")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all = Net::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.1")));
        let mapped = Net::parse("::ffff:192.168.0.0/112").unwrap();
        assert!(mapped.contains(ip("192.168.4.4")));
        assert!(Net::parse("::/0").unwrap().contains(ip("2001:db8::1")));
    }

    #[test]
    fn malformed_ranges_say_why() {
        for (text, why) in [
            ("10.0.0.0/33", "prefix length that is not 0 to 32"),
            ("2001:db8::/129", "not 0 to 128"),
            ("10.0.0.0/", "prefix length"),
            ("10.0.0.0/-1", "prefix length"),
            ("localhost", "is not an address or a CIDR range"),
            ("10.0.0.1/8", "write 10.0.0.0/8"),
            ("2001:db8::1/32", "write 2001:db8::/32"),
            ("", "is not an address"),
        ] {
            let e = Net::parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
