//! `deploy`: a reconcile of the plan against the live kernel, netavark-style — check every
//! driver first, then apply step by step, recording each object before creating it; on a
//! failure, undo what this run created and report what happened.

use std::path::{Path, PathBuf};

use edgenet_core::config::NodeRuntime as RuntimeKind;
use edgenet_core::mac::MacAddr;
use edgenet_core::plan::{MacAssignment, Outbound, Plan, SwitchKind};
use edgenet_host::sysctl;

use crate::error::DeployError;
use crate::failpoint;
use crate::firewall::{self, FirewallDriver, FirewallPlan, NftablesDriver};
use crate::forwarding::{self, IP_FORWARD};
use crate::journal::{Journal, Ownership};
use crate::kernel::{self, Kernel};
use crate::names;
use crate::node::{self, files, NodeSpec};
use crate::state::{DeploymentState, ObjectKind, ObjectStatus, Phase, StateLock};
use crate::switch;
use crate::teardown::{object_words, Teardown};

/// What a deploy did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeployReport {
    pub deployment_id: String,
    pub state_dir: PathBuf,
    /// Every change made to the host, in order; empty when it already matched the plan.
    pub changes: Vec<String>,
    pub plan: Plan,
    /// Another deployment's objects met (beside this one, or left by one whose state is gone),
    /// said once: the CLI reports them as `check` does (`another-deployment`,
    /// `leftover-objects`), on stderr and in `-o json`'s `warnings`.
    #[serde(skip)]
    pub others: Vec<crate::leftovers::Found>,
}

/// A deploy that stopped: the error, what it had changed, and how the rollback went.
#[derive(Debug)]
pub struct DeployFailure {
    pub error: DeployError,
    /// The deployment's id, once the state was read (also when a first deploy was undone).
    pub deployment_id: Option<String>,
    pub changes: Vec<String>,
    pub rolled_back: Vec<String>,
    pub rollback_errors: Vec<String>,
}

impl std::fmt::Display for DeployFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)
    }
}

impl std::error::Error for DeployFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

struct Run<'a> {
    lock: &'a StateLock,
    state: DeploymentState,
    changes: Vec<String>,
    /// See [`DeployReport::others`].
    others: Vec<crate::leftovers::Found>,
    /// Objects first recorded by this run, in creation order: what a rollback undoes.
    new_objects: Vec<(ObjectKind, String, Option<String>)>,
    /// Sysctls this run changed first (a rollback puts them back).
    new_sysctls: Vec<String>,
    /// Set while a failed run puts the previous deployment back: failpoints stay quiet.
    rolling_back: bool,
    /// When the last step began (`-vvv` logs each step's time).
    step_started: std::time::Instant,
    /// The thread making the deployment's identity durable (see [`StateLock::identity_saver`]).
    identity_saver: Option<std::thread::JoinHandle<Result<(), crate::state::StateError>>>,
    /// The nftables write under way on its own thread (see [`ensure_tables`]).
    tables_lane: Option<TablesLane>,
    /// The node steps' work under way on its own thread (see [`start_ahead_lane`]).
    ahead: Option<AheadLane>,
    /// What that thread did, per namespace and per node, until the node steps take it.
    netns_ahead: NamespacesMade,
    /// Sockets inside the namespaces made ahead, until the node steps take them.
    sockets_ahead: Vec<(String, edgenet_host::netlink::Netlink)>,
    files_ahead: FilesWritten,
}

impl Run<'_> {
    /// Records `names` (objects of `kind` in `netns`, `None`: the machine's namespace) before
    /// they are made, in one journal write. `again`: each is about to be made now even if
    /// recorded, so its record goes back to pending ([`Journal::will_make`]); otherwise a
    /// record keeps its status ([`Journal::will_create`]).
    fn record_before(
        &mut self,
        kind: ObjectKind,
        names: &[&str],
        netns: Option<&str>,
        again: bool,
    ) -> Result<(), DeployError> {
        for name in names {
            if self.state.object(kind, name, netns).is_none() {
                self.new_objects
                    .push((kind, name.to_string(), netns.map(String::from)));
            }
            let record = self.state.record_object(kind, name, netns);
            if again {
                record.status = ObjectStatus::Pending;
            }
        }
        self.lock.save_journal(&self.state)?;
        Ok(())
    }

    /// Waits for the identity to be durable; an error if it could not be made so.
    fn join_identity(&mut self) -> Result<(), DeployError> {
        let Some(saver) = self.identity_saver.take() else {
            return Ok(());
        };
        let result = saver.join().unwrap_or_else(|_| {
            Err(crate::state::StateError::Write {
                path: self.lock.dir().identity_file(),
                source: std::io::Error::other("the thread writing it panicked"),
            })
        });
        if result.is_err() {
            self.lock.identity_not_durable();
        }
        Ok(result?)
    }
}

impl Journal for Run<'_> {
    fn will_create(
        &mut self,
        kind: ObjectKind,
        name: &str,
        netns: Option<&str>,
    ) -> Result<(), DeployError> {
        self.record_before(kind, &[name], netns, false)
    }

    fn will_make(
        &mut self,
        kind: ObjectKind,
        name: &str,
        netns: Option<&str>,
    ) -> Result<(), DeployError> {
        self.record_before(kind, &[name], netns, true)
    }

    /// Kept in memory until the next save: a `Pending` record already makes remove look.
    fn created(
        &mut self,
        kind: ObjectKind,
        name: &str,
        netns: Option<&str>,
    ) -> Result<(), DeployError> {
        self.state.record_object(kind, name, netns).status = ObjectStatus::Created;
        Ok(())
    }

    fn changed(&mut self, what: String) {
        tracing::info!("{what}");
        if !self.rolling_back {
            tell(&what);
        }
        self.changes.push(what);
    }

    /// Said once per deployment: the state's journal remembers it (a redeploy that meets the
    /// same refused route again changes nothing and says nothing new).
    fn warn(&mut self, what: String) {
        if self.state.warn_once(&what) {
            tracing::warn!("{what}");
        } else {
            tracing::debug!("again: {what}");
        }
    }

    fn step(&mut self, name: &str) -> Result<(), DeployError> {
        if self.rolling_back {
            return Ok(());
        }
        let now = std::time::Instant::now();
        tracing::trace!(
            "step {name} reached after {:?} since the previous one",
            now.duration_since(self.step_started)
        );
        self.step_started = now;
        Ok(failpoint::hit(name)?)
    }

    fn recorded(&self, kind: ObjectKind, name: &str, netns: Option<&str>) -> bool {
        self.state.object(kind, name, netns).is_some()
    }

    /// The firewall is in place before a node's link carries anything.
    fn before_traffic(&mut self) -> Result<(), DeployError> {
        self.join_tables()
    }

    fn made_ahead(&mut self, netns: &str) -> Result<bool, DeployError> {
        self.join_namespaces();
        let Some(i) = self.netns_ahead.iter().position(|(n, _)| n == netns) else {
            return Ok(false);
        };
        let (name, made) = self.netns_ahead.swap_remove(i);
        if let Some(socket) = made? {
            self.sockets_ahead.push((name, socket));
        }
        Ok(true)
    }

    fn socket_inside(&mut self, netns: &str) -> Option<edgenet_host::netlink::Netlink> {
        let i = self.sockets_ahead.iter().position(|(n, _)| n == netns)?;
        Some(self.sockets_ahead.swap_remove(i).1)
    }

    fn pending(&self, kind: ObjectKind, name: &str, netns: Option<&str>) -> bool {
        self.state
            .object(kind, name, netns)
            .is_some_and(|o| o.status == ObjectStatus::Pending)
    }
}

/// Told each change as a run makes it, before the run's report (which lists them all, in
/// the plan's order) exists: the CLI keeps them for the message of a run interrupted part-way
/// (B26 F1). Set once per process; the function must not block (it runs on the threads that
/// change the host).
static ON_CHANGE: std::sync::OnceLock<fn(&str)> = std::sync::OnceLock::new();

/// Sets the function told each change a deploy makes (see `ON_CHANGE`); the first set wins.
pub fn on_change(f: fn(&str)) {
    let _ = ON_CHANGE.set(f);
}

