//! The firewall of an internal switch: outbound NAT, the offline switch, and port forwards
//! (SPEC §5.1, §5.6).
//!
//! edgenet owns exactly one nftables table per deployment, `ip edgenet_<deployment id>`; it never
//! reads, changes or deletes any other table, so a host firewall, Docker or Kubernetes rules
//! elsewhere are left as they are, and two deployments on one host never share a table.
//!
//! - [`FirewallPlan`] is what the firewall must do, taken from the [`Plan`].
//! - [`nft_rules`] builds the table (pure).
//! - [`FirewallDriver`] applies it; [`NftablesDriver`] is the implementation.
//!
//! An external switch (`Outbound::Direct`) has no table at all: the nodes sit on the LAN,
//! nothing is translated or filtered, and there is nothing to clean up. [`reconcile`] removes
//! a table a previous plan may have left.

pub mod bridge_rules;
pub mod host_rules;
pub mod nft_rules;
mod nftables;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use edgenet_core::config::Protocol;
use edgenet_core::plan::{NodeKind, Outbound, Plan};
use edgenet_host::nft::NftError;
use ipnet::Ipv4Net;

use crate::state::DeploymentId;

pub(crate) use self::nftables::{is_exists as nftables_is_exists, split_family};
pub use self::nftables::{own_key, own_text_names, NftablesDriver};
pub use nft_rules::Ruleset;

/// Every table edgenet creates starts with this; a table without it is never touched.
pub const TABLE_PREFIX: &str = "edgenet_";

/// The name of the table a deployment owns. The deployment id keeps deployments with different
/// state directories (e.g. simulated machines on one host) apart.
pub fn table_name(id: &DeploymentId) -> String {
    format!("{TABLE_PREFIX}{id}")
}

/// What the switch does with traffic that leaves or enters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirewallMode {
    /// Masquerade outbound; inbound only for replies and port forwards.
    Nat,
    /// `InternetDisabled`: nothing is forwarded off the switch or onto it (port forwards
    /// excepted, if configured).
    Offline,
}

/// One port forward, resolved to the node's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForwardRule {
    pub protocol: Protocol,
    pub host_port: u16,
    pub node_address: Ipv4Addr,
    pub node_port: u16,
}

/// Everything the firewall needs, and nothing else, so the rule builder can be tested alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallPlan {
    /// nftables table name (`edgenet_<id>`, see [`table_name`]).
    pub table: String,
    /// The switch (bridge) name; rules match it by name so they hold across bridge re-creation.
    pub bridge: String,
    pub subnet: Ipv4Net,
    /// The host's address on the switch: frames to it are not bridged between nodes.
    pub host: Ipv4Addr,
    pub mode: FirewallMode,
    pub port_forwards: Vec<PortForwardRule>,
}

impl FirewallPlan {
    /// The firewall for `plan`; `None` for an external switch (no table).
    pub fn from_plan(
        plan: &Plan,
        id: &DeploymentId,
    ) -> Result<Option<FirewallPlan>, FirewallError> {
        let mode = match plan.switch.outbound {
            // An offline external switch is filtered on its node ports (bridge table): an `ip`
            // table would also cut the host's own routed traffic through the bridge.
            Outbound::Offline
                if plan.switch.kind == edgenet_core::plan::SwitchKind::External
                    && plan.port_forwards.is_empty() =>
            {
                return Ok(None)
            }
            Outbound::Offline if plan.switch.kind == edgenet_core::plan::SwitchKind::External => {
                return Err(FirewallError::ForwardsOnExternalSwitch)
            }
            Outbound::Nat => FirewallMode::Nat,
            Outbound::Offline => FirewallMode::Offline,
            Outbound::Direct if plan.port_forwards.is_empty() => return Ok(None),
            Outbound::Direct => return Err(FirewallError::ForwardsOnExternalSwitch),
        };
        let mut seen = BTreeSet::new();
        let mut port_forwards = Vec::new();
        for pf in &plan.port_forwards {
            if !seen.insert((pf.protocol.as_str(), pf.host_port)) {
                return Err(FirewallError::DuplicateForward {
                    protocol: pf.protocol,
                    host_port: pf.host_port,
                });
            }
            let node =
                plan.nodes
                    .iter()
                    .find(|n| n.kind == pf.node)
                    .ok_or(FirewallError::NoSuchNode {
                        protocol: pf.protocol,
                        host_port: pf.host_port,
                        node: pf.node,
                    })?;
            port_forwards.push(PortForwardRule {
                protocol: pf.protocol,
                host_port: pf.host_port,
                node_address: node.address.addr(),
                node_port: pf.node_port,
            });
        }
        Ok(Some(FirewallPlan {
            table: table_name(id),
            bridge: plan.switch.name.clone(),
            subnet: plan.switch.subnet.trunc(),
            host: plan
                .switch
                .host_address
                .map_or(plan.switch.gateway, |a| a.addr()),
            mode,
            port_forwards,
        }))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error(transparent)]
    Nft(#[from] NftError),
    #[error(
        "refusing to touch nftables table `{0}`: edgenet only manages tables named \
         `{TABLE_PREFIX}<deployment id>`"
    )]
    NotOurs(String),
    #[error(
        "nftables table `{0} {1}` has this deployment's name but not edgenet's mark (rules with \
         edgenet's comments), so edgenet leaves it alone; delete it if it is left over \
         (`nft delete table {0} {1}`)"
    )]
    NotMarked(String, String),
    #[error("port forward {}/{host_port}: this machine has no {} node", protocol.as_str(), node.as_str())]
    NoSuchNode {
        protocol: Protocol,
        host_port: u16,
        node: NodeKind,
    },
    #[error("port forward {}/{host_port} is configured twice", protocol.as_str())]
    DuplicateForward { protocol: Protocol, host_port: u16 },
    #[error(
        "port forwards need an internal switch: on an external switch the nodes are directly on \
         the LAN and reachable at their own addresses"
    )]
    ForwardsOnExternalSwitch,
}

