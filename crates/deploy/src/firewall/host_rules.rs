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

use edgenet_core::host_firewall::{
    fix_subnet, forward_drops, plan_traffic, switch_flows, FirewallTool, ForwardDrop, HostFirewall,
};
use edgenet_core::plan::Plan;
use edgenet_core::validate::OWN_TABLE_PREFIX;
use serde_json::Value;

use crate::state::DeploymentId;

pub use edgenet_core::host_firewall::{aimed_at_switch, foreign_above_own, DOCKER_USER};

/// The packets of `plan`'s switch that a firewall on this host certainly drops, as the host
/// is now (reads the ruleset of the calling thread's namespace). Drops that depend on a rule
/// edgenet cannot evaluate are `check`'s warnings, not drift.
pub fn live_drops(plan: &Plan) -> Vec<ForwardDrop> {
    let fw = edgenet_host::facts::host_firewall();
    drops_in(&fw, plan)
        .into_iter()
        .filter(|d| d.certain)
        .collect()
}

pub fn drops_in(fw: &HostFirewall, plan: &Plan) -> Vec<ForwardDrop> {
    let Some(ruleset) = &fw.ruleset else {
        return Vec::new();
    };
    let flows = switch_flows(&plan_traffic(plan, fw));
    forward_drops(ruleset, &flows, OWN_TABLE_PREFIX)
}

