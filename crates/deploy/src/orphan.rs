//! `remove --orphan ID`: a deployment whose state directory is gone (a reinstall, `rm -rf` of
//! the state directory, a replaced disk) leaves objects no record names; status lists them as
//! leftovers ([`crate::leftovers`]). This deletes, in the current network namespace, what
//! carries that deployment's mark and nothing else: its nftables tables, its `DOCKER-USER`
//! rules, its links (node veths and taps, then bridges), its node namespaces, and puts
//! forwarding back when no other edgenet deployment and no other router is left. Every error
//! is collected; one failure never stops the rest.

use std::path::Path;

use edgenet_host::{netns, sysctl};

use crate::firewall::{self, FirewallDriver, NftablesDriver};
use crate::forwarding::{self, IP_FORWARD};
use crate::journal::Ownership;
use crate::kernel::{self, Kernel};
use crate::names;
use crate::remove::RemoveReport;
use crate::state::{DeploymentId, StateDir};

/// Why an orphan removal was refused before it touched anything.
#[derive(Debug)]
pub enum Refused {
    /// A state directory holds this id: the deployment is not an orphan.
    Owned(std::path::PathBuf),
}

/// Whether a state directory edgenet can see holds deployment `id` (`state.json` or, when
/// that was lost, `identity.json`): the one given to this run, and the default one.
pub fn owner_of(id: &DeploymentId, state_dir: &Path) -> Option<std::path::PathBuf> {
    let mut dirs = vec![state_dir.to_path_buf()];
    let default = Path::new(crate::state::DEFAULT_STATE_DIR);
    if state_dir != default {
        dirs.push(default.to_path_buf());
    }
    dirs.into_iter().find(|dir| {
        let dir_state = StateDir::new(dir);
        let recorded = dir_state
            .peek_records()
            .ok()
            .flatten()
            .is_some_and(|s| &s.deployment_id == id);
        recorded
            || std::fs::read_to_string(dir_state.identity_file())
                .is_ok_and(|t| t.contains(&format!("\"{id}\"")))
    })
}

