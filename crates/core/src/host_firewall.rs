//! Host firewalls that drop edgenet's traffic (issue 8): Docker, ufw, firewalld or any table with
//! a base chain on the forward hook that drops.
//!
//! nftables runs every base chain of a hook, and a drop in any of them is final: an accept in
//! edgenet's own table cannot override Docker's `FORWARD` policy drop. So edgenet reads the
//! whole ruleset (`nft -j list ruleset`, which shows iptables-nft rules too) and walks each
//! forward base chain of the other tables for the packets the switch needs to forward, the way
//! the kernel would: following jumps, gotos and returns, down to a verdict or the policy.
//!
//! The walk is conservative in one direction only: a rule whose match edgenet cannot evaluate
//! (an address set, a mark, an unknown xt match) is taken as not matching, whether it accepts or
//! drops. So a reported drop is one that the listed rules really reach for such a packet unless
//! a rule edgenet cannot read says otherwise; the report names the chain and the fix.
//!
//! Pure: the listing comes in as JSON, the findings go out as data.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the host layer read of the firewall.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFirewall {
    /// `nft -j list ruleset`; `None` when it could not be read (see `problem`).
    pub ruleset: Option<Value>,
    /// `net.bridge.bridge-nf-call-iptables` is 1: bridged IPv4 frames (node to node, node to
    /// LAN on an external switch) pass the `ip`/`inet` forward hook too (Docker turns it on).
    pub bridge_nf_call_iptables: bool,
    pub problem: Option<String>,
}

/// Which tool made the table, for the fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallTool {
    Docker,
    Ufw,
    Firewalld,
    Other,
}

impl FirewallTool {
    pub fn as_str(self) -> &'static str {
        match self {
            FirewallTool::Docker => "Docker",
            FirewallTool::Ufw => "ufw",
            FirewallTool::Firewalld => "firewalld",
            FirewallTool::Other => "another firewall",
        }
    }
}

/// A packet the switch must forward: interfaces by name, and its conntrack state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub what: &'static str,
    pub iif: String,
    pub oif: String,
    /// `new` or `established`.
    pub ct_state: &'static str,
}

/// Stands for "some other interface" (the uplink): matches no name, only `!=`.
pub const OTHER_IF: &str = "\u{0}uplink";

/// The packets an edgenet switch must see forwarded through the host's `ip` forward hook.
/// `nat`: nodes reach out through the host (internal switch); `bridged`: bridge-nf-call-iptables
/// is on, so frames within the switch are seen too.
pub fn switch_flows(bridge: &str, nat: bool, bridged: bool) -> Vec<Flow> {
    let mut flows = Vec::new();
    if bridged {
        flows.push(Flow {
            what: "frames within the switch",
            iif: bridge.into(),
            oif: bridge.into(),
            ct_state: "new",
        });
    }
    if nat {
        flows.push(Flow {
            what: "connections the nodes open to the outside",
            iif: bridge.into(),
            oif: OTHER_IF.into(),
            ct_state: "new",
        });
        flows.push(Flow {
            what: "replies to the nodes",
            iif: OTHER_IF.into(),
            oif: bridge.into(),
            ct_state: "established",
        });
    }
    flows
}

/// A forward base chain of another table that drops one of the switch's packets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForwardDrop {
    pub family: String,
    pub table: String,
    /// The base chain on the forward hook.
    pub chain: String,
    /// Where the packet is dropped: `policy drop`, or the chain and rule that drops it.
    pub reason: String,
    /// Which of the switch's packets.
    pub flow: String,
    pub tool: FirewallTool,
}

impl fmt::Display for ForwardDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} table {} {} chain {} drops {} ({})",
            self.tool.as_str(),
            self.family,
            self.table,
            self.chain,
            self.flow,
            self.reason
        )
    }
}

impl ForwardDrop {
    /// The exact commands that let the switch's traffic through, the way the tool documents.
    pub fn fix(&self, bridge: &str) -> String {
        match self.tool {
            FirewallTool::Docker => format!(
                "iptables -I DOCKER-USER -i {bridge} -j ACCEPT && iptables -I DOCKER-USER -o {bridge} -j ACCEPT (edgenet deploy adds exactly these, marked, and remove takes them out)"
            ),
            FirewallTool::Ufw => format!(
                "ufw route allow in on {bridge} && ufw route allow out on {bridge}"
            ),
            FirewallTool::Firewalld => format!(
                "firewall-cmd --permanent --zone=trusted --add-interface={bridge} && firewall-cmd --reload"
            ),
            FirewallTool::Other => format!(
                "nft insert rule {f} {t} {c} iifname \"{bridge}\" accept && nft insert rule {f} {t} {c} oifname \"{bridge}\" accept (and the same in the file your firewall loads at boot)",
                f = self.family,
                t = self.table,
                c = self.chain
            ),
        }
    }
}

