//! `lab status`: a reachability matrix measured by sending real traffic from inside the
//! lab's namespaces — `ping`, `curl` and TCP connects — and compared with what the
//! deployment type promises.
//!
//! The nodes are data ([`NodeInfo`]): `deploy` creates them, not the lab. Every probe starts
//! inside a lab or node namespace (never the host's own, which is checked) and targets lab
//! addresses only: the internet server, a node's gateway, another node, or a node from the
//! LAN peer.
//!
//! Probes run in parallel on a bounded pool of [`PROBE_WORKERS`] threads. Pings are made
//! in-process ([`crate::probe::ping_many`]): each node pings its gateway and all its peers
//! with one raw socket. node→node covers *every* pair — all nodes of a machine (single
//! machine), or all nodes of all machines (scalable) — up to [`NODE_PAIRS_MAX`] pairs (20
//! nodes are 380 pairs); past that it samples the pairs evenly, because each pinged peer
//! costs an entry in the kernel's ARP table, which is one for the whole host (the matrix
//! notes it). `curl` (machine→internet, node→internet) runs as a process per cell, at most
//! 8 at once: more would overflow the accept queue of the lab's HTTP server (see
//! `services::HTTP_CLIENTS`), costing a SYN retransmission (1 s) each. Cells that time out
//! hold their place for the whole bound (2 s), so many unreachable node→internet cells take
//! 2 s per 8.
//!
//! The matrix's types and table are in `matrix.rs`; how one cell is measured, in
//! `matrix_probes.rs`.

use std::net::Ipv4Addr;

use edgenet_host::netns::NetNs;

use crate::error::LabError;
use crate::lab::Lab;
use crate::machine::LabMachine;
use crate::matrix::{Cell, Expectations, Matrix, NodeInfo, Reach, Row};
use crate::matrix_probes::{
    arp_table_fulls, connect_guests, curl, guest_fetch, guest_lan_connect, guest_ping_sweep,
    lan_connect, ping_sweep, Outcome, GUEST_AGENT_WAIT,
};
use crate::topology::{
    http_url_by_address, http_url_by_name, HTTP_SERVER, LAN_PEER, LAN_SUBNET, TEST_NAME,
};

/// Probes (or ping sweeps) running at once.
pub const PROBE_WORKERS: usize = 64;
/// Most node→node pairs one matrix probes before it samples them (see `node_pairs`): all
/// pairs of up to 20 nodes.
pub const NODE_PAIRS_MAX: usize = 400;

/// A cell before it is measured.
struct Head {
    row: Row,
    from: String,
    to: String,
    what: String,
    expected: bool,
}

/// A routed LAN→node probe: its cell, the node, the machine it is routed via.
type RoutedProbe<'a> = (usize, &'a NodeInfo, LabMachine);
/// A unit of work for the pool: measures one or more cells (by index into the heads).
type Task<'a> = Box<dyn FnOnce() -> Vec<(usize, Outcome)> + Send + 'a>;

/// The cells of a matrix and the tasks that measure them.
#[derive(Default)]
struct Plan<'a> {
    heads: Vec<Head>,
    tasks: Vec<Task<'a>>,
    /// Tasks that fetch from the lab's HTTP server: they run in a lane of their own, as
    /// many at once as the server takes (`services::HTTP_CLIENTS`), so that they neither
    /// overflow it nor hold up the other probes.
    http_tasks: Vec<Task<'a>>,
}

impl<'a> Plan<'a> {
    fn cell(&mut self, row: Row, from: String, to: String, what: String, expected: bool) -> usize {
        self.heads.push(Head {
            row,
            from,
            to,
            what,
            expected,
        });
        self.heads.len() - 1
    }

    /// A cell measured by a task of its own.
    fn single(
        &mut self,
        head: (Row, String, String, String, bool),
        measure: impl FnOnce() -> Outcome + Send + 'a,
    ) {
        let (row, from, to, what, expected) = head;
        let index = self.cell(row, from, to, what, expected);
        let task: Task<'a> = Box::new(move || vec![(index, measure())]);
        match row {
            Row::MachineToInternet | Row::NodeToInternetByAddress | Row::NodeToInternetByName => {
                self.http_tasks.push(task)
            }
            Row::NodeToHost | Row::NodeToNode | Row::LanToNode => self.tasks.push(task),
        }
    }

