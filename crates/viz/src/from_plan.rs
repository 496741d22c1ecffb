//! The picture of one machine's plan (`edgenet plan --output svg`).

use edgenet_core::plan::{
    DnsSource, MacAssignment, NodePlan, NodeRole, Outbound, Plan, SwitchKind,
};

use crate::model::{Forward, Machine, Node, Switch, Topology, Uplink, UplinkKind};

pub fn from_plan(plan: &Plan) -> Topology {
    Topology {
        title: format!(
            "edgenet plan — machine {} ({})",
            plan.machine.index, plan.machine.name
        ),
        subtitle: vec![format!(
            "{}, {}{}",
            plan.deployment_type.as_str(),
            plan.distribution.as_str(),
            if plan.joining {
                ", joins a running cluster"
            } else {
                ""
            }
        )],
        lan: None,
        machines: vec![machine(plan)],
        cluster_info: Vec::new(),
        problems: Vec::new(),
    }
}

/// One machine as its plan describes it.
pub fn machine(plan: &Plan) -> Machine {
    let s = &plan.switch;
    let uplink = match (s.kind, s.outbound) {
        (_, Outbound::Offline) => Uplink {
            kind: UplinkKind::Closed,
            title: "uplink CLOSED (offline)".into(),
            lines: vec![
                "InternetDisabled: nothing leaves the switch".into(),
                "nodes reach the host and each other only".into(),
            ],
        },
        (SwitchKind::Internal, _) => Uplink {
            kind: UplinkKind::Nat,
            title: "host uplink".into(),
            lines: vec![format!("outbound NAT (masquerade) of {}", s.subnet)],
        },
        (SwitchKind::External, _) => Uplink {
            kind: UplinkKind::Adapter,
            title: format!("adapter {}", s.adapter.as_deref().unwrap_or("?")),
            lines: vec![
                format!("a port of {}", s.name),
                format!("LAN {}, router {}", s.subnet, s.gateway),
            ],
        },
    };
    let mut switch_lines = vec![
        format!(
            "{} switch",
            match s.kind {
                SwitchKind::Internal => "internal",
                SwitchKind::External => "external",
            }
        ),
        format!("subnet {}", s.subnet),
    ];
    match s.host_address {
        Some(host) => switch_lines.push(format!("host .1 {host}")),
        None => switch_lines.push(format!("gateway {}", s.gateway)),
    }
    switch_lines.push(format!("MTU {}", mtu(s.mtu)));
    let mut info = vec![format!(
        "control plane {} (API endpoint)",
        plan.control_plane_endpoint
    )];
    info.push(match plan.service_range {
        Some(r) => format!("service IPs {} – {} ({})", r.start, r.end, r.size),
        None => "service IPs none".into(),
    });
    if let Some(n) = plan.nodes.first() {
        info.push(dns(n));
        info.push(proxy(n));
        if !n.proxy.no_proxy.is_empty() {
            info.push(no_proxy(&n.proxy.no_proxy));
        }
    }
    let forwards = plan
        .port_forwards
        .iter()
        .filter_map(|f| {
            let node = plan.nodes.iter().find(|n| n.kind == f.node)?;
            Some(Forward {
                protocol: f.protocol.as_str().to_string(),
                host_port: f.host_port,
                node: node.name.clone(),
                node_port: f.node_port,
            })
        })
        .collect();
    Machine {
        name: plan.machine.name.clone(),
        heading: format!(
            "machine {}: {} — {}, {}",
            plan.machine.index,
            plan.machine.name,
            plan.deployment_type.as_str(),
            plan.distribution.as_str()
        ),
        uplink,
        switch: Switch {
            name: s.name.clone(),
            lines: switch_lines,
        },
        nodes: plan.nodes.iter().map(node).collect(),
        forwards,
        info,
    }
}

fn node(n: &NodePlan) -> Node {
    Node {
        name: n.name.clone(),
        lines: vec![
            format!(
                "{} · {}",
                n.kind.as_str(),
                match n.role {
                    NodeRole::ControlPlane => "control-plane",
                    NodeRole::Worker => "worker",
                }
            ),
            format!("address {}", n.address),
            match n.mac {
                MacAssignment::Static { address } => format!("MAC {address}"),
                MacAssignment::GeneratedAtDeploy => GENERATED_MAC.into(),
            },
            format!("MTU {}", mtu(n.mtu)),
        ],
        address: n.address.addr().to_string(),
    }
}

