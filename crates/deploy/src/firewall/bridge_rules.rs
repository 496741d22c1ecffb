//! The switch's bridge-family table (issue 8): per node port, anti-spoofing, and the offline
//! filter of every family.
//!
//! Pure: [`BridgePlan`] → one `bridge edgenet_<id>` table, in the form `nft -j list` prints it
//! back (so a deploy that changes nothing sends nothing).
//!
//! ```text
//! table bridge edgenet_<id> {
//!   chain prerouting { type filter hook prerouting priority -200; policy accept;
//!     iifname != "en<id>l" iifname != "en<id>w" accept       # not from a node: not checked
//!     iifname "en<id>l" ether type != { ip, arp } drop       # no VLAN tags, RARP, LLC, IPv6
//!     iifname "en<id>l" ether saddr != 02:…:01 drop          # only its own MAC
//!     iifname "en<id>l" arp saddr ether != 02:…:01 drop      # ARP only for its own MAC
//!     iifname "en<id>l" arp saddr ip != { 0.0.0.0, <own> } drop
//!     iifname "en<id>l" ip saddr != { <own> } drop
//!     # offline:
//!     iifname "en<id>l" ip daddr != { <LAN>, 255.255.255.255 } drop   # external switch
//!   }
//!   chain forward { type filter hook forward priority -200; policy accept;
//!     oifname "en<id>l" ether type != { ip, arp } drop       # nothing a node could not answer
//!   }
//! }
//! ```
//!
//! A node's own addresses (`<own>`) are its address and what Kubernetes legitimately sends from
//! a node: a Linux control-plane node may hold kube-vip's control-plane VIP, any Linux node may
//! announce a LoadBalancer service IP (kube-vip's ARP mode answers from the node that holds it,
//! with that node's MAC), and pod addresses leave a node unencapsulated with some network
//! plugins (Calico BGP, flannel host-gw), so the pod CIDR is allowed as an IPv4 source. A node
//! can therefore not take another node's address (or MAC) or the host's, but can still take
//! the VIP or a service IP over from another node, which is exactly what kube-vip does on a
//! failover. `0.0.0.0` is allowed as an ARP sender (RFC 5227 probes).

use std::net::Ipv4Addr;

use edgenet_core::mac::MacAddr;
use edgenet_core::plan::{NodeKind, NodeRole, Plan, SwitchKind};
use ipnet::Ipv4Net;
use serde_json::{json, Value};

use super::nft_rules::{object, Ruleset};

pub const FAMILY: &str = "bridge";
/// The bridge family's `filter` priority, before anything else on the bridge.
const PRIO: i64 = -200;
/// Ports the leading guard rule names, two expressions each: the kernel takes at most 128
/// expressions in a rule. A switch with more ports (none a config makes today) goes without
/// the guard, which only saves time.
const GUARDED_PORTS: usize = 32;
const _: () = assert!(2 * GUARDED_PORTS < 128);

/// One node's switch port and what it may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortGuard {
    /// The host end of the node's veth (the bridge port).
    pub port: String,
    pub node: String,
    pub mac: MacAddr,
    /// The node's address first, then the control-plane VIP and service IPs it may hold.
    pub addresses: Vec<Ipv4Addr>,
    /// Service IPs (a range) the node may announce.
    pub service_range: Option<(Ipv4Addr, Ipv4Addr)>,
    /// Pod addresses that may leave the node unencapsulated.
    pub pod_cidr: Option<Ipv4Net>,
}

/// What leaves an offline switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offline {
    /// Internal switch: IPv4 and ARP only (the `ip` table keeps IPv4 on the switch).
    Internal,
    /// External switch: IPv4 to the LAN only, and ARP.
    Lan(Ipv4Net),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePlan {
    pub table: String,
    pub ports: Vec<PortGuard>,
    pub offline: Option<Offline>,
}

