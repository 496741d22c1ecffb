//! Records rebuilt from the kernel when they were lost (`state.json` empty, all-NUL or missing
//! beside a good `identity.json`) while the deployment's objects are still there (no power cut
//! took them: the file was emptied or deleted by hand, or a crash on a filesystem without
//! ext4's heuristics left the kernel running). Each object is found by its mark, the same marks
//! remove checks before deleting anything: links carrying the alias `edgenet:<id>` or in the
//! deployment's link group, node namespaces `<node>-<id>` marked on `lo`/`eth0`, and the
//! tables `ip|bridge edgenet_<id>` whose rules carry edgenet's comments. The value a sysctl
//! had before edgenet changed it is not in the kernel: [`DeploymentState::records_rebuilt`]
//! says so to remove.

use crate::firewall::{self, FirewallDriver, NftablesDriver};
use crate::journal::Ownership;
use crate::names;
use crate::state::{DeploymentState, ObjectKind, ObjectStatus};

/// Records every object of `state`'s deployment found by its mark (as created); what was
/// found, in words. Sets `records_rebuilt` when anything was.
pub fn rebuild(state: &mut DeploymentState) -> Vec<String> {
    let id = state.deployment_id.clone();
    let own = Ownership {
        alias: names::alias(&id),
        group: names::link_group(&id),
    };
    let mut found: Vec<(ObjectKind, String)> = Vec::new();
    if let Ok(links) = crate::kernel::open().and_then(|mut nl| nl.links()) {
        let mut links: Vec<_> = links.into_iter().filter(|l| own.owns(l)).collect();
        // Bridges first: the order records are made in (remove undoes them backwards).
        links.sort_by_key(|l| l.kind.as_deref() != Some("bridge"));
        for l in links {
            let kind = match l.kind.as_deref() {
                Some("bridge") => ObjectKind::Bridge,
                Some("veth") => ObjectKind::Veth,
                Some("tun") | Some("tap") => ObjectKind::Tap,
                _ => continue,
            };
            found.push((kind, l.name));
        }
    }
    let suffix = format!("-{id}");
    for ns in edgenet_host::netns::list().unwrap_or_default() {
        if ns.ends_with(&suffix) && crate::node::netns::netns_is_ours(&ns, &own).unwrap_or(false) {
            found.push((ObjectKind::Netns, ns));
        }
    }
    let table = firewall::table_name(&id);
    let driver = NftablesDriver::default();
    for name in [
        table.clone(),
        format!("{} {table}", firewall::bridge_rules::FAMILY),
    ] {
        if driver
            .live(&name)
            .ok()
            .flatten()
            .is_some_and(|t| t.is_marked())
        {
            found.push((ObjectKind::NftTable, name));
        }
    }
    if found.is_empty() {
        return Vec::new();
    }
    let words: Vec<String> = found
        .iter()
        .map(|(kind, name)| crate::teardown::object_words(*kind, name))
        .collect();
    for (kind, name) in found {
        state.record_object(kind, &name, None).status = ObjectStatus::Created;
    }
    state.records_rebuilt = true;
    state.note(format!(
        "records rebuilt from the kernel's marks: {}",
        words.join(", ")
    ));
    tracing::warn!(
        "the records of deployment {id} were lost; rebuilt from the marks of what is in the kernel: {}",
        words.join(", ")
    );
    words
}
