//! The deployment configuration: the AKS Edge Essentials JSON, typed.
//!
//! [`load`] turns JSON text into a [`Config`] plus the findings of rule group 1 (syntax, types,
//! enum values, misspelt keys). Everything else is judged later by [`crate::validate`].

mod json;
mod legacy;
mod load;
mod reader;
pub mod scale;
pub mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::mac::MacAddr;

pub use load::{
    is_root_key, load, parse_text, with_canonical_keys, LoadError, Loaded, MAX_CONFIG_BYTES,
};

/// The config every command uses without `-c FILE`: a single-machine cluster with a Linux node
/// on K3s, exactly what `edgenet config new` writes for those choices.
pub fn builtin_default() -> serde_json::Value {
    template::new_config(
        DeploymentType::SingleMachineCluster,
        template::NodeSelection::Linux,
        Distribution::K3s,
    )
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeploymentType {
    #[default]
    SingleMachineCluster,
    ScalableCluster,
}

impl DeploymentType {
    pub const NAMES: &'static [&'static str] = &["SingleMachineCluster", "ScalableCluster"];

    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentType::SingleMachineCluster => "SingleMachineCluster",
            DeploymentType::ScalableCluster => "ScalableCluster",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    #[default]
    K3s,
    K8s,
}

impl Distribution {
    pub const NAMES: &'static [&'static str] = &["k3s", "k8s"];

    pub fn as_str(self) -> &'static str {
        match self {
            Distribution::K3s => "k3s",
            Distribution::K8s => "k8s",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkPlugin {
    Flannel,
    Calico,
}

impl NetworkPlugin {
    pub const NAMES: &'static [&'static str] = &["flannel", "calico"];

    pub fn as_str(self) -> &'static str {
        match self {
            NetworkPlugin::Flannel => "flannel",
            NetworkPlugin::Calico => "calico",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRuntime {
    #[default]
    Netns,
    Vm,
}

impl NodeRuntime {
    pub const NAMES: &'static [&'static str] = &["netns", "vm"];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub const NAMES: &'static [&'static str] = &["tcp", "udp"];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// `Edgenet.PortForwards[]`: DNAT from a host port to a node port (single-machine inbound).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortForward {
    pub protocol: Protocol,
    pub host_port: u16,
    /// `linux` or `windows`: which node of this machine receives the traffic.
    pub node: NodeKind,
    pub node_port: u16,
}

