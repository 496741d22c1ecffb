//! `remove`: delete everything the deployment created and put back what it changed, carrying
//! on past every individual failure and reporting all of them. Works after a partial or
//! crashed deploy: it acts on the state's records, and every delete accepts "already gone".

use edgenet_host::{netns, sysctl};

use crate::error::DeployError;
use crate::firewall::NftablesDriver;
use crate::forwarding::{self, IP_FORWARD};
use crate::journal::Ownership;
use crate::kernel::{self, Kernel};
use crate::state::{KernelObject, ObjectKind, ObjectStatus, StateLock};
use crate::switch::AdapterRecord;
use crate::teardown::{removal_rank, Teardown};

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RemoveReport {
    /// There was a deployment in the state directory.
    pub found: bool,
    pub deployment_id: Option<String>,
    /// Objects deleted.
    pub removed: Vec<String>,
    /// Objects the state recorded that were already gone when remove began.
    pub already_gone: Vec<String>,
    /// Objects put back as they were before the first deploy (the adapter, Docker's chain).
    pub restored: Vec<String>,
    /// Objects left in place because they are not this deployment's, each with why.
    pub left: Vec<String>,
    pub errors: Vec<String>,
    /// A VM's guest did not power off by itself and QEMU was made to quit (or killed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
    /// How each forced VM stop went.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vm_notes: Vec<String>,
    /// With no deployment recorded: the files a deploy stopped before its first record left
    /// in the state directory (`config.json`, node files), deleted. Always: the temp files of
    /// runs killed while writing a file of the state directory (`.state.json.….tmp`,
    /// `ruleset-cache.json.tmp-PID`), deleted.
    #[serde(default)]
    pub leftover_files: Vec<String>,
    /// `remove --orphan ID`: a deployment no state directory holds, found by its mark.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub orphan: bool,
}

pub fn remove(lock: &StateLock) -> Result<RemoveReport, DeployError> {
    let state = lock.load()?;
    remove_loaded(lock, state)
}

