//! The lab's fixed addressing and naming.
//!
//! Addresses come only from 198.18.0.0/15 (benchmarking) and 203.0.113.0/24 (documentation)
//! so they can never be mistaken for a real network (192.0.2.0/24 is some hosts' own uplink,
//! see NOTES.md). They are the same in every lab: each lab lives in its own namespaces, so
//! only namespace names need to be unique, and they all carry the lab's prefix.
//!
//! ```text
//!  [enl-L-inet]  eth0 203.0.113.53 (DNS upstream), 203.0.113.80 (HTTP); default via .1
//!       | veth
//!  [enl-L-lan]   wan0 203.0.113.1 | bridge lan0 198.18.0.1/22 (router, LAN DNS, proxy :3128)
//!       | ports m1, m2, …, peer
//!  [enl-L-m1]    eth0 198.18.0.11/22, default via 198.18.0.1   (a "machine")
//!  [enl-L-m2]    eth0 198.18.0.12/22 …
//!  [enl-L-peer]  eth0 198.18.0.254/22 (a LAN host that probes inbound reachability)
//! ```
//!
//! The LAN is a /22 (198.18.0.0 – 198.18.3.255) so that a scalable cluster of many machines
//! has room for its nodes next to the lab's own addresses, which stay in 198.18.0.0/24: the
//! router `.1`, the machines `.11` … `.210`, the peer `.254` (machines 201 … 255 of the
//! largest labs take `198.18.3.1` … `.55`). Where a scalable config
//! puts its nodes is in [`crate::scalable`]. The router routes the LAN to the internet and
//! back without NAT, so servers see LAN addresses (machines' and nodes') as they are. The
//! LAN namespace (router and switch) does no IPv6 of its own; the machines' IPv6 link-local
//! traffic crosses the switch as on any LAN.

use std::net::Ipv4Addr;

use edgenet_core::mac::MacAddr;
use ipnet::Ipv4Net;

/// Prefix of every namespace a lab creates: `enl-<lab>-<role>`.
pub const NETNS_PREFIX: &str = "enl-";

/// The LAN (the "physical network" of the machines and, in a scalable cluster, of the nodes).
pub const LAN_SUBNET: Ipv4Net = net(198, 18, 0, 0, 22);
/// The LAN router: gateway of the machines, the LAN DNS (a dnsmasq forwarder) and the proxy.
pub const LAN_ROUTER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The LAN router's MAC (locally administered; each lab's LAN is a namespace of its own).
pub const LAN_ROUTER_MAC: MacAddr = MacAddr([0x02, 0xed, 0x9e, 0x1a, 0x00, 0x01]);
/// The LAN host that tries to open connections to nodes (the "LAN→node" row).
pub const LAN_PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
/// First machine gets `.11`, the N-th `.10 + N`, up to [`FIRST_LAN_MACHINES`].
const MACHINE_BASE: u8 = 10;
/// Machines whose address is in the LAN's first /24 (`.11` … `.210`, below the peer's).
pub const FIRST_LAN_MACHINES: u8 = 200;
/// Most machines one lab may have: every machine count a `u8` (and a config's `Machines`
/// of a lab) can hold. Machines past [`FIRST_LAN_MACHINES`] get `198.18.3.1` … `.55`.
pub const MAX_MACHINES: u8 = u8::MAX;

/// The "internet".
pub const INET_SUBNET: Ipv4Net = net(203, 0, 113, 0, 24);
/// The LAN router's uplink address (gateway of the internet namespace).
pub const INET_ROUTER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The upstream DNS server (dnsmasq, authoritative for [`TEST_DOMAIN`]).
pub const DNS_UPSTREAM: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 53);
/// The HTTP server.
pub const HTTP_SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 80);
/// The zone only the upstream DNS serves (`.test` is reserved, RFC 2606).
pub const TEST_DOMAIN: &str = "edgenet.test";
/// A name only the upstream DNS resolves, to [`HTTP_SERVER`].
pub const TEST_NAME: &str = "www.edgenet.test";
/// The proxy's port on [`LAN_ROUTER`].
pub const PROXY_PORT: u16 = 3128;

/// Link names inside the lab's namespaces (namespace-local, so fixed and short).
pub(crate) const LAN_BRIDGE: &str = "lan0";
/// The LAN switch's own nftables table (bridge family): its MLD snooping stand-in.
pub(crate) const LAN_MLD_TABLE: &str = "lan_switch";
pub(crate) const LAN_UPLINK: &str = "wan0";
pub(crate) const ADAPTER: &str = "eth0";
pub(crate) const PEER_PORT: &str = "peer";

