//! Which network destinations deliveries may reach.
//!
//! Endpoint URLs are chosen by customers, so by default Herald refuses every address that is not
//! on the public internet: loopback, private, shared (CGNAT), link-local (with the cloud
//! metadata address), multicast, broadcast, reserved and documentation ranges, IPv6 unique-local
//! and site-local, and IPv4 addresses embedded in IPv6 (mapped, compatible, 6to4, NAT64,
//! Teredo), which are judged by the IPv4 address inside. An operator opens chosen ranges with
//! `--allow-network`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal(pub &'static str);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The configured exceptions to "public addresses only".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    allow: Vec<IpNet>,
}

impl NetworkPolicy {
    /// A policy allowing, besides public addresses, the networks in `allow`.
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(&ip))
    }

    /// `Ok` when a delivery may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.allowed(ip) {
            return Ok(());
        }
        if let IpAddr::V6(v6) = ip
            && let Some(v4) = embedded_ipv4(v6)
        {
            if self.allowed(IpAddr::V4(v4)) {
                return Ok(());
            }
            return match special_v4(v4) {
                Some(reason) => Err(Refusal(reason)),
                None => Ok(()),
            };
        }
        match special(ip) {
            Some(reason) => Err(Refusal(reason)),
            None => Ok(()),
        }
    }
}

/// The address a URL names literally, however it was spelled: the WHATWG parser has already
/// read `http://2130706433/`, `http://0x7f.1/` and `http://[::ffff:7f00:1]/` as the addresses
/// they are. `None` for a domain name (only resolving it can tell where it leads; the outbound
/// client checks those at every request) and for a URL without a host.
pub fn literal_address(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// The IPv4 address carried inside an IPv6 address, for the forms that carry one.
pub fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let last32 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, but not :: and ::1).
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(last32),
        [0, 0, 0, 0, 0, 0, _, _] if !(s[6] == 0 && s[7] <= 1) => Some(last32),
        // NAT64 well-known prefix 64:ff9b::/96.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last32),
        // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        // Teredo 2001:0::/32: the client address is the last 32 bits, inverted.
        [0x2001, 0, ..] => Some(Ipv4Addr::from(!u32::from(last32))),
        _ => None,
    }
}

/// Why `ip` is not a public internet address, or `None` when it is.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_loopback() => "loopback address",
        _ if ip.is_unspecified() || a == 0 => "unspecified or \"this network\" address",
        _ if ip.is_broadcast() => "broadcast address",
        (169, 254, _) => "link-local address (includes the cloud metadata service)",
        (10, ..) | (192, 168, _) => "private address (RFC 1918)",
        (172, b, _) if (16..=31).contains(&b) => "private address (RFC 1918)",
        (100, b, _) if (64..=127).contains(&b) => "shared address space (CGNAT, RFC 6598)",
        (192, 0, 0) => "IETF protocol assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation address",
        (192, 88, 99) => "6to4 relay anycast address",
        (198, 18..=19, _) => "benchmarking address",
        _ if ip.is_multicast() => "multicast address",
        _ if a >= 240 => "reserved address",
        _ => return None,
    })
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(match s[0] {
        _ if ip.is_unspecified() => "unspecified address",
        _ if ip.is_loopback() => "loopback address",
        0xfe80..=0xfebf => "link-local address",
        0xfec0..=0xfeff => "site-local address",
        0xfc00..=0xfdff => "unique local address",
        0xff00..=0xffff => "multicast address",
        0x0100 if s[1..4] == [0, 0, 0] => "discard-only address",
        0x2001 if s[1] == 0x0db8 => "documentation address",
        0x2001 if (0x0010..=0x002f).contains(&s[1]) => "ORCHID address",
        0x2001 if s[1] < 0x0200 => "IETF protocol assignment",
        0x0064 if s[1] == 0xff9b && s[2] == 1 => "local-use NAT64 address",
        // Reserved by IETF: everything outside 2000::/3 that is not covered above.
        0x0000..=0x1fff | 0x4000..=0xfbff => "reserved address",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: &NetworkPolicy, ip: &str) -> bool {
        policy.check(ip.parse().unwrap()).is_err()
    }

    #[test]
    fn non_public_addresses_are_refused_by_default() {
        let p = NetworkPolicy::default();
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "fec0::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "64:ff9b:1::1",
            "100::1",
        ] {
            assert!(refused(&p, ip), "{ip} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let p = NetworkPolicy::default();
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!refused(&p, ip), "{ip} must pass");
        }
    }

    #[test]
    fn allowed_networks_open_ranges_including_embedded_forms() {
        let p = NetworkPolicy::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "fd00::/8".parse().unwrap(),
        ]);
        assert!(!refused(&p, "127.0.0.1"));
        assert!(!refused(&p, "::ffff:127.0.0.1"));
        assert!(!refused(&p, "fd00::5"));
        assert!(refused(&p, "10.0.0.1"));
        assert!(refused(&p, "::1"));
    }
}
