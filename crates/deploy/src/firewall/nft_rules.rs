//! Where edgenet's nftables rules are built: [`FirewallPlan`] → one table, as nftables JSON.
//!
//! Pure: no I/O. The rules are written in exactly the form `nft -j list table` prints them back
//! (nft 1.0.x), so a live table can be compared with the desired one and a deploy that changes
//! nothing touches nothing (SPEC §5.4). Should another nft version print a rule differently, the
//! comparison fails safe: the table is simply replaced on every deploy.
//!
//! The ruleset for a NAT switch `aksedgesw-int` on 192.168.0.0/24 with one port forward:
//!
//! ```text
//! table ip edgenet_<id> {
//!   chain intra_switch {  type filter hook prerouting priority raw; policy accept;
//!     iifname "aksedgesw-int" ip daddr 192.168.0.0/24 ip daddr != 192.168.0.1 ip saddr 192.168.0.0/24 meta pkttype host notrack
//!   }
//!   chain forward {  type filter hook forward priority filter; policy accept;
//!     iifname "aksedgesw-int" oifname "aksedgesw-int" accept
//!     oifname "aksedgesw-int" ip daddr 192.168.0.0/24 ct state established,related accept
//!     oifname "aksedgesw-int" ip daddr 192.168.0.2 tcp dport 80 ct status dnat accept
//!     oifname "aksedgesw-int" drop
//!     iifname "aksedgesw-int" ip saddr 192.168.0.0/24 accept
//!     iifname "aksedgesw-int" drop
//!   }
//!   chain postrouting {  type nat hook postrouting priority srcnat; policy accept;
//!     ip saddr 192.168.0.0/24 ip daddr 224.0.0.0/4 return
//!     ip saddr 192.168.0.0/24 ip daddr 255.255.255.255 return
//!     ip saddr 192.168.0.0/24 ip daddr 192.168.0.0/24 ct status dnat masquerade
//!     ip saddr 192.168.0.0/24 ip daddr != 192.168.0.0/24 masquerade
//!   }
//!   chain prerouting {  type nat hook prerouting priority dstnat; policy accept;
//!     fib daddr type local tcp dport 8080 dnat to 192.168.0.2:80
//!   }
//!   chain output {  type nat hook output priority -100; policy accept;
//!     ip daddr != 127.0.0.0/8 fib daddr type local tcp dport 8080 dnat to 192.168.0.2:80
//!   }
//! }
//! ```
//!
//! Port forwards are hairpinned: a node connecting to one of the host's addresses and a
//! forwarded port reaches the forward's node too (DNAT whatever the source), and such a
//! connection within the subnet is masqueraded to the host's switch address, so the answers
//! come back through the host (which undoes both translations) instead of straight from node
//! to node. `intra_switch` leaves these tracked: they are addressed to the host. An offline
//! switch (no NAT) keeps the nodes out of its forwards (`ip saddr != <subnet>`).
//!
//! Every chain has policy accept and every drop names the switch: traffic that does not enter or
//! leave edgenet's bridge is never judged here.
//!
//! `intra_switch` keeps frames bridged from node to node out of conntrack when the host has
//! `bridge-nf-call-iptables=1` (Docker and Kubernetes hosts do; edgenet never changes it):
//! nothing in this table needs their state, and tracking them is work on every packet (a
//! hash lookup, TCP's state machine, the NAT hooks, the confirm at postrouting). Nothing that leaves the switch or reaches the host is untracked, so masquerade,
//! port forwards and the `ct` rules above see every packet they judge. (Another table may still drop what we accept —
//! nftables runs every base chain of a hook — which `doctor` should point out.)

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{json, Value};

use super::{FirewallMode, FirewallPlan, PortForwardRule};

/// The nftables family of edgenet's table. `ip`, not `inet`: the switch is IPv4-only, and with
/// `bridge-nf-call-iptables=1` bridged IPv4 frames pass the `ip` hooks as well.
pub const FAMILY: &str = "ip";

/// Chain priorities as nft lists them (numbers: `filter` = 0, `dstnat` = -100, `srcnat` = 100).
const PRIO_RAW: i64 = -300;
const PRIO_FILTER: i64 = 0;
const PRIO_DSTNAT: i64 = -100;
const PRIO_SRCNAT: i64 = 100;

/// The chain that keeps frames bridged between two nodes out of conntrack.
pub const INTRA_SWITCH_CHAIN: &str = "intra_switch";

/// Every chain name edgenet's tables have (this module's and [`super::bridge_rules`]'s).
const OWN_CHAINS: &[&str] = &[
    INTRA_SWITCH_CHAIN,
    "forward",
    "postrouting",
    "prerouting",
    "output",
];

/// Destinations that are never masqueraded: multicast and broadcast keep the node's own source
/// address. libvirt exempts only link-local multicast (224.0.0.0/24); with
/// `bridge-nf-call-iptables` at 1 the datagrams one node multicasts to another across the
/// switch (SSDP's 239.255.255.250, any group) pass the postrouting hook too, and arrived
/// from the host's address. The host routes no multicast, so nothing else is exempted.
const NO_MASQUERADE: [&str; 2] = ["224.0.0.0/4", "255.255.255.255/32"];