/// [`remove`] of the state the caller has just loaded under `lock` (read once per run).
pub fn remove_loaded(
    lock: &StateLock,
    state: Option<crate::state::DeploymentState>,
) -> Result<RemoveReport, DeployError> {
    // One read of the ruleset for the ownership checks and the forwarding-user check.
    let _ruleset = edgenet_host::nft::RulesetSession::begin();
    let Some(mut state) = state else {
        return Ok(remove_undeployed(lock));
    };
    let id = state.deployment_id.clone();
    let own_table = crate::firewall::table_name(&id);
    let mut report = RemoveReport {
        found: true,
        deployment_id: Some(id.to_string()),
        leftover_files: lock
            .stale_temp_files_removed()
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        ..RemoveReport::default()
    };
    state.begin_remove();
    // Records during a remove guard against a crashed process, not a power cut (which takes
    // the kernel objects too; a stale record is then removed again, idempotently): no fsync.
    lock.save_journal(&state)?;
    // The drivers that made the objects, picked from the records as they were at the start.
    let recorded = state.clone();
    let teardown = Teardown::of_state(&recorded, lock.dir().path());
    let own = teardown.own.clone();
    // The nftables side starts at once, on its own thread (libnftables' load and ruleset read
    // overlap the link checks and deletion): it checks the marks of the recorded tables and
    // deletes ours in one transaction.
    let recorded_tables: Vec<String> = state
        .objects
        .iter()
        .filter(|o| o.kind == ObjectKind::NftTable)
        .map(|o| o.name.clone())
        .collect();
    // The thread also says, from the ruleset it reads anyway, whether another user of IPv4
    // forwarding is on the host, as soon as it knows (before it deletes our tables).
    let (forwarding_user_tx, forwarding_user_rx) = std::sync::mpsc::channel();
    // Users of forwarding that were there while it was off when this deployment turned it on
    // forwarded nothing then: not counted (B23 F3, F5).
    let idle_users: Vec<String> = state
        .sysctls
        .iter()
        .find(|c| c.key == IP_FORWARD && c.netns.is_none())
        .map(|c| c.idle_users.clone())
        .unwrap_or_default();
    let tables_side = {
        let own_table = own_table.clone();
        let idle_users = idle_users.clone();
        std::thread::spawn(move || {
            tables_side(recorded_tables, &own_table, &idle_users, forwarding_user_tx)
        })
    };

    let mut nl = kernel::open()?;
    // Objects recorded under our names that do not carry our mark (someone made them, or took
    // the name meanwhile) are left in place, said so, and forgotten.
    let mut foreign = Vec::new();
    for o in &state.objects {
        let why = match o.kind {
            ObjectKind::Netns if netns::exists(&o.name) => {
                // A namespace recorded as pending and still as `ip netns add` left it is the one
                // a killed run made before it could mark it.
                let pending = o.status == ObjectStatus::Pending;
                match crate::node::netns::netns_is_ours(&o.name, &own).and_then(|ours| {
                    Ok(ours || (pending && crate::node::netns::netns_is_half_made(&o.name)?))
                }) {
                    Ok(true) => None,
                    Ok(false) => Some(format!(
                        "it does not carry this deployment's mark (an {} or lo with alias {})",
                        crate::names::NODE_IFNAME,
                        own.alias
                    )),
                    Err(e) => Some(format!("cannot look inside it: {e}")),
                }
            }
            ObjectKind::Veth | ObjectKind::Tap => match nl.link(&o.name)? {
                Some(link) if !own.owns(&link) => Some(not_our_mark(&link, &own)),
                _ => None,
            },
            // A bridge we made that someone replaced (or another deployment's): never ours to
            // delete, so it is left and remove can finish.
            ObjectKind::Bridge if o.status != ObjectStatus::Adopted => match nl.link(&o.name)? {
                Some(link) if !own.owns(&link) => Some(not_our_mark(&link, &own)),
                _ => None,
            },
            _ => None,
        };
        if let Some(why) = why {
            foreign.push((o.clone(), why));
        }
    }
    for (o, why) in &foreign {
        report.left.push(format!("{}: {why}", object_words(o)));
        state.forget_object(o.kind, &o.name, o.netns.as_deref());
    }
    adapters_gone(&mut nl, &mut state, &own, &mut report)?;
    // Deleting a link or an nftables table makes the kernel wait for a grace period (20-60 ms
    // each), so remove pays it once per kind, in parallel: both tables go in one transaction
    // on their own thread (same network namespace: threads inherit the creator's) while one
    // request deletes every link of the deployment's group. Recorded objects are then checked
    // one by one, so whatever the fast path missed is still deleted and reported; the node
    // namespaces go there, last (the kernel reaps what is left in them in the background).
    let adapters: Vec<KernelObject> = state
        .objects
        .iter()
        .filter(|o| o.kind == ObjectKind::Adapter)
        .cloned()
        .collect();
    // What existed before anything was deleted: a recorded object absent here was already
    // gone, and is said so rather than "removed".
    let links_now = nl.links()?;
    // The deployment's link group holds only what edgenet made — unless someone put a link of
    // theirs in it (`ip link set X group N`): one without the mark and not recorded is never
    // deleted; then the group is not deleted as a whole, only its marked members one by one.
    let group = group_members(&links_now, &own, |name| records_link(&state, name));
    for name in &group.foreign {
        report.left.push(foreign_group_member(name, &own));
    }
    let links_before: Vec<String> = links_now.into_iter().map(|l| l.name).collect();
    let netns_before: Vec<String> = state
        .objects
        .iter()
        .filter(|o| o.kind == ObjectKind::Netns && netns::exists(&o.name))
        .map(|o| o.name.clone())
        .collect();
    // The node namespaces' identities, taken while their names are there: the processes still
    // in them once they are removed are named (K3s from the rendered unit keeps them alive).
    let node_namespaces: Vec<(String, (u64, u64))> = netns_before
        .iter()
        .filter_map(|n| crate::node::processes::netns_identity(n).map(|id| (n.clone(), id)))
        .collect();
    // Read by the nftables thread; asked here only when it could not say.
    let forwarding_user = std::cell::OnceCell::new();
    let other_forwarding_user = || {
        forwarding_user
            .get_or_init(|| {
                forwarding_user_rx.recv().unwrap_or_else(|_| {
                    forwarding::other_forwarding_user_besides(&own_table, &idle_users)
                })
            })
            .clone()
    };
    // Before any link or namespace goes, once the nftables thread has said whether another
    // user of forwarding is on the host (it answers from its ruleset read, a few milliseconds
    // in; waited for briefly, else after the links): a write of ip_forward only try-locks RTNL
    // and restarts the syscall until it gets it, so while the kernel deletes our links (the
    // deleting child holds RTNL past the last link's notification) or cleans up a node
    // namespace in the background, it spins on a CPU, for tens of milliseconds. The report
    // keeps its order: objects first, then the sysctls.
    let forwarding_recorded = state
        .sysctls
        .iter()
        .any(|c| c.key == IP_FORWARD && c.netns.is_none());
    let answer = if forwarding_recorded {
        forwarding_user_rx
            .recv_timeout(FORWARDING_ANSWER_PATIENCE)
            .ok()
    } else {
        forwarding_user_rx.try_recv().ok()
    };
    if let Some(answer) = answer {
        let _ = forwarding_user.set(answer);
    }
    let sysctls_first = forwarding_user.get().is_some() || !forwarding_recorded;
    tracing::debug!(sysctls_first, "sysctls restored before the links go");
    let sysctl_lines =
        sysctls_first.then(|| restore_sysctls(&mut state, &own_table, &other_forwarding_user));
    // The node files go on a thread while the kernel deletes the links (on a disk mounted
    // with `discard`, each file freed waits for the device); whatever is left is deleted, and
    // any failure reported, with the other files at the end. Not with VMs, whose directories
    // are theirs until QEMU is gone.
    let early_files = !state.objects.iter().any(|o| o.kind == ObjectKind::Vm);
    // The node namespaces (checked ours above) go on a thread too: unmounting one waits for
    // an expedited grace period (`namespace_unlock`), as long as the links' deletion waits
    // for its own; side by side, the two waits overlap. Their eth0 and its peer go with them
    // in the kernel's background cleanup. A namespace that fails here is still there for
    // the per-object pass, which deletes it or reports why not. Not with VMs (QEMU first).
    let early_netns: Vec<String> = if early_files {
        netns_before.clone()
    } else {
        Vec::new()
    };
    let fast = std::thread::scope(|scope| {
        if early_files {
            let dir = lock.dir().path().to_path_buf();
            // What it leaves (not edgenet's) is said by the sweep at the end.
            scope.spawn(move || {
                crate::own_files::sweep_node_dirs(
                    &dir,
                    true,
                    &mut crate::own_files::Swept::default(),
                )
            });
        }
        if !early_netns.is_empty() {
            scope.spawn(|| {
                for name in &early_netns {
                    if let Err(e) = netns::delete(name) {
                        tracing::debug!("fast path: {e}");
                    }
                }
            });
        }
        fast_path(&mut nl, &teardown, &adapters, &group, tables_side)
    });
    let side = &fast.tables;
    for (name, why) in &side.foreign {
        if let Some(o) = state
            .objects
            .iter()
            .find(|o| o.kind == ObjectKind::NftTable && o.name == *name)
            .cloned()
        {
            report.left.push(format!("{}: {why}", object_words(&o)));
            state.forget_object(o.kind, &o.name, None);
        }
    }
    let (tables, tables_gone) = (&side.ours, &side.gone);
    let firewall_gone = matches!(side.deleted, None | Some(Ok(())));
    if let Some(Err(e)) = &side.deleted {
        tracing::debug!("fast path: nftables tables: {e}");
    }
    let fast_errors_adapter: Vec<String> = fast.adapters_failed.clone();
    for e in &fast.errors {
        tracing::debug!("fast path: {e}");
    }
    let sysctl_lines = sysctl_lines
        .unwrap_or_else(|| restore_sysctls(&mut state, &own_table, &other_forwarding_user));
    // One dump tells which links survived the fast path; only those are deleted one by one.
    let links: Vec<String> = nl.links()?.into_iter().map(|l| l.name).collect();
    let mut order: Vec<KernelObject> = state.objects_for_removal().cloned().collect();
    order.sort_by_key(|o| removal_rank(o.kind));
    for o in order {
        let fast_table = tables.contains(&o.name);
        let gone = match o.kind {
            ObjectKind::NftTable => (firewall_gone && fast_table) || tables_gone.contains(&o.name),
            ObjectKind::Adapter => !fast_errors_adapter.contains(&o.name),
            ObjectKind::Netns => !netns::exists(&o.name),
            ObjectKind::Bridge | ObjectKind::Veth | ObjectKind::Tap => !links.contains(&o.name),
            _ => false,
        };
        let existed_before = match o.kind {
            ObjectKind::NftTable => fast_table,
            ObjectKind::Netns => netns_before.contains(&o.name),
            ObjectKind::Bridge | ObjectKind::Veth | ObjectKind::Tap => {
                links_before.contains(&o.name)
            }
            _ => true,
        };
        let result = if gone {
            Ok(existed_before)
        } else {
            teardown.undo(&mut nl, &o)
        };
        match result {
            Ok(existed) => {
                state.forget_object(o.kind, &o.name, o.netns.as_deref());
                let what = object_words(&o);
                match o.kind {
                    ObjectKind::Adapter => {
                        // Exactly what went back, and what could not (never claimed restored).
                        let done = fast
                            .adapters_done
                            .iter()
                            .find(|(n, _)| *n == o.name)
                            .map(|(_, d)| d.clone())
                            .unwrap_or_default();
                        let (ok, left) = crate::switch::report_lines(&what, done);
                        report.restored.push(if ok.is_empty() {
                            format!("{what} (released; nothing of the host's to move back)")
                        } else {
                            format!("{what}: {}", ok.join("; "))
                        });
                        report.left.extend(left);
                    }
                    ObjectKind::Bridge if o.status == ObjectStatus::Adopted => report
                        .left
                        .push(format!("{what}: the user's bridge, used as it was")),
                    _ if !existed => report.already_gone.push(what),
                    _ => report.removed.push(what),
                }
            }
            Err(e) => report.errors.push(format!("{}: {e}", object_words(&o))),
        }
    }
    report.restored.extend(sysctl_lines.0);
    report.left.extend(sysctl_lines.1);
    report.errors.extend(sysctl_lines.2);
    report.vm_notes = crate::node::vm::take_notes();
    report.forced = !report.vm_notes.is_empty();
    if let Err(e) = lock.save_journal(&state) {
        report.errors.push(e.to_string());
    }
    // A crash between creating a namespace and saving its record cannot happen (records come
    // first), but a namespace of ours whose record was lost to a damaged state file can: sweep
    // our id's namespaces by name.
    if let Ok(all) = netns::list() {
        let left_already: Vec<&str> = foreign
            .iter()
            .filter(|(o, _)| o.kind == ObjectKind::Netns)
            .map(|(o, _)| o.name.as_str())
            .collect();
        for name in all
            .into_iter()
            .filter(|n| n.ends_with(&format!("-{id}")) && !left_already.contains(&n.as_str()))
        {
            // The placeholder file of a recorded namespace whose create was killed before its
            // bind mount: not a namespace at all, but `ip netns list` shows it.
            if !netns::exists(&name) && recorded.object(ObjectKind::Netns, &name, None).is_some() {
                if let Err(e) = netns::delete(&name) {
                    report.errors.push(e.to_string());
                }
                continue;
            }
            // Only with our mark: a namespace that merely carries our id is someone else's.
            if !crate::node::netns::netns_is_ours(&name, &own).unwrap_or(false) {
                report.left.push(format!(
                    "network namespace {name}: it has this deployment's id in its name but not its mark"
                ));
                continue;
            }
            match netns::delete(&name) {
                Ok(true) => report.removed.push(format!("network namespace {name}")),
                Ok(false) => {}
                Err(e) => report.errors.push(e.to_string()),
            }
        }
    }

    // Processes that keep a node namespace alive after its name went (B23 F16): said, with
    // the fix; remove does not stop them (they are not edgenet's) and completes.
    for (name, processes) in
        crate::node::processes::processes_in(std::path::Path::new("/proc"), &node_namespaces)
    {
        report.left.push(crate::node::processes::still_running(
            &name,
            &processes,
            !netns::exists(&name),
        ));
    }

    // The files go before the state does: one that cannot be deleted keeps the state, so
    // `edgenet remove` run again retries (as the failure's hint says).
    if report.errors.is_empty() {
        remove_files(lock, &mut report.left, &mut report.errors);
    }
    if report.errors.is_empty() {
        if let Err(e) = lock.clear() {
            report.errors.push(e.to_string());
        }
        // What else is in the state directory is not edgenet's: it stays, named (B27 F5), as
        // without a deployment. `nodes/` and `vm/` left non-empty are named by `remove_files`.
        report.left.extend(foreign_entries(lock.dir().path(), |n| {
            n == crate::state::LOCK_FILE
                || n == edgenet_host::nft::CACHE_FILE
                || n == "nodes"
                || n == "vm"
        }));
        crate::forwarding::forget_enabled_by(&id.to_string());
        // Notes of network namespaces that are gone (this deployment's earlier one, deleted
        // and made anew, B26 N1) are no one's evidence any more.
        edgenet_host::lock::forget_notes_of_gone_namespaces();
        lock.release_and_delete();
    } else {
        lock.save(&state)?;
    }
    Ok(report)
}