fn tell(what: &str) {
    if let Some(f) = ON_CHANGE.get() {
        f(what);
    }
}

/// Reconciles the host with `plan`, under the held state lock. `state` is what the lock's
/// directory holds (`None` on a first deploy); `config` is the deployment config `plan` was
/// made from, recorded with it (`config.json`) — unless the run fails and puts the previous
/// deployment back, which keeps the previous config with it.
pub fn deploy(
    lock: &StateLock,
    state: Option<DeploymentState>,
    plan: &Plan,
    config: Option<std::sync::Arc<serde_json::Value>>,
) -> Result<DeployReport, Box<DeployFailure>> {
    let fail = |error: DeployError| {
        Box::new(DeployFailure {
            error,
            deployment_id: None,
            changes: Vec::new(),
            rolled_back: Vec::new(),
            rollback_errors: Vec::new(),
        })
    };
    // One read of the ruleset for the whole run (see `RulesetSession`).
    let _ruleset = edgenet_host::nft::RulesetSession::begin();
    preflight(plan).map_err(fail)?;
    // A run that checked just before it locked (`check_adapter_owner_before_deploy`) is not
    // asked again, unless it waited for the lock: the scan of every process is the costly part.
    if !checked_before_lock(plan) || lock.waited() {
        check_adapter_owner(plan).map_err(fail)?;
    }
    let state = match state {
        Some(s) => s,
        None => lock.load_or_new().map_err(|e| fail(e.into()))?,
    };
    let mut state = state;
    let previous_config = state.config.clone();
    if config.is_some() {
        state.config = config;
    }
    refuse_foreign_rename_targets(&state, plan).map_err(fail)?;
    refuse_runtime_switch(&state, plan).map_err(fail)?;
    refuse_foreign_tables(&state, plan).map_err(fail)?;
    refuse_foreign_node_links(&state, plan).map_err(fail)?;
    // A working deployment a failed run must leave as it was.
    let previous = (state.phase == Phase::Deployed)
        .then(|| state.applied_plan.clone())
        .flatten();
    let applied_before = state.applied_plan.clone();
    let mut run = Run {
        lock,
        state,
        changes: Vec::new(),
        others: Vec::new(),
        new_objects: Vec::new(),
        new_sysctls: Vec::new(),
        rolling_back: false,
        step_started: std::time::Instant::now(),
        identity_saver: None,
        tables_lane: None,
        ahead: None,
        netns_ahead: Vec::new(),
        sockets_ahead: Vec::new(),
        files_ahead: Vec::new(),
    };
    let applied = apply(&mut run, plan);
    // A failed run still waits for its identity write (a cleared state must not get it back).
    let identity = run.join_identity();
    match applied.and(identity) {
        Ok(()) => Ok(DeployReport {
            deployment_id: run.state.deployment_id.to_string(),
            state_dir: lock.dir().path().to_path_buf(),
            changes: run.changes,
            plan: plan.clone(),
            others: run.others,
        }),
        Err(error) => {
            if previous.is_none() && run.state.phase == Phase::Deployed {
                // The last step failed after the run recorded itself deployed: it is not (its
                // objects are undone now), so it must not look like one to status or remove.
                run.state.applied_plan = applied_before;
                run.state.pending_plan = Some(plan.clone());
                run.state.phase = Phase::Deploying;
            }
            let (mut rolled_back, mut rollback_errors) = roll_back(&mut run);
            if let Some(previous) = previous {
                // What this run changed on objects that were there before (addresses, MTUs,
                // the firewall, names, ...) goes back by deploying the previous plan again.
                run.rolling_back = true;
                run.new_objects.clear();
                run.new_sysctls.clear();
                // The config it was made from goes back with it (what `deploy` without `-c`
                // and `scale-config` build on).
                run.state.config = previous_config;
                let changed = run.changes.len();
                match apply(&mut run, &previous) {
                    Ok(()) => {
                        rolled_back.extend(undone(run.changes.drain(changed..)));
                        rolled_back.push("the previous deployment, as it was".into());
                    }
                    Err(e) => {
                        rolled_back.extend(undone(run.changes.drain(changed..)));
                        // The same foreign object refused again (the previous deployment had
                        // it too): said once, by the run's own error.
                        if !same_refusal(&e, &error) {
                            rollback_errors
                                .push(format!("putting the previous deployment back: {e}"));
                        }
                    }
                }
            }
            // A first deploy that was refused and fully undone leaves no deployment behind
            // (not one stuck in "Deploying"): the next run starts afresh.
            if !run.rolling_back
                && rollback_errors.is_empty()
                && run.state.applied_plan.is_none()
                && run.state.objects.is_empty()
                && run.state.sysctls.is_empty()
            {
                if let Err(e) = lock.clear() {
                    rollback_errors.push(e.to_string());
                }
                // The node files it wrote go with it (edgenet's own files only).
                crate::own_files::sweep_node_dirs(
                    lock.dir().path(),
                    true,
                    &mut crate::own_files::Swept::default(),
                );
            }
            Err(Box::new(DeployFailure {
                error,
                deployment_id: Some(run.state.deployment_id.to_string()),
                changes: run.changes,
                rolled_back,
                rollback_errors,
            }))
        }
    }
}

/// Both errors refuse the same object as not this deployment's.
fn same_refusal(a: &DeployError, b: &DeployError) -> bool {
    matches!((a, b), (
        DeployError::Foreign { what: w1, name: n1, .. },
        DeployError::Foreign { what: w2, name: n2, .. },
    ) if w1 == w2 && n1 == n2)
}

/// On an external switch, refuses while a network manager or DHCP client configures the
/// adapter (see [`crate::switch::adapter_owner`]). Reads the host, changes nothing.
pub fn check_adapter_owner(plan: &Plan) -> Result<(), DeployError> {
    let (SwitchKind::External, Some(adapter)) = (plan.switch.kind, plan.switch.adapter.as_deref())
    else {
        return Ok(());
    };
    let paths = crate::switch::adapter_owner::paths_from_env();
    let mut nl = kernel::open()?;
    crate::switch::adapter_owner::ensure_sole_owner(&mut nl, adapter, &plan.switch.name, &paths)
}

/// [`check_adapter_owner`] by a run about to lock its state directory and call [`deploy`]:
/// when nothing else configures the adapter, that deploy does not ask again (each check of
/// a DHCP client reads every process of the host), unless taking the lock waited for another
/// run; a client started between this check and the lock is not seen (nor is one started
/// right after the check a deploy makes itself).
pub fn check_adapter_owner_before_deploy(plan: &Plan) -> Result<(), DeployError> {
    check_adapter_owner(plan)?;
    if let (SwitchKind::External, Some(adapter)) =
        (plan.switch.kind, plan.switch.adapter.as_deref())
    {
        crate::switch::adapter_owner::note_cleared(adapter, &plan.switch.name);
    }
    Ok(())
}

/// Whether this run cleared the adapter of `plan` just before it locked (used up here).
fn checked_before_lock(plan: &Plan) -> bool {
    match (plan.switch.kind, plan.switch.adapter.as_deref()) {
        (SwitchKind::External, Some(adapter)) => {
            crate::switch::adapter_owner::take_cleared(adapter, &plan.switch.name)
        }
        _ => false,
    }
}

/// What must hold before anything is touched.
fn preflight(plan: &Plan) -> Result<(), DeployError> {
    failpoint::validate().map_err(DeployError::Unsupported)?;
    if plan.node_runtime == RuntimeKind::Vm {
        // The image and QEMU's tools, before anything changes.
        node::vm::Image::from_plan(plan)?;
    }
    firewall::driver().validate()?;
    Ok(())
}

fn apply(run: &mut Run<'_>, plan: &Plan) -> Result<(), DeployError> {
    let result = apply_steps(run, plan);
    // A step failed while the nftables thread still ran: its write is over (and its records
    // final) before anything is undone.
    let lane = run.join_tables();
    // Namespaces made ahead and not asked for (the run stopped first): recorded, so the
    // rollback deletes them once they exist.
    run.join_ahead();
    match (result, lane) {
        (Err(e), Err(lane)) => {
            tracing::warn!("the nftables write failed as well: {lane}");
            Err(e)
        }
        (result, lane) => result.and(lane),
    }
}

