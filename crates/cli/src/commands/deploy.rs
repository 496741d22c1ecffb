//! `edgenet deploy` and `edgenet remove`.

use std::io::IsTerminal;
use std::time::Duration;

use edgenet_core::config::Loaded;
use edgenet_core::host_facts::HostFacts;
use edgenet_core::plan::{self, Plan};
use edgenet_core::validate::{check, Finding, ProbeView};
use edgenet_deploy::state::{DeploymentState, StateDir, StateError};
use edgenet_deploy::DeployError;

use crate::cli::{Cli, DeployArgs, LockArgs, Output};
use crate::commands::recorded_config::{recorded, RECORDED};
use crate::exit::{CliError, Exit};
use crate::output::{errln, outln};

pub fn host_error(e: DeployError) -> CliError {
    let exit = Exit::Host;
    let code = match &e {
        DeployError::State(StateError::Locked { .. }) => "locked",
        DeployError::State(_) => "state",
        DeployError::Foreign { .. } => "foreign-object",
        DeployError::Unsupported(_) => "unsupported",
        DeployError::Missing { .. } => "missing",
        DeployError::AdapterManaged { .. } => "adapter-managed",
        DeployError::HostFirewall { .. } => "host-firewall",
        _ => "host",
    };
    let hint = e.hint();
    let err = CliError::new(exit, code, e.to_string());
    match hint {
        Some(h) => err.hint(h),
        None => err,
    }
}

/// The config a deploy applies: `-c FILE` (or standard input); without `-c`, the config of the
/// deployment recorded in the state directory, applied again as it was (its machine index and
/// name unless `--machine`/`--machine-name` say otherwise); the built-in default only when no
/// deployment is recorded.
struct Chosen {
    /// The config loaded; its `source` is in [`Self::config`].
    loaded: Loaded,
    /// The config as written (`loaded.source`, taken out of it): shared with the state the
    /// deploy records, compared by address.
    config: std::sync::Arc<serde_json::Value>,
    /// For messages and the report's `source`: the file, `standard input`, `built-in default`
    /// or [`RECORDED`].
    source: String,
    /// The recorded deployment's config (not a `-c` file that happens to be named `recorded`).
    recorded: bool,
    /// The state's config it was loaded from, when [`Self::recorded`]; with `-c`, the state's
    /// config when the file holds it exactly (see [`written_alike`]): the deploy records the
    /// very same value then, and the recorded config is the one loaded.
    recorded_from: Option<std::sync::Arc<serde_json::Value>>,
    machine: Option<usize>,
    machine_name: Option<String>,
    /// The machine choice came from `machine.json` (see [`EarlyRecord`]): deleted once the
    /// deploy completes, its records naming the machine from then on.
    machine_file: bool,
}

impl Chosen {
    fn new(
        mut loaded: Loaded,
        source: String,
        recorded: bool,
        recorded_from: Option<std::sync::Arc<serde_json::Value>>,
        machine: Option<usize>,
        machine_name: Option<String>,
    ) -> Chosen {
        let config = std::sync::Arc::new(std::mem::take(&mut loaded.source));
        Chosen {
            loaded,
            config,
            source,
            recorded,
            recorded_from,
            machine,
            machine_name,
            machine_file: false,
        }
    }

    fn recorded(&self) -> bool {
        self.recorded
    }

    /// The loaded config, when it is the one `state` records (loaded from the same value).
    fn recorded_in(&self, state: &DeploymentState) -> Option<&Loaded> {
        let (from, now) = (self.recorded_from.as_ref()?, state.config.as_ref()?);
        (std::sync::Arc::ptr_eq(from, now) || from == now).then_some(&self.loaded)
    }

    /// `-c`'s config, when `state` records it written alike (key for key, in the same order):
    /// the recorded config is then the one loaded, and the deploy records the value it has
    /// instead of an equal copy, which the state's saves would compare piece by piece.
    /// Not for a file whose loading found errors (a key written twice): the recorded config
    /// loads without them, and the deploy is refused anyway.
    fn same_as_recorded_in(&mut self, state: Option<&DeploymentState>) {
        use edgenet_core::validate::Severity;
        if self.recorded_from.is_some()
            || self
                .loaded
                .findings
                .iter()
                .any(|f| f.severity == Severity::Error)
        {
            return;
        }
        if let Some(config) = state.and_then(|s| s.config.as_ref()) {
            if std::sync::Arc::ptr_eq(config, &self.config) || written_alike(config, &self.config) {
                self.recorded_from = Some(config.clone());
            }
        }
    }

    /// The config value the deploy records: the state's when it is written alike (shared,
    /// compared by address), else the one loaded.
    fn to_record(
        recorded_from: Option<std::sync::Arc<serde_json::Value>>,
        config: std::sync::Arc<serde_json::Value>,
    ) -> std::sync::Arc<serde_json::Value> {
        match recorded_from {
            Some(recorded)
                if std::sync::Arc::ptr_eq(&recorded, &config)
                    || written_alike(&recorded, &config) =>
            {
                recorded
            }
            _ => config,
        }
    }

    /// How text output names the config.
    fn said(&self, cli: &Cli) -> String {
        if self.recorded() {
            format!(
                "the deployment's, recorded in {}",
                cli.state_dir
                    .join(edgenet_deploy::state::CONFIG_FILE)
                    .display()
            )
        } else {
            self.source.clone()
        }
    }

    /// What the result line adds: the config deploy chose when none was named (`-c` names
    /// its own).
    fn said_if_chosen(&self, cli: &Cli) -> String {
        if cli.config.is_some() {
            String::new()
        } else {
            format!(", config: {}", self.said(cli))
        }
    }
}

/// Whether `a` and `b` are the same JSON written alike: the same keys in the same order, the
/// same values (numbers as parsed). Such values serialize to the same bytes, so the one stands
/// for the other in `config.json`; `==` ignores the order of keys, which the file keeps.
fn written_alike(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && written_alike(va, vb))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| written_alike(a, b))
        }
        (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => false,
        (a, b) => a == b,
    }
}