/// One table's content in the form `nft -j list table` prints it, without handles.
///
/// Equality ignores chain order (nft may list chains in any order) but not rule order within a
/// chain (which is the semantics).
#[derive(Debug, Clone)]
pub struct Ruleset {
    /// `ip` (this module's table) or `bridge` ([`super::bridge_rules`]).
    pub family: String,
    pub table: String,
    /// `{"family", "table", "name", "type", "hook", "prio", "policy"}` objects.
    pub chains: Vec<Value>,
    /// `{"family", "table", "chain", "comment"?, "expr"}` objects, in order.
    pub rules: Vec<Value>,
    /// Anything else listed in the table (sets, maps, counters…): edgenet makes none, so a
    /// live table holding any differs from the plan and is replaced.
    pub other: Vec<Value>,
    /// The table's own attributes besides its name (`flags` such as `dormant`, a comment):
    /// edgenet sets none, and a dormant table filters nothing, so any is a difference.
    pub table_attrs: BTreeMap<String, Value>,
}

impl PartialEq for Ruleset {
    fn eq(&self, other: &Self) -> bool {
        self.family == other.family
            && self.table == other.table
            && self.by_chain() == other.by_chain()
            && self.other == other.other
            && self.table_attrs == other.table_attrs
    }
}

impl Ruleset {
    /// One transaction that creates the table when it does not exist yet; it fails (EEXIST)
    /// when a table with the name exists, which the caller then lists and judges.
    pub fn create_document(&self) -> Value {
        let table = json!({"family": self.family, "name": self.table});
        // `create`, not `add`: fails if a table with the name exists (it may not be ours).
        let mut cmds = vec![json!({"create": {"table": table}})];
        self.add_contents(&mut cmds);
        object([("nftables", Value::Array(cmds))])
    }

    /// The nft transaction that makes the live table equal to `self`, atomically: `add table`
    /// (so the delete cannot fail on a first deploy), `delete table` (drops whatever was there,
    /// including rules someone else added), `add table` and everything in it. nft sends it as
    /// one batch, so no packet ever sees a half-built table.
    pub fn replace_document(&self) -> Value {
        let table = json!({"family": self.family, "name": self.table});
        let mut cmds = vec![
            json!({"add": {"table": table}}),
            json!({"delete": {"table": table}}),
            json!({"add": {"table": table}}),
        ];
        self.add_contents(&mut cmds);
        object([("nftables", Value::Array(cmds))])
    }

    /// `add` commands for every chain and rule, the values cloned into place (`json!` would
    /// serialise each one over again).
    fn add_contents(&self, cmds: &mut Vec<Value>) {
        let add = |kind: &str, item: &Value| object([("add", object([(kind, item.clone())]))]);
        cmds.extend(self.chains.iter().map(|c| add("chain", c)));
        cmds.extend(self.rules.iter().map(|r| add("rule", r)));
    }

    /// Reads the output of `nft -j list table ip NAME` back into a [`Ruleset`]; `None` when the
    /// listing holds no table.
    pub fn from_listing(listing: &Value) -> Option<Ruleset> {
        Ruleset::from_listing_owned(listing.clone())
    }

    /// [`Ruleset::from_listing`] of a listing the caller gives away: its items are moved, not
    /// copied.
    pub fn from_listing_owned(mut listing: Value) -> Option<Ruleset> {
        let items = match listing.get_mut("nftables")?.take() {
            Value::Array(items) => items,
            _ => return None,
        };
        let mut table = None;
        let mut family = String::from(FAMILY);
        let mut chains = Vec::new();
        let mut rules = Vec::new();
        let mut other = Vec::new();
        let mut table_attrs = BTreeMap::new();
        for item in items {
            let Value::Object(mut item) = item else {
                continue;
            };
            let Some(kind) = item.keys().next().cloned() else {
                continue;
            };
            if !matches!(kind.as_str(), "table" | "chain" | "rule" | "metainfo") {
                other.push(Value::Object(item));
                continue;
            }
            let Some(mut body) = item.remove(&kind) else {
                continue;
            };
            if let Some(obj) = body.as_object_mut() {
                // Handles are assigned by the kernel and change on every replace.
                obj.remove("handle");
            }
            match kind.as_str() {
                "table" => {
                    table = body.get("name").and_then(Value::as_str).map(String::from);
                    if let Some(f) = body.get("family").and_then(Value::as_str) {
                        family = f.to_string();
                    }
                    if let Some(obj) = body.as_object() {
                        table_attrs = obj
                            .iter()
                            .filter(|(k, _)| !matches!(k.as_str(), "family" | "name"))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                    }
                }
                "chain" => chains.push(body),
                "rule" => rules.push(body),
                _ => {}
            }
        }
        Some(Ruleset {
            family,
            table: table?,
            chains,
            rules,
            other,
            table_attrs,
        })
    }

