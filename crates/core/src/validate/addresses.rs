//! Rule groups 2 and 4: every address is IPv4 unicast, lies inside its subnet, is not the
//! network, broadcast or gateway address, and is used once across the whole cluster.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use super::{Code, Finding};
use crate::addressing::range_end;
use crate::config::Config;

/// Largest LoadBalancer range (SPEC §2).
pub const MAX_SERVICE_RANGE: u32 = 127;

/// Why `ip` cannot be a host's unicast address, if it cannot.
pub fn non_unicast_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if o[0] == 0 {
        Some("in 0.0.0.0/8 (\"this network\")")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_link_local() {
        Some("a link-local address (169.254.0.0/16)")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip.is_broadcast() {
        Some("the broadcast address")
    } else if o[0] >= 240 {
        Some("in the reserved range 240.0.0.0/4")
    } else {
        None
    }
}

/// An address the config asks for, and where.
pub(super) struct Claim {
    pub at: ClaimAt,
    pub ip: Ipv4Addr,
}

/// Where a [`Claim`] is written; its path is written out only for a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClaimAt {
    Path(&'static str),
    /// `Machines[i].<key>.Ip4Address`.
    Node(usize, &'static str),
}

impl fmt::Display for ClaimAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimAt::Path(path) => f.write_str(path),
            ClaimAt::Node(i, key) => write!(f, "Machines[{i}].{key}.Ip4Address"),
        }
    }
}

/// Node addresses and the control-plane endpoint of a scalable config, in file order.
pub(super) fn scalable_claims(config: &Config) -> Vec<Claim> {
    let mut claims = Vec::new();
    if let Some(ip) = config.network.control_plane_endpoint_ip {
        claims.push(Claim {
            at: ClaimAt::Path("Network.ControlPlaneEndpointIp"),
            ip,
        });
    }
    for (i, m) in config.machines.iter().enumerate() {
        for (key, node) in [
            ("LinuxNode", &m.linux_node),
            ("WindowsNode", &m.windows_node),
        ] {
            if let Some(ip) = node.as_ref().and_then(|n| n.ip4_address) {
                claims.push(Claim {
                    at: ClaimAt::Node(i, key),
                    ip,
                });
            }
        }
    }
    claims
}

pub(super) fn check(config: &Config, out: &mut Vec<Finding>) {
    let not_unicast = |out: &mut Vec<Finding>, path: ClaimAt, ip: Ipv4Addr| -> bool {
        match non_unicast_reason(ip) {
            Some(why) => {
                out.push(
                    Finding::error(
                        Code::AddressNotUnicast,
                        path.to_string(),
                        format!("{path} is {ip}, {why}"),
                    )
                    .hint("use a unicast address of your LAN"),
                );
                true
            }
            None => false,
        }
    };

    let size = config.init.service_ip_range_size.unwrap_or(0);
    if size > MAX_SERVICE_RANGE {
        out.push(
            Finding::error(
                Code::ServiceRangeSize,
                "Init.ServiceIPRangeSize",
                format!("Init.ServiceIPRangeSize is {size}; at most {MAX_SERVICE_RANGE}"),
            )
            .hint("use a size from 0 to 127"),
        );
    }
    check_port_forwards(config, out);
    if !config.is_scalable() {
        return;
    }

    let lan = super::checked_lan(config);
    let gateway = config.network.ip4_gateway_address;
    if let Some(gw) = gateway {
        if !not_unicast(out, ClaimAt::Path("Network.Ip4GatewayAddress"), gw) {
            gateway_placement(out, gw, lan);
        }
    }
    let placement = |out: &mut Vec<Finding>, path: ClaimAt, ip: Ipv4Addr| {
        let Some(lan) = lan else { return };
        let problem = if !lan.contains(&ip) {
            Some((
                Code::AddressOutsideSubnet,
                format!("outside the LAN {lan} (Ip4GatewayAddress/Ip4PrefixLength)"),
            ))
        } else if ip == lan.network() {
            Some((
                Code::AddressReserved,
                format!("the network address of {lan}"),
            ))
        } else if ip == lan.broadcast() {
            Some((
                Code::AddressReserved,
                format!("the broadcast address of {lan}"),
            ))
        } else if Some(ip) == gateway {
            Some((Code::AddressReserved, "the gateway address".to_string()))
        } else {
            None
        };
        if let Some((code, why)) = problem {
            out.push(
                Finding::error(code, path.to_string(), format!("{path} is {ip}, {why}"))
                    .hint(format!("choose a free host address inside {lan}")),
            );
        }
    };

    let claims = scalable_claims(config);
    let mut seen: HashMap<Ipv4Addr, ClaimAt> = HashMap::with_capacity(claims.len());
    for c in &claims {
        if not_unicast(out, c.at, c.ip) {
            continue;
        }
        placement(out, c.at, c.ip);
        if let Some(first) = seen.insert(c.ip, c.at) {
            seen.insert(c.ip, first);
            out.push(
                Finding::error(Code::AddressDuplicate, c.at.to_string(), format!("{} is {}, already used by {first}", c.at, c.ip))
                    .hint("every node address, the control-plane endpoint and every service IP must differ"),
            );
        }
    }

    let start_path = "Init.ServiceIPRangeStart";
    match config.init.service_ip_range_start {
        None if size > 0 && !config.invalid_paths.contains(start_path) => out.push(
            Finding::error(
                Code::RequiredField,
                start_path,
                format!("Init.ServiceIPRangeSize is {size} but {start_path} is not set"),
            )
            .hint("give the first LoadBalancer address, or set the size to 0"),
        ),
        // A size the file wrote but that was refused is said once, there (not also "not set").
        Some(_) if size == 0 && config.invalid_paths.contains("Init.ServiceIPRangeSize") => {}
        Some(start) if size == 0 => {
            // Point at the size only where the file wrote one.
            let (path, said) = match config.init.service_ip_range_size {
                Some(_) => ("Init.ServiceIPRangeSize", "is 0"),
                None => (start_path, "is not set"),
            };
            out.push(
                Finding::warning(Code::ServiceRangeSize, path, format!("{start_path} is {start} but Init.ServiceIPRangeSize {said}: no service IPs are reserved"))
                    .hint("set Init.ServiceIPRangeSize to the number of LoadBalancer IPs"),
            )
        }
        Some(start) if size <= MAX_SERVICE_RANGE => {
            if not_unicast(out, ClaimAt::Path(start_path), start) {
                return;
            }
            let Some(end) = range_end(start, size) else {
                return;
            };
            placement(out, ClaimAt::Path(start_path), start);
            if let Some(lan) = lan {
                if lan.contains(&start) && (!lan.contains(&end) || end == lan.broadcast()) {
                    out.push(
                        Finding::error(
                            Code::ServiceRangeOutsideSubnet,
                            "Init.ServiceIPRangeSize",
                            format!("the service range {start}–{end} ({size} addresses) runs past the last host address of {lan}"),
                        )
                        .hint("lower Init.ServiceIPRangeSize or start the range earlier"),
                    );
                }
            }
            if let Some(gw) = gateway {
                if start < gw && gw <= end {
                    out.push(
                        Finding::error(
                            Code::AddressReserved,
                            start_path,
                            format!("the service range {start}–{end} contains the gateway {gw}"),
                        )
                        .hint("move the range so that it avoids the gateway"),
                    );
                }
            }
            for c in &claims {
                if start <= c.ip && c.ip <= end {
                    out.push(
                        Finding::error(
                            Code::AddressDuplicate,
                            c.at.to_string(),
                            format!("{} is {}, inside the service range {start}–{end}", c.at, c.ip),
                        )
                        .hint("node addresses and the control-plane endpoint must lie outside the service range"),
                    );
                }
            }
        }
        _ => {}
    }
}

