//! `lab status`: a reachability matrix measured by sending real traffic from inside the
//! lab's namespaces — `ping`, `curl` and TCP connects — and compared with what the
//! deployment type promises.
//!
//! The nodes are data ([`NodeInfo`]): `deploy` creates them, not the lab. Every probe starts
//! inside a lab or node namespace (never the host's own, which is checked) and targets lab
//! addresses only: the internet server, a node's gateway, another node, or a node from the
//! LAN peer.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use edgenet_core::plan::NodeKind;
use edgenet_host::exec::{command_in, BindMount, ExecOptions};
use edgenet_host::netlink::{Netlink, RouteSpec};
use edgenet_host::netns::NetNs;

use crate::error::LabError;
use crate::lab::{Lab, LabMachine};
use crate::process::run_bounded;
use crate::topology::{http_url_by_address, http_url_by_name, ADAPTER, TEST_NAME};

/// Bound of one probe (a ping waits 1 s for its reply, as `ping -c1 -W1`).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound of an inbound connect: over veths a SYN is answered in well under a millisecond,
/// and inbound probes to nodes sharing an address take turns, so this one is kept short.
const INBOUND_TIMEOUT: Duration = Duration::from_secs(1);

/// A node to probe, as the deployment reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// e.g. `m1-ledge`.
    pub name: String,
    /// The lab machine the node runs on (`m1`): LAN traffic to the node is routed via it.
    pub machine: String,
    /// The node's network namespace.
    pub netns: String,
    pub address: Ipv4Addr,
    /// The node's gateway: the host's switch address (`.1`).
    pub host: Ipv4Addr,
    pub kind: NodeKind,
    /// The node's resolv.conf, used for the by-name row; `None` = the machine's.
    pub resolv_conf: Option<PathBuf>,
}

/// What each row should show, from the deployment type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expectations {
    pub node_to_host: bool,
    pub node_to_node: bool,
    pub node_to_internet: bool,
    pub lan_to_node: bool,
}