/// [`Chosen`] without `-c`, from the state `peeked` (see [`crate::commands::recorded_config`]).
fn chosen_without_c(
    cli: &Cli,
    args: &DeployArgs,
    peeked: Option<&DeploymentState>,
) -> Result<Chosen, CliError> {
    // The plan the recorded config belongs to: `config.json` is written with `state.json`, at
    // the end of a run (and at a first run's first record), never by a journal line: it is
    // the last completed deploy's (applied plan), or an interrupted first deploy's (pending).
    // A redeploy stopped part-way leaves the deployment before it recorded: applied again.
    let plan = peeked.and_then(|s| s.applied_plan.as_ref().or(s.pending_plan.as_ref()));
    super::check_host_options(cli)?;
    let hint = "name the config to deploy with -c FILE (`edgenet config new -f FILE` writes the built-in default), or run `edgenet remove` first";
    // Nothing recorded but `config.json`: a first deploy interrupted before its first record
    // (the file is written first; `remove` deletes it): its config, as README says, whether
    // or not its `identity.json` made it to the disk.
    let alone = match peeked {
        Some(_) => None,
        None => StateDir::new(&cli.state_dir).config_alone(),
    };
    let config = peeked.and_then(|s| s.config.as_deref()).or(alone.as_ref());
    // With `config.json` alone, the machine choice that first deploy recorded with it (B25 F1).
    let early_bytes = alone
        .as_ref()
        .and_then(|_| std::fs::read(cli.state_dir.join(edgenet_deploy::state::MACHINE_FILE)).ok());
    let machine_file = early_bytes.is_some();
    let early = early_bytes
        .and_then(|b| serde_json::from_slice::<MachineChoice>(&b).ok())
        .unwrap_or_default();
    match recorded(cli, config, plan, hint)? {
        Some(loaded) => Ok(Chosen {
            machine_file,
            ..Chosen::new(
                loaded,
                RECORDED.to_string(),
                true,
                peeked.and_then(|s| s.config.clone()),
                args.machine
                    .or(plan.map(|p| p.machine.index))
                    .or(early.machine),
                // The records lost (`state.json` moved aside, emptied): the name `identity.json`
                // kept, not the host's (B23b F5).
                cli.machine_name.clone().or_else(|| {
                    plan.map(|p| p.machine.name.clone())
                        .or_else(|| peeked?.machine_name().map(str::to_string))
                        .or(early.machine_name)
                }),
            )
        }),
        None => Ok(Chosen::new(
            super::load_config(cli)?,
            super::config_source(cli),
            false,
            None,
            args.machine,
            cli.machine_name.clone(),
        )),
    }
}

/// What `machine.json` holds: the `--machine` and `--machine-name` of a first deploy that
/// recorded its config early (see [`EarlyRecord`]), which no plan records yet.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct MachineChoice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    machine: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    machine_name: Option<String>,
}

/// The config of a first deploy with `-c`, recorded in the state directory (`config.json`, and
/// the lock file) before the host is probed, under the state directory's lock, which is then
/// the deploy's (B24 F7). Until the deploy proper starts, a refusal takes it all back as it was
/// (the file's earlier bytes, or none; the lock file and directories this run made): a config
/// refused changes nothing, the state directory included. Only a run killed meanwhile leaves
/// it, as one killed before its first record leaves `config.json` (README): the next plain
/// `deploy` applies it, and `remove` deletes it. The machine choice (`--machine`,
/// `--machine-name`) goes with it, in `machine.json` (B25 F1): a plain `deploy` then deploys
/// the same machine of a multi-machine config. Deleted when the deploy completes.
struct EarlyRecord {
    lock: Option<edgenet_deploy::state::StateLock>,
    /// The config recorded, handed to the deploy (its first record finds the file written).
    config: Option<std::sync::Arc<serde_json::Value>>,
    /// Take the record back when dropped (a refusal).
    undo: bool,
    previous: Option<Vec<u8>>,
    machine_previous: Option<Vec<u8>>,
    /// `machine.json` was written (deleted once the deploy has completed).
    machine_written: bool,
    lock_file: Option<std::path::PathBuf>,
    /// The directories this run made, the state directory first.
    made_dirs: Vec<std::path::PathBuf>,
}

impl EarlyRecord {
    fn write(cli: &Cli, args: &LockArgs, chosen: &Chosen) -> Result<Option<EarlyRecord>, CliError> {
        let dir = StateDir::new(&cli.state_dir);
        let made_dirs: Vec<_> = dir
            .path()
            .ancestors()
            .take_while(|p| !p.as_os_str().is_empty() && std::fs::symlink_metadata(p).is_err())
            .map(|p| p.to_path_buf())
            .collect();
        let lock_file = (!made_dirs.is_empty()
            || std::fs::symlink_metadata(dir.lock_file()).is_err())
        .then(|| dir.lock_file());
        let config_path = cli.state_dir.join(edgenet_deploy::state::CONFIG_FILE);
        let machine_path = cli.state_dir.join(edgenet_deploy::state::MACHINE_FILE);
        let mut record = EarlyRecord {
            lock: None,
            config: None,
            undo: true,
            previous: std::fs::read(config_path).ok(),
            machine_previous: std::fs::read(machine_path).ok(),
            machine_written: false,
            lock_file,
            made_dirs,
        };
        let lock = lock(cli, args, "edgenet deploy")?;
        // Another run deployed here while this one waited for the lock: its records stand.
        if lock.load().map_err(|e| host_error(e.into()))?.is_some() {
            record.undo = false;
            record.lock = Some(lock);
            return Ok(Some(record));
        }
        let config = chosen.config.clone();
        record.lock = Some(lock);
        record
            .lock
            .as_ref()
            .expect("set above")
            .record_config(&config)
            .map_err(|e| host_error(e.into()))?;
        record.config = Some(config);
        // The machine choice with it, or none (an earlier killed run's goes).
        let choice = MachineChoice {
            machine: chosen.machine,
            machine_name: chosen.machine_name.clone(),
        };
        let json = (choice.machine.is_some() || choice.machine_name.is_some())
            .then(|| serde_json::to_vec(&choice).expect("a machine choice serialises"));
        record.machine_written = json.is_some();
        let lock = record.lock.as_ref().expect("set above");
        lock.record_machine_choice(json.as_deref()).map_err(|e| {
            CliError::new(
                Exit::Host,
                "state",
                format!("cannot record the deployment: {e}"),
            )
            .hint("nothing was changed")
        })?;
        Ok(Some(record))
    }
}

