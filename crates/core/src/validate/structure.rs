//! Rule group 1 (the part that needs the whole config): required and forbidden fields per
//! deployment type, machine and node counts, names.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::{planned_machine_name, Code, Context, Finding};
use crate::config::Config;
use crate::context::MAX_MACHINE_NAME;

pub(super) fn check(config: &Config, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let required = |out: &mut Vec<Finding>, path: &str, what: &str| {
        if !super::refused(config, path) {
            out.push(
                Finding::error(
                    Code::RequiredField,
                    path,
                    format!(
                        "{path} is required for a {}",
                        config.deployment_type.as_str()
                    ),
                )
                .hint(what.to_string()),
            );
        }
    };
    let forbidden = |out: &mut Vec<Finding>, path: &str, value: String, why: &str| {
        out.push(
            Finding::error(
                Code::ForbiddenField,
                path,
                format!("{path} is {value}, but a SingleMachineCluster {why}"),
            )
            .hint(format!("remove {path}")),
        );
    };
    let ignored = |out: &mut Vec<Finding>, path: &str, why: &str| {
        out.push(
            Finding::warning(
                Code::IgnoredField,
                path,
                format!("{path} is ignored: {why}"),
            )
            .hint(format!("remove {path}")),
        );
    };

    let n = &config.network;
    if config.is_scalable() {
        if n.control_plane_endpoint_ip.is_none() {
            required(out, "Network.ControlPlaneEndpointIp", "give a free LAN address for the Kubernetes API server, free for the cluster's life");
        }
        if n.ip4_gateway_address.is_none() {
            required(
                out,
                "Network.Ip4GatewayAddress",
                "give the LAN's default gateway, e.g. \"192.168.1.1\"",
            );
        }
        if n.ip4_address_prefix.is_some() {
            ignored(
                out,
                "Network.Ip4AddressPrefix",
                "a ScalableCluster's subnet is Ip4GatewayAddress/Ip4PrefixLength",
            );
        }
        if config.machines_empty {
            // AKS Edge Essentials reads this machine's adapter and node addresses from
            // Machines[]: a scalable deployment without a machine has nothing to deploy.
            out.push(
                Finding::error(
                    Code::MachineCount,
                    "Machines",
                    "Machines is [] (no machine), but a ScalableCluster needs at least one: the machine this config deploys, with its adapter and node addresses",
                )
                .hint("list the machines, e.g. [{\"NetworkConnection\": {\"AdapterName\": \"eth0\"}, \"LinuxNode\": {\"Ip4Address\": \"192.168.1.171\"}}]"),
            );
        } else if config.machines_implied {
            required(out, "Machines", "list the machines, each with NetworkConnection.AdapterName and a node with Ip4Address");
        }
        for (i, m) in config.machines.iter().enumerate() {
            if m.adapter_name.is_none() && !config.machines_implied {
                required(
                    out,
                    &format!("Machines[{i}].NetworkConnection.AdapterName"),
                    "name the machine's wired network adapter, e.g. \"eth0\"",
                );
            }
            for (key, node) in [
                ("LinuxNode", &m.linux_node),
                ("WindowsNode", &m.windows_node),
            ] {
                if let Some(node) = node {
                    if node.ip4_address.is_none() && !config.machines_implied {
                        required(
                            out,
                            &format!("Machines[{i}].{key}.Ip4Address"),
                            "give the node a free static LAN address",
                        );
                    }
                }
            }
        }
    } else {
        if config.machines_empty {
            out.push(
                Finding::error(
                    Code::MachineCount,
                    "Machines",
                    "Machines is [] (no machine), but a SingleMachineCluster has exactly one",
                )
                .hint("remove Machines (one machine with a Linux node is the default) or list the one machine, e.g. [{\"LinuxNode\": {}}]"),
            );
        }
        if config.machines.len() > 1 {
            out.push(
                Finding::error(
                    Code::MachineCount,
                    "Machines",
                    format!(
                        "a SingleMachineCluster has exactly one machine; Machines lists {}",
                        config.machines.len()
                    ),
                )
                .hint("set DeploymentType to \"ScalableCluster\" for several machines"),
            );
        }
        if let Some(ip) = n.control_plane_endpoint_ip {
            forbidden(
                out,
                "Network.ControlPlaneEndpointIp",
                format!("{ip:?}"),
                "uses the Linux node's address (.2) as its endpoint",
            );
        }
        if let Some(ip) = n.ip4_gateway_address {
            forbidden(
                out,
                "Network.Ip4GatewayAddress",
                format!("{ip:?}"),
                "uses the host (.1) as the nodes' gateway",
            );
        }
        if let Some(ip) = config.init.service_ip_range_start {
            forbidden(
                out,
                "Init.ServiceIPRangeStart",
                format!("{ip:?}"),
                "places its service IPs at .4 onward automatically",
            );
        }
        if n.ip4_prefix_length.is_some() {
            ignored(
                out,
                "Network.Ip4PrefixLength",
                "a SingleMachineCluster's subnet is Network.Ip4AddressPrefix",
            );
        }
        for (i, m) in config.machines.iter().enumerate() {
            if m.adapter_name.is_some() {
                ignored(
                    out,
                    &format!("Machines[{i}].NetworkConnection.AdapterName"),
                    "a SingleMachineCluster uses an internal switch",
                );
            }
            for (key, node) in [
                ("LinuxNode", &m.linux_node),
                ("WindowsNode", &m.windows_node),
            ] {
                if let Some(ip) = node.as_ref().and_then(|n| n.ip4_address) {
                    forbidden(
                        out,
                        &format!("Machines[{i}].{key}.Ip4Address"),
                        format!("{ip:?}"),
                        "assigns node addresses automatically (.2 Linux, .3 Windows)",
                    );
                }
            }
            if m.linux_node.is_none()
                && !super::refused(config, &format!("Machines[{i}].LinuxNode"))
            {
                out.push(
                    Finding::error(
                        Code::NodeMissing,
                        format!("Machines[{i}].LinuxNode"),
                        "a SingleMachineCluster must have a Linux node",
                    )
                    .hint("add \"LinuxNode\": {} to the machine (in the 2022 preview form: DeployOptions.NodeType \"Linux\" or \"LinuxAndWindows\")"),
                );
            }
        }
    }

    for (i, m) in config.machines.iter().enumerate() {
        // A node the loader refused (written as text by ConvertTo-Json, say) is not missing.
        let node_refused = || {
            ["LinuxNode", "WindowsNode"]
                .iter()
                .any(|key| super::refused(config, &format!("Machines[{i}].{key}")))
        };
        if m.linux_node.is_none()
            && m.windows_node.is_none()
            && config.is_scalable()
            && !node_refused()
        {
            out.push(
                Finding::error(
                    Code::NodeMissing,
                    format!("Machines[{i}]"),
                    format!("Machines[{i}] has no node"),
                )
                .hint("add a LinuxNode or a WindowsNode"),
            );
        }
        if m.windows_node.as_ref().and_then(|w| w.control_plane) == Some(true) {
            out.push(
                Finding::error(
                    Code::WindowsControlPlane,
                    format!("Machines[{i}].WindowsNode.ControlPlane"),
                    format!("Machines[{i}].WindowsNode.ControlPlane is true; only Linux nodes run the control plane"),
                )
                .hint("remove ControlPlane from the Windows node"),
            );
        }
    }

    check_names(config, ctx, out);
}