/// The gateway is a host of its own LAN: not the network or broadcast address of
/// Ip4GatewayAddress/Ip4PrefixLength (a /31 is refused as too small by rule 3).
fn gateway_placement(out: &mut Vec<Finding>, gw: Ipv4Addr, lan: Option<ipnet::Ipv4Net>) {
    let Some(lan) = lan.filter(|l| l.prefix_len() <= 30) else {
        return;
    };
    let what = if gw == lan.network() {
        "network"
    } else if gw == lan.broadcast() {
        "broadcast"
    } else {
        return;
    };
    let path = "Network.Ip4GatewayAddress";
    out.push(
        Finding::error(
            Code::AddressReserved,
            path,
            format!(
                "{path} is {gw}, the {what} address of {lan} (Ip4GatewayAddress/Ip4PrefixLength), which no router can have"
            ),
        )
        .hint(format!(
            "set {path} to the LAN's router address (the default gateway of the machines on it, often {}), or check Network.Ip4PrefixLength",
            std::net::Ipv4Addr::from(u32::from(lan.network()) + 1)
        )),
    );
}

/// `Edgenet.PortForwards`: single-machine only, one forward per host port, to a node that exists.
fn check_port_forwards(config: &Config, out: &mut Vec<Finding>) {
    let forwards = &config.edgenet.port_forwards;
    if forwards.is_empty() {
        return;
    }
    if config.is_scalable() {
        out.push(
            Finding::warning(Code::IgnoredField, "Edgenet.PortForwards", "Edgenet.PortForwards is ignored: nodes of a ScalableCluster are reached on their LAN addresses")
                .hint("remove Edgenet.PortForwards"),
        );
        return;
    }
    let has_windows = config
        .machines
        .first()
        .is_some_and(|m| m.windows_node.is_some());
    let mut seen = HashMap::new();
    for (i, f) in forwards.iter().enumerate() {
        let path = format!("Edgenet.PortForwards[{i}]");
        if f.node == crate::config::NodeKind::Windows && !has_windows {
            out.push(
                Finding::error(
                    Code::PortForwardInvalid,
                    format!("{path}.Node"),
                    format!("{path}.Node is \"windows\", but the machine has no Windows node"),
                )
                .hint("forward to \"linux\", or add a WindowsNode"),
            );
        }
        if let Some(first) = seen.insert((f.protocol, f.host_port), i) {
            out.push(
                Finding::error(
                    Code::PortForwardInvalid,
                    format!("{path}.HostPort"),
                    format!("{path} forwards {} port {} again (Edgenet.PortForwards[{first}] already does)", f.protocol.as_str(), f.host_port),
                )
                .hint("forward each host port once"),
            );
        }
    }
}
