//! `edgenet config new`: a starting config in the shape New-AksEdgeConfig writes.
//!
//! Values the user must supply are written as `<…>` placeholders; the loader reports each one
//! (code `placeholder`) until it is filled in.

use serde_json::{json, Value};

use super::{DeploymentType, Distribution};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeSelection {
    Linux,
    Windows,
    LinuxAndWindows,
}

/// Why a requested combination cannot make a valid new cluster.
pub fn template_problem(nodes: NodeSelection) -> Option<&'static str> {
    (nodes == NodeSelection::Windows).then_some(
        "a new cluster needs a Linux node to run its control plane; use --node-type linux or linux-and-windows",
    )
}

/// Is `s` one of our `<…>` placeholders?
pub fn is_placeholder(s: &str) -> bool {
    let s = s.trim();
    s.len() > 2 && s.starts_with('<') && s.ends_with('>')
}

pub fn new_config(
    deployment: DeploymentType,
    nodes: NodeSelection,
    distribution: Distribution,
) -> Value {
    let plugin = distribution.ranges().network_plugin.as_str();
    let linux = matches!(nodes, NodeSelection::Linux | NodeSelection::LinuxAndWindows);
    let windows = matches!(
        nodes,
        NodeSelection::Windows | NodeSelection::LinuxAndWindows
    );
    let scalable = deployment == DeploymentType::ScalableCluster;

    let mut machine = serde_json::Map::new();
    if scalable {
        machine.insert(
            "NetworkConnection".into(),
            json!({ "AdapterName": "<wired adapter, e.g. eth0>", "Mtu": 0 }),
        );
    } else {
        machine.insert("NetworkConnection".into(), json!({ "Mtu": 0 }));
    }
    if linux {
        let mut node = json!({ "CpuCount": 4, "MemoryInMB": 4096, "DataSizeInGB": 10 });
        if scalable {
            node["ControlPlane"] = json!(true);
            node["Ip4Address"] = json!("<Linux node IP>");
        }
        machine.insert("LinuxNode".into(), node);
    }
    if windows {
        let mut node = json!({ "CpuCount": 2, "MemoryInMB": 4096 });
        if scalable {
            node["Ip4Address"] = json!("<Windows node IP>");
        }
        machine.insert("WindowsNode".into(), node);
    }

    let network = if scalable {
        json!({
            "NetworkPlugin": plugin,
            "ControlPlaneEndpointIp": "<control-plane endpoint IP>",
            "Ip4GatewayAddress": "<LAN gateway IP>",
            "Ip4PrefixLength": 24,
            "DnsServers": [],
            "InternetDisabled": false,
            "SkipDnsCheck": false,
            "SkipAddressFreeCheck": false,
            "Proxy": { "Http": null, "Https": null, "No": null }
        })
    } else {
        json!({
            "NetworkPlugin": plugin,
            "Ip4AddressPrefix": null,
            "DnsServers": [],
            "InternetDisabled": false,
            "SkipDnsCheck": false,
            "Proxy": { "Http": null, "Https": null, "No": null }
        })
    };
    let init = if scalable {
        json!({ "ServiceIPRangeStart": "<first LoadBalancer IP>", "ServiceIPRangeSize": 10 })
    } else {
        json!({ "ServiceIPRangeSize": 10 })
    };
    json!({
        "SchemaVersion": "1.16",
        "Version": "1.0",
        "DeploymentType": deployment.as_str(),
        "Init": init,
        "Network": network,
        "Machines": [Value::Object(machine)],
        "Edgenet": { "Distribution": distribution.as_str(), "NodeRuntime": "netns" }
    })
}