/// The line of a node whose MAC deploy generated, once the MAC is known (from the state).
pub fn generated_mac_line(mac: &str) -> String {
    format!("MAC {mac} (generated at deploy)")
}

/// Puts the MACs deploy generated (the state's) in place of "generated at deploy".
pub fn set_generated_macs(m: &mut Machine, macs: &dyn Fn(&str) -> Option<String>) {
    for n in &mut m.nodes {
        let Some(mac) = macs(&n.name) else {
            continue;
        };
        for line in &mut n.lines {
            if line == GENERATED_MAC {
                *line = generated_mac_line(&mac);
            }
        }
    }
}

const GENERATED_MAC: &str = "MAC generated at deploy";

fn mtu(m: Option<u32>) -> String {
    m.map_or("of the adapter".into(), |m| m.to_string())
}

fn dns(n: &NodePlan) -> String {
    if n.dns_source == DnsSource::HostAtDeploy {
        return "DNS the host's, found at deploy".into();
    }
    if n.dns_servers.is_empty() {
        return "DNS none".into();
    }
    let list: Vec<String> = n.dns_servers.iter().map(|d| d.to_string()).collect();
    format!(
        "DNS {} ({})",
        list.join(", "),
        if n.dns_source == DnsSource::Configured {
            "configured"
        } else {
            "host"
        }
    )
}

fn proxy(n: &NodePlan) -> String {
    let p = &n.proxy;
    match (&p.http_proxy, &p.https_proxy) {
        (None, None) => "proxy none".into(),
        (Some(h), Some(s)) if h == s => format!("proxy {}", redact_proxy(h)),
        (h, s) => {
            let mut parts = Vec::new();
            if let Some(h) = h {
                parts.push(format!("http {}", redact_proxy(h)));
            }
            if let Some(s) = s {
                parts.push(format!("https {}", redact_proxy(s)));
            }
            format!("proxy {}", parts.join(", "))
        }
    }
}

/// `no_proxy`, one entry after another (so the line wraps between entries), each redacted
/// like a proxy URL.
fn no_proxy(list: &str) -> String {
    let entries: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(redact_proxy)
        .collect();
    format!("no_proxy {}", entries.join(", "))
}

/// A proxy URL fit to be shown: its credentials replaced by `***` (`http://user:***@proxy`,
/// or `http://***@proxy` when the user part alone is the secret, a token), and a query
/// string or fragment replaced by `?***` / `#***`. Pictures are shared, credentials must
/// not be.
pub fn redact_proxy(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = url[..start].to_string();
    match authority.rfind('@') {
        Some(at) => {
            match authority[..at].split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***@");
                }
                None => out.push_str("***@"),
            }
            out.push_str(&authority[at + 1..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[authority_end..];
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    out.push_str(&tail[..path_end]);
    let extra = &tail[path_end..];
    if extra.starts_with('?') {
        out.push_str("?***");
    }
    if extra.contains('#') {
        out.push_str("#***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_proxy;

    #[test]
    fn passwords_are_redacted_and_the_rest_kept() {
        assert_eq!(
            redact_proxy("http://alice:s3cret@proxy:3128"),
            "http://alice:***@proxy:3128"
        );
        assert_eq!(
            redact_proxy("http://alice:p@ss@proxy:3128/x"),
            "http://alice:***@proxy:3128/x"
        );
        assert_eq!(redact_proxy("http://proxy:3128"), "http://proxy:3128");
        assert_eq!(
            redact_proxy("http://proxy:3128/a@b"),
            "http://proxy:3128/a@b"
        );
        assert_eq!(redact_proxy("u:p@proxy:80"), "u:***@proxy:80");
    }

    #[test]
    fn a_token_alone_and_query_secrets_are_redacted() {
        let token = "ghp_T0KEN";
        let r = redact_proxy(&format!("http://{token}@proxy:3128"));
        assert_eq!(r, "http://***@proxy:3128");
        assert!(!r.contains(token));
        assert_eq!(
            redact_proxy("http://bob@proxy:3128"),
            "http://***@proxy:3128"
        );
        let r = redact_proxy("http://proxy:3128/p?x=PASSWD&y=1");
        assert_eq!(r, "http://proxy:3128/p?***");
        assert!(!r.contains("PASSWD"));
        assert_eq!(
            redact_proxy("http://a:b@proxy:3128?key=PASSWD#frag"),
            "http://a:***@proxy:3128?***#***"
        );
    }
}
