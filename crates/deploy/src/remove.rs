//! `remove`: delete everything the deployment created and put back what it changed, carrying
//! on past every individual failure and reporting all of them. Works after a partial or
//! crashed deploy: it acts on the state's records, and every delete accepts "already gone".

use edgenet_host::netlink::Netlink;
use edgenet_host::{netns, sysctl};

use crate::deploy::{kind_name, removal_rank, AdapterRecord};
use crate::error::DeployError;
use crate::firewall::{FirewallDriver, NftablesDriver};
use crate::journal::Ownership;
use crate::names;
use crate::node::{NetnsRuntime, NodeRuntime};
use crate::state::{KernelObject, ObjectKind, ObjectStatus, StateLock};
use crate::switch::{restore_adapter, InternalSwitch, SwitchDriver};

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RemoveReport {
    /// There was a deployment in the state directory.
    pub found: bool,
    pub deployment_id: Option<String>,
    /// Objects deleted.
    pub removed: Vec<String>,
    /// Objects put back as they were before the first deploy (the adapter, Docker's chain).
    pub restored: Vec<String>,
    /// Objects left in place because they are not this deployment's, each with why.
    pub left: Vec<String>,
    pub errors: Vec<String>,
}

/// Deletes one recorded object if it exists and is ours; `Ok(false)` when it was already gone.
pub(crate) fn remove_object(
    nl: &mut Netlink,
    o: &KernelObject,
    own: &Ownership,
) -> Result<bool, DeployError> {
    match o.kind {
        ObjectKind::Netns => NetnsRuntime.remove(&o.name),
        // A bridge the user made is used, never deleted.
        ObjectKind::Bridge if o.status == ObjectStatus::Adopted => Ok(false),
        ObjectKind::Bridge => InternalSwitch.remove(nl, &o.name, own),
        ObjectKind::Veth => match nl.link(&o.name)? {
            Some(link) if own.owns(&link) => Ok(nl.delete_link(&o.name)?),
            Some(_) => Err(DeployError::Foreign {
                what: "interface",
                name: o.name.clone(),
                hint: "it no longer carries this deployment's mark, so edgenet leaves it".into(),
            }),
            None => Ok(false),
        },
        ObjectKind::NftTable => Ok(NftablesDriver::default().remove(&o.name)?),
        ObjectKind::FirewallRule => {
            let (chain, rule) = crate::firewall::host_rules::rule_of_record(&o.name)
                .ok_or_else(|| DeployError::Unsupported(format!("bad rule record {}", o.name)))?;
            let args: Vec<&str> = rule.iter().map(String::as_str).collect();
            Ok(edgenet_host::iptables::delete_all(&chain, &args)?)
        }
        ObjectKind::Adapter => {
            let record: AdapterRecord = o
                .restore
                .as_ref()
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .ok_or_else(|| {
                    DeployError::Unsupported(format!(
                        "the state has no snapshot of adapter {}",
                        o.name
                    ))
                })?;
            for done in restore_adapter(nl, &record.adapter, &record.bridge, own)? {
                tracing::info!("{done}");
            }
            Ok(true)
        }
        other => Err(DeployError::Unsupported(format!(
            "edgenet does not create {} objects yet",
            kind_name(other)
        ))),
    }
}

