//! Main-table routes that drop what they match (`blackhole`, `unreachable`, `prohibit`,
//! `throw`: no device, no gateway), which of them cut a node off, and their deletion.
//!
//! A node's own traffic has two ways out: its gateway (through the kernel's route for the
//! node's subnet) and the default route via that gateway. A dropping route cuts the node off
//! when the kernel picks it for the gateway (the longest prefix covering it: `prohibit
//! 192.168.0.1/32` beats the subnet's `/24`), or when the wide ones (a /8 or wider) together
//! cover half of the IPv4 space or more (`blackhole 0.0.0.0/1` + `unreachable 128.0.0.0/1`: the
//! pair that overrides a default route without replacing it, as VPN clients do; or four `/2`s). Narrower ones (`blackhole 10.8.0.0/16`) block a
//! range someone chose to block: named, left. Default routes (`/0`) are judged with the other
//! default routes. Only routes made by hand (`proto boot`/`static`, what `ip route add` makes)
//! count: a routing agent's own (Calico's `blackhole … proto bird` for its blocks) is its
//! business.
use std::net::Ipv4Addr;

use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{HostError, Netlink, Route};

/// `proto boot` and `proto static`: what `ip route add` makes.
const BY_HAND: [u8; 2] = [3, 4];

/// Whether `r` drops what it matches (`rtm_type` blackhole 6, unreachable 7, prohibit 8,
/// throw 9: in `main`, a `throw` ends the lookup as `unreachable` does).
pub fn drops(r: &Route) -> bool {
    matches!(r.kind, 6..=9)
}

/// Whether `r` is a dropping route made by hand that is not a default route.
pub fn dropping_by_hand(r: &Route) -> bool {
    drops(r) && BY_HAND.contains(&r.protocol) && r.destination.prefix_len() > 0
}

/// The route of `routes` (main table) the kernel picks for `to`: the longest prefix covering
/// it, then the lowest metric.
pub fn picked(routes: &[Route], to: Ipv4Addr) -> Option<&Route> {
    routes
        .iter()
        .filter(|r| r.destination.contains(&to))
        .max_by_key(|r| {
            (
                r.destination.prefix_len(),
                std::cmp::Reverse(r.metric.unwrap_or(0)),
            )
        })
}

/// The dropping routes made by hand in `routes` (a node's main table) that cut the node off:
/// the one the kernel picks for `gateway`, and the wide ones (a /8 or wider) when together they
/// cover half of the IPv4 space or more (`0.0.0.0/1` + `128.0.0.0/1`, or four `/2`s).
pub fn cutting_off(routes: &[Route], gateway: Ipv4Addr) -> Vec<&Route> {
    let hides_gateway = picked(routes, gateway).filter(|r| dropping_by_hand(r));
    let wide = |r: &Route| dropping_by_hand(r) && r.destination.prefix_len() <= WIDE;
    let wide_cut = covered(routes.iter().filter(|r| wide(r))) >= 1u64 << 31;
    routes
        .iter()
        .filter(|r| {
            dropping_by_hand(r)
                && ((wide_cut && wide(r)) || hides_gateway.is_some_and(|g| std::ptr::eq(*r, g)))
        })
        .collect()
}

/// A dropping route this wide or wider counts toward cutting a node off (see [`cutting_off`]).
const WIDE: u8 = 8;

/// How many IPv4 addresses `routes` cover together (overlaps counted once).
fn covered<'a>(routes: impl Iterator<Item = &'a Route>) -> u64 {
    let mut ranges: Vec<(u64, u64)> = routes
        .map(|r| {
            let start = u64::from(u32::from(r.destination.network()));
            (
                start,
                start + (1u64 << (32 - u32::from(r.destination.prefix_len()))),
            )
        })
        .collect();
    ranges.sort_unstable();
    let (mut total, mut end) = (0u64, 0u64);
    for (s, e) in ranges {
        let s = s.max(end);
        if e > s {
            total += e - s;
            end = e;
        }
    }
    total
}

