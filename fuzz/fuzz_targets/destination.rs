//! Where deliveries may go (`herald_core::net`, `herald_core::validate::endpoint_url`): the
//! check made when an endpoint or GraphQL API URL is saved, on any URL text, and the address
//! policy on any address.
//!
//! The properties are the ones SSRF protection rests on: a host the URL parser reads as an
//! address is judged as that address (no spelling gets a literal past the check as a "domain"),
//! the URL Herald stores reads back to the same address, and an IPv4 address embedded in IPv6
//! (mapped, compatible, NAT64, 6to4) is judged like the IPv4 address itself.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use herald_core::destination;
use herald_core::net::{NetworkPolicy, embedded_ipv4, literal_address, special};
use herald_core::validate::{Limits, Violations, endpoint_url};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    v4: [u8; 4],
    v6: [u8; 16],
    allow: Option<([u8; 16], u8)>,
    url: String,
}

fuzz_target!(|input: Input| {
    let default = NetworkPolicy::default();

    // A broker URL reads the same once its credentials are masked (what is stored).
    if let Ok(Some(broker)) = destination::parse(&input.url) {
        let (masked, _) = destination::split_credentials(&input.url);
        assert_eq!(destination::parse(&masked), Ok(Some(broker)));
    }

    // Embedded IPv4 is judged by the address inside.
    let v4 = Ipv4Addr::from(input.v4);
    let v4_refused = default.check(IpAddr::V4(v4)).is_err();
    let [a, b, c, d] = input.v4;
    let wrappers = [
        v4.to_ipv6_mapped(),
        Ipv6Addr::new(
            0x64,
            0xff9b,
            0,
            0,
            0,
            0,
            u16::from_be_bytes([a, b]),
            u16::from_be_bytes([c, d]),
        ),
        Ipv6Addr::new(
            0x2002,
            u16::from_be_bytes([a, b]),
            u16::from_be_bytes([c, d]),
            0,
            0,
            0,
            0,
            1,
        ),
    ];
    for v6 in wrappers {
        assert_eq!(embedded_ipv4(v6), Some(v4), "{v6}");
        if v4_refused {
            assert!(default.check(IpAddr::V6(v6)).is_err(), "{v6} carries {v4}");
        }
    }
    let v6 = Ipv6Addr::from(input.v6);
    if embedded_ipv4(v6).is_none() {
        assert_eq!(
            default.check(IpAddr::V6(v6)).is_err(),
            special(IpAddr::V6(v6)).is_some()
        );
    }
    // An allowed network opens its addresses and nothing is refused that the default allows.
    if let Some((net, len)) = input.allow {
        let net = IpAddr::V6(Ipv6Addr::from(net));
        if let Ok(net) = ipnet_from(net, len) {
            let policy = NetworkPolicy::new(vec![net]);
            for ip in [IpAddr::V4(v4), IpAddr::V6(v6)] {
                if net.contains(&ip) {
                    assert!(policy.check(ip).is_ok());
                }
                if default.check(ip).is_ok() {
                    assert!(policy.check(ip).is_ok());
                }
            }
        }
    }

    // URLs as saved.
    let mut violations = Violations::new();
    endpoint_url(&mut violations, &["url"], &input.url, &Limits::default());
    // Herald refuses other schemes when a URL is saved, and other schemes have opaque hosts.
    let Ok(parsed) = url::Url::parse(&input.url) else {
        return;
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return;
    }
    let literal = literal_address(&parsed);
    match parsed.host() {
        Some(url::Host::Domain(domain)) => {
            assert!(literal.is_none());
            let bare = domain.trim_start_matches('[').trim_end_matches(']');
            assert!(
                bare.parse::<IpAddr>().is_err(),
                "{:?} is an address",
                input.url
            );
        }
        Some(_) => {
            let ip = literal.expect("an address host is a literal");
            let host = parsed.host_str().unwrap();
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            assert_eq!(bare.parse::<IpAddr>().ok(), Some(ip), "{:?}", input.url);
        }
        None => assert!(literal.is_none()),
    }
    // Herald stores the URL as given and parses it again for every delivery; what the
    // outbound client then sends to is the serialised URL.
    let again = url::Url::parse(parsed.as_str()).expect("a serialised URL parses");
    assert_eq!(literal_address(&again), literal, "{:?}", input.url);
});

fn ipnet_from(ip: IpAddr, len: u8) -> Result<ipnet::IpNet, ipnet::PrefixLenError> {
    ipnet::IpNet::new(ip, len)
}
