//! The topology model: what a picture shows, independent of how it is laid out.

/// A picture of one machine (plan, status) or of a lab's cluster (every machine on the LAN).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    pub title: String,
    /// Lines under the title (what the picture is of, where the data came from).
    pub subtitle: Vec<String>,
    /// The lab's LAN and "internet" that the machines' adapters hang on; `None` for one
    /// machine's own picture.
    pub lan: Option<Lan>,
    pub machines: Vec<Machine>,
    /// Cluster-level labels every machine shares (a lab's scalable cluster), drawn once
    /// instead of in every machine.
    pub cluster_info: Vec<String>,
    /// Drift, failed cells, …: each drawn on the element it is located at.
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lan {
    /// e.g. `LAN 198.18.0.0/22`.
    pub title: String,
    pub lines: Vec<String>,
    /// What lies beyond the LAN router (the lab's internet), if anything is shown.
    pub internet: Option<(String, Vec<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Machine name; part of every element id of the machine.
    pub name: String,
    /// Panel heading, e.g. `machine 0: edge01 — SingleMachineCluster, k3s`.
    pub heading: String,
    pub uplink: Uplink,
    pub switch: Switch,
    pub nodes: Vec<Node>,
    pub forwards: Vec<Forward>,
    /// Cluster-level labels: control-plane endpoint, service range, DNS, proxy.
    pub info: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UplinkKind {
    /// The host's own uplink, nodes' traffic masqueraded (internal switch).
    Nat,
    /// The machine's adapter bound to an external switch.
    Adapter,
    /// Offline (`InternetDisabled`): nothing leaves the switch.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    pub kind: UplinkKind,
    pub title: String,
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    pub name: String,
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    /// `linux · control-plane`, `address …`, `MAC …`, `MTU …`.
    pub lines: Vec<String>,
    /// The node's address without prefix, for searching and linking.
    pub address: String,
}

/// A port forward: host port → node port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub protocol: String,
    pub host_port: u16,
    /// Name of the receiving node of the same machine.
    pub node: String,
    pub node_port: u16,
}

/// Something wrong, drawn on the element it is about with a text label (never by colour
/// alone). New kinds of drift only need a location and a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: Location,
    /// Short tag shown before the text: `DRIFT`, `FAIL`.
    pub tag: String,
    pub text: String,
    /// An element of the surrounding page this problem comes from (a matrix cell's id), so
    /// the picture can link back to it.
    pub anchor: Option<String>,
    /// Further page elements this one problem stands for (failed cells summed up in one
    /// label), linked to the same place.
    pub also: Vec<String>,
}

impl Problem {
    pub fn drift(at: Location, text: impl Into<String>) -> Problem {
        Problem {
            at,
            tag: "DRIFT".into(),
            text: text.into(),
            anchor: None,
            also: Vec::new(),
        }
    }

    /// Whether this problem stands for the page element `anchor`.
    pub fn covers(&self, anchor: &str) -> bool {
        self.anchor.as_deref() == Some(anchor) || self.also.iter().any(|a| a == anchor)
    }

    /// `TAG: text`, as drawn.
    pub fn label(&self) -> String {
        format!("{}: {}", self.tag, self.text)
    }
}

/// Where in the picture a problem is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// The whole picture (nothing more precise is known).
    Picture,
    /// The lab's LAN.
    Lan,
    Machine(String),
    Uplink(String),
    /// The machine's firewall (NAT, forward filter): drawn on the uplink it guards.
    Firewall(String),
    Switch(String),
    Node {
        machine: String,
        node: String,
    },
    /// The port forwards of a machine into one node (drawn as one box and one arrow).
    Forwards {
        machine: String,
        node: String,
    },
}

impl Location {
    /// The id of the picture element drawn for this location (also an HTML fragment id).
    pub fn element_id(&self) -> String {
        match self {
            Location::Picture => "picture".into(),
            Location::Lan => "lan".into(),
            Location::Machine(m) => machine_id(m),
            Location::Uplink(m) | Location::Firewall(m) => format!("{}-uplink", machine_id(m)),
            Location::Switch(m) => format!("{}-switch", machine_id(m)),
            Location::Node { machine, node } => node_id(machine, node),
            Location::Forwards { machine, node } => forwards_id(machine, node),
        }
    }
}

/// Element ids are built from names; anything outside `[A-Za-z0-9_-]` becomes `_` so an id
/// is always a valid XML id and URL fragment.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn machine_id(machine: &str) -> String {
    format!("m-{}", sanitize(machine))
}

pub fn node_id(machine: &str, node: &str) -> String {
    format!("{}-node-{}", machine_id(machine), sanitize(node))
}

pub fn info_id(machine: &str) -> String {
    format!("{}-info", machine_id(machine))
}

/// The box of a machine's port forwards into `node`.
pub fn forwards_id(machine: &str, node: &str) -> String {
    format!("{}-fwd-{}", machine_id(machine), sanitize(node))
}

/// The arrow from that box to the node.
pub fn forwards_arrow_id(machine: &str, node: &str) -> String {
    format!("{}-arrow", forwards_id(machine, node))
}

/// What a reader needs to read the colours: every colour also has a text label.
pub const LEGEND: &[&str] = &[
    "DRIFT: … (orange, thick border) the live kernel differs from the plan here",
    "FAIL: … (orange, thick border) a reachability cell from here failed",
    "CLOSED (red, dashed border) offline: no traffic leaves the switch",
    "blue arrow: port forwards, host ports → node ports (DRIFT, dashed: not in the firewall)",
];