impl Netlink {
    /// Deletes the main-table route `r` of a dropping type (its destination, type and metric:
    /// an ordinary route to the same destination stays). Returns whether it existed.
    pub fn del_dropping_route(&mut self, r: &Route) -> Result<bool, HostError> {
        let op = "delete route";
        let object = r.destination.to_string();
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.destination_prefix_length = r.destination.prefix_len();
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.kind = RouteType::from(r.kind);
        msg.header.scope = RouteScope::NoWhere;
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(
                r.destination.network(),
            )));
        if let Some(m) = r.metric {
            msg.attributes.push(RouteAttribute::Priority(m));
        }
        match self.ack_request(
            RouteNetlinkMessage::DelRoute(msg),
            NLM_F_REQUEST | NLM_F_ACK,
        ) {
            Ok(_) => Ok(true),
            Err(f) if f.errno() == Some(libc::ESRCH) => Ok(false),
            Err(f) => Err(f.into_host(op, &object)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: &str, kind: u8, protocol: u8) -> Route {
        Route {
            destination: dst.parse().unwrap(),
            link_index: (kind == 1).then_some(2),
            link: (kind == 1).then(|| "eth0".to_string()),
            gateway: None,
            metric: None,
            protocol,
            kind,
        }
    }

    fn named(routes: &[Route]) -> Vec<String> {
        cutting_off(routes, "192.168.0.1".parse().unwrap())
            .into_iter()
            .map(|r| r.destination.to_string())
            .collect()
    }

    fn node(extra: &[Route]) -> Vec<Route> {
        let mut routes = vec![
            Route {
                gateway: Some("192.168.0.1".parse().unwrap()),
                ..route("0.0.0.0/0", 1, 3)
            },
            route("192.168.0.0/24", 1, 2),
        ];
        routes.extend_from_slice(extra);
        routes
    }

    #[test]
    fn a_dropping_route_the_kernel_picks_for_the_gateway_cuts_the_node_off() {
        // 8 = prohibit, 6 = blackhole, 7 = unreachable; proto boot = 3.
        assert_eq!(
            named(&node(&[route("192.168.0.1/32", 8, 3)])),
            ["192.168.0.1/32"]
        );
        assert_eq!(
            named(&node(&[route("192.168.0.0/25", 6, 4)])),
            ["192.168.0.0/25"]
        );
        // Wider than the subnet's route: the kernel still picks the subnet's for the gateway.
        assert!(named(&node(&[route("192.168.0.0/16", 8, 3)])).is_empty());
        // Another host of the subnet, a range elsewhere: blocked on purpose, not cut off.
        assert!(named(&node(&[
            route("192.168.0.9/32", 8, 3),
            route("10.8.0.0/16", 6, 3)
        ]))
        .is_empty());
        // A routing agent's (proto bird = 12) is its business.
        assert!(named(&node(&[route("192.168.0.1/32", 6, 12)])).is_empty());
    }

    #[test]
    fn dropping_halves_of_the_address_space_cut_the_node_off() {
        let routes = node(&[
            route("0.0.0.0/1", 6, 3),
            route("128.0.0.0/1", 7, 3),
            route("10.9.0.0/16", 8, 3),
        ]);
        assert_eq!(named(&routes), ["0.0.0.0/1", "128.0.0.0/1"]);
        // Four quarters together, too (B18b 4); overlaps count once.
        let quarters = ["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"];
        let routes: Vec<Route> = quarters.iter().map(|q| route(q, 6, 3)).collect();
        assert_eq!(named(&node(&routes)), quarters);
        let overlapping: Vec<Route> = ["0.0.0.0/2", "0.0.0.0/3", "64.0.0.0/3"]
            .iter()
            .map(|q| route(q, 6, 3))
            .collect();
        assert!(
            named(&node(&overlapping)).is_empty(),
            "a quarter and an eighth"
        );
        // A typed default route is judged with the default routes.
        assert!(named(&node(&[route("0.0.0.0/0", 6, 3)])).is_empty());
    }
}