const fn net(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    match Ipv4Net::new(Ipv4Addr::new(a, b, c, d), prefix) {
        Ok(n) => n,
        Err(_) => panic!("bad prefix"),
    }
}

/// The LAN address of machine `index` (1-based): `198.18.0.(10 + index)` for the first
/// [`FIRST_LAN_MACHINES`], then `198.18.3.(index - 200)`, which the wide scalable layout
/// (the only one for that many machines) leaves free: its nodes are in `198.18.1.0/24` and
/// `198.18.2.0/24`, its endpoint and services at `198.18.3.100` and `.200` … `.209`.
pub fn machine_address(index: u8) -> Ipv4Addr {
    if index <= FIRST_LAN_MACHINES {
        Ipv4Addr::new(198, 18, 0, MACHINE_BASE + index)
    } else {
        Ipv4Addr::new(198, 18, 3, index - FIRST_LAN_MACHINES)
    }
}

/// The MAC of machine `index`'s adapter (locally administered, `02:ed:9e:1b:00:<index>`):
/// fixed when the lab wires it, so the router's ARP entry for the machine is written at once.
pub fn machine_mac(index: u8) -> MacAddr {
    MacAddr([0x02, 0xed, 0x9e, 0x1b, 0x00, index])
}

/// The machine's name inside the lab (`m1`, `m2`, …), also its LAN bridge port name.
pub fn machine_name(index: u8) -> String {
    format!("m{index}")
}

/// The name a deploy on lab `lab`'s machine `machine` gives that machine when the lab names
/// it (`<lab>-<machine>`): its nodes are `<it>-ledge`/`-wedge` and their namespaces
/// `<it>-ledge-<deployment id>`, so every namespace a lab's deploys make carries the lab's
/// name, as the lab's own (`enl-<lab>-…`) do.
pub fn deployed_machine_name(lab: &str, machine: &str) -> String {
    format!("{lab}-{machine}")
}

/// `http://203.0.113.80/`
pub fn http_url_by_address() -> String {
    format!("http://{HTTP_SERVER}/")
}

/// `http://www.edgenet.test/`
pub fn http_url_by_name() -> String {
    format!("http://{TEST_NAME}/")
}

/// `http://198.18.0.1:3128`, for a config's proxy section.
pub fn proxy_url() -> String {
    format!("http://{LAN_ROUTER}:{PROXY_PORT}")
}

/// Checks a lab name: it becomes part of namespace names and of the lab prefix, so it is
/// kept to lower-case letters and digits (no `-`: then `enl-<lab>-` can never be a prefix of
/// another lab's namespaces) and short.
pub fn check_name(name: &str) -> Result<(), crate::LabError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > 32 {
        Some("longer than 32 bytes")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        Some("only a-z and 0-9 are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(crate::LabError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// `enl-<lab>-` — every namespace of the lab starts with it.
pub fn prefix(lab: &str) -> String {
    format!("{NETNS_PREFIX}{lab}-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_collide_or_break_paths_are_refused() {
        for bad in ["", "a-b", "A", "a/b", "a.b", &"x".repeat(33)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "t1234x", &"x".repeat(32)] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn addresses_stay_in_the_test_ranges() {
        let bench: Ipv4Net = "198.18.0.0/15".parse().unwrap();
        let doc: Ipv4Net = "203.0.113.0/24".parse().unwrap();
        let mut seen = std::collections::HashSet::from([LAN_ROUTER, LAN_PEER]);
        for i in 1..=MAX_MACHINES {
            let a = machine_address(i);
            assert!(bench.contains(&a) && LAN_SUBNET.contains(&a), "{a}");
            assert!(
                a != LAN_SUBNET.network() && a != LAN_SUBNET.broadcast(),
                "{a}"
            );
            assert!(seen.insert(a), "machine {i}: {a} taken twice");
        }
        assert_eq!(machine_address(MAX_MACHINES), Ipv4Addr::new(198, 18, 3, 55));
        // The lab's own addresses stay in the first /24 of the LAN (a scalable config for
        // few machines uses that /24 as its subnet).
        let first: Ipv4Net = "198.18.0.0/24".parse().unwrap();
        for a in [LAN_ROUTER, LAN_PEER, machine_address(FIRST_LAN_MACHINES)] {
            assert!(first.contains(&a), "{a}");
        }
        assert!(machine_address(FIRST_LAN_MACHINES) < LAN_PEER);
        assert!(bench.contains(&LAN_SUBNET));
        for a in [INET_ROUTER, DNS_UPSTREAM, HTTP_SERVER] {
            assert!(doc.contains(&a) && INET_SUBNET.contains(&a), "{a}");
        }
    }
}