fn apply_steps(run: &mut Run<'_>, plan: &Plan) -> Result<(), DeployError> {
    let id = run.state.deployment_id.clone();
    let own = Ownership {
        alias: names::alias(&id),
        group: names::link_group(&id),
    };
    // Nodes of the plans before this one, for renames (a new machine name).
    let earlier: Vec<(edgenet_core::plan::NodeKind, String)> = [
        run.state.pending_plan.as_ref(),
        run.state.applied_plan.as_ref(),
    ]
    .into_iter()
    .flatten()
    .flat_map(|p| p.nodes.iter().map(|n| (n.kind, n.name.clone())))
    .collect();
    // Deployed with this very plan already: the run only repairs what drifted, so it is not
    // marked as a deploy in progress (its records, if it makes an object again, still come
    // before the object), and when it changes nothing it writes nothing.
    let same_plan =
        run.state.phase == Phase::Deployed && run.state.applied_plan.as_ref() == Some(plan);
    // The switches of the plans recorded before this one (a switch of another kind under the
    // same name is not this plan's switch).
    let earlier_switches = earlier_switches(&run.state);
    if !same_plan {
        run.state.begin_deploy(plan);
        run.lock.save_journal(&run.state)?;
    }
    rename_nodes(run, plan, &earlier)?;
    rename_vm_nodes(run, plan, &earlier)?;
    if plan.switch.subnet_source == edgenet_core::plan::SubnetSource::Automatic {
        run.state.auto_subnet = Some(plan.switch.subnet);
    }
    // MACs first: a generated MAC is stored before any link carries it.
    let static_macs: Vec<MacAddr> = plan
        .nodes
        .iter()
        .filter_map(|n| match n.mac {
            MacAssignment::Static { address } => Some(address),
            MacAssignment::GeneratedAtDeploy => None,
        })
        .collect();
    let mut node_macs = Vec::new();
    for n in &plan.nodes {
        node_macs.push(match n.mac {
            MacAssignment::Static { address } => address,
            MacAssignment::GeneratedAtDeploy => run.state.mac_for_random(&n.name, &static_macs),
        });
    }
    if plan.switch.kind == SwitchKind::Internal {
        // The internal bridge's MAC as well (`switch::prepare` finds it stored): the whole
        // identity is known before the first kernel change.
        run.state
            .mac_for_random(&names::switch_mac_key(&plan.switch.name), &static_macs);
    }
    run.lock.save_journal(&run.state)?;
    // The identity (id, generated MACs, automatic subnet) is known now: it is made durable on
    // its own thread while the kernel work goes on, and joined before the run reports success.
    if !run.rolling_back {
        run.identity_saver = run.lock.identity_saver(&run.state);
    }
    run.step("state")?;
    start_ahead_lane(run, plan)?;

    let mut nl = kernel::open()?;
    let k: &mut dyn Kernel = &mut nl;
    // A switch the records keep that this plan does not use (another name or kind, another
    // adapter) goes first, through the driver that made it: its adapter gets the host's
    // configuration back. A renamed adapter the plan names by its new name is followed.
    let stale = switch::retire::find_stale(k, &run.state, &plan.switch, &earlier_switches, &own)?;
    if !stale.is_empty() {
        let changes = switch::retire::retire(k, &mut run.state, &stale, &own);
        run.lock.save_journal(&run.state)?;
        for change in changes? {
            run.changed(change);
        }
    }
    // The plan names the adapter by a name it no longer has: the switch keeps the one the
    // records find by its MAC (and says so), rather than losing its uplink.
    let renamed = switch::retire::renamed_adapter(k, &run.state, &plan.switch, &own)?;
    let switch_plan = match &renamed {
        Some(now) => {
            run.changed(format!(
                "warning: adapter {} is now called {now} (found by its MAC); the switch keeps it: set AdapterName to {now}",
                plan.switch.adapter.as_deref().unwrap_or("?")
            ));
            edgenet_core::plan::SwitchPlan {
                adapter: Some(now.clone()),
                ..plan.switch.clone()
            }
        }
        None => plan.switch.clone(),
    };
    // What the switch kind settles first (the internal bridge's MAC; the external switch's
    // adapter, taken and recorded before anything changes), then the switch itself.
    let prepared = switch::prepare(k, &mut run.state, &switch_plan, &own, &static_macs)?;
    if let Some(adapter) = prepared.new_adapter_record {
        run.new_objects.push((ObjectKind::Adapter, adapter, None));
    }
    if prepared.state_changed {
        run.lock.save_journal(&run.state)?;
    }
    for change in prepared.changes {
        run.changed(change);
    }
    let mtu = prepared.mtu;
    let driver = switch::driver(&switch_plan, &run.state);
    let made_now = driver.ensure(k, &switch_plan, &own, run)?;
    // A bridge made just now has the routes the kernel made for its addresses; an adopted
    // one's routes are its administrator's.
    if !made_now
        && !run
            .state
            .object(ObjectKind::Bridge, &switch_plan.name, None)
            .is_some_and(|o| o.status == ObjectStatus::Adopted)
    {
        let own: Vec<_> = switch_plan.host_address.into_iter().collect();
        switch::connected_route::restore(k, &switch_plan.name, &own, run)?;
    }
    let (changes, state_changed) = driver.settle(k, &mut run.state, &switch_plan)?;
    for change in changes {
        run.changed(change);
    }
    if state_changed {
        run.lock.save_journal(&run.state)?;
    }

    ensure_forwarding(run, plan)?;
    run.step("forwarding")?;

    let ports: Vec<(String, MacAddr)> = plan
        .nodes
        .iter()
        .zip(&node_macs)
        .map(|(n, mac)| (names::host_veth(n.kind, &id), *mac))
        .collect();
    ensure_tables(run, plan, &id, &ports)?;
    ensure_host_firewall(run, plan, &id)?;
    run.step("firewall")?;

    let state_dir = run.lock.dir().path().to_path_buf();
    let runtime = node::runtime(plan.node_runtime, plan, &state_dir);
    let node_macs_by_name: Vec<(std::net::Ipv4Addr, MacAddr)> = plan
        .nodes
        .iter()
        .zip(&node_macs)
        .map(|(n, mac)| (n.address.addr(), *mac))
        .collect();
    if plan.node_runtime == RuntimeKind::Vm {
        // A VM's tap carries its traffic once QEMU runs: the firewall first.
        run.join_tables()?;
    }
    for (node, mac) in plan.nodes.iter().zip(node_macs) {
        let spec = NodeSpec {
            plan: node,
            guest: names::node_netns(&node.name, &id),
            host_link: names::host_veth(node.kind, &id),
            mac,
            // The plan's MTU; on an external switch seen without the host, the adapter's.
            mtu: node.mtu.unwrap_or(mtu),
            switch: &plan.switch.name,
            hairpin: firewall::nft_rules::hairpin_ports(plan),
        };
        runtime.ensure(k, &spec, &own, run)?;
        for change in run.node_files(&state_dir, plan, node)? {
            run.changed(change);
        }
        run.step("node-files")?;
    }
    run.join_tables()?;
    drop_nodes_not_in(run, plan, k)?;
    announce_nodes(plan, &node_macs_by_name);
    // Another deployment's objects nothing here records: said (once: a warning is not a
    // change, and another deployment beside this one may well be alive), never touched.
    if !run.rolling_back {
        let leftovers = if plan.node_runtime == RuntimeKind::Vm {
            crate::leftovers::leftovers(&mut nl, Some(id.as_str()))
        } else {
            crate::leftovers::leftovers_in_kernel(&mut nl, Some(id.as_str()))
        };
        for leftover in leftovers {
            if run.state.warn_once(&leftover.text) {
                run.others.push(leftover);
            }
        }
    }

    if !(same_plan && run.changes.is_empty()) {
        run.state.finish_deploy();
    }
    // The ruleset as this run leaves it, for the next run to take instead of reading it
    // (only where the CLI enabled the cache, and only if provably the kernel's).
    if !run.rolling_back {
        edgenet_host::nft::store_ruleset_cache();
    }
    // The final state, while the identity's fsyncs may still run: it is not fsynced (a power
    // cut takes the kernel objects it records with it, see [`crate::state::store`]), and a
    // failure below still rolls the run back, whose records then win over it.
    run.lock.finish(&run.state)?;
    // Durable before success is reported: the identity (the thread started at the "state"
    // step, and again if the run changed it since).
    if !run.rolling_back {
        run.join_identity()?;
        run.identity_saver = run.lock.identity_saver(&run.state);
        run.join_identity()?;
    }
    run.step("finish")?;
    Ok(())
}