    /// edgenet's mark on a table: its rules carry `edgenet:` comments (nft 1.0's JSON cannot
    /// set a table comment). A table that merely has our name is not ours; one of ours with a
    /// rule someone added is still ours (and the next apply repairs it).
    pub fn is_marked(&self) -> bool {
        self.rules.iter().any(|r| {
            r.get("comment")
                .and_then(Value::as_str)
                .is_some_and(|c| c.starts_with("edgenet:"))
        })
    }

    /// Whether edgenet may replace or delete this table: it carries the mark, or the state
    /// records that the deployment made it (`recorded`) and it is one of ours flushed: no rules,
    /// no sets or other objects, only chains under the names edgenet gives. A table with rules
    /// none of which is ours, or with a chain or set edgenet never makes (someone deleted ours
    /// and made theirs under the name), stays someone else's.
    pub fn is_ours(&self, recorded: bool) -> bool {
        self.is_marked()
            || (recorded
                && self.rules.is_empty()
                && self.other.is_empty()
                && self.chains.iter().all(|c| {
                    c["name"]
                        .as_str()
                        .is_some_and(|name| OWN_CHAINS.contains(&name))
                }))
    }

    /// How the live table `self` differs from `want`, in words (empty when equal), for
    /// `status` and `doctor`.
    pub fn differences(&self, want: &Ruleset) -> Vec<String> {
        let mut out = Vec::new();
        if self.table_attrs != want.table_attrs {
            let flags = self.table_attrs.get("flags").map(|f| match f {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            out.push(match flags {
                Some(f) if f.contains("owner") => format!(
                    "it has table flags {f} (another process owns it: only that process may change or delete it)"
                ),
                // nft 1.0.6 prints a dormant table's flags wrongly, but it prints them.
                Some(_) => "it has table flags (dormant: it filters and translates nothing)".into(),
                None => "its table attributes differ".into(),
            });
        }
        let (live, planned) = (self.by_chain(), want.by_chain());
        for (name, (chain, rules)) in &planned {
            match live.get(name) {
                None => out.push(format!("chain {name} is missing")),
                Some((live_chain, live_rules)) => {
                    if live_chain != chain {
                        out.push(format!(
                            "chain {name} has another type, hook, priority or policy"
                        ));
                    }
                    if live_rules != rules {
                        out.push(format!("the rules of chain {name} differ"));
                    }
                }
            }
        }
        for name in live.keys().filter(|n| !planned.contains_key(*n)) {
            out.push(format!("it has an extra chain {name}"));
        }
        if self.other != want.other {
            out.push("it holds sets, maps or other objects edgenet does not make".into());
        }
        out
    }

    /// Chains by name, each with its rules in order.
    fn by_chain(&self) -> BTreeMap<&str, (Option<&Value>, Vec<&Value>)> {
        let mut map: BTreeMap<&str, (Option<&Value>, Vec<&Value>)> = BTreeMap::new();
        for chain in &self.chains {
            let name = chain.get("name").and_then(Value::as_str).unwrap_or("");
            map.entry(name).or_default().0 = Some(chain);
        }
        for rule in &self.rules {
            let name = rule.get("chain").and_then(Value::as_str).unwrap_or("");
            map.entry(name).or_default().1.push(rule);
        }
        map
    }

    /// Human-readable lines in nft syntax (`chain: rule`), for logs, `doctor` and tests.
    /// Expressions edgenet does not build are shown as JSON.
    pub fn to_text(&self) -> Vec<String> {
        self.rules
            .iter()
            .map(|r| {
                let chain = r.get("chain").and_then(Value::as_str).unwrap_or("?");
                let exprs = r.get("expr").and_then(Value::as_array);
                let text: Vec<String> = exprs.into_iter().flatten().map(expr_text).collect();
                format!("{chain}: {}", text.join(" "))
            })
            .collect()
    }
}

/// Whether the nodes' switch ports are put in hairpin mode: where port forwards are
/// hairpinned (a NAT switch with forwards). A node reaching itself through a forward needs it
/// when the host bridges the DNAT (`bridge-nf-call-iptables=1`): the frame leaves by the port
/// it came in on. Elsewhere the ports stay as the kernel makes them (a hairpin port also gets
/// its own floods back).
pub fn hairpin_ports(plan: &edgenet_core::plan::Plan) -> bool {
    use edgenet_core::plan::{Outbound, SwitchKind};
    plan.switch.kind == SwitchKind::Internal
        && plan.switch.outbound == Outbound::Nat
        && !plan.port_forwards.is_empty()
}

/// Builds the table for `fw`.
pub fn build(fw: &FirewallPlan) -> Ruleset {
    let b = Builder {
        table: &fw.table,
        rules: Vec::new(),
    };
    b.build(fw)
}

struct Builder<'a> {
    table: &'a str,
    rules: Vec<Value>,
}

impl Builder<'_> {
    fn build(mut self, fw: &FirewallPlan) -> Ruleset {
        let br = fw.bridge.as_str();
        let subnet = fw.subnet.trunc();
        let mut chains =
            vec![self.base_chain(INTRA_SWITCH_CHAIN, "prerouting", "filter", PRIO_RAW)];
        // With `bridge-nf-call-iptables=1` every frame bridged between two nodes passes the
        // `ip` hooks with the bridge as iif and oif, and conntrack would track it: a hash
        // lookup and a state machine per packet, for traffic no rule here needs conntrack for
        // (the forward chain accepts it by interface alone, first). Only unicast (`pkttype
        // host`; broadcast and multicast stay tracked) between two switch addresses, to any
        // but the host's: what reaches the host (DNS, the proxy, the replies of the host's own
        // connections and of its port-forwarded ones, which must be un-NATed) stays tracked,
        // and so does anything leaving the switch. Cheap matches only (no fib lookup): this
        // runs for every packet of the host. A no-op with the sysctl at 0: bridged frames then
        // skip the `ip` hooks.
        self.rule(
            INTRA_SWITCH_CHAIN,
            "edgenet: frames between nodes skip conntrack",
            vec![
                iifname(br),
                ip_addr("daddr", "==", subnet),
                ip_addr("daddr", "!=", host_net(fw.host)),
                ip_addr("saddr", "==", subnet),
                matches("==", json!({"meta": {"key": "pkttype"}}), json!("host")),
                json!({"notrack": null}),
            ],
        );
        chains.push(self.chain("forward", "filter", PRIO_FILTER));

        // First, and by interface alone: frames between nodes are untracked (see above), so
        // no `ct` match would ever accept them.
        self.rule(
            "forward",
            "edgenet: traffic within the switch",
            vec![iifname(br), oifname(br), verdict("accept")],
        );
        if fw.mode == FirewallMode::Nat {
            self.rule(
                "forward",
                "edgenet: replies to connections the nodes opened",
                vec![
                    oifname(br),
                    ip_addr("daddr", "==", subnet),
                    ct_in("state", &["established", "related"]),
                    verdict("accept"),
                ],
            );
        }
        for pf in &fw.port_forwards {
            self.rule(
                "forward",
                &pf_comment(pf),
                vec![
                    oifname(br),
                    ip_addr("daddr", "==", host_net(pf.node_address)),
                    l4_port(pf, "dport", pf.node_port),
                    ct_in("status", &["dnat"]),
                    verdict("accept"),
                ],
            );
        }
        if fw.mode == FirewallMode::Offline && !fw.port_forwards.is_empty() {
            // Nothing leaves an offline switch except the answers of a port-forwarded
            // connection (NAT mode lets every node-sourced packet out anyway).
            self.rule(
                "forward",
                "edgenet: replies of port-forwarded connections",
                vec![
                    iifname(br),
                    ct_in("status", &["dnat"]),
                    ct_eq("direction", "reply"),
                    verdict("accept"),
                ],
            );
        }
        self.rule(
            "forward",
            "edgenet: nothing else enters the switch",
            vec![oifname(br), verdict("drop")],
        );
        if fw.mode == FirewallMode::Nat {
            self.rule(
                "forward",
                "edgenet: nodes reach out (masqueraded)",
                vec![
                    iifname(br),
                    ip_addr("saddr", "==", subnet),
                    verdict("accept"),
                ],
            );
        }
        self.rule(
            "forward",
            match fw.mode {
                FirewallMode::Nat => "edgenet: sources outside the switch subnet",
                FirewallMode::Offline => "edgenet: offline switch, nothing leaves it",
            },
            vec![iifname(br), verdict("drop")],
        );

        if fw.mode == FirewallMode::Nat {
            chains.push(self.chain("postrouting", "nat", PRIO_SRCNAT));
            for dst in NO_MASQUERADE {
                self.rule(
                    "postrouting",
                    "edgenet: multicast and broadcast keep their source",
                    vec![
                        ip_addr("saddr", "==", subnet),
                        ip_addr("daddr", "==", dst.parse().expect("constant")),
                        verdict("return"),
                    ],
                );
            }
            if !fw.port_forwards.is_empty() {
                // Hairpin: a node's connection to a host address and forwarded port is sent
                // back onto the switch to a node. Without a host source the answer would go
                // straight from node to node (and be refused, it does not answer the address
                // the client called): like Docker's and a home router's hairpin NAT.
                self.rule(
                    "postrouting",
                    "edgenet: hairpin, nodes reaching port forwards",
                    vec![
                        ip_addr("saddr", "==", subnet),
                        ip_addr("daddr", "==", subnet),
                        ct_in("status", &["dnat"]),
                        json!({"masquerade": null}),
                    ],
                );
            }
            self.rule(
                "postrouting",
                "edgenet: masquerade the switch subnet",
                vec![
                    ip_addr("saddr", "==", subnet),
                    ip_addr("daddr", "!=", subnet),
                    json!({"masquerade": null}),
                ],
            );
        }

        if !fw.port_forwards.is_empty() {
            chains.push(self.chain("prerouting", "nat", PRIO_DSTNAT));
            chains.push(self.chain("output", "nat", PRIO_DSTNAT));
            for pf in &fw.port_forwards {
                // Only traffic addressed to the host itself (bridged node-to-node frames pass
                // prerouting too, to node addresses). On a NAT switch the nodes' own connections
                // too (hairpin, masqueraded in postrouting so the answers come back through the
                // host); an offline switch has no NAT for them, so not theirs.
                let mut matches = Vec::new();
                if fw.mode == FirewallMode::Offline {
                    matches.push(ip_addr("saddr", "!=", subnet));
                }
                matches.extend([
                    fib_daddr_local(),
                    l4_port(pf, "dport", pf.host_port),
                    dnat(pf),
                ]);
                self.rule("prerouting", &pf_comment(pf), matches);
                // The host's own connections to one of its addresses: locally generated
                // packets skip prerouting. Loopback is left alone: DNAT to a node would leave a
                // 127.0.0.0/8 source on the switch, which the kernel drops as martian.
                self.rule(
                    "output",
                    &pf_comment(pf),
                    vec![
                        ip_addr("daddr", "!=", "127.0.0.0/8".parse().expect("constant")),
                        fib_daddr_local(),
                        l4_port(pf, "dport", pf.host_port),
                        dnat(pf),
                    ],
                );
            }
        }

        Ruleset {
            family: FAMILY.to_string(),
            table: self.table.to_string(),
            chains,
            rules: self.rules,
            other: Vec::new(),
            table_attrs: BTreeMap::new(),
        }
    }

