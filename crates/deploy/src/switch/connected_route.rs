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
        match k.add_connected_route(bridge, &route) {
            Ok(()) => j.changed(format!(
                "added back the route {route} dev {bridge} (the kernel's own for the address, deleted since)"
            )),
            Err(e) => j.warn(format!(
                "could not add back the route {route} dev {bridge}: {e}"
            )),
        }
    }
    Ok(())
}