impl Expectations {
    /// Single machine with outbound NAT: everything outbound works, nothing comes in.
    pub const NAT: Expectations = Expectations {
        node_to_host: true,
        node_to_node: true,
        node_to_internet: true,
        lan_to_node: false,
    };
    /// Single machine with `InternetDisabled`: the nodes reach the host and each other only.
    pub const OFFLINE: Expectations = Expectations {
        node_to_host: true,
        node_to_node: true,
        node_to_internet: false,
        lan_to_node: false,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reach {
    Reachable,
    Unreachable,
}

impl Reach {
    fn from_bool(reachable: bool) -> Self {
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
        let _ = writeln!(
            out,
            "{} of {} cells as expected{}",
            self.cells.len() - failed,
            self.cells.len(),
            if failed == 0 { "" } else { " — FAILED" }
        );
        out
    }
}

/// A probe to run: its cell (without the result) and how to measure it.
struct Job<'a> {
    row: Row,
    from: String,
    to: String,
    what: String,
    expected: bool,
    measure: Box<dyn FnOnce() -> (bool, String) + Send + 'a>,
}

impl Lab {
    /// Measures the matrix for `nodes` against `expect`. All probes run in parallel, except
    /// that inbound ones to nodes sharing an address take turns (each sets a route in the
    /// LAN peer). Errors only for bad input (a node on an unknown machine, a namespace that
    /// is the host's own); a probe that cannot even start counts as unreachable, with the
    /// reason in its detail.
    pub fn status(&self, nodes: &[NodeInfo], expect: &Expectations) -> Result<Matrix, LabError> {
        let machines = self.machines();
        let host_ns = NetNs::open_path(std::path::Path::new("/proc/self/ns/net"))
            .and_then(|ns| ns.id())
            .map_err(|e| LabError::host(self.name(), e))?;
        for ns in machines
            .iter()
            .map(|m| &m.netns)
            .chain(nodes.iter().map(|n| &n.netns))
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

        let mut outbound: Vec<Job> = Vec::new();
        for m in &machines {
            outbound.push(Job {
                row: Row::MachineToInternet,
                from: m.name.clone(),
                to: TEST_NAME.to_string(),
                what: format!("curl {}", http_url_by_name()),
                expected: true,
                measure: Box::new(move || {
                    curl(&m.netns, &http_url_by_name(), Some(&m.resolv_conf), page)
                }),
            });
        }
        for node in nodes {
            let machine = machine_of(node)?;
            outbound.push(Job {
                row: Row::NodeToHost,
                from: node.name.clone(),
                to: node.host.to_string(),
                what: "ping".into(),
                expected: expect.node_to_host,
                measure: Box::new(move || ping(&node.netns, node.host)),
            });
            for other in nodes
                .iter()
                .filter(|o| o.machine == node.machine && o.name != node.name)
            {
                outbound.push(Job {
                    row: Row::NodeToNode,
                    from: node.name.clone(),
                    to: format!("{} {}", other.name, other.address),
                    what: "ping".into(),
                    expected: expect.node_to_node,
                    measure: Box::new(move || ping(&node.netns, other.address)),
                });
            }
            outbound.push(Job {
                row: Row::NodeToInternetByAddress,
                from: node.name.clone(),
                to: crate::topology::HTTP_SERVER.to_string(),
                what: format!("curl {}", http_url_by_address()),
                expected: expect.node_to_internet,
                measure: Box::new(move || curl(&node.netns, &http_url_by_address(), None, page)),
            });
            let resolv = node.resolv_conf.as_ref().unwrap_or(&machine.resolv_conf);
            outbound.push(Job {
                row: Row::NodeToInternetByName,
                from: node.name.clone(),
                to: TEST_NAME.to_string(),
                what: format!("curl {}", http_url_by_name()),
                expected: expect.node_to_internet,
                measure: Box::new(move || {
                    curl(&node.netns, &http_url_by_name(), Some(resolv), page)
                }),
            });
        }
        // Inbound probes set a /32 route to the node in the one LAN peer, and nodes on
        // different machines may share an address: probes run in waves in which every node
        // address appears at most once (one wave per machine, typically).
        let peer = self.peer_netns();
        let mut waves: Vec<Vec<(Ipv4Addr, Job)>> = Vec::new();
        for node in nodes {
            let via = machine_of(node)?.clone();
            let peer = peer.clone();
            let job = Job {
                row: Row::LanToNode,
                from: format!("LAN {}", crate::topology::LAN_PEER),
                to: format!("{} {}", node.name, node.address),
                what: format!(
                    "tcp connect (route via {} {})",
                    via.name,
                    via.address.addr()
                ),
                expected: expect.lan_to_node,
                measure: Box::new(move || lan_connect(&peer, node, &via)),
            };
            match waves
                .iter_mut()
                .find(|w| w.iter().all(|(a, _)| *a != node.address))
            {
                Some(wave) => wave.push((node.address, job)),
                None => waves.push(vec![(node.address, job)]),
            }
        }

        let mut cells = Vec::new();
        std::thread::scope(|scope| {
            let outbound: Vec<_> = outbound
                .into_iter()
                .map(|job| spawn_job(scope, job))
                .collect();
            let inbound = scope.spawn(move || {
                let mut done = Vec::new();
                for wave in waves {
                    std::thread::scope(|wave_scope| {
                        let running: Vec<_> = wave
                            .into_iter()
                            .map(|(_, job)| spawn_job(wave_scope, job))
                            .collect();
                        done.extend(running.into_iter().map(finish_job));
                    });
                }
                done
            });
            cells.extend(outbound.into_iter().map(finish_job));
            match inbound.join() {
                Ok(done) => cells.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        });
        Ok(Matrix {
            lab: self.name().to_string(),
            cells,
        })
    }
}

/// A cell before it is measured.
struct Head {
    row: Row,
    from: String,
    to: String,
    what: String,
    expected: bool,
}

type Running<'scope> = (Head, std::thread::ScopedJoinHandle<'scope, (bool, String)>);

fn spawn_job<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    job: Job<'env>,
) -> Running<'scope> {
    let Job {
        row,
        from,
        to,
        what,
        expected,
        measure,
    } = job;
    let head = Head {
        row,
        from,
        to,
        what,
        expected,
    };
    (head, scope.spawn(measure))
}

fn finish_job((head, handle): Running<'_>) -> Cell {
    let (actual, detail) = handle
        .join()
        .unwrap_or_else(|_| (false, "probe panicked".to_string()));
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
}

