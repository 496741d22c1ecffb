//! The picture of the live kernel (`edgenet status --output svg`): the deployed plan's
//! machine with what the kernel really has, and the drift drawn where it is.

use edgenet_deploy::StatusReport;

use crate::from_plan;
use edgenet_core::plan::{Outbound, SwitchKind};

use crate::model::{Location, Problem, Topology, Uplink, UplinkKind};

pub fn from_status(report: &StatusReport) -> Topology {
    let Some(plan) = &report.plan else {
        let mut topo = Topology {
            title: "edgenet status — nothing deployed".into(),
            subtitle: vec![format!("state directory {}", report.state_dir.display())],
            ..Default::default()
        };
        for d in &report.drift {
            topo.problems
                .push(Problem::drift(Location::Picture, d.clone()));
        }
        return topo;
    };
    let mut machine = from_plan::machine(plan);

    // What the kernel has, in place of what the plan says.
    if let Some(sw) = &report.switch {
        machine.switch.lines.push(format!(
            "live: {}{}",
            if !sw.present {
                "missing"
            } else if sw.up {
                "up"
            } else {
                "down"
            },
            sw.mtu.map_or(String::new(), |m| format!(", MTU {m}"))
        ));
    }
    // An external switch needs neither a table nor forwarding: nothing to say about them.
    let wants_table = plan.switch.outbound != Outbound::Direct;
    if let Some(table) = report.firewall_table.as_ref().filter(|_| wants_table) {
        machine.uplink.lines.push(format!(
            "nftables table {table} {}",
            if report.firewall_present {
                "present"
            } else {
                "absent"
            }
        ));
    }
    if let Some(fwd) = report
        .ip_forward
        .as_ref()
        .filter(|_| plan.switch.kind == SwitchKind::Internal)
    {
        machine
            .uplink
            .lines
            .push(format!("net.ipv4.ip_forward = {fwd}"));
    }
    // Offline is the table's doing: without it, nothing is closed.
    if machine.uplink.kind == UplinkKind::Closed && !report.firewall_present {
        machine.uplink = Uplink {
            kind: UplinkKind::Nat,
            title: "uplink NOT closed (offline planned)".into(),
            lines: vec![
                "the firewall table that closes it is missing:".into(),
                "nothing stops traffic leaving the switch".into(),
            ],
        };
    }
    for node in &mut machine.nodes {
        let Some(live) = report.nodes.iter().find(|l| l.name == node.name) else {
            continue;
        };
        if !live.present {
            node.lines.push("live: not running".into());
            continue;
        }
        node.lines.push(format!(
            "live: {} {}",
            if live.up { "up" } else { "down" },
            if live.addresses.is_empty() {
                "no address".into()
            } else {
                live.addresses.join(", ")
            }
        ));
        if let Some(mac) = &live.mac {
            node.lines.push(format!("live MAC {mac}"));
        }
        if let Some(m) = live.mtu {
            node.lines.push(format!("live MTU {m}"));
        }
    }
    // The MAC deploy generated, as the state keeps it (a node showing another is drift).
    let state_macs = |name: &str| report.generated_macs.get(name).cloned();
    from_plan::set_generated_macs(&mut machine, &state_macs);
    // Status's drift list is the one source: the picture draws each item where it is.
    let mut problems: Vec<Problem> = report
        .drift
        .iter()
        .map(|d| Problem::drift(locate_drift(d, &machine_names(plan)), d))
        .collect();
    problems.dedup();

    Topology {
        title: format!(
            "edgenet status — deployment {} of machine {}",
            report.deployment_id.as_deref().unwrap_or("?"),
            plan.machine.name
        ),
        subtitle: vec![
            format!("the live kernel; state in {}", report.state_dir.display()),
            if problems.is_empty() {
                "no drift: the kernel matches the plan".into()
            } else {
                format!("{} drift item(s), drawn where they are", problems.len())
            },
        ],
        lan: None,
        machines: vec![machine],
        cluster_info: Vec::new(),
        problems,
    }
}