/// A table under this deployment's names that is not its own is refused before anything
/// changes: found at the firewall step, it cost a first deploy its switch and nodes, made and
/// rolled back (operator test of round 13).
fn refuse_foreign_tables(state: &DeploymentState, plan: &Plan) -> Result<(), DeployError> {
    let id = &state.deployment_id;
    let table = firewall::table_name(id);
    let driver = NftablesDriver::default();
    if FirewallPlan::from_plan(plan, id)?.is_some() {
        driver.refuse_foreign("ip", &table, table_made(state, &table))?;
    }
    let family = firewall::bridge_rules::FAMILY;
    let record = format!("{family} {table}");
    driver.refuse_foreign(family, &table, table_made(state, &record))?;
    Ok(())
}

/// A link with a node link's name (`en<id>l`) that is not this deployment's is refused before
/// anything changes, as a foreign bridge, table or namespace is (the id, hence the name, is
/// kept across reboots, so another tool can take it while the node is gone).
fn refuse_foreign_node_links(state: &DeploymentState, plan: &Plan) -> Result<(), DeployError> {
    let id = &state.deployment_id;
    let own = Ownership {
        alias: names::alias(id),
        group: names::link_group(id),
    };
    let mut nl = kernel::open()?;
    for node in &plan.nodes {
        let name = names::host_veth(node.kind, id);
        if let Some(link) = node::foreign_host_link(&mut nl, &name, &own)? {
            return Err(DeployError::Foreign {
                what: "interface",
                name,
                hint: format!(
                    "{}; it is node {}'s link to the switch; nothing was changed",
                    node::foreign_host_link_hint(&link, &own),
                    node.name
                ),
            });
        }
    }
    Ok(())
}

/// Whether this deployment made the table it records as `record` (not merely meant to): a
/// flushed one is still its own.
fn table_made(state: &DeploymentState, record: &str) -> bool {
    state
        .object(ObjectKind::NftTable, record, None)
        .is_some_and(|o| o.status == ObjectStatus::Created)
}

/// Nodes deployed under one `Edgenet.NodeRuntime` are not migrated to the other (a namespace's
/// veth and a VM's tap share their name): refused before anything changes.
fn refuse_runtime_switch(state: &DeploymentState, plan: &Plan) -> Result<(), DeployError> {
    let (deployed, planned, kind) = match plan.node_runtime {
        RuntimeKind::Vm => ("netns", "vm", ObjectKind::Netns),
        RuntimeKind::Netns => ("vm", "netns", ObjectKind::Vm),
    };
    if !state.objects.iter().any(|o| o.kind == kind) {
        return Ok(());
    }
    Err(DeployError::Unsupported(format!(
        "this machine's node runtime (Machines[N].NodeRuntime, else Edgenet.NodeRuntime) is {planned:?}, but this machine's nodes are deployed with the {deployed:?} runtime: edgenet does not move a deployed node to another runtime; nothing was changed. Run `edgenet remove` first (the nodes and what is in them go), then deploy again, or set NodeRuntime back to {deployed:?}"
    )))
}

/// The switches of the plans `state` records (applied, and pending from a run that stopped).
pub(crate) fn earlier_switches(state: &DeploymentState) -> Vec<edgenet_core::plan::SwitchPlan> {
    [state.applied_plan.as_ref(), state.pending_plan.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| p.switch.clone())
        .collect()
}

/// A rename (a new machine name) moves a node's namespace to a new name; a namespace that
/// already has that name and is not this deployment's belongs to someone else and must not be
/// taken over (its links would get the node's MAC and address, and the real node would go).
/// Refuses before anything changes.
fn refuse_foreign_rename_targets(state: &DeploymentState, plan: &Plan) -> Result<(), DeployError> {
    let id = &state.deployment_id;
    let earlier: Vec<&edgenet_core::plan::NodePlan> =
        [state.pending_plan.as_ref(), state.applied_plan.as_ref()]
            .into_iter()
            .flatten()
            .flat_map(|p| p.nodes.iter())
            .collect();
    for node in &plan.nodes {
        let new_ns = names::node_netns(&node.name, id);
        if state.object(ObjectKind::Netns, &new_ns, None).is_some()
            || !edgenet_host::netns::exists(&new_ns)
        {
            continue;
        }
        let Some(old) = earlier.iter().find(|o| {
            o.kind == node.kind
                && o.name != node.name
                && !plan.nodes.iter().any(|p| p.name == o.name)
        }) else {
            continue;
        };
        return Err(DeployError::Foreign {
            what: "network namespace",
            name: new_ns.clone(),
            hint: format!(
                "renaming node {} to {} needs the network namespace {new_ns}, which exists and was not made by this deployment; nothing was changed. Delete it if it is a leftover (`ip netns del {new_ns}`), or choose another machine name",
                old.name, node.name
            ),
        });
    }
    Ok(())
}

/// Renames, in place, the nodes of an earlier plan that this plan calls differently (the
/// machine was renamed): the node's namespace keeps everything in it and only gets the new
/// name, and its generated MAC and files follow it. Runs before anything else changes, so a
/// rename is done, or the deploy stops with nothing else changed.
fn rename_nodes(
    run: &mut Run<'_>,
    plan: &Plan,
    earlier: &[(edgenet_core::plan::NodeKind, String)],
) -> Result<(), DeployError> {
    let id = run.state.deployment_id.clone();
    let renamed_from = |node: &edgenet_core::plan::NodePlan| {
        earlier
            .iter()
            .find(|(kind, name)| {
                *kind == node.kind
                    && *name != node.name
                    && !plan.nodes.iter().any(|p| p.name == *name)
            })
            .map(|(_, old)| old.clone())
    };
    // The generated MAC moves to the new name first, recorded before the namespace moves: a
    // run stopped anywhere in the rename (both names on the namespace, or only the new one)
    // finds the MAC under the new name, so the node keeps it.
    let mut moved_mac = false;
    for node in &plan.nodes {
        if run.state.macs.contains_key(&node.name) {
            continue;
        }
        if let Some(mac) = renamed_from(node).and_then(|old| run.state.forget_mac(&old)) {
            run.state.macs.insert(node.name.clone(), mac);
            moved_mac = true;
        }
    }
    if moved_mac {
        run.lock.save_journal(&run.state)?;
    }
    for node in &plan.nodes {
        let new_ns = names::node_netns(&node.name, &id);
        if edgenet_host::netns::exists(&new_ns) {
            continue;
        }
        let Some((_, old)) = earlier.iter().find(|(kind, name)| {
            *kind == node.kind
                && *name != node.name
                && !plan.nodes.iter().any(|p| p.name == *name)
                && edgenet_host::netns::exists(&names::node_netns(name, &id))
        }) else {
            continue;
        };
        let old_ns = names::node_netns(old, &id);
        // Recorded under both names while it moves, so remove finds it whatever happens.
        run.state
            .record_object(ObjectKind::Netns, &new_ns, None)
            .status = ObjectStatus::Created;
        run.lock.save_journal(&run.state)?;
        edgenet_host::netns::rename(&old_ns, &new_ns)?;
        run.step("node-renamed")?;
        run.state.forget_object(ObjectKind::Netns, &old_ns, None);
        let dir = run.lock.dir().path();
        let (from, to) = (files::node_dir(dir, old), files::node_dir(dir, &node.name));
        if from.exists() && !to.exists() {
            let _ = std::fs::rename(&from, &to);
        }
        run.lock.save_journal(&run.state)?;
        run.changed(format!(
            "renamed node {old} to {} (network namespace {old_ns} is now {new_ns})",
            node.name
        ));
    }
    Ok(())
}

