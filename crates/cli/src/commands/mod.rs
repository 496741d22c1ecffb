//! One module per command, and what they share: reading the config and the host.

pub mod check;
pub mod config_new;
pub mod deploy;
pub mod doctor;
pub mod install_unit;
pub mod lab;
pub mod picture;
pub mod plan;
pub mod recorded_config;
pub mod render;
pub mod scale_config;
pub mod status;

use std::path::Path;

use edgenet_core::config::{builtin_default, load, Loaded};
use edgenet_core::host_facts::HostFacts;
use edgenet_core::validate::{Context, Finding, ProbeView};

use crate::cli::{CheckArgs, Cli};
use crate::exit::{CliError, Exit};

/// Where the config came from, for messages.
pub fn config_source(cli: &Cli) -> String {
    source_name(cli.config.as_deref())
}

fn source_name(path: Option<&Path>) -> String {
    match path {
        None => "built-in default".to_string(),
        Some(p) if is_stdin(p) => "standard input".to_string(),
        Some(p) => p.display().to_string(),
    }
}

/// `-c -`: the config comes from standard input.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// The config named by `-c`, or the built-in default. Unreadable or unparseable: exit 2.
pub fn load_config(cli: &Cli) -> Result<Loaded, CliError> {
    check_host_options(cli)?;
    load_config_at(cli.config.as_deref())
}

/// The config recorded with this state directory's deployment (what `deploy` without `-c`
/// applies again), with the deployment's machine index; `None` when nothing is deployed here.
/// A deployment whose `config.json` is missing, damaged or not its own is refused
/// (`no-config`) as `deploy` refuses it: the built-in default instead would describe another
/// network (on a joining machine, a second cluster).
pub fn recorded_deployment_config(
    cli: &Cli,
    hint: &str,
) -> Result<Option<(Loaded, usize)>, CliError> {
    let dir = edgenet_deploy::state::StateDir::new(&cli.state_dir);
    let Some(state) = dir.peek().ok().flatten() else {
        return Ok(None);
    };
    let Some(plan) = state.applied_plan.as_ref().or(state.pending_plan.as_ref()) else {
        return Ok(None);
    };
    match recorded_config::recorded(cli, state.config.as_deref(), Some(plan), hint)? {
        Some(loaded) => Ok(Some((loaded, plan.machine.index))),
        None => Err(CliError::new(
            Exit::Unreadable,
            "no-config",
            format!(
                "the deployment in {} has no usable config",
                cli.state_dir.display()
            ),
        )
        .hint(hint)),
    }
}

/// The options that describe this host (`--machine-name`, `--resolv-conf`,
/// `--upstream-resolv-conf`), refused before anything is read when they cannot be right (exit 2).
pub fn check_host_options(cli: &Cli) -> Result<(), CliError> {
    check_machine_name(cli)?;
    check_resolver_paths(cli)
}

/// A resolver file named on the command line (or in EDGENET_RESOLV_CONF /
/// EDGENET_UPSTREAM_RESOLV_CONF) that does not exist, is not a regular file or is larger than
/// edgenet reads is a mistake on the command line (exit 2), not a finding about the host. At
/// their default paths the same are facts of the host (`dns-not-found` when DNS is needed):
/// a host without systemd-resolved has no upstream list.
pub fn check_resolver_paths(cli: &Cli) -> Result<(), CliError> {
    use edgenet_host::resolv::{ETC_RESOLV_CONF, MAX_RESOLV_CONF_BYTES, SYSTEMD_RESOLV_CONF};
    use edgenet_host::small_file::file_kind;
    for (flag, env, path, default) in [
        (
            "--resolv-conf",
            "EDGENET_RESOLV_CONF",
            &cli.resolv_conf,
            ETC_RESOLV_CONF,
        ),
        (
            "--upstream-resolv-conf",
            "EDGENET_UPSTREAM_RESOLV_CONF",
            &cli.upstream_resolv_conf,
            SYSTEMD_RESOLV_CONF,
        ),
    ] {
        if path.as_os_str() == default {
            continue;
        }
        let shown = path.display();
        let problem = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist".to_string(),
            Err(e) => format!("cannot be read: {e}"),
            Ok(meta) => match file_kind(&meta) {
                Some(kind) => format!("is not a regular file (it is {kind})"),
                None if meta.len() > MAX_RESOLV_CONF_BYTES => format!(
                    "is {} bytes; edgenet reads at most {MAX_RESOLV_CONF_BYTES} bytes (1 MiB) of a resolver file",
                    meta.len()
                ),
                None => continue,
            },
        };
        return Err(CliError::new(
            Exit::Unreadable,
            "invalid-arguments",
            format!("{flag} {shown}: {problem}; nothing was read or changed"),
        )
        .hint(format!(
            "give {flag} (or {env}) the path of a resolver file with `nameserver` lines, or leave it out to read {default}"
        )));
    }
    Ok(())
}

