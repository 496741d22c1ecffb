//! The picture of the live kernel (`edgenet status --output svg`): the deployed plan's
//! machine with what the kernel really has, and the drift drawn where it is.

use edgenet_deploy::StatusReport;

use crate::from_plan;
use crate::model::{Location, Problem, Topology};

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
    let name = machine.name.clone();

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
    if let Some(table) = &report.firewall_table {
        machine.uplink.lines.push(format!(
            "nftables table ip {table} {}",
            if report.firewall_present {
                "present"
            } else {
                "absent"
            }
        ));
    }
    if let Some(fwd) = &report.ip_forward {
        machine
            .uplink
            .lines
            .push(format!("net.ipv4.ip_forward = {fwd}"));
    }
    let mut problems = Vec::new();
    for node in &mut machine.nodes {
        let Some(live) = report.nodes.iter().find(|l| l.name == node.name) else {
            continue;
        };
        let planned = plan.nodes.iter().find(|n| n.name == node.name);
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
        // The status report does not compare a node's MTU; the picture does, so a changed MTU
        // is drawn on the node.
        if let (Some(want), Some(have)) = (planned.and_then(|p| p.mtu), live.mtu) {
            let already = report
                .drift
                .iter()
                .any(|d| d.contains(&node.name) && d.contains("MTU"));
            if want != have && !already {
                problems.push(Problem::drift(
                    Location::Node {
                        machine: name.clone(),
                        node: node.name.clone(),
                    },
                    format!("node {} has MTU {have}, the plan says {want}", node.name),
                ));
            }
        }
    }
    for d in &report.drift {
        problems.push(Problem::drift(locate_drift(d, &machine_names(plan)), d));
    }
    problems.sort_by_key(|p| p.text.clone());
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
    if let Some(node) = names.nodes.iter().find(|n| has(n)) {
        return Location::Node {
            machine,
            node: node.clone(),
        };
    }
    if ["firewall", "nftables", "iptables", "nft "]
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
