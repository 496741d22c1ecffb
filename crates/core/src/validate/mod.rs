//! `edgenet check`: every rule of SPEC §4, all findings at once, no I/O.
//!
//! Rule group 1 (syntax and types) runs in [`crate::config::load`]; the groups here run on the
//! typed [`Config`]. Host-dependent groups (5, 7, 8, 11) read [`HostView::Live`] facts and are
//! reported as skipped, never passed, when the host could not be read.

mod adapter;
pub(crate) mod addresses;
mod cluster;
mod dns;
mod host_firewall;
mod macs;
pub(crate) mod mtu;
mod overlap;
mod probe;
mod proxy;
mod structure;
mod subnet;
pub(crate) mod vm;

pub use crate::config::is_control_plane;
pub use crate::context::{
    machine_name, planned_machine_name, resolve_subnet, Context, HostView, ProbeView,
    ResolvedSubnet,
};
pub use crate::finding::{excerpt, Code, Finding, Severity};
pub use crate::ifname::interface_name_problem;
pub use adapter::{adapter_name_problem, lan_mismatch};
pub use host_firewall::OWN_TABLE_PREFIX;
pub use probe::{gateway_probe_target, probe_targets, ProbeTarget};
pub use structure::machine_name_problem;
pub use vm::{FileFacts, VmHost};

use crate::config::Config;

/// The loader refused `path` or a field that holds it (`Machines[0].LinuxNode` written as
/// text holds its `Ip4Address`): rules say nothing more about it, since whatever they said
/// would be about a value the file does not have.
pub(crate) fn refused(config: &Config, path: &str) -> bool {
    config.invalid_paths.iter().any(|p| {
        path.strip_prefix(p.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    })
}

/// Marks as refused (see [`refused`]) each field of `config` whose path ends with one of
/// `paths` that `found` (the findings of one rule) has an error at. Copies the config only
/// then: a config without errors is never copied (deploy checks it every run).
fn refuse_values(config: &mut std::borrow::Cow<'_, Config>, found: &[Finding], paths: &[&str]) {
    for f in found {
        if f.severity == Severity::Error
            && paths.iter().any(|p| f.path.ends_with(p))
            && !config.invalid_paths.contains(&f.path)
        {
            config.to_mut().invalid_paths.insert(f.path.clone());
        }
    }
}

/// The scalable cluster's LAN (see [`crate::addressing::lan_subnet`]), none when its gateway
/// or prefix length was refused: nothing is placed in a LAN the config must not have.
pub(crate) fn checked_lan(config: &Config) -> Option<ipnet::Ipv4Net> {
    if refused(config, "Network.Ip4PrefixLength") || refused(config, "Network.Ip4GatewayAddress") {
        return None;
    }
    crate::addressing::lan_subnet(config)
}

/// Runs rule groups 2–12 (and the structural part of 1) over a loaded config.
pub fn validate(config: &Config, ctx: &Context<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    if refused(config, "DeploymentType") {
        // Every rule after this one depends on the type, and the loader read the file as the
        // default type: a scalable config with a typo in it would be told to delete its
        // gateway, endpoint and node addresses.
        out.push(
            Finding::notice(
                Code::RulesSkipped,
                "DeploymentType",
                "the other rules (2 to 13, and the required and forbidden fields) were not run: they depend on DeploymentType, which is not valid",
            )
            .hint("fix DeploymentType (the error above), then run check again"),
        );
        return out;
    }
    // A value a rule refuses is, for the rules after it, as the loader's refusals (see
    // [`refused`]): one error per mistake, no findings (or hints) about a value the config
    // must not have. The subnet's prefix length comes first for that: the addresses are placed
    // in the LAN it makes.
    let mut config = std::borrow::Cow::Borrowed(config);
    structure::check(&config, ctx, &mut out);
    let from = out.len();
    subnet::check(&config, &mut out);
    refuse_values(&mut config, &out[from..], &["Network.Ip4PrefixLength"]);
    addresses::check(&config, &mut out);
    let from = out.len();
    overlap::check(&config, ctx, &mut out);
    refuse_values(&mut config, &out[from..], &["Network.Ip4AddressPrefix"]);
    macs::check(&config, &mut out);
    mtu::check(&config, ctx, &mut out);
    dns::check(&config, ctx, &mut out);
    proxy::check(&config, &mut out);
    cluster::check(&config, &mut out);
    let from = out.len();
    adapter::check(&config, ctx, &mut out);
    refuse_values(
        &mut config,
        &out[from..],
        &[".NetworkConnection.AdapterName"],
    );
    host_firewall::check(&config, ctx, &mut out);
    probe::check(&config, ctx, &mut out);
    vm::check(&config, ctx, &mut out);
    let config: &Config = &config;
    machine_name_overridden(config, ctx, &mut out);
    if let HostView::Skipped(reason) = &ctx.host {
        out.push(
            Finding::notice(
                Code::HostChecksSkipped,
                "",
                format!(
                    "host-dependent rules (5: host overlaps, 7: adapter MTU, 8: host DNS, 11: adapter{}) were not run: {reason}",
                    if config.edgenet.node_runtime == crate::config::NodeRuntime::Vm {
                        ", 13: vm image files, host CPUs and memory, socket paths"
                    } else {
                        ""
                    }
                ),
            )
            .hint("run check on the machine itself, without --offline-check, to run them"),
        );
    }
    out
}

/// Loader findings plus [`validate`], ordered by rule group (stable within a group).
/// An explicit machine name silently replacing the one the config writes for this machine
/// would give a cloned host's nodes another machine's names (B21 N9).
fn machine_name_overridden(config: &Config, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let Some(given) = ctx.machine_name.as_deref() else {
        return;
    };
    let Some(i) = ctx.machine.or((config.machines.len() == 1).then_some(0)) else {
        return;
    };
    let Some(written) = config
        .machines
        .get(i)
        .and_then(|m| m.machine_name.as_deref())
    else {
        return;
    };
    if written != given {
        out.push(
            Finding::notice(
                Code::MachineNameOverridden,
                format!("Machines[{i}].MachineName"),
                format!(
                    "Machines[{i}].MachineName is {written:?}, but --machine-name (or EDGENET_MACHINE_NAME) names this machine {given:?}, which wins: the nodes are {given}-ledge…, not {written}-ledge…"
                ),
            )
            .hint("leave --machine-name and EDGENET_MACHINE_NAME unset to use the config's name, or make them agree"),
        );
    }
}

pub fn check(loaded: &crate::config::Loaded, ctx: &Context<'_>) -> Vec<Finding> {
    let mut all = loaded.findings.clone();
    // The rules name current-schema paths; point them at what the file wrote instead.
    let aliases = &loaded.config.source_paths;
    all.extend(validate(&loaded.config, ctx).into_iter().map(|mut f| {
        if !aliases.is_empty() {
            f.path = crate::config::written_path(aliases, &f.path);
            f.message = crate::config::rewrite_paths(aliases, &f.message);
            f.hint = f.hint.map(|h| crate::config::rewrite_paths(aliases, &h));
        }
        f
    }));
    all.sort_by_key(|f| (f.rule == 0, f.rule));
    all
}
