//! `status` (like Get-AksEdgeDeploymentInfo): the deployment as the state records it, the
//! kernel as it really is, and the drift between the two.

use std::path::PathBuf;

use edgenet_core::plan::{MacAssignment, NodePlan, Outbound, Plan, SwitchKind};
use edgenet_host::sysctl;

use crate::error::DeployError;
use crate::firewall::{self, nft_rules, FirewallPlan};
use crate::forwarding::IP_FORWARD;
use crate::journal::Ownership;
use crate::kernel::{self, Kernel};
use crate::names::{self, NODE_IFNAME};
use crate::node::{NodeLive, NodeRef};
use crate::state::{
    DeploymentId, DeploymentState, ObjectKind, ObjectStatus, Phase, StateDir, StateError,
};
use crate::switch::{self, AdapterRecord, SwitchLive};

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
    /// Whether the plan has an `ip` table at all (an external switch has none).
    pub firewall_wanted: bool,
    /// A table with the deployment's name exists but is not edgenet's (no mark).
    pub firewall_foreign: bool,
    /// The bridge-family table (node port anti-spoofing) and whether it is there and ours.
    pub bridge_table: Option<String>,
    pub bridge_table_present: bool,
    pub bridge_table_foreign: bool,
    pub ip_forward: Option<String>,
    pub nodes: Vec<NodeLive>,
    /// The MACs deploy generated, by node name (nodes with a static MAC are not listed).
    pub generated_macs: std::collections::BTreeMap<String, String>,
    /// Differences between the plan and the kernel; empty when they agree.
    pub drift: Vec<String>,
    /// What is not drift but worth saying (a VM still booting, a busy socket).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
}

/// Reads the state without the lock (writers replace it atomically) and the live kernel of
/// the calling thread's namespace.
pub fn status(dir: &StateDir) -> Result<StatusReport, DeployError> {
    // One read of the ruleset for every table and firewall check below.
    let _ruleset = edgenet_host::nft::RulesetSession::begin();
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
        firewall_wanted: false,
        firewall_foreign: false,
        bridge_table: None,
        bridge_table_present: false,
        bridge_table_foreign: false,
        ip_forward: sysctl::read(IP_FORWARD).ok().map(|v| v.trim().to_string()),
        nodes: Vec::new(),
        generated_macs: Default::default(),
        drift: Vec::new(),
        notices: Vec::new(),
    };
    // Read as missing (the records are state.json's); a deploy refuses until it is moved.
    for (path, what) in dir.odd_files() {
        report.notices.push(format!(
            "{} is {what}, not a file edgenet wrote: deploy refuses until it is moved away; remove works without it",
            path.display()
        ));
    }
    if let Some(StateError::LockFile { path, what, .. }) = dir.lock_file_problem() {
        report.notices.push(format!(
            "{} is {what}, not the lock file edgenet writes there: deploy and remove refuse (and change nothing) until it is moved away",
            path.display()
        ));
    }
    let Some(state) = state else {
        // Objects of a deployment whose state directory is gone: nothing else names them.
        if let Ok(mut nl) = kernel::open() {
            report
                .notices
                .extend(crate::leftovers::texts(crate::leftovers::leftovers(
                    &mut nl, None,
                )));
        }
        return Ok(report);
    };
    let holder = state.interrupted().and_then(|_| dir.holder());
    fill(&mut report, &state, holder)?;
    // What runs in the node namespaces (K3s, the kubelet): `remove` would leave it running
    // cut off (B23 F16), so it is named here before.
    let namespaces: Vec<(String, (u64, u64))> = state
        .objects
        .iter()
        .filter(|o| o.kind == ObjectKind::Netns)
        .filter_map(|o| {
            crate::node::processes::netns_identity(&o.name).map(|id| (o.name.clone(), id))
        })
        .collect();
    for (name, processes) in
        crate::node::processes::processes_in(std::path::Path::new("/proc"), &namespaces)
    {
        report.notices.push(crate::node::processes::still_running(
            &name, &processes, false,
        ));
    }
    Ok(report)
}

/// "a deploy" or "a remove", from the phase a run is in.
fn run_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Removing => "a remove",
        _ => "a deploy",
    }
}

