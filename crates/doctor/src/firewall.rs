//! Another firewall on the host that drops forwarded traffic (Docker's `FORWARD` policy DROP,
//! firewalld, ufw, any table with a dropping forward hook), read from `nft -j list ruleset`
//! (iptables-nft rules are there too). Pure: ruleset JSON in, findings out.

use edgenet_core::plan::{Plan, SwitchKind};
use serde_json::Value;

use crate::report::Check;

/// Who owns a dropping forward chain, for the fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Docker,
    Firewalld,
    Ufw,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub owner: Owner,
    /// `policy drop`, or a final rule that drops/rejects everything.
    pub how: String,
}

fn items(ruleset: &Value) -> impl Iterator<Item = &Value> {
    ruleset
        .get("nftables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Forward-hook chains outside edgenet's own tables that drop what they do not accept, and do
/// not accept traffic of `switch` before that.
pub fn forward_blockers(ruleset: &Value, switch: &str) -> Vec<Blocker> {
    let mut out = Vec::new();
    let chains: Vec<&Value> = items(ruleset).filter_map(|i| i.get("chain")).collect();
    let rules: Vec<&Value> = items(ruleset).filter_map(|i| i.get("rule")).collect();
    let s = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    for chain in &chains {
        let (family, table, name) = (s(chain, "family"), s(chain, "table"), s(chain, "name"));
        if table.starts_with("edgenet") || s(chain, "hook") != "forward" {
            continue;
        }
        let in_table: Vec<&&Value> = rules
            .iter()
            .filter(|r| s(r, "family") == family && s(r, "table") == table)
            .collect();
        let drops_all = |r: &&&Value| {
            let expr = r
                .get("expr")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let verdicts = expr
                .iter()
                .filter(|e| e.get("drop").is_some() || e.get("reject").is_some())
                .count();
            let matches = expr.iter().filter(|e| e.get("match").is_some()).count();
            verdicts > 0 && matches == 0
        };
        let how = if s(chain, "policy") == "drop" {
            "policy drop".to_string()
        } else if in_table
            .iter()
            .any(|r| s(r, "chain") == name && drops_all(r))
        {
            "a final rule drops or rejects everything".to_string()
        } else {
            continue;
        };
        // An accept naming the switch anywhere in the table (e.g. in DOCKER-USER) lets it by.
        let accepts_switch = in_table.iter().any(|r| {
            let text = r.get("expr").map(Value::to_string).unwrap_or_default();
            text.contains("\"accept\"") && text.contains(&format!("\"{switch}\""))
        });
        if accepts_switch {
            continue;
        }
        let chain_names: Vec<String> = chains
            .iter()
            .filter(|c| s(c, "table") == table && s(c, "family") == family)
            .map(|c| s(c, "name"))
            .collect();
        let owner = if table == "firewalld" {
            Owner::Firewalld
        } else if chain_names.iter().any(|c| c.starts_with("ufw")) {
            Owner::Ufw
        } else if chain_names
            .iter()
            .any(|c| c == "DOCKER-USER" || c == "DOCKER")
        {
            Owner::Docker
        } else {
            Owner::Other
        };
        out.push(Blocker {
            family,
            table,
            chain: name,
            owner,
            how,
        });
    }
    out
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
    }]
}

/// The exact fix for one blocker: each tool's documented way to let a bridge's traffic through.
pub fn fix(b: &Blocker, switch: &str) -> String {
    match b.owner {
        Owner::Docker => format!(
            "iptables -I DOCKER-USER -i {switch} -j ACCEPT && iptables -I DOCKER-USER -o {switch} -j ACCEPT (Docker keeps DOCKER-USER for rules of your own)"
        ),
        Owner::Firewalld => format!(
            "firewall-cmd --permanent --zone=trusted --add-interface={switch} && firewall-cmd --reload"
        ),
        Owner::Ufw => format!("ufw route allow in on {switch} && ufw route allow out on {switch}"),
        Owner::Other if b.family == "iptables-legacy" => format!(
            "iptables-legacy -I FORWARD -i {switch} -j ACCEPT && iptables-legacy -I FORWARD -o {switch} -j ACCEPT"
        ),
        Owner::Other => format!(
            "nft insert rule {f} {t} {c} iifname \"{switch}\" accept && nft insert rule {f} {t} {c} oifname \"{switch}\" accept",
            f = b.family,
            t = b.table,
            c = b.chain
        ),
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
                Owner::Other => "a firewall",
            };
            format!(
                "{who} ({} {} chain {}: {})",
                b.family, b.table, b.chain, b.how
            )
        })
        .collect();
    let fixes: Vec<String> = blockers.iter().map(|b| fix(b, switch)).collect();
    let detail = format!("{} drops forwarded traffic of {switch}", names.join("; "));
    if routed || bridged {
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
    use serde_json::json;

    fn ruleset(extra_rules: Vec<Value>) -> Value {
        let mut items = vec![
            json!({"table": {"family": "ip", "name": "filter"}}),
            json!({"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}),
            json!({"chain": {"family": "ip", "table": "filter", "name": "DOCKER-USER"}}),
            json!({"chain": {"family": "ip", "table": "edgenet_0a1b2c", "name": "forward", "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}),
        ];
        items.extend(extra_rules.into_iter().map(|r| json!({"rule": r})));
        json!({"nftables": items})
    }

    #[test]
    fn docker_forward_drop_is_named_with_its_fix_and_edgenet_tables_are_ignored() {
        let found = forward_blockers(&ruleset(vec![]), "aksedgesw-int");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].owner, Owner::Docker);
        assert!(fix(&found[0], "aksedgesw-int").contains("DOCKER-USER -i aksedgesw-int"));
    }

    #[test]
    fn an_accept_for_the_switch_lets_it_by() {
        let accept = json!({"family": "ip", "table": "filter", "chain": "DOCKER-USER", "expr": [
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "aksedgesw-int"}},
            {"accept": null}
        ]});
        assert!(forward_blockers(&ruleset(vec![accept]), "aksedgesw-int").is_empty());
    }

    #[test]
    fn legacy_iptables_forward_drop_is_found_unless_the_switch_is_accepted() {
        let save = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\nCOMMIT\n";
        let found = legacy_blockers(save, "aksedgesw-int");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].owner, Owner::Docker);
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
        let rs = json!({"nftables": [
            {"chain": {"family": "inet", "table": "firewalld", "name": "filter_FORWARD", "hook": "forward", "policy": "accept"}},
            {"rule": {"family": "inet", "table": "firewalld", "chain": "filter_FORWARD", "expr": [{"reject": {"type": "icmpx", "expr": "admin-prohibited"}}]}}
        ]});
        let found = forward_blockers(&rs, "br0");
        assert_eq!(found[0].owner, Owner::Firewalld);
        assert!(fix(&found[0], "br0").contains("--zone=trusted --add-interface=br0"));
    }
}
