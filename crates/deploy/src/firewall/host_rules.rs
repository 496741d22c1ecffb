//! Other firewalls on the host (issue 8): Docker's `FORWARD` policy drop, ufw, firewalld or any
//! table whose forward hook drops the switch's packets, which no accept in edgenet's own table
//! can override.
//!
//! - Docker: edgenet inserts two accepts for the switch into `DOCKER-USER` (Docker's documented
//!   place for rules of one's own; Docker keeps it across restarts), marked with the
//!   deployment's comment, recorded in the state, and deleted by `remove`.
//! - ufw, firewalld, anything else: edgenet does not edit another tool's rules; `check` and
//!   `deploy` refuse with the exact command (see [`ForwardDrop::fix`]).
//!
//! `status` reports any drop left as drift.

use edgenet_core::host_firewall::{forward_drops, switch_flows, FirewallTool, ForwardDrop};
use edgenet_core::plan::{Outbound, Plan};
use edgenet_core::validate::OWN_TABLE_PREFIX;
use serde_json::Value;

use crate::state::DeploymentId;

/// Docker's chain for user rules, evaluated first in its `FORWARD` chain.
pub const DOCKER_USER: &str = "DOCKER-USER";

/// The forwarded packets of `plan`'s switch that a firewall on this host drops, as the host
/// is now (reads the ruleset of the calling thread's namespace).
pub fn live_drops(plan: &Plan) -> Vec<ForwardDrop> {
    let fw = edgenet_host::facts::host_firewall();
    let Some(ruleset) = fw.ruleset else {
        return Vec::new();
    };
    drops_in(&ruleset, plan, fw.bridge_nf_call_iptables)
}

pub fn drops_in(ruleset: &Value, plan: &Plan, bridged: bool) -> Vec<ForwardDrop> {
    let nat = plan.switch.outbound == Outbound::Nat;
    let flows = switch_flows(&plan.switch.name, nat, bridged);
    forward_drops(ruleset, &flows, OWN_TABLE_PREFIX)
}

/// Whether Docker's `DOCKER-USER` chain exists (table `ip filter`).
pub fn docker_present(ruleset: &Value) -> bool {
    ruleset["nftables"].as_array().is_some_and(|items| {
        items.iter().any(|i| {
            let c = &i["chain"];
            c["family"] == "ip" && c["table"] == "filter" && c["name"] == DOCKER_USER
        })
    })
}

/// The two rules edgenet keeps in `DOCKER-USER`: the switch's packets in either direction are
/// accepted there, so Docker's policy drop no longer applies to them; edgenet's own table
/// still filters them as it always did.
pub fn docker_rules(bridge: &str, id: &DeploymentId) -> Vec<Vec<String>> {
    let mark = crate::names::alias(id);
    ["-i", "-o"]
        .iter()
        .map(|dir| {
            [
                dir,
                bridge,
                "-m",
                "comment",
                "--comment",
                mark.as_str(),
                "-j",
                "ACCEPT",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        })
        .collect()
}

/// How a rule is recorded in the state: `DOCKER-USER -i aksedgesw-int -m comment …`.
pub fn record_name(rule: &[String]) -> String {
    format!("{DOCKER_USER} {}", rule.join(" "))
}

/// The rule spec back from a record name.
pub fn rule_of_record(name: &str) -> Option<(String, Vec<String>)> {
    let (chain, rest) = name.split_once(' ')?;
    Some((
        chain.to_string(),
        rest.split(' ').map(String::from).collect(),
    ))
}

/// One line for messages: what drops and the fix, or for Docker what deploy does.
pub fn describe(drop: &ForwardDrop, bridge: &str) -> String {
    match drop.tool {
        FirewallTool::Docker => format!(
            "host firewall: {drop}; run `edgenet deploy`, which accepts {bridge} in {DOCKER_USER}"
        ),
        _ => format!("host firewall: {drop}; fix: {}", drop.fix(bridge)),
    }
}
