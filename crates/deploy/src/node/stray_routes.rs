//! Routes in a node's namespace that deploy did not make: main-table IPv4 routes through the
//! node's `eth0` other than the default route and the kernel's own, with `proto boot` or
//! `static`; a second default route beside deploy's; and routes of another routing table
//! (`ip route add … table 100`, used by an `ip rule`). `status` names them as a notice; deploy
//! leaves them.
//!
//! Why not drift that deploy deletes: `proto boot` is also what the Go netlink library most
//! Kubernetes network agents use puts on a route unless told otherwise (flannel's `host-gw`
//! backend routes every other node's pod subnet through `eth0` that way), and an operator may
//! have added one on purpose. A route deploy cannot tell apart from the CNI's is not deploy's
//! to delete. Routes through other links (`cni0`, `flannel.1`, pods' veths) and routes with a
//! routing agent's own protocol (BIRD's `proto bird`, Calico's `proto 80`) are not named at all
//! (in another table, any link: a table is chosen by a rule, not by a link).
use std::net::Ipv4Addr;

use edgenet_host::netlink::Route;

use crate::names::NODE_IFNAME;

/// `proto boot` (what `ip route add`, the Go netlink library and edgenet's own default route
/// use) and `proto static`.
const BY_HAND: [u8; 2] = [3, 4];

/// The stray routes of `routes` (a node namespace's main-table IPv4 routes, links named).
pub fn stray(routes: &[Route]) -> Vec<&Route> {
    routes
        .iter()
        .filter(|r| {
            r.link.as_deref() == Some(NODE_IFNAME)
                && r.destination.prefix_len() > 0
                && BY_HAND.contains(&r.protocol)
        })
        .collect()
}

/// `main`: the table of every route deploy makes.
pub const MAIN: u32 = 254;

/// The default routes of the main table other than deploy's own (the first one via the node's
/// `gateway` through `eth0` without a metric, the one deploy replaces): one added with another
/// metric, through another gateway, or appended beside it.
/// A routing agent's own (`proto bird`, `proto dhcp`, …) is its business, as for [`stray`].
pub fn extra_defaults(routes: &[Route], gateway: Ipv4Addr) -> Vec<&Route> {
    let deploys = deploys_default(routes, gateway);
    routes
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            r.destination.prefix_len() == 0 && Some(*i) != deploys && BY_HAND.contains(&r.protocol)
        })
        .map(|(_, r)| r)
        .collect()
}

/// Where deploy's own default route is in `routes` (main table), if it is there.
pub fn deploys_default(routes: &[Route], gateway: Ipv4Addr) -> Option<usize> {
    routes.iter().position(|r| {
        r.destination.prefix_len() == 0
            && r.gateway == Some(gateway)
            && r.link.as_deref() == Some(NODE_IFNAME)
            && r.metric.unwrap_or(0) == 0
    })
}

/// The routes of `routes` (a node namespace's IPv4 routes of every table but `local`, each
/// with its table) in a table other than `main`, made by hand or by a Go netlink agent.
pub fn other_tables(routes: &[(u32, Route)]) -> Vec<(u32, &Route)> {
    routes
        .iter()
        .filter(|(table, r)| *table != MAIN && BY_HAND.contains(&r.protocol))
        .map(|(table, r)| (*table, r))
        .collect()
}

/// A route as `ip route` shows it (and `ip route del` takes it): `10.9.0.0/16 via 192.168.0.1
/// dev eth0`, `default via 192.168.0.1 dev eth0 metric 100`, `blackhole default`.
pub fn describe(r: &Route) -> String {
    let mut s = r.type_word().map(|t| format!("{t} ")).unwrap_or_default();
    if r.destination.prefix_len() == 0 {
        s.push_str("default");
    } else {
        s.push_str(&r.destination.to_string());
    }
    if let Some(gw) = r.gateway {
        s.push_str(&format!(" via {gw}"));
    }
    if let Some(link) = r.link.as_deref() {
        s.push_str(&format!(" dev {link}"));
    }
    if let Some(m) = r.metric {
        s.push_str(&format!(" metric {m}"));
    }
    s
}