pub fn remove(lock: &StateLock) -> Result<RemoveReport, DeployError> {
    let Some(mut state) = lock.load()? else {
        cleanup_dir(lock, &mut Vec::new());
        return Ok(RemoveReport::default());
    };
    let id = state.deployment_id.clone();
    let own = Ownership {
        alias: names::alias(&id),
        group: names::link_group(&id),
    };
    let mut report = RemoveReport {
        found: true,
        deployment_id: Some(id.to_string()),
        ..RemoveReport::default()
    };
    state.begin_remove();
    lock.save(&state)?;

    let mut nl = Netlink::open()?;
    // Objects recorded under our names that do not carry our mark (someone made them, or took
    // the name meanwhile) are left in place, said so, and forgotten.
    let mut foreign = Vec::new();
    for o in &state.objects {
        let why = match o.kind {
            ObjectKind::Netns if netns::exists(&o.name) => {
                match crate::node::netns::netns_is_ours(&o.name, &own, true) {
                    Ok(true) => None,
                    Ok(false) => Some("it holds links that are not this deployment's".to_string()),
                    Err(e) => Some(format!("cannot look inside it: {e}")),
                }
            }
            ObjectKind::Veth => match nl.link(&o.name)? {
                Some(link) if !own.owns(&link) => {
                    Some(format!("it does not carry the mark {}", own.alias))
                }
                _ => None,
            },
            ObjectKind::NftTable => match NftablesDriver::default().marked(&o.name) {
                Ok(Some(false)) => Some("none of its rules carries edgenet's comments".to_string()),
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            },
            _ => None,
        };
        if let Some(why) = why {
            foreign.push((o.clone(), why));
        }
    }
    for (o, why) in &foreign {
        report
            .left
            .push(format!("{} {}: {why}", kind_name(o.kind), o.name));
        state.forget_object(o.kind, &o.name, o.netns.as_deref());
    }
    adapters_gone(&mut nl, &mut state, &own, &mut report)?;
    // Deleting a link or an nftables table makes the kernel wait for a grace period (20-60 ms
    // each), so remove pays it once per kind, in parallel: the table goes on its own thread
    // (same network namespace: threads inherit the creator's) while one request deletes every
    // link of the deployment's group; the node namespaces then go, and the kernel reaps what
    // is left in them in the background. Recorded objects are then checked one by one, so
    // whatever the fast path missed is still deleted and reported.
    let table = state
        .objects
        .iter()
        .find(|o| o.kind == ObjectKind::NftTable && !o.name.contains(' '))
        .map(|o| o.name.clone());
    let adapters: Vec<KernelObject> = state
        .objects
        .iter()
        .filter(|o| o.kind == ObjectKind::Adapter)
        .cloned()
        .collect();
    let fast_errors = std::thread::scope(|scope| {
        let firewall = table
            .as_ref()
            .map(|t| scope.spawn(move || NftablesDriver::default().remove(t)));
        let mut errors = Vec::new();
        // The host's addresses go back to the adapter before the bridge that holds them goes.
        for a in &adapters {
            if let Err(e) = remove_object(&mut nl, a, &own) {
                errors.push(format!("adapter {}: {e}", a.name));
            }
        }
        if let Err(e) = nl.delete_group(own.group) {
            errors.push(format!("links of group {}: {e}", own.group));
        }
        for o in state.objects.iter().filter(|o| o.kind == ObjectKind::Netns) {
            if let Err(e) = NetnsRuntime.remove(&o.name) {
                errors.push(format!("network namespace {}: {e}", o.name));
            }
        }
        if let Some(handle) = firewall {
            match handle.join() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => errors.push(format!("nftables table: {e}")),
                Err(_) => errors.push("nftables table: the remover thread panicked".into()),
            }
        }
        errors
    });
    let firewall_gone = !fast_errors.iter().any(|e| e.starts_with("nftables"));
    let fast_errors_adapter: Vec<String> = adapters
        .iter()
        .filter(|a| {
            fast_errors
                .iter()
                .any(|e| e.starts_with(&format!("adapter {}:", a.name)))
        })
        .map(|a| a.name.clone())
        .collect();
    for e in fast_errors {
        tracing::debug!("fast path: {e}");
    }
    // One dump tells which links survived the fast path; only those are deleted one by one.
    let links: Vec<String> = nl.links()?.into_iter().map(|l| l.name).collect();
    let mut order: Vec<KernelObject> = state.objects_for_removal().cloned().collect();
    order.sort_by_key(|o| removal_rank(o.kind));
    for o in order {
        let gone = match o.kind {
            ObjectKind::NftTable => firewall_gone && table.as_ref() == Some(&o.name),
            ObjectKind::Adapter => !fast_errors_adapter.contains(&o.name),
            ObjectKind::Netns => !netns::exists(&o.name),
            ObjectKind::Bridge | ObjectKind::Veth => !links.contains(&o.name),
            _ => false,
        };
        let result = if gone {
            Ok(true)
        } else {
            remove_object(&mut nl, &o, &own)
        };
        match result {
            Ok(_) => {
                state.forget_object(o.kind, &o.name, o.netns.as_deref());
                let what = format!("{} {}", kind_name(o.kind), o.name);
                match o.kind {
                    ObjectKind::Adapter => report
                        .restored
                        .push(format!("{what} (its addresses and routes)")),
                    ObjectKind::Bridge if o.status == ObjectStatus::Adopted => report
                        .left
                        .push(format!("{what}: the user's bridge, used as it was")),
                    _ => report.removed.push(what),
                }
            }
            Err(e) => report
                .errors
                .push(format!("{} {}: {e}", kind_name(o.kind), o.name)),
        }
    }
    if let Err(e) = lock.save(&state) {
        report.errors.push(e.to_string());
    }
    // A crash between creating a namespace and saving its record cannot happen (records come
    // first), but a namespace of ours whose record was lost to a damaged state file can: sweep
    // our id's namespaces by name.
    if let Ok(all) = netns::list() {
        for name in all.into_iter().filter(|n| n.ends_with(&format!("-{id}"))) {
            // Only with our mark: a namespace that merely carries our id is someone else's.
            if !crate::node::netns::netns_is_ours(&name, &own, false).unwrap_or(false) {
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

    for change in state.sysctls.clone() {
        match sysctl::read(&change.key) {
            Ok(live) if live.trim() == change.value => {
                match sysctl::write(&change.key, &change.previous) {
                    Ok(()) => {
                        report
                            .restored
                            .push(format!("{} to {}", change.key, change.previous));
                        state.forget_sysctl(&change.key, change.netns.as_deref());
                    }
                    Err(e) => report.errors.push(e.to_string()),
                }
            }
            // Someone changed it since: theirs now, left as it is.
            Ok(live) => {
                report.left.push(format!(
                    "{} at {} (changed since edgenet set it to {})",
                    change.key,
                    live.trim(),
                    change.value
                ));
                state.forget_sysctl(&change.key, change.netns.as_deref());
            }
            Err(e) => report.errors.push(e.to_string()),
        }
    }

    if report.errors.is_empty() {
        if let Err(e) = lock.clear() {
            report.errors.push(e.to_string());
        }
        cleanup_dir(lock, &mut report.errors);
    } else {
        lock.save(&state)?;
    }
    Ok(report)
}

/// An adapter that is gone (no link has its name, nor its MAC under another name) cannot take
/// the host's configuration back: the bridge that carries it stays (out of the deployment's
/// link group, which the sweep deletes) and is reported as left with why; the adapter's record
/// is forgotten, so the rest of the remove, and any rerun, completes.
fn adapters_gone(
    nl: &mut Netlink,
    state: &mut crate::state::DeploymentState,
    own: &Ownership,
    report: &mut RemoveReport,
) -> Result<(), DeployError> {
    let records: Vec<(String, AdapterRecord)> = state
        .objects
        .iter()
        .filter(|o| o.kind == ObjectKind::Adapter)
        .filter_map(|o| {
            let r = serde_json::from_value::<AdapterRecord>(o.restore.clone()?).ok()?;
            Some((o.name.clone(), r))
        })
        .collect();
    for (name, record) in records {
        let bridge = record.bridge.as_str();
        if crate::switch::external::find_adapter(nl, &record.adapter, bridge, own)?.is_some() {
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

/// Leaves the state directory as it was before the first deploy: node files, the lock file
/// and the directory itself go when nothing else is in it.
fn cleanup_dir(lock: &StateLock, errors: &mut Vec<String>) {
    let dir = lock.dir().path();
    let nodes = dir.join("nodes");
    if nodes.exists() {
        if let Err(e) = std::fs::remove_dir_all(&nodes) {
            errors.push(format!("{}: {e}", nodes.display()));
        }
    }
    lock.release_and_delete();
}