    /// Runs every task — at most `workers` at once, plus the HTTP lane — and returns the
    /// cells in the order they were planned.
    fn run(self, workers: usize) -> Vec<Cell> {
        let Plan {
            heads,
            tasks,
            http_tasks,
        } = self;
        let mut outcomes: Vec<Option<Outcome>> = vec![None; heads.len()];
        // A panicking probe leaves its cells unmeasured (reported below).
        let run = |task: Task<'a>| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(task)).unwrap_or_default()
        };
        let (measured, measured_http) = std::thread::scope(|scope| {
            let http = scope
                .spawn(|| crate::pool::map(http_tasks, crate::services::HTTP_CLIENTS_MAX, run));
            let measured = crate::pool::map(tasks, workers, run);
            (measured, http.join().unwrap_or_default())
        });
        for (index, outcome) in measured.into_iter().chain(measured_http).flatten() {
            outcomes[index] = Some(outcome);
        }
        heads
            .into_iter()
            .zip(outcomes)
            .map(|(head, outcome)| {
                let (actual, detail) =
                    outcome.unwrap_or_else(|| (false, "probe panicked".to_string()));
                Cell {
                    row: head.row,
                    from: head.from,
                    to: head.to,
                    what: head.what,
                    expected: Reach::from_bool(head.expected),
                    actual: Reach::from_bool(actual),
                    ok: head.expected == actual,
                    detail,
                }
            })
            .collect()
    }
}