impl BridgePlan {
    /// The table for `plan`, with each node's MAC (`macs[i]` for `plan.nodes[i]`) and port.
    pub fn from_plan(plan: &Plan, table: &str, ports: &[(String, MacAddr)]) -> BridgePlan {
        let guards = plan
            .nodes
            .iter()
            .zip(ports)
            .map(|(n, (port, mac))| {
                let mut addresses = vec![n.address.addr()];
                let linux = n.kind == NodeKind::Linux;
                if linux && n.role == NodeRole::ControlPlane {
                    addresses.push(plan.control_plane_endpoint);
                }
                addresses.sort();
                addresses.dedup();
                PortGuard {
                    port: port.clone(),
                    node: n.name.clone(),
                    mac: *mac,
                    addresses,
                    service_range: plan
                        .service_range
                        .filter(|_| linux)
                        .map(|r| (r.start, r.end)),
                    pod_cidr: linux.then_some(plan.kubernetes.pod_cidr),
                }
            })
            .collect();
        let offline = (plan.switch.outbound == edgenet_core::plan::Outbound::Offline).then(|| {
            match plan.switch.kind {
                SwitchKind::Internal => Offline::Internal,
                SwitchKind::External => Offline::Lan(plan.switch.subnet.trunc()),
            }
        });
        BridgePlan {
            table: table.to_string(),
            ports: guards,
            offline,
        }
    }
}

/// Builds the table.
pub fn build(bp: &BridgePlan) -> Ruleset {
    let chain = json!({
        "family": FAMILY, "table": bp.table, "name": "prerouting",
        "type": "filter", "hook": "prerouting", "prio": PRIO, "policy": "accept",
    });
    let forward_chain = json!({
        "family": FAMILY, "table": bp.table, "name": "forward",
        "type": "filter", "hook": "forward", "prio": PRIO, "policy": "accept",
    });
    let mut rules = Vec::new();
    let mut forward = Vec::new();
    let mut rule = |comment: String, expr: Vec<Value>| {
        rules.push(object([
            ("family", FAMILY.into()),
            ("table", bp.table.as_str().into()),
            ("chain", "prerouting".into()),
            ("comment", comment.into()),
            ("expr", Value::Array(expr)),
        ]));
    };
    if !bp.ports.is_empty() && bp.ports.len() <= GUARDED_PORTS {
        // Frames from the LAN or the host (flooded to every machine's switch on a big LAN)
        // leave the chain at once: one rule, instead of the iifname test of each port rule.
        // Accept ends only this chain, as falling off its end would.
        let mut expr: Vec<Value> = bp
            .ports
            .iter()
            .map(|p| matches("!=", json!({"meta": {"key": "iifname"}}), json!(p.port)))
            .collect();
        expr.push(json!({"accept": null}));
        rule("edgenet: only node ports are checked".to_string(), expr);
    }
    for p in &bp.ports {
        let iif = matches("==", json!({"meta": {"key": "iifname"}}), json!(p.port));
        let mac = p.mac.to_string();
        let n = &p.node;
        // First: every frame that is not plain IPv4 or ARP. That is VLAN-tagged frames (an
        // 802.1Q tag would carry an ARP or IPv4 past the checks below, which read only
        // untagged headers), RARP, 802.3/LLC/SNAP frames (their type field is a length), and
        // IPv6: the cluster is IPv4-only, so a node has no use for it and its router
        // advertisements, redirects and spoofed sources never reach the LAN.
        rule(
            format!("edgenet: only IPv4 and ARP leave {n}"),
            vec![
                iif.clone(),
                payload_ne("ether", "type", json!({"set": ["ip", "arp"]})),
                drop(),
            ],
        );
        // The same towards the node, dropped before it is copied onto the node's link: a node
        // that may send neither IPv6 nor tagged frames cannot answer any (a neighbour
        // solicitation, an MLD query), and on a busy LAN most of what is flooded to every
        // port is IPv6 start-up traffic (MLD reports, DAD, router solicitations).
        forward.push(object([
            ("family", FAMILY.into()),
            ("table", bp.table.as_str().into()),
            ("chain", "forward".into()),
            (
                "comment",
                format!("edgenet: only IPv4 and ARP reach {n}").into(),
            ),
            (
                "expr",
                Value::Array(vec![
                    matches("==", json!({"meta": {"key": "oifname"}}), json!(p.port)),
                    payload_ne("ether", "type", json!({"set": ["ip", "arp"]})),
                    drop(),
                ]),
            ),
        ]));
        rule(
            format!("edgenet: {n} sends only with its MAC"),
            vec![
                iif.clone(),
                payload_ne("ether", "saddr", json!(mac)),
                drop(),
            ],
        );
        rule(
            format!("edgenet: {n} answers ARP only with its MAC"),
            vec![
                iif.clone(),
                payload_ne("arp", "saddr ether", json!(mac)),
                drop(),
            ],
        );
        let mut arp_ips = vec![Element::Addr(Ipv4Addr::UNSPECIFIED)];
        arp_ips.extend(own(p));
        rule(
            format!("edgenet: {n} claims only its own addresses in ARP"),
            vec![
                iif.clone(),
                payload_ne("arp", "saddr ip", set(arp_ips)),
                drop(),
            ],
        );
        let mut ips = own(p);
        if let Some(pods) = p.pod_cidr {
            ips.push(Element::Net(pods));
        }
        rule(
            format!("edgenet: {n} sends only from its own addresses"),
            vec![iif.clone(), payload_ne("ip", "saddr", set(ips)), drop()],
        );
        // Offline on an internal switch: the `ip` table keeps IPv4 on the switch.
        if let Some(Offline::Lan(lan)) = bp.offline {
            rule(
                format!("edgenet: offline, {n} reaches only the LAN {lan}"),
                vec![
                    iif.clone(),
                    payload_ne(
                        "ip",
                        "daddr",
                        set(vec![Element::Net(lan), Element::Addr(Ipv4Addr::BROADCAST)]),
                    ),
                    drop(),
                ],
            );
        }
    }
    rules.extend(forward);
    Ruleset {
        family: FAMILY.to_string(),
        table: bp.table.clone(),
        chains: vec![chain, forward_chain],
        rules,
        other: Vec::new(),
        table_attrs: Default::default(),
    }
}