/// Runs a probe command in `netns` (optionally with its own resolv.conf), bounded.
fn probe_command(
    netns: &str,
    argv: &[&str],
    resolv_conf: Option<&PathBuf>,
) -> Result<std::process::Output, String> {
    let ns = NetNs::open(netns).map_err(|e| e.to_string())?;
    let opts = ExecOptions {
        binds: resolv_conf
            .map(|r| vec![BindMount::new(r, "/etc/resolv.conf")])
            .unwrap_or_default(),
        ..ExecOptions::default()
    };
    let mut cmd = command_in(&ns, argv[0], &opts).map_err(|e| e.to_string())?;
    cmd.args(&argv[1..]);
    // The probe's own bound plus start-up: ping and curl stop themselves before this.
    run_bounded(cmd, argv[0], netns, PROBE_TIMEOUT * 2).map_err(|e| e.to_string())
}

fn ping(netns: &str, to: Ipv4Addr) -> (bool, String) {
    let to = to.to_string();
    match probe_command(netns, &["ping", "-c1", "-W1", "-n", &to], None) {
        Ok(out) if out.status.success() => (true, "reply received".into()),
        Ok(out) => (false, format!("no reply ({})", summary(&out))),
        Err(e) => (false, e),
    }
}

/// `curl` the lab page, direct (never via a proxy from the environment); reachable only when
/// the lab's own page came back.
fn curl(netns: &str, url: &str, resolv_conf: Option<&PathBuf>, page: &str) -> (bool, String) {
    let secs = PROBE_TIMEOUT.as_secs().max(1).to_string();
    let argv = [
        "curl",
        "-sS",
        "--noproxy",
        "*",
        "--connect-timeout",
        &secs,
        "--max-time",
        &secs,
        url,
    ];
    match probe_command(netns, &argv, resolv_conf) {
        Ok(out) if out.status.success() && out.stdout == page.as_bytes() => {
            (true, "got the lab page".into())
        }
        Ok(out) if out.status.success() => (false, "answered, but not with the lab page".into()),
        Ok(out) => (false, summary(&out)),
        Err(e) => (false, e),
    }
}

fn summary(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = stderr
        .lines()
        .chain(stdout.lines())
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    match out.status.code() {
        Some(code) => format!("exit {code}: {text}"),
        None => format!("{}: {text}", out.status),
    }
}

/// LAN→node: a listener in the node, a /32 route to the node via its machine in the LAN
/// peer, then a TCP connect from the peer. Reachable only when the node's own listener
/// accepted the connection (a reset forged by a firewall does not count).
fn lan_connect(peer: &str, node: &NodeInfo, via: &LabMachine) -> (bool, String) {
    let listener = match NetNs::open(&node.netns)
        .and_then(|ns| ns.run(|| TcpListener::bind((node.address, 0))))
    {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return (false, format!("listen in node {}: {e}", node.name)),
        Err(e) => return (false, e.to_string()),
    };
    let port = match listener.local_addr() {
        Ok(a) => a.port(),
        Err(e) => return (false, format!("listener address: {e}")),
    };
    if let Err(e) = listener.set_nonblocking(true) {
        return (false, format!("listener: {e}"));
    }
    let route = RouteSpec {
        destination: Ipv4Net::new(node.address, 32).expect("/32 is valid"),
        gateway: Some(via.address.addr()),
        link: Some(ADAPTER),
    };
    let peer_ns = match NetNs::open(peer) {
        Ok(ns) => ns,
        Err(e) => return (false, e.to_string()),
    };
    let connected = peer_ns.run(|| -> Result<Result<TcpStream, std::io::Error>, String> {
        let mut nl = Netlink::open().map_err(|e| e.to_string())?;
        nl.replace_route(&route).map_err(|e| e.to_string())?;
        let target = SocketAddr::V4(SocketAddrV4::new(node.address, port));
        let result = TcpStream::connect_timeout(&target, INBOUND_TIMEOUT);
        let _ = nl.del_route(&route);
        Ok(result)
    });
    let stream = match connected {
        Ok(Ok(Ok(s))) => s,
        Ok(Ok(Err(e))) => return (false, format!("connect to port {port}: {e}")),
        Ok(Err(e)) => return (false, format!("route in LAN peer: {e}")),
        Err(e) => return (false, e.to_string()),
    };
    // The handshake completes on the client first; the accept queue may lag a moment.
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        match listener.accept() {
            Ok(_) => {
                drop(stream);
                return (true, format!("node accepted on port {port}"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                return (
                    false,
                    format!("connected, but not to the node's listener ({e})"),
                )
            }
        }
    }
}