/// Removes everything of deployment `id` in this network namespace; refused when a state
/// directory edgenet can see holds that id (plain `remove` with it is the way then).
pub fn remove_orphan(id: &DeploymentId, state_dir: &Path) -> Result<RemoveReport, Refused> {
    if let Some(dir) = owner_of(id, state_dir) {
        return Err(Refused::Owned(dir));
    }
    let _ruleset = edgenet_host::nft::RulesetSession::begin();
    let own = Ownership {
        alias: names::alias(id),
        group: names::link_group(id),
    };
    let mut report = RemoveReport {
        deployment_id: Some(id.to_string()),
        orphan: true,
        ..RemoveReport::default()
    };
    let own_table = firewall::table_name(id);

    // What is here before anything goes: whether the node namespaces' switch side is in this
    // network namespace (named namespaces are shared by the whole host, links are not).
    let mut nl = match kernel::open() {
        Ok(nl) => Some(nl),
        Err(e) => {
            report.errors.push(e.to_string());
            None
        }
    };
    let links = match nl.as_mut().map(|nl| nl.links()) {
        Some(Ok(links)) => links,
        Some(Err(e)) => {
            report.errors.push(e.to_string());
            Vec::new()
        }
        None => Vec::new(),
    };
    // Only what carries the mark: a link someone put in the deployment's link group without
    // it is not the deployment's (there is no state to say a run was killed making it).
    let marked = |l: &edgenet_host::netlink::Link| l.alias.as_deref() == Some(own.alias.as_str());
    for name in crate::remove::group_members(&links, &own, |_| false).foreign {
        report
            .left
            .push(crate::remove::foreign_group_member(&name, &own));
    }
    let ours: Vec<_> = links.iter().filter(|l| marked(l)).cloned().collect();
    let tables = marked_tables(&own_table, &mut report);
    let here = !ours.is_empty() || !tables.is_empty();

    // Firewall first, as remove does: nothing of the switch is forwarded half-torn-down.
    if !tables.is_empty() {
        let driver = NftablesDriver::default();
        for t in &tables {
            match driver.remove(t) {
                Ok(true) => report.removed.push(crate::teardown::object_words(
                    crate::state::ObjectKind::NftTable,
                    t,
                )),
                Ok(false) => {}
                Err(e) => report.errors.push(format!(
                    "{}: {e}",
                    crate::teardown::object_words(crate::state::ObjectKind::NftTable, t)
                )),
            }
        }
    }
    docker_rules(&own.alias, &mut report);

    // Links: the nodes' veths and taps, then the bridges (a bridge holding a port that is not
    // the deployment's is an external switch with the host's adapter: left, see below).
    if let Some(nl) = nl.as_mut() {
        let (bridges, others): (Vec<_>, Vec<_>) = ours
            .iter()
            .partition(|l| l.kind.as_deref() == Some("bridge"));
        for l in others {
            delete_link(nl, &l.name, &mut report);
        }
        for b in bridges {
            let foreign_ports: Vec<&str> = links
                .iter()
                .filter(|p| p.master.as_deref() == Some(b.name.as_str()) && !marked(p))
                .map(|p| p.name.as_str())
                .collect();
            if !foreign_ports.is_empty() {
                report.left.push(format!(
                    "bridge {}: it holds {} (the host's adapter of an external switch, with the host's addresses and routes on the bridge); how to give them back was recorded in the lost state directory: move the addresses and routes back to the adapter, set `net.ipv6.conf.{}.disable_ipv6` back to 0 (edgenet turned IPv6 off on the port; its value from before was in the lost state), then `ip link del {}`",
                    b.name,
                    foreign_ports.join(", "),
                    foreign_ports[0],
                    b.name
                ));
                continue;
            }
            // The host's configuration on a bridge whose adapter is gone (unplugged, its
            // driver not loaded): an internal switch's bridge has only its own address and
            // the kernel's route of it; routes through it (the host's default route) or a
            // DHCP address say it is an external switch's, carrying the host's network.
            // Nothing can take them back: the bridge stays, as plain remove leaves it.
            if let Some(line) = carries_host_config(nl, &b.name) {
                report.left.push(line);
                continue;
            }
            delete_link(nl, &b.name, &mut report);
        }
    }

    // Node namespaces `<node>-<id>` with the mark.
    let suffix = format!("-{id}");
    let mut deleted: Vec<(String, (u64, u64))> = Vec::new();
    for name in netns::list().unwrap_or_default() {
        if !name.ends_with(&suffix) {
            continue;
        }
        if !netns::exists(&name) {
            continue;
        }
        match crate::node::netns::netns_is_ours(&name, &own) {
            Ok(true) => {}
            Ok(false) => {
                report.left.push(format!(
                    "network namespace {name}: it has deployment {id}'s id in its name but not its mark"
                ));
                continue;
            }
            Err(e) => {
                report.errors.push(format!("network namespace {name}: {e}"));
                continue;
            }
        }
        // Its eth0 still paired while nothing of the id is here: the switch side is in
        // another network namespace, whose deployment this may still be.
        if !here && node_has_eth0(&name) {
            report.left.push(format!(
                "network namespace {name}: its {} is paired with a link in another network namespace, not this one: run `edgenet remove --orphan {id}` there",
                names::NODE_IFNAME
            ));
            continue;
        }
        // Its identity while its name is there: the processes still in it once the name goes
        // are named, as plain `remove` names them.
        if let Some(identity) = crate::node::processes::netns_identity(&name) {
            deleted.push((name.clone(), identity));
        }
        match netns::delete(&name) {
            Ok(true) => report.removed.push(format!("network namespace {name}")),
            Ok(false) => {}
            Err(e) => report.errors.push(format!("network namespace {name}: {e}")),
        }
    }
    for (name, processes) in
        crate::node::processes::processes_in(std::path::Path::new("/proc"), &deleted)
    {
        report.left.push(crate::node::processes::still_running(
            &name,
            &processes,
            !netns::exists(&name),
        ));
    }
    // QEMUs of the deployment's `vm` nodes are not stopped (their guests may hold data; a
    // QEMU is not found by a mark), but named with the command that stops each (B26 F9).
    let id_text = id.to_string();
    for q in crate::leftovers::orphan_qemus() {
        if q.id.as_deref() != Some(id_text.as_str()) {
            continue;
        }
        report.left.push(format!(
            "QEMU (pid {}) of VM {}: remove --orphan does not stop a VM (its state directory {} is gone, and with it what told edgenet how to power it off); its network is gone: stop it with `kill {}`",
            q.pid,
            q.guest,
            q.state_dir.display(),
            q.pid
        ));
    }
    report.found = !report.removed.is_empty() || !report.left.is_empty();
    // Only once something of the deployment was here: an id that matched nothing says
    // nothing about who turned forwarding on.
    if !report.removed.is_empty() {
        forwarding_back(id, &own_table, nl.as_mut(), state_dir, &mut report);
    }
    if report.errors.is_empty() {
        edgenet_host::lock::forget_notes_of_gone_namespaces();
    }
    Ok(report)
}