fn check_names(config: &Config, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let mut check_one = |path: &dyn Fn() -> String, name: &str| {
        if let Some(problem) = machine_name_problem(name) {
            let path = path();
            out.push(
                Finding::error(Code::InvalidName, &path, format!("{path} is {}: {problem}", super::excerpt(name)))
                    .hint("use lower-case letters, digits and '-', e.g. \"edge-01\" (nodes are named <machine>-ledge)"),
            );
        }
    };
    if let Some(name) = &config.edgenet.machine_name {
        check_one(&|| "Edgenet.MachineName".into(), name);
    }
    for (i, m) in config.machines.iter().enumerate() {
        if let Some(name) = &m.machine_name {
            check_one(&|| format!("Machines[{i}].MachineName"), name);
        }
    }
    machine_name_shortened(config, ctx, out);
    if config.machines.len() > 1 {
        let mut seen: HashMap<String, usize> = HashMap::with_capacity(config.machines.len());
        for i in 0..config.machines.len() {
            let name = planned_machine_name(config, i, ctx);
            let first = match seen.entry(name) {
                Entry::Vacant(v) => {
                    v.insert(i);
                    None
                }
                Entry::Occupied(o) => Some((*o.get(), o.key().clone())),
            };
            if let Some((first, name)) = first {
                // Point at a name the file wrote (one of the two is, or the host gave both).
                let named = |j: usize| config.machines[j].machine_name.is_some();
                let path = if named(i) {
                    format!("Machines[{i}].MachineName")
                } else if named(first) {
                    format!("Machines[{first}].MachineName")
                } else {
                    format!("Machines[{i}]")
                };
                out.push(
                    Finding::error(
                        Code::InvalidName,
                        path,
                        format!("Machines[{i}] and Machines[{first}] are both named {name:?}, so their nodes would share names"),
                    )
                    .hint("give every machine its own MachineName"),
                );
            }
        }
    }
}

/// This machine is named after the host name, which is longer than a machine name may be:
/// say what it became and how to choose another, rather than shortening it without a word.
fn machine_name_shortened(config: &Config, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let Some(i) = ctx.machine.or((config.machines.len() == 1).then_some(0)) else {
        return;
    };
    let written = config
        .machines
        .get(i)
        .is_some_and(|m| m.machine_name.is_some())
        || config.edgenet.machine_name.is_some()
        || ctx.machine_name.is_some();
    if written {
        return;
    }
    let Some(short) = crate::context::hostname_shortened(&ctx.hostname) else {
        return;
    };
    out.push(
        Finding::notice(
            Code::MachineNameShortened,
            "Edgenet.MachineName",
            format!(
                "the host name {:?} is longer than a machine name may be ({MAX_MACHINE_NAME} characters, so that the node names <machine>-ledge and <machine>-wedge fit a 63-character host name): the machine is named {short:?}, its nodes {short}-ledge…",
                ctx.hostname
            ),
        )
        .hint("to choose the name, set Edgenet.MachineName (or Machines[N].MachineName) in the config, or give --machine-name NAME (EDGENET_MACHINE_NAME)"),
    );
}

/// Why `name` cannot name a machine (RFC 1123 label, short enough for `-ledge`), if it cannot.
pub fn machine_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.len() > MAX_MACHINE_NAME {
        return Some(format!(
            "it is {} characters; at most {MAX_MACHINE_NAME}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!("{c:?} is not allowed"));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("it starts or ends with '-'".into());
    }
    None
}