/// How long remove waits for the nftables thread to say whether another user of forwarding is
/// on the host, so that ip_forward is written before the links go (see its use).
const FORWARDING_ANSWER_PATIENCE: std::time::Duration = std::time::Duration::from_millis(25);

/// The sysctl lines of the report: restored, left, errors.
type SysctlLines = (Vec<String>, Vec<String>, Vec<String>);

/// Puts back the sysctls the deployment changed; forwarding stays on while another user of
/// it is on the host (Docker, another router's firewall, another deployment beside this one).
fn restore_sysctls(
    state: &mut crate::state::DeploymentState,
    own_table: &str,
    other_forwarding_user: &dyn Fn() -> Option<String>,
) -> SysctlLines {
    let mut lines = RemoveReport::default();
    let set_forwarding = state
        .sysctls
        .iter()
        .any(|c| c.key == IP_FORWARD && c.netns.is_none());
    for change in state.sysctls.clone() {
        // Only what deploy itself records is ever written back: IPv4 forwarding of the
        // deployment's namespace. Any other key in `state.sysctls` (a state file edited by
        // someone else, B23 F11) is said and left as it is.
        if !(change.key == IP_FORWARD && change.netns.is_none()) {
            lines.left.push(format!(
                "{}{} at its value (state.json lists it, but edgenet never changes it: not written)",
                change.key,
                change.netns.as_deref().map(|n| format!(" in {n}")).unwrap_or_default()
            ));
            state.forget_sysctl(&change.key, change.netns.as_deref());
            continue;
        }
        // Recorded in an earlier boot: the reboot reset the sysctl and this boot set what it
        // is now; edgenet did not change it in this boot (B23 F13).
        // The same for a namespace made anew in this boot (B23b F9).
        if change.of_another_boot_or_namespace(
            forwarding::boot_id(),
            edgenet_host::lock::network_namespace_cookie(),
        ) {
            let live = sysctl::read(&change.key).unwrap_or_default();
            lines.left.push(format!(
                "{} at {} (edgenet found it at {} in an earlier boot or network namespace; it was set here since, not by edgenet)",
                change.key,
                live.trim(),
                change.previous
            ));
            state.forget_sysctl(&change.key, None);
            continue;
        }
        // Forwarding stays on while another user of it is on the host (Docker, another
        // router's firewall, another deployment beside this one): turning it off would cut
        // them off.
        if change.key == IP_FORWARD && change.netns.is_none() {
            let live = sysctl::read(&change.key).unwrap_or_default();
            if live.trim() == change.value {
                if let Some(user) = other_forwarding_user() {
                    lines.left.push(format!(
                        "{} at {} (not restored to {}: {user} forwards through this host)",
                        change.key,
                        live.trim(),
                        change.previous
                    ));
                    if user.starts_with(forwarding::ANOTHER_DEPLOYMENT) {
                        forwarding::hand_over(&change.previous);
                    }
                    state.forget_sysctl(&change.key, None);
                    continue;
                }
            }
        }
        match sysctl::read(&change.key) {
            Ok(live) if live.trim() == change.value => {
                match sysctl::write(&change.key, &change.previous) {
                    Ok(()) => {
                        lines
                            .restored
                            .push(format!("{} to {}", change.key, change.previous));
                        state.forget_sysctl(&change.key, change.netns.as_deref());
                    }
                    Err(e) => lines.errors.push(e.to_string()),
                }
            }
            // Already back to what it was before edgenet (by a rollback that could not record
            // it, or by hand): left as it is, without blaming someone else's change.
            Ok(live) if live.trim() == change.previous.trim() => {
                lines.left.push(format!(
                    "{} at {}: already back to the value edgenet found (by an earlier, interrupted remove, a rollback, or by hand)",
                    change.key,
                    live.trim()
                ));
                state.forget_sysctl(&change.key, change.netns.as_deref());
            }
            // Someone changed it since: theirs now, left as it is.
            Ok(live) => {
                lines.left.push(format!(
                    "{} at {} (changed since edgenet set it to {})",
                    change.key,
                    live.trim(),
                    change.value
                ));
                state.forget_sysctl(&change.key, change.netns.as_deref());
            }
            Err(e) => lines.errors.push(e.to_string()),
        }
    }

    // The last deployment of several in this namespace puts back what the first found.
    if !set_forwarding {
        if let Some(restored) = forwarding::restore_handed_over(own_table) {
            lines.restored.push(restored);
        } else if state.records_rebuilt && sysctl::read(IP_FORWARD).is_ok_and(|v| v.trim() == "1") {
            // Its record went with the lost state.json: what it was before edgenet is unknown.
            lines.left.push(match other_forwarding_user() {
                Some(user) => format!(
                    "{IP_FORWARD} at 1 (this deployment's records were rebuilt after state.json was lost, so its value from before edgenet is unknown; {user} forwards through this host)"
                ),
                None => format!(
                    "{IP_FORWARD} at 1 (this deployment's records were rebuilt after state.json was lost, so its value from before edgenet is unknown: if nothing on this host needs forwarding, `sysctl -w {IP_FORWARD}=0`)"
                ),
            });
        }
    }
    (lines.restored, lines.left, lines.errors)
}