#[derive(Debug, Clone, Copy)]
enum Element {
    Addr(Ipv4Addr),
    Range(Ipv4Addr, Ipv4Addr),
    Net(Ipv4Net),
}

impl Element {
    fn first(self) -> Ipv4Addr {
        match self {
            Element::Addr(a) | Element::Range(a, _) => a,
            Element::Net(n) => n.network(),
        }
    }
    fn last(self) -> Ipv4Addr {
        match self {
            Element::Addr(a) | Element::Range(_, a) => a,
            Element::Net(n) => n.broadcast(),
        }
    }
}

/// The node's address, VIP and service range, as set elements.
fn own(p: &PortGuard) -> Vec<Element> {
    let mut v: Vec<Element> = p.addresses.iter().map(|a| Element::Addr(*a)).collect();
    if let Some((a, b)) = p.service_range {
        v.push(if a == b {
            Element::Addr(a)
        } else {
            Element::Range(a, b)
        });
    }
    v
}

/// An anonymous interval set as nft lists it: sorted, elements that overlap or touch merged
/// (nft merges them the same way), a one-element set written as the plain value.
fn set(mut elems: Vec<Element>) -> Value {
    elems.sort_by_key(|e| (e.first(), e.last()));
    let mut merged: Vec<(Ipv4Addr, Ipv4Addr)> = Vec::new();
    for e in elems {
        let (a, b) = (e.first(), e.last());
        match merged.last_mut() {
            Some((_, end)) if u32::from(a) <= u32::from(*end).saturating_add(1) => {
                if b > *end {
                    *end = b;
                }
            }
            _ => merged.push((a, b)),
        }
    }
    let render = |(a, b): (Ipv4Addr, Ipv4Addr)| -> Value {
        if a == b {
            return json!(a.to_string());
        }
        // A range that is exactly a prefix is listed as one.
        let span = u32::from(b) - u32::from(a) + 1;
        if span.is_power_of_two() && u32::from(a) % span == 0 {
            let len = 32 - span.trailing_zeros();
            return json!({"prefix": {"addr": a.to_string(), "len": len}});
        }
        json!({"range": [a.to_string(), b.to_string()]})
    };
    if merged.len() == 1 {
        // nft keeps a one-element anonymous set as a set when it is a range or prefix.
        let v = render(merged[0]);
        return if v.is_string() {
            v
        } else {
            json!({"set": [v]})
        };
    }
    json!({"set": merged.into_iter().map(render).collect::<Vec<_>>()})
}

fn matches(op: &str, left: Value, right: Value) -> Value {
    object([(
        "match",
        object([("op", op.into()), ("left", left), ("right", right)]),
    )])
}

fn payload_ne(protocol: &str, field: &str, right: Value) -> Value {
    matches(
        "!=",
        json!({"payload": {"protocol": protocol, "field": field}}),
        right,
    )
}