    fn chain(&self, name: &str, kind: &str, prio: i64) -> Value {
        self.base_chain(name, name, kind, prio)
    }

    fn base_chain(&self, name: &str, hook: &str, kind: &str, prio: i64) -> Value {
        json!({
            "family": FAMILY, "table": self.table, "name": name,
            "type": kind, "hook": hook, "prio": prio, "policy": "accept",
        })
    }

    fn rule(&mut self, chain: &str, comment: &str, expr: Vec<Value>) {
        self.rules.push(object([
            ("family", FAMILY.into()),
            ("table", self.table.into()),
            ("chain", chain.into()),
            ("comment", comment.into()),
            ("expr", Value::Array(expr)),
        ]));
    }
}

/// The comment of a port forward's rules, by which `status` finds them in the live table.
pub fn forward_comment(pf: &PortForwardRule) -> String {
    pf_comment(pf)
}

fn pf_comment(pf: &PortForwardRule) -> String {
    format!(
        "edgenet: port forward {}/{} to {}:{}",
        pf.protocol.as_str(),
        pf.host_port,
        pf.node_address,
        pf.node_port
    )
}

fn host_net(addr: Ipv4Addr) -> Ipv4Net {
    Ipv4Net::from(addr)
}

fn matches(op: &str, left: Value, right: Value) -> Value {
    object([(
        "match",
        object([("op", op.into()), ("left", left), ("right", right)]),
    )])
}

