//! The config of the deployment recorded in the state directory (`config.json`, written by
//! every deploy beside its records): what `deploy` without `-c` applies again, and what
//! `scale-config` without `-c` builds a joining machine's config on. Either is refused
//! (`no-config`) when the file cannot be the recorded deployment's: missing, damaged, not a
//! deployment config, or another deployment's (see [`identity_differences`]).

use edgenet_core::addressing::lan_subnet;
use edgenet_core::config::{load, Config, Loaded, NodeKind};
use edgenet_core::plan::Plan;
use edgenet_core::validate::Severity;
use serde_json::Value;

use crate::cli::Cli;
use crate::exit::{CliError, Exit};

/// `deploy`'s source name for the recorded config (`source` in its JSON report).
pub const RECORDED: &str = "recorded";

/// The recorded config `config` (of the state; none when nothing is recorded), checked against `plan`,
/// the plan it must be the config of (none: records rebuilt without a plan, so nothing to
/// check it against; then a config that does not load is as good as none). `hint`: the fix a
/// `no-config` refusal names.
pub fn recorded(
    cli: &Cli,
    config: Option<&Value>,
    plan: Option<&Plan>,
    hint: &str,
) -> Result<Option<Loaded>, CliError> {
    let file = cli.state_dir.join(edgenet_deploy::state::CONFIG_FILE);
    let odd = edgenet_deploy::own_files::odd(&file);
    let why = match (odd, config.map(loaded_config), plan) {
        // Something else in its place (read as missing): no deploy could record a config there.
        (Some(what), _, _) => format!("is {what}, not a file edgenet wrote: move it away"),
        (None, None, None) => return Ok(None),
        (None, None, Some(_)) => "is missing or damaged".to_string(),
        (None, Some(Ok(loaded)), Some(plan)) => match identity_differences(&loaded.config, plan) {
            differences if differences.is_empty() => return Ok(Some(loaded)),
            differences => format!("is not its config: {}", differences.join("; ")),
        },
        (None, Some(Err(why)), Some(_)) => format!("is not its config: {why}"),
        (None, Some(loaded), None) => return Ok(loaded.ok()),
    };
    // The config cannot be read as the deployment's: README's exit 2 (nothing was changed).
    Err(CliError::new(
        Exit::Unreadable,
        "no-config",
        format!(
            "the deployment in {} has no usable config: {} {why}",
            cli.state_dir.display(),
            file.display()
        ),
    )
    .hint(hint))
}

/// `config` (valid JSON in the state directory) as a deployment config, or why it is none:
/// what loading finds wrong in it (not a config, wrong types). The checks against a host are
/// for the machines, not for this question.
pub(crate) fn loaded_config(config: &Value) -> Result<Loaded, String> {
    let loaded = load(config.to_string().as_bytes()).map_err(|e| e.to_string())?;
    match loaded
        .findings
        .iter()
        .find(|f| f.severity == Severity::Error)
    {
        Some(f) => Err(f.message.clone()),
        None => Ok(loaded),
    }
}

/// Why `config` cannot be the config `plan` was deployed from: it is no deployment config, or
/// another deployment's (see [`identity_differences`]). `None` when it can.
#[cfg(test)]
fn not_its_config(config: &Value, plan: &Plan) -> Option<String> {
    match loaded_config(config) {
        Err(why) => Some(why),
        Ok(loaded) => {
            let differences = identity_differences(&loaded.config, plan);
            (!differences.is_empty()).then(|| differences.join("; "))
        }
    }
}

/// What in `config` differs from what identifies the deployment `plan` was made from, each
/// naming the config's field and the deployment's value; empty when `config` can be its config.
/// A deployment is its deployment type and, in a scalable cluster (every value written in its
/// config), the cluster — its control-plane endpoint and LAN — and this machine in it: the
/// entry at the plan's machine index, with the plan's node addresses. (A single machine's
/// switch subnet and node addresses may be chosen by deploy: only its type is compared.)
fn identity_differences(config: &Config, plan: &Plan) -> Vec<String> {
    let (have, want) = (config.deployment_type, plan.deployment_type);
    if have != want {
        return vec![format!(
            "it is a {have:?} config, the deployment a {want:?}"
        )];
    }
    if !config.is_scalable() {
        return Vec::new();
    }
    let mut differences = Vec::new();
    let endpoint = plan.control_plane_endpoint;
    match config.network.control_plane_endpoint_ip {
        Some(ip) if ip == endpoint => {}
        Some(ip) => differences.push(format!(
            "Network.ControlPlaneEndpointIp is {ip}, the deployment's control-plane endpoint {endpoint} (another cluster's config?)"
        )),
        None => differences.push(format!(
            "Network.ControlPlaneEndpointIp is missing, the deployment's control-plane endpoint is {endpoint}"
        )),
    }
    let lan = (plan.switch.gateway, plan.switch.subnet);
    match (config.network.ip4_gateway_address, lan_subnet(config)) {
        (Some(gw), Some(subnet)) if (gw, subnet) == lan => {}
        (Some(gw), subnet) => differences.push(format!(
            "Network.Ip4GatewayAddress and Ip4PrefixLength give the LAN {} via {gw}, the deployment's is {} via {}",
            subnet.map_or("(none)".to_string(), |s| s.to_string()),
            lan.1,
            lan.0
        )),
        (None, _) => differences.push(format!(
            "Network.Ip4GatewayAddress is missing, the deployment's LAN is {} via {}",
            lan.1, lan.0
        )),
    }
    let index = plan.machine.index;
    let Some(machine) = config.machines.get(index) else {
        differences.push(format!(
            "it has {} machine(s) in Machines, the deployment is Machines[{index}]",
            config.machines.len()
        ));
        return differences;
    };
    for (kind, node, field) in [
        (NodeKind::Linux, &machine.linux_node, "LinuxNode"),
        (NodeKind::Windows, &machine.windows_node, "WindowsNode"),
    ] {
        let deployed = plan
            .nodes
            .iter()
            .find(|n| n.kind == kind)
            .map(|n| n.address.addr());
        let configured = node.as_ref().map(|n| n.ip4_address);
        let path = format!("Machines[{index}].{field}");
        match (configured, deployed) {
            (Some(Some(ip)), Some(want)) if ip == want => {}
            (None, None) => {}
            (Some(Some(ip)), Some(want)) => differences.push(format!(
                "{path}.Ip4Address is {ip}, the deployment's {} node {want}",
                kind_word(kind)
            )),
            (Some(None), Some(want)) => differences.push(format!(
                "{path}.Ip4Address is missing, the deployment's {} node is {want}",
                kind_word(kind)
            )),
            (None, Some(want)) => differences.push(format!(
                "{path} is missing, the deployment has a {} node at {want}",
                kind_word(kind)
            )),
            (Some(_), None) => differences.push(format!(
                "{path} is there, the deployment has no {} node",
                kind_word(kind)
            )),
        }
    }
    differences
}

