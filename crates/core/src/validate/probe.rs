//! Rule group 12: the on-link address-free probe (SPEC §3.2). The core decides what to probe
//! and judges the answers; the host layer sends the ARP probes.

use std::net::Ipv4Addr;

use super::{is_control_plane, Code, Context, Finding, ProbeView};
use crate::addressing::range_end;
use crate::config::Config;

/// An address this machine is about to claim, and the config path that asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    pub address: Ipv4Addr,
    pub path: String,
}

/// What `machine` probes: its own node addresses, and — only when it creates the cluster (the
/// first control-plane machine of a config without `Join`) — the control-plane endpoint and the
/// service range. A joining machine must not probe those: the running cluster answers for them.
pub fn probe_targets(config: &Config, machine: usize) -> Vec<ProbeTarget> {
    let mut out = Vec::new();
    let Some(m) = config.machines.get(machine) else {
        return out;
    };
    if !config.is_scalable() {
        return out;
    }
    for (key, node) in [
        ("LinuxNode", &m.linux_node),
        ("WindowsNode", &m.windows_node),
    ] {
        if let Some(ip) = node.as_ref().and_then(|n| n.ip4_address) {
            out.push(ProbeTarget {
                address: ip,
                path: format!("Machines[{machine}].{key}.Ip4Address"),
            });
        }
    }
    let first_control_plane =
        (0..config.machines.len()).find(|&i| is_control_plane(config, i, true));
    if !config.join && first_control_plane == Some(machine) {
        if let Some(ip) = config.network.control_plane_endpoint_ip {
            out.push(ProbeTarget {
                address: ip,
                path: "Network.ControlPlaneEndpointIp".into(),
            });
        }
        let size = config
            .init
            .service_ip_range_size
            .unwrap_or(0)
            .min(super::addresses::MAX_SERVICE_RANGE);
        if let (Some(start), true) = (config.init.service_ip_range_start, size > 0) {
            if let Some(end) = range_end(start, size) {
                for ip in u32::from(start)..=u32::from(end) {
                    out.push(ProbeTarget {
                        address: Ipv4Addr::from(ip),
                        path: "Init.ServiceIPRangeStart".into(),
                    });
                }
            }
        }
    }
    out
}

/// The gateway the probe asks for too (who-has, in the same round, at no extra time): on the
/// config's LAN, a gateway that does not answer means the adapter is not on that LAN (or the
/// gateway is down). `None` when this host holds the address itself (it cannot answer its own
/// probe on the wire) or the config has no gateway.
pub fn gateway_probe_target(
    config: &Config,
    facts: &crate::host_facts::HostFacts,
) -> Option<Ipv4Addr> {
    if !config.is_scalable() {
        return None;
    }
    let gw = config.network.ip4_gateway_address?;
    // Not a host of its LAN (refused by rule 4): nothing could answer.
    let reserved = crate::addressing::lan_subnet(config).is_some_and(|lan| {
        lan.prefix_len() <= 30 && (gw == lan.network() || gw == lan.broadcast())
    });
    if reserved
        || super::addresses::non_unicast_reason(gw).is_some()
        || facts.addresses.iter().any(|a| a.address.addr() == gw)
    {
        return None;
    }
    Some(gw)
}

pub(super) fn check(config: &Config, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    if !config.is_scalable() {
        return;
    }
    // A probe that did not run concerns the network, not a key the file may not have written.
    let path = "Network";
    if config.network.skip_address_free_check {
        out.push(Finding::notice(
            Code::ProbeNotRun,
            "Network.SkipAddressFreeCheck",
            "the address-free probe (rule 12) was skipped: Network.SkipAddressFreeCheck is true",
        ));
        return;
    }
    let Some(machine) = ctx.this_machine(config) else {
        out.push(Finding::notice(Code::ProbeNotRun, path, "the address-free probe (rule 12) did not run: no machine of the config was chosen (--machine N)"));
        return;
    };
    // No probe on an adapter refused (missing, down, …): that error says it all.
    if config
        .invalid_paths
        .iter()
        .any(|p| p.ends_with(".NetworkConnection.AdapterName"))
    {
        return;
    }
    match &ctx.probe {
        ProbeView::NotRun(reason) => out.push(Finding::notice(
            Code::ProbeNotRun,
            path,
            format!("the address-free probe (rule 12) did not run: {reason}"),
        )),
        ProbeView::Ran {
            interface,
            answers,
            own_macs,
            gateway,
        } => {
            if let Some(gw) = gateway.filter(|gw| !answers.iter().any(|(ip, _)| ip == gw)) {
                let path = "Network.Ip4GatewayAddress";
                out.push(
                    Finding::warning(
                        Code::GatewaySilent,
                        path,
                        format!("{path} is {gw}, but nothing answered ARP for it on {interface}: the nodes would have no gateway"),
                    )
                    .hint(format!(
                        "check that {interface} is on the LAN of {gw} (cable, VLAN, a site renumbered by DHCP) and that {path} is its router's address"
                    )),
                );
            }
            for target in probe_targets(config, machine) {
                for (ip, mac) in answers
                    .iter()
                    .filter(|(ip, mac)| *ip == target.address && !own_macs.contains(mac))
                {
                    out.push(
                        Finding::error(
                            Code::AddressInUse,
                            &target.path,
                            format!("{} is {ip}, but {mac} already answers for it on {interface}", target.path),
                        )
                        .hint("choose an address nothing on the LAN uses (or set Network.SkipAddressFreeCheck if that device is this cluster's)"),
                    );
                }
            }
        }
    }
}