/// Whether Docker is installed (its daemon binary or unit), whether or not it runs: its
/// `DOCKER-USER` chain is prepared then, so a Docker that starts after edgenet (at boot)
/// finds edgenet's accepts already in place (Docker keeps the chain's rules).
/// `EDGENET_DOCKER_PATHS` (colon-separated) replaces the list of places looked at (tests,
/// unusual installs).
pub fn docker_installed() -> bool {
    let custom = std::env::var("EDGENET_DOCKER_PATHS").ok();
    let paths: Vec<&str> = match &custom {
        Some(list) => list.split(':').filter(|p| !p.is_empty()).collect(),
        None => vec![
            "/usr/bin/dockerd",
            "/usr/sbin/dockerd",
            "/usr/local/bin/dockerd",
            "/lib/systemd/system/docker.service",
            "/usr/lib/systemd/system/docker.service",
            "/etc/systemd/system/docker.service",
        ],
    };
    paths.iter().any(|p| std::path::Path::new(p).exists())
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

/// The rules edgenet keeps in `DOCKER-USER`, accepting only what the switch needs so Docker's
/// policy drop no longer applies to it, and nothing else (a LAN peer routing Docker's subnets
/// through the host must still meet Docker's filter):
///
/// - NAT switch: the switch subnet's own traffic, `-i sw -s <subnet>` and `-o sw -d <subnet>`.
///   edgenet's own table still lets only replies and port forwards onto the switch.
/// - External (or offline) switch: frames bridged within the switch, in and out on it
///   (`-i sw -o sw`); the LAN routed through the host to `docker0` is not matched.
pub fn docker_rules(plan: &Plan, id: &DeploymentId) -> Vec<Vec<String>> {
    let mark = crate::names::alias(id);
    let bridge = plan.switch.name.as_str();
    let matches: Vec<Vec<String>> = match fix_subnet(plan) {
        Some(subnet) => vec![
            vec!["-i".into(), bridge.into(), "-s".into(), subnet.clone()],
            vec!["-o".into(), bridge.into(), "-d".into(), subnet],
        ],
        None => vec![vec!["-i".into(), bridge.into(), "-o".into(), bridge.into()]],
    };
    matches
        .into_iter()
        .map(|mut rule| {
            rule.extend(
                ["-m", "comment", "--comment", mark.as_str(), "-j", "ACCEPT"]
                    .iter()
                    .map(|s| s.to_string()),
            );
            rule
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

/// As [`foreign_above_own`], on the live `DOCKER-USER` chain; `None` also when it cannot be
/// read (the message then stays the general one).
pub fn live_foreign_above_own(mark: Option<&str>, bridge: &str) -> Option<(usize, String)> {
    let lines = edgenet_host::iptables::list_rules(DOCKER_USER).ok()??;
    foreign_above_own(&lines, mark, bridge)
}

/// Puts edgenet's own `rules` back at the top of `DOCKER-USER`, above a rule inserted after
/// them (they are deleted and inserted again, in deploy's order); the other rules are left
/// as they are.
pub fn move_own_to_top(rules: &[Vec<String>]) -> Result<(), edgenet_host::HostError> {
    for rule in rules {
        let args: Vec<&str> = rule.iter().map(String::as_str).collect();
        edgenet_host::iptables::delete_all(DOCKER_USER, &args)?;
    }
    for rule in rules {
        let args: Vec<&str> = rule.iter().map(String::as_str).collect();
        edgenet_host::iptables::insert(DOCKER_USER, &args)?;
    }
    Ok(())
}

/// One line for messages: what drops and the fix, or for Docker what deploy does.
pub fn describe(drop: &ForwardDrop, plan: &Plan) -> String {
    let bridge = &plan.switch.name;
    let docker_forward =
        drop.tool == FirewallTool::Docker && drop.hook == "forward" && drop.family != "bridge";
    if docker_forward && drop.reason.ends_with(&format!("(chain {DOCKER_USER})")) {
        if let Some((pos, rule)) = live_foreign_above_own(None, bridge) {
            return format!(
                "host firewall: {drop}; {}",
                edgenet_core::host_firewall::docker_user_below_words(pos, &rule, bridge)
            );
        }
    }
    match drop.tool {
        FirewallTool::Docker if docker_forward => format!(
            "host firewall: {drop}; run `edgenet deploy`, which accepts {bridge} in {DOCKER_USER}"
        ),
        _ => format!(
            "host firewall: {drop}; fix: {}",
            drop.fix(bridge, fix_subnet(plan).as_deref())
        ),
    }
}

#[cfg(test)]
mod order_tests {
    use super::foreign_above_own;

    fn lines(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    const OURS: &str =
        "-A DOCKER-USER -s 192.168.0.0/24 -i sw -m comment --comment \"edgenet:abc\" -j ACCEPT";
    const OTHER: &str =
        "-A DOCKER-USER -s 10.1.0.0/24 -i br9 -m comment --comment \"edgenet:def\" -j ACCEPT";
    const USER: &str = "-A DOCKER-USER ! -s 203.0.113.0/24 -i up0 -j DROP";

    #[test]
    fn a_rule_above_ours_is_found_with_its_position() {
        let l = lines(&[USER, OURS, "-A DOCKER-USER -j RETURN"]);
        assert_eq!(
            foreign_above_own(&l, Some("edgenet:abc"), "sw"),
            Some((1, USER.to_string()))
        );
        // Without the id: any edgenet rule naming the switch.
        assert_eq!(
            foreign_above_own(&l, None, "sw"),
            Some((1, USER.to_string()))
        );
    }

    #[test]
    fn a_rule_naming_only_other_interfaces_is_not_aimed_at_the_switch() {
        use super::aimed_at_switch;
        assert!(!aimed_at_switch(USER, "sw"));
        assert!(aimed_at_switch("-A DOCKER-USER -j DROP", "sw"));
        assert!(aimed_at_switch("-A DOCKER-USER ! -i up0 -j DROP", "sw"));
        assert!(aimed_at_switch("-A DOCKER-USER -o sw -j DROP", "sw"));
        assert!(aimed_at_switch("-A DOCKER-USER -i s+ -j DROP", "sw"));
        assert!(!aimed_at_switch(
            "-A DOCKER-USER -i up0 -o docker0 -j DROP",
            "sw"
        ));
    }

    #[test]
    fn ours_at_the_top_or_absent_is_none_and_another_deployment_is_foreign() {
        let l = lines(&[OURS, USER, "-A DOCKER-USER -j RETURN"]);
        assert_eq!(foreign_above_own(&l, Some("edgenet:abc"), "sw"), None);
        assert_eq!(
            foreign_above_own(&lines(&[USER]), Some("edgenet:abc"), "sw"),
            None
        );
        let l = lines(&[OTHER, OURS]);
        assert_eq!(
            foreign_above_own(&l, Some("edgenet:abc"), "sw"),
            Some((1, OTHER.to_string()))
        );
        assert_eq!(foreign_above_own(&l, None, "br9"), None);
    }
}