fn fill(
    report: &mut StatusReport,
    state: &DeploymentState,
    holder: Option<String>,
) -> Result<(), DeployError> {
    let id = &state.deployment_id;
    let own = Ownership {
        alias: names::alias(id),
        group: names::link_group(id),
    };
    report.deployment_id = Some(id.to_string());
    report.phase = Some(state.phase);
    report.generated_macs = state
        .macs
        .iter()
        .filter(|(name, _)| !name.starts_with("switch:"))
        .map(|(name, mac)| (name.clone(), mac.to_string()))
        .collect();
    if let Some(phase) = state.interrupted() {
        report.drift.push(match &holder {
            // Not stopped: still running.
            Some(who) => format!(
                "{} is running ({who} holds the state lock): look again when it is done",
                run_name(phase)
            ),
            None => format!("the last run stopped while {phase:?}: run deploy (or remove) again"),
        });
    }
    if state.records_rebuilt {
        let found: Vec<String> = state
            .objects
            .iter()
            .map(|o| crate::teardown::object_words(o.kind, &o.name))
            .collect();
        report.notices.push(format!(
            "the records of this deployment were lost (state.json empty or missing) and rebuilt from the marks of its objects in the kernel: {}",
            found.join(", ")
        ));
    }
    let Some(plan) = state
        .applied_plan
        .clone()
        .or_else(|| state.pending_plan.clone())
    else {
        if state.records_rebuilt {
            report.drift.push(
                "its plan was lost with state.json: run deploy (with its config) to record it again, or remove to delete what is listed"
                    .to_string(),
            );
        }
        return Ok(());
    };
    report.deployed = state.phase == Phase::Deployed;
    let mut nl = kernel::open()?;
    let nl: &mut dyn Kernel = &mut nl;

    let sw = switch::driver(&plan.switch, state).live(nl, &plan.switch.name, &own)?;
    // A link someone put in the deployment's link group without its mark: remove leaves it.
    {
        let links = nl.links()?;
        let recorded = |name: &str| crate::remove::records_link(state, name);
        for name in crate::remove::group_members(&links, &own, recorded).foreign {
            report
                .notices
                .push(crate::remove::foreign_group_member(&name, &own));
        }
    }
    let drift = &mut report.drift;
    if !sw.present {
        drift.push(format!("bridge {} is missing", plan.switch.name));
    } else {
        // A bridge the user (or their network manager) made, with the adapter as its port, is
        // used as it is and recorded as adopted: not carrying our mark is then expected.
        let adopted = state
            .object(ObjectKind::Bridge, &plan.switch.name, None)
            .is_some_and(|o| o.status == ObjectStatus::Adopted);
        let foreign = !sw.ours && !adopted;
        if foreign {
            // Not ours (made again by someone else, e.g. after a reboot): its state is its
            // maker's business, so nothing below (down, addresses, MTU) is said about it.
            drift.push(format!(
                "{0} exists but does not carry this deployment's mark: it is not this deployment's bridge (made by someone else, e.g. again after a reboot); deploy refuses while it is there and remove leaves it; if nothing needs it: `ip link del {0}`, then deploy",
                plan.switch.name
            ));
        } else if !sw.up {
            drift.push(format!("bridge {} is down", plan.switch.name));
        }
        if sw.up && sw.ours {
            let own: Vec<_> = plan.switch.host_address.into_iter().collect();
            for route in nl.missing_connected_routes(&plan.switch.name, &own)? {
                let mut line = switch::connected_route::describe(&plan.switch.name, &route);
                let beside =
                    switch::connected_route::foreign_in_slot(nl, &plan.switch.name, &route)?;
                if !beside.is_empty() {
                    line.push_str(&format!(
                        " (beside {}, not edgenet's: deploy leaves it, and the kernel uses it first while it is there)",
                        beside.join("; ")
                    ));
                }
                drift.push(line);
            }
        }
        if let (Some(want), Some(have), false) = (plan.switch.mtu, sw.mtu, foreign) {
            if want != have {
                drift.push(format!(
                    "bridge {} has MTU {have}, the plan says {want}",
                    plan.switch.name
                ));
            }
        }
        if let Some(host) = plan.switch.host_address.filter(|_| !foreign) {
            if !sw.addresses.contains(&host.to_string()) {
                drift.push(format!(
                    "bridge {} lacks its address {host}",
                    plan.switch.name
                ));
            }
            // Deploy keeps only the planned address on the internal bridge.
            let extra = extra_addresses(&sw.addresses, &host.to_string());
            if plan.switch.kind == SwitchKind::Internal && sw.ours && !extra.is_empty() {
                drift.push(format!(
                    "bridge {} has {} besides its address {host}: run deploy to remove it",
                    plan.switch.name,
                    extra.join(", ")
                ));
            }
        }
    }
    // What deploy would tear down (a switch no longer in the plan, an adapter given back, a
    // rename followed): the same list, from the same function.
    let stale = switch::retire::find_stale(
        nl,
        state,
        &plan.switch,
        &crate::deploy::earlier_switches(state),
        &own,
    )?;
    report.drift.extend(stale.describe());
    // The bridge's MAC: the adapter's on an external switch, the generated one on an internal.
    let want_mac = match plan.switch.kind {
        SwitchKind::External => plan
            .switch
            .adapter
            .as_deref()
            .and_then(|a| AdapterRecord::in_state(state, a))
            .and_then(|r| r.adapter.mac),
        SwitchKind::Internal => state
            .macs
            .get(&names::switch_mac_key(&plan.switch.name))
            .copied(),
    };
    if let (Some(want), Some(have), true) = (want_mac, sw.mac.as_deref(), sw.ours) {
        if !want.to_string().eq_ignore_ascii_case(have) {
            report.drift.push(format!(
                "bridge {} has MAC {have}, the deployment gave it {want}: run deploy to set it back",
                plan.switch.name
            ));
        }
    }
    // The adapter, renamed since, is found by its recorded MAC.
    // Under its name with another MAC, the name went to another NIC (names swapped at boot,
    // or by hand): the adapter is the one with the recorded MAC, and the drift names it.
    let recorded_mac = plan
        .switch
        .adapter
        .as_deref()
        .and_then(|a| AdapterRecord::in_state(state, a))
        .and_then(|r| r.adapter.mac);
    let mut name_taken = None;
    let adapter_now = match plan.switch.adapter.as_deref() {
        Some(a) => match nl.link(a)? {
            Some(l) if recorded_mac.is_none_or(|m| l.mac == Some(m)) => Some(a.to_string()),
            by_name => {
                let found = match AdapterRecord::in_state(state, a) {
                    Some(r) => switch::adapter::find_adapter(nl, &r.adapter, &r.bridge, &own)?,
                    None => None,
                };
                if let Some(l) = by_name {
                    name_taken = Some(l.mac);
                }
                found.filter(|now| now != a).map(|now| {
                    report.drift.push(match (name_taken, recorded_mac) {
                        (Some(other), Some(mac)) => format!(
                            "adapter {a} is now called {now} (found by its recorded MAC {mac}); {a} is another NIC now (MAC {}): set AdapterName to {now} and run deploy to keep the deployment's adapter, or run remove first to move the switch to {a}",
                            other.map_or("none".to_string(), |m| m.to_string())
                        ),
                        _ => format!(
                            "adapter {a} is now called {now} (found by its recorded MAC): set AdapterName to {now} and run deploy"
                        ),
                    });
                    now
                })
            }
        },
        None => None,
    };
    let mut adapter_live: Option<(String, bool)> = None;
    if let Some(adapter) = plan.switch.adapter.as_deref() {
        let adapter = adapter_now.as_deref().unwrap_or(adapter);
        // IPv6 on a port: deploy stops it (its SLAAC route would win over the bridge's).
        let record =
            AdapterRecord::in_state(state, plan.switch.adapter.as_deref().unwrap_or(adapter));
        let ipv6_managed = record
            .as_ref()
            .is_some_and(|r| r.adapter.disable_ipv6.is_some());
        // IPv6 off on the adapter before: the bridge has it off too (see deploy).
        if record.is_some_and(|r| r.adapter.disable_ipv6.as_deref().map(str::trim) == Some("1")) {
            let key = switch::adapter::ipv6_conf(&plan.switch.name, "disable_ipv6");
            if sysctl::read(&key).is_ok_and(|v| v.trim() != "1") {
                report.drift.push(format!(
                    "IPv6 is on on {}, though {adapter} had it off before it became a port: run deploy to turn it off",
                    plan.switch.name
                ));
            }
        }
        let port_now = nl
            .link(adapter)?
            .is_some_and(|a| a.master.as_deref() == Some(plan.switch.name.as_str()));
        if ipv6_managed && port_now {
            let key = switch::adapter::ipv6_conf(adapter, "disable_ipv6");
            if let Ok(v) = sysctl::read(&key) {
                if v.trim() != "1" {
                    report.drift.push(format!(
                        "IPv6 is on on {adapter}, a port of {} (its own router advertisements would win over the bridge's): run deploy to stop it",
                        plan.switch.name
                    ));
                }
            }
        }
        match nl.link(adapter)? {
            None => report.drift.push(format!("adapter {adapter} is missing")),
            Some(a) if a.master.as_deref() != Some(plan.switch.name.as_str()) => {
                let mut line = format!("adapter {adapter} is not a port of {}", plan.switch.name);
                // The name another NIC's now and the recorded MAC not found as one adapter:
                // say where that MAC is — never of the adapter that has it (B21 N9: "has MAC
                // X, not the recorded X").
                if let (Some(_), Some(mac)) = (name_taken, recorded_mac) {
                    if a.mac != Some(mac) && adapter_now.as_deref().is_none_or(|now| now == adapter)
                    {
                        let on: Vec<String> = nl
                            .links()?
                            .into_iter()
                            .filter(|l| l.mac == Some(mac) && l.name != plan.switch.name)
                            .map(|l| l.name)
                            .collect();
                        line.push_str(&format!(
                            " ({adapter} has MAC {}, not the recorded {mac}, which {})",
                            a.mac.map_or("none".to_string(), |m| m.to_string()),
                            if on.is_empty() {
                                "no interface has now".to_string()
                            } else {
                                format!("is on {}", on.join(", "))
                            }
                        ));
                    }
                }
                report.drift.push(line)
            }
            Some(a) if !a.up => report.drift.push(format!("adapter {adapter} is down")),
            Some(a) => {
                // B19 D7: up, but nothing on the wire (cable pulled, the far end off): no
                // drift (deploy cannot fix it), but the LAN is cut off while it lasts.
                if !a.lower_up {
                    report
                        .notices
                        .push(no_carrier_words(adapter, &plan.switch.name));
                }
                adapter_live = Some((adapter.to_string(), a.lower_up));
            }
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
        // The bridge deleted by hand and made again with nothing on it: the host is offline.
        let saved = state
            .object(
                ObjectKind::Adapter,
                plan.switch.adapter.as_deref().unwrap_or(adapter),
                None,
            )
            .and_then(AdapterRecord::of)
            .and_then(|r| r.moved);
        let recorded = saved
            .as_ref()
            .map(|m| m.load().address_strings())
            .unwrap_or_default();
        let lapsed = crate::switch::adapter_lease::lapsed_in_state(
            state,
            plan.switch.adapter.as_deref().unwrap_or(adapter),
        );
        if !lapsed.is_empty() && nl.link_config(&plan.switch.name)?.addresses.is_empty() {
            report
                .notices
                .push(crate::switch::adapter_lease::lapsed_line(
                    &lapsed,
                    adapter,
                    &plan.switch.name,
                ));
        }
        if !recorded.is_empty()
            && nl.link_config(&plan.switch.name)?.addresses.is_empty()
            && nl.link_config(adapter)?.addresses.is_empty()
        {
            let held = match saved.as_ref() {
                Some(saved) => switch::adapter::held_elsewhere(
                    nl,
                    saved,
                    &plan.switch.name,
                    &plan.switch.name,
                    adapter,
                )?,
                None => Vec::new(),
            };
            let held: Vec<String> = held
                .into_iter()
                .filter(|(item, _)| item.starts_with("address "))
                .map(|(_, line)| line.strip_prefix("left ").unwrap_or(&line).to_string())
                .collect();
            if held.is_empty() {
                report.drift.push(format!(
                    "the host's addresses recorded for the adapter ({}) are on neither the bridge {} nor the adapter {adapter}: run deploy to put them back on the bridge",
                    recorded.join(", "),
                    plan.switch.name
                ));
            } else {
                report.drift.push(format!(
                    "the host's addresses recorded for the adapter ({}) are on neither the bridge {} nor the adapter {adapter}, and another NIC has them now: deploy leaves {}; to give them back to the switch, delete them from that NIC and run deploy",
                    recorded.join(", "),
                    plan.switch.name,
                    held.join("; ")
                ));
            }
        } else if let Some(saved) = saved.as_ref().filter(|_| sw.present && sw.ours && is_port) {
            // Part of it gone (the bridge set down by hand: the kernel flushed its routes, the
            // default route with them): the host may have lost its uplink.
            let (missing, _) = switch::adapter::missing_on_bridge(nl, saved, &plan.switch.name)?;
            if !missing.is_empty() {
                // A route of another interface in the slot of a missing one (a VPN's default
                // route): deploy puts the recorded one back beside it, and the kernel keeps
                // using the one that came first, so it is named.
                let routes = nl.routes()?;
                let mut any_beside = false;
                let missing: Vec<String> = missing
                    .into_iter()
                    .map(|m| {
                        let beside =
                            foreign_in_recorded_slot(&routes, &m, &plan.switch.name, adapter);
                        if beside.is_empty() {
                            m
                        } else {
                            any_beside = true;
                            format!("{m} (beside {}, not edgenet's)", beside.join("; "))
                        }
                    })
                    .collect();
                report.drift.push(format!(
                    "the bridge {} lacks the host's {} recorded when {adapter}'s configuration moved there: run deploy to put it back{}",
                    plan.switch.name,
                    missing.join(", "),
                    if any_beside {
                        " (beside those routes, which deploy leaves: the kernel keeps using the route that came first)"
                    } else {
                        ""
                    }
                ));
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
    report.switch = Some(switch::SwitchLive {
        adapter: adapter_live.as_ref().map(|(a, _)| a.clone()),
        adapter_carrier: adapter_live.map(|(_, c)| c),
        ..sw
    });

    let table = firewall::table_name(id);
    let (live, ip_owned) = match live_or_owned(&table)? {
        Ok(live) => (live, None),
        Err(owned) => (None, Some(owned)),
    };
    report.firewall_present = live.is_some() || ip_owned.is_some();
    // As deploy judges it: a flushed table this deployment made is still its own.
    let made = |name: &str| {
        state
            .object(ObjectKind::NftTable, name, None)
            .is_some_and(|o| o.status == ObjectStatus::Created)
    };
    report.firewall_foreign =
        ip_owned.is_some() || live.as_ref().is_some_and(|t| !t.is_ours(made(&table)));
    let wants_table = FirewallPlan::from_plan(&plan, id).is_ok_and(|f| f.is_some());
    report.firewall_wanted = wants_table;
    if wants_table && !report.firewall_present {
        report
            .drift
            .push(format!("nftables table ip {table} is missing"));
    }
    // An owned table is said by `table_differences` below (doctor says it too).
    if ip_owned.is_none() && report.firewall_foreign {
        report.drift.push(format!(
            "nftables table ip {table} exists but is not this deployment's (none of its rules carries edgenet's comments)"
        ));
    }
    let bridge_table = format!("{} {table}", crate::firewall::bridge_rules::FAMILY);
    let (live_bridge, bridge_owned) = match live_or_owned(&bridge_table)? {
        Ok(live) => (live, None),
        Err(owned) => (None, Some(owned)),
    };
    report.bridge_table_present = live_bridge.is_some() || bridge_owned.is_some();
    report.bridge_table_foreign = bridge_owned.is_some()
        || live_bridge
            .as_ref()
            .is_some_and(|t| !t.is_ours(made(&bridge_table)));
    if bridge_owned.is_some() {
        // Said by `table_differences` below.
    } else if live_bridge.is_none() {
        report.drift.push(format!(
            "nftables table {bridge_table} (node port anti-spoofing) is missing"
        ));
    } else if report.bridge_table_foreign {
        report.drift.push(format!(
            "nftables table {bridge_table} exists but is not this deployment's (none of its rules carries edgenet's comments)"
        ));
    }
    report.drift.extend(table_differences(state, &plan)?);
    report.bridge_table = Some(bridge_table);
    host_address_drift(&mut report.drift, nl, &plan)?;
    // Not drift: another deployment beside this one in the namespace (its state directory
    // elsewhere) looks the same as one whose state directory is gone.
    report
        .notices
        .extend(crate::leftovers::texts(crate::leftovers::leftovers(
            nl,
            Some(id.as_str()),
        )));
    firewall_drift(report, &plan, id, &table)?;
    ip_forward_drift(report, &plan);
    // With its family, as `bridge_table` (and every message) names tables.
    report.firewall_table = Some(format!("ip {table}"));
    // Another firewall that drops the switch's packets cuts the nodes off whatever our own
    // table says.
    // One chain often drops several kinds of the switch's traffic: its fix is said once.
    let subnet = edgenet_core::host_firewall::fix_subnet(&plan);
    let mut fixes_said: Vec<String> = Vec::new();
    for drop in crate::firewall::host_rules::live_drops(&plan) {
        let line = crate::firewall::host_rules::describe(&drop, &plan);
        let fix = drop.fix(&plan.switch.name, subnet.as_deref());
        let line = if fixes_said.contains(&fix) {
            line.replace(&fix, "the same as above")
        } else {
            fixes_said.push(fix);
            line
        };
        report.drift.push(line);
    }

    let runtime = crate::node::runtime(plan.node_runtime, &plan, &report.state_dir);
    for node in &plan.nodes {
        let netns = names::node_netns(&node.name, id);
        let link = names::host_veth(node.kind, id);
        let mut live = runtime.live(
            nl,
            &NodeRef {
                name: &node.name,
                guest: &netns,
                host_link: &link,
                switch: &plan.switch.name,
            },
        )?;
        if let Some(vm) = live.vm.as_ref() {
            vm_notes(report, &node.name, vm, live.present);
            // What deploy restarts a running VM for, said as drift here too.
            let chosen = crate::node::vm::chosen_accel(&report.state_dir);
            if let (Some(runs), Some(chosen)) = (vm.accel, chosen) {
                if runs != chosen {
                    report.drift.push(format!(
                        "node {}: its VM runs under {}, but deploy starts it under {} ({}): run deploy, which restarts it (accelerator changed from {} to {})",
                        node.name,
                        runs.label(),
                        chosen.label(),
                        if std::env::var_os("EDGENET_VM_ACCEL").is_some() {
                            "EDGENET_VM_ACCEL".to_string()
                        } else {
                            format!(
                                "the KVM probe's answer, cached in {}",
                                report.state_dir.join("vm").join("accel").display()
                            )
                        },
                        runs.label(),
                        chosen.label()
                    ));
                }
            }
        }
        let drift = &mut report.drift;
        // A namespace under the node's name that someone else made (the node's was deleted):
        // not the node, whatever it holds; deploy refuses it and remove leaves it.
        let foreign = plan.node_runtime != edgenet_core::config::NodeRuntime::Vm
            && nl.netns_exists(&netns)
            && !crate::node::netns::netns_is_ours(&netns, &own).unwrap_or(true);
        let foreign_link = crate::node::foreign_host_link(nl, &link, &own)?;
        if let Some(l) = foreign_link.as_ref() {
            drift.push(format!(
                "node {}: {}; deploy refuses it while it is there",
                node.name,
                crate::node::foreign_host_link_hint(l, &own)
            ));
        }
        if foreign_link.is_some() && !live.present {
            // Said above: not also a deleted link or a missing node to deploy again.
        } else if foreign {
            // What it holds is not the node's: not shown as the node.
            live = crate::node::NodeLive {
                on_switch: live.on_switch,
                ..crate::node::NodeLive::absent(&node.name, &netns)
            };
            drift.push(format!(
                "node {}: network namespace {netns} exists but does not carry this deployment's mark (delete it if it is left over: `ip netns del {netns}`; deploy then makes the node again)",
                node.name
            ));
        } else if live
            .vm
            .as_ref()
            .is_some_and(|vm| !live.present || !vm.agent)
        {
            // Said by vm_notes.
        } else if !live.present
            && plan.node_runtime != edgenet_core::config::NodeRuntime::Vm
            && nl.netns_exists(&netns)
        {
            // The namespace (and what runs in it) is there; its eth0 went with the host end
            // of the veth (deleting either end of a veth deletes both).
            drift.push(format!(
                "node {}: its link to the switch is gone (the veth {link} ↔ {netns}:{NODE_IFNAME} was deleted): the node is cut off; run deploy to make it again",
                node.name
            ));
        } else if !live.present {
            drift.push(format!("node {} ({netns}) is missing", node.name));
        } else {
            if !live.addresses.contains(&node.address.to_string()) {
                drift.push(format!(
                    "node {} lacks its address {}",
                    node.name, node.address
                ));
            }
            // Deploy keeps only the planned address in a namespace node (a VM's own network
            // configuration is the guest's).
            let extra = extra_addresses(&live.addresses, &node.address.to_string());
            if live.vm.is_none() && !extra.is_empty() {
                drift.push(format!(
                    "node {} has {} besides its address {}: run deploy to remove it",
                    node.name,
                    extra.join(", "),
                    node.address
                ));
            }
            if !live.on_switch {
                drift.push(format!(
                    "node {} is not attached to {}",
                    node.name, plan.switch.name
                ));
            }
            // A VM's own interface is the guest's; a namespace node's deploy brings up.
            if live.vm.is_none() && !live.up {
                drift.push(format!(
                    "node {}: {NODE_IFNAME} in {netns} is down: run deploy to bring it up",
                    node.name
                ));
            }
            if live.lo_down {
                drift.push(format!(
                    "node {}: lo in {netns} is down: run deploy to bring it up",
                    node.name
                ));
            }
            if live.gateway.as_deref() != Some(node.gateway.to_string().as_str()) {
                drift.push(format!(
                    "node {} has no default route via {}",
                    node.name, node.gateway
                ));
            }
            node_mtu_drift(drift, &plan, node, &live, report.switch.as_ref());
            node_mac_drift(drift, node, &live, state);
            if plan.node_runtime == edgenet_core::config::NodeRuntime::Netns {
                node_routes(report, &netns, node)?;
            }
        }
        node_files_drift(&mut report.drift, &report.state_dir, &plan, node);
        host_veth_drift(&mut report.drift, nl, &plan, node, id)?;
        report.nodes.push(live);
    }
    report.plan = Some(plan);
    Ok(())
}

/// The routes of the node namespace `netns` (one visit): the kernel's route for the node's
/// address gone (drift, see [`crate::node::connected_route`]); routes deploy did not make
/// through `eth0`, a second default route, routes of another table (notices, see
/// [`crate::node::stray_routes`]), as `ip route` shows them.
fn node_routes(report: &mut StatusReport, netns: &str, node: &NodePlan) -> Result<(), DeployError> {
    use crate::node::stray_routes::{
        deploys_default, describe, describe_in, extra_defaults, other_tables, stray, MAIN,
    };
    use edgenet_host::netlink::dropping_route::{cutting_off, dropping_by_hand};
    let name = &node.name;
    let (missing, every_table) =
        edgenet_host::netns::NetNs::open(netns)?.run(|| -> Result<_, DeployError> {
            let mut nl = edgenet_host::netlink::Netlink::open()?;
            let missing = crate::node::connected_route::missing(&mut nl, node.address)?;
            Ok((missing, nl.routes_of_every_table()?))
        })??;
    for route in &missing {
        report
            .drift
            .push(crate::node::connected_route::describe(name, netns, route));
    }
    let main: Vec<_> = every_table
        .iter()
        .filter(|(table, _)| *table == MAIN)
        .map(|(_, r)| r.clone())
        .collect();
    // Dropping routes made by hand: those that cut the node off are drift deploy deletes
    // (see edgenet_host::netlink::dropping_route); the others block a range on purpose.
    let cutting = cutting_off(&main, node.gateway);
    let hides_gateway = edgenet_host::netlink::dropping_route::picked(&main, node.gateway);
    for r in &cutting {
        let what = if hides_gateway.is_some_and(|g| std::ptr::eq(g, *r)) {
            format!("drops what the node sends to its gateway {}", node.gateway)
        } else {
            "drops, with the node's other wide dropping routes, half or more of the addresses its default route carries".to_string()
        };
        let route = describe(r);
        report.drift.push(format!(
            "node {name}: route {route} in {netns} {what}: the node is cut off; run deploy to delete it (or `ip -n {netns} route del {route}`)"
        ));
    }
    let notices = &mut report.notices;
    for route in main
        .iter()
        .filter(|r| dropping_by_hand(r) && !cutting.iter().any(|c| std::ptr::eq(*c, *r)))
        .map(describe)
    {
        notices.push(format!(
            "node {name}: route {route} in {netns} drops what it matches and was not made by deploy (by hand?): deploy leaves it; if nothing in the node needs it: `ip -n {netns} route del {route}`"
        ));
    }
    for route in stray(&main).into_iter().map(describe) {
        notices.push(format!(
            "node {name}: route {route} in {netns} was not made by deploy (by hand, or by a CNI such as flannel's host-gw backend): deploy leaves it; if nothing in the node needs it: `ip -n {netns} route del {route}`"
        ));
    }
    let beside = if deploys_default(&main, node.gateway).is_some() {
        format!(
            "beside deploy's (default via {} dev {NODE_IFNAME})",
            node.gateway
        )
    } else {
        format!(
            "while deploy's (default via {} dev {NODE_IFNAME}) is gone (drift: deploy adds it back)",
            node.gateway
        )
    };
    let deploys_gone = deploys_default(&main, node.gateway).is_none();
    for r in extra_defaults(&main, node.gateway) {
        let route = describe(r);
        // Without a metric it has the key of deploy's own (destination, metric): deploy's
        // `ip route replace` puts its own in its place.
        if deploys_gone && r.metric.unwrap_or(0) == 0 {
            notices.push(format!(
                "node {name}: default route {route} in {netns} is in the place of deploy's (default via {} dev {NODE_IFNAME}, gone: drift): deploy replaces it with its own",
                node.gateway
            ));
            continue;
        }
        notices.push(format!(
            "node {name}: a second default route {route} in {netns}, {beside}: it may take the node's traffic elsewhere; deploy leaves it; if nothing in the node needs it: `ip -n {netns} route del {route}`"
        ));
    }
    for (table, route) in other_tables(&every_table) {
        let route = describe_in(table, route);
        notices.push(format!(
            "node {name}: route {route} in {netns} is in a routing table other than main (by hand, or by a network agent; used where an `ip rule` sends packets to it): deploy leaves it; if nothing in the node needs it: `ip -n {netns} route del {route}`"
        ));
    }
    Ok(())
}

/// A node's files (resolv.conf, hosts, proxy.env) that differ from what deploy writes for
/// `plan` (edited by hand, deleted, or proxy.env readable by others): deploy writes them again.
fn node_files_drift(
    drift: &mut Vec<String>,
    state_dir: &std::path::Path,
    plan: &Plan,
    node: &NodePlan,
) {
    use crate::node::files;
    use std::os::unix::fs::PermissionsExt;
    let dir = files::node_dir(state_dir, &node.name);
    for (name, want) in [
        (files::RESOLV_CONF, files::resolv_conf(node)),
        (files::HOSTS, files::hosts(plan, node)),
        (files::PROXY_ENV, files::proxy_env(node)),
    ] {
        let path = dir.join(name);
        match files::read_back(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => drift.push(format!(
                "node {}: its file {} is not a file deploy wrote (a link, a FIFO, a directory, or too large): run deploy to write it again",
                node.name,
                path.display()
            )),
            Err(_) => drift.push(format!(
                "node {}: its file {} is missing: run deploy to write it again",
                node.name,
                path.display()
            )),
            Ok(have) if have != want => drift.push(format!(
                "node {}: its file {} differs from what deploy writes (edited by hand?): run deploy to write it again (edit the config instead)",
                node.name,
                path.display()
            )),
            Ok(_) => {
                let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
                if name == files::PROXY_ENV && mode.is_ok_and(|m| m != 0o600) {
                    drift.push(format!(
                        "node {}: its file {} is readable by others (it may hold proxy credentials): run deploy to make it 0600",
                        node.name,
                        path.display()
                    ));
                }
            }
        }
    }
}

/// For doctor: on an external switch whose adapter's configuration edgenet moved, what of it
/// the host lacks now, on the bridge (or on the adapter, the bridge gone); `None` otherwise.
/// What status says of an external switch's adapter without carrier, and doctor's fix of
/// the gateway it cannot reach then.
pub fn no_carrier_words(adapter: &str, switch: &str) -> String {
    format!(
        "adapter {adapter} (the port of {switch} to the LAN) has no carrier: link down on the wire (cable unplugged, or the switch port or device at the other end is off); the nodes and the host reach nothing on the LAN until it is back, and nothing for edgenet to repair"
    )
}

/// The adapter of `plan`'s external switch when it is up but has no carrier (see
/// [`no_carrier_words`]), by its name or, renamed since, by its recorded MAC.
pub fn adapter_without_carrier(
    state: &DeploymentState,
    plan: &Plan,
) -> Result<Option<String>, DeployError> {
    let Some(adapter) = plan.switch.adapter.as_deref() else {
        return Ok(None);
    };
    let own = Ownership {
        alias: names::alias(&state.deployment_id),
        group: names::link_group(&state.deployment_id),
    };
    let mut nl = kernel::open()?;
    let nl: &mut dyn Kernel = &mut nl;
    let record = AdapterRecord::in_state(state, adapter);
    let link = match nl.link(adapter)? {
        Some(l)
            if record
                .as_ref()
                .and_then(|r| r.adapter.mac)
                .is_none_or(|m| l.mac == Some(m)) =>
        {
            Some(l)
        }
        _ => match record {
            Some(r) => match switch::adapter::find_adapter(nl, &r.adapter, &r.bridge, &own)? {
                Some(now) => nl.link(&now)?,
                None => None,
            },
            None => None,
        },
    };
    Ok(link.filter(|l| l.up && !l.lower_up).map(|l| l.name))
}

pub fn host_config_missing(
    state: &DeploymentState,
    plan: &Plan,
) -> Result<Option<Vec<String>>, DeployError> {
    let Some(adapter) = plan.switch.adapter.as_deref() else {
        return Ok(None);
    };
    let Some(saved) = AdapterRecord::in_state(state, adapter).and_then(|r| r.moved) else {
        return Ok(None);
    };
    let mut nl = kernel::open()?;
    let nl: &mut dyn Kernel = &mut nl;
    let bridge = nl.link(&plan.switch.name)?;
    let on = match &bridge {
        Some(_) => plan.switch.name.as_str(),
        None => adapter,
    };
    let mut missing = switch::adapter::missing_on_bridge(nl, &saved, on)?.0;
    // The kernel's own route of an address there, deleted by hand: the LAN is cut off too.
    if bridge.is_some_and(|b| b.up) {
        missing.extend(nl.missing_connected_routes(on, &[])?.into_iter().map(|r| {
            format!(
                "the kernel's route to {} for its address {} (deleted by hand)",
                r.network, r.source
            )
        }));
    }
    Ok(Some(missing))
}

/// The routes of other interfaces (not `bridge`'s, not `adapter`'s) in `routes` that hold the
/// slot (IPv4 destination, metric) of the recorded route `recorded` describes (`default via
/// G metric M`, `NET/LEN via G`, as [`edgenet_host::link_config`] describes them), as `ip route`
/// lists them; none for anything else (an address, an IPv6 route, another table).
fn foreign_in_recorded_slot(
    routes: &[edgenet_host::netlink::Route],
    recorded: &str,
    bridge: &str,
    adapter: &str,
) -> Vec<String> {
    let words: Vec<&str> = recorded.split_whitespace().collect();
    let destination = match words.first() {
        Some(&"default") if words.get(1) != Some(&"(IPv6)") => ipnet::Ipv4Net::default(),
        Some(w) => match w.parse::<ipnet::Ipv4Net>() {
            Ok(net) => net,
            Err(_) => return Vec::new(),
        },
        None => return Vec::new(),
    };
    if words.contains(&"table") || words.contains(&"scope") {
        return Vec::new();
    }
    let metric = words
        .windows(2)
        .find(|w| w[0] == "metric")
        .and_then(|w| w[1].parse::<u32>().ok())
        .unwrap_or(0);
    routes
        .iter()
        .filter(|r| {
            r.destination == destination
                && r.metric.unwrap_or(0) == metric
                && !r.is_connected()
                && r.link.as_deref() != Some(bridge)
                && r.link.as_deref() != Some(adapter)
        })
        .map(|r| {
            let mut s = r.type_word().map(|w| format!("{w} ")).unwrap_or_default();
            if r.destination.prefix_len() == 0 {
                s.push_str("default");
            } else {
                s.push_str(&r.destination.to_string());
            }
            if let Some(g) = r.gateway {
                s.push_str(&format!(" via {g}"));
            }
            if let Some(m) = r.metric.filter(|m| *m != 0) {
                s.push_str(&format!(" metric {m}"));
            }
            if let Some(l) = &r.link {
                s.push_str(&format!(" dev {l}"));
            }
            s
        })
        .collect()
}

/// The addresses of `live` other than `wanted`.
fn extra_addresses(live: &[String], wanted: &str) -> Vec<String> {
    live.iter().filter(|a| *a != wanted).cloned().collect()
}

/// A `vm` node's QEMU and guest agent: drift when they are down, a notice while the guest is
/// still booting (within [`crate::node::vm::BOOT_GRACE`] of QEMU's start) or a socket is busy.
fn vm_notes(report: &mut StatusReport, name: &str, vm: &crate::node::VmLive, present: bool) {
    if present && vm.seed_pending {
        report.notices.push(format!(
            "node {name}: its cloud-init seed changed after its VM started (DNS, proxy, files): its running VM still reads the old one: run `edgenet deploy`, which restarts the VM with it"
        ));
    }
    if vm.run_state.starts_with("busy") {
        report.notices.push(format!(
            "node {name}: its VM was not asked for its state: {}",
            vm.run_state
        ));
    } else if !present && vm.run_state.starts_with("running, but") {
        // QEMU runs: deploy repairs the tap and restarts the VM.
        report.drift.push(format!(
            "node {name}: its VM is {} (run deploy: it makes the tap again if needed and restarts the VM)",
            vm.run_state
        ));
    } else if !present {
        report.drift.push(format!(
            "node {name}: its VM is {} (run deploy to start it again)",
            vm.run_state
        ));
    } else if vm.agent_state == "booting" {
        report.notices.push(format!(
            "node {name}: booting: its VM started {} s ago and its guest agent does not answer yet, so its network is not read (a notice for the first {} s)",
            vm.uptime.unwrap_or(0),
            crate::node::vm::BOOT_GRACE.as_secs()
        ));
    } else if vm.agent_state == "busy" {
        report.notices.push(format!(
            "node {name}: its guest agent socket is busy (another edgenet command uses it), so its network is not read"
        ));
    } else if !vm.agent {
        // Not drift: deploy does not restart a running VM whose agent is silent (an image
        // without qemu-guest-agent would restart on every deploy, a slow first boot be cut
        // short); status and deploy agree that there is nothing for deploy to do.
        let kvm = if vm.accel == Some(edgenet_host::qemu::Accel::Kvm) {
            " It runs under KVM: where KVM does not run guests, `EDGENET_VM_ACCEL=tcg edgenet deploy` restarts it under TCG."
        } else {
            ""
        };
        report.notices.push(format!(
            "node {name}: its VM runs but its guest agent does not answer {} s after QEMU started, so its network is not read: the image has no qemu-guest-agent, or the guest is stuck (see its console.log). deploy does not restart a running VM for this: to restart it, `kill {}` (QEMU quits, the disk stays) and run `edgenet deploy`.{kvm}",
            vm.uptime.unwrap_or(0),
            vm.pid.map_or("<QEMU pid>".into(), |p| p.to_string()),
        ));
    }
}

/// The host itself holds a node's or a service's address (deploy refuses this): packets for
/// it stay on the host and never reach the node.
fn host_address_drift(
    drift: &mut Vec<String>,
    nl: &mut dyn Kernel,
    plan: &Plan,
) -> Result<(), DeployError> {
    for a in nl.addresses()? {
        let ip = a.address.addr();
        if plan.switch.host_address.is_some_and(|h| h.addr() == ip) {
            continue;
        }
        if let Some(node) = plan.nodes.iter().find(|n| n.address.addr() == ip) {
            drift.push(format!(
                "this host has {ip} on {}, the address of node {}: its packets stay on the host (remove the address: `ip addr del {} dev {}`)",
                a.link, node.name, a.address, a.link
            ));
        } else if plan.service_range.is_some_and(|r| r.contains(ip)) {
            drift.push(format!(
                "this host has {ip} on {}, an address of the service IP range: it shadows the service (remove the address: `ip addr del {} dev {}`)",
                a.link, a.address, a.link
            ));
        } else if plan.switch.kind == SwitchKind::Internal
            && a.link != plan.switch.name
            && plan.switch.subnet.contains(&ip)
        {
            // Another link in the internal switch's subnet (e.g. another deployment's bridge
            // that chose the same one): two connected routes, and one of them wins.
            drift.push(format!(
                "{} holds {}, in the subnet {} of {}: packets for the nodes may go there (give one of them another subnet)",
                a.link, a.address, plan.switch.subnet, plan.switch.name
            ));
        }
    }
    Ok(())
}

/// The MTU a node's link must have: the plan's, else the switch's (as deploy sets it).
fn planned_node_mtu(plan: &Plan, node: &NodePlan, switch: Option<&SwitchLive>) -> Option<u32> {
    node.mtu
        .or(plan.switch.mtu)
        .or_else(|| switch.and_then(|s| s.mtu))
}

/// The node's `eth0` MTU differs from the plan (e.g. `ip link set eth0 mtu 1400` in the node).
fn node_mtu_drift(
    drift: &mut Vec<String>,
    plan: &Plan,
    node: &NodePlan,
    live: &NodeLive,
    switch: Option<&SwitchLive>,
) {
    if let (Some(want), Some(have)) = (planned_node_mtu(plan, node, switch), live.mtu) {
        if want != have {
            drift.push(format!(
                "node {} has MTU {have}, the plan says {want}",
                node.name
            ));
        }
    }
}

/// The node's MAC differs from the static one of the plan or the one deploy generated.
fn node_mac_drift(
    drift: &mut Vec<String>,
    node: &NodePlan,
    live: &NodeLive,
    state: &DeploymentState,
) {
    let want = match node.mac {
        MacAssignment::Static { address } => Some(address),
        MacAssignment::GeneratedAtDeploy => state.macs.get(&node.name).copied(),
    };
    let (Some(want), Some(have)) = (want, live.mac.as_deref()) else {
        return;
    };
    if !want.to_string().eq_ignore_ascii_case(have) {
        drift.push(format!(
            "node {} has MAC {have}, the deployment gave it {want}",
            node.name
        ));
    }
}

/// The host end of the node's veth has another MTU than the node should have.
fn host_veth_drift(
    drift: &mut Vec<String>,
    nl: &mut dyn Kernel,
    plan: &Plan,
    node: &NodePlan,
    id: &DeploymentId,
) -> Result<(), DeployError> {
    let veth = names::host_veth(node.kind, id);
    let Some(link) = nl.link(&veth)? else {
        return Ok(());
    };
    // Someone else's link under that name: said as foreign, its state is not the node's.
    if !names::alias(id).eq(link.alias.as_deref().unwrap_or(""))
        && link.group != names::link_group(id)
    {
        return Ok(());
    }
    // (A VM's tap follows its QEMU, which is said by itself.)
    if !link.up && plan.node_runtime != edgenet_core::config::NodeRuntime::Vm {
        drift.push(format!(
            "node {}: its host-side veth {veth} is down: run deploy to bring it up",
            node.name
        ));
    }
    let switch_mtu = nl.link(&plan.switch.name)?.map(|l| l.mtu);
    let want = node.mtu.or(plan.switch.mtu).or(switch_mtu);
    if let Some(want) = want.filter(|w| *w != link.mtu) {
        drift.push(format!(
            "node {}: its host-side veth {veth} has MTU {}, the plan says {want}",
            node.name, link.mtu
        ));
    }
    // Only a port of the switch has a hairpin mode (one that is not is said above).
    let hairpin = crate::firewall::nft_rules::hairpin_ports(plan);
    if link.master.as_deref() == Some(plan.switch.name.as_str()) && link.hairpin != hairpin {
        drift.push(if hairpin {
            format!("node {}: its switch port {veth} is not in hairpin mode, so the node cannot reach itself through a port forward: run edgenet deploy", node.name)
        } else {
            format!("node {}: its switch port {veth} is in hairpin mode without port forwards to need it: run edgenet deploy", node.name)
        });
    }
    Ok(())
}

/// Port forwards whose rules are not in edgenet's live table (compared as deploy compares
/// the whole table, rule by rule): each forward is named, so it is drawn where it is.
fn firewall_drift(
    report: &mut StatusReport,
    plan: &Plan,
    id: &DeploymentId,
    table: &str,
) -> Result<(), DeployError> {
    let Ok(Some(fw)) = FirewallPlan::from_plan(plan, id) else {
        return Ok(());
    };
    if fw.port_forwards.is_empty() {
        return Ok(());
    }
    // An owned table is drift of its own (said above); its forwards cannot be read.
    let Ok(live) = live_or_owned(table)? else {
        return Ok(());
    };
    let want = nft_rules::build(&fw);
    for (pf, spec) in fw.port_forwards.iter().zip(&plan.port_forwards) {
        let comment = nft_rules::forward_comment(pf);
        let rules: Vec<&serde_json::Value> = want
            .rules
            .iter()
            .filter(|r| r.get("comment").and_then(|c| c.as_str()) == Some(comment.as_str()))
            .collect();
        let present = live
            .as_ref()
            .is_some_and(|l| rules.iter().all(|r| l.rules.contains(r)));
        if !present {
            let node = plan
                .nodes
                .iter()
                .find(|n| n.kind == spec.node)
                .map_or("?", |n| n.name.as_str());
            report.drift.push(format!(
                "port forward {}/{} → {node}:{} is missing from nftables table ip {table}",
                pf.protocol.as_str(),
                pf.host_port,
                pf.node_port
            ));
        }
    }
    Ok(())
}

/// edgenet's tables (in the calling thread's namespace) that exist and are its own but differ
/// from what deploy would write for `plan` (the comparison deploy makes): a rule deleted or
/// changed by hand, a policy, a chain or object added, a dormant table. One line per table,
/// naming it and the fix; a missing or foreign table is not listed (`status` says so itself),
/// one another process owns is.
pub fn table_differences(state: &DeploymentState, plan: &Plan) -> Result<Vec<String>, DeployError> {
    let id = &state.deployment_id;
    let table = firewall::table_name(id);
    let mut wanted = Vec::new();
    if let Ok(Some(fw)) = FirewallPlan::from_plan(plan, id) {
        wanted.push((table.clone(), nft_rules::build(&fw)));
    }
    if let Some(want) = planned_bridge_table(plan, state, &table) {
        let name = format!("{} {table}", crate::firewall::bridge_rules::FAMILY);
        wanted.push((name, want));
    }
    let mut out = Vec::new();
    for (name, want) in wanted {
        let made = state
            .object(ObjectKind::NftTable, &name, None)
            .is_some_and(|o| o.status == ObjectStatus::Created);
        let live = match live_or_owned(&name)? {
            Ok(Some(live)) => live,
            Ok(None) => continue,
            Err(owned) => {
                out.push(owned);
                continue;
            }
        };
        let diffs = live.differences(&want);
        if live.is_ours(made) && !diffs.is_empty() {
            out.push(format!(
                "nftables table {} {} differs from the plan ({}): run edgenet deploy to write it again",
                want.family,
                want.table,
                diffs.join("; ")
            ));
        }
    }
    Ok(out)
}

/// Table `name` (as the state records it) as status reads it; `Err(words)` when another
/// process holds it with the nf_tables `owner` flag (nft cannot list it; deploy refuses it).
fn live_or_owned(name: &str) -> Result<Result<Option<nft_rules::Ruleset>, String>, DeployError> {
    use edgenet_host::nft::NftError;
    match firewall::driver().live(name) {
        Err(firewall::FirewallError::Nft(NftError::Owned(o))) => Ok(Err(format!(
            "nftables table {} {} is owned by another process (table flag owner; {}): only that process may change it, so deploy refuses it until that process ends or deletes the table",
            o.family,
            o.table,
            o.who()
        ))),
        other => Ok(Ok(other?)),
    }
}

/// The bridge table deploy writes: each node's host-side veth with its MAC (static, or the one
/// generated at deploy); `None` when a generated MAC is not in the state.
fn planned_bridge_table(
    plan: &Plan,
    state: &DeploymentState,
    table: &str,
) -> Option<nft_rules::Ruleset> {
    use crate::firewall::bridge_rules::{self, BridgePlan};
    let ports = plan
        .nodes
        .iter()
        .map(|n| {
            let mac = match n.mac {
                MacAssignment::Static { address } => Some(address),
                MacAssignment::GeneratedAtDeploy => state.macs.get(&n.name).copied(),
            }?;
            Some((names::host_veth(n.kind, &state.deployment_id), mac))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(bridge_rules::build(&BridgePlan::from_plan(
        plan, table, &ports,
    )))
}

/// A NAT switch needs the host to route: `net.ipv4.ip_forward` must be 1.
fn ip_forward_drift(report: &mut StatusReport, plan: &Plan) {
    let nat = plan.switch.kind == SwitchKind::Internal && plan.switch.outbound == Outbound::Nat;
    match report.ip_forward.as_deref() {
        Some(v) if nat && v != "1" => report.drift.push(format!(
            "net.ipv4.ip_forward is {v}: the NAT switch {} cannot route its nodes' traffic",
            plan.switch.name
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::VmLive;

    fn report() -> StatusReport {
        StatusReport {
            deployed: true,
            state_dir: PathBuf::from("/nonexistent"),
            deployment_id: None,
            phase: None,
            plan: None,
            switch: None,
            firewall_table: None,
            firewall_present: false,
            firewall_wanted: false,
            firewall_foreign: false,
            bridge_table: None,
            bridge_table_present: false,
            bridge_table_foreign: false,
            ip_forward: None,
            nodes: Vec::new(),
            generated_macs: Default::default(),
            drift: Vec::new(),
            notices: Vec::new(),
        }
    }

    /// B26 F10: deploy does not restart a running VM whose guest agent is silent, so status
    /// does not call it drift (they agree); it is a notice naming the remedies.
    #[test]
    fn a_running_vm_whose_agent_is_silent_past_the_boot_grace_is_a_notice_not_drift() {
        let mut r = report();
        let vm = VmLive {
            pid: Some(4242),
            accel: Some(edgenet_host::qemu::Accel::Kvm),
            run_state: "running".into(),
            agent: false,
            agent_state: "not answering".into(),
            uptime: Some(146),
            seed_pending: false,
        };
        vm_notes(&mut r, "n1", &vm, true);
        assert!(r.drift.is_empty(), "{:?}", r.drift);
        let notice = r.notices.join("\n");
        assert!(
            notice.contains("does not answer 146 s after QEMU started"),
            "{notice}"
        );
        assert!(notice.contains("`kill 4242`"), "{notice}");
        assert!(notice.contains("EDGENET_VM_ACCEL=tcg"), "{notice}");
        // A missing tap under a running QEMU is drift that deploy repairs, said as missing.
        let mut r = report();
        let vm = VmLive {
            run_state: "running, but its tap en1l is missing (deleted, or the network namespace was made anew): the guest is cut off from the switch".into(),
            ..vm
        };
        vm_notes(&mut r, "n1", &vm, false);
        assert_eq!(r.drift.len(), 1, "{:?}", r.drift);
        assert!(!r.drift[0].contains("start it again"), "{:?}", r.drift);
    }
}