/// The whole deployment file, typed. Fields the file left out (or set to `""`/`null`) are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub deployment_type: DeploymentType,
    pub init: Init,
    pub network: Network,
    pub machines: Vec<Machine>,
    /// The config has a `Join` section: this machine joins a running cluster.
    pub join: bool,
    pub edgenet: Edgenet,
    /// JSON paths whose values were present but unusable (already reported by the loader), so
    /// that later rules do not report them again as missing.
    pub invalid_paths: BTreeSet<String>,
    /// `Machines` was absent: one machine with a Linux node is implied.
    pub machines_implied: bool,
    /// `Machines` was written as an empty list (`[]`): validation refuses it (a cluster needs
    /// the machine it is deployed on); `machines_implied` is set too, for the rules after it.
    pub machines_empty: bool,
    /// Canonical JSON path → where the file wrote it, where the two differ (another key case,
    /// an older schema's place). Findings name the written path.
    pub source_paths: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Init {
    pub service_ip_range_start: Option<Ipv4Addr>,
    pub service_ip_range_size: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    pub control_plane_endpoint_ip: Option<Ipv4Addr>,
    pub network_plugin: Option<NetworkPlugin>,
    pub ip4_gateway_address: Option<Ipv4Addr>,
    pub ip4_prefix_length: Option<u32>,
    /// As written: host bits are kept so that validation can point at them.
    pub ip4_address_prefix: Option<Ipv4Net>,
    pub dns_servers: Option<Vec<Ipv4Addr>>,
    pub internet_disabled: bool,
    pub skip_address_free_check: bool,
    pub skip_dns_check: bool,
    pub proxy: Proxy,
    /// The preview form `Network.VSwitch` was used (its values are already mapped).
    pub legacy_vswitch: Option<LegacyVSwitch>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacyVSwitch {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub adapter_name: Option<String>,
    /// Where the file wrote it (`Network.VSwitch`, in the file's spelling).
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxy {
    pub http: Option<String>,
    pub https: Option<String>,
    pub no: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Machine {
    pub machine_name: Option<String>,
    /// This machine's node runtime (`Machines[].NodeRuntime`), over `Edgenet.NodeRuntime`:
    /// a cluster of machines whose nodes are VMs on some and namespaces on others.
    pub node_runtime: Option<NodeRuntime>,
    pub adapter_name: Option<String>,
    /// 0 or absent: the default.
    pub mtu: Option<u32>,
    pub linux_node: Option<Node>,
    pub windows_node: Option<Node>,
    /// Neither node was written: a Linux node is implied.
    pub linux_node_implied: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub ip4_address: Option<Ipv4Addr>,
    pub mac_address: Option<MacAddr>,
    pub control_plane: Option<bool>,
    /// Sizes of a `vm` node: virtual CPUs, memory, disk (AKS EE's fields).
    pub cpu_count: Option<u32>,
    pub memory_in_mb: Option<u32>,
    pub data_size_in_gb: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edgenet {
    pub distribution: Option<Distribution>,
    pub node_runtime: NodeRuntime,
    pub switch_name: Option<String>,
    pub machine_name: Option<String>,
    pub port_forwards: Vec<PortForward>,
    /// `vm` runtime: the base disk image (qcow2 or raw) every node's disk overlays.
    pub vm_image: Option<String>,
    /// `vm` runtime: a kernel and initrd to boot directly (images without a boot loader).
    pub vm_kernel: Option<String>,
    pub vm_initrd: Option<String>,
    /// `vm` runtime: the disk image of a Windows node (never the Linux one).
    pub windows_vm_image: Option<String>,
}

impl Config {
    /// The node runtime of machine `index`: its `NodeRuntime`, else `Edgenet.NodeRuntime`.
    pub fn node_runtime(&self, index: usize) -> NodeRuntime {
        self.machines
            .get(index)
            .and_then(|m| m.node_runtime)
            .unwrap_or(self.edgenet.node_runtime)
    }

    /// Some machine's nodes are VMs.
    pub fn any_vm(&self) -> bool {
        self.edgenet.node_runtime == NodeRuntime::Vm
            || self
                .machines
                .iter()
                .any(|m| m.node_runtime == Some(NodeRuntime::Vm))
    }

    pub fn is_scalable(&self) -> bool {
        self.deployment_type == DeploymentType::ScalableCluster
    }

    /// `Edgenet.Distribution`, else what the plugin implies, as the AKS EE installer pairs
    /// them (calico: K8s, flannel: K3s), else K3s.
    pub fn distribution(&self) -> Distribution {
        self.edgenet
            .distribution
            .unwrap_or(match self.network.network_plugin {
                Some(NetworkPlugin::Calico) => Distribution::K8s,
                _ => Distribution::K3s,
            })
    }

    /// Where the file wrote the canonical JSON path `canon` (`Init.ServiceIPRangeStart` may
    /// have been written `Network.ServiceIPRangeStart`, `Network` as `network`, …).
    pub fn written_path(&self, canon: &str) -> String {
        written_path(&self.source_paths, canon)
    }

    /// The bridge name: `Edgenet.SwitchName`, else the AKS Edge Essentials default.
    pub fn switch_name(&self) -> &str {
        match &self.edgenet.switch_name {
            Some(name) => name,
            None if self.is_scalable() => "aksedgesw-ext",
            None => "aksedgesw-int",
        }
    }
}

/// `canon` with its longest aliased prefix replaced by where the file wrote it.
pub(crate) fn written_path(aliases: &BTreeMap<String, String>, canon: &str) -> String {
    if let Some(p) = aliases.get(canon) {
        return p.clone();
    }
    let mut end = canon.len();
    while let Some(i) = canon[..end].rfind(['.', '[']) {
        if let Some(p) = aliases.get(&canon[..i]) {
            return format!("{p}{}", &canon[i..]);
        }
        end = i;
    }
    canon.to_string()
}

/// `text` with every canonical path that the file wrote elsewhere replaced by the written one.
pub(crate) fn rewrite_paths(aliases: &BTreeMap<String, String>, text: &str) -> String {
    if aliases.is_empty() {
        return text.to_string();
    }
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '[' | ']' | '_');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        let at_boundary = out.chars().last().is_none_or(|c| !is_path_char(c));
        if at_boundary {
            // The longest path written at this position.
            let end = rest
                .char_indices()
                .find(|(_, c)| !is_path_char(*c))
                .map_or(rest.len(), |(i, _)| i);
            let word = rest[..end].trim_end_matches(['.']);
            if !word.is_empty() {
                let written = written_path(aliases, word);
                if written != word {
                    out.push_str(&written);
                    rest = &rest[word.len()..];
                    continue 'outer;
                }
            }
        }
        let c = rest.chars().next().expect("not empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The kind of a node (the config's `linux`/`windows`; the plan names nodes by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    Linux,
    Windows,
}

impl NodeKind {
    /// AKS Edge Essentials' node-name suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            NodeKind::Linux => "ledge",
            NodeKind::Windows => "wedge",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Linux => "linux",
            NodeKind::Windows => "windows",
        }
    }
}

/// Whether node `(machine, kind)` runs the control plane: its `ControlPlane`, defaulting to
/// true for the first Linux node of the config and false for every other node.
pub fn is_control_plane(config: &Config, machine: usize, linux: bool) -> bool {
    let m = &config.machines[machine];
    let node = if linux {
        &m.linux_node
    } else {
        &m.windows_node
    };
    let Some(node) = node else { return false };
    if !linux {
        return false;
    }
    node.control_plane.unwrap_or_else(|| {
        !config.join && config.machines.iter().position(|m| m.linux_node.is_some()) == Some(machine)
    })
}