/// A JSON object of `entries`, moved in (`json!` serialises a `Value` it is given again).
pub(crate) fn object<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn iifname(name: &str) -> Value {
    matches("==", json!({"meta": {"key": "iifname"}}), json!(name))
}

fn oifname(name: &str) -> Value {
    matches("==", json!({"meta": {"key": "oifname"}}), json!(name))
}

/// `ip saddr|daddr OP net`; a /32 is written as a plain address, as nft lists it.
fn ip_addr(field: &str, op: &str, net: Ipv4Net) -> Value {
    let right = if net.prefix_len() == 32 {
        json!(net.addr().to_string())
    } else {
        json!({"prefix": {"addr": net.network().to_string(), "len": net.prefix_len()}})
    };
    matches(
        op,
        json!({"payload": {"protocol": "ip", "field": field}}),
        right,
    )
}

/// `ct KEY a,b`: nft lists a one-element set as a plain string.
fn ct_in(key: &str, values: &[&str]) -> Value {
    let right = match values {
        [one] => json!(one),
        many => json!(many),
    };
    matches("in", json!({"ct": {"key": key}}), right)
}

fn ct_eq(key: &str, value: &str) -> Value {
    matches("==", json!({"ct": {"key": key}}), json!(value))
}

fn l4_port(pf: &PortForwardRule, field: &str, port: u16) -> Value {
    matches(
        "==",
        json!({"payload": {"protocol": pf.protocol.as_str(), "field": field}}),
        json!(port),
    )
}

fn fib_daddr_local() -> Value {
    matches(
        "==",
        json!({"fib": {"result": "type", "flags": ["daddr"]}}),
        json!("local"),
    )
}

fn dnat(pf: &PortForwardRule) -> Value {
    json!({"dnat": {"addr": pf.node_address.to_string(), "port": pf.node_port}})
}

fn verdict(v: &str) -> Value {
    json!({ v: null })
}

