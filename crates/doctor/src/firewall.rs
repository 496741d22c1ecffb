//! Another firewall on the host that drops forwarded traffic (Docker's `FORWARD` policy DROP,
//! firewalld, ufw, any table with a dropping forward hook), read from `nft -j list ruleset`
//! (iptables-nft rules are there too). Pure: ruleset JSON in, findings out.

use edgenet_core::host_firewall::{
    fix_subnet, forward_drops, plan_traffic, switch_flows, FirewallTool, HostFirewall,
};
use edgenet_core::plan::{Plan, SwitchKind};

use crate::report::Check;

/// Who owns a dropping forward chain, for the fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Docker,
    Firewalld,
    Ufw,
    /// A chain iptables-nft manages (not Docker's or ufw's).
    Iptables,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub owner: Owner,
    /// What it drops and where (`policy drop`, or the rule).
    pub how: String,
    /// The exact fix, when known from the walk.
    pub fix: Option<String>,
    /// `false`: a rule edgenet cannot evaluate may drop it.
    pub certain: bool,
}

/// The base chains outside edgenet's own tables that drop (or may drop) the switch's traffic:
/// the same walk as `check`, `deploy` and `status` ([`edgenet_core::host_firewall`]).
pub fn forward_blockers(fw: &HostFirewall, plan: &Plan) -> Vec<Blocker> {
    let Some(ruleset) = &fw.ruleset else {
        return Vec::new();
    };
    let flows = switch_flows(&plan_traffic(plan, fw));
    let subnet = fix_subnet(plan);
    forward_drops(ruleset, &flows, "edgenet_")
        .into_iter()
        .map(|d| Blocker {
            owner: match d.tool {
                FirewallTool::Docker => Owner::Docker,
                FirewallTool::Ufw => Owner::Ufw,
                FirewallTool::Firewalld => Owner::Firewalld,
                FirewallTool::Iptables => Owner::Iptables,
                FirewallTool::Other => Owner::Other,
            },
            how: format!(
                "{} {}: {}",
                if d.certain { "drops" } else { "may drop" },
                d.flow,
                d.reason
            ),
            // edgenet's accepts present but below a user's rule: the words status uses.
            fix: Some(
                edgenet_core::host_firewall::docker_user_below(fw, &d, &plan.switch.name)
                    .unwrap_or_else(|| d.fix(&plan.switch.name, subnet.as_deref())),
            ),
            certain: d.certain,
            family: d.family,
            table: d.table,
            chain: d.chain,
        })
        .collect()
}

/// The same judgement over `iptables-legacy-save -t filter` output: a `FORWARD` policy DROP
/// without an accept naming the switch.
pub fn legacy_blockers(save: &str, switch: &str) -> Vec<Blocker> {
    let chains: Vec<&str> = save
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let forward_drops = save.lines().any(|l| l.starts_with(":FORWARD DROP"));
    let accepts_switch = save.lines().any(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        l.starts_with("-A ")
            && words
                .windows(2)
                .any(|w| (w[0] == "-i" || w[0] == "-o") && w[1] == switch)
            && words.windows(2).any(|w| w[0] == "-j" && w[1] == "ACCEPT")
    });
    if !forward_drops || accepts_switch {
        return Vec::new();
    }
    let owner = if chains.iter().any(|c| c.starts_with("ufw")) {
        Owner::Ufw
    } else if chains.iter().any(|c| *c == "DOCKER-USER" || *c == "DOCKER") {
        Owner::Docker
    } else {
        Owner::Other
    };
    vec![Blocker {
        family: "iptables-legacy".to_string(),
        table: "filter".to_string(),
        chain: "FORWARD".to_string(),
        owner,
        how: "policy DROP".to_string(),
        fix: None,
        certain: true,
    }]
}