/// Families whose forward hook sees the switch's IPv4 packets.
const IPV4_FAMILIES: [&str; 2] = ["ip", "inet"];

/// Every forward base chain outside edgenet's own tables (names starting with `skip_prefix`)
/// that drops one of `flows`; at most one finding per chain and flow.
pub fn forward_drops(ruleset: &Value, flows: &[Flow], skip_prefix: &str) -> Vec<ForwardDrop> {
    let Some(items) = ruleset.get("nftables").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut chains: HashMap<(String, String, String), &Value> = HashMap::new();
    let mut rules: HashMap<(String, String, String), Vec<&Value>> = HashMap::new();
    let key = |o: &Value, name: &str| {
        (
            o["family"].as_str().unwrap_or("").to_string(),
            o["table"].as_str().unwrap_or("").to_string(),
            o[name].as_str().unwrap_or("").to_string(),
        )
    };
    let mut order = Vec::new();
    for item in items {
        if let Some(c) = item.get("chain") {
            let k = key(c, "name");
            order.push(k.clone());
            chains.insert(k, c);
        } else if let Some(r) = item.get("rule") {
            rules.entry(key(r, "chain")).or_default().push(r);
        }
    }
    let tables_with = |family: &str, table: &str, pred: &dyn Fn(&str) -> bool| {
        chains
            .keys()
            .any(|(f, t, c)| f == family && t == table && pred(c))
    };
    let mut out = Vec::new();
    for k in &order {
        let chain = chains[k];
        let (family, table, name) = k;
        if !IPV4_FAMILIES.contains(&family.as_str())
            || table.starts_with(skip_prefix)
            || chain["hook"].as_str() != Some("forward")
            || chain["type"].as_str() != Some("filter")
        {
            continue;
        }
        let tool = if table == "firewalld" {
            FirewallTool::Firewalld
        } else if tables_with(family, table, &|c| c == "DOCKER-USER") {
            FirewallTool::Docker
        } else if tables_with(family, table, &|c| c.starts_with("ufw-")) {
            FirewallTool::Ufw
        } else {
            FirewallTool::Other
        };
        for flow in flows {
            let walk = Walk {
                family,
                table,
                rules: &rules,
                flow,
            };
            let reason = match walk.chain(name, 0) {
                Verdict::Accept => continue,
                Verdict::Drop(why) => why,
                Verdict::Continue => match chain["policy"].as_str() {
                    Some("drop") => "policy drop".to_string(),
                    _ => continue,
                },
            };
            out.push(ForwardDrop {
                family: family.clone(),
                table: table.clone(),
                chain: name.clone(),
                reason,
                flow: flow.what.to_string(),
                tool,
            });
        }
    }
    out
}

enum Verdict {
    Accept,
    Drop(String),
    /// Fell off the end of the chain, or `return`.
    Continue,
}

struct Walk<'a> {
    family: &'a str,
    table: &'a str,
    rules: &'a HashMap<(String, String, String), Vec<&'a Value>>,
    flow: &'a Flow,
}

/// Chains nest at most this deep (the kernel's limit is 16 jumps).
const MAX_DEPTH: usize = 16;

