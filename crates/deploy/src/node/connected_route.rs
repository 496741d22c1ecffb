//! The kernel's connected route of a namespace node's address (`192.168.0.0/24 dev eth0 proto
//! kernel scope link src 192.168.0.11`, see [`edgenet_host::netlink::connected_route`]): deleted
//! by hand inside the node, the kernel never makes it again while the address stays, and the
//! node reaches neither its gateway nor the other nodes (its default route still shows).
//! `status` names it as drift; deploy adds it back as the kernel makes it, before the default
//! route (whose gateway is reachable only through it).

use edgenet_host::netlink::connected_route::{serves, ConnectedRoute};
use edgenet_host::netlink::Netlink;
use ipnet::Ipv4Net;

use crate::error::DeployError;
use crate::names::NODE_IFNAME;

/// `route` as `ip route` shows it.
fn shown(route: &ConnectedRoute) -> String {
    format!(
        "{} dev {NODE_IFNAME} proto kernel scope link src {}",
        route.network, route.source
    )
}

/// The drift line for `route`, gone from `node`'s `eth0` in `netns`.
pub fn describe(node: &str, netns: &str, route: &ConnectedRoute) -> String {
    format!(
        "node {node}: its route {} in {netns} is gone (deleted by hand?): the node cannot reach {} (its gateway and the other nodes): run edgenet deploy to add it back",
        shown(route),
        route.network
    )
}

/// The kernel's route for the node's `address` when `eth0` lacks it (nothing while `eth0` is
/// down, when the kernel adds it as it comes up, or while the address is missing, which is
/// drift of its own). Judged from the plan, not from the address's flags: `eth0` is the
/// deployment's, and an address added again by hand with `noprefixroute` leaves the node
/// without the route all the same.
pub fn missing(nl: &mut Netlink, address: Ipv4Net) -> Result<Vec<ConnectedRoute>, DeployError> {
    if address.prefix_len() >= 32 {
        return Ok(Vec::new());
    }
    let Some(eth0) = nl.link(NODE_IFNAME)?.filter(|l| l.up) else {
        return Ok(Vec::new());
    };
    if !nl
        .addresses_of(NODE_IFNAME)?
        .iter()
        .any(|a| a.address == address)
    {
        return Ok(Vec::new());
    }
    let network = address.trunc();
    if nl.routes()?.iter().any(|r| serves(r, network, eth0.index)) {
        return Ok(Vec::new());
    }
    Ok(vec![ConnectedRoute {
        network,
        source: address.addr(),
    }])
}

/// Adds back, inside the node's namespace, the route for `address` that `eth0` lacks; the
/// change lines name `node`.
pub fn restore(nl: &mut Netlink, node: &str, address: Ipv4Net) -> Result<Vec<String>, DeployError> {
    let mut changes = Vec::new();
    for route in missing(nl, address)? {
        nl.add_connected_route(NODE_IFNAME, &route)?;
        changes.push(format!(
            "added back {node}'s route {} (the kernel's own for its address, deleted since)",
            shown(&route)
        ));
    }
    Ok(changes)
}