/// A `--state-dir` (or EDGENET_STATE_DIR) that names something other than a directory — a
/// config file given by mistake — is a mistake on the command line (exit 2), said before
/// anything is read or made. One that does not exist yet is fine: deploy makes it.
pub fn check_state_dir(cli: &Cli) -> Result<(), CliError> {
    let what = match std::fs::metadata(&cli.state_dir) {
        Ok(meta) if meta.is_dir() => return check_state_dir_trusted(cli),
        Ok(meta) => edgenet_host::small_file::file_kind(&meta).unwrap_or("a regular file"),
        // Not there yet: deploy makes it, in the nearest directory that exists.
        Err(_) => return check_state_dir_trusted(cli),
    };
    Err(CliError::new(
        Exit::Unreadable,
        "invalid-arguments",
        format!(
            "--state-dir {}: is {what}, not a directory; nothing was read or changed",
            cli.state_dir.display()
        ),
    )
    .hint("give --state-dir (or EDGENET_STATE_DIR) the deployment's state directory (default /var/lib/edgenet; deploy makes it), not a file in it; a config goes to -c"))
}

/// A state directory another user owns or may write (or a file in it, or a directory on the
/// way to it) is refused before anything is read (exit 2, `unsafe-state-dir`): root would
/// deploy the config and records that user put there (B23 F11).
fn check_state_dir_trusted(cli: &Cli) -> Result<(), CliError> {
    match edgenet_deploy::state::untrusted(&cli.state_dir) {
        None => Ok(()),
        Some((message, hint)) => {
            Err(CliError::new(Exit::Unreadable, "unsafe-state-dir", message).hint(hint))
        }
    }
}

/// A `--machine-name` that cannot name nodes is refused (exit 2).
pub fn check_machine_name(cli: &Cli) -> Result<(), CliError> {
    if let Some(name) = &cli.machine_name {
        if let Some(problem) = edgenet_core::validate::machine_name_problem(name) {
            return Err(CliError::new(
                Exit::Unreadable,
                "invalid-arguments",
                format!("--machine-name {name:?}: {problem}"),
            )
            .hint("use lower-case letters, digits and '-'"));
        }
    }
    Ok(())
}

