//! The resolved network plan of one machine: what `edgenet plan` prints and what `deploy` builds.
//!
//! The JSON form of [`Plan`] is a documented, versioned interface (`docs/plan-schema.md`): other
//! tools and our own tests read it. Add fields freely; renaming or removing one means a new
//! [`PLAN_SCHEMA`] version.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::addressing::{internal_addresses, lan_subnet, range_end};
use crate::config::is_control_plane;
use crate::config::{
    Config, DeploymentType, Distribution, NetworkPlugin, NodeRuntime, PortForward,
};
use crate::context::{machine_name, resolve_subnet, Context, ResolvedSubnet};
use crate::mac::MacAddr;
use crate::no_proxy::effective_no_proxy;

pub use crate::config::NodeKind;

/// Schema identifier carried in every JSON plan.
pub const PLAN_SCHEMA: &str = "edgenet.plan/v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub schema: String,
    pub deployment_type: DeploymentType,
    pub distribution: Distribution,
    pub node_runtime: NodeRuntime,
    pub machine: MachineRef,
    /// This machine joins a cluster that already runs elsewhere (the config has a `Join` section).
    pub joining: bool,
    pub switch: SwitchPlan,
    pub nodes: Vec<NodePlan>,
    /// The Kubernetes API server address (single-machine: the Linux node's address).
    pub control_plane_endpoint: Ipv4Addr,
    pub service_range: Option<ServiceRange>,
    pub kubernetes: KubernetesPlan,
    pub port_forwards: Vec<PortForward>,
    /// The `vm` runtime's guest image (`Edgenet.VmImage`, `VmKernel`, `VmInitrd`).
    #[serde(default, skip_serializing_if = "VmImage::is_empty")]
    pub vm_image: VmImage,
}

/// Where a `vm` node's guest comes from: a base disk (qcow2 or raw) every node's disk is a
/// copy-on-write overlay of, and optionally a kernel and initrd QEMU boots directly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmImage {
    pub image: Option<String>,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    /// A Windows node's disk image (`Edgenet.WindowsVmImage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_image: Option<String>,
}

impl VmImage {
    pub fn is_empty(&self) -> bool {
        *self == VmImage::default()
    }
}

/// A `vm` node's size (`CpuCount`, `MemoryInMB`, `DataSizeInGB`); `None`: edgenet's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSize {
    pub cpu_count: Option<u32>,
    pub memory_in_mb: Option<u32>,
    pub data_size_in_gb: Option<u32>,
}