impl Drop for EarlyRecord {
    fn drop(&mut self) {
        if !self.undo {
            return;
        }
        if let Some(lock) = &self.lock {
            let _ = lock
                .take_back_early_record(self.previous.as_deref(), self.machine_previous.as_deref());
        }
        if let Some(lock_file) = &self.lock_file {
            let _ = std::fs::remove_file(lock_file);
        }
        for dir in &self.made_dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Refuses, before any change, a state directory where something that is not a regular file
/// (a directory, a FIFO, a link) is in the place of `identity.json` or `config.json`: the deploy
/// could not record its identity or config there. Without `-c`, an odd `config.json` is the
/// recorded config's problem (`no-config`, see [`recorded`]).
fn refuse_odd_files(cli: &Cli) -> Result<(), CliError> {
    let dir = StateDir::new(&cli.state_dir);
    let config = cli.state_dir.join(edgenet_deploy::state::CONFIG_FILE);
    let odd: Vec<String> = dir
        .odd_files()
        .into_iter()
        .filter(|(path, _)| cli.config.is_some() || *path != config)
        .map(|(path, what)| format!("{} is {what}, not a file edgenet wrote", path.display()))
        .collect();
    if odd.is_empty() {
        return Ok(());
    }
    Err(CliError::new(
        Exit::Host,
        "state",
        format!("cannot record the deployment: {}", odd.join("; ")),
    )
    .hint("move it away (edgenet writes only its own regular files there); nothing was changed"))
}

/// Checks the config against the live host and builds the plan; refuses (exit 1) with every
/// error when the config has any, before anything on the host is touched.
fn checked_plan(
    cli: &Cli,
    chosen: &Chosen,
    state: Option<&DeploymentState>,
    facts: &HostFacts,
    probe: &mut Option<ProbeView>,
    warnings: &mut Vec<Finding>,
) -> Result<Plan, CliError> {
    let loaded = &chosen.loaded;
    let mut ctx = edgenet_core::validate::Context::live(facts);
    ctx.machine = chosen.machine;
    ctx.machine_name = chosen.machine_name.clone();
    let kept = kept_machine_name(chosen, state, &ctx);
    if let Some((name, _)) = &kept {
        ctx.machine_name = Some(name.clone());
    }
    ctx.deployed_subnet = state.and_then(|s| s.auto_subnet);
    ctx.own_mark = state.map(|s| edgenet_deploy::names::alias(&s.deployment_id));
    ctx.own_unmarked_switch = state.and_then(edgenet_deploy::switch::bridge::unmarked_own_bridge);
    ctx.deployed_adapters = state
        .map(|s| super::deployed_adapters(s, facts, chosen.recorded_in(s)))
        .unwrap_or_default();
    ctx.ambiguous_adapters = state
        .map(|s| edgenet_deploy::switch::adapter::ambiguous_in_facts(s, facts))
        .unwrap_or_default();
    // The host's CPUs, memory and image files matter to `vm` nodes only.
    ctx.vm_host = loaded
        .config
        .any_vm()
        .then(|| super::vm_host(cli, &loaded.config));
    // Probed once per deploy (it takes ~0.4 s), before anything is touched.
    let own_macs = state
        .map(|s| s.macs.values().copied().collect())
        .unwrap_or_default();
    let probe = match probe {
        Some(probe) => probe,
        None => {
            // Tests stop a deploy here (`EDGENET_FAILPOINT=probe`, or `probe:crash` as a kill).
            edgenet_deploy::failpoint::hit("probe")
                .map_err(|e| CliError::new(Exit::Host, "host", e.to_string()))?;
            probe.insert(super::probe_view(loaded, &ctx, own_macs))
        }
    };
    ctx.probe = probe.clone();
    let source = if chosen.recorded() {
        "the recorded config"
    } else {
        &chosen.source
    };
    let findings = check(loaded, &ctx);
    if let Some(refused) = adapter_not_there_yet(chosen, state, &findings) {
        return Err(refused);
    }
    super::refuse_errors_from(source, &findings, "nothing was changed")?;
    // What `check` warns about is said by deploy too (a renamed adapter kept, a subnet another
    // link now uses, a misspelt key): on stderr, every run, as long as it holds. Another
    // deployment's leftovers are said by the deploy itself (once).
    // A deploy may check more than once (again under the lock, after a refusal looked at
    // again, always for `vm` nodes): a warning said by an earlier check of this run is not
    // said again (B26 F8; `-o json` lists the last check's once).
    let style = crate::output::Style::for_stderr();
    let said = std::mem::take(warnings);
    *warnings = findings
        .into_iter()
        .filter(|f| {
            use edgenet_core::validate::Code;
            // The one notice said here: the name the nodes get is not the host name.
            (f.severity == edgenet_core::validate::Severity::Warning
                && f.code != Code::LeftoverObjects)
                || f.code == Code::MachineNameShortened
        })
        .collect();
    warnings.extend(kept.map(|(_, notice)| notice));
    for f in warnings.iter().filter(|f| !said.contains(f)) {
        errln!("{}", crate::output::finding_text(f, style));
    }
    plan::build(&loaded.config, &ctx).map_err(|e| {
        // The machine this state directory's deployment is: the likely answer.
        let recorded = state
            .and_then(|s| s.applied_plan.as_ref().or(s.pending_plan.as_ref()))
            .map(|p| (p.machine.index, p.machine.name.clone()));
        match (&e, recorded) {
            (plan::PlanError::MachineNotChosen { .. }, Some((i, name))) => super::plan_error(e)
                .hint(format!(
                    "add --machine N: the deployment in this state directory is machine {i} ({name}), so --machine {i} to re-apply it"
                )),
            _ => super::plan_error(e),
        }
    })
}

/// `deploy -c FILE` without `--machine-name` (nor `EDGENET_MACHINE_NAME`) on a deployment
/// recorded under a machine name that neither the file (`Machines[N].MachineName`,
/// `Edgenet.MachineName`) nor the host name gives: re-applying the site file (a DNS change)
/// must not rename the nodes and their namespaces to the host name (B23 F8), as a deploy
/// without `-c` keeps the name too. The name kept and the notice that says so; `None` when
/// nothing is kept.
fn kept_machine_name(
    chosen: &Chosen,
    state: Option<&DeploymentState>,
    ctx: &edgenet_core::validate::Context<'_>,
) -> Option<(String, Finding)> {
    use edgenet_core::validate::Code;
    if chosen.recorded() || ctx.machine_name.is_some() {
        return None;
    }
    let name = state?.machine_name()?;
    let config = &chosen.loaded.config;
    let index = chosen
        .machine
        .or((config.machines.len() == 1).then_some(0))?;
    let written =
        config.machines.get(index)?.machine_name.is_some() || config.edgenet.machine_name.is_some();
    let from_host = edgenet_core::context::machine_name(config, index, &ctx.hostname);
    if written || name == from_host {
        return None;
    }
    Some((
        name.to_string(),
        Finding::notice(
            Code::MachineNameKept,
            "Edgenet.MachineName",
            format!(
                "kept the machine name {name:?} this deployment was made with: {} names no machine name, and the host name would rename the nodes {name}-ledge… to {from_host}-ledge…",
                chosen.source
            ),
        )
        .hint(format!(
            "to rename the nodes, deploy with --machine-name {from_host} (or set Edgenet.MachineName in the file); to keep {name:?} for good, set Edgenet.MachineName to it"
        )),
    ))
}

/// The refusal when the only errors are that the adapter this deployment was made on (its
/// record in `state`) is missing: at boot a NIC can come late (USB, a slow driver), which a
/// retry mends, so it is exit 3 (the host), not exit 1 (the config), which the boot unit's
/// `RestartPreventExitStatus=` does not retry. An adapter never deployed on stays exit 1. The
/// adapter is the deployment's when recorded under the config's name, or when its one record
/// has another name that deploy followed it to (renamed while deployed, found by its MAC) and
/// the deployment's recorded config still gives the config's name, as [`Context::adapter_now`]
/// follows it when it is there.
///
/// [`Context::adapter_now`]: edgenet_core::validate::Context::adapter_now
fn adapter_not_there_yet(
    chosen: &Chosen,
    state: Option<&DeploymentState>,
    findings: &[Finding],
) -> Option<CliError> {
    use edgenet_core::validate::{Code, Severity};
    use edgenet_deploy::switch::AdapterRecord;
    let state = state?;
    let adapter = chosen
        .loaded
        .config
        .machines
        .get(chosen.machine.unwrap_or(0))?
        .adapter_name
        .as_deref()?;
    // The name the deployment's adapter had last, when it is not `adapter`.
    let last_name = match AdapterRecord::in_state(state, adapter) {
        Some(_) => None,
        None => {
            let records: Vec<AdapterRecord> =
                state.objects.iter().filter_map(AdapterRecord::of).collect();
            let [record] = records.as_slice() else {
                return None;
            };
            if super::recorded_adapter_name(state, chosen.recorded_in(state)).as_deref()
                != Some(adapter)
            {
                return None;
            }
            Some(record.adapter.name.clone())
        }
    };
    let errors: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    if errors.is_empty() || errors.iter().any(|f| f.code != Code::AdapterMissing) {
        return None;
    }
    // Without their hints: check's fix of a config naming a wrong adapter ("name one of this
    // host's wired adapters") is not the fix of an adapter that is late; the refusal's is.
    let style = crate::output::Style::for_stderr();
    let listing: Vec<String> = errors
        .iter()
        .map(|f| {
            let mut f = (*f).clone();
            f.hint = None;
            crate::output::finding_text(&f, style)
        })
        .collect();
    let which = match &last_name {
        Some(now) => format!("{adapter:?} (called {now:?} when last deployed)"),
        None => format!("{adapter:?}"),
    };
    Some(
        CliError::new(
            Exit::Host,
            "adapter-not-there",
            format!(
                "the adapter {which} this deployment was made on is not there (yet); nothing was changed:\n{}",
                listing.join("\n")
            ),
        )
        .hint(
            "deploy again once it is up: the boot unit retries by itself until it appears (`edgenet install-unit`); if it was replaced or renamed for good, set NetworkConnection.AdapterName to its name now and deploy with -c",
        ),
    )
}

/// The plan made before the lock, when the lock was taken without waiting and loaded the very
/// state that plan was made from: the same config, host facts, probe and state give the same
/// findings and the same plan, so checking and planning again would only repeat the work. A
/// run that waited for the lock plans again from a fresh read of the host: the other run (or
/// the operator meanwhile) may have changed what it read (resolv.conf, links, tables). (A state the deploy is about to
/// make for the first time differs from "none" only in its fresh mark, which no bridge on the
/// host can carry: the switch check that passed without it passes with it.) Not for `vm`
/// nodes, whose checks read the host again (QEMU processes, the state directory's sockets).
fn reusable_plan(
    first: Plan,
    loaded: &Loaded,
    peeked: &Option<DeploymentState>,
    now: &Option<DeploymentState>,
    waited: bool,
) -> Option<Plan> {
    (!waited && peeked == now && !loaded.config.any_vm()).then_some(first)
}

/// Waits (up to `timeout`) until no run holds the lock of the state directory `dir`, without
/// taking it or writing anything; whether one held it. A missing directory: no run.
fn wait_for_other_run(dir: &std::path::Path, timeout: Duration) -> bool {
    let Ok(d) = std::fs::File::open(dir) else {
        return false;
    };
    edgenet_host::lock::wait_until_free(&d, timeout)
}

fn lock(
    cli: &Cli,
    args: &LockArgs,
    purpose: &str,
) -> Result<edgenet_deploy::state::StateLock, CliError> {
    StateDir::new(&cli.state_dir)
        .lock(purpose, Duration::from_secs(args.wait))
        .map_err(|e| host_error(e.into()))
}

/// The lock of this network namespace (see [`edgenet_host::lock::network_namespace`]);
/// `None` when it cannot be taken (no /proc): the run goes on as before there was one.
fn netns_lock(wait: u64, command: &str) -> Result<Option<std::fs::File>, CliError> {
    use edgenet_host::lock::{network_namespace, LockError};
    match network_namespace(Duration::from_secs(wait)) {
        Ok(file) => Ok(Some(file)),
        Err(LockError::Busy { waited }) => Err(CliError::new(
            Exit::Host,
            "locked",
            match edgenet_host::lock::network_namespace_holder() {
                Some(holder) => format!(
                    "another edgenet deploy or remove is running in this network namespace: {holder} holds its lock (waited {waited:?}); nothing was changed"
                ),
                None => format!(
                    "another edgenet deploy or remove is running in this network namespace (waited {waited:?}); nothing was changed"
                ),
            },
        )
        .hint(format!("run {command} again when it is done, or wait longer with --wait SECONDS"))),
        Err(LockError::Io(e)) => {
            tracing::debug!("no network namespace lock: {e}");
            Ok(None)
        }
    }
}

pub fn run_deploy(cli: &Cli, args: &DeployArgs) -> Result<Exit, CliError> {
    // A wrong environment is refused before anything (even the state directory) is made.
    edgenet_deploy::failpoint::validate().map_err(|e| {
        CliError::new(Exit::Unreadable, "invalid-arguments", e)
            .hint("unset EDGENET_FAILPOINT, or name one of the steps")
    })?;
    // The host facts' ruleset read serves the deploy too (one `nft list ruleset` per run).
    let _ruleset = edgenet_host::nft::RulesetSession::begin();
    // Validate before taking the lock: a config with errors must not even create the state
    // directory (a first deploy's early record of its config is taken back, see `EarlyRecord`).
    // Given the config the deploy will record: a `config.json` that holds it is not parsed.
    let peek = |config: Option<&std::sync::Arc<serde_json::Value>>| {
        StateDir::new(&cli.state_dir)
            .peek_given(config)
            .map_err(|e| host_error(e.into()))
    };
    let gather = || {
        edgenet_host::facts::gather_with(&super::facts_paths(cli))
            .map_err(|e| CliError::new(Exit::Host, "host", format!("cannot read the host: {e}")))
    };
    // `-c` is read (and refused) before anything; without it the state says what to deploy.
    let given = match cli.config {
        Some(_) => {
            let loaded = super::load_config(cli)?;
            super::machine_index_in_range(args.machine, loaded.config.machines.len())?;
            Some(Chosen::new(
                loaded,
                super::config_source(cli),
                false,
                None,
                args.machine,
                cli.machine_name.clone(),
            ))
        }
        None => None,
    };
    // One deploy at a time per network namespace, taken before the host is read: two deploys
    // (different state directories) choosing the automatic subnet at once would both see it
    // free. Held to the end of the deploy (the bridge has its address then); taken before the
    // state lock, always in this order, and before the state directory is made (a run that
    // gives up here leaves nothing). Taking it first spares a second read of the host.
    let netns_lock = netns_lock(args.lock.wait, "deploy")?;
    let mut peeked = peek(given.as_ref().map(|c| &c.config))?;
    super::refuse_other_netns(peeked.as_ref(), "deploy")?;
    refuse_odd_files(cli)?;
    // Read under the namespace lock: no other deploy or remove changes the record meanwhile.
    let mut chosen = match given {
        Some(chosen) => chosen,
        None => {
            let chosen = chosen_without_c(cli, args, peeked.as_ref())?;
            super::machine_index_in_range(chosen.machine, chosen.loaded.config.machines.len())?;
            chosen
        }
    };
    chosen.same_as_recorded_in(peeked.as_ref());
    // B24 F7: a first deploy records the config it is about to apply before it probes the LAN
    // (the longest wait before its first record): killed there, a plain `deploy` applies that
    // config again, not the built-in default. Refused, it takes the record back.
    let mut early = match cli.config.is_some() && peeked.is_none() {
        true => EarlyRecord::write(cli, &args.lock, &chosen)?,
        false => None,
    };
    let mut facts = gather()?;
    let mut probe = None;
    // `check`'s warnings of the plan deployed (on stderr, and in `-o json`'s `warnings`).
    let mut warnings = Vec::new();
    let first = match checked_plan(
        cli,
        &chosen,
        peeked.as_ref(),
        &facts,
        &mut probe,
        &mut warnings,
    ) {
        Ok(plan) => plan,
        Err(refused) => {
            // Another run of this state directory may be half-way through its deploy: what it
            // is building (a bridge not yet marked, or marked with an id this run could not
            // know yet) looks foreign from outside its lock. Wait for it, then look again.
            // A `remove` of this state directory may just have deleted its state (and then the
            // directory) while the objects it records were still there to be read: the refusal
            // is looked at again once, on what the host and the state say now.
            // (No other run while this one holds the lock, for its early record.)
            let holds = early.as_ref().is_some_and(|e| e.lock.is_some());
            let waited =
                !holds && wait_for_other_run(&cli.state_dir, Duration::from_secs(args.lock.wait));
            let now = peek(Some(&chosen.config))?;
            if !waited
                && peeked.is_some()
                && serde_json::to_value(&peeked).ok() == serde_json::to_value(&now).ok()
            {
                return Err(refused);
            }
            edgenet_host::nft::forget_ruleset();
            peeked = now;
            facts = gather()?;
            probe = None;
            checked_plan(
                cli,
                &chosen,
                peeked.as_ref(),
                &facts,
                &mut probe,
                &mut warnings,
            )?
        }
    };
    // Before the lock, which makes the state directory (a first deploy with -c holds it
    // already, with its config recorded, which a refusal takes back): a refusal changes nothing.
    edgenet_deploy::deploy::check_adapter_owner_before_deploy(&first).map_err(host_error)?;
    if first.node_runtime == edgenet_core::config::NodeRuntime::Vm {
        // QEMU's tools and the image, before anything is recorded for good.
        edgenet_deploy::node::vm::Image::from_plan(&first).map_err(host_error)?;
    }
    let terminal =
        std::io::stderr().is_terminal() && cli.output == Output::Text && !crate::logging::quiet();
    if terminal {
        errln!("edgenet: deploying ({})…", chosen.said(cli));
    }
    let lock = match early.as_mut().and_then(|e| e.lock.take()) {
        Some(lock) => lock,
        None => lock(cli, &args.lock, "edgenet deploy")?,
    };
    let now = lock.load().map_err(|e| host_error(e.into()))?;
    super::refuse_other_netns(now.as_ref(), "deploy")?;
    let mut state = now.clone().unwrap_or_else(|| {
        edgenet_deploy::state::DeploymentState::new(edgenet_deploy::state::DeploymentId::random())
    });
    // Where the deployment lives, for remove and status run elsewhere (see
    // `refuse_other_netns`); a namespace made again after a reboot is taken as the new home.
    state.netns = edgenet_host::netns::current_id().ok();
    // Read again and re-planned under the lock when this run waited for it or another run
    // deployed meanwhile: the host (its resolv.conf, links, ruleset) read before is old.
    let plan = match reusable_plan(first, &chosen.loaded, &peeked, &now, lock.waited()) {
        Some(plan) => plan,
        None => {
            edgenet_host::nft::forget_ruleset();
            facts = gather()?;
            probe = None;
            checked_plan(
                cli,
                &chosen,
                Some(&state),
                &facts,
                &mut probe,
                &mut warnings,
            )?
        }
    };
    let said = chosen.said_if_chosen(cli);
    let machine_file = chosen.machine_file || early.as_ref().is_some_and(|e| e.machine_written);
    let source = chosen.source;
    let config = match early.as_mut().and_then(|e| e.config.take()) {
        Some(recorded) => recorded,
        None => Chosen::to_record(chosen.recorded_from, chosen.config),
    };
    // From here the deploy's own records keep the config.
    if let Some(e) = early.as_mut() {
        e.undo = false;
    }
    // The process ends with the command (`_exit`, see `main`): the config loaded and the
    // states read go with it instead of being freed piece by piece (memory only).
    std::mem::forget(chosen.loaded.config);
    std::mem::forget((peeked, now));
    // Each change as it is made, for the message of a run interrupted before its report.
    edgenet_deploy::deploy::on_change(crate::interrupt::changed);
    match edgenet_deploy::deploy(&lock, Some(state), &plan, Some(config)) {
        Ok(report) => {
            // The deployment's records name the machine now (`machine.json` was for a plain
            // `deploy` after a kill before them).
            if machine_file {
                let _ =
                    std::fs::remove_file(cli.state_dir.join(edgenet_deploy::state::MACHINE_FILE));
            }
            // Done with the host: the locks go before the DNS check (up to 1 s of waiting for
            // silent servers), so other deploys and removes in this namespace need not wait
            // for it, and in text the changes are printed before it, so a run stopped in that
            // second has said what it did. What the lock kept in memory (the states, the
            // config) goes with the process.
            lock.release_leaving_memory();
            drop(netns_lock);
            // Another deployment met: a finding as `check` and `status` give it, not a log line.
            let others: Vec<_> = report
                .others
                .iter()
                .map(super::check::other_deployment_finding)
                .collect();
            let style = crate::output::Style::for_stderr();
            for f in &others {
                errln!("{}", crate::output::finding_text(f, style));
            }
            warnings.extend(others);
            // After a deploy that changed something only: a no-change redeploy (the hot path)
            // sends nothing; the servers were asked when this plan was deployed.
            let dns_check = |warnings: &mut Vec<Finding>| {
                if !report.changes.is_empty() {
                    let dns = super::dns_findings(&plan);
                    for f in &dns {
                        errln!("{}", crate::output::finding_text(f, style));
                    }
                    warnings.extend(dns);
                }
            };
            match cli.output {
                Output::Json => {
                    dns_check(&mut warnings);
                    let mut v = serde_json::to_value(&report).expect("reports serialize");
                    v["source"] = source.into();
                    v["warnings"] = serde_json::to_value(&warnings).expect("findings serialize");
                    crate::envelope::print(&crate::envelope::DEPLOY, &v)
                }
                _ => {
                    if report.changes.is_empty() {
                        outln!(
                            "No changes: the host already matches the plan (deployment {}{said}).",
                            report.deployment_id
                        );
                    } else {
                        for c in &report.changes {
                            outln!("  {c}");
                        }
                        outln!(
                            "Deployed {} node(s) on {} (deployment {}{said}, state in {}).",
                            report.plan.nodes.len(),
                            report.plan.switch.name,
                            report.deployment_id,
                            report.state_dir.display()
                        );
                    }
                    dns_check(&mut warnings);
                }
            }
            Ok(Exit::Ok)
        }
        Err(failure) => {
            let hint = failure.error.hint();
            if cli.output == Output::Json {
                let mut err = CliError::new(Exit::Host, "deploy-failed", failure.error.to_string());
                err.hint = hint;
                crate::envelope::print_error(
                    &crate::envelope::DEPLOY,
                    &err,
                    &serde_json::json!({
                        "source": source,
                        "deployment_id": failure.deployment_id,
                        "state_dir": lock.dir().path(),
                        "changes": failure.changes, "rolled_back": failure.rolled_back, "rollback_errors": failure.rollback_errors,
                        "warnings": warnings,
                    }),
                );
                return Ok(Exit::Host);
            }
            errln!(
                "edgenet: deploy failed: {}",
                edgenet_core::redact::redact_credentials(&failure.error.to_string())
            );
            if let Some(h) = hint {
                errln!("  hint: {h}");
            }
            for c in &failure.changes {
                errln!("  changed: {c}");
            }
            for r in &failure.rolled_back {
                errln!("  rolled back: {r}");
            }
            for e in &failure.rollback_errors {
                errln!("  rollback error: {e}");
            }
            if !failure.changes.is_empty() {
                errln!(
                    "  the next `edgenet deploy` converges from here; `edgenet remove` cleans up"
                );
            }
            Ok(Exit::Host)
        }
    }
}

pub fn run_remove(cli: &Cli, args: &LockArgs, force: bool) -> Result<Exit, CliError> {
    refuse_config_option(cli)?;
    let dir = StateDir::new(&cli.state_dir);
    if !dir.path().exists() {
        return report_remove(cli, edgenet_deploy::RemoveReport::default());
    }
    // One run at a time per network namespace, as for deploy (and in the same order: this
    // lock, then the state directory's): whether another deployment still needs forwarding
    // is decided on a namespace no deploy is half-way through.
    let _netns_lock = netns_lock(args.wait, "remove")?;
    let lock = lock(cli, args, "edgenet remove")?;
    // A damaged `state.json` (a torn write, a full disk, an edit) does not stop a remove: it
    // is moved aside and the records are rebuilt from `identity.json` and the objects' marks,
    // as when `state.json` is lost (B23 F6). Said in the report; only what the records alone
    // held (forwarding's value before edgenet) is lost.
    let mut damaged = None;
    let state = match lock.load() {
        Err(StateError::Corrupt { path, reason }) if path == lock.dir().state_file() => {
            let aside = lock.set_aside_damaged().map_err(|e| host_error(e.into()))?;
            match lock.load() {
                Ok(Some(state)) => {
                    damaged = Some(format!(
                        "{}: damaged ({reason}), kept as {}; the records were rebuilt from identity.json and the marks of the objects in the kernel (what only the records held, such as the value net.ipv4.ip_forward had before edgenet, is lost)",
                        path.display(),
                        aside.display()
                    ));
                    Some(state)
                }
                other => {
                    lock.put_back_damaged(&aside);
                    let e = match other {
                        Err(e) => e.to_string(),
                        Ok(_) => "no identity.json beside it to rebuild the records from".into(),
                    };
                    return Err(CliError::new(
                        Exit::Host,
                        "state",
                        format!(
                            "{} is not a valid edgenet state file ({reason}), and the records cannot be rebuilt without it ({e}); nothing was changed",
                            path.display()
                        ),
                    )
                    .hint(format!(
                        "`edgenet status --state-dir {dir}` after `mv {p} {p}.damaged` names what is left in the kernel by its mark, and `edgenet remove --orphan ID` removes it",
                        dir = lock.dir().path().display(),
                        p = path.display()
                    )));
                }
            }
        }
        other => other.map_err(|e| host_error(e.into()))?,
    };
    super::refuse_other_netns(state.as_ref(), "remove")?;
    if !force {
        if let Some(state) = &state {
            let paths = edgenet_deploy::switch::adapter_owner::paths_from_env();
            edgenet_deploy::switch::adapter_owner::ensure_no_client_on_bridge(state, &paths)
                .map_err(host_error)?;
        }
    }
    let mut report = edgenet_deploy::remove::remove_loaded(&lock, state).map_err(host_error)?;
    if let Some(line) = damaged {
        report.left.insert(0, line);
    }
    report_remove(cli, report)
}

/// `remove --orphan ID`: what carries deployment ID's mark in this network namespace, whose
/// state directory is gone (see `edgenet_deploy::orphan`).
pub fn run_remove_orphan(cli: &Cli, args: &LockArgs, id: &str) -> Result<Exit, CliError> {
    refuse_config_option(cli)?;
    // Ids are written in lower-case hex (`edgenet:fcfe7e`); one typed in capitals is the same id.
    let id = id.to_ascii_lowercase();
    let id: edgenet_deploy::state::DeploymentId = id.parse().map_err(|e: String| {
        CliError::new(Exit::Unreadable, "invalid-arguments", format!("--orphan: {e}")).hint(
            "give the id `edgenet status` names in its leftover notices (`edgenet:<id>`, `edgenet_<id>`)",
        )
    })?;
    // Deploys and removes in this namespace take turns, as for remove.
    let _netns_lock = netns_lock(args.wait, "remove")?;
    match edgenet_deploy::orphan::remove_orphan(&id, &cli.state_dir) {
        Ok(report) => report_remove(cli, report),
        Err(edgenet_deploy::orphan::Refused::Owned(dir)) => Err(CliError::new(
            Exit::Host,
            "not-orphan",
            format!(
                "deployment {id} is recorded in state directory {}: it is not an orphan; nothing was changed",
                dir.display()
            ),
        )
        .hint(format!(
            "edgenet remove --state-dir {} (that deployment's own remove restores what it changed)",
            dir.display()
        ))),
    }
}

/// `edgenet -c FILE remove` is refused as `remove -c FILE` is (exit 2): remove takes the
/// deployment recorded in the state directory, whatever a config says, and a `-c` it ignored
/// would let the operator believe it removes what FILE describes. `EDGENET_CONFIG` alone (set
/// for every command in a profile or unit) is not a word of this command line: not refused.
fn refuse_config_option(cli: &Cli) -> Result<(), CliError> {
    let Some(given) = &cli.config else {
        return Ok(());
    };
    if std::env::var_os("EDGENET_CONFIG").is_some_and(|env| std::path::Path::new(&env) == given) {
        return Ok(());
    }
    Err(CliError::new(
        Exit::Unreadable,
        "invalid-arguments",
        format!(
            "remove takes no config (-c {}): it removes the deployment recorded in {}, whatever a config says",
            super::source_name_of(Some(given)),
            cli.state_dir.display()
        ),
    )
    .hint("leave out -c (`edgenet status` shows what is deployed); nothing was changed"))
}

fn report_remove(cli: &Cli, report: edgenet_deploy::RemoveReport) -> Result<Exit, CliError> {
    let failed = !report.errors.is_empty();
    match cli.output {
        Output::Json if failed => crate::envelope::print_error(
            &crate::envelope::REMOVE,
            &CliError::new(
                Exit::Host,
                "remove-incomplete",
                format!("{} problem(s) while removing", report.errors.len()),
            )
            .hint(if report.orphan {
                "what is left still carries the mark, so `edgenet remove --orphan ID` can be run again"
            } else {
                "the state keeps what is left, so `edgenet remove` can be run again"
            }),
            &report,
        ),
        Output::Json => crate::envelope::print(&crate::envelope::REMOVE, &report),
        _ => {
            if !report.found && !report.leftover_files.is_empty() {
                outln!(
                    "Removed the state files an interrupted deploy left in {} ({}): no deployment was recorded there.",
                    cli.state_dir.display(),
                    report
                        .leftover_files
                        .iter()
                        .map(|f| {
                            let f = std::path::Path::new(f);
                            f.file_name().unwrap_or(f.as_os_str()).to_string_lossy()
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            } else if !report.found && report.orphan {
                outln!(
                    "Nothing to remove: nothing in this network namespace carries the mark of deployment {}.",
                    report.deployment_id.as_deref().unwrap_or("?")
                );
            } else if !report.found {
                outln!(
                    "Nothing to remove: no deployment in {}.",
                    cli.state_dir.display()
                );
            }
            for r in &report.removed {
                outln!("  removed {r}");
            }
            if report.found {
                for f in &report.leftover_files {
                    outln!("  removed {f} (a temp file of an interrupted run)");
                }
            }
            for r in &report.already_gone {
                outln!("  already gone: {r}");
            }
            for r in &report.restored {
                outln!("  restored {r}");
            }
            for r in &report.left {
                outln!("  left {r}");
            }
            for e in &report.errors {
                errln!("edgenet: remove: {e}");
            }
            if report.found && !failed && report.orphan && report.removed.is_empty() && report.restored.is_empty() {
                // Only unmarked look-alikes (left, above) or what was gone already.
                outln!(
                    "Nothing was removed: nothing in this network namespace carries the mark of deployment {} any more{}.",
                    report.deployment_id.as_deref().unwrap_or("?"),
                    if report.left.is_empty() {
                        ""
                    } else {
                        "; what is listed as left is not edgenet's to delete"
                    }
                );
            } else if report.found && !failed && report.orphan {
                outln!(
                    "Removed what deployment {} left in this network namespace.",
                    report.deployment_id.as_deref().unwrap_or("?")
                );
            } else if report.found && !failed {
                outln!(
                    "Removed deployment {}.",
                    report.deployment_id.as_deref().unwrap_or("?")
                );
            } else if failed && report.orphan {
                errln!(
                    "  {} problem(s); run `edgenet remove --orphan {}` again once they are fixed",
                    report.errors.len(),
                    report.deployment_id.as_deref().unwrap_or("?")
                );
            } else if failed {
                errln!("  {} problem(s); the state keeps what is left, so `edgenet remove` can be run again", report.errors.len());
            }
        }
    }
    Ok(if failed { Exit::Host } else { Exit::Ok })
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgenet_deploy::state::DeploymentId;

    fn plan_of(text: &str) -> (Loaded, Plan) {
        let loaded = edgenet_core::config::load(text.as_bytes()).unwrap();
        let facts = HostFacts::default();
        let ctx = edgenet_core::validate::Context::live(&facts);
        let plan = plan::build(&loaded.config, &ctx).unwrap();
        (loaded, plan)
    }

    #[test]
    fn the_plan_before_the_lock_serves_when_the_state_did_not_change() {
        let (loaded, plan) = plan_of(&edgenet_core::config::builtin_default().to_string());
        let state = Some(DeploymentState::new(DeploymentId::random()));
        assert_eq!(
            reusable_plan(plan.clone(), &loaded, &state, &state.clone(), false),
            Some(plan.clone())
        );
        assert_eq!(
            reusable_plan(plan.clone(), &loaded, &None, &None, false),
            Some(plan.clone())
        );
    }

    #[test]
    fn another_runs_deploy_in_between_means_planning_again() {
        let (loaded, plan) = plan_of(&edgenet_core::config::builtin_default().to_string());
        let before = Some(DeploymentState::new(DeploymentId::random()));
        let mut after = before.clone();
        after.as_mut().unwrap().auto_subnet = Some("192.168.7.0/24".parse().unwrap());
        assert_eq!(
            reusable_plan(plan.clone(), &loaded, &before, &after, false),
            None
        );
        assert_eq!(
            reusable_plan(plan.clone(), &loaded, &None, &before, false),
            None
        );
        assert_eq!(reusable_plan(plan, &loaded, &before, &None, false), None);
    }

    #[test]
    fn a_run_that_waited_for_the_lock_plans_again() {
        let (loaded, plan) = plan_of(&edgenet_core::config::builtin_default().to_string());
        let state = Some(DeploymentState::new(DeploymentId::random()));
        assert_eq!(
            reusable_plan(plan.clone(), &loaded, &state, &state.clone(), true),
            None
        );
        assert_eq!(reusable_plan(plan, &loaded, &None, &None, true), None);
    }

    /// The recorded config the deploy loaded serves the adapter-name question only for the
    /// state it was loaded from (a run that waited for the lock may find another recorded).
    #[test]
    fn the_loaded_recorded_config_serves_only_its_own_state() {
        let text = edgenet_core::config::builtin_default().to_string();
        let value = std::sync::Arc::new(serde_json::from_str::<serde_json::Value>(&text).unwrap());
        let chosen = |recorded_from| {
            Chosen::new(
                edgenet_core::config::load(text.as_bytes()).unwrap(),
                RECORDED.to_string(),
                true,
                recorded_from,
                None,
                None,
            )
        };
        let mut state = DeploymentState::new(DeploymentId::random());
        let recorded = chosen(Some(value.clone()));
        assert!(recorded.recorded_in(&state).is_none(), "nothing recorded");
        state.config = Some(value.clone());
        assert!(recorded.recorded_in(&state).is_some());
        state.config = Some(std::sync::Arc::new((*value).clone()));
        assert!(
            recorded.recorded_in(&state).is_some(),
            "read again, the same"
        );
        state.config = Some(std::sync::Arc::new(serde_json::json!({"Machines": []})));
        assert!(
            recorded.recorded_in(&state).is_none(),
            "another config recorded since"
        );
        assert!(chosen(None).recorded_in(&state).is_none(), "-c FILE");
    }

    /// `-c` naming the config the deployment recorded, written alike: the deploy records the
    /// recorded value itself (the same bytes in `config.json`), and the config loaded answers
    /// for the recorded one. Written otherwise (keys in another order, `1.0` for `1`): the
    /// file's own value, whose bytes differ.
    #[test]
    fn a_file_written_as_the_recorded_config_records_the_same_value() {
        use std::sync::Arc;
        let text = edgenet_core::config::builtin_default().to_string();
        let recorded = Arc::new(serde_json::from_str::<serde_json::Value>(&text).unwrap());
        let mut state = DeploymentState::new(DeploymentId::random());
        state.config = Some(recorded.clone());
        let given = |text: &str| {
            Chosen::new(
                edgenet_core::config::load(text.as_bytes()).unwrap(),
                "site.json".to_string(),
                false,
                None,
                None,
                None,
            )
        };
        let mut same = given(&serde_json::to_string_pretty(&*recorded).unwrap());
        same.same_as_recorded_in(Some(&state));
        assert!(same.recorded_in(&state).is_some());
        assert!(!same.recorded(), "still the file's config");
        let to_record = Chosen::to_record(same.recorded_from.clone(), same.config);
        assert!(Arc::ptr_eq(&to_record, &recorded));

        // The same keys in another order: equal as JSON, but `config.json` keeps the order.
        let mut reordered = (*recorded).clone();
        let map = reordered.as_object_mut().unwrap();
        let key = map.keys().next().unwrap().clone();
        let value = map.shift_remove(&key).unwrap();
        map.insert(key, value);
        assert_eq!(reordered, *recorded);
        let mut other = given(&reordered.to_string());
        other.same_as_recorded_in(Some(&state));
        assert!(other.recorded_in(&state).is_none());
        let to_record = Chosen::to_record(Some(recorded.clone()), other.config);
        assert!(!Arc::ptr_eq(&to_record, &recorded));
        assert_eq!(
            serde_json::to_string(&*to_record).unwrap(),
            reordered.to_string()
        );
        // A file with a key written twice (its last value the recorded one): loading it finds
        // an error the recorded config has not; not taken for it.
        let mut twice = serde_json::to_string(&*recorded).unwrap();
        let (key, value) = recorded.as_object().unwrap().iter().next().unwrap();
        twice.insert_str(
            1,
            &format!("{}: {value},", serde_json::to_string(key).unwrap()),
        );
        let mut twice = given(&twice);
        assert_eq!(*twice.config, *recorded);
        twice.same_as_recorded_in(Some(&state));
        assert!(twice.recorded_in(&state).is_none());
        // Nothing recorded: the file's value.
        let mut first = given(&text);
        first.same_as_recorded_in(None);
        assert!(first.recorded_from.is_none());
    }

    /// Values written alike serialize to the same bytes; values that are not differ in them.
    #[test]
    fn written_alike_means_the_same_bytes() {
        use serde_json::json;
        let alike = [
            (json!({"a": 1, "b": [1, "x", null, {"c": true}]}), true),
            (json!({"b": [1, "x", null, {"c": true}], "a": 1}), false),
            (json!({"a": 1.0, "b": [1, "x", null, {"c": true}]}), false),
            (json!({"a": 1, "b": [1, "x", null, {"c": false}]}), false),
            (json!({"a": 1, "b": [1, "x", null]}), false),
            (json!({"a": 1, "b": {"0": 1}}), false),
            (json!({"a": "1", "b": [1, "x", null, {"c": true}]}), false),
        ];
        let base = &alike[0].0;
        for (v, expected) in &alike {
            assert_eq!(written_alike(base, v), *expected, "{v}");
            assert_eq!(written_alike(v, base), *expected, "{v}");
            assert_eq!(
                serde_json::to_vec(base).unwrap() == serde_json::to_vec(v).unwrap(),
                *expected,
                "{v}"
            );
        }
    }

    #[test]
    fn vm_nodes_are_always_planned_again() {
        let (loaded, plan) =
            plan_of(r#"{"Edgenet": {"NodeRuntime": "vm"}, "Machines": [{"LinuxNode": {}}]}"#);
        assert!(loaded.config.any_vm());
        assert_eq!(reusable_plan(plan, &loaded, &None, &None, false), None);
    }
}