/// The config at `path`, or the built-in default. Unreadable or unparseable: exit 2.
pub fn load_config_at(path: Option<&Path>) -> Result<Loaded, CliError> {
    let bytes = match path {
        None => builtin_default().to_string().into_bytes(),
        Some(path) if is_stdin(path) => read_limited(std::io::stdin().lock(), path)?,
        Some(path) => read_file(path)?,
    };
    load(&bytes).map_err(|e| {
        let source = source_name(path);
        CliError::new(
            Exit::Unreadable,
            "unreadable-config",
            format!("{source}: {e}"),
        )
        .hint("fix the file, or start from `edgenet config new`")
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, CliError> {
    let file = std::fs::File::open(path).map_err(|e| {
        CliError::new(
            Exit::Unreadable,
            "unreadable-config",
            format!("cannot read {}: {e}", path.display()),
        )
        .hint(match e.kind() {
            std::io::ErrorKind::NotFound => {
                "check the path given to -c/--config (or EDGENET_CONFIG); `edgenet config new -f FILE` writes a new one"
            }
            std::io::ErrorKind::PermissionDenied => "run as a user that can read the file, or fix its permissions",
            _ => "check the path given to -c/--config (or EDGENET_CONFIG)",
        })
    })?;
    read_limited(file, path)
}

/// At most [`MAX_CONFIG_BYTES`] of `input`; a larger input is refused with its real size
/// (counted, not kept in memory).
///
/// [`MAX_CONFIG_BYTES`]: edgenet_core::config::MAX_CONFIG_BYTES
fn read_limited(input: impl std::io::Read, path: &Path) -> Result<Vec<u8>, CliError> {
    use std::io::Read;
    let limit = edgenet_core::config::MAX_CONFIG_BYTES as u64;
    let read_err = |e: std::io::Error| {
        CliError::new(
            Exit::Unreadable,
            "unreadable-config",
            format!("cannot read {}: {e}", source_name(Some(path))),
        )
    };
    let mut input = input;
    let mut bytes = Vec::new();
    (&mut input)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > limit {
        // Not read to the end: /dev/zero or `yes |` would never end.
        return Err(CliError::new(
            Exit::Unreadable,
            "unreadable-config",
            format!(
                "{}: the config is more than 8 MiB; edgenet reads at most {limit} bytes (is this the right file?)",
                source_name(Some(path)),
            ),
        )
        .hint("a deployment config is a few kilobytes: give the file New-AksEdgeConfig or `edgenet config new` wrote"));
    }
    Ok(bytes)
}

/// Where the host layer reads the host's resolver files from (`--resolv-conf`).
pub fn facts_paths(cli: &Cli) -> edgenet_host::facts::FactsPaths {
    edgenet_host::facts::FactsPaths {
        resolv_conf: cli.resolv_conf.clone(),
        systemd_resolv_conf: cli.upstream_resolv_conf.clone(),
        ..Default::default()
    }
}

/// The deployment's adapters as the host has them now (`deployed_in_facts`: name at take-over
/// or as last deployed, name now), plus the name the deployment's recorded config gives its
/// adapter when that is neither: the adapter was renamed and deployed under its new name
/// since, and a config still naming the old name is the same config — not an order to move
/// the switch to another NIC that took that name (refused then, as for a swap at boot).
/// `recorded`: that config already loaded from this very `state` (a deploy without `-c` applies
/// it), which spares loading it again; otherwise it is loaded from the state when needed.
pub fn deployed_adapters(
    state: &edgenet_deploy::state::DeploymentState,
    facts: &HostFacts,
    recorded: Option<&Loaded>,
) -> Vec<(String, String)> {
    let mut found = edgenet_deploy::switch::adapter::deployed_in_facts(state, facts);
    if let [(was, now)] = found.as_slice() {
        let named = recorded_adapter_name(state, recorded);
        if let Some(name) = named.filter(|n| n != was && n != now) {
            let now = now.clone();
            found.push((name, now));
        }
    }
    found
}

/// The adapter name the deployment's recorded config gives this machine (the machine of its
/// plan). `recorded`: that config already loaded from `state`, else it is loaded from it.
pub fn recorded_adapter_name(
    state: &edgenet_deploy::state::DeploymentState,
    recorded: Option<&Loaded>,
) -> Option<String> {
    let plan = state
        .applied_plan
        .as_ref()
        .or(state.pending_plan.as_ref())?;
    let loaded;
    let config = match recorded {
        Some(config) => &config.config,
        None => {
            loaded = recorded_config::loaded_config(state.config.as_deref()?).ok()?;
            &loaded.config
        }
    };
    config
        .machines
        .get(plan.machine.index)?
        .adapter_name
        .clone()
}

/// The live host, or why it was not read.
pub fn host_facts(cli: &Cli, args: &CheckArgs) -> Result<HostFacts, String> {
    if args.offline_check {
        return Err("--offline-check was given".into());
    }
    edgenet_host::facts::gather_with(&facts_paths(cli))
        .map_err(|e| format!("the host could not be read ({e})"))
}

pub fn context<'a>(
    cli: &Cli,
    facts: &'a Result<HostFacts, String>,
    args: &CheckArgs,
) -> Context<'a> {
    let mut ctx = match facts {
        Ok(f) => Context::live(f),
        Err(reason) => Context::offline(reason.clone(), local_hostname()),
    };
    ctx.machine = args.machine;
    ctx.machine_name = cli.machine_name.clone();
    let state = edgenet_deploy::state::StateDir::new(&cli.state_dir)
        .peek()
        .ok()
        .flatten();
    // The switch this state directory's deployment made is not "another deployment's".
    ctx.own_mark = state
        .as_ref()
        .map(|s| edgenet_deploy::names::alias(&s.deployment_id));
    ctx.own_unmarked_switch = state
        .as_ref()
        .and_then(edgenet_deploy::switch::bridge::unmarked_own_bridge);
    if let (Some(state), Some(facts)) = (&state, ctx.facts()) {
        ctx.deployed_adapters = deployed_adapters(state, facts, None);
        ctx.ambiguous_adapters = edgenet_deploy::switch::adapter::ambiguous_in_facts(state, facts);
    }
    // The subnet deploy chose is the one deploy keeps (and checks against the host).
    ctx.deployed_subnet = state.and_then(|s| s.auto_subnet);
    ctx
}

/// The host as the `vm` runtime's rules read it (image files, CPUs, memory, socket paths).
pub fn vm_host(cli: &Cli, config: &edgenet_core::config::Config) -> edgenet_core::validate::VmHost {
    edgenet_host::vm_host::read(
        config,
        &cli.state_dir,
        edgenet_deploy::state::DeploymentId::LEN,
    )
}

/// A deployment recorded in another network namespace that is still there is refused (exit 3,
/// code `other-namespace`) before anything is read or changed: from here its bridge, tables
/// and links look gone, and a remove would delete its node namespaces (they are the host's)
/// and forget the rest. A recorded namespace that is gone (a reboot) is no objection.
pub fn refuse_other_netns(
    state: Option<&edgenet_deploy::state::DeploymentState>,
    command: &str,
) -> Result<(), CliError> {
    let Some(recorded) = state.and_then(|s| s.netns) else {
        return Ok(());
    };
    if edgenet_host::netns::current_id().is_ok_and(|here| here == recorded) {
        return Ok(());
    }
    let Some(there) = edgenet_host::netns::find_by_id(recorded) else {
        return Ok(());
    };
    Err(CliError::new(
        Exit::Host,
        "other-namespace",
        format!(
            "this deployment lives in the network namespace {}, not in the one edgenet {command} runs in; nothing was changed",
            there.display()
        ),
    )
    .hint(format!(
        "run it there: nsenter --net={} edgenet {command} …",
        there.display()
    )))
}

/// A deploy or `lab up` in a mount namespace whose mounts stay its own (`ip netns exec`):
/// the namespaces it makes would vanish when it exits, so it is refused before anything runs.
pub fn check_netns_mounts() -> Result<(), CliError> {
    match edgenet_host::netns_mounts::mounts_stay_private() {
        None => Ok(()),
        Some(why) => Err(CliError::new(Exit::Unreadable, "mount-namespace", why).hint(
            "run edgenet in the host's mount namespace: `nsenter --net=/run/netns/NAME edgenet …` enters only a network namespace (`ip netns exec` also makes a mount namespace)",
        )),
    }
}

/// `EDGENET_VM_ACCEL` (kvm, tcg, auto) and `EDGENET_VM_STOP_TIMEOUT` (whole seconds), read by
/// the `vm` runtime: a value it would not understand is refused (exit 2) before anything runs,
/// instead of being silently replaced by the default.
pub fn check_vm_env() -> Result<(), CliError> {
    let bad = |name: &str, value: &str, want: &str| {
        Err(CliError::new(
            Exit::Unreadable,
            "invalid-arguments",
            format!(
                "{name} is {}, which is not {want}",
                edgenet_core::validate::excerpt(value)
            ),
        )
        .hint(format!("set {name} to {want}, or unset it for the default")))
    };
    if let Some(v) = std::env::var_os("EDGENET_VM_ACCEL") {
        let v = v.to_string_lossy();
        if !v.is_empty() && !matches!(v.as_ref(), "kvm" | "tcg" | "auto") {
            return bad("EDGENET_VM_ACCEL", &v, "kvm, tcg or auto");
        }
    }
    if let Some(v) = std::env::var_os("EDGENET_VM_STOP_TIMEOUT") {
        let v = v.to_string_lossy();
        if !v.is_empty() && v.parse::<u64>().is_err() {
            return bad(
                "EDGENET_VM_STOP_TIMEOUT",
                &v,
                "a whole number of seconds (default 20)",
            );
        }
    }
    Ok(())
}

/// `EDGENET_NFT` (how nftables is driven, read by every command that touches it): a value
/// it would not understand is refused (exit 2) rather than silently taken as `auto`.
pub fn check_nft_env() -> Result<(), CliError> {
    use edgenet_host::nft::{BACKEND_ENV, BACKEND_VALUES};
    let Some(v) = std::env::var_os(BACKEND_ENV) else {
        return Ok(());
    };
    let v = v.to_string_lossy();
    if v.is_empty() || BACKEND_VALUES.contains(&v.as_ref()) {
        return Ok(());
    }
    let want = BACKEND_VALUES.join(", ");
    Err(CliError::new(
        Exit::Unreadable,
        "invalid-arguments",
        format!(
            "{BACKEND_ENV} is {}, which is not one of {want}",
            edgenet_core::validate::excerpt(&v)
        ),
    )
    .hint(format!(
        "set {BACKEND_ENV} to one of {want}, or unset it for the default (auto)"
    )))
}

fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Runs the address-free probe (rule 12) of a scalable config on this machine's adapter, or
/// says why it did not run. `own_macs`: MACs of this machine's deployed nodes.
pub fn probe_view(
    loaded: &Loaded,
    ctx: &Context<'_>,
    own_macs: Vec<edgenet_core::mac::MacAddr>,
) -> ProbeView {
    let config = &loaded.config;
    if !config.is_scalable() || config.network.skip_address_free_check {
        return ProbeView::NotRun("not needed".into());
    }
    if ctx.facts().is_none() {
        return ProbeView::NotRun("the host was not read".into());
    }
    let Some(machine) = ctx.this_machine(config) else {
        return ProbeView::NotRun("no machine of the config was chosen (--machine N)".into());
    };
    let Some(adapter) = config.machines[machine].adapter_name.as_deref() else {
        return ProbeView::NotRun("the machine has no adapter".into());
    };
    // The kernel's words for such a name ("Numerical result out of range") would say nothing.
    if edgenet_core::validate::adapter_name_problem(adapter).is_some() {
        return ProbeView::NotRun(format!(
            "Machines[{machine}].NetworkConnection.AdapterName is not a Linux interface name (see its error)"
        ));
    }
    let adapter = ctx.adapter_now(adapter).to_string();
    let mut own = own_macs;
    for node in [
        &config.machines[machine].linux_node,
        &config.machines[machine].windows_node,
    ]
    .into_iter()
    .flatten()
    {
        own.extend(node.mac_address);
    }
    let mut targets: Vec<_> = edgenet_core::validate::probe_targets(config, machine)
        .into_iter()
        .map(|t| t.address)
        .collect();
    // The gateway in the same round: whether it answers tells if the adapter is on the LAN.
    let gateway = ctx
        .facts()
        .and_then(|f| edgenet_core::validate::gateway_probe_target(config, f));
    let known: Vec<_> = gateway
        .filter(|gw| !targets.contains(gw))
        .and_then(|gw| Some((gw, gateway_mac(ctx, &adapter, gw)?)))
        .into_iter()
        .collect();
    targets.extend(gateway);
    match edgenet_host::arp::probe_known(&adapter, &targets, &known, &Default::default()) {
        Ok(answers) => ProbeView::Ran {
            interface: adapter,
            answers: answers.into_iter().map(|a| (a.address, a.mac)).collect(),
            own_macs: own,
            gateway,
        },
        // The adapter's name is the user's text: shortened like every other message does.
        Err(e) if e.errno() == Some(1) => ProbeView::NotRun(format!(
            "{}: it needs root",
            shorten_name(&e.to_string(), &adapter)
        )),
        Err(e) => ProbeView::NotRun(shorten_name(&e.to_string(), &adapter)),
    }
}

/// The gateway's MAC in the host's neighbour cache, on the link that carries the host's
/// address on the gateway's subnet: the adapter, or, once deployed, the switch it is a port of
/// (the take-over moved the adapter's entries there). The probe asks the gateway at that MAC
/// first, as the kernel confirms an entry it holds, instead of by broadcast to the whole LAN
/// (it broadcasts when that goes unanswered). `None` — a broadcast as without a cache — when
/// the host has no address there, no usable entry, or the cache cannot be read.
fn gateway_mac(
    ctx: &Context<'_>,
    adapter: &str,
    gateway: std::net::Ipv4Addr,
) -> Option<edgenet_core::mac::MacAddr> {
    let facts = ctx.facts()?;
    let master = facts.link(adapter).and_then(|l| l.master.as_deref());
    let on = facts.addresses.iter().find(|a| {
        a.address.contains(&gateway) && (a.link == adapter || Some(a.link.as_str()) == master)
    })?;
    edgenet_host::netlink::Netlink::open()
        .and_then(|mut nl| nl.neighbour_mac(&on.link, gateway))
        .ok()
        .flatten()
}

/// Refuses a `--machine` that the config does not have (a wrong command line: exit 2), before
/// any rule runs, in `check` as in `plan`.
pub fn machine_in_range(args: &CheckArgs, count: usize) -> Result<(), CliError> {
    machine_index_in_range(args.machine, count)
}

/// Why no plan was made, as a CLI error: a multi-machine config without `--machine` is a
/// command-line omission (exit 2, `invalid-arguments`, as a `--machine` out of range is; B23
/// F7), anything else `no-plan` (exit 1).
pub fn plan_error(e: edgenet_core::plan::PlanError) -> CliError {
    use edgenet_core::plan::PlanError;
    match e {
        PlanError::MachineNotChosen { count } => {
            CliError::new(Exit::Unreadable, "invalid-arguments", e.to_string()).hint(format!(
                "add --machine N (0 to {}): this host's entry in Machines",
                count.saturating_sub(1)
            ))
        }
        PlanError::MachineOutOfRange { .. } => {
            CliError::new(Exit::Unreadable, "invalid-arguments", e.to_string())
        }
        PlanError::Invalid(_) => CliError::new(Exit::Findings, "no-plan", e.to_string()),
    }
}

/// `--machine N` within the config's machines, or exit 2 (a wrong command line).
pub fn machine_index_in_range(machine: Option<usize>, count: usize) -> Result<(), CliError> {
    match machine {
        Some(i) if i >= count => {
            // "0 to 0" for one machine reads oddly (B21 N9).
            let (listed, hint) = match count {
                0 => (
                    "no machines".to_string(),
                    "add an entry to Machines".to_string(),
                ),
                1 => (
                    "1 machine (0)".to_string(),
                    "use --machine 0, or leave --machine out".to_string(),
                ),
                n => (
                    format!("{n} machines (0 to {})", n - 1),
                    format!("use --machine 0 to {}", n - 1),
                ),
            };
            Err(CliError::new(
                Exit::Unreadable,
                "invalid-arguments",
                format!("--machine {i} is out of range: the config lists {listed}"),
            )
            .hint(hint))
        }
        _ => Ok(()),
    }
}

/// Err (exit 1) listing every error of `findings`, when there is one: commands that act refuse
/// a config with errors before doing anything (`consequence` says what they did not do).
pub fn refuse_errors(cli: &Cli, findings: &[Finding], consequence: &str) -> Result<(), CliError> {
    refuse_errors_from(&config_source(cli), findings, consequence)
}

/// [`source_name`] for callers outside this module.
pub fn source_name_of(path: Option<&Path>) -> String {
    source_name(path)
}

/// [`refuse_errors`] for a config named `source`.
pub fn refuse_errors_from(
    source: &str,
    findings: &[Finding],
    consequence: &str,
) -> Result<(), CliError> {
    let style = crate::output::Style::for_stderr();
    let listing: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == edgenet_core::validate::Severity::Error)
        .map(|f| crate::output::finding_text(f, style))
        .collect();
    if listing.is_empty() {
        return Ok(());
    }
    Err(CliError::new(
        Exit::Findings,
        "config-has-errors",
        format!(
            "{source} has {} error(s); {consequence}:\n{}",
            listing.len(),
            listing.join("\n")
        ),
    )
    .hint("run `edgenet check` for every finding"))
}

