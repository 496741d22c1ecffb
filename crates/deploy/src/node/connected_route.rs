//! The kernel's connected route of a namespace node's address (`192.168.0.0/24 dev eth0 proto
//! kernel scope link src 192.168.0.11`, see [`edgenet_host::netlink::connected_route`]): deleted
//! by hand inside the node, the kernel never makes it again while the address stays, and the
//! node reaches neither its gateway nor the other nodes (its default route still shows).
//! `status` names it as drift; deploy adds it back as the kernel makes it, before the default
//! route (whose gateway is reachable only through it).

use edgenet_host::netlink::connected_route::ConnectedRoute;
use edgenet_host::netlink::Netlink;

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

/// The connected routes `eth0` lacks, read inside the node's namespace (nothing while `eth0`
/// is down: the kernel adds them when it comes up).
pub fn missing(nl: &mut Netlink) -> Result<Vec<ConnectedRoute>, DeployError> {
    if !nl.link(NODE_IFNAME)?.is_some_and(|l| l.up) {
        return Ok(Vec::new());
    }
    Ok(nl.missing_connected_routes(NODE_IFNAME)?)
}

/// Adds back, inside the node's namespace, every connected route `eth0` lacks; the change
/// lines name `node`.
pub fn restore(nl: &mut Netlink, node: &str) -> Result<Vec<String>, DeployError> {
    let mut changes = Vec::new();
    for route in missing(nl)? {
        nl.add_connected_route(NODE_IFNAME, &route)?;
        changes.push(format!(
            "added back {node}'s route {} (the kernel's own for its address, deleted since)",
            shown(&route)
        ));
    }
    Ok(changes)
}