/// [`rename_nodes`] for `vm` nodes: the VM's directory (its disk with it) moves to the new
/// name; its QEMU, whose command line names the old paths, is stopped and started again by
/// the node's `ensure`.
fn rename_vm_nodes(
    run: &mut Run<'_>,
    plan: &Plan,
    earlier: &[(edgenet_core::plan::NodeKind, String)],
) -> Result<(), DeployError> {
    let id = run.state.deployment_id.clone();
    let dir = run.lock.dir().path().to_path_buf();
    for node in &plan.nodes {
        let new_vm = node::vm::vm_dir(&dir, &names::node_netns(&node.name, &id));
        if new_vm.exists() {
            continue;
        }
        let Some((_, old)) = earlier.iter().find(|(kind, name)| {
            *kind == node.kind
                && *name != node.name
                && !plan.nodes.iter().any(|p| p.name == *name)
                && node::vm::vm_dir(&dir, &names::node_netns(name, &id)).exists()
        }) else {
            continue;
        };
        let old_vm = node::vm::vm_dir(&dir, &names::node_netns(old, &id));
        let (from, to) = (old_vm.display().to_string(), new_vm.display().to_string());
        // Recorded under both names while it moves, so remove finds it whatever happens.
        run.state.record_object(ObjectKind::Vm, &to, None).status = ObjectStatus::Created;
        run.lock.save_journal(&run.state)?;
        node::vm::move_vm(&old_vm, &new_vm)?;
        run.state.forget_object(ObjectKind::Vm, &from, None);
        if !run.state.macs.contains_key(&node.name) {
            if let Some(mac) = run.state.forget_mac(old) {
                run.state.macs.insert(node.name.clone(), mac);
            }
        }
        let (f, t) = (
            files::node_dir(&dir, old),
            files::node_dir(&dir, &node.name),
        );
        if f.exists() && !t.exists() {
            let _ = std::fs::rename(&f, &t);
        }
        run.lock.save_journal(&run.state)?;
        run.changed(format!(
            "renamed node {old} to {} (its VM keeps its disk and starts again under the new name)",
            node.name
        ));
    }
    Ok(())
}

/// On an external switch, tells the LAN (one gratuitous ARP per node, sent on the adapter)
/// which MAC each node address has now: hosts that knew the address with the MAC of an earlier
/// deployment update their caches at once instead of after seconds. Best effort.
fn announce_nodes(plan: &Plan, nodes: &[(std::net::Ipv4Addr, MacAddr)]) {
    let Some(adapter) = plan.switch.adapter.as_deref() else {
        return;
    };
    for (ip, mac) in nodes {
        if let Err(e) = edgenet_host::arp::announce(adapter, *mac, *ip) {
            tracing::debug!("ARP announcement of {ip}: {e}");
        }
    }
}

/// The deployment's two nftables tables, written in one `nft` transaction: the `ip` table when
/// the plan has one (NAT, offline, port forwards; deleted when it no longer has), and the
/// switch's bridge-family table (anti-spoofing on every node port, and the offline filter of
/// every family, see [`firewall::bridge_rules`]). Each is compared with the live one first, so
/// a redeploy that changes nothing sends nothing.
///
/// What to write is decided (and recorded) here; the kernel write itself goes on its own thread
/// (a [`TablesLane`]) while the main thread makes the nodes, which it does not depend on. The
/// run joins it before any node's link is brought up ([`Journal::before_traffic`]), before
/// Docker's chain is touched, and before anything is rolled back.
fn ensure_tables(
    run: &mut Run<'_>,
    plan: &Plan,
    id: &crate::state::DeploymentId,
    ports: &[(String, MacAddr)],
) -> Result<(), DeployError> {
    use firewall::bridge_rules::{self, BridgePlan};
    let driver = NftablesDriver::default();
    let table = firewall::table_name(id);
    let fw = FirewallPlan::from_plan(plan, id)?;
    let recorded = run
        .state
        .object(ObjectKind::NftTable, &table, None)
        .is_some();
    let record = format!("{} {table}", bridge_rules::FAMILY);
    let bridge_plan = BridgePlan::from_plan(plan, &table, ports);
    let own = firewall::own_key(fw.as_ref(), &bridge_plan);
    if fw.is_some() {
        run.record_before(ObjectKind::NftTable, &[&table, &record], None, false)?;
    } else {
        if recorded && driver.remove(&table)? {
            run.changed(format!("deleted nftables table ip {table}"));
        }
        run.will_create(ObjectKind::NftTable, &record, None)?;
    }
    // The last run left exactly the tables this plan makes (the same plan, built by the same
    // executable, compared or written), and nothing changed the ruleset since (its nf_tables
    // generation is the one that run ended with): nothing to build, read or compare.
    if let (Some(own), Some(proven)) = (&own, edgenet_host::nft::own_tables_proven()) {
        if own.as_str() == &*proven {
            tracing::debug!("nftables tables known from the ruleset cache: as planned");
            return record_tables_made(run, fw.is_some(), &table, &record, Some(own));
        }
    }
    let tables = Tables {
        ip_made: table_made(&run.state, &table),
        bridge_made: table_made(&run.state, &record),
        bridge_want: bridge_rules::build(&bridge_plan),
        ip_want: fw.as_ref().map(firewall::nft_rules::build),
        table,
        record,
        own,
    };
    // Only tables that carry edgenet's mark are noted: whether another is ours rests on the
    // state, judged on a read every time.
    let tables = if tables
        .ip_want
        .iter()
        .chain([&tables.bridge_want])
        .all(|w| w.is_marked())
    {
        tables
    } else {
        Tables {
            own: None,
            ..tables
        }
    };
    let (commands, changes) = tables.commands(&driver)?;
    if commands.is_empty() {
        return tables.done(run, changes);
    }
    // Built around the commands, not with `json!`, which would serialise every one of them into
    // a new value (a first deploy's commands are most of its ruleset: ~8 % of its instructions).
    let document = serde_json::Value::Object(serde_json::Map::from_iter([(
        "nftables".to_string(),
        serde_json::Value::Array(commands),
    )]));
    // Putting a previous deployment back after a failure is written in line (no failpoint).
    if !run.rolling_back {
        let lane_driver = driver.clone();
        let lane = std::thread::Builder::new()
            .name("edgenet-nft".into())
            // Spawned from the main thread, which is in the machine's namespace outside its
            // visits to node namespaces (none is under way here): the lane's nfnetlink socket
            // is opened there.
            .spawn(move || {
                let result = lane_driver
                    .apply_document(&document)
                    .map_err(LaneFailure::Write)
                    .and_then(|()| {
                        failpoint::hit("firewall-written").map_err(LaneFailure::Failpoint)
                    });
                (document, result)
            });
        match lane {
            Ok(handle) => {
                run.tables_lane = Some(TablesLane {
                    handle,
                    at: run.changes.len(),
                    changes,
                    tables,
                });
                return Ok(());
            }
            Err(e) => {
                tracing::debug!("no thread for the nftables write ({e}); written in line");
                return tables.write_in_line(run, &driver, 0);
            }
        }
    }
    tables.write_in_line(run, &driver, 0)
}

