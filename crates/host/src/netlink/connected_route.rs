//! The kernel's connected route of an IPv4 address (`N dev L proto kernel scope link src A`):
//! the kernel adds it when the address is added (and when the link comes up), and never
//! otherwise. Deleted by hand (`ip route del N dev L`), it is gone for good while the address
//! stays: the host no longer reaches the network N (the LAN behind an external bridge, the
//! nodes behind an internal one) and nothing else looks wrong. [`Netlink::missing_connected_routes`]
//! finds such a route; [`Netlink::add_connected_route`] adds it back as the kernel makes it.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::route::{parse_route, Route};
use crate::error::HostError;
use crate::netlink::Netlink;

/// The route the kernel makes for an address: to `network` through the link, from `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectedRoute {
    pub network: Ipv4Net,
    pub source: Ipv4Addr,
}

impl std::fmt::Display for ConnectedRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} proto kernel scope link src {}",
            self.network, self.source
        )
    }
}

/// The connected routes a link's IPv4 addresses give it: one per network, from the first
/// (primary) address in it; none for a /32 or an address added with `noprefixroute` (whose
/// owner routes its network itself, or not at all) — unless it is one of `own`, addresses the
/// caller put there and wants routed whatever flag a hand gave them since.
pub fn wanted(addresses: &[AddressMessage], own: &[Ipv4Net]) -> Vec<ConnectedRoute> {
    let mut out: Vec<ConnectedRoute> = Vec::new();
    for a in addresses
        .iter()
        .filter(|a| a.header.family == AddressFamily::Inet)
    {
        let no_route = a.attributes.iter().any(
            |attr| matches!(attr, AddressAttribute::Flags(f) if f.contains(AddressFlags::Noprefixroute)),
        );
        // IFA_LOCAL is the address itself (IFA_ADDRESS is the peer's on a point-to-point link).
        let local = a.attributes.iter().find_map(|attr| match attr {
            AddressAttribute::Local(std::net::IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        });
        let Some(local) = local else { continue };
        let prefix = a.header.prefix_len;
        let ours = Ipv4Net::new(local, prefix).is_ok_and(|n| own.contains(&n));
        if (no_route && !ours) || prefix >= 32 {
            continue;
        }
        let Ok(network) = Ipv4Net::new(local, prefix).map(|n| n.trunc()) else {
            continue;
        };
        if !out.iter().any(|r| r.network == network) {
            out.push(ConnectedRoute {
                network,
                source: local,
            });
        }
    }
    out
}

/// Whether `r` (a main-table route) goes to `network` through link `index` without a gateway
/// (of any protocol and metric: one the administrator made in its place serves as well).
pub fn serves(r: &Route, network: Ipv4Net, index: u32) -> bool {
    r.destination == network && r.link_index == Some(index) && r.gateway.is_none()
}

impl Netlink {
    /// The connected routes of `link`'s IPv4 addresses that the main table lacks (nothing
    /// for a link that does not exist or is down: the kernel adds them when it comes up).
    /// `own`: see [`wanted`].
    pub fn missing_connected_routes(
        &mut self,
        link: &str,
        own: &[Ipv4Net],
    ) -> Result<Vec<ConnectedRoute>, HostError> {
        let index = match self.link_index(link) {
            Ok(i) => i,
            Err(e) if e.errno() == Some(libc::ENODEV) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let addresses = self
            .address_messages(AddressFamily::Inet, Some(index))
            .map_err(|f| f.into_host("dump IPv4 addresses of", link))?;
        let want = wanted(&addresses, own);
        if want.is_empty() {
            return Ok(want);
        }
        let routes = self
            .route_messages(AddressFamily::Inet)
            .map_err(|f| f.into_host("dump IPv4 routes", ""))?;
        let routes: Vec<Route> = routes.iter().filter_map(parse_route).collect();
        Ok(want
            .into_iter()
            .filter(|w| !routes.iter().any(|r| serves(r, w.network, index)))
            .collect())
    }

    /// Adds `route` through `link` as the kernel makes it for an address (main table, `proto
    /// kernel`, `scope link`, `src`, no metric), *beside* any route another interface holds
    /// to that network (an administrator's `N via G dev eth0`): never in its place. The very
    /// same route there already counts as added.
    pub fn add_connected_route(
        &mut self,
        link: &str,
        route: &ConnectedRoute,
    ) -> Result<(), HostError> {
        let index = self.link_index(link)?;
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.destination_prefix_length = route.network.prefix_len();
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Kernel;
        msg.header.scope = RouteScope::Link;
        msg.header.kind = RouteType::Unicast;
        msg.attributes.extend([
            RouteAttribute::Destination(RouteAddress::Inet(route.network.network())),
            RouteAttribute::PrefSource(RouteAddress::Inet(route.source)),
            RouteAttribute::Oif(index),
        ]);
        let object = format!("{route} dev {link}");
        match self.ack_request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
        ) {
            Ok(_) => Ok(()),
            Err(f) if f.errno() == Some(libc::EEXIST) => Ok(()),
            Err(f) => Err(f.into_host("add route", &object)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(ip: &str, prefix: u8, flags: AddressFlags) -> AddressMessage {
        let mut a = AddressMessage::default();
        a.header.family = AddressFamily::Inet;
        a.header.prefix_len = prefix;
        let ip: std::net::IpAddr = ip.parse().unwrap();
        a.attributes.extend([
            AddressAttribute::Address(ip),
            AddressAttribute::Local(ip),
            AddressAttribute::Flags(flags),
        ]);
        a
    }

    #[test]
    fn one_route_per_network_from_its_primary_and_none_for_host_or_noprefixroute_addresses() {
        let want = wanted(
            &[
                address("198.18.0.11", 24, AddressFlags::Permanent),
                address("198.18.0.12", 24, AddressFlags::Secondary),
                address("10.1.2.3", 16, AddressFlags::Permanent),
                address("10.9.9.9", 32, AddressFlags::Permanent),
                address("172.16.0.5", 24, AddressFlags::Noprefixroute),
            ],
            &[],
        );
        assert_eq!(
            want,
            vec![
                ConnectedRoute {
                    network: "198.18.0.0/24".parse().unwrap(),
                    source: "198.18.0.11".parse().unwrap(),
                },
                ConnectedRoute {
                    network: "10.1.0.0/16".parse().unwrap(),
                    source: "10.1.2.3".parse().unwrap(),
                },
            ]
        );
        assert_eq!(
            want[0].to_string(),
            "198.18.0.0/24 proto kernel scope link src 198.18.0.11"
        );
    }

    #[test]
    fn an_own_address_wants_its_route_even_with_noprefixroute() {
        let own: Ipv4Net = "172.16.0.5/24".parse().unwrap();
        let want = wanted(
            &[address("172.16.0.5", 24, AddressFlags::Noprefixroute)],
            &[own],
        );
        assert_eq!(
            want,
            vec![ConnectedRoute {
                network: "172.16.0.0/24".parse().unwrap(),
                source: "172.16.0.5".parse().unwrap(),
            }]
        );
    }

    #[test]
    fn a_gateway_route_or_another_table_does_not_stand_for_the_connected_route() {
        let net: Ipv4Net = "198.18.0.0/24".parse().unwrap();
        let route = |table: u8, gateway: bool, oif: u32| {
            let mut r = RouteMessage::default();
            r.header.address_family = AddressFamily::Inet;
            r.header.destination_prefix_length = 24;
            r.header.table = table;
            r.attributes.extend([
                RouteAttribute::Destination(RouteAddress::Inet(net.network())),
                RouteAttribute::Oif(oif),
            ]);
            if gateway {
                r.attributes
                    .push(RouteAttribute::Gateway(RouteAddress::Inet(
                        "198.18.0.1".parse().unwrap(),
                    )));
            }
            r
        };
        let serving = |m: RouteMessage| parse_route(&m).is_some_and(|r| serves(&r, net, 7));
        assert!(serving(route(254, false, 7)));
        assert!(!serving(route(254, true, 7)));
        assert!(!serving(route(100, false, 7)));
        assert!(!serving(route(254, false, 8)));
    }
}
