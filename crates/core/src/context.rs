//! What the rules and the planner know beyond the config: the host (or why it was not read), which machine of
//! the config this host is, and the values derived once for every rule.

use ipnet::Ipv4Net;

use crate::addressing;
use crate::config::Config;
use crate::host_facts::HostFacts;

/// `<name>-ledge` must stay a valid 63-character DNS label.
pub const MAX_MACHINE_NAME: usize = 57;

/// What the on-link address-free probe (rule 12) found, or why it did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeView {
    NotRun(String),
    Ran {
        interface: String,
        /// Every (address, MAC) that answered for a probed address.
        answers: Vec<(std::net::Ipv4Addr, crate::mac::MacAddr)>,
        /// MACs of this machine's own nodes: their answers are not conflicts (a second deploy
        /// must succeed).
        own_macs: Vec<crate::mac::MacAddr>,
        /// The LAN's gateway, asked for in the same round (see [`crate::validate::gateway_probe_target`]);
        /// `None` when it was not. Its answers are among `answers`.
        gateway: Option<std::net::Ipv4Addr>,
    },
}

/// The host as the rules see it.
#[derive(Debug, Clone)]
pub enum HostView<'a> {
    Live(&'a HostFacts),
    /// Host-dependent rules are skipped, with this reason in the notice.
    Skipped(String),
}

#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub host: HostView<'a>,
    /// Index into `Machines[]` of the machine this host is (`--machine`); `None` with one entry
    /// means that entry.
    pub machine: Option<usize>,
    /// The host name, for machines without a `MachineName`.
    pub hostname: String,
    /// `--machine-name`: overrides every name the config gives this machine.
    pub machine_name: Option<String>,
    /// The address-free probe's result (scalable clusters).
    pub probe: ProbeView,
    /// The subnet an earlier deploy chose automatically (kept in the deployment state), so that
    /// later runs keep it even though the host now has a route for it.
    pub deployed_subnet: Option<Ipv4Net>,
    /// The mark (`edgenet:<id>`) of the deployment in the state directory, if there is one:
    /// a link with another `edgenet:` mark was left by another deployment.
    pub own_mark: Option<String>,
    /// A bridge this deployment made that a stopped run did not get to mark (its state records
    /// it as pending and it is in the deployment's link group): not another tool's.
    pub own_unmarked_switch: Option<String>,
    /// The adapters this deployment took, as the host has them now (found by name, or by the
    /// MAC recorded when they were taken: a NIC renamed since, or named anew at boot):
    /// (recorded name, name now); also (the name the deployment's recorded config gives it,
    /// name now) when that differs. See [`Context::adapter_now`].
    pub deployed_adapters: Vec<(String, String)>,
    /// The adapters this deployment took that several interfaces now carry the recorded MAC of
    /// (recorded name, their names): no guess, but named in the refusal.
    pub ambiguous_adapters: Vec<(String, Vec<String>)>,
    /// The `vm` runtime's host facts (image files, CPUs, memory, state directory); `None`:
    /// those rules are not run.
    pub vm_host: Option<crate::host_facts::VmHost>,
}

impl<'a> Context<'a> {
    pub fn offline(reason: impl Into<String>, hostname: impl Into<String>) -> Self {
        Context {
            host: HostView::Skipped(reason.into()),
            machine: None,
            hostname: hostname.into(),
            machine_name: None,
            probe: ProbeView::NotRun("the host was not read".into()),
            deployed_subnet: None,
            own_mark: None,
            own_unmarked_switch: None,
            deployed_adapters: Vec::new(),
            ambiguous_adapters: Vec::new(),
            vm_host: None,
        }
    }

    pub fn live(facts: &'a HostFacts) -> Self {
        Context {
            host: HostView::Live(facts),
            machine: None,
            hostname: facts.hostname.clone(),
            machine_name: None,
            probe: ProbeView::NotRun("the probe was not asked for".into()),
            deployed_subnet: None,
            own_mark: None,
            own_unmarked_switch: None,
            deployed_adapters: Vec::new(),
            ambiguous_adapters: Vec::new(),
            vm_host: None,
        }
    }