/// nft syntax for the expressions this module builds; anything else as compact JSON.
fn expr_text(e: &Value) -> String {
    let fallback = || e.to_string();
    let Some((kind, body)) = e.as_object().and_then(|o| o.iter().next()) else {
        return fallback();
    };
    match kind.as_str() {
        "match" => {
            let left = match &body["left"] {
                Value::Object(l) => match l.iter().next() {
                    Some((k, v)) if k == "meta" && v["key"] == "pkttype" => {
                        "meta pkttype".to_string()
                    }
                    Some((k, v)) if k == "meta" => v["key"].as_str().unwrap_or("?").to_string(),
                    Some((k, v)) if k == "payload" => format!(
                        "{} {}",
                        v["protocol"].as_str().unwrap_or("?"),
                        v["field"].as_str().unwrap_or("?")
                    ),
                    Some((k, v)) if k == "ct" => format!("ct {}", v["key"].as_str().unwrap_or("?")),
                    Some((k, _)) if k == "fib" => "fib daddr type".to_string(),
                    _ => return fallback(),
                },
                _ => return fallback(),
            };
            let right = match &body["right"] {
                Value::String(s) if left.ends_with("ifname") => format!("\"{s}\""),
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Array(a) => a
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                    .collect::<Vec<_>>()
                    .join(","),
                Value::Object(o) if o.contains_key("prefix") => format!(
                    "{}/{}",
                    o["prefix"]["addr"].as_str().unwrap_or("?"),
                    o["prefix"]["len"]
                ),
                Value::Object(o) if o.contains_key("set") => {
                    let items: Vec<String> = o["set"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|v| match v {
                            Value::String(s) => s.clone(),
                            Value::Object(e) if e.contains_key("range") => format!(
                                "{}-{}",
                                e["range"][0].as_str().unwrap_or("?"),
                                e["range"][1].as_str().unwrap_or("?")
                            ),
                            Value::Object(e) if e.contains_key("prefix") => format!(
                                "{}/{}",
                                e["prefix"]["addr"].as_str().unwrap_or("?"),
                                e["prefix"]["len"]
                            ),
                            other => other.to_string(),
                        })
                        .collect();
                    format!("{{ {} }}", items.join(", "))
                }
                _ => return fallback(),
            };
            match body["op"].as_str() {
                Some("==") | Some("in") => format!("{left} {right}"),
                Some(op) => format!("{left} {op} {right}"),
                None => fallback(),
            }
        }
        "dnat" => format!(
            "dnat to {}:{}",
            body["addr"].as_str().unwrap_or("?"),
            body["port"]
        ),
        "accept" | "drop" | "return" | "masquerade" | "notrack" if body.is_null() => kind.clone(),
        _ => fallback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgenet_core::config::Protocol;

    fn plan(mode: FirewallMode, forwards: Vec<PortForwardRule>) -> FirewallPlan {
        FirewallPlan {
            table: "edgenet_abc123".into(),
            bridge: "aksedgesw-int".into(),
            subnet: "192.168.7.0/24".parse().unwrap(),
            host: Ipv4Addr::new(192, 168, 7, 1),
            mode,
            port_forwards: forwards,
        }
    }

    fn forward(
        protocol: Protocol,
        host_port: u16,
        node: [u8; 4],
        node_port: u16,
    ) -> PortForwardRule {
        PortForwardRule {
            protocol,
            host_port,
            node_address: Ipv4Addr::from(node),
            node_port,
        }
    }

    const INTRA_SWITCH: &str = r#"intra_switch: iifname "aksedgesw-int" ip daddr 192.168.7.0/24 ip daddr != 192.168.7.1 ip saddr 192.168.7.0/24 meta pkttype host notrack"#;

    #[test]
    fn frames_between_nodes_are_untracked_before_conntrack() {
        for mode in [FirewallMode::Nat, FirewallMode::Offline] {
            let rs = build(&plan(mode, vec![]));
            let raw = &rs.chains[0];
            assert_eq!(
                (
                    raw["name"].as_str(),
                    raw["type"].as_str(),
                    raw["hook"].as_str()
                ),
                (Some("intra_switch"), Some("filter"), Some("prerouting"))
            );
            // Before conntrack (-200): raw, -300.
            assert_eq!(raw["prio"], -300);
            assert_eq!(raw["policy"], "accept");
            let untracked: Vec<_> = text(&rs)
                .into_iter()
                .filter(|l| l.contains("notrack"))
                .collect();
            assert_eq!(untracked, [INTRA_SWITCH]);
            // The forward chain's first rule accepts them without any `ct` match.
            let first_forward = text(&rs)
                .into_iter()
                .find(|l| l.starts_with("forward:"))
                .unwrap();
            assert_eq!(
                first_forward,
                r#"forward: iifname "aksedgesw-int" oifname "aksedgesw-int" accept"#
            );
        }
    }

    fn text(rs: &Ruleset) -> Vec<String> {
        rs.to_text()
    }

    fn chain_names(rs: &Ruleset) -> Vec<&str> {
        rs.chains
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn nat_masquerades_the_subnet_and_guards_the_switch() {
        let rs = build(&plan(FirewallMode::Nat, vec![]));
        assert_eq!(chain_names(&rs), ["intra_switch", "forward", "postrouting"]);
        assert_eq!(
            text(&rs),
            [
                INTRA_SWITCH,
                r#"forward: iifname "aksedgesw-int" oifname "aksedgesw-int" accept"#,
                r#"forward: oifname "aksedgesw-int" ip daddr 192.168.7.0/24 ct state established,related accept"#,
                r#"forward: oifname "aksedgesw-int" drop"#,
                r#"forward: iifname "aksedgesw-int" ip saddr 192.168.7.0/24 accept"#,
                r#"forward: iifname "aksedgesw-int" drop"#,
                "postrouting: ip saddr 192.168.7.0/24 ip daddr 224.0.0.0/4 return",
                "postrouting: ip saddr 192.168.7.0/24 ip daddr 255.255.255.255 return",
                "postrouting: ip saddr 192.168.7.0/24 ip daddr != 192.168.7.0/24 masquerade",
            ]
        );
        let post = &rs.chains[2];
        assert_eq!(post["type"], "nat");
        assert_eq!(post["hook"], "postrouting");
        assert_eq!(post["prio"], 100);
        assert!(rs.chains.iter().all(|c| c["policy"] == "accept"));
    }

    #[test]
    fn offline_has_no_nat_and_drops_everything_off_the_switch() {
        let rs = build(&plan(FirewallMode::Offline, vec![]));
        assert_eq!(chain_names(&rs), ["intra_switch", "forward"]);
        assert_eq!(
            text(&rs),
            [
                INTRA_SWITCH,
                r#"forward: iifname "aksedgesw-int" oifname "aksedgesw-int" accept"#,
                r#"forward: oifname "aksedgesw-int" drop"#,
                r#"forward: iifname "aksedgesw-int" drop"#,
            ]
        );
        let doc = rs.replace_document().to_string();
        assert!(!doc.contains("masquerade") && !doc.contains("established"));
    }

    #[test]
    fn port_forwards_dnat_from_outside_and_from_the_host() {
        let rs = build(&plan(
            FirewallMode::Nat,
            vec![
                forward(Protocol::Tcp, 8080, [192, 168, 7, 2], 80),
                forward(Protocol::Udp, 5353, [192, 168, 7, 3], 53),
            ],
        ));
        assert_eq!(
            chain_names(&rs),
            [
                "intra_switch",
                "forward",
                "postrouting",
                "prerouting",
                "output"
            ]
        );
        let lines = text(&rs);
        for want in [
            r#"forward: oifname "aksedgesw-int" ip daddr 192.168.7.2 tcp dport 80 ct status dnat accept"#,
            r#"forward: oifname "aksedgesw-int" ip daddr 192.168.7.3 udp dport 53 ct status dnat accept"#,
            "prerouting: fib daddr type local tcp dport 8080 dnat to 192.168.7.2:80",
            "prerouting: fib daddr type local udp dport 5353 dnat to 192.168.7.3:53",
            "postrouting: ip saddr 192.168.7.0/24 ip daddr 192.168.7.0/24 ct status dnat masquerade",
            "output: ip daddr != 127.0.0.0/8 fib daddr type local tcp dport 8080 dnat to 192.168.7.2:80",
            "output: ip daddr != 127.0.0.0/8 fib daddr type local udp dport 5353 dnat to 192.168.7.3:53",
        ] {
            assert!(lines.iter().any(|l| l == want), "missing {want}\n{lines:#?}");
        }
        // The forward accept must come before the catch-all drop into the switch.
        let pos = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap();
        assert!(pos("tcp dport 80 ct status dnat accept") < pos(r#"oifname "aksedgesw-int" drop"#));
        // Hairpin: one masquerade for every forward, before the one for outbound traffic.
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains("ct status dnat masquerade"))
                .count(),
            1
        );
        assert!(pos("ct status dnat masquerade") < pos("ip daddr != 192.168.7.0/24 masquerade"));
        let output = rs.chains.iter().find(|c| c["name"] == "output").unwrap();
        assert_eq!(
            (output["type"].as_str(), output["prio"].as_i64()),
            (Some("nat"), Some(-100))
        );
    }

    #[test]
    fn offline_port_forward_lets_only_its_replies_out() {
        let rs = build(&plan(
            FirewallMode::Offline,
            vec![forward(Protocol::Tcp, 8443, [192, 168, 7, 2], 443)],
        ));
        let lines = text(&rs);
        let reply = r#"forward: iifname "aksedgesw-int" ct status dnat ct direction reply accept"#;
        assert!(lines.iter().any(|l| l == reply), "{lines:#?}");
        assert!(lines.iter().all(|l| !l.contains("masquerade")));
        // No hairpin on an offline switch (no NAT for the nodes): its forwards stay the LAN's
        // and the host's.
        let dnat = "prerouting: ip saddr != 192.168.7.0/24 fib daddr type local tcp dport 8443 dnat to 192.168.7.2:443";
        assert!(lines.iter().any(|l| l == dnat), "{lines:#?}");
        let drop_out = lines
            .iter()
            .position(|l| l == r#"forward: iifname "aksedgesw-int" drop"#);
        let reply_pos = lines.iter().position(|l| l == reply);
        assert!(reply_pos < drop_out);
    }

    #[test]
    fn subnet_with_host_bits_is_normalised() {
        let mut fw = plan(FirewallMode::Nat, vec![]);
        fw.subnet = "192.168.7.1/24".parse().unwrap();
        assert_eq!(build(&fw), build(&plan(FirewallMode::Nat, vec![])));
    }

    #[test]
    fn replace_document_recreates_the_table_in_one_batch() {
        let rs = build(&plan(FirewallMode::Nat, vec![]));
        let doc = rs.replace_document();
        let cmds = doc["nftables"].as_array().unwrap();
        let table = json!({"family": "ip", "name": "edgenet_abc123"});
        assert_eq!(cmds[0], json!({"add": {"table": table}}));
        assert_eq!(cmds[1], json!({"delete": {"table": table}}));
        assert_eq!(cmds[2], json!({"add": {"table": table}}));
        assert_eq!(cmds.len(), 3 + rs.chains.len() + rs.rules.len());
        // Everything the batch adds lives in edgenet's table.
        for cmd in cmds {
            let (_, obj) = cmd["add"]
                .as_object()
                .or(cmd["delete"].as_object())
                .unwrap()
                .iter()
                .next()
                .unwrap();
            let table_name = obj
                .get("table")
                .and_then(Value::as_str)
                .or(obj["name"].as_str());
            assert_eq!(table_name, Some("edgenet_abc123"), "{cmd}");
        }
    }

    #[test]
    fn listing_round_trips_and_ignores_handles_and_chain_order() {
        let rs = build(&plan(
            FirewallMode::Nat,
            vec![forward(Protocol::Tcp, 8080, [192, 168, 7, 2], 80)],
        ));
        // What nft prints: metainfo, table, chains (reversed here), rules, all with handles.
        let mut items = vec![
            json!({"metainfo": {"version": "1.0.6", "json_schema_version": 1}}),
            json!({"table": {"family": "ip", "name": "edgenet_abc123", "handle": 7}}),
        ];
        for (i, c) in rs.chains.iter().rev().enumerate() {
            let mut c = c.clone();
            c["handle"] = json!(i + 1);
            items.push(json!({ "chain": c }));
        }
        for (i, r) in rs.rules.iter().enumerate() {
            let mut r = r.clone();
            r["handle"] = json!(i + 10);
            items.push(json!({ "rule": r }));
        }
        let listed = Ruleset::from_listing(&json!({ "nftables": items.clone() })).unwrap();
        assert_eq!(listed, rs);

        // A rule added by hand, or reordered rules, is a difference.
        let mut extra = rs.clone();
        extra.rules.push(extra.rules[0].clone());
        assert_ne!(extra, rs);
        let mut swapped = rs.clone();
        swapped.rules.swap(1, 2); // two rules of chain forward
        assert_ne!(swapped, rs);
        // So is a set someone added to our table.
        let mut with_set = items.clone();
        with_set.push(
            json!({"set": {"family": "ip", "table": "edgenet_abc123", "name": "s", "handle": 99}}),
        );
        assert_ne!(
            Ruleset::from_listing(&json!({ "nftables": with_set })).unwrap(),
            rs
        );
        // An empty listing has no table.
        assert!(Ruleset::from_listing(&json!({"nftables": []})).is_none());
    }

    #[test]
    fn table_flags_are_a_difference_and_a_rule_less_recorded_table_is_ours() {
        let rs = build(&plan(FirewallMode::Nat, vec![]));
        let mut items = vec![json!({"table": {"family": "ip", "name": "edgenet_abc123",
            "handle": 7, "flags": "dormant"}})];
        items.extend(rs.chains.iter().map(|c| json!({ "chain": c })));
        items.extend(rs.rules.iter().map(|r| json!({ "rule": r })));
        let dormant = Ruleset::from_listing(&json!({ "nftables": items })).unwrap();
        assert_ne!(dormant, rs);
        assert_eq!(
            dormant.differences(&rs),
            ["it has table flags (dormant: it filters and translates nothing)"]
        );
        assert!(rs.differences(&rs).is_empty());
        let mut policy = rs.clone();
        policy.chains[1]["policy"] = json!("drop");
        policy.rules.remove(3);
        assert_eq!(
            policy.differences(&rs),
            [
                "chain forward has another type, hook, priority or policy",
                "the rules of chain forward differ"
            ]
        );
        // Flushed: no rules, no mark; ours only when the state records it.
        let mut flushed = rs.clone();
        flushed.rules.clear();
        assert!(!flushed.is_ours(false) && flushed.is_ours(true));
        // A rule that is not ours: foreign, recorded or not.
        let mut foreign = flushed.clone();
        foreign
            .rules
            .push(json!({"family": "ip", "table": "edgenet_abc123",
            "chain": "forward", "expr": [{"accept": null}]}));
        assert!(!foreign.is_ours(true));
        assert!(rs.is_ours(false));
        // No rules, but a chain or a set edgenet never makes: someone else's table under the
        // name (ours deleted, theirs made), recorded or not.
        let mut their_chain = flushed.clone();
        their_chain
            .chains
            .push(json!({"family": "ip", "table": "edgenet_abc123",
            "name": "myfilter", "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}));
        assert!(!their_chain.is_ours(true));
        let mut their_set = flushed.clone();
        their_set
            .other
            .push(json!({"set": {"family": "ip", "table": "edgenet_abc123",
            "name": "blocked", "type": "ipv4_addr"}}));
        assert!(!their_set.is_ours(true));
    }
}