impl Lab {
    /// Measures the matrix for `nodes` against `expect`.
    ///
    /// Rows: each machine fetches the test page by name (lab sanity); each node pings its
    /// gateway ([`NodeInfo::host`]) and its peers (the nodes of its machine, or of all
    /// machines with [`Expectations::node_to_node_across_machines`]), fetches the page by
    /// address and by name; the LAN peer opens a TCP connection to each node — directly when
    /// the node's address is on the LAN, else over a /32 route via the node's machine.
    ///
    /// All probes run in parallel on at most [`PROBE_WORKERS`] threads, except that routed
    /// inbound probes to nodes sharing an address take turns (each sets a route in the LAN
    /// peer). Errors only for bad input (a node on an unknown machine, a namespace that is
    /// the host's own); a probe that cannot even start counts as unreachable, with the
    /// reason in its detail.
    pub fn status(&self, nodes: &[NodeInfo], expect: &Expectations) -> Result<Matrix, LabError> {
        let machines = self.machines();
        let host_ns = NetNs::open_path(std::path::Path::new("/proc/self/ns/net"))
            .and_then(|ns| ns.id())
            .map_err(|e| LabError::host(self.name(), e))?;
        // A machine or node whose namespace is gone (a lab up killed midway, a namespace
        // deleted by hand) is measured all the same: its cells fail, and the report says so.
        for ns in machines
            .iter()
            .map(|m| &m.netns)
            .chain(
                nodes
                    .iter()
                    .filter(|n| n.guest_agent.is_none())
                    .map(|n| &n.netns),
            )
            .filter(|ns| edgenet_host::netns::exists(ns))
        {
            let id = NetNs::open(ns)
                .and_then(|n| n.id())
                .map_err(|e| LabError::host(self.name(), e))?;
            if id == host_ns {
                return Err(LabError::HostNamespace { netns: ns.clone() });
            }
        }
        let machine_of = |node: &NodeInfo| {
            machines
                .iter()
                .find(|m| m.name == node.machine)
                .ok_or_else(|| LabError::InvalidSpec {
                    lab: self.name().to_string(),
                    reason: format!(
                        "node {} is on machine {:?}, which the lab does not have",
                        node.name, node.machine
                    ),
                })
        };
        let page = self.http_page();
        let page = page.as_str();
        // VM nodes are measured inside their guests: one agent connection per guest, taken
        // in turn by its probes (a guest still booting is waited for).
        let guests = connect_guests(nodes, GUEST_AGENT_WAIT);
        let guests = &guests;
        let mut plan = Plan::default();

        for m in &machines {
            plan.single(
                (
                    Row::MachineToInternet,
                    m.name.clone(),
                    TEST_NAME.to_string(),
                    format!("curl {}", http_url_by_name()),
                    true,
                ),
                move || curl(&m.netns, &http_url_by_name(), Some(&m.resolv_conf), page),
            );
        }
        let (peers, pairs_note) = node_pairs(nodes, expect.node_to_node_across_machines);
        for (node, peers) in nodes.iter().zip(peers) {
            let machine = machine_of(node)?;
            // A VM node's probes run in its guest, with the guest's tools.
            let in_guest = guests.contains_key(&node.name);
            let ping = if in_guest {
                "ping (in the guest)"
            } else {
                "ping"
            };
            let fetch = |url: String| match in_guest {
                true => format!("GET {url} (nc in the guest)"),
                false => format!("curl {url}"),
            };
            // One ping sweep per node: its gateway, then its peers.
            let mut targets = vec![(
                plan.cell(
                    Row::NodeToHost,
                    node.name.clone(),
                    node.host.to_string(),
                    ping.into(),
                    expect.node_to_host,
                ),
                node.host,
            )];
            for other in peers.into_iter().map(|i| &nodes[i]) {
                let index = plan.cell(
                    Row::NodeToNode,
                    node.name.clone(),
                    format!("{} {}", other.name, other.address),
                    ping.into(),
                    expect.node_to_node,
                );
                targets.push((index, other.address));
            }
            match guests.get(&node.name) {
                Some(guest) => plan
                    .tasks
                    .push(Box::new(move || guest_ping_sweep(guest, &targets))),
                None => plan
                    .tasks
                    .push(Box::new(move || ping_sweep(&node.netns, &targets))),
            }
            plan.single(
                (
                    Row::NodeToInternetByAddress,
                    node.name.clone(),
                    HTTP_SERVER.to_string(),
                    fetch(http_url_by_address()),
                    expect.node_to_internet,
                ),
                move || match guests.get(&node.name) {
                    Some(guest) => guest_fetch(guest, false, page),
                    None => curl(&node.netns, &http_url_by_address(), None, page),
                },
            );
            let resolv = node.resolv_conf.as_ref().unwrap_or(&machine.resolv_conf);
            plan.single(
                (
                    Row::NodeToInternetByName,
                    node.name.clone(),
                    TEST_NAME.to_string(),
                    fetch(http_url_by_name()),
                    expect.node_to_internet,
                ),
                move || match guests.get(&node.name) {
                    Some(guest) => guest_fetch(guest, true, page),
                    None => curl(&node.netns, &http_url_by_name(), Some(resolv), page),
                },
            );
        }
        // LAN→node. A node on the LAN is connected to directly. Any other node gets a /32
        // route via its machine in the one LAN peer, and nodes on different machines may
        // share an address: those probes are grouped by address, each group one task that
        // takes them in turn.
        let peer = self.peer_netns();
        let mut routed: Vec<(Ipv4Addr, Vec<RoutedProbe>)> = Vec::new();
        for node in nodes {
            let from = format!("LAN {LAN_PEER}");
            let to = format!("{} {}", node.name, node.address);
            if LAN_SUBNET.contains(&node.address) {
                let peer = peer.clone();
                plan.single(
                    (
                        Row::LanToNode,
                        from,
                        to,
                        "tcp connect (direct, on the LAN)".into(),
                        expect.lan_to_node,
                    ),
                    move || match guests.get(&node.name) {
                        Some(guest) => guest_lan_connect(&peer, node, None, guest),
                        None => lan_connect(&peer, node, None),
                    },
                );
                continue;
            }
            let via = machine_of(node)?.clone();
            let index = plan.cell(
                Row::LanToNode,
                from,
                to,
                format!(
                    "tcp connect (route via {} {})",
                    via.name,
                    via.address.addr()
                ),
                expect.lan_to_node,
            );
            match routed.iter_mut().find(|(a, _)| *a == node.address) {
                Some((_, group)) => group.push((index, node, via)),
                None => routed.push((node.address, vec![(index, node, via)])),
            }
        }
        for (_, group) in routed {
            let peer = peer.clone();
            plan.tasks.push(Box::new(move || {
                group
                    .into_iter()
                    .map(|(index, node, via)| {
                        let outcome = match guests.get(&node.name) {
                            Some(guest) => guest_lan_connect(&peer, node, Some(&via), guest),
                            None => lan_connect(&peer, node, Some(&via)),
                        };
                        (index, outcome)
                    })
                    .collect()
            }));
        }

        let overflows_before = arp_table_fulls();
        let cells = plan.run(PROBE_WORKERS);
        let mut notes: Vec<String> = pairs_note.into_iter().collect();
        if let (Some(before), Some(after)) = (overflows_before, arp_table_fulls()) {
            if after > before {
                notes.push(format!(
                    "the kernel's ARP (neighbour) table was full {} times during the run: it is \
                     shared by every namespace on the host (net.ipv4.neigh.default.gc_thresh3), \
                     so cells may have failed for that alone; probe fewer nodes or raise it",
                    after - before
                ));
            }
        }
        Ok(Matrix {
            lab: self.name().to_string(),
            cells,
            notes,
        })
    }
}

