//! `render powershell`: the Hyper-V / NetNat commands that build the same network on a Windows
//! host, and a script for a Windows node's DNS and proxy.

use edgenet_core::plan::{MacAssignment, NodePlan, Outbound, Plan, SwitchKind};

/// A PowerShell single-quoted string.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub fn script(plan: &Plan) -> String {
    let s = &plan.switch;
    let switch = quote(&s.name);
    let mut out = vec![
        format!(
            "# Written by edgenet render: the network of machine {} on a Windows (Hyper-V) host.",
            plan.machine.name
        ),
        "#Requires -RunAsAdministrator".to_string(),
        "$ErrorActionPreference = 'Stop'".to_string(),
    ];
    match s.kind {
        SwitchKind::Internal => {
            let alias = quote(&format!("vEthernet ({})", s.name));
            out.push(format!("New-VMSwitch -Name {switch} -SwitchType Internal"));
            if let Some(host) = s.host_address {
                out.push(format!(
                    "New-NetIPAddress -InterfaceAlias {alias} -IPAddress {} -PrefixLength {}",
                    host.addr(),
                    host.prefix_len()
                ));
            }
            if let Some(mtu) = s.mtu {
                out.push(format!(
                    "Set-NetIPInterface -InterfaceAlias {alias} -NlMtuBytes {mtu}"
                ));
            }
            if s.outbound == Outbound::Nat {
                out.push(format!(
                    "New-NetNat -Name {} -InternalIPInterfaceAddressPrefix {}",
                    quote(&format!("{}-nat", s.name)),
                    s.subnet.trunc()
                ));
            } else {
                out.push("# Offline (Network.InternetDisabled): no NetNat, nodes reach only the host and each other.".to_string());
            }
        }
        SwitchKind::External => {
            out.push(format!(
                "New-VMSwitch -Name {switch} -NetAdapterName {} -AllowManagementOS $true",
                quote(s.adapter.as_deref().unwrap_or("Ethernet"))
            ));
        }
    }
    for node in &plan.nodes {
        out.push(format!(
            "# Node {} ({}): {} via {}",
            node.name,
            node.kind.as_str(),
            node.address,
            node.gateway
        ));
        out.push(format!(
            "Connect-VMNetworkAdapter -VMName {} -SwitchName {switch}",
            quote(&node.name)
        ));
        if let MacAssignment::Static { address } = node.mac {
            out.push(format!(
                "Set-VMNetworkAdapter -VMName {} -StaticMacAddress {}",
                quote(&node.name),
                quote(&address.to_string().replace(':', ""))
            ));
        }
    }
    out.join("\n") + "\n"
}

/// Inside a Windows node: address, DNS servers and the machine-wide proxy environment.
pub fn windows_node_script(node: &NodePlan) -> String {
    let alias = "'Ethernet'";
    let mut out = vec![
        format!("# Written by edgenet render: network settings of Windows node {}.", node.name),
        "$ErrorActionPreference = 'Stop'".to_string(),
        format!(
            "New-NetIPAddress -InterfaceAlias {alias} -IPAddress {} -PrefixLength {} -DefaultGateway {}",
            node.address.addr(),
            node.address.prefix_len(),
            node.gateway
        ),
    ];
    if let Some(mtu) = node.mtu {
        out.push(format!(
            "Set-NetIPInterface -InterfaceAlias {alias} -NlMtuBytes {mtu}"
        ));
    }
    if !node.dns_servers.is_empty() {
        let list: Vec<String> = node
            .dns_servers
            .iter()
            .map(|d| quote(&d.to_string()))
            .collect();
        out.push(format!(
            "Set-DnsClientServerAddress -InterfaceAlias {alias} -ServerAddresses @({})",
            list.join(", ")
        ));
    }
    for (name, value) in crate::node_files::proxy_pairs(node) {
        out.push(format!(
            "[Environment]::SetEnvironmentVariable({}, {}, 'Machine')",
            quote(name),
            quote(&value)
        ));
    }
    out.join("\n") + "\n"
}