fn drop() -> Value {
    json!({"drop": null})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(port: &str, ip: [u8; 4]) -> PortGuard {
        PortGuard {
            port: port.into(),
            node: format!("n-{port}"),
            mac: MacAddr([2, 0, 0, 0, 0, ip[3]]),
            addresses: vec![Ipv4Addr::from(ip)],
            service_range: None,
            pod_cidr: None,
        }
    }

    #[test]
    fn each_port_is_held_to_its_mac_and_addresses() {
        let mut l = guard("enl", [192, 168, 0, 2]);
        l.service_range = Some(([192, 168, 0, 4].into(), [192, 168, 0, 13].into()));
        l.pod_cidr = Some("10.42.0.0/16".parse().unwrap());
        let w = guard("enw", [192, 168, 0, 3]);
        let rs = build(&BridgePlan {
            table: "edgenet_abc".into(),
            ports: vec![l, w],
            offline: None,
        });
        assert_eq!(
            rs.to_text(),
            [
                r#"prerouting: iifname != "enl" iifname != "enw" accept"#,
                r#"prerouting: iifname "enl" ether type != { ip, arp } drop"#,
                r#"prerouting: iifname "enl" ether saddr != 02:00:00:00:00:02 drop"#,
                r#"prerouting: iifname "enl" arp saddr ether != 02:00:00:00:00:02 drop"#,
                r#"prerouting: iifname "enl" arp saddr ip != { 0.0.0.0, 192.168.0.2, 192.168.0.4-192.168.0.13 } drop"#,
                r#"prerouting: iifname "enl" ip saddr != { 10.42.0.0/16, 192.168.0.2, 192.168.0.4-192.168.0.13 } drop"#,
                r#"prerouting: iifname "enw" ether type != { ip, arp } drop"#,
                r#"prerouting: iifname "enw" ether saddr != 02:00:00:00:00:03 drop"#,
                r#"prerouting: iifname "enw" arp saddr ether != 02:00:00:00:00:03 drop"#,
                r#"prerouting: iifname "enw" arp saddr ip != { 0.0.0.0, 192.168.0.3 } drop"#,
                r#"prerouting: iifname "enw" ip saddr != 192.168.0.3 drop"#,
                r#"forward: oifname "enl" ether type != { ip, arp } drop"#,
                r#"forward: oifname "enw" ether type != { ip, arp } drop"#,
            ]
        );
        assert!(rs.is_marked());
    }

    #[test]
    fn offline_lets_only_ipv4_and_arp_out_and_on_a_lan_only_to_the_lan() {
        let rs = build(&BridgePlan {
            table: "edgenet_abc".into(),
            ports: vec![guard("enl", [198, 18, 0, 101])],
            offline: Some(Offline::Lan("198.18.0.0/24".parse().unwrap())),
        });
        let text = rs.to_text();
        assert!(
            text.contains(
                &r#"prerouting: iifname "enl" ether type != { ip, arp } drop"#.to_string()
            ),
            "{text:#?}"
        );
        assert!(
            text.contains(
                &r#"prerouting: iifname "enl" ip daddr != { 198.18.0.0/24, 255.255.255.255 } drop"#
                    .to_string()
            ),
            "{text:#?}"
        );
    }

    #[test]
    fn the_guard_rule_stays_within_the_kernels_expressions_per_rule() {
        let ports = |n: u8| BridgePlan {
            table: "edgenet_abc".into(),
            ports: (0..n)
                .map(|i| guard(&format!("en{i}"), [10, 0, 0, i]))
                .collect(),
            offline: None,
        };
        let guarded = |n| build(&ports(n)).to_text()[0].ends_with("accept");
        assert!(guarded(GUARDED_PORTS as u8));
        assert!(!guarded(GUARDED_PORTS as u8 + 1));
    }

    #[test]
    fn sets_merge_touching_elements_like_nft() {
        let s = set(vec![
            Element::Addr([10, 0, 0, 5].into()),
            Element::Addr([10, 0, 0, 4].into()),
            Element::Range([10, 0, 0, 6].into(), [10, 0, 0, 9].into()),
        ]);
        assert_eq!(s, json!({"set": [{"range": ["10.0.0.4", "10.0.0.9"]}]}));
        assert_eq!(
            set(vec![Element::Addr([10, 0, 0, 1].into())]),
            json!("10.0.0.1")
        );
    }
}