/// What remove's fast path did, typed: the nftables tables' outcome (`None`: no table), the
/// adapters that could not be given back, and everything else that failed (the per-object
/// pass after it retries whatever is still there).
struct FastPath {
    tables: TablesSide,
    adapters_failed: Vec<String>,
    /// What giving each adapter back did ("could not ..." lines: what it could not).
    adapters_done: Vec<(String, Vec<String>)>,
    errors: Vec<String>,
}

/// Deleting a link or an nftables table makes the kernel wait for a grace period, so the
/// fast path pays it once per kind, in parallel: the tables, in one transaction, on their own
/// thread (same network namespace: threads inherit the creator's) while the adapters get the
/// host's configuration back and one request deletes every link of the deployment's group.
/// That request is sent by a short-lived child process: remove goes on once the kernel has
/// announced every link of the group deleted (names free, gone from dumps), while the child
/// waits out the kernel's final freeing of them (its `rcu_barrier`, 15-25 ms) on its own
/// (`Netlink::delete_group_detached`). The tables' grace period is paid when the nftables
/// thread closes its netfilter socket, beside the links.
fn fast_path(
    k: &mut dyn Kernel,
    teardown: &Teardown<'_>,
    adapters: &[KernelObject],
    group: &GroupMembers,
    tables_side: std::thread::JoinHandle<TablesSide>,
) -> FastPath {
    {
        let mut fast = FastPath {
            tables: TablesSide::default(),
            adapters_failed: Vec::new(),
            adapters_done: Vec::new(),
            errors: Vec::new(),
        };
        // The host's addresses go back to the adapter before the bridge that holds them goes.
        for a in adapters {
            match teardown.release_adapter(k, a) {
                Ok(done) => {
                    for line in &done {
                        tracing::info!("{line}");
                    }
                    fast.adapters_done.push((a.name.clone(), done));
                }
                Err(e) => {
                    fast.errors.push(format!("adapter {}: {e}", a.name));
                    fast.adapters_failed.push(a.name.clone());
                }
            }
        }
        if group.foreign.is_empty() {
            if let Err(e) = k.delete_group_detached(teardown.own.group) {
                fast.errors
                    .push(format!("links of group {}: {e}", teardown.own.group));
            }
        } else {
            for name in &group.ours {
                if let Err(e) = k.delete_link(name) {
                    fast.errors.push(format!("interface {name}: {e}"));
                }
            }
        }
        // A thread that panicked said nothing: the per-object pass checks and deletes the
        // tables one by one.
        fast.tables = tables_side.join().unwrap_or_default();
        if let Some(Ok(())) = fast.tables.deleted {
            for t in &fast.tables.ours {
                let (family, name) = crate::firewall::split_family(t);
                edgenet_host::nft::Nft::new().note_deleted(family, name);
            }
        }
        fast
    }
}