impl Walk<'_> {
    fn chain(&self, name: &str, depth: usize) -> Verdict {
        if depth > MAX_DEPTH {
            return Verdict::Continue;
        }
        let key = (
            self.family.to_string(),
            self.table.to_string(),
            name.to_string(),
        );
        for rule in self.rules.get(&key).into_iter().flatten() {
            let Some(exprs) = rule["expr"].as_array() else {
                continue;
            };
            for e in exprs {
                let Some((kind, body)) = e.as_object().and_then(|o| o.iter().next()) else {
                    break;
                };
                match kind.as_str() {
                    "match" => {
                        if self.matches(body) != Some(true) {
                            break;
                        }
                    }
                    // Statements that do not decide anything.
                    "counter" | "log" | "limit" | "comment" => {}
                    "xt" if body["name"] == "comment" => {}
                    "accept" => return Verdict::Accept,
                    "drop" | "reject" => {
                        return Verdict::Drop(format!(
                            "rule `{}` in chain {name}",
                            rule_text(exprs)
                        ))
                    }
                    "return" => return Verdict::Continue,
                    "jump" | "goto" => {
                        let target = body["target"].as_str().unwrap_or("");
                        match self.chain(target, depth + 1) {
                            Verdict::Continue if kind == "jump" => {}
                            // goto: a return in the target returns from this chain too.
                            Verdict::Continue => return Verdict::Continue,
                            v => return v,
                        }
                        break;
                    }
                    // Anything else (sets, maps, marks, NAT, unknown xt matches): cannot tell.
                    _ => break,
                }
            }
        }
        Verdict::Continue
    }

    /// `Some(true|false)` for the matches edgenet can evaluate on [`Flow`]; `None` otherwise.
    fn matches(&self, m: &Value) -> Option<bool> {
        let op = m["op"].as_str()?;
        let left = m["left"].as_object()?;
        let (lk, lv) = left.iter().next()?;
        let hit = match (lk.as_str(), lv.get("key").and_then(Value::as_str)) {
            ("meta", Some("iifname")) => name_in(&self.flow.iif, &m["right"])?,
            ("meta", Some("oifname")) => name_in(&self.flow.oif, &m["right"])?,
            ("ct", Some("state")) => {
                let states: Vec<&str> = match &m["right"] {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    Value::Object(o) => o
                        .get("set")?
                        .as_array()?
                        .iter()
                        .filter_map(Value::as_str)
                        .collect(),
                    _ => return None,
                };
                states.contains(&self.flow.ct_state)
            }
            _ => return None,
        };
        match op {
            "==" | "in" => Some(hit),
            "!=" => Some(!hit),
            _ => None,
        }
    }
}

/// An interface name against an nft right-hand side: a name (`br*` wildcards) or a set of them.
fn name_in(name: &str, right: &Value) -> Option<bool> {
    let one = |pat: &str| match pat.strip_suffix('*') {
        Some(prefix) if !pat.ends_with("\\*") => name.starts_with(prefix) && name != OTHER_IF,
        _ => pat == name,
    };
    match right {
        Value::String(s) => Some(one(s)),
        Value::Object(o) => o
            .get("set")?
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(one))
            .try_fold(false, |acc, x| x.map(|x| acc || x)),
        _ => None,
    }
}

