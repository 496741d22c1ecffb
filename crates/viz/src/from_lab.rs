//! The picture of a lab's cluster (`edgenet lab status --output html`): every machine with
//! its switch and nodes, hanging on the lab's LAN, and the failed cells of the reachability
//! matrix drawn on the node they are about.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use edgenet_core::plan::{Plan, SwitchKind};
use edgenet_lab::topology as lab;
use edgenet_lab::{Cell, Matrix, Row};

use crate::from_plan;
use crate::model::{Lan, Location, Machine, Problem, Switch, Topology, Uplink, UplinkKind};

/// One lab machine: its name (the lab's slot) and LAN address, and the plan its deployment
/// applied (`None`: nothing deployed on it).
#[derive(Debug, Clone)]
pub struct LabMachineView {
    pub name: String,
    pub address: Ipv4Addr,
    pub plan: Option<Plan>,
    /// The MACs deploy generated, by node name (from the machine's state).
    pub macs: BTreeMap<String, String>,
    /// Nodes of the plan whose namespace is gone.
    pub missing_nodes: Vec<String>,
}

/// The id of a matrix cell's row in the lab page, so the picture can link to it.
pub fn cell_anchor(index: usize) -> String {
    format!("cell-{index}")
}

/// A node that several sources fail to reach is drawn as the unreachable one, not its
/// sources: those are most likely fine.
const SEVERAL: usize = 2;

pub fn from_lab(name: &str, machines: &[LabMachineView], matrix: &Matrix) -> Topology {
    let mut views: Vec<Machine> = machines.iter().map(machine).collect();
    let mut problems = Vec::new();
    for (m, view) in machines.iter().zip(&views) {
        for node in &m.missing_nodes {
            problems.push(Problem {
                at: Location::Node {
                    machine: view.name.clone(),
                    node: node.clone(),
                },
                tag: "DOWN".into(),
                text: format!("node {node}: its network namespace is gone"),
                anchor: None,
                also: Vec::new(),
            });
        }
    }
    problems.extend(cell_problems(&matrix.cells, &views));
    let cluster_info = shared_info(&mut views);
    let failed = matrix.cells.iter().filter(|c| !c.ok).count();
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
        cluster_info,
        problems,
    }
}

/// When every machine (two or more) has the same cluster labels, they are the cluster's:
/// taken out of the machines, to be drawn once.
fn shared_info(views: &mut [Machine]) -> Vec<String> {
    let with: Vec<&Machine> = views.iter().filter(|m| !m.info.is_empty()).collect();
    if with.len() < 2 || with.len() != views.len() || with.iter().any(|m| m.info != with[0].info) {
        return Vec::new();
    }
    let info = with[0].info.clone();
    for m in views.iter_mut() {
        m.info.clear();
    }
    info
}

fn first(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or("")
}

/// The failed cells as problems. A node→node cell failed by a node that several sources
/// cannot reach goes on that node, summed up ("unreachable from N sources"); any other goes
/// where it starts ("cannot reach X").
fn cell_problems(cells: &[Cell], views: &[Machine]) -> Vec<Problem> {
    let mut into: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, c) in cells.iter().enumerate() {
        if !c.ok && c.row == Row::NodeToNode {
            into.entry(first(&c.to)).or_default().push(i);
        }
    }
    let mut problems = Vec::new();
    for (dest, list) in into.iter().filter(|(_, l)| l.len() >= SEVERAL) {
        let sources: Vec<&str> = list.iter().map(|&i| first(&cells[i].from)).collect();
        let named = if sources.len() > 3 {
            format!("{}, …", sources[..3].join(", "))
        } else {
            sources.join(", ")
        };
        problems.push(Problem {
            at: node_location(dest, views).unwrap_or(Location::Picture),
            tag: "FAIL".into(),
            text: format!(
                "{dest} unreachable from {} sources (node→node: {named})",
                sources.len()
            ),
            anchor: Some(cell_anchor(list[0])),
            also: list[1..].iter().map(|&i| cell_anchor(i)).collect(),
        });
    }
    for (i, cell) in cells.iter().enumerate() {
        if cell.ok {
            continue;
        }
        let text = if cell.row == Row::NodeToNode {
            if into
                .get(first(&cell.to))
                .is_some_and(|l| l.len() >= SEVERAL)
            {
                continue;
            }
            format!(
                "{} cannot reach {} (node→node, {})",
                first(&cell.from),
                cell.to,
                cell.actual.as_str()
            )
        } else {
            format!(
                "{} {} → {}: expected {}, got {}",
                cell.row.as_str(),
                cell.from,
                cell.to,
                cell.expected.as_str(),
                cell.actual.as_str()
            )
        };
        problems.push(Problem {
            at: locate_cell(cell, views),
            tag: "FAIL".into(),
            text,
            anchor: Some(cell_anchor(i)),
            also: Vec::new(),
        });
    }
    problems
}

fn node_location(name: &str, machines: &[Machine]) -> Option<Location> {
    machines.iter().find_map(|m| {
        m.nodes
            .iter()
            .find(|n| n.name == name)
            .map(|n| Location::Node {
                machine: m.name.clone(),
                node: n.name.clone(),
            })
    })
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
    // Ids take the lab's slot (unique in the lab); the heading shows the config's machine
    // name with it.
    view.name = m.name.clone();
    view.heading = format!(
        "{} (lab {}, {}) — {}, {}",
        plan.machine.name,
        m.name,
        m.address,
        plan.deployment_type.as_str(),
        plan.distribution.as_str()
    );
    from_plan::set_generated_macs(&mut view, &|n: &str| m.macs.get(n).cloned());
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