/// What [`FirewallDriver::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The live table already matched the plan; nothing was sent to the kernel.
    Unchanged,
    /// The table was created or atomically replaced.
    Replaced,
}

/// A firewall backend, netavark-style: validate before anything changes, apply idempotently,
/// remove what is ours and nothing else. Calls act on the network namespace of the calling
/// thread.
pub trait FirewallDriver {
    /// Short name for messages (`nftables`).
    fn name(&self) -> &'static str;

    /// Checks prerequisites (e.g. the `nft` binary) without changing anything.
    fn validate(&self) -> Result<(), FirewallError>;

    /// Makes the live table equal to `fw`, atomically; a no-op when it already is.
    fn apply(&self, fw: &FirewallPlan) -> Result<ApplyOutcome, FirewallError>;
    /// [`FirewallDriver::apply`] for a table that no record says exists (a first deploy): the
    /// backend may skip reading the live table. It must still be correct if the table exists.
    fn create(&self, fw: &FirewallPlan) -> Result<ApplyOutcome, FirewallError> {
        self.apply(fw)
    }

    /// Deletes the table; returns whether it existed (a missing table is fine).
    fn remove(&self, table: &str) -> Result<bool, FirewallError>;

    /// The live table, or `None` when it does not exist.
    fn live(&self, table: &str) -> Result<Option<Ruleset>, FirewallError>;
}

/// The firewall backend deploy, status and remove use.
pub fn driver() -> Box<dyn FirewallDriver> {
    Box::new(NftablesDriver::default())
}

/// Applies `fw`, or removes `table` when the plan needs no firewall (external switch), so a
/// deploy converges whatever an earlier plan left.
pub fn reconcile(
    driver: &dyn FirewallDriver,
    table: &str,
    fw: Option<&FirewallPlan>,
) -> Result<ApplyOutcome, FirewallError> {
    match fw {
        Some(fw) => driver.apply(fw),
        None if driver.remove(table)? => Ok(ApplyOutcome::Replaced),
        None => Ok(ApplyOutcome::Unchanged),
    }
}