/// [`describe`] with the route's table, as `ip route del` takes it.
pub fn describe_in(table: u32, r: &Route) -> String {
    format!("{} table {table}", describe(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: &str, gw: Option<&str>, link: &str, protocol: u8) -> Route {
        Route {
            destination: dst.parse().unwrap(),
            link_index: Some(2),
            link: Some(link.to_string()),
            gateway: gw.map(|g| g.parse().unwrap()),
            metric: None,
            protocol,
            kind: 1,
        }
    }

    fn typed(mut r: Route, kind: u8) -> Route {
        r.kind = kind;
        r.link = None;
        r.link_index = None;
        r
    }

    #[test]
    fn a_blackhole_or_unreachable_route_says_its_type_as_ip_route_does() {
        // rtm_type 6 = blackhole, 7 = unreachable (linux/rtnetlink.h).
        let gw: Ipv4Addr = "192.168.0.1".parse().unwrap();
        let routes = [
            route("0.0.0.0/0", Some("192.168.0.1"), "eth0", 3),
            metric(typed(route("0.0.0.0/0", None, "eth0", 3), 6), 200),
        ];
        let extra: Vec<String> = extra_defaults(&routes, gw)
            .into_iter()
            .map(describe)
            .collect();
        assert_eq!(extra, ["blackhole default metric 200"]);
        let tabled = [(100, typed(route("10.6.0.0/16", None, "eth0", 3), 7))];
        let named: Vec<String> = other_tables(&tabled)
            .into_iter()
            .map(|(t, r)| describe_in(t, r))
            .collect();
        assert_eq!(named, ["unreachable 10.6.0.0/16 table 100"]);
    }

    fn metric(mut r: Route, m: u32) -> Route {
        r.metric = Some(m);
        r
    }

    #[test]
    fn every_default_route_but_deploys_own_is_named() {
        let gw: Ipv4Addr = "192.168.0.1".parse().unwrap();
        let deploys = route("0.0.0.0/0", Some("192.168.0.1"), "eth0", 3);
        let routes = [
            metric(route("0.0.0.0/0", Some("192.168.0.1"), "eth0", 3), 100),
            deploys.clone(),
            route("0.0.0.0/0", Some("192.168.0.254"), "eth0", 3),
            route("192.168.0.0/24", None, "eth0", 2),
        ];
        let extra: Vec<String> = extra_defaults(&routes, gw)
            .into_iter()
            .map(describe)
            .collect();
        assert_eq!(
            extra,
            [
                "default via 192.168.0.1 dev eth0 metric 100",
                "default via 192.168.0.254 dev eth0"
            ]
        );
        assert!(extra_defaults(std::slice::from_ref(&deploys), gw).is_empty());
        // Deploy's own gone (drift of its own): every other default is named.
        let other = [route("0.0.0.0/0", Some("192.168.0.254"), "eth0", 3)];
        assert_eq!(extra_defaults(&other, gw).len(), 1);
        assert_eq!(deploys_default(&other, gw), None);
        assert_eq!(deploys_default(&routes, gw), Some(1));
        // A routing agent's default (proto bird = 12) is its own business.
        let agent = [
            deploys.clone(),
            route("0.0.0.0/0", Some("192.168.0.9"), "eth0", 12),
        ];
        assert!(extra_defaults(&agent, gw).is_empty());
    }

    #[test]
    fn hand_made_routes_of_another_table_are_named_with_it() {
        let routes = [
            (254, route("10.9.0.0/16", Some("192.168.0.1"), "eth0", 3)),
            (100, route("0.0.0.0/0", Some("192.168.0.254"), "eth0", 3)),
            (253, route("10.7.0.0/16", None, "cni0", 4)),
            (2004, route("10.42.0.0/16", None, "eth0", 12)),
        ];
        let named: Vec<String> = other_tables(&routes)
            .into_iter()
            .map(|(t, r)| describe_in(t, r))
            .collect();
        assert_eq!(
            named,
            [
                "default via 192.168.0.254 dev eth0 table 100",
                "10.7.0.0/16 dev cni0 table 253"
            ]
        );
    }

    #[test]
    fn only_hand_made_routes_through_eth0_besides_the_default_are_stray() {
        let routes = [
            route("0.0.0.0/0", Some("192.168.0.1"), "eth0", 3),
            route("192.168.0.0/24", None, "eth0", 2),
            route("10.9.0.0/16", Some("192.168.0.1"), "eth0", 3),
            route("10.8.0.0/16", None, "eth0", 4),
            // A routing agent's, the CNI's: theirs.
            route("10.42.1.0/24", Some("192.168.0.3"), "eth0", 12),
            route("10.42.2.0/24", Some("192.168.0.4"), "eth0", 0),
            route("10.42.0.0/24", None, "cni0", 3),
        ];
        let stray: Vec<String> = stray(&routes).into_iter().map(describe).collect();
        assert_eq!(
            stray,
            [
                "10.9.0.0/16 via 192.168.0.1 dev eth0",
                "10.8.0.0/16 dev eth0"
            ]
        );
    }
}