/// What remove's nftables thread found and did.
#[derive(Default)]
struct TablesSide {
    /// Recorded tables that are there without edgenet's mark (or could not be read), with why:
    /// left in place.
    foreign: Vec<(String, String)>,
    /// Recorded tables that were there with our mark.
    ours: Vec<String>,
    /// Recorded tables already gone.
    gone: Vec<String>,
    /// Deleting `ours`, in one transaction (`None`: there was none).
    deleted: Option<Result<(), DeployError>>,
    /// Another user of IPv4 forwarding, read from the same ruleset (`None`: not read).
    other_forwarding_user: Option<Option<String>>,
}

/// Checks the marks of the recorded tables and deletes ours, all in one transaction (the
/// kernel then waits for one grace period, not one per table).
fn tables_side(
    recorded: Vec<String>,
    own_table: &str,
    idle_users: &[String],
    forwarding_user: std::sync::mpsc::Sender<Option<String>>,
) -> TablesSide {
    use crate::firewall::FirewallDriver;
    let _ruleset = edgenet_host::nft::RulesetSession::begin();
    let driver = NftablesDriver::default();
    let mut side = TablesSide::default();
    for name in recorded {
        match driver.live(&name).map(|t| t.map(|t| t.is_ours(true))) {
            Ok(Some(true)) => side.ours.push(name),
            Ok(Some(false)) => side
                .foreign
                .push((name, "none of its rules carries edgenet's comments".into())),
            Ok(None) => side.gone.push(name),
            Err(e) => side.foreign.push((name, e.to_string())),
        }
    }
    // Our own tables are never counted: the answer is the same before and after they go.
    let user = forwarding::other_forwarding_user_besides(own_table, idle_users);
    let _ = forwarding_user.send(user.clone());
    side.other_forwarding_user = Some(user);
    if !side.ours.is_empty() {
        side.deleted = Some(
            driver
                .delete_checked_together(&side.ours)
                .map_err(DeployError::from),
        );
    }
    side
}