/// A rule in short nft-like form, for messages.
fn rule_text(exprs: &[Value]) -> String {
    exprs
        .iter()
        .filter_map(|e| {
            let (kind, body) = e.as_object()?.iter().next()?;
            Some(match kind.as_str() {
                "match" => {
                    let left = body["left"]
                        .as_object()
                        .and_then(|l| l.iter().next())
                        .map(|(k, v)| match v.get("key").and_then(Value::as_str) {
                            Some(key) => key.to_string(),
                            None => k.clone(),
                        })
                        .unwrap_or_default();
                    let op = match body["op"].as_str() {
                        Some("==") | Some("in") | None => String::new(),
                        Some(op) => format!("{op} "),
                    };
                    let right = match &body["right"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    format!("{left} {op}{right}")
                }
                "counter" => return None,
                "xt" => format!("xt {}", body["name"].as_str().unwrap_or("?")),
                "jump" | "goto" => format!("{kind} {}", body["target"].as_str().unwrap_or("?")),
                _ => kind.clone(),
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(table: &str, name: &str, policy: Option<&str>) -> Value {
        let mut c = json!({"family": "ip", "table": table, "name": name});
        if let Some(p) = policy {
            c["type"] = json!("filter");
            c["hook"] = json!("forward");
            c["prio"] = json!(0);
            c["policy"] = json!(p);
        }
        json!({ "chain": c })
    }

    fn rule(table: &str, chain: &str, expr: Value) -> Value {
        json!({"rule": {"family": "ip", "table": table, "chain": chain, "expr": expr}})
    }

    fn iif(name: &str) -> Value {
        json!({"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": name}})
    }
    fn oif(name: &str) -> Value {
        json!({"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": name}})
    }

    /// Docker's shape: FORWARD policy drop, jump DOCKER-USER (which returns), docker0 rules.
    fn docker(user: Vec<Value>) -> Value {
        let mut items = vec![
            chain("filter", "DOCKER-USER", None),
            chain("filter", "FORWARD", Some("drop")),
            rule(
                "filter",
                "FORWARD",
                json!([{"counter": null}, {"jump": {"target": "DOCKER-USER"}}]),
            ),
            rule(
                "filter",
                "FORWARD",
                json!([oif("docker0"), {"xt": {"type": "match", "name": "conntrack"}}, {"accept": null}]),
            ),
            rule(
                "filter",
                "FORWARD",
                json!([iif("docker0"), {"accept": null}]),
            ),
        ];
        items.extend(user);
        items.push(rule(
            "filter",
            "DOCKER-USER",
            json!([{"counter": null}, {"return": null}]),
        ));
        json!({ "nftables": items })
    }

    #[test]
    fn docker_policy_drop_is_found_and_docker_user_accepts_fix_it() {
        let flows = switch_flows("aksedgesw-int", true, true);
        let drops = forward_drops(&docker(vec![]), &flows, "edgenet_");
        assert_eq!(drops.len(), 3, "{drops:#?}");
        assert!(drops
            .iter()
            .all(|d| d.tool == FirewallTool::Docker && d.reason == "policy drop"));
        assert!(drops[0]
            .fix("aksedgesw-int")
            .contains("DOCKER-USER -i aksedgesw-int"));

        let fixed = docker(vec![
            rule(
                "filter",
                "DOCKER-USER",
                json!([iif("aksedgesw-int"), {"xt": {"type": "match", "name": "comment"}}, {"counter": null}, {"accept": null}]),
            ),
            rule(
                "filter",
                "DOCKER-USER",
                json!([oif("aksedgesw-int"), {"accept": null}]),
            ),
        ]);
        assert_eq!(forward_drops(&fixed, &flows, "edgenet_"), vec![]);
        // Only the inbound half: replies still die at the policy.
        let half = docker(vec![rule(
            "filter",
            "DOCKER-USER",
            json!([iif("aksedgesw-int"), {"accept": null}]),
        )]);
        let drops = forward_drops(&half, &flows, "edgenet_");
        assert_eq!(drops.len(), 1);
        assert_eq!(drops[0].flow, "replies to the nodes");
    }

    #[test]
    fn ufw_conntrack_accepts_replies_and_a_final_drop_rule_counts() {
        let doc = json!({"nftables": [
            chain("filter", "FORWARD", Some("drop")),
            chain("filter", "ufw-before-forward", None),
            chain("filter", "ufw-user-forward", None),
            rule("filter", "FORWARD", json!([{"jump": {"target": "ufw-before-forward"}}])),
            rule("filter", "ufw-before-forward", json!([{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}])),
            rule("filter", "ufw-before-forward", json!([{"jump": {"target": "ufw-user-forward"}}])),
        ]});
        let flows = switch_flows("br9", true, false);
        let drops = forward_drops(&doc, &flows, "edgenet_");
        assert_eq!(drops.len(), 1, "{drops:#?}");
        assert_eq!(drops[0].tool, FirewallTool::Ufw);
        assert!(drops[0].fix("br9").contains("ufw route allow in on br9"));

        // A chain with policy accept that ends in an unconditional reject (firewalld's shape).
        let fw = json!({"nftables": [
            {"chain": {"family": "inet", "table": "firewalld", "name": "filter_FORWARD", "type": "filter", "hook": "forward", "prio": 10, "policy": "accept"}},
            {"rule": {"family": "inet", "table": "firewalld", "chain": "filter_FORWARD", "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}},
            {"rule": {"family": "inet", "table": "firewalld", "chain": "filter_FORWARD", "expr": [iif("lo"), {"accept": null}]}},
            {"rule": {"family": "inet", "table": "firewalld", "chain": "filter_FORWARD", "expr": [{"reject": {"type": "icmpx", "expr": "admin-prohibited"}}]}},
        ]});
        let drops = forward_drops(&fw, &flows, "edgenet_");
        assert_eq!(drops.len(), 1);
        assert_eq!(drops[0].tool, FirewallTool::Firewalld);
        assert!(drops[0].reason.contains("reject"), "{}", drops[0].reason);
    }

    #[test]
    fn our_own_tables_other_hooks_and_unreadable_matches_are_not_drops() {
        let doc = json!({"nftables": [
            chain("edgenet_abc", "forward", Some("drop")),
            {"chain": {"family": "ip", "table": "t", "name": "in", "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
            chain("t", "fwd", Some("accept")),
            // A drop we cannot evaluate (a set lookup) is not claimed.
            rule("t", "fwd", json!([{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@blocked"}}, {"drop": null}])),
            // Wildcards and negation are evaluated.
            rule("t", "fwd", json!([{"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "br*"}}, {"drop": null}])),
        ]});
        assert_eq!(
            forward_drops(&doc, &switch_flows("br0", false, true), "edgenet_"),
            vec![]
        );
        let drops = forward_drops(&doc, &switch_flows("xbr0", false, true), "edgenet_");
        assert_eq!(drops.len(), 1);
        assert_eq!(drops[0].tool, FirewallTool::Other);
        assert!(drops[0]
            .fix("xbr0")
            .starts_with("nft insert rule ip t fwd iifname \"xbr0\" accept"));
        // No bridged frames and no NAT: nothing to forward, nothing to drop.
        assert!(switch_flows("br0", false, false).is_empty());
    }
}