impl NodeSize {
    pub fn is_empty(&self) -> bool {
        *self == NodeSize::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineRef {
    /// Index into `Machines[]`.
    pub index: usize,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SwitchKind {
    /// Host-only bridge with NAT (single-machine).
    Internal,
    /// Bridge bound to the machine's physical adapter (scalable).
    External,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubnetSource {
    /// `Network.Ip4AddressPrefix`.
    Configured,
    /// First free /24 of the private ranges, checked against the host's routes and addresses.
    Automatic,
    /// First free /24 chosen without seeing the host (offline check): deploy re-checks it.
    AutomaticUnchecked,
    /// `Network.Ip4GatewayAddress/Ip4PrefixLength` (the physical LAN).
    Lan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outbound {
    /// Masquerade through the host.
    Nat,
    /// `InternetDisabled`: nodes reach the host and each other, nothing else.
    Offline,
    /// Directly on the physical network (external switch).
    Direct,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchPlan {
    pub name: String,
    pub kind: SwitchKind,
    /// The physical adapter bound to an external switch.
    pub adapter: Option<String>,
    pub subnet: Ipv4Net,
    pub subnet_source: SubnetSource,
    /// The host's own address on an internal switch (`.1/prefix`); `None` on an external switch,
    /// where the host keeps the adapter's addresses.
    pub host_address: Option<Ipv4Net>,
    /// Default gateway of the nodes.
    pub gateway: Ipv4Addr,
    /// `None`: the adapter's MTU, read at deploy (external switch seen without the host).
    pub mtu: Option<u32>,
    pub outbound: Outbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    ControlPlane,
    Worker,
}

/// How a node gets its MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum MacAssignment {
    /// `MacAddress` from the config.
    Static { address: MacAddr },
    /// Random, locally administered; made on first deploy and kept in the deployment state.
    GeneratedAtDeploy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DnsSource {
    /// `Network.DnsServers`.
    Configured,
    /// The host's upstream resolvers.
    Host,
    /// The host was not read (offline check): found at deploy.
    HostAtDeploy,
    /// `InternetDisabled` without `Network.DnsServers`: none. The host's upstream servers lie
    /// beyond the switch, which an offline node cannot reach.
    Offline,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    /// `<machine>-ledge` / `<machine>-wedge`.
    pub name: String,
    pub kind: NodeKind,
    pub role: NodeRole,
    /// Address with the switch prefix, e.g. `192.168.0.2/24`.
    pub address: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub mac: MacAssignment,
    /// `None`: the adapter's MTU, read at deploy.
    pub mtu: Option<u32>,
    pub dns_servers: Vec<Ipv4Addr>,
    pub dns_source: DnsSource,
    /// The host's search list, for the node's resolv.conf `search` line (empty: none, or no
    /// DNS server; a plan made without the host read has none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// The host's resolver options that mean the same in a node (`options` line), see
    /// `edgenet_host::resolv::node_options`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_options: Vec<String>,
    /// `Network.SkipDnsCheck`: no DNS reachability check (check, deploy, doctor).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_dns_check: bool,
    pub proxy: ProxyEnv,
    #[serde(default, skip_serializing_if = "NodeSize::is_empty")]
    pub size: NodeSize,
}

impl NodePlan {
    /// The `search` and `options` lines of the node's resolv.conf (empty when it has none).
    pub fn resolver_lines(&self) -> String {
        let mut s = String::new();
        if !self.dns_search.is_empty() {
            s.push_str(&format!("search {}\n", self.dns_search.join(" ")));
        }
        if !self.dns_options.is_empty() {
            s.push_str(&format!("options {}\n", self.dns_options.join(" ")));
        }
        s
    }
}

/// The proxy environment handed to a node (`http_proxy`, `https_proxy`, `no_proxy` and the
/// upper-case forms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyEnv {
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    /// The effective list: the user's entries, then what the cluster needs (SPEC §5.3).
    pub no_proxy: String,
}

impl ProxyEnv {
    /// Environment variables as a node sees them: lower- and upper-case forms. `no_proxy` is
    /// only set when a proxy is, so a node without a proxy has an untouched environment.
    pub fn variables(&self) -> Vec<(String, String)> {
        let mut vars = Vec::new();
        let mut both = |name: &str, value: &str| {
            vars.push((name.to_string(), value.to_string()));
            vars.push((name.to_uppercase(), value.to_string()));
        };
        if let Some(http) = &self.http_proxy {
            both("http_proxy", http);
        }
        if let Some(https) = &self.https_proxy {
            both("https_proxy", https);
        }
        if self.http_proxy.is_some() || self.https_proxy.is_some() {
            both("no_proxy", &self.no_proxy);
        }
        vars
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRange {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
    pub size: u32,
}

impl ServiceRange {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.start <= ip && ip <= self.end
    }

    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        let start = u32::from(self.start);
        (0..self.size).map(move |i| Ipv4Addr::from(start + i))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesPlan {
    pub pod_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
    pub cluster_dns: Ipv4Addr,
    pub network_plugin: NetworkPlugin,
}

/// Why no plan could be made for this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// A multi-machine config and no `--machine`.
    MachineNotChosen {
        count: usize,
    },
    MachineOutOfRange {
        index: usize,
        count: usize,
    },
    /// The config has errors that `check` reports; a plan is only built from a valid config.
    Invalid(String),
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::MachineNotChosen { count } => write!(
                f,
                "the config lists {count} machines; choose this host's with --machine N (0 to {})",
                count.saturating_sub(1)
            ),
            PlanError::MachineOutOfRange { index, count } => write!(
                f,
                "--machine {index} is out of range: the config lists {count} machine(s) (0 to {})",
                count.saturating_sub(1)
            ),
            PlanError::Invalid(why) => write!(f, "{why}; run `edgenet check` for every finding"),
        }
    }
}

impl std::error::Error for PlanError {}

/// The plan of this machine (the context's `--machine`, or the only one). The config must have
/// passed [`crate::validate::validate`] without errors; anything still unresolvable is a
/// [`PlanError`], never a panic.
pub fn build(config: &Config, ctx: &Context<'_>) -> Result<Plan, PlanError> {
    let count = config.machines.len();
    let index = match ctx.machine {
        Some(i) if i >= count => return Err(PlanError::MachineOutOfRange { index: i, count }),
        Some(i) => i,
        None if count == 1 => 0,
        None => return Err(PlanError::MachineNotChosen { count }),
    };
    let machine = &config.machines[index];
    let name = ctx
        .machine_name
        .clone()
        .unwrap_or_else(|| machine_name(config, index, &ctx.hostname));
    let distribution = config.distribution();
    let k8s = distribution.ranges();
    let offline = config.network.internet_disabled;
    let invalid = |what: &str| PlanError::Invalid(what.to_string());

    let (switch, node_ips, control_plane_endpoint, service_range) = if config.is_scalable() {
        let subnet = lan_subnet(config)
            .ok_or_else(|| invalid("the LAN (Ip4GatewayAddress/Ip4PrefixLength) is not valid"))?;
        let gateway = config
            .network
            .ip4_gateway_address
            .ok_or_else(|| invalid("Network.Ip4GatewayAddress is missing"))?;
        let endpoint = config
            .network
            .control_plane_endpoint_ip
            .ok_or_else(|| invalid("Network.ControlPlaneEndpointIp is missing"))?;
        // The adapter as this host calls it now (renamed since the deployment took it: see
        // `Context::adapter_now`).
        let adapter = machine
            .adapter_name
            .as_deref()
            .map(|named| ctx.adapter_now(named).to_string())
            .ok_or_else(|| invalid("the machine has no AdapterName"))?;
        let adapter_mtu = ctx.facts().and_then(|f| f.link(&adapter)).map(|l| l.mtu);
        let mut ips = Vec::new();
        for (kind, node) in [
            (NodeKind::Linux, &machine.linux_node),
            (NodeKind::Windows, &machine.windows_node),
        ] {
            if let Some(node) = node {
                let ip = node
                    .ip4_address
                    .ok_or_else(|| invalid("a node has no Ip4Address"))?;
                ips.push((kind, ip));
            }
        }
        let size = config.init.service_ip_range_size.unwrap_or(0);
        let services = match (config.init.service_ip_range_start, size) {
            (Some(start), size) if size > 0 => Some(ServiceRange {
                start,
                end: range_end(start, size)
                    .ok_or_else(|| invalid("the service range wraps past 255.255.255.255"))?,
                size,
            }),
            _ => None,
        };
        let switch = SwitchPlan {
            name: config.switch_name().to_string(),
            kind: SwitchKind::External,
            adapter: Some(adapter),
            subnet,
            subnet_source: SubnetSource::Lan,
            host_address: None,
            gateway,
            mtu: machine.mtu.or(adapter_mtu),
            outbound: if offline {
                Outbound::Offline
            } else {
                Outbound::Direct
            },
        };
        (switch, ips, endpoint, services)
    } else {
        let resolved = resolve_subnet(config, ctx);
        let (subnet, source) = match resolved {
            ResolvedSubnet::Configured(n) => (n, SubnetSource::Configured),
            ResolvedSubnet::Automatic(n) => (n, SubnetSource::Automatic),
            ResolvedSubnet::AutomaticUnchecked(n) => (n, SubnetSource::AutomaticUnchecked),
            ResolvedSubnet::NoneFree => return Err(invalid("no free subnet is left on this host")),
        };
        let size = config.init.service_ip_range_size.unwrap_or(0);
        let layout = internal_addresses(subnet, machine.windows_node.is_some(), size)
            .ok_or_else(|| invalid("the switch subnet is too small"))?;
        let mut ips = vec![(NodeKind::Linux, layout.linux_node)];
        if let Some(w) = layout.windows_node {
            ips.push((NodeKind::Windows, w));
        }
        let host_address =
            Ipv4Net::new(layout.host, subnet.prefix_len()).expect("prefix of a valid net");
        let switch = SwitchPlan {
            name: config.switch_name().to_string(),
            kind: SwitchKind::Internal,
            adapter: None,
            subnet,
            subnet_source: source,
            host_address: Some(host_address),
            gateway: layout.host,
            mtu: Some(machine.mtu.unwrap_or(DEFAULT_INTERNAL_MTU)),
            outbound: if offline {
                Outbound::Offline
            } else {
                Outbound::Nat
            },
        };
        let services = layout
            .services
            .map(|(start, end)| ServiceRange { start, end, size });
        (switch, ips, layout.linux_node, services)
    };

    let (dns_servers, dns_source) = match (&config.network.dns_servers, ctx.facts()) {
        (Some(servers), _) => (servers.clone(), DnsSource::Configured),
        (None, _) if offline => (Vec::new(), DnsSource::Offline),
        (None, Some(facts)) => (facts.dns.servers.clone(), DnsSource::Host),
        (None, None) => (Vec::new(), DnsSource::HostAtDeploy),
    };
    // Whichever servers the node gets, it resolves short names as the host does: the host's
    // search list and its options (the ones a node can use), as kubelet hands a host's
    // resolv.conf to pods. Nothing without a server to ask.
    let (dns_search, dns_options) = match ctx.facts() {
        Some(facts) if !dns_servers.is_empty() => {
            (facts.dns.search.clone(), facts.dns.options.clone())
        }
        _ => (Vec::new(), Vec::new()),
    };
    let proxy = ProxyEnv {
        http_proxy: config.network.proxy.http.clone(),
        https_proxy: config.network.proxy.https.clone(),
        no_proxy: effective_no_proxy(
            config.network.proxy.no.as_deref(),
            switch.subnet,
            k8s.pod_cidr,
            k8s.service_cidr,
            control_plane_endpoint,
        ),
    };
    let nodes = node_ips
        .into_iter()
        .map(|(kind, ip)| {
            let node = match kind {
                NodeKind::Linux => machine.linux_node.as_ref(),
                NodeKind::Windows => machine.windows_node.as_ref(),
            };
            let control_plane = if config.is_scalable() {
                is_control_plane(config, index, kind == NodeKind::Linux)
            } else {
                kind == NodeKind::Linux
            };
            NodePlan {
                name: format!("{name}-{}", kind.suffix()),
                kind,
                role: if control_plane {
                    NodeRole::ControlPlane
                } else {
                    NodeRole::Worker
                },
                address: Ipv4Net::new(ip, switch.subnet.prefix_len())
                    .expect("prefix of a valid net"),
                gateway: switch.gateway,
                mac: match node.and_then(|n| n.mac_address) {
                    Some(address) => MacAssignment::Static { address },
                    None => MacAssignment::GeneratedAtDeploy,
                },
                mtu: switch.mtu,
                dns_servers: dns_servers.clone(),
                dns_source,
                dns_search: dns_search.clone(),
                dns_options: dns_options.clone(),
                skip_dns_check: config.network.skip_dns_check,
                proxy: proxy.clone(),
                size: node.map_or(NodeSize::default(), |n| NodeSize {
                    cpu_count: n.cpu_count,
                    memory_in_mb: n.memory_in_mb,
                    data_size_in_gb: n.data_size_in_gb,
                }),
            }
        })
        .collect();

    Ok(Plan {
        schema: PLAN_SCHEMA.to_string(),
        deployment_type: config.deployment_type,
        distribution,
        node_runtime: config.node_runtime(index),
        vm_image: VmImage {
            image: config.edgenet.vm_image.clone(),
            kernel: config.edgenet.vm_kernel.clone(),
            initrd: config.edgenet.vm_initrd.clone(),
            windows_image: config.edgenet.windows_vm_image.clone(),
        },
        machine: MachineRef { index, name },
        joining: config.join,
        switch,
        nodes,
        control_plane_endpoint,
        service_range,
        kubernetes: KubernetesPlan {
            pod_cidr: k8s.pod_cidr,
            service_cidr: k8s.service_cidr,
            cluster_dns: k8s.cluster_dns,
            network_plugin: k8s.network_plugin,
        },
        port_forwards: if config.is_scalable() {
            Vec::new()
        } else {
            config.edgenet.port_forwards.clone()
        },
    })
}

/// MTU of an internal switch when the config leaves it at 0.
pub const DEFAULT_INTERNAL_MTU: u32 = 1500;