/// `edgenet_<id>` tables (`ip` and `bridge`) that carry edgenet's mark; one without it is left.
fn marked_tables(own_table: &str, report: &mut RemoveReport) -> Vec<String> {
    let driver = NftablesDriver::default();
    let mut found = Vec::new();
    for name in [
        own_table.to_string(),
        format!("{} {own_table}", firewall::bridge_rules::FAMILY),
    ] {
        let words = crate::teardown::object_words(crate::state::ObjectKind::NftTable, &name);
        match driver.live(&name) {
            Ok(Some(t)) if t.is_marked() => found.push(name),
            Ok(Some(_)) => report.left.push(format!(
                "{words}: none of its rules carries edgenet's comments"
            )),
            Ok(None) => {}
            Err(e) => report.errors.push(format!("{words}: {e}")),
        }
    }
    found
}

/// The deployment's accepts in Docker's `DOCKER-USER` (comment `edgenet:<id>`).
fn docker_rules(mark: &str, report: &mut RemoveReport) {
    let chain = firewall::host_rules::DOCKER_USER;
    let lines = match edgenet_host::iptables::list_rules(chain) {
        Ok(Some(lines)) => lines,
        // No chain, or no iptables: nothing of ours can be there.
        Ok(None) | Err(_) => return,
    };
    for line in lines {
        let words: Vec<String> = line
            .split_whitespace()
            .skip(2) // `-A DOCKER-USER`
            .map(|w| w.trim_matches('"').to_string())
            .collect();
        let marked = words
            .windows(2)
            .any(|w| w[0] == "--comment" && w[1] == mark);
        if !marked {
            continue;
        }
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        match edgenet_host::iptables::delete_all(chain, &args) {
            Ok(true) => report
                .removed
                .push(format!("host firewall rule {chain} {}", words.join(" "))),
            Ok(false) => {}
            Err(e) => report.errors.push(e.to_string()),
        }
    }
}

fn delete_link(nl: &mut dyn Kernel, name: &str, report: &mut RemoveReport) {
    match nl.delete_link(name) {
        Ok(true) => report.removed.push(format!("interface {name}")),
        Ok(false) => {}
        Err(e) => report.errors.push(format!("interface {name}: {e}")),
    }
}

/// Whether the node namespace `name` still has its `eth0` (its veth's other end exists).
fn node_has_eth0(name: &str) -> bool {
    let Ok(ns) = netns::NetNs::open(name) else {
        return false;
    };
    ns.run(|| {
        edgenet_host::netlink::Netlink::open()
            .and_then(|mut nl| nl.links())
            .map(|l| l.iter().any(|l| l.name == names::NODE_IFNAME))
            .unwrap_or(false)
    })
    .unwrap_or(false)
}