/// Guards every driver entry point: edgenet touches only its own tables.
fn check_ours(table: &str) -> Result<(), FirewallError> {
    let id = table.strip_prefix(TABLE_PREFIX).unwrap_or("");
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(FirewallError::NotOurs(table.to_string()));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use edgenet_core::config::{
        DeploymentType, Distribution, NetworkPlugin, NodeRuntime, PortForward,
    };
    use edgenet_core::plan::{
        DnsSource, KubernetesPlan, MacAssignment, MachineRef, NodePlan, NodeRole, ProxyEnv,
        SubnetSource, SwitchKind, SwitchPlan,
    };

    /// A single-machine NAT plan with a Linux and a Windows node, for unit tests.
    pub(crate) fn sample_plan() -> Plan {
        let node = |kind: NodeKind, ip: &str| NodePlan {
            name: format!("m1-{}", kind.suffix()),
            kind,
            role: NodeRole::ControlPlane,
            address: ip.parse().unwrap(),
            gateway: "192.168.0.1".parse().unwrap(),
            mac: MacAssignment::GeneratedAtDeploy,
            mtu: Some(1500),
            dns_servers: vec!["192.168.0.1".parse().unwrap()],
            dns_source: DnsSource::Host,
            dns_search: Vec::new(),
            dns_options: Vec::new(),
            skip_dns_check: false,
            proxy: ProxyEnv {
                http_proxy: None,
                https_proxy: None,
                no_proxy: String::new(),
            },
            size: Default::default(),
        };
        Plan {
            schema: edgenet_core::plan::PLAN_SCHEMA.to_string(),
            deployment_type: DeploymentType::SingleMachineCluster,
            distribution: Distribution::K3s,
            node_runtime: NodeRuntime::Netns,
            vm_image: Default::default(),
            machine: MachineRef {
                index: 0,
                name: "m1".into(),
            },
            joining: false,
            switch: SwitchPlan {
                name: "aksedgesw-int".into(),
                kind: SwitchKind::Internal,
                adapter: None,
                subnet: "192.168.0.0/24".parse().unwrap(),
                subnet_source: SubnetSource::Automatic,
                host_address: Some("192.168.0.1/24".parse().unwrap()),
                gateway: "192.168.0.1".parse().unwrap(),
                mtu: Some(1500),
                outbound: Outbound::Nat,
            },
            nodes: vec![
                node(NodeKind::Linux, "192.168.0.2/24"),
                node(NodeKind::Windows, "192.168.0.3/24"),
            ],
            control_plane_endpoint: "192.168.0.2".parse().unwrap(),
            service_range: None,
            kubernetes: KubernetesPlan {
                pod_cidr: "10.42.0.0/16".parse().unwrap(),
                service_cidr: "10.43.0.0/16".parse().unwrap(),
                cluster_dns: "10.43.0.10".parse().unwrap(),
                network_plugin: NetworkPlugin::Flannel,
            },
            port_forwards: vec![],
        }
    }

    fn pf(protocol: Protocol, host_port: u16, node: NodeKind, node_port: u16) -> PortForward {
        PortForward {
            protocol,
            host_port,
            node,
            node_port,
        }
    }

    fn id() -> DeploymentId {
        "0a1b2c".parse().unwrap()
    }

    #[test]
    fn from_plan_resolves_modes_and_forwards() {
        let mut plan = sample_plan();
        plan.port_forwards = vec![
            pf(Protocol::Tcp, 8080, NodeKind::Linux, 80),
            pf(Protocol::Udp, 8080, NodeKind::Windows, 53),
        ];
        let fw = FirewallPlan::from_plan(&plan, &id()).unwrap().unwrap();
        assert_eq!(fw.table, "edgenet_0a1b2c");
        assert_eq!(fw.bridge, "aksedgesw-int");
        assert_eq!(fw.subnet, "192.168.0.0/24".parse::<Ipv4Net>().unwrap());
        assert_eq!(fw.mode, FirewallMode::Nat);
        let targets: Vec<_> = fw
            .port_forwards
            .iter()
            .map(|p| (p.host_port, p.node_address.to_string(), p.node_port))
            .collect();
        assert_eq!(
            targets,
            [
                (8080, "192.168.0.2".into(), 80),
                (8080, "192.168.0.3".into(), 53)
            ]
        );

        plan.switch.outbound = Outbound::Offline;
        let fw = FirewallPlan::from_plan(&plan, &id()).unwrap().unwrap();
        assert_eq!(fw.mode, FirewallMode::Offline);
    }

    #[test]
    fn external_switch_has_no_table() {
        let mut plan = sample_plan();
        plan.switch.outbound = Outbound::Direct;
        assert_eq!(FirewallPlan::from_plan(&plan, &id()).unwrap(), None);
        plan.port_forwards = vec![pf(Protocol::Tcp, 80, NodeKind::Linux, 80)];
        assert!(matches!(
            FirewallPlan::from_plan(&plan, &id()),
            Err(FirewallError::ForwardsOnExternalSwitch)
        ));
    }

    #[test]
    fn bad_forwards_are_errors() {
        let mut plan = sample_plan();
        plan.nodes.retain(|n| n.kind == NodeKind::Linux);
        plan.port_forwards = vec![pf(Protocol::Tcp, 3389, NodeKind::Windows, 3389)];
        let err = FirewallPlan::from_plan(&plan, &id()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "port forward tcp/3389: this machine has no windows node"
        );

        plan.port_forwards = vec![
            pf(Protocol::Tcp, 80, NodeKind::Linux, 80),
            pf(Protocol::Tcp, 80, NodeKind::Linux, 8080),
        ];
        let err = FirewallPlan::from_plan(&plan, &id()).unwrap_err();
        assert!(
            matches!(err, FirewallError::DuplicateForward { host_port: 80, .. }),
            "{err}"
        );
    }

    #[test]
    fn only_edgenet_tables_are_ours() {
        assert!(check_ours("edgenet_1a2b3c").is_ok());
        for foreign in [
            "foreign",
            "edgenet_",
            "edgenet",
            "nat",
            "edgenet_x;y",
            "xedgenet_1",
        ] {
            assert!(
                matches!(check_ours(foreign), Err(FirewallError::NotOurs(_))),
                "{foreign}"
            );
        }
    }

    #[test]
    fn table_name_uses_the_deployment_id() {
        let id: DeploymentId = "0a1b2c".parse().unwrap();
        assert_eq!(table_name(&id), "edgenet_0a1b2c");
        assert!(check_ours(&table_name(&id)).is_ok());
    }
}
