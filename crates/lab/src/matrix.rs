//! The reachability matrix of `lab status`: what each deployment type promises
//! ([`Expectations`]), the cells as measured ([`Cell`], [`Matrix`]) and their table. How the
//! cells are planned and run is in `status.rs`; how one cell is measured, in
//! `matrix_probes.rs`.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use edgenet_core::plan::{NodeKind, Outbound, SwitchKind};

/// A node to probe, as the deployment reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// e.g. `m1-ledge`.
    pub name: String,
    /// The lab machine the node runs on (`m1`). LAN traffic to a node whose address is
    /// outside the LAN (a single machine's internal switch) is routed via that machine; a
    /// node with an address on the LAN (scalable cluster) is reached directly.
    pub machine: String,
    /// The node's network namespace.
    pub netns: String,
    pub address: Ipv4Addr,
    /// The node's gateway: the host's switch address (`.1`) on a single machine, the LAN
    /// router (`Ip4GatewayAddress`) in a scalable cluster. The node→host row pings it.
    pub host: Ipv4Addr,
    pub kind: NodeKind,
    /// The node's resolv.conf, used for the by-name row; `None` = the machine's.
    pub resolv_conf: Option<PathBuf>,
    /// A `vm` node: its QEMU guest agent's socket. Its probes run inside the guest through
    /// the agent (`netns` is then only the guest's name); `None`: a netns node.
    #[serde(default)]
    pub guest_agent: Option<PathBuf>,
}

/// What each row should show, from the deployment type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expectations {
    pub node_to_host: bool,
    pub node_to_node: bool,
    pub node_to_internet: bool,
    pub lan_to_node: bool,
    /// Which pairs the node→node row probes: every pair of nodes across all machines (a
    /// scalable cluster, all nodes on one LAN), or only nodes on the same machine (each
    /// single machine has its own internal switch, and nodes of different machines may even
    /// have the same address).
    #[serde(default)]
    pub node_to_node_across_machines: bool,
}

impl Expectations {
    /// Single machine with outbound NAT: everything outbound works, nothing comes in.
    pub const NAT: Expectations = Expectations {
        node_to_host: true,
        node_to_node: true,
        node_to_internet: true,
        lan_to_node: false,
        node_to_node_across_machines: false,
    };
    /// Single machine with `InternetDisabled`: the nodes reach the host and each other only.
    pub const OFFLINE: Expectations = Expectations {
        node_to_host: true,
        node_to_node: true,
        node_to_internet: false,
        lan_to_node: false,
        node_to_node_across_machines: false,
    };
    /// Scalable cluster: every node is on the LAN with a static address — it reaches its
    /// gateway (the LAN router), every other node of every machine, and the internet through
    /// the router; a LAN host reaches it directly.
    pub const SCALABLE: Expectations = Expectations {
        node_to_host: true,
        node_to_node: true,
        node_to_internet: true,
        lan_to_node: true,
        node_to_node_across_machines: true,
    };
    /// Scalable cluster with `InternetDisabled`: a node's IPv4 may go to the LAN subnet only
    /// (README "Offline is offline") — the LAN is the cluster's subnet, where its router, the
    /// other machines' nodes and any LAN host are, so all of them reach each other as on an
    /// online cluster (a cluster whose LAN could not reach its nodes could not even form);
    /// only the internet beyond the router is cut off.
    pub const SCALABLE_OFFLINE: Expectations = Expectations {
        node_to_internet: false,
        ..Expectations::SCALABLE
    };

    /// What a deployment of this switch kind and outbound promises.
    pub fn of(switch: SwitchKind, outbound: Outbound) -> Expectations {
        match (switch, outbound) {
            (SwitchKind::External, Outbound::Offline) => Expectations::SCALABLE_OFFLINE,
            (SwitchKind::External, _) => Expectations::SCALABLE,
            (SwitchKind::Internal, Outbound::Offline) => Expectations::OFFLINE,
            (SwitchKind::Internal, _) => Expectations::NAT,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reach {
    Reachable,
    Unreachable,
}

impl Reach {
    pub(crate) fn from_bool(reachable: bool) -> Self {
        if reachable {
            Reach::Reachable
        } else {
            Reach::Unreachable
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reach::Reachable => "reachable",
            Reach::Unreachable => "unreachable",
        }
    }
}

/// The kind of row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Row {
    /// Lab sanity: the machine itself fetches the test page by name (LAN DNS, router).
    MachineToInternet,
    NodeToHost,
    NodeToNode,
    NodeToInternetByAddress,
    NodeToInternetByName,
    LanToNode,
}

impl Row {
    pub fn as_str(self) -> &'static str {
        match self {
            Row::MachineToInternet => "machine→internet",
            Row::NodeToHost => "node→host",
            Row::NodeToNode => "node→node",
            Row::NodeToInternetByAddress => "node→internet (address)",
            Row::NodeToInternetByName => "node→internet (name)",
            Row::LanToNode => "LAN→node",
        }
    }
}

/// One measured cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub row: Row,
    pub from: String,
    pub to: String,
    /// How it was measured (`ping`, `curl http://…`, `tcp connect …`).
    pub what: String,
    pub expected: Reach,
    pub actual: Reach,
    pub ok: bool,
    /// What the probe saw (exit code, error), for a human reading a failed cell.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matrix {
    pub lab: String,
    pub cells: Vec<Cell>,
    /// What a reader should know about how the matrix was measured: node pairs sampled, the
    /// kernel's ARP table overflowing during the run.
    #[serde(default)]
    pub notes: Vec<String>,
}