/// Why a link with our recorded name is not ours: another deployment's mark, or none.
fn not_our_mark(link: &edgenet_host::netlink::Link, own: &Ownership) -> String {
    match link.alias.as_deref() {
        Some(a) if a.starts_with("edgenet:") && a != own.alias => format!(
            "it was left by another edgenet deployment (mark {a}); remove it with that deployment's state directory"
        ),
        _ => format!("it does not carry the mark {}", own.alias),
    }
}

/// The links of a deployment's link group, read just before it is deleted.
pub(crate) struct GroupMembers {
    /// Marked (alias), or recorded by the deployment (a link made by a run killed before
    /// it was marked).
    pub ours: Vec<String>,
    /// Neither: someone else's link put in the group; never deleted.
    pub foreign: Vec<String>,
}

/// Whether `state` records a link named `name` in the machine's namespace (a bridge, veth or
/// tap the deployment made).
pub(crate) fn records_link(state: &crate::state::DeploymentState, name: &str) -> bool {
    state.objects.iter().any(|o| {
        matches!(
            o.kind,
            ObjectKind::Bridge | ObjectKind::Veth | ObjectKind::Tap
        ) && o.name == name
            && o.netns.is_none()
    })
}

/// Sorts the members of `own.group` among `links` into ours and foreign (see
/// [`GroupMembers`]). `recorded`: whether the deployment records a link of that name.
pub(crate) fn group_members(
    links: &[edgenet_host::netlink::Link],
    own: &Ownership,
    recorded: impl Fn(&str) -> bool,
) -> GroupMembers {
    let (mut ours, mut foreign) = (Vec::new(), Vec::new());
    for l in links.iter().filter(|l| l.group == own.group) {
        if l.alias.as_deref() == Some(own.alias.as_str()) || recorded(&l.name) {
            ours.push(l.name.clone());
        } else {
            foreign.push(l.name.clone());
        }
    }
    GroupMembers { ours, foreign }
}