/// Work of the node steps that needs neither the switch nor the firewall goes on its own thread
/// from the start, beside the switch, when there are node namespaces to make (a first deploy):
/// creating them (`unshare`, ~1 ms of kernel work each; each recorded, pending, before), then
/// writing every node's files.
/// The node steps take each result over where they would have done the work
/// ([`Journal::made_ahead`], [`Run::node_files`]): a namespace is marked there as usual, and one
/// that exists already goes the usual way (adopted only if ours).
fn start_ahead_lane(run: &mut Run<'_>, plan: &Plan) -> Result<(), DeployError> {
    if run.rolling_back || plan.nodes.is_empty() {
        return Ok(());
    }
    let id = run.state.deployment_id.clone();
    let mut names = Vec::new();
    if plan.node_runtime == RuntimeKind::Netns {
        for node in &plan.nodes {
            let name = names::node_netns(&node.name, &id);
            if !edgenet_host::netns::exists(&name) {
                names.push(name);
            }
        }
    }
    if names.is_empty() {
        // Nothing to make (a redeploy): the files alone are not worth a thread.
        return Ok(());
    }
    let records: Vec<&str> = names.iter().map(String::as_str).collect();
    run.record_before(ObjectKind::Netns, &records, None, true)?;
    let (plan, state_dir) = (plan.clone(), run.lock.dir().path().to_path_buf());
    let (made_tx, made_rx) = std::sync::mpsc::channel();
    let lane = std::thread::Builder::new()
        .name("edgenet-nodes".into())
        .spawn(move || {
            let made: Vec<_> = names
                .into_iter()
                .map(|name| {
                    // With a netlink socket inside for the node steps, which then never enter
                    // it: this thread moves in to open it (it only writes files after).
                    let made = edgenet_host::netns::create(&name).map(|()| {
                        edgenet_host::netns::NetNs::open(&name)
                            .and_then(|ns| edgenet_host::netlink::Netlink::open_moving_into(&ns))
                            .ok()
                    });
                    (name, made)
                })
                .collect();
            let _ = made_tx.send(made);
            plan.nodes
                .iter()
                .map(|node| {
                    let written = files::write_node_files(&state_dir, &plan, node);
                    (node.name.clone(), written)
                })
                .collect()
        });
    match lane {
        Ok(files) => {
            run.ahead = Some(AheadLane {
                namespaces: Some(made_rx),
                files: Some(files),
            })
        }
        // The node steps do it all in line (the namespaces' records are there already).
        Err(e) => tracing::debug!("no thread for the node steps' work ahead ({e}); in line"),
    }
    Ok(())
}

/// Per namespace made ahead: made or not, and a socket inside it when one could be opened.
type NamespacesMade = Vec<(
    String,
    Result<Option<edgenet_host::netlink::Netlink>, edgenet_host::HostError>,
)>;
type FilesWritten = Vec<(String, Result<Vec<String>, DeployError>)>;

/// The node steps' work under way on its own thread (see [`start_ahead_lane`]).
struct AheadLane {
    namespaces: Option<std::sync::mpsc::Receiver<NamespacesMade>>,
    files: Option<std::thread::JoinHandle<FilesWritten>>,
}

impl Run<'_> {
    /// Waits for the namespaces made ahead, if any are under way; they go to `netns_ahead`.
    fn join_namespaces(&mut self) {
        if let Some(rx) = self.ahead.as_mut().and_then(|a| a.namespaces.take()) {
            match rx.recv() {
                Ok(made) => self.netns_ahead = made,
                // Made or not, their records are pending: the node steps look again.
                Err(_) => tracing::warn!("the thread making the node namespaces stopped"),
            }
        }
    }

    /// Waits for the node files written ahead, if any are under way; they go to `files_ahead`.
    fn join_files(&mut self) {
        if let Some(files) = self.ahead.as_mut().and_then(|a| a.files.take()) {
            match files.join() {
                Ok(written) => self.files_ahead = written,
                Err(_) => tracing::warn!("the thread writing the node files panicked"),
            }
        }
    }

    /// Writes `node`'s files (or takes what the lane ahead wrote); what changed.
    fn node_files(
        &mut self,
        state_dir: &Path,
        plan: &Plan,
        node: &edgenet_core::plan::NodePlan,
    ) -> Result<Vec<String>, DeployError> {
        self.join_files();
        match self.files_ahead.iter().position(|(n, _)| *n == node.name) {
            Some(i) => self.files_ahead.swap_remove(i).1,
            None => files::write_node_files(state_dir, plan, node),
        }
    }

    /// Waits for everything under way beside the main thread, forgetting its results (the
    /// run stopped: the records of what it made are what the rollback goes by).
    fn join_ahead(&mut self) {
        self.join_namespaces();
        self.join_files();
        self.ahead = None;
        self.netns_ahead.clear();
        self.sockets_ahead.clear();
        self.files_ahead.clear();
    }
}

/// What [`ensure_tables`] decided, kept until the write is confirmed.
struct Tables {
    table: String,
    /// The bridge table's record (`bridge edgenet_<id>`).
    record: String,
    ip_want: Option<firewall::Ruleset>,
    bridge_want: firewall::Ruleset,
    ip_made: bool,
    bridge_made: bool,
    /// The plan of these tables as the ruleset cache notes them ([`firewall::own_key`]).
    own: Option<String>,
}

impl Tables {
    /// The commands that make the live tables equal to the plan, and the changes they make.
    fn commands(
        &self,
        driver: &NftablesDriver,
    ) -> Result<(Vec<serde_json::Value>, Vec<String>), DeployError> {
        let mut commands = Vec::new();
        let mut changes = Vec::new();
        // What a rewrite threw away (a chain or rule added by hand, a changed policy) is said.
        let replacing = |replaced: Vec<String>| {
            if replaced.is_empty() {
                String::new()
            } else {
                format!("; replaced what differed: {}", replaced.join("; "))
            }
        };
        if let Some(want) = &self.ip_want {
            if let Some((c, replaced)) = driver.commands_replacing(want, self.ip_made)? {
                commands.extend(c);
                changes.push(format!(
                    "wrote nftables table ip {}{}",
                    self.table,
                    replacing(replaced)
                ));
            }
        }
        if let Some((c, replaced)) =
            driver.commands_replacing(&self.bridge_want, self.bridge_made)?
        {
            commands.extend(c);
            changes.push(format!(
                "wrote nftables table {} (node ports: own MAC and addresses only){}",
                self.record,
                replacing(replaced)
            ));
        }
        Ok((commands, changes))
    }