impl Matrix {
    pub fn all_ok(&self) -> bool {
        self.cells.iter().all(|c| c.ok)
    }

    /// Cells of one row kind.
    pub fn row(&self, row: Row) -> impl Iterator<Item = &Cell> {
        self.cells.iter().filter(move |c| c.row == row)
    }

    /// A fixed-width table, one line per cell, failures marked `FAIL`.
    pub fn render_table(&self) -> String {
        self.render_report(0, 0)
    }

    /// [`Matrix::render_table`] of a lab where `undeployed` of its `machines` have no
    /// finished deployment: their nodes have no cells, so the headline says the lab is
    /// incomplete rather than only "N of N cells as expected" (B17b D10).
    pub fn render_report(&self, undeployed: usize, machines: usize) -> String {
        let header = [
            "ROW", "FROM", "TO", "CHECK", "EXPECTED", "ACTUAL", "OK", "DETAIL",
        ];
        let rows: Vec<[String; 8]> = self
            .cells
            .iter()
            .map(|c| {
                [
                    c.row.as_str().to_string(),
                    c.from.clone(),
                    c.to.clone(),
                    c.what.clone(),
                    c.expected.as_str().to_string(),
                    c.actual.as_str().to_string(),
                    if c.ok { "ok" } else { "FAIL" }.to_string(),
                    c.detail.clone(),
                ]
            })
            .collect();
        let mut widths = header.map(|h| h.chars().count());
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[&str]| {
            let mut text = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    let _ = write!(text, "{cell:<w$}  ");
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&header);
        for r in &rows {
            line(&r.each_ref().map(String::as_str));
        }
        let failed = self.cells.iter().filter(|c| !c.ok).count();
        let _ = write!(
            out,
            "{} of {} cells as expected{}",
            self.cells.len() - failed,
            self.cells.len(),
            if failed == 0 { "" } else { " — FAILED" }
        );
        if undeployed > 0 {
            let _ = write!(
                out,
                " — INCOMPLETE: nothing deployed on {undeployed} of {machines} machines, \
                 their nodes not measured"
            );
        }
        out.push('\n');
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// B23 F9: an offline scalable cluster's LAN is its subnet: LAN→node and node→node across
    /// machines are reachable there, only the internet is not (the lab marked every offline
    /// scalable cluster FAILED when it expected the single machine's offline matrix).
    #[test]
    fn an_offline_scalable_cluster_expects_its_lan_to_reach_its_nodes() {
        let e = Expectations::of(SwitchKind::External, Outbound::Offline);
        assert!(e.lan_to_node);
        assert!(e.node_to_node && e.node_to_node_across_machines && e.node_to_host);
        assert!(!e.node_to_internet);
        assert_eq!(
            Expectations::of(SwitchKind::External, Outbound::Direct),
            Expectations::SCALABLE
        );
        assert_eq!(
            Expectations::of(SwitchKind::Internal, Outbound::Offline),
            Expectations::OFFLINE
        );
        assert_eq!(
            Expectations::of(SwitchKind::Internal, Outbound::Nat),
            Expectations::NAT
        );
    }

    #[test]
    fn notes_are_rendered_and_always_in_json() {
        let mut m = Matrix {
            lab: "x".into(),
            cells: Vec::new(),
            notes: Vec::new(),
        };
        // Reports keep every key (docs/json-output.md): no notes is `[]`.
        assert!(serde_json::to_string(&m).unwrap().contains("\"notes\":[]"));
        m.notes.push("node→node: sampled".into());
        assert!(m.render_table().contains("note: node→node: sampled"));
    }

    #[test]
    fn the_headline_of_a_lab_with_undeployed_machines_is_not_a_success() {
        let m = Matrix {
            lab: "x".into(),
            cells: Vec::new(),
            notes: Vec::new(),
        };
        assert!(m.render_table().ends_with("0 of 0 cells as expected\n"));
        let text = m.render_report(50, 50);
        let headline = text.lines().last().unwrap();
        assert!(
            headline.contains("INCOMPLETE: nothing deployed on 50 of 50 machines"),
            "{text}"
        );
        assert!(!headline.ends_with("as expected"), "{text}");
        let back: Matrix = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }
}