/// Which peers each node pings in the node→node row (indexes into `nodes`, in node order):
/// the other nodes of its machine, or with `across_machines` every other node — all of
/// them while that makes at most [`NODE_PAIRS_MAX`] pairs, else an even sample (with a note
/// saying so).
///
/// Why a bound: every pinged peer is an entry in the kernel's ARP table, and that table is
/// one for the whole host, shared by every namespace, full at `gc_thresh3` (1024 by
/// default), and an entry younger than 5 s cannot be reclaimed. All pairs of 50 nodes
/// (2 450) would overflow it and fail most cells for no fault of the deployment. The sample
/// is regular: node `i` pings the nodes at `k` offsets spread evenly around the cluster
/// (`i + 1`, `i + 1 + (n − 1)/k`, …), so each node pings `k` peers and is pinged by `k`, the
/// peers span all machines, and `k = NODE_PAIRS_MAX / n` (at least 2).
fn node_pairs(nodes: &[NodeInfo], across_machines: bool) -> (Vec<Vec<usize>>, Option<String>) {
    let n = nodes.len();
    let candidates = |i: usize| -> Vec<usize> {
        // The other nodes, starting after `i` and wrapping around.
        (1..n)
            .map(|d| (i + d) % n)
            .filter(|&j| {
                nodes[j].name != nodes[i].name
                    && (across_machines || nodes[j].machine == nodes[i].machine)
            })
            .collect()
    };
    let all: Vec<Vec<usize>> = (0..n).map(candidates).collect();
    let total: usize = all.iter().map(Vec::len).sum();
    if total <= NODE_PAIRS_MAX {
        return (all, None);
    }
    let k = (NODE_PAIRS_MAX / n.max(1)).max(2);
    let sampled: Vec<Vec<usize>> = all
        .into_iter()
        .map(|c| {
            let k = k.min(c.len());
            (0..k).map(|j| c[j * c.len() / k]).collect()
        })
        .collect();
    let picked: usize = sampled.iter().map(Vec::len).sum();
    let note = format!(
        "node→node: {picked} of {total} pairs sampled (each node pings {k} peers spread over \
         the cluster), to stay within the kernel's ARP table, which all namespaces share"
    );
    (sampled, Some(note))
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgenet_core::plan::NodeKind;

    fn nodes(machines: usize, per_machine: usize) -> Vec<NodeInfo> {
        let mut out = Vec::new();
        for m in 1..=machines {
            for k in 0..per_machine {
                out.push(NodeInfo {
                    name: format!("m{m}-n{k}"),
                    machine: format!("m{m}"),
                    netns: format!("ns-m{m}-n{k}"),
                    address: Ipv4Addr::new(198, 18, 1, (m * per_machine + k) as u8),
                    host: crate::topology::LAN_ROUTER,
                    kind: NodeKind::Linux,
                    resolv_conf: None,
                    guest_agent: None,
                });
            }
        }
        out
    }

    #[test]
    fn all_pairs_while_they_fit() {
        let n = nodes(10, 2);
        let (peers, note) = node_pairs(&n, true);
        assert!(note.is_none());
        assert_eq!(peers.iter().map(Vec::len).sum::<usize>(), 20 * 19);
        assert!(peers.iter().enumerate().all(|(i, p)| !p.contains(&i)));
        // Single machines: only the nodes of the same machine.
        let (peers, note) = node_pairs(&n, false);
        assert!(note.is_none());
        assert_eq!(peers[0], vec![1]);
        assert_eq!(peers[3], vec![2]);
    }

    #[test]
    fn past_the_bound_pairs_are_sampled_evenly_across_machines() {
        for (machines, per) in [(50, 1), (50, 2), (100, 2), (200, 1)] {
            let n = nodes(machines, per);
            let count = n.len();
            let (peers, note) = node_pairs(&n, true);
            let note = note.expect("sampled");
            assert!(note.contains("sampled"), "{note}");
            let k = (NODE_PAIRS_MAX / count).max(2);
            let total: usize = peers.iter().map(Vec::len).sum();
            assert_eq!(total, k * count);
            assert!(total <= NODE_PAIRS_MAX.max(2 * count));
            // Every node pings k distinct others and is pinged by k.
            let mut pinged = vec![0; count];
            for (i, p) in peers.iter().enumerate() {
                let mut distinct = p.clone();
                distinct.sort_unstable();
                distinct.dedup();
                assert_eq!(distinct.len(), k);
                assert!(!p.contains(&i));
                for &j in p {
                    pinged[j] += 1;
                }
                // The peers are not all on one machine: they spread over the cluster.
                let machines: std::collections::HashSet<_> =
                    p.iter().map(|&j| &n[j].machine).collect();
                assert!(machines.len() >= 2, "{:?}", p);
            }
            assert!(pinged.iter().all(|&c| c == k), "{pinged:?}");
        }
    }
}
