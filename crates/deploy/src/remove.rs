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
use crate::node::{NetnsRuntime, NodeRef, NodeRuntime};
use crate::state::{KernelObject, ObjectKind, ObjectStatus, StateLock};
use crate::switch::{restore_adapter, InternalSwitch, SwitchDriver};

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
}

/// Deletes one recorded object if it exists and is ours; `Ok(false)` when it was already gone.
pub(crate) fn remove_object(
    nl: &mut Netlink,
    o: &KernelObject,
    own: &Ownership,
) -> Result<bool, DeployError> {
    match o.kind {
        ObjectKind::Netns => NetnsRuntime.remove(&NodeRef {
            name: &o.name,
            guest: &o.name,
            host_link: "",
            switch: "",
        }),
        ObjectKind::Vm => crate::node::vm::stop(std::path::Path::new(&o.name)),
        // A bridge the user made is used, never deleted.
        ObjectKind::Bridge if o.status == ObjectStatus::Adopted => Ok(false),
        ObjectKind::Bridge => InternalSwitch.remove(nl, &o.name, own),
        ObjectKind::Veth | ObjectKind::Tap => match nl.link(&o.name)? {
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
    // One read of the ruleset for the ownership checks and the forwarding-user check.
    let _ruleset = edgenet_host::nft::RulesetSession::begin();
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
        report.left.push(format!("{}: {why}", object_words(o)));
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
    // What existed before anything was deleted: a recorded object absent here was already
    // gone, and is said so rather than "removed".
    let links_before: Vec<String> = nl.links()?.into_iter().map(|l| l.name).collect();
    let netns_before: Vec<String> = state
        .objects
        .iter()
        .filter(|o| o.kind == ObjectKind::Netns && netns::exists(&o.name))
        .map(|o| o.name.clone())
        .collect();
    let mut table_existed = false;
    let fast_errors = std::thread::scope(|scope| {
        let firewall = table
            .as_ref()
            // Its mark was checked above (a table not ours was forgotten).
            .map(|t| scope.spawn(move || NftablesDriver::default().delete_checked(t)));
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
            let node = NodeRef {
                name: &o.name,
                guest: &o.name,
                host_link: "",
                switch: "",
            };
            if let Err(e) = NetnsRuntime.remove(&node) {
                errors.push(format!("network namespace {}: {e}", o.name));
            }
        }
        if let Some(handle) = firewall {
            match handle.join() {
                Ok(Ok(existed)) => {
                    table_existed = existed;
                    if let Some(t) = &table {
                        let (family, name) = crate::firewall::split_family(t);
                        edgenet_host::nft::Nft::new().note_deleted(family, name);
                    }
                }
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
        let fast_table = table.as_ref() == Some(&o.name);
        let gone = match o.kind {
            ObjectKind::NftTable => firewall_gone && fast_table,
            ObjectKind::Adapter => !fast_errors_adapter.contains(&o.name),
            ObjectKind::Netns => !netns::exists(&o.name),
            ObjectKind::Bridge | ObjectKind::Veth | ObjectKind::Tap => !links.contains(&o.name),
            _ => false,
        };
        let existed_before = match o.kind {
            ObjectKind::NftTable if fast_table => table_existed,
            ObjectKind::Netns => netns_before.contains(&o.name),
            ObjectKind::Bridge | ObjectKind::Veth | ObjectKind::Tap => {
                links_before.contains(&o.name)
            }
            _ => true,
        };
        let result = if gone {
            Ok(existed_before)
        } else {
            remove_object(&mut nl, &o, &own)
        };
        match result {
            Ok(existed) => {
                state.forget_object(o.kind, &o.name, o.netns.as_deref());
                let what = object_words(&o);
                match o.kind {
                    ObjectKind::Adapter => report
                        .restored
                        .push(format!("{what} (its addresses and routes)")),
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
    report.vm_notes = crate::node::vm::take_notes();
    report.forced = !report.vm_notes.is_empty();
    if let Err(e) = lock.save(&state) {
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
        // Forwarding stays on while another user of it is on the host (Docker, another
        // router's firewall): turning it off would cut them off.
        if change.key == crate::deploy::IP_FORWARD && change.netns.is_none() {
            let live = sysctl::read(&change.key).unwrap_or_default();
            if live.trim() == change.value {
                if let Some(user) = other_forwarding_user() {
                    report.left.push(format!(
                        "{} at {} (not restored to {}: {user} forwards through this host)",
                        change.key,
                        live.trim(),
                        change.previous
                    ));
                    state.forget_sysctl(&change.key, None);
                    continue;
                }
            }
        }
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

/// Why a link with our recorded name is not ours: another deployment's mark, or none.
fn not_our_mark(link: &edgenet_host::netlink::Link, own: &Ownership) -> String {
    match link.alias.as_deref() {
        Some(a) if a.starts_with("edgenet:") && a != own.alias => format!(
            "it was left by another edgenet deployment (mark {a}); remove it with that deployment's state directory"
        ),
        _ => format!("it does not carry the mark {}", own.alias),
    }
}

/// An object as messages name it: nftables tables with their family (`ip edgenet_X`).
fn object_words(o: &KernelObject) -> String {
    match o.kind {
        ObjectKind::NftTable => {
            let (family, table) = o.name.split_once(' ').unwrap_or(("ip", &o.name));
            format!("nftables table {family} {table}")
        }
        kind => format!("{} {}", kind_name(kind), o.name),
    }
}

/// Another user of IPv4 forwarding on the host, in words: Docker, or a non-empty forward or
/// NAT chain of a table that is not edgenet's. `None` when the ruleset cannot be read.
pub(crate) fn other_forwarding_user() -> Option<String> {
    let ruleset = edgenet_host::facts::host_firewall().ruleset?;
    forwarding_user_of(&ruleset)
}

pub(crate) fn forwarding_user_of(ruleset: &serde_json::Value) -> Option<String> {
    if crate::firewall::host_rules::docker_present(ruleset) {
        return Some("Docker (chain DOCKER-USER in table ip filter)".into());
    }
    let items = ruleset["nftables"].as_array()?;
    let has_rules = |family: &str, table: &str, chain: &str| {
        items.iter().any(|i| {
            let r = &i["rule"];
            r["family"] == family && r["table"] == table && r["chain"] == chain
        })
    };
    items.iter().find_map(|i| {
        let c = &i["chain"];
        let (family, table, name) = (
            c["family"].as_str()?,
            c["table"].as_str()?,
            c["name"].as_str()?,
        );
        if table.starts_with(crate::firewall::TABLE_PREFIX) || !matches!(family, "ip" | "inet") {
            return None;
        }
        let forwards = c["hook"] == "forward" || (c["type"] == "nat" && c["hook"] == "postrouting");
        (forwards && has_rules(family, table, name))
            .then(|| format!("chain {name} of table {family} {table}"))
    })
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
    // `vm`: what is left of the VM directories once every VM is gone (the accelerator probe).
    for sub in ["nodes", "vm"] {
        let path = dir.join(sub);
        if path.exists() {
            if let Err(e) = std::fs::remove_dir_all(&path) {
                errors.push(format!("{}: {e}", path.display()));
            }
        }
    }
    lock.release_and_delete();
}

#[cfg(test)]
mod tests {
    use super::forwarding_user_of;
    use serde_json::json;

    fn chain(family: &str, table: &str, name: &str, hook: &str, kind: &str) -> serde_json::Value {
        json!({"chain": {"family": family, "table": table, "name": name, "hook": hook, "type": kind}})
    }

    fn rule(family: &str, table: &str, chain: &str) -> serde_json::Value {
        json!({"rule": {"family": family, "table": table, "chain": chain}})
    }

    #[test]
    fn only_another_tables_forward_or_nat_rules_count_as_a_forwarding_user() {
        let ours = json!({"nftables": [
            chain("ip", "edgenet_0a1b2c", "forward", "forward", "filter"),
            rule("ip", "edgenet_0a1b2c", "forward"),
        ]});
        assert_eq!(forwarding_user_of(&ours), None);
        let empty = json!({"nftables": [chain("inet", "fw", "fwd", "forward", "filter")]});
        assert_eq!(forwarding_user_of(&empty), None);
        let input_only = json!({"nftables": [
            chain("inet", "fw", "in", "input", "filter"),
            rule("inet", "fw", "in"),
        ]});
        assert_eq!(forwarding_user_of(&input_only), None);
        let router = json!({"nftables": [
            chain("ip", "nat", "POSTROUTING", "postrouting", "nat"),
            rule("ip", "nat", "POSTROUTING"),
        ]});
        assert!(forwarding_user_of(&router).unwrap().contains("ip nat"));
        let docker = json!({"nftables": [chain("ip", "filter", "DOCKER-USER", "", "")]});
        assert!(forwarding_user_of(&docker).unwrap().contains("Docker"));
    }
}