/// `text` with a long `name` in it cut to an excerpt (see [`edgenet_core::validate::excerpt`]).
fn shorten_name(text: &str, name: &str) -> String {
    let short = edgenet_core::validate::excerpt(name);
    if short.chars().count() >= name.chars().count() {
        return text.to_string();
    }
    text.replace(&format!("{name:?}"), &short)
        .replace(name, &short)
}

/// How long `check` and a changing `deploy` wait for the configured DNS servers (all asked at
/// once, so this bounds the whole check).
const DNS_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// AKS EE's DNS check (B21 N4): each configured DNS server (`Network.DnsServers`, never the
/// host's own resolvers) is asked one query for the root from this host, and one that does not
/// answer is a warning (a typo in DnsServers is a common field error), never a refusal. Off with
/// `Network.SkipDnsCheck` and, as in AKS EE, offline (`InternetDisabled`). A server inside an
/// internal switch's subnet is on the switch itself, which this host may not have yet: `doctor`
/// asks it from the node.
/// What a failed query says about its server: refused or unreachable at once (an ICMP error
/// came back) is not silence.
fn dns_failure_words(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => format!(
            "refuses a query from this host: its host answered at once that nothing takes DNS on port 53 there ({e})"
        ),
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
            format!("is unreachable from this host ({e})")
        }
        _ => format!(
            "does not answer a query from this host within {} s ({e})",
            DNS_CHECK_TIMEOUT.as_secs()
        ),
    }
}