/// The exact fix for one blocker: each tool's documented way to let the switch's traffic
/// through, and no more (the NAT subnet, or frames bridged within the switch).
pub fn fix(b: &Blocker, switch: &str, subnet: Option<&str>) -> String {
    if let Some(fix) = &b.fix {
        return fix.clone();
    }
    let (i, o) = match subnet {
        Some(s) => (format!("-i {switch} -s {s}"), format!("-o {switch} -d {s}")),
        None => (format!("-i {switch} -o {switch}"), String::new()),
    };
    let both = |cmd: &str| {
        if o.is_empty() {
            format!("{cmd} {i} -j ACCEPT")
        } else {
            format!("{cmd} {i} -j ACCEPT && {cmd} {o} -j ACCEPT")
        }
    };
    match b.owner {
        // Only legacy blockers come without a fix: their rules are iptables-legacy's, which
        // `iptables` (nf_tables on Debian since 10) does not touch.
        Owner::Docker => format!(
            "{} (Docker keeps DOCKER-USER for rules of your own)",
            both("iptables-legacy -I DOCKER-USER")
        ),
        Owner::Firewalld => format!(
            "firewall-cmd --permanent --zone=trusted --add-interface={switch} && firewall-cmd --reload"
        ),
        Owner::Ufw => match subnet {
            Some(s) => format!("ufw route allow in on {switch} from {s} && ufw route allow out on {switch} to {s}"),
            None => format!("ufw route allow in on {switch} out on {switch}"),
        },
        Owner::Iptables | Owner::Other => both("iptables-legacy -I FORWARD"),
    }
}

