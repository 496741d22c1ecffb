//! The picture of a lab's cluster (`edgenet lab status --output html`): every machine with
//! its switch and nodes, hanging on the lab's LAN, and the failed cells of the reachability
//! matrix drawn on the element they start from.

use std::net::Ipv4Addr;

use edgenet_core::plan::{Plan, SwitchKind};
use edgenet_lab::topology as lab;
use edgenet_lab::{Cell, Matrix, Row};

use crate::from_plan;
use crate::model::{Lan, Location, Machine, Problem, Switch, Topology, Uplink, UplinkKind};

/// One lab machine: its name and LAN address, and the plan its deployment applied (`None`:
/// nothing deployed on it).
#[derive(Debug, Clone)]
pub struct LabMachineView {
    pub name: String,
    pub address: Ipv4Addr,
    pub plan: Option<Plan>,
}

/// The id of a matrix cell's row in the lab page, so the picture can link to it.
pub fn cell_anchor(index: usize) -> String {
    format!("cell-{index}")
}

pub fn from_lab(name: &str, machines: &[LabMachineView], matrix: &Matrix) -> Topology {
    let views: Vec<Machine> = machines.iter().map(machine).collect();
    let mut problems = Vec::new();
    for (i, cell) in matrix.cells.iter().enumerate() {
        if cell.ok {
            continue;
        }
        problems.push(Problem {
            at: locate_cell(cell, &views),
            tag: "FAIL".into(),
            text: format!(
                "{} {} → {}: expected {}, got {}",
                cell.row.as_str(),
                cell.from,
                cell.to,
                cell.expected.as_str(),
                cell.actual.as_str()
            ),
            anchor: Some(cell_anchor(i)),
        });
    }
    let failed = problems.len();
    let nodes: usize = views.iter().map(|m| m.nodes.len()).sum();
    Topology {
        title: format!("edgenet lab {name}"),
        subtitle: vec![
            format!("{} machine(s), {nodes} node(s) on the LAN", views.len()),
            format!(
                "{} of {} reachability cells as expected",
                matrix.cells.len() - failed,
                matrix.cells.len()
            ),
        ],
        lan: Some(Lan {
            title: format!("LAN {}", lab::LAN_SUBNET),
            lines: vec![
                format!(
                    "router {}: DNS forwarder, proxy :{}",
                    lab::LAN_ROUTER,
                    lab::PROXY_PORT
                ),
                format!("peer {} probes LAN→node", lab::LAN_PEER),
            ],
            internet: Some((
                format!("internet {}", lab::INET_SUBNET),
                vec![
                    format!("HTTP {} ({})", lab::HTTP_SERVER, lab::TEST_NAME),
                    format!("DNS {}", lab::DNS_UPSTREAM),
                ],
            )),
        }),
        machines: views,
        problems,
    }
}

fn machine(m: &LabMachineView) -> Machine {
    let adapter = format!("eth0 {} on the LAN", m.address);
    let Some(plan) = &m.plan else {
        return Machine {
            name: m.name.clone(),
            heading: format!("{} {} — nothing deployed", m.name, m.address),
            uplink: Uplink {
                kind: UplinkKind::Adapter,
                title: "adapter eth0".into(),
                lines: vec![adapter],
            },
            switch: Switch {
                name: "no switch".into(),
                lines: vec!["edgenet has not deployed here".into()],
            },
            nodes: Vec::new(),
            forwards: Vec::new(),
            info: Vec::new(),
        };
    };
    let mut view = from_plan::machine(plan);
    // A lab machine's nodes take the lab machine's name (the plan knows it as this host).
    view.name = m.name.clone();
    view.heading = format!(
        "{} {} — {}, {}",
        m.name,
        m.address,
        plan.deployment_type.as_str(),
        plan.distribution.as_str()
    );
    if plan.switch.kind == SwitchKind::Internal {
        view.uplink.lines.insert(0, adapter);
    } else {
        view.uplink.lines.push(format!("machine {}", m.address));
    }
    view
}

/// A failed cell is drawn on the node it starts from, or (LAN→node) the node it targets, or
/// the machine it names.
fn locate_cell(cell: &Cell, machines: &[Machine]) -> Location {
    let first = |s: &str| s.split_whitespace().next().unwrap_or("").to_string();
    let order = if cell.row == Row::LanToNode {
        [first(&cell.to), first(&cell.from)]
    } else {
        [first(&cell.from), first(&cell.to)]
    };
    for word in &order {
        for m in machines {
            if let Some(n) = m.nodes.iter().find(|n| &n.name == word) {
                return Location::Node {
                    machine: m.name.clone(),
                    node: n.name.clone(),
                };
            }
            if &m.name == word {
                return Location::Machine(m.name.clone());
            }
        }
    }
    if cell.from.starts_with("LAN") {
        return Location::Lan;
    }
    Location::Picture
}