    /// Writes on the calling thread; `attempts`: how often the write found a table made
    /// meanwhile already.
    fn write_in_line(
        self,
        run: &mut Run<'_>,
        driver: &NftablesDriver,
        mut attempts: usize,
    ) -> Result<(), DeployError> {
        let changes = loop {
            let (commands, changes) = self.commands(driver)?;
            if commands.is_empty() {
                break changes;
            }
            match driver.apply_commands(commands) {
                Ok(()) => break changes,
                // A table made meanwhile (`create` refuses to flush one): look again, once.
                Err(firewall::FirewallError::Nft(e))
                    if attempts == 0 && crate::firewall::nftables_is_exists(&e) =>
                {
                    edgenet_host::nft::forget_ruleset();
                    attempts += 1;
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.done(run, changes)
    }

    /// The tables are as planned: said, and recorded as made.
    fn done(self, run: &mut Run<'_>, changes: Vec<String>) -> Result<(), DeployError> {
        for change in changes {
            run.changed(change);
        }
        self.recorded_made(run)
    }

    fn recorded_made(self, run: &mut Run<'_>) -> Result<(), DeployError> {
        record_tables_made(
            run,
            self.ip_want.is_some(),
            &self.table,
            &self.record,
            self.own.as_deref(),
        )
    }
}

/// The tables are as planned: recorded as made (the `ip` one forgotten when none is planned),
/// and `own` ([`firewall::own_key`]) noted for the ruleset cache: the session's read now holds
/// them so (compared, or written and the write folded in).
fn record_tables_made(
    run: &mut Run<'_>,
    ip_planned: bool,
    table: &str,
    record: &str,
    own: Option<&str>,
) -> Result<(), DeployError> {
    if let Some(own) = own {
        edgenet_host::nft::note_own_tables(own);
    }
    if ip_planned {
        run.created(ObjectKind::NftTable, table, None)?;
    } else {
        run.state.forget_object(ObjectKind::NftTable, table, None);
    }
    run.created(ObjectKind::NftTable, record, None)?;
    Ok(())
}

/// Why the nftables thread stopped.
enum LaneFailure {
    Write(firewall::FirewallError),
    Failpoint(failpoint::FailpointHit),
}

/// The nftables write of a run, under way on its own thread (see [`ensure_tables`]).
struct TablesLane {
    handle: std::thread::JoinHandle<(serde_json::Value, Result<(), LaneFailure>)>,
    /// Where its changes go in the run's list: where they were decided, as when written in line.
    at: usize,
    changes: Vec<String>,
    tables: Tables,
}

impl Run<'_> {
    /// Waits for the nftables thread, if one runs; its changes and records as if written in
    /// line. A failed write leaves the tables' records pending: the rollback looks for them.
    fn join_tables(&mut self) -> Result<(), DeployError> {
        let Some(lane) = self.tables_lane.take() else {
            return Ok(());
        };
        let driver = NftablesDriver::default();
        let (document, result) = lane.handle.join().unwrap_or_else(|_| {
            (
                serde_json::Value::Null,
                Err(LaneFailure::Write(firewall::FirewallError::Nft(
                    edgenet_host::nft::NftError::Spawn {
                        program: "nftables".into(),
                        args: "(its thread)".into(),
                        source: std::io::Error::other("the thread writing the tables panicked"),
                    },
                ))),
            )
        });
        match result {
            Ok(()) => {
                driver.note_applied(document);
                let at = lane.at.min(self.changes.len());
                let changes = lane.changes;
                for change in &changes {
                    tracing::info!("{change}");
                    tell(change);
                }
                self.changes.splice(at..at, changes);
                lane.tables.recorded_made(self)
            }
            Err(LaneFailure::Failpoint(hit)) => {
                // The tables are written: said, the session follows, the rollback finds them.
                driver.note_applied(document);
                lane.changes.iter().for_each(|c| tell(c));
                let at = lane.at.min(self.changes.len());
                self.changes.splice(at..at, lane.changes);
                Err(hit.into())
            }
            Err(LaneFailure::Write(firewall::FirewallError::Nft(e)))
                if crate::firewall::nftables_is_exists(&e) =>
            {
                edgenet_host::nft::forget_ruleset();
                // Said where they belong if this write goes through.
                let at = lane.at.min(self.changes.len());
                let tail = self.changes.split_off(at);
                let r = lane.tables.write_in_line(self, &driver, 1);
                self.changes.extend(tail);
                r
            }
            Err(LaneFailure::Write(e)) => {
                edgenet_host::nft::forget_ruleset();
                Err(e.into())
            }
        }
    }
}
/// Another firewall on the host that drops the switch's forwarded packets: Docker's is opened
/// for the switch in `DOCKER-USER`; any other makes the deploy fail (and roll back) with the
/// exact fix, since edgenet does not edit another tool's rules.
fn ensure_host_firewall(
    run: &mut Run<'_>,
    plan: &Plan,
    id: &crate::state::DeploymentId,
) -> Result<(), DeployError> {
    use crate::firewall::host_rules;
    let fw = edgenet_host::facts::host_firewall();
    let Some(ruleset) = fw.ruleset.as_ref() else {
        return Ok(());
    };
    let docker = host_rules::docker_present(ruleset) || host_rules::docker_installed();
    // Docker present, or installed but not started yet (at boot edgenet may run first): our
    // accepts go in whether or not its policy drops right now (Docker sets the policy when it
    // starts, and keeps DOCKER-USER's rules).
    if docker {
        // Not beside our own nftables transaction.
        run.join_tables()?;
        edgenet_host::iptables::ensure_chain(host_rules::DOCKER_USER)?;
        for rule in host_rules::docker_rules(plan, id) {
            let name = host_rules::record_name(&rule);
            let args: Vec<&str> = rule.iter().map(String::as_str).collect();
            run.will_create(ObjectKind::FirewallRule, &name, None)?;
            if !edgenet_host::iptables::has_rule(host_rules::DOCKER_USER, &args)? {
                edgenet_host::iptables::insert(host_rules::DOCKER_USER, &args)?;
                run.changed(format!("added `{name}` (Docker's chain for user rules)"));
            }
            run.created(ObjectKind::FirewallRule, &name, None)?;
        }
    }
    // While a failed run puts the previous deployment back, another tool's drop is what made
    // it fail: it is reported already, and it must not stop the previous one coming back.
    if run.rolling_back {
        return Ok(());
    }
    // Read again only when Docker's chain may have changed (the session forgets its ruleset on
    // every iptables change); our own tables were folded into the session's read when written.
    let fw = if docker {
        edgenet_host::facts::host_firewall()
    } else {
        fw
    };
    let mut drops: Vec<_> = host_rules::drops_in(&fw, plan)
        .into_iter()
        .filter(|d| d.certain)
        .collect();
    // A rule inserted above our accepts after a deploy (Docker's docs: `-I DOCKER-USER -i ext
    // ! -s net -j DROP`): ours go back to the top, where a first deploy puts them whatever the
    // order rules arrived in. They accept only the switch's own subnet (or frames bridged
    // within it), which such a rule does not mean to close; our own table still lets only
    // replies and the configured port forwards onto the switch. The user's rule stays.
    // A rule that names no interface, a negated one or the switch applies to the switch's
    // traffic too: a decision about it that edgenet does not override (refused below).
    let mut below: Option<(usize, String)> = None;
    if docker && !drops.is_empty() {
        let mark = crate::names::alias(id);
        let above = host_rules::live_foreign_above_own(Some(&mark), &plan.switch.name);
        if let Some((pos, rule)) =
            above.filter(|(_, rule)| !host_rules::aimed_at_switch(rule, &plan.switch.name))
        {
            host_rules::move_own_to_top(&host_rules::docker_rules(plan, id))?;
            run.changed(format!(
                "moved edgenet's accepts in {} back above `{rule}` (rule {pos}, which drops the \
                 switch's traffic and stays where it is)",
                host_rules::DOCKER_USER
            ));
            drops = host_rules::drops_in(&edgenet_host::facts::host_firewall(), plan)
                .into_iter()
                .filter(|d| d.certain)
                .collect();
        } else {
            below = host_rules::live_foreign_above_own(Some(&mark), &plan.switch.name);
        }
    }
    if let Some(drop) = drops.first() {
        return Err(DeployError::HostFirewall {
            chain: format!("{} {} {}", drop.family, drop.table, drop.chain),
            flow: drop.flow.clone(),
            switch: plan.switch.name.clone(),
            fix: match &below {
                // Our accepts are there: adding them again would not help.
                Some((pos, rule)) if drop.reason.ends_with(&format!("(chain {})", host_rules::DOCKER_USER)) => format!(
                    "edgenet's ACCEPT rules for {} are present in {} but below `{rule}` (rule {pos}), which applies to the switch's traffic too, so edgenet leaves it above them: if the nodes should get through, delete it or insert it again below edgenet's rules",
                    plan.switch.name,
                    host_rules::DOCKER_USER
                ),
                _ => format!(
                    "{}; edgenet does not edit another tool's rules",
                    drop.fix(
                        &plan.switch.name,
                        edgenet_core::host_firewall::fix_subnet(plan).as_deref()
                    )
                ),
            },
        });
    }
    Ok(())
}

/// IPv4 forwarding is on while the switch routes (NAT, or port forwards when offline); the
/// value found before edgenet first changed it is kept for `remove`.
fn ensure_forwarding(run: &mut Run<'_>, plan: &Plan) -> Result<(), DeployError> {
    let needed = plan.switch.outbound == Outbound::Nat || !plan.port_forwards.is_empty();
    let live = sysctl::read(IP_FORWARD)?;
    // The value found before a deploy of an earlier boot went with that boot (the reboot reset
    // the sysctl, and this boot's configuration set it): it is not put back. This boot's deploy
    // records what it finds, if it changes it (B23 F13).
    let boot = forwarding::boot_id();
    // The same for a namespace made anew in this boot (B23b F9).
    let cookie = edgenet_host::lock::network_namespace_cookie();
    if let Some(stale) = run
        .state
        .sysctls
        .iter()
        .find(|c| {
            c.key == IP_FORWARD && c.netns.is_none() && c.of_another_boot_or_namespace(boot, cookie)
        })
        .cloned()
    {
        run.state.forget_sysctl(IP_FORWARD, None);
        run.state.note(format!(
            "dropped the record of {IP_FORWARD} (was {}) of an earlier boot or network namespace: this one's value is not edgenet's",
            stale.previous
        ));
        run.lock.save_journal(&run.state)?;
    }
    if needed && live.trim() != "1" {
        let first = !run
            .state
            .sysctls
            .iter()
            .any(|c| c.key == IP_FORWARD && c.netns.is_none());
        if first {
            run.new_sysctls.push(IP_FORWARD.to_string());
        }
        run.state
            .record_sysctl(IP_FORWARD, None, live.trim(), "1", boot);
        // What would count as another user of forwarding is there while it is off: it forwards
        // nothing, and remove does not keep forwarding on for it (B23 F3, F5).
        if first && live.trim() == "0" {
            let idle =
                forwarding::forwarding_users_now(&firewall::table_name(&run.state.deployment_id));
            if let Some(c) = run
                .state
                .sysctls
                .iter_mut()
                .find(|c| c.key == IP_FORWARD && c.netns.is_none())
            {
                c.idle_users = idle;
            }
        }
        run.lock.save_journal(&run.state)?;
        if live.trim() == "0" {
            forwarding::note_docker_at_enable(&firewall::table_name(&run.state.deployment_id));
        }
        sysctl::write(IP_FORWARD, "1")?;
        // Outside the state directory too: evidence for `remove --orphan` if it is lost.
        forwarding::note_enabled_by(&run.state.deployment_id.to_string(), live.trim());
        run.changed(format!(
            "enabled IPv4 forwarding ({IP_FORWARD} was {})",
            live.trim()
        ));
    } else if !needed {
        if let Some(change) = run.state.forget_sysctl(IP_FORWARD, None) {
            // Left on while another router (Docker, ...) forwards through the host.
            let other = forwarding::other_forwarding_user_besides(
                &firewall::table_name(&run.state.deployment_id),
                &change.idle_users,
            );
            if let Some(user) = &other {
                if user.starts_with(forwarding::ANOTHER_DEPLOYMENT) {
                    forwarding::hand_over(&change.previous);
                }
                run.changed(format!(
                    "left {IP_FORWARD} at {} ({user} forwards through this host)",
                    live.trim()
                ));
            }
            if live.trim() == change.value && other.is_none() {
                sysctl::write(IP_FORWARD, &change.previous)?;
                forwarding::forget_enabled_by(&run.state.deployment_id.to_string());
                run.changed(format!("restored {IP_FORWARD} to {}", change.previous));
            }
            run.lock.save_journal(&run.state)?;
        }
    }
    Ok(())
}

/// Nodes a previous deploy made that the plan no longer has (e.g. the Windows node was taken
/// out of the config).
fn drop_nodes_not_in(
    run: &mut Run<'_>,
    plan: &Plan,
    k: &mut dyn Kernel,
) -> Result<(), DeployError> {
    let id = run.state.deployment_id.clone();
    let state_dir = run.lock.dir().path().to_path_buf();
    let wanted: Vec<String> = plan
        .nodes
        .iter()
        .flat_map(|n| {
            let guest = names::node_netns(&n.name, &id);
            let vm = node::vm::vm_dir(&state_dir, &guest).display().to_string();
            [guest, names::host_veth(n.kind, &id), vm]
        })
        .collect();
    let stale: Vec<_> = run
        .state
        .objects
        .iter()
        .filter(|o| {
            matches!(
                o.kind,
                ObjectKind::Netns | ObjectKind::Veth | ObjectKind::Tap | ObjectKind::Vm
            ) && !wanted.contains(&o.name)
        })
        .cloned()
        .collect();
    let recorded = run.state.clone();
    let teardown = Teardown::of_state(&recorded, &state_dir);
    for o in stale {
        teardown.undo(k, &o)?;
        run.state.forget_object(o.kind, &o.name, o.netns.as_deref());
        run.changed(format!(
            "removed {} (no longer in the plan)",
            object_words(o.kind, &o.name)
        ));
    }
    // Files of nodes no longer planned (also those a failed run wrote for a node it added).
    let nodes_dir = files::node_dir(run.lock.dir().path(), "");
    if let Ok(entries) = std::fs::read_dir(&nodes_dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !plan.nodes.iter().any(|p| p.name == name) {
                // edgenet's files only: what else is there stays (B26 F6).
                let mut swept = crate::own_files::Swept::default();
                crate::own_files::sweep_node_dir(&e.path(), &mut swept);
                for line in swept.left {
                    run.warn(format!("left {line}"));
                }
            }
        }
    }
    Ok(())
}

/// The changes of putting the previous deployment back, as what they undid ("put the MTU of
/// br0 back to 1400", not "set MTU 1400"). Warnings are not undoing anything: left out.
fn undone(changes: impl Iterator<Item = String>) -> Vec<String> {
    changes
        .filter(|c| !c.starts_with("warning: "))
        .map(|c| undone_words(&c))
        .collect()
}

fn undone_words(change: &str) -> String {
    // "set MTU 1400 on br0 (was 1500)"
    if let Some(rest) = change.strip_prefix("set MTU ") {
        if let Some((mtu, rest)) = rest.split_once(" on ") {
            let link = rest.split(" (was ").next().unwrap_or(rest);
            return format!("put the MTU of {link} back to {mtu}");
        }
    }
    if let Some(what) = change.strip_prefix("wrote ") {
        return format!("put {what} back as it was");
    }
    if let Some(rest) = change.strip_prefix("gave ") {
        if let Some((node, addr)) = rest.split_once(" the address ") {
            return format!("gave {node} its address {addr} back");
        }
    }
    format!("put back: {change}")
}

/// Undoes the objects this run created, newest first; carries on past errors.
fn roll_back(run: &mut Run<'_>) -> (Vec<String>, Vec<String>) {
    let mut nl = match kernel::open() {
        Ok(nl) => nl,
        Err(e) => return (Vec::new(), vec![e.to_string()]),
    };
    roll_back_with(run, &mut nl)
}

fn roll_back_with(run: &mut Run<'_>, k: &mut dyn Kernel) -> (Vec<String>, Vec<String>) {
    let mut done = Vec::new();
    let mut errors = Vec::new();
    let undo: Vec<_> = run
        .new_objects
        .iter()
        .filter_map(|(kind, name, netns)| run.state.object(*kind, name, netns.as_deref()))
        .cloned()
        .collect();
    let state_dir = run.lock.dir().path().to_path_buf();
    let outcomes = Teardown::of_state(&run.state, &state_dir).undo_all(k, undo);
    for (o, result) in outcomes {
        match result {
            Ok(_) => {
                run.state.forget_object(o.kind, &o.name, o.netns.as_deref());
                done.push(format!("deleted {}", object_words(o.kind, &o.name)));
            }
            Err(e) => errors.push(format!("{}: {e}", object_words(o.kind, &o.name))),
        }
    }
    for key in run.new_sysctls.clone() {
        if let Some(change) = run.state.forget_sysctl(&key, None) {
            match sysctl::write(&key, &change.previous) {
                Ok(()) => {
                    if key == IP_FORWARD {
                        forwarding::forget_enabled_by(&run.state.deployment_id.to_string());
                    }
                    done.push(format!("put {key} back to {}", change.previous))
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    if let Err(e) = run.lock.save(&run.state) {
        errors.push(e.to_string());
    }
    (done, errors)
}

/// The state directory a command uses: `--state-dir`, `EDGENET_STATE_DIR`, else the default.
pub fn default_state_dir() -> &'static Path {
    Path::new(crate::state::DEFAULT_STATE_DIR)
}

#[cfg(test)]
mod tests {
    use super::undone;

    #[test]
    fn rollback_lines_say_what_was_put_back_and_never_list_a_warning() {
        let lines = undone(
            [
                "set MTU 1400 on aksedgesw-int (was 1500)",
                "wrote b10a-ledge/hosts",
                "gave b10a-ledge the address 192.168.0.2/24",
                "warning: route 10.9.0.0/16 nhid 7 stays on up0",
                "brought aksedgesw-int up",
            ]
            .into_iter()
            .map(String::from),
        );
        assert_eq!(
            lines,
            [
                "put the MTU of aksedgesw-int back to 1400",
                "put b10a-ledge/hosts back as it was",
                "gave b10a-ledge its address 192.168.0.2/24 back",
                "put back: brought aksedgesw-int up",
            ]
        );
    }
}