pub fn check(plan: &Plan, blockers: &[Blocker], bridge_nf: Option<&str>) -> Check {
    let switch = &plan.switch.name;
    if blockers.is_empty() {
        return Check::pass(
            "host",
            "host-firewall",
            "no other firewall drops the switch's forwarded traffic",
        );
    }
    // Routed (NAT) traffic always crosses the forward hook; bridged traffic between nodes only
    // with bridge-nf-call-iptables = 1.
    let routed = plan.switch.kind == SwitchKind::Internal;
    let bridged = bridge_nf == Some("1");
    let names: Vec<String> = blockers
        .iter()
        .map(|b| {
            let who = match b.owner {
                Owner::Docker => "Docker",
                Owner::Firewalld => "firewalld",
                Owner::Ufw => "ufw",
                Owner::Iptables => "iptables",
                Owner::Other => "a firewall",
            };
            format!(
                "{who} ({} {} chain {}: {})",
                b.family, b.table, b.chain, b.how
            )
        })
        .collect();
    let subnet = fix_subnet(plan);
    // One chain dropping several flows has one fix: say it once.
    let mut fixes: Vec<String> = Vec::new();
    for b in blockers {
        let f = fix(b, switch, subnet.as_deref());
        if !fixes.contains(&f) {
            fixes.push(f);
        }
    }
    let detail = format!("{} on switch {switch}", names.join("; "));
    let legacy = blockers.iter().all(|b| b.family == "iptables-legacy");
    if blockers.iter().all(|b| !b.certain) {
        Check::warn("host", "host-firewall", detail).fix(fixes.join("; "))
    } else if !legacy || routed || bridged {
        Check::fail("host", "host-firewall", detail, fixes.join("; "))
    } else {
        Check::warn(
            "host",
            "host-firewall",
            format!(
                "{detail} (only matters for routed traffic or with bridge-nf-call-iptables = 1)"
            ),
        )
        .fix(fixes.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgenet_core::config::load;
    use edgenet_core::plan;
    use edgenet_core::validate::Context;
    use serde_json::{json, Value};

    /// A NAT switch `aksedgesw-int` on 192.168.77.0/24.
    fn nat_plan() -> Plan {
        let config = json!({
            "Network": {"DnsServers": ["192.0.2.53"], "Ip4AddressPrefix": "192.168.77.0/24"},
            "Machines": [{"LinuxNode": {}}],
            "Edgenet": {"MachineName": "edge01"}
        });
        let loaded = load(config.to_string().as_bytes()).unwrap();
        plan::build(&loaded.config, &Context::offline("test", "edge01")).unwrap()
    }

    fn fw(items: Vec<Value>) -> HostFirewall {
        HostFirewall {
            ruleset: Some(json!({ "nftables": items }).into()),
            uplink: Some("up0".into()),
            gateway: Some("198.18.0.1".parse().unwrap()),
            ..Default::default()
        }
    }

    fn forward(table: &str, policy: &str) -> Value {
        json!({"chain": {"family": "ip", "table": table, "name": "FORWARD", "type": "filter", "hook": "forward", "prio": 0, "policy": policy}})
    }

    fn iif_accept(table: &str, chain: &str, name: &str) -> Value {
        json!({"rule": {"family": "ip", "table": table, "chain": chain, "expr": [
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": name}},
            {"accept": null}
        ]}})
    }

    #[test]
    fn docker_forward_drop_is_named_with_its_narrow_fix_and_edgenet_tables_are_ignored() {
        let plan = nat_plan();
        let found = forward_blockers(
            &fw(vec![
                forward("filter", "drop"),
                json!({"chain": {"family": "ip", "table": "filter", "name": "DOCKER-USER"}}),
                forward("edgenet_0a1b2c", "drop"),
            ]),
            &plan,
        );
        assert!(!found.is_empty(), "{found:?}");
        assert!(found
            .iter()
            .all(|b| b.owner == Owner::Docker && b.table == "filter"));
        let fix = fix(&found[0], "aksedgesw-int", Some("192.168.77.0/24"));
        assert!(
            fix.contains("DOCKER-USER -i aksedgesw-int -s 192.168.77.0/24"),
            "{fix}"
        );
    }

    /// The doctor retest (issue 8): `-P FORWARD DROP` with only `-i aksedgesw-int -j ACCEPT`
    /// passed, although the replies to the nodes are dropped.
    #[test]
    fn an_accept_for_one_direction_still_fails_on_the_replies() {
        let plan = nat_plan();
        let half = fw(vec![
            forward("filter", "drop"),
            iif_accept("filter", "FORWARD", "aksedgesw-int"),
        ]);
        let found = forward_blockers(&half, &plan);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].how.contains("replies to the nodes"), "{found:?}");
        let c = check(&plan, &found, Some("0"));
        assert_eq!(c.status, crate::report::Status::Fail, "{c:?}");

        let both = fw(vec![
            forward("filter", "drop"),
            iif_accept("filter", "FORWARD", "aksedgesw-int"),
            json!({"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "expr": [
                {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "aksedgesw-int"}},
                {"accept": null}
            ]}}),
        ]);
        assert_eq!(forward_blockers(&both, &plan), vec![]);
    }

    #[test]
    fn legacy_iptables_forward_drop_is_found_unless_the_switch_is_accepted() {
        let save = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\nCOMMIT\n";
        let found = legacy_blockers(save, "aksedgesw-int");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].owner, Owner::Docker);
        let legacy_fix = fix(&found[0], "aksedgesw-int", None);
        assert!(legacy_fix.contains("-i aksedgesw-int -o aksedgesw-int"));
        // B17b D7: `iptables` is nf_tables on Debian; the fix must go to the legacy rules.
        assert!(
            legacy_fix.starts_with("iptables-legacy -I DOCKER-USER "),
            "{legacy_fix}"
        );
        let fixed = save.replace(
            "COMMIT",
            "-A DOCKER-USER -i aksedgesw-int -j ACCEPT\nCOMMIT",
        );
        assert!(legacy_blockers(&fixed, "aksedgesw-int").is_empty());
        assert!(legacy_blockers(&save.replace(":FORWARD DROP", ":FORWARD ACCEPT"), "x").is_empty());
        assert!(legacy_blockers("", "x").is_empty());
    }

    #[test]
    fn firewalld_final_reject_counts() {
        let plan = nat_plan();
        let found = forward_blockers(
            &fw(vec![
                json!({"chain": {"family": "inet", "table": "firewalld", "name": "filter_FORWARD", "type": "filter", "hook": "forward", "prio": 10, "policy": "accept"}}),
                json!({"rule": {"family": "inet", "table": "firewalld", "chain": "filter_FORWARD", "expr": [{"reject": {"type": "icmpx", "expr": "admin-prohibited"}}]}}),
            ]),
            &plan,
        );
        assert_eq!(found[0].owner, Owner::Firewalld);
        assert!(fix(&found[0], "aksedgesw-int", None)
            .contains("--zone=trusted --add-interface=aksedgesw-int"));
    }

    /// B17b D8: one chain dropping four flows printed the same fix four times in one line.
    #[test]
    fn the_same_fix_is_printed_once() {
        let plan = nat_plan();
        let found = forward_blockers(&fw(vec![forward("t", "drop")]), &plan);
        assert!(found.len() > 1, "{found:?}");
        let c = check(&plan, &found, Some("1"));
        let fix = c.fix.clone().unwrap_or_default();
        assert_eq!(
            fix.matches("nft insert rule ip t FORWARD iifname").count(),
            1,
            "{fix}"
        );
    }
}
