//! Routes in a node's namespace that deploy did not make and nothing running in the node
//! would have made: main-table IPv4 routes through the node's `eth0` other than the default
//! route and the kernel's own, added the way `ip route add` adds them (`proto boot` or
//! `static`). Deploy keeps the node's routing as it keeps its addresses (only the plan's), so
//! such a route is drift that `status` names and deploy deletes.
//!
//! Not stray: routes through other links (Kubernetes' `cni0`, `flannel.1`, the pods' veths),
//! and routes through `eth0` that a routing agent made with its own protocol number (BIRD's
//! `proto bird`, Calico's `proto 80`) or none (flannel's host-gw routes are `proto unspec`).

use edgenet_host::netlink::Route;

use crate::names::NODE_IFNAME;

/// `proto boot` (what `ip route add` and edgenet's own default route use) and `proto static`.
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

/// A route as `ip route` shows it: `10.9.0.0/16 via 192.168.0.1 dev eth0`.
pub fn describe(r: &Route) -> String {
    let mut s = r.destination.to_string();
    if let Some(gw) = r.gateway {
        s.push_str(&format!(" via {gw}"));
    }
    s.push_str(&format!(" dev {NODE_IFNAME}"));
    if let Some(m) = r.metric {
        s.push_str(&format!(" metric {m}"));
    }
    s
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
        }
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