pub fn dns_findings(plan: &edgenet_core::plan::Plan) -> Vec<Finding> {
    use edgenet_core::plan::{DnsSource, Outbound, SwitchKind};
    use edgenet_core::validate::Code;
    let Some(node) = plan.nodes.first() else {
        return Vec::new();
    };
    if node.skip_dns_check
        || node.dns_source != DnsSource::Configured
        || plan.switch.outbound == Outbound::Offline
    {
        return Vec::new();
    }
    let internal = plan.switch.kind == SwitchKind::Internal;
    let servers: Vec<(usize, std::net::Ipv4Addr)> = node
        .dns_servers
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, s)| !(internal && plan.switch.subnet.contains(s)))
        .collect();
    let replies: Vec<_> = std::thread::scope(|scope| {
        let asked: Vec<_> = servers
            .iter()
            .map(|&(i, server)| {
                scope.spawn(move || {
                    let reply = edgenet_host::probes::dns_query(
                        server,
                        ".",
                        edgenet_host::probes::DNS_TYPE_NS,
                        DNS_CHECK_TIMEOUT,
                    );
                    (i, server, reply)
                })
            })
            .collect();
        asked.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    replies
        .into_iter()
        .filter_map(|(i, server, reply)| {
            let e = reply.err()?;
            Some(
                Finding::warning(
                    Code::DnsSilent,
                    format!("Network.DnsServers[{i}]"),
                    format!("DNS server {server} {}", dns_failure_words(&e)),
                )
                .hint("check the address; if it is unreachable on purpose (an air-gapped site), set Network.SkipDnsCheck: true"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use edgenet_core::host_facts::{HostFacts, HostLink};
    use edgenet_deploy::state::{DeploymentState, ObjectKind};
    use edgenet_deploy::switch::{AdapterRecord, AdapterSnapshot};

    fn with_adapter(name: &str) -> serde_json::Value {
        serde_json::json!({"Machines": [{"NetworkConnection": {"AdapterName": name}, "LinuxNode": {}}]})
    }

    /// A renamed adapter (recorded and now `enp7s0`) still answers to the name its recorded
    /// config gives it: taken from the config the deploy already loaded when there is one,
    /// else loaded from the state.
    #[test]
    fn the_recorded_configs_adapter_name_is_taken_from_the_loaded_config_when_given() {
        let mut state = DeploymentState::new("abc123".parse().unwrap());
        let record = AdapterRecord {
            bridge: "aksedgesw-ext".into(),
            adapter: AdapterSnapshot {
                name: "enp7s0".into(),
                mac: Some("02:00:00:00:00:01".parse().unwrap()),
                mtu: 1500,
                up: true,
                disable_ipv6: None,
            },
            moved: None,
        };
        state
            .record_object(ObjectKind::Adapter, "enp7s0", None)
            .restore = Some(serde_json::to_value(record).unwrap());
        let default = edgenet_core::config::builtin_default().to_string();
        let loaded = edgenet_core::config::load(default.as_bytes()).unwrap();
        let none = HostFacts::default();
        let ctx = edgenet_core::validate::Context::live(&none);
        state.applied_plan = Some(edgenet_core::plan::build(&loaded.config, &ctx).unwrap());
        let facts = HostFacts {
            links: vec![HostLink {
                name: "enp7s0".into(),
                index: 2,
                mtu: 1500,
                up: true,
                lower_up: true,
                mac: Some("02:00:00:00:00:01".into()),
                kind: None,
                master: None,
                wireless: false,
                alias: None,
            }],
            ..Default::default()
        };
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            super::deployed_adapters(&state, &facts, None),
            [pair("enp7s0", "enp7s0")]
        );
        state.config = Some(std::sync::Arc::new(with_adapter("eth0")));
        assert_eq!(
            super::deployed_adapters(&state, &facts, None),
            [pair("enp7s0", "enp7s0"), pair("eth0", "enp7s0")]
        );
        // Given loaded, the state's value is not loaded again (another name here, to tell).
        let given = super::recorded_config::loaded_config(&with_adapter("eth1")).unwrap();
        assert_eq!(
            super::deployed_adapters(&state, &facts, Some(&given)),
            [pair("enp7s0", "enp7s0"), pair("eth1", "enp7s0")]
        );
    }
}