fn kind_word(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Linux => "Linux",
        NodeKind::Windows => "Windows",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgenet_core::validate::Context;
    use serde_json::json;

    fn cluster() -> Value {
        json!({
            "DeploymentType": "ScalableCluster",
            "Network": {"ControlPlaneEndpointIp": "198.18.0.100", "Ip4GatewayAddress": "198.18.0.1", "Ip4PrefixLength": 24},
            "Machines": [
                {"NetworkConnection": {"AdapterName": "eth0"}, "LinuxNode": {"Ip4Address": "198.18.0.101", "ControlPlane": true}},
                {"NetworkConnection": {"AdapterName": "eth0"}, "LinuxNode": {"Ip4Address": "198.18.0.102"}, "WindowsNode": {"Ip4Address": "198.18.0.112"}},
            ],
        })
    }

    /// The plan of machine `index` of `config`, as deploy records it.
    fn plan_of(config: &Value, index: usize) -> Plan {
        let loaded = load(config.to_string().as_bytes()).unwrap();
        let mut ctx = Context::offline("test", "m");
        ctx.machine = Some(index);
        edgenet_core::plan::build(&loaded.config, &ctx).unwrap()
    }

    fn differences(config: &Value, plan: &Plan) -> Vec<String> {
        identity_differences(&load(config.to_string().as_bytes()).unwrap().config, plan)
    }

    #[test]
    fn the_clusters_own_config_is_its_config_on_every_machine_even_grown() {
        let own = cluster();
        for index in [0, 1] {
            assert_eq!(
                differences(&own, &plan_of(&own, index)),
                Vec::<String>::new()
            );
        }
        let mut grown = own.clone();
        grown["Machines"]
            .as_array_mut()
            .unwrap()
            .push(json!({"LinuxNode": {"Ip4Address": "198.18.0.103"}}));
        grown["Init"] = json!({"ServiceIPRangeStart": "198.18.0.200", "ServiceIPRangeSize": 5});
        assert!(differences(&grown, &plan_of(&own, 1)).is_empty());
    }

    #[test]
    fn another_clusters_config_of_the_same_type_says_what_differs() {
        let plan = plan_of(&cluster(), 1);
        let mut other = cluster();
        other["Network"]["ControlPlaneEndpointIp"] = "10.1.0.100".into();
        other["Network"]["Ip4GatewayAddress"] = "10.1.0.1".into();
        other["Machines"][1]["LinuxNode"]["Ip4Address"] = "10.1.0.102".into();
        other["Machines"][1]
            .as_object_mut()
            .unwrap()
            .remove("WindowsNode");
        assert_eq!(
            differences(&other, &plan),
            [
                "Network.ControlPlaneEndpointIp is 10.1.0.100, the deployment's control-plane endpoint 198.18.0.100 (another cluster's config?)",
                "Network.Ip4GatewayAddress and Ip4PrefixLength give the LAN 10.1.0.0/24 via 10.1.0.1, the deployment's is 198.18.0.0/24 via 198.18.0.1",
                "Machines[1].LinuxNode.Ip4Address is 10.1.0.102, the deployment's Linux node 198.18.0.102",
                "Machines[1].WindowsNode is missing, the deployment has a Windows node at 198.18.0.112",
            ]
        );
        // A config of one machine only: this one (index 1) is not in it.
        let mut short = cluster();
        short["Machines"].as_array_mut().unwrap().truncate(1);
        assert_eq!(
            differences(&short, &plan),
            ["it has 1 machine(s) in Machines, the deployment is Machines[1]"]
        );
    }

    #[test]
    fn a_bare_deployment_type_is_not_the_clusters_config() {
        let plan = plan_of(&cluster(), 0);
        let bare = json!({"DeploymentType": "ScalableCluster"});
        let said = differences(&bare, &plan);
        assert!(
            said[0].starts_with("Network.ControlPlaneEndpointIp is missing"),
            "{said:?}"
        );
        assert!(not_its_config(&bare, &plan).is_some());
        assert!(not_its_config(&cluster(), &plan).is_none());
    }
}
