//! The kernel's connected route of each IPv4 address on the bridge (see
//! [`edgenet_host::netlink::connected_route`]): deleted by hand, the kernel never makes it again while
//! the address stays, and the host cannot reach that network any more (the LAN behind an
//! external switch, the nodes behind an internal one). `status` names one that is gone; deploy
//! adds it back as the kernel makes it. Only on a bridge this deployment made: the routes of
//! an adopted bridge (the administrator's own) are theirs.

use edgenet_host::netlink::connected_route::ConnectedRoute;

use crate::error::DeployError;
use crate::journal::Journal;
use crate::kernel::Kernel;

/// The routes not through `bridge` in the slot of the connected route `route` (its network,
/// main table, no metric): an administrator's, left as they are, named.
pub fn foreign_in_slot(
    k: &mut dyn Kernel,
    bridge: &str,
    route: &ConnectedRoute,
) -> Result<Vec<String>, DeployError> {
    Ok(k.routes()?
        .into_iter()
        .filter(|r| {
            r.destination == route.network
                && r.metric.unwrap_or(0) == 0
                && r.link.as_deref() != Some(bridge)
        })
        .map(|r| {
            let mut s = r.type_word().map(|w| format!("{w} ")).unwrap_or_default();
            s.push_str(&r.destination.to_string());
            if let Some(g) = r.gateway {
                s.push_str(&format!(" via {g}"));
            }
            if let Some(l) = &r.link {
                s.push_str(&format!(" dev {l}"));
            }
            s
        })
        .collect())
}

/// The drift line for `route`, gone from `bridge`.
pub fn describe(bridge: &str, route: &ConnectedRoute) -> String {
    format!(
        "bridge {bridge} lacks the kernel's route to {} for its address {} (deleted by hand?): the host cannot reach {} there: run deploy to add it back",
        route.network, route.source, route.network
    )
}

/// Adds back on `bridge` (up, made by this deployment) every connected route that is gone,
/// each with a change line; one the kernel refuses is a warning. `own`: the addresses the
/// deployment itself gives the bridge (the internal switch's), routed even if put back by hand
/// with `noprefixroute`.
pub fn restore(
    k: &mut dyn Kernel,
    bridge: &str,
    own: &[ipnet::Ipv4Net],
    j: &mut dyn Journal,
) -> Result<(), DeployError> {
    for route in k.missing_connected_routes(bridge, own)? {
        let beside = foreign_in_slot(k, bridge, &route)?;
        match k.add_connected_route(bridge, &route) {
            Ok(()) if beside.is_empty() => j.changed(format!(
                "added back the route {route} dev {bridge} (the kernel's own for the address, deleted since)"
            )),
            Ok(()) => j.changed(format!(
                "added back the route {route} dev {bridge} (the kernel's own for the address, deleted since) beside {}, not edgenet's: left as it is, and the kernel uses it first while it is there",
                beside.join("; ")
            )),
            Err(e) => j.warn(format!(
                "could not add back the route {route} dev {bridge}: {e}"
            )),
        }
    }
    Ok(())
}
