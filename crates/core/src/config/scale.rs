//! `edgenet scale-config` (like New-AksEdgeScaleConfig): the config of a machine that joins a
//! running scalable cluster, made from the cluster's own config so that the network section is
//! the same, and a config of the whole cluster with the new machine in it, for validation.

use std::net::Ipv4Addr;

use serde_json::{json, Map, Value};

/// The machine to add.
#[derive(Debug, Clone, Default)]
pub struct NewMachine {
    pub linux_ip: Option<Ipv4Addr>,
    pub windows_ip: Option<Ipv4Addr>,
    pub control_plane: bool,
    pub machine_name: Option<String>,
    /// Its adapter; default: the adapter of the machine the config is made on.
    pub adapter: Option<String>,
}

/// The joining machine's config. `cluster` is the cluster's config; `template` the index of
/// the machine whose adapter and MTU the new machine copies.
pub fn scale_config(cluster: &Value, template: usize, new: &NewMachine) -> Result<Value, String> {
    if cluster
        .get("DeploymentType")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
        != Some("scalablecluster")
    {
        return Err(
            "the cluster is not a ScalableCluster: machines join scalable clusters only".into(),
        );
    }
    if new.linux_ip.is_none() && new.windows_ip.is_none() {
        return Err("give the new machine a node: --linux-node-ip and/or --windows-node-ip".into());
    }
    if new.control_plane && new.linux_ip.is_none() {
        return Err("--control-plane needs a Linux node (--linux-node-ip)".into());
    }
    let endpoint = cluster
        .pointer("/Network/ControlPlaneEndpointIp")
        .and_then(Value::as_str)
        .ok_or("the cluster config has no Network.ControlPlaneEndpointIp")?;
    let model = cluster
        .pointer(&format!("/Machines/{template}"))
        .cloned()
        .unwrap_or(Value::Null);
    let mut connection = model
        .get("NetworkConnection")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(adapter) = &new.adapter {
        connection["AdapterName"] = json!(adapter);
    }
    let mut machine = Map::new();
    if let Some(name) = &new.machine_name {
        machine.insert("MachineName".into(), json!(name));
    }
    machine.insert("NetworkConnection".into(), connection);
    if let Some(ip) = new.linux_ip {
        machine.insert(
            "LinuxNode".into(),
            json!({ "ControlPlane": new.control_plane, "Ip4Address": ip.to_string() }),
        );
    }
    if let Some(ip) = new.windows_ip {
        machine.insert(
            "WindowsNode".into(),
            json!({ "Ip4Address": ip.to_string() }),
        );
    }

    let mut out = Map::new();
    for key in [
        "SchemaVersion",
        "Version",
        "DeploymentType",
        "Init",
        "Arc",
        "User",
        "Network",
    ] {
        if let Some(v) = cluster.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    // The keys New-AksEdgeScaleConfig writes; their values come from the running cluster
    // (`New-AksEdgeScaleConfig` on a machine of it fills them). The endpoint the new machine
    // joins is the copied Network.ControlPlaneEndpointIp.
    let _ = endpoint;
    out.insert(
        "Join".into(),
        json!({ "ClusterJoinToken": "", "DiscoveryTokenHash": "", "CertificateKey": "", "ClusterId": "" }),
    );
    out.insert("Machines".into(), json!([Value::Object(machine)]));
    if let Some(Value::Object(ext)) = cluster.get("Edgenet") {
        let mut ext = ext.clone();
        ext.remove("MachineName");
        out.insert("Edgenet".into(), Value::Object(ext));
    }
    Ok(Value::Object(out))
}

/// The cluster's config with the new machine added, to validate the whole cluster at once
/// (no address twice). It carries a `Join` section, since the control plane it adds to runs
/// already; unnamed machines get distinct names so that only real clashes are reported.
pub fn cluster_with(cluster: &Value, scale: &Value) -> Value {
    let mut all = cluster.clone();
    let mut machines: Vec<Value> = cluster
        .get("Machines")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    machines.extend(
        scale
            .get("Machines")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    );
    for (i, m) in machines.iter_mut().enumerate() {
        if let Value::Object(map) = m {
            map.entry("MachineName")
                .or_insert_with(|| json!(format!("machine-{i}")));
        }
    }
    all["Machines"] = Value::Array(machines);
    all["Join"] = json!({});
    if let Some(Value::Object(ext)) = all.get_mut("Edgenet") {
        ext.remove("MachineName");
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Value {
        json!({
            "SchemaVersion": "1.14", "DeploymentType": "ScalableCluster",
            "Init": {"ServiceIPRangeStart": "192.168.1.151", "ServiceIPRangeSize": 10},
            "Network": {"ControlPlaneEndpointIp": "192.168.1.191", "Ip4GatewayAddress": "192.168.1.1", "Ip4PrefixLength": 24},
            "Machines": [{"NetworkConnection": {"AdapterName": "enp3s0", "Mtu": 0}, "LinuxNode": {"Ip4Address": "192.168.1.171", "ControlPlane": true}}],
            "Edgenet": {"MachineName": "first"}
        })
    }

    #[test]
    fn copies_the_network_and_joins_the_endpoint() {
        let new = NewMachine {
            linux_ip: Some("192.168.1.172".parse().unwrap()),
            ..NewMachine::default()
        };
        let s = scale_config(&cluster(), 0, &new).unwrap();
        assert_eq!(s["Network"], cluster()["Network"]);
        assert_eq!(s["Network"]["ControlPlaneEndpointIp"], "192.168.1.191");
        let mut join: Vec<&String> = s["Join"].as_object().unwrap().keys().collect();
        join.sort();
        assert_eq!(
            join,
            [
                "CertificateKey",
                "ClusterId",
                "ClusterJoinToken",
                "DiscoveryTokenHash"
            ]
        );
        assert_eq!(
            s["Machines"][0]["NetworkConnection"]["AdapterName"],
            "enp3s0"
        );
        assert_eq!(
            s["Machines"][0]["LinuxNode"],
            json!({"ControlPlane": false, "Ip4Address": "192.168.1.172"})
        );
        assert!(s["Edgenet"].get("MachineName").is_none());
        let all = cluster_with(&cluster(), &s);
        assert_eq!(all["Machines"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn refuses_what_cannot_join() {
        let mut single = cluster();
        single["DeploymentType"] = json!("SingleMachineCluster");
        let new = NewMachine {
            linux_ip: Some("192.168.1.172".parse().unwrap()),
            ..NewMachine::default()
        };
        assert!(scale_config(&single, 0, &new).is_err());
        assert!(scale_config(&cluster(), 0, &NewMachine::default()).is_err());
        let windows_cp = NewMachine {
            windows_ip: Some("192.168.1.173".parse().unwrap()),
            control_plane: true,
            ..NewMachine::default()
        };
        assert!(scale_config(&cluster(), 0, &windows_cp).is_err());
    }
}