    pub fn facts(&self) -> Option<&'a HostFacts> {
        match self.host {
            HostView::Live(f) => Some(f),
            HostView::Skipped(_) => None,
        }
    }

    /// The adapter a config naming `named` means on this host: `named` when the host has it;
    /// else the deployment's adapter, renamed since, when it was recorded as `named` (by its
    /// record, or by the deployment's recorded config), as deploy follows it; else `named`
    /// (missing: refused — a name the deployment never knew its adapter by is not a rename).
    pub fn adapter_now<'n>(&'n self, named: &'n str) -> &'n str {
        if self.facts().is_none_or(|f| f.link(named).is_some()) {
            return named;
        }
        match self.deployed_adapters.iter().find(|(was, _)| was == named) {
            Some((_, now)) => now,
            None => named,
        }
    }

    /// The machine this host is: `--machine N`, or the only entry.
    pub fn this_machine(&self, config: &Config) -> Option<usize> {
        match self.machine {
            Some(i) => (i < config.machines.len()).then_some(i),
            None => (config.machines.len() == 1).then_some(0),
        }
    }
}

/// How the single-machine switch subnet was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvedSubnet {
    Configured(Ipv4Net),
    /// Chosen over the host's routes and addresses (or kept from an earlier deploy).
    Automatic(Ipv4Net),
    /// Chosen without seeing the host.
    AutomaticUnchecked(Ipv4Net),
    /// Every candidate /24 is taken.
    NoneFree,
}

impl ResolvedSubnet {
    pub fn net(self) -> Option<Ipv4Net> {
        match self {
            ResolvedSubnet::Configured(n)
            | ResolvedSubnet::Automatic(n)
            | ResolvedSubnet::AutomaticUnchecked(n) => Some(n),
            ResolvedSubnet::NoneFree => None,
        }
    }
}

/// The single-machine switch subnet (SPEC §3.1).
pub fn resolve_subnet(config: &Config, ctx: &Context<'_>) -> ResolvedSubnet {
    if let Some(net) = config.network.ip4_address_prefix {
        return ResolvedSubnet::Configured(net.trunc());
    }
    if let Some(net) = ctx.deployed_subnet {
        return ResolvedSubnet::Automatic(net);
    }
    let ranges = config.distribution().ranges();
    let mut taken: Vec<Ipv4Net> = ranges.reserved().iter().map(|(_, n)| *n).collect();
    match ctx.facts() {
        Some(facts) => {
            taken.extend(
                addressing::host_taken_networks(facts, config.switch_name())
                    .into_iter()
                    .map(|(n, _)| n),
            );
            addressing::choose_automatic_subnet(&taken)
                .map_or(ResolvedSubnet::NoneFree, ResolvedSubnet::Automatic)
        }
        None => addressing::choose_automatic_subnet(&taken)
            .map_or(ResolvedSubnet::NoneFree, ResolvedSubnet::AutomaticUnchecked),
    }
}

/// A Kubernetes-node-name-safe form of a host name (lower case, `[a-z0-9-]`), at most
/// [`MAX_MACHINE_NAME`] characters.
fn sanitize_hostname(hostname: &str) -> String {
    sanitized(hostname, MAX_MACHINE_NAME)
}

/// The machine name a host name gives when it is shortened to [`MAX_MACHINE_NAME`]: `Some`
/// only when shortening changed it (the first label is longer than a machine name may be).
pub fn hostname_shortened(hostname: &str) -> Option<String> {
    let short = sanitize_hostname(hostname);
    (sanitized(hostname, usize::MAX) != short).then_some(short)
}

fn sanitized(hostname: &str, max: usize) -> String {
    let mut s: String = hostname
        .split('.')
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(max)
        .collect();
    while s.ends_with('-') {
        s.pop();
    }
    while s.starts_with('-') {
        s.remove(0);
    }
    if s.is_empty() {
        "edge".to_string()
    } else {
        s
    }
}

/// The name machine `index` is planned under: its `MachineName`; for the machine this host
/// deploys (the only one, or `--machine`) `Edgenet.MachineName` or the host name; any other
/// machine without a name is `machine<index>`, since its host name is not known here.
pub fn planned_machine_name(config: &Config, index: usize, ctx: &Context<'_>) -> String {
    let this = ctx.machine.or((config.machines.len() == 1).then_some(0));
    let written = config
        .machines
        .get(index)
        .and_then(|m| m.machine_name.clone());
    match written {
        Some(name) => name,
        None if this == Some(index) => ctx
            .machine_name
            .clone()
            .unwrap_or_else(|| machine_name(config, index, &ctx.hostname)),
        None => format!("machine{index}"),
    }
}

/// A machine's name: `Machines[i].MachineName`, else `Edgenet.MachineName`, else the host name.
pub fn machine_name(config: &Config, index: usize, hostname: &str) -> String {
    config
        .machines
        .get(index)
        .and_then(|m| m.machine_name.clone())
        .or_else(|| config.edgenet.machine_name.clone())
        .unwrap_or_else(|| sanitize_hostname(hostname))
}