/// The report line of a link in the deployment's group without its mark.
pub(crate) fn foreign_group_member(name: &str, own: &Ownership) -> String {
    format!(
        "interface {name}: it is in this deployment's link group ({}) but does not carry its mark (alias {}), so it is not edgenet's and stays; take it out of the group with `ip link set {name} group default`",
        own.group, own.alias
    )
}

/// An object as messages name it.
fn object_words(o: &KernelObject) -> String {
    crate::teardown::object_words(o.kind, &o.name)
}

/// An adapter that is gone (no link has its name, nor its MAC under another name) cannot take
/// the host's configuration back: the bridge that carries it stays (out of the deployment's
/// link group, which the sweep deletes) and is reported as left with why; the adapter's record
/// is forgotten, so the rest of the remove, and any rerun, completes.
fn adapters_gone(
    nl: &mut dyn Kernel,
    state: &mut crate::state::DeploymentState,
    own: &Ownership,
    report: &mut RemoveReport,
) -> Result<(), DeployError> {
    let records: Vec<(String, AdapterRecord)> = state
        .objects
        .iter()
        .filter_map(|o| Some((o.name.clone(), AdapterRecord::of(o)?)))
        .collect();
    for (name, record) in records {
        let bridge = record.bridge.as_str();
        if crate::switch::adapter::find_adapter(nl, &record.adapter, bridge, own)?.is_some() {
            continue;
        }
        let held = nl.link_config(bridge)?.address_strings();
        if nl.link(bridge)?.is_some_and(|b| own.owns(&b)) && !held.is_empty() {
            nl.set_group(bridge, 0)?;
            state.forget_object(ObjectKind::Bridge, bridge, None);
            report.left.push(format!(
                "bridge {bridge}: it carries the host's addresses ({}) and adapter {name} is gone, so nothing can take them back; delete it (`ip link del {bridge}`) once the host has its network on another link",
                held.join(", ")
            ));
        }
        report.left.push(format!(
            "adapter {name}: gone (no link has its name or its MAC {}); nothing to restore",
            record
                .adapter
                .mac
                .map(|m| m.to_string())
                .unwrap_or_else(|| "?".into())
        ));
        state.forget_object(ObjectKind::Adapter, &name, None);
    }
    Ok(())
}

