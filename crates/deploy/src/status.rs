//! `status` (like Get-AksEdgeDeploymentInfo): the deployment as the state records it, the
//! kernel as it really is, and the drift between the two.

use std::path::PathBuf;

use edgenet_core::plan::Plan;
use edgenet_host::netlink::Netlink;
use edgenet_host::sysctl;

use crate::deploy::IP_FORWARD;
use crate::error::DeployError;
use crate::firewall::{self, FirewallDriver, NftablesDriver};
use crate::journal::Ownership;
use crate::names;
use crate::node::{NetnsRuntime, NodeLive, NodeRuntime};
use crate::state::{DeploymentState, Phase, StateDir};
use crate::switch::{InternalSwitch, SwitchDriver, SwitchLive};

#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusReport {
    pub deployed: bool,
    pub state_dir: PathBuf,
    pub deployment_id: Option<String>,
    pub phase: Option<Phase>,
    /// The plan of the last complete deploy.
    pub plan: Option<Plan>,
    pub switch: Option<SwitchLive>,
    pub firewall_table: Option<String>,
    pub firewall_present: bool,
    pub ip_forward: Option<String>,
    pub nodes: Vec<NodeLive>,
    /// Differences between the plan and the kernel; empty when they agree.
    pub drift: Vec<String>,
}

/// Reads the state without the lock (writers replace it atomically) and the live kernel of
/// the calling thread's namespace.
pub fn status(dir: &StateDir) -> Result<StatusReport, DeployError> {
    let state = dir.peek()?;
    let mut report = StatusReport {
        deployed: false,
        state_dir: dir.path().to_path_buf(),
        deployment_id: None,
        phase: None,
        plan: None,
        switch: None,
        firewall_table: None,
        firewall_present: false,
        ip_forward: sysctl::read(IP_FORWARD).ok().map(|v| v.trim().to_string()),
        nodes: Vec::new(),
        drift: Vec::new(),
    };
    let Some(state) = state else {
        return Ok(report);
    };
    fill(&mut report, &state)?;
    Ok(report)
}

fn fill(report: &mut StatusReport, state: &DeploymentState) -> Result<(), DeployError> {
    let id = &state.deployment_id;
    let own = Ownership {
        alias: names::alias(id),
        group: names::link_group(id),
    };
    report.deployment_id = Some(id.to_string());
    report.phase = Some(state.phase);
    if let Some(phase) = state.interrupted() {
        report.drift.push(format!(
            "the last run stopped while {phase:?}: run deploy (or remove) again"
        ));
    }
    let Some(plan) = state
        .applied_plan
        .clone()
        .or_else(|| state.pending_plan.clone())
    else {
        return Ok(());
    };
    report.deployed = state.phase == Phase::Deployed;
    let mut nl = Netlink::open()?;

    let sw = InternalSwitch.live(&mut nl, &plan.switch.name, &own)?;
    let drift = &mut report.drift;
    if !sw.present {
        drift.push(format!("bridge {} is missing", plan.switch.name));
    } else {
        if !sw.ours {
            drift.push(format!(
                "{} exists but does not carry this deployment's mark",
                plan.switch.name
            ));
        }
        if !sw.up {
            drift.push(format!("bridge {} is down", plan.switch.name));
        }
        if let (Some(want), Some(have)) = (plan.switch.mtu, sw.mtu) {
            if want != have {
                drift.push(format!(
                    "bridge {} has MTU {have}, the plan says {want}",
                    plan.switch.name
                ));
            }
        }
        if let Some(host) = plan.switch.host_address {
            if !sw.addresses.contains(&host.to_string()) {
                drift.push(format!(
                    "bridge {} lacks its address {host}",
                    plan.switch.name
                ));
            }
        }
    }
    if let Some(adapter) = plan.switch.adapter.as_deref() {
        match nl.link(adapter)? {
            None => report.drift.push(format!("adapter {adapter} is missing")),
            Some(a) if a.master.as_deref() != Some(plan.switch.name.as_str()) => report.drift.push(
                format!("adapter {adapter} is not a port of {}", plan.switch.name),
            ),
            Some(a) if !a.up => report.drift.push(format!("adapter {adapter} is down")),
            Some(_) => {}
        }
        // An address on a bridge port is unreachable (the bridge takes every frame), e.g. one
        // a DHCP client or the boot put back on the adapter.
        let is_port = nl
            .link(adapter)?
            .is_some_and(|a| a.master.as_deref() == Some(plan.switch.name.as_str()));
        if is_port && sw.ours {
            // A DHCP client still renewing on the adapter fights the switch over it. (A
            // manager that made the bridge itself manages the port as its port: no fight.)
            let paths = crate::switch::adapter_owner::paths_from_env();
            if let Some(index) = nl.link(adapter)?.map(|l| l.index) {
                for m in edgenet_host::net_manager::managers_of(&paths, adapter, index)
                    .into_iter()
                    .filter(|m| matches!(m, edgenet_host::net_manager::Manager::DhcpClient { .. }))
                {
                    report.drift.push(format!(
                        "{} configures {adapter}, a port of {}: it belongs on the bridge (see `edgenet deploy`'s advice)",
                        crate::switch::adapter_owner::describe(&m),
                        plan.switch.name
                    ));
                }
            }
        }
        let left = nl.link_config(adapter)?.address_strings();
        if is_port && !left.is_empty() {
            report.drift.push(format!(
                "adapter {adapter} has {} while it is a port of {} (unreachable there): run deploy to move it to the bridge",
                left.join(", "),
                plan.switch.name
            ));
        }
    }
    report.switch = Some(sw);

    let table = firewall::table_name(id);
    report.firewall_present = NftablesDriver::default().live(&table)?.is_some();
    let wants_table = plan.switch.kind == edgenet_core::plan::SwitchKind::Internal;
    if wants_table && !report.firewall_present {
        report
            .drift
            .push(format!("nftables table ip {table} is missing"));
    }
    let bridge_table = format!("{} {table}", crate::firewall::bridge_rules::FAMILY);
    if NftablesDriver::default().live(&bridge_table)?.is_none() {
        report.drift.push(format!(
            "nftables table {bridge_table} (node port anti-spoofing) is missing"
        ));
    }
    report.firewall_table = Some(table);
    // Another firewall that drops the switch's packets cuts the nodes off whatever our own
    // table says.
    for drop in crate::firewall::host_rules::live_drops(&plan) {
        report.drift.push(crate::firewall::host_rules::describe(
            &drop,
            &plan.switch.name,
        ));
    }

    for node in &plan.nodes {
        let netns = names::node_netns(&node.name, id);
        let live = NetnsRuntime.live(
            &mut nl,
            &node.name,
            &netns,
            &names::host_veth(node.kind, id),
            &plan.switch.name,
        )?;
        let drift = &mut report.drift;
        if !live.present {
            drift.push(format!("node {} ({netns}) is missing", node.name));
        } else {
            if !live.addresses.contains(&node.address.to_string()) {
                drift.push(format!(
                    "node {} lacks its address {}",
                    node.name, node.address
                ));
            }
            if !live.on_switch {
                drift.push(format!(
                    "node {} is not attached to {}",
                    node.name, plan.switch.name
                ));
            }
            if live.gateway.as_deref() != Some(node.gateway.to_string().as_str()) {
                drift.push(format!(
                    "node {} has no default route via {}",
                    node.name, node.gateway
                ));
            }
        }
        report.nodes.push(live);
    }
    report.plan = Some(plan);
    Ok(())
}