/// Forwarding goes back as the leftover notice says, once nothing else needs it: the value
/// handed over by an earlier remove in this namespace, else the value its deploy noted in
/// /run/edgenet when it turned forwarding on — unless another edgenet deployment (this state
/// directory's, or one marked here), Docker or another router's chain still forwards. Without
/// either, nothing says the deployment turned it on (a router's host forwarded before): it
/// stays on, and the report says how to turn it off.
fn forwarding_back(
    id: &DeploymentId,
    own_table: &str,
    nl: Option<&mut edgenet_host::netlink::Netlink>,
    state_dir: &Path,
    report: &mut RemoveReport,
) {
    let Ok(live) = sysctl::read(IP_FORWARD) else {
        return;
    };
    if live.trim() != "1" {
        return;
    }
    let deployed_here = StateDir::new(state_dir).peek_records().ok().flatten();
    let other_marked = nl
        .and_then(|nl| nl.links().ok())
        .unwrap_or_default()
        .into_iter()
        .find_map(|l| l.alias.filter(|a| a.starts_with("edgenet:")));
    let user = match (deployed_here, other_marked) {
        (Some(s), _) => Some(format!(
            "{} {} (state directory {})",
            forwarding::ANOTHER_DEPLOYMENT,
            s.deployment_id,
            state_dir.display()
        )),
        (None, Some(mark)) => Some(format!(
            "{} (links marked {mark})",
            forwarding::ANOTHER_DEPLOYMENT
        )),
        (None, None) => forwarding::other_forwarding_user(own_table),
    };
    // What forwarding was before this deployment turned it on, when its deploy noted that
    // outside the state directory; without that note, nothing says it did (it may have been
    // on before: a router, a VPN gateway), and it is left on.
    let before = forwarding::take_enabled_by(&id.to_string());
    if let Some(user) = user {
        // The last edgenet deployment here puts it back when it goes, as after a remove
        // beside it (its own records say "was 1": the orphan's doing, maybe).
        let handed_over = user.starts_with(forwarding::ANOTHER_DEPLOYMENT) && before.is_some();
        if let Some(before) = before.as_deref().filter(|_| handed_over) {
            forwarding::hand_over(before);
        }
        report.left.push(format!(
            "{IP_FORWARD} at 1 (not set back: {user} forwards through this host{})",
            if handed_over {
                "; the last edgenet deployment here sets it back to 0 when it is removed"
            } else {
                ""
            }
        ));
        return;
    }
    if let Some(restored) = forwarding::restore_handed_over(own_table) {
        report.restored.push(restored);
        return;
    }
    let Some(before) = before else {
        report.left.push(format!(
            "{IP_FORWARD} at 1: nothing says this deployment turned it on (it was on when the deployment came, or the note its deploy left in {} went with a reboot), so it stays; if nothing on this host needs forwarding, `sysctl -w {IP_FORWARD}=0`",
            edgenet_host::lock::RUN_DIR
        ));
        return;
    };
    match sysctl::write(IP_FORWARD, &before) {
        Ok(()) => report.restored.push(format!(
            "{IP_FORWARD} to {before} (its value before this deployment turned it on, noted in {}; nothing else forwards through this host)",
            edgenet_host::lock::RUN_DIR
        )),
        Err(e) => report.errors.push(e.to_string()),
    }
}

/// The report line of a marked bridge without ports of the host that carries the host's
/// configuration (routes through it other than the kernel's, or an address with a lifetime,
/// i.e. from DHCP or router advertisements); `None` for a bridge without any.
fn carries_host_config(nl: &mut dyn Kernel, bridge: &str) -> Option<String> {
    let config = nl.link_config(bridge).ok()?;
    let routes = config.describe();
    let routes: Vec<&String> = routes
        .iter()
        .filter(|d| !d.starts_with("address ") && !d.starts_with("rule "))
        .collect();
    let dynamic = config.addresses.iter().any(|a| {
        a.attributes.iter().any(|x| {
            matches!(x, netlink_packet_route::address::AddressAttribute::CacheInfo(ci) if ci.ifa_valid != u32::MAX)
        })
    });
    if routes.is_empty() && !dynamic {
        return None;
    }
    let mut what = config.address_strings();
    what.extend(routes.into_iter().cloned());
    Some(format!(
        "bridge {bridge}: it carries the host's network ({}) and no port of it is the host's adapter (unplugged, or its driver not loaded?), so nothing can take it back; move the addresses and routes to the adapter when it is back (and set `net.ipv6.conf.<adapter>.disable_ipv6` back to 0), or delete the bridge (`ip link del {bridge}`) once the host has its network on another link",
        what.join(", ")
    ))
}