/// `remove` of a state directory that holds no deployment: what a run killed before its first
/// record left (`config.json` and `machine.json` as a deploy writes them, the lock) or an
/// earlier edgenet's remove did not know of (`config.json`) goes, and so does what edgenet
/// writes under `nodes/` and `vm/` (see [`crate::own_files::sweep_node_dirs`]). Nothing else:
/// a file under one of those names that is not what edgenet writes there (a damaged
/// `config.json`, someone's file), and every other entry, is left and named in `left` (B26
/// F6: a mistyped `--state-dir` lost whole directories).
fn remove_undeployed(lock: &StateLock) -> RemoveReport {
    use crate::state::{
        CONFIG_FILE, IDENTITY_FILE, JOURNAL_FILE, LOCK_FILE, MACHINE_FILE, STATE_FILE,
    };
    let mut report = RemoveReport::default();
    let dir = lock.dir().path();
    let mut swept = crate::own_files::Swept::default();
    let mut named: Vec<&str> = vec![LOCK_FILE, "nodes", "vm", edgenet_host::nft::CACHE_FILE];
    for name in [
        CONFIG_FILE,
        MACHINE_FILE,
        JOURNAL_FILE,
        IDENTITY_FILE,
        STATE_FILE,
    ] {
        let path = dir.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        named.push(name);
        let bytes = meta
            .is_file()
            .then(|| {
                crate::own_files::read(&path, edgenet_core::config::MAX_CONFIG_BYTES as u64 + 1)
            })
            .and_then(|r| r.ok().flatten());
        let why = match (name, &bytes) {
            (_, None) => Some(match edgenet_host::small_file::file_kind(&meta) {
                Some(kind) => format!("{kind}, not a file edgenet writes"),
                None => "unreadable, or larger than edgenet writes it".to_string(),
            }),
            (CONFIG_FILE, Some(b)) if !is_recorded_config(b) => Some(
                "not a config as a deploy records it (compact JSON of config sections on one line): damaged, edited or not edgenet's"
                    .to_string(),
            ),
            (MACHINE_FILE, Some(b)) if !is_machine_choice(b) => {
                Some("not a machine choice as a deploy records it".to_string())
            }
            (JOURNAL_FILE, Some(b))
                if !b.split(|c| *c == b'\n').all(|l| {
                    l.iter().all(u8::is_ascii_whitespace)
                        || serde_json::from_slice::<serde_json::Value>(l).is_ok()
                }) =>
            {
                Some("not a journal as edgenet writes it".to_string())
            }
            // With no deployment loaded, these hold none: damaged, or not edgenet's.
            (IDENTITY_FILE | STATE_FILE, Some(_)) => Some(
                "no deployment can be read from it (damaged, or not edgenet's)".to_string(),
            ),
            _ => None,
        };
        match why {
            Some(why) => report.left.push(format!(
                "{}: {why}; left as it is (the state directory stays)",
                path.display()
            )),
            None => match std::fs::remove_file(&path) {
                Ok(()) => swept.removed.push(path),
                Err(e) => swept.errors.push(format!("{}: {e}", path.display())),
            },
        }
    }
    crate::own_files::sweep_node_dirs(dir, false, &mut swept);
    // Everything else in the directory is not edgenet's (a mistyped --state-dir): named, left.
    report
        .left
        .extend(foreign_entries(dir, |n| named.contains(&n)));
    report.left.extend(swept.left);
    report.errors.extend(swept.errors);
    report.leftover_files = swept
        .removed
        .into_iter()
        .chain(lock.stale_temp_files_removed())
        .map(|p| p.display().to_string())
        .collect();
    lock.release_and_delete();
    report
}

/// The entries of state directory `dir` that edgenet never writes there (not `is_own`, not a
/// damaged state set aside), named in one `left` line: they stay, and the directory with them.
fn foreign_entries(dir: &std::path::Path, is_own: impl Fn(&str) -> bool) -> Option<String> {
    let mut others: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !is_own(n) && !n.starts_with(&format!("{}.damaged", crate::state::STATE_FILE)))
        .collect();
    if others.is_empty() {
        return None;
    }
    others.sort();
    let count = others.len();
    let mut shown: Vec<String> = others.into_iter().take(5).collect();
    if count > 5 {
        shown.push(format!("and {} more", count - 5));
    }
    Some(format!(
        "{}: holds {count} entr{} edgenet never writes ({}): not edgenet's, left as is, and the directory with {} (is this the right --state-dir?)",
        dir.display(),
        if count == 1 { "y" } else { "ies" },
        shown.join(", "),
        if count == 1 { "it" } else { "them" }
    ))
}

/// Whether `bytes` are a config as a deploy records it in `config.json`: a JSON object of
/// deployment-config sections only (B27 F2: another tool's one-line `config.json` is not),
/// serialised compactly, and a newline.
fn is_recorded_config(bytes: &[u8]) -> bool {
    let Some(json) = bytes.strip_suffix(b"\n") else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(json).is_ok_and(|v| {
        v.as_object()
            .is_some_and(|m| m.keys().all(|k| edgenet_core::config::is_root_key(k)))
            && serde_json::to_vec(&v).is_ok_and(|again| again == json)
    })
}

/// Whether `bytes` are a `machine.json` as a deploy writes it: `{"machine":N}`,
/// `{"machine_name":"…"}` or both.
fn is_machine_choice(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(bytes).is_ok_and(|m| {
        !m.is_empty()
            && m.iter().all(|(k, v)| match k.as_str() {
                "machine" => v.is_u64(),
                "machine_name" => v.is_string(),
                _ => false,
            })
    })
}

/// The node files and VM directories under the state directory: edgenet's own files, and the
/// directories they empty (see [`crate::own_files::sweep_node_dirs`]); what else is in them is
/// left, in `left`.
fn remove_files(lock: &StateLock, left: &mut Vec<String>, errors: &mut Vec<String>) {
    let mut swept = crate::own_files::Swept::default();
    crate::own_files::sweep_node_dirs(lock.dir().path(), true, &mut swept);
    left.extend(swept.left);
    errors.extend(swept.errors);
}
