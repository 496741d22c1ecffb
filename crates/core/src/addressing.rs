//! Where addresses are allocated: the automatic switch subnet, the fixed single-machine
//! suffixes (SPEC §3.1) and the address arithmetic both deployment types share.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::config::Config;

/// The private ranges searched for a free single-machine subnet, in the order SPEC §3.1 gives.
pub const AUTOMATIC_SEARCH: [(Ipv4Addr, u8); 3] = [
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(10, 0, 0, 0), 8),
];

/// Host-address suffixes of a single-machine switch (`.N` = the N-th host address).
pub const HOST_SUFFIX: u32 = 1;
pub const LINUX_NODE_SUFFIX: u32 = 2;
pub const WINDOWS_NODE_SUFFIX: u32 = 3;
pub const FIRST_SERVICE_SUFFIX: u32 = 4;

/// The N-th host address of `net` (1-based), if the subnet has that many.
pub fn nth_host(net: Ipv4Net, n: u32) -> Option<Ipv4Addr> {
    let base = u32::from(net.network());
    let hosts = host_count(net);
    (n >= 1 && n <= hosts).then(|| Ipv4Addr::from(base + n))
}

/// Usable host addresses of `net` (network and broadcast excluded; /31 and /32 have none here,
/// since a switch subnet needs a gateway and a node).
pub fn host_count(net: Ipv4Net) -> u32 {
    match net.prefix_len() {
        31 | 32 => 0,
        p => (1u32 << (32 - p)) - 2,
    }
}

/// True when `ip` is a host address of `net`: inside it, neither its network nor its broadcast.
pub fn is_host_address(net: Ipv4Net, ip: Ipv4Addr) -> bool {
    net.contains(&ip) && ip != net.network() && ip != net.broadcast()
}

/// Whether two networks share any address.
pub fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The smallest prefix length whose subnet holds host suffixes `1..=highest_suffix`.
pub fn widest_prefix_for(highest_suffix: u32) -> u8 {
    (1..=30u8)
        .rev()
        .find(|&p| (1u64 << (32 - p)) - 2 >= u64::from(highest_suffix))
        .unwrap_or(1)
}

/// The first /24 of [`AUTOMATIC_SEARCH`] that overlaps none of `taken`.
///
/// Runs in time proportional to the number of taken networks, not the 69,888 candidates: a
/// candidate that hits a taken network jumps past that network's end.
pub fn choose_automatic_subnet(taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    for (base, prefix) in AUTOMATIC_SEARCH {
        let range = Ipv4Net::new(base, prefix).expect("constant range");
        let end = u32::from(range.broadcast());
        let mut candidate = u32::from(range.network());
        'search: while candidate <= end {
            let net = Ipv4Net::new(Ipv4Addr::from(candidate), 24).expect("/24");
            for t in taken {
                if overlaps(net, *t) {
                    // Jump to the first /24 that starts after both this candidate and `t`.
                    let past = u32::from(t.broadcast()).max(u32::from(net.broadcast()));
                    match past.checked_add(1) {
                        Some(next) => candidate = next & 0xffff_ff00,
                        None => break 'search,
                    }
                    continue 'search;
                }
            }
            return Some(net);
        }
    }
    None
}

/// Networks a single-machine subnet must avoid on this host: every address's subnet and every
/// route, except the default route and whatever already sits on our own switch (a second
/// deploy must find its own subnet acceptable).
pub fn host_taken_networks(
    facts: &crate::host_facts::HostFacts,
    own_switch: &str,
) -> Vec<(Ipv4Net, String)> {
    let mut taken = Vec::new();
    for a in &facts.addresses {
        if a.link != own_switch {
            taken.push((a.address.trunc(), a.link.clone()));
        }
    }
    for r in &facts.routes {
        if r.destination.prefix_len() > 0 && r.link.as_deref() != Some(own_switch) {
            let on = r.link.clone().unwrap_or_else(|| match r.gateway {
                Some(gw) => format!("via {gw}"),
                None => "a route".to_string(),
            });
            taken.push((r.destination.trunc(), on));
        }
    }
    // An address's network and its connected route are one network on one link: said once.
    let mut seen = Vec::with_capacity(taken.len());
    taken.retain(|t| {
        let first = !seen.contains(t);
        if first {
            seen.push(t.clone());
        }
        first
    });
    taken
}

/// The single-machine addresses inside a switch subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InternalAddresses {
    pub subnet: Ipv4Net,
    pub host: Ipv4Addr,
    pub linux_node: Ipv4Addr,
    pub windows_node: Option<Ipv4Addr>,
    /// First and last LoadBalancer address, when the range is not empty.
    pub services: Option<(Ipv4Addr, Ipv4Addr)>,
}

/// Lays out `.1/.2/.3/.4+` in `subnet`. `None` when the subnet is too small for what is asked
/// (validation reports that before a plan is ever built).
pub fn internal_addresses(
    subnet: Ipv4Net,
    windows_node: bool,
    service_range_size: u32,
) -> Option<InternalAddresses> {
    let subnet = subnet.trunc();
    let services = if service_range_size == 0 {
        None
    } else {
        let first = nth_host(subnet, FIRST_SERVICE_SUFFIX)?;
        let last = nth_host(subnet, FIRST_SERVICE_SUFFIX + service_range_size - 1)?;
        Some((first, last))
    };
    Some(InternalAddresses {
        subnet,
        host: nth_host(subnet, HOST_SUFFIX)?,
        linux_node: nth_host(subnet, LINUX_NODE_SUFFIX)?,
        windows_node: if windows_node {
            Some(nth_host(subnet, WINDOWS_NODE_SUFFIX)?)
        } else {
            None
        },
        services,
    })
}

