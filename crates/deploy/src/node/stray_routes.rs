//! Routes in a node's namespace that deploy did not make: main-table IPv4 routes through the
//! node's `eth0` other than the default route and the kernel's own, with `proto boot` or
//! `static`. `status` names them as a notice; deploy leaves them.
//!
//! Why not drift that deploy deletes: `proto boot` is also what the Go netlink library most
//! Kubernetes network agents use puts on a route unless told otherwise (flannel's `host-gw`
//! backend routes every other node's pod subnet through `eth0` that way), and an operator may
//! have added one on purpose. A route deploy cannot tell apart from the CNI's is not deploy's
//! to delete. Routes through other links (`cni0`, `flannel.1`, pods' veths) and routes with a
//! routing agent's own protocol (BIRD's `proto bird`, Calico's `proto 80`) are not named at all.

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