/// The names a drift message can mention: the machine, its switch, adapter and nodes.
pub struct Names {
    pub machine: String,
    pub switch: String,
    pub adapter: Option<String>,
    pub nodes: Vec<String>,
}

fn machine_names(plan: &edgenet_core::plan::Plan) -> Names {
    Names {
        machine: plan.machine.name.clone(),
        switch: plan.switch.name.clone(),
        adapter: plan.switch.adapter.clone(),
        nodes: plan.nodes.iter().map(|n| n.name.clone()).collect(),
    }
}

/// Where a drift message (status reports them as text) is about: the node it names, the
/// firewall, the adapter, the switch, or else the machine as a whole.
pub fn locate_drift(text: &str, names: &Names) -> Location {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',' || c == ':')
        .collect();
    let has = |name: &str| words.contains(&name);
    let lower = text.to_ascii_lowercase();
    let machine = names.machine.clone();
    // `port forward tcp/8080 → NODE:80 is missing …`: the forwards into NODE.
    if lower.starts_with("port forward") {
        if let Some(node) = names
            .nodes
            .iter()
            .find(|n| text.contains(&format!("→ {n}:")))
        {
            return Location::Forwards {
                machine,
                node: node.clone(),
            };
        }
        return Location::Firewall(machine);
    }
    if let Some(node) = names.nodes.iter().find(|n| has(n)) {
        return Location::Node {
            machine,
            node: node.clone(),
        };
    }
    if ["firewall", "nftables", "iptables", "nft ", "ip_forward"]
        .iter()
        .any(|k| lower.contains(k))
    {
        return Location::Firewall(machine);
    }
    if names.adapter.as_deref().is_some_and(has) || lower.starts_with("adapter") {
        return Location::Uplink(machine);
    }
    if has(&names.switch) || lower.contains("bridge") {
        return Location::Switch(machine);
    }
    Location::Machine(machine)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            machine: "edge01".into(),
            switch: "aksedgesw-int".into(),
            adapter: Some("eth0".into()),
            nodes: vec!["edge01-ledge".into(), "edge01-wedge".into()],
        }
    }

    #[test]
    fn drift_messages_are_located_at_what_they_name() {
        let n = names();
        let node = |name: &str| Location::Node {
            machine: "edge01".into(),
            node: name.into(),
        };
        assert_eq!(
            locate_drift("node edge01-wedge (edge01-wedge-a1b2c3) is missing", &n),
            node("edge01-wedge")
        );
        assert_eq!(
            locate_drift("node edge01-ledge lacks its address 192.168.0.2/24", &n),
            node("edge01-ledge")
        );
        assert_eq!(
            locate_drift("nftables table ip edgenet_a1 is missing", &n),
            Location::Firewall("edge01".into())
        );
        assert_eq!(
            locate_drift(
                "a foreign firewall drops forwarded traffic (iptables FORWARD policy DROP)",
                &n
            ),
            Location::Firewall("edge01".into())
        );
        assert_eq!(
            locate_drift(
                "port forward tcp/8080 → edge01-wedge:80 is missing from nftables table ip edgenet_a1",
                &n
            ),
            Location::Forwards {
                machine: "edge01".into(),
                node: "edge01-wedge".into()
            }
        );
        assert_eq!(
            locate_drift(
                "node edge01-ledge: its host-side veth vl-a1 has MTU 1400, the plan says 1500",
                &n
            ),
            node("edge01-ledge")
        );
        assert_eq!(
            locate_drift(
                "net.ipv4.ip_forward is 0: the NAT switch aksedgesw-int cannot route",
                &n
            ),
            Location::Firewall("edge01".into())
        );
        assert_eq!(
            locate_drift("adapter eth0 is down", &n),
            Location::Uplink("edge01".into())
        );
        assert_eq!(
            locate_drift("bridge aksedgesw-int has MTU 1400, the plan says 1500", &n),
            Location::Switch("edge01".into())
        );
        assert_eq!(
            locate_drift("the last run stopped while Applying: run deploy again", &n),
            Location::Machine("edge01".into())
        );
    }
}