/// Highest host suffix a single-machine config uses (for the "subnet too small" rule).
pub fn highest_internal_suffix(windows_node: bool, service_range_size: u32) -> u32 {
    let nodes = if windows_node {
        WINDOWS_NODE_SUFFIX
    } else {
        LINUX_NODE_SUFFIX
    };
    if service_range_size > 0 {
        nodes.max(FIRST_SERVICE_SUFFIX + service_range_size - 1)
    } else {
        nodes
    }
}

/// The LAN of a scalable config: `Ip4GatewayAddress/Ip4PrefixLength`.
pub fn lan_subnet(config: &Config) -> Option<Ipv4Net> {
    let gw = config.network.ip4_gateway_address?;
    let prefix = u8::try_from(config.network.ip4_prefix_length.unwrap_or(24)).ok()?;
    Ipv4Net::new(gw, prefix).ok().map(|n| n.trunc())
}

/// Last address of a range of `size` starting at `start`, if it does not wrap.
pub fn range_end(start: Ipv4Addr, size: u32) -> Option<Ipv4Addr> {
    let last = u32::from(start).checked_add(size.checked_sub(1)?)?;
    Some(Ipv4Addr::from(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_and_its_connected_route_are_one_taken_network() {
        use crate::host_facts::{HostAddress, HostFacts, HostRoute};
        let facts = HostFacts {
            addresses: vec![HostAddress {
                link: "up0".into(),
                address: n("10.77.0.5/24"),
            }],
            routes: vec![
                HostRoute {
                    destination: n("10.77.0.0/24"),
                    link: Some("up0".into()),
                    gateway: None,
                },
                HostRoute {
                    destination: n("10.78.0.0/16"),
                    link: Some("up0".into()),
                    gateway: Some("10.77.0.1".parse().unwrap()),
                },
            ],
            ..HostFacts::default()
        };
        assert_eq!(
            host_taken_networks(&facts, "aksedgesw-int"),
            [
                (n("10.77.0.0/24"), "up0".to_string()),
                (n("10.78.0.0/16"), "up0".to_string())
            ]
        );
    }

    #[test]
    fn nth_host_counts_from_the_network_address() {
        assert_eq!(
            nth_host(n("192.168.0.0/24"), 1),
            Some("192.168.0.1".parse().unwrap())
        );
        assert_eq!(
            nth_host(n("192.168.0.0/24"), 254),
            Some("192.168.0.254".parse().unwrap())
        );
        assert_eq!(nth_host(n("192.168.0.0/24"), 255), None);
        assert_eq!(
            nth_host(n("10.0.0.0/30"), 2),
            Some("10.0.0.2".parse().unwrap())
        );
        assert_eq!(nth_host(n("10.0.0.0/30"), 3), None);
    }

    #[test]
    fn automatic_subnet_prefers_192_168_0() {
        assert_eq!(choose_automatic_subnet(&[]), Some(n("192.168.0.0/24")));
    }

    #[test]
    fn automatic_subnet_skips_taken_and_wider_routes() {
        assert_eq!(
            choose_automatic_subnet(&[n("192.168.0.0/24")]),
            Some(n("192.168.1.0/24"))
        );
        assert_eq!(
            choose_automatic_subnet(&[n("192.168.0.0/23")]),
            Some(n("192.168.2.0/24"))
        );
        assert_eq!(
            choose_automatic_subnet(&[n("192.168.0.0/16")]),
            Some(n("172.16.0.0/24"))
        );
        assert_eq!(
            choose_automatic_subnet(&[n("192.168.0.77/32")]),
            Some(n("192.168.1.0/24"))
        );
        assert_eq!(
            choose_automatic_subnet(&[n("192.168.0.0/16"), n("172.16.0.0/12")]),
            Some(n("10.0.0.0/24"))
        );
        assert_eq!(
            choose_automatic_subnet(&[n("0.0.0.0/1"), n("128.0.0.0/1")]),
            None
        );
    }

    #[test]
    fn internal_layout_is_fixed() {
        let a = internal_addresses(n("192.168.0.0/24"), true, 10).unwrap();
        assert_eq!(a.host.to_string(), "192.168.0.1");
        assert_eq!(a.linux_node.to_string(), "192.168.0.2");
        assert_eq!(a.windows_node.unwrap().to_string(), "192.168.0.3");
        let (first, last) = a.services.unwrap();
        assert_eq!(
            (first.to_string(), last.to_string()),
            ("192.168.0.4".into(), "192.168.0.13".into())
        );
        assert!(internal_addresses(n("10.0.0.0/30"), true, 0).is_none());
    }

    #[test]
    fn widest_prefix() {
        assert_eq!(widest_prefix_for(2), 30);
        assert_eq!(widest_prefix_for(3), 29);
        assert_eq!(widest_prefix_for(6), 29);
        assert_eq!(widest_prefix_for(7), 28);
        assert_eq!(widest_prefix_for(130), 24);
    }
}
