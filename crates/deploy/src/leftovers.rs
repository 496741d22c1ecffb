//! Leftovers of another edgenet deployment in this network namespace: links marked
//! `edgenet:<other id>`, nftables tables `edgenet_<other id>`, and QEMU processes of `vm`
//! nodes whose state directory is gone (deleted while they ran). Nothing records them any
//! more, so no edgenet run removes them; deploy and status name them with the command that
//! deletes each. Read only: nothing here is adopted or touched.

use std::path::Path;

use crate::kernel::Kernel;
use edgenet_host::qemu;

use crate::firewall::TABLE_PREFIX;

/// One sentence per leftover, with its cleanup command, and one per whole deployment beside
/// this one (see [`Found`]). `own`: this deployment's id (its objects are not leftovers);
/// `None` when this state directory has no deployment.
pub fn leftovers(nl: &mut dyn Kernel, own: Option<&str>) -> Vec<Found> {
    let (mut found, ids) = kernel_leftovers(nl, own);
    found.extend(orphan_qemus().into_iter().map(|q| {
        // Only what is still here is named as the rest to delete (B26 F9: after `remove
        // --orphan` took the tap and tables, the notice still asked for them).
        let rest = if q
            .id
            .as_deref()
            .is_some_and(|id| ids.iter().any(|i| i == id))
        {
            format!(
                "; the rest of that deployment named here goes with `edgenet remove --orphan {}`",
                q.id.as_deref().unwrap_or_default()
            )
        } else {
            String::new()
        };
        Found::leftover(format!("{}{rest}", q.text()))
    }));
    found
}

/// What [`leftovers`] found: a leftover (with the command that deletes it) or, `beside`, a
/// whole other deployment (no delete command: it is likely alive, with its own state
/// directory and its own `edgenet remove`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub text: String,
    pub beside: bool,
}

impl Found {
    fn leftover(text: String) -> Found {
        Found {
            text,
            beside: false,
        }
    }
}

/// The texts of `found`, for reports that list both kinds alike (status's notices).
pub fn texts(found: Vec<Found>) -> impl Iterator<Item = String> {
    found.into_iter().map(|f| f.text)
}

/// What carries the mark of one other deployment in this namespace.
#[derive(Default)]
struct Other {
    id: String,
    /// Its marked links: (name, kind, master, up).
    links: Vec<(String, Option<String>, Option<String>, bool)>,
    /// Its tables: (family, name).
    tables: Vec<(String, String)>,
}

impl Other {
    /// Its bridge when the deployment is whole (the rule edgenet decides "beside" by, with no
    /// registry of state directories): one marked bridge, up, with at least one node's link
    /// (veth or tap) on it, every other link of its mark a port of that bridge, and at least
    /// one nftables table of its id. Parts of one (a bridge alone, tables alone, a node link
    /// off its bridge) are leftovers.
    fn whole(&self) -> Option<&str> {
        let bridges: Vec<&(String, Option<String>, Option<String>, bool)> = self
            .links
            .iter()
            .filter(|l| l.1.as_deref() == Some("bridge"))
            .collect();
        let [(bridge, _, _, up)] = bridges.as_slice() else {
            return None;
        };
        let ports = self
            .links
            .iter()
            .filter(|l| l.1.as_deref() != Some("bridge"));
        let mut any = false;
        for port in ports {
            if port.2.as_deref() != Some(bridge.as_str()) {
                return None;
            }
            any = true;
        }
        (*up && any && !self.tables.is_empty()).then_some(bridge.as_str())
    }
}

/// [`leftovers`] without the look for orphaned QEMUs (a scan of every process): for a deploy
/// of `netns` nodes, which start no QEMU (`check`, `status` and `doctor` still look).
///
/// A whole deployment of another id (see `Other::whole`) is one sentence, "beside this one",
/// when this state directory holds a deployment (or /var/lib/edgenet holds that one); when
/// neither, the whole one may be the deployment whose state directory this was (deleted), so
/// its parts are listed as leftovers.
pub fn leftovers_in_kernel(nl: &mut dyn Kernel, own: Option<&str>) -> Vec<Found> {
    kernel_leftovers(nl, own).0
}

/// [`leftovers_in_kernel`], and the ids of the deployments whose leftovers it lists (not those
/// beside this one).
fn kernel_leftovers(nl: &mut dyn Kernel, own: Option<&str>) -> (Vec<Found>, Vec<String>) {
    let mut others: Vec<Other> = Vec::new();
    let mut other = |id: &str| -> Option<usize> {
        if own == Some(id) {
            return None;
        }
        Some(match others.iter().position(|o| o.id == id) {
            Some(i) => i,
            None => {
                others.push(Other {
                    id: id.to_string(),
                    ..Other::default()
                });
                others.len() - 1
            }
        })
    };
    let links = nl.links().unwrap_or_default();
    let mut order: Vec<(usize, &edgenet_host::netlink::Link)> = Vec::new();
    for l in &links {
        let Some(id) = l.alias.as_deref().and_then(|a| a.strip_prefix("edgenet:")) else {
            continue;
        };
        if let Some(i) = other(id) {
            order.push((i, l));
        }
    }
    // Table names only: a whole listing of a big host ruleset costs seconds and megabytes.
    let tables: Vec<(usize, String, String)> = edgenet_host::nft::Nft::new()
        .list_tables()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(family, name)| {
            let id = name.strip_prefix(TABLE_PREFIX)?.to_string();
            other(&id).map(|i| (i, family, name))
        })
        .collect();
    for (i, l) in &order {
        others[*i]
            .links
            .push((l.name.clone(), l.kind.clone(), l.master.clone(), l.up));
    }
    for (i, family, name) in &tables {
        others[*i].tables.push((family.clone(), name.clone()));
    }
    // A whole deployment /var/lib/edgenet holds is alive, whichever state directory this is.
    let in_default_dir = |id: &str| {
        id.parse::<crate::state::DeploymentId>()
            .ok()
            .and_then(|id| crate::orphan::owner_of(&id, Path::new(crate::state::DEFAULT_STATE_DIR)))
            .is_some()
    };
    let beside: Vec<bool> = others
        .iter()
        .map(|o| o.whole().is_some() && (own.is_some() || in_default_dir(&o.id)))
        .collect();

    let mut found = Vec::new();
    for (o, beside) in others.iter().zip(&beside) {
        if !beside {
            continue;
        }
        let bridge = o.whole().unwrap_or_default();
        let tables: Vec<String> = o.tables.iter().map(|(f, n)| format!("{f} {n}")).collect();
        let nodes = o.links.len() - 1;
        found.push(Found {
            text: format!(
                "another edgenet deployment (id {}) beside this one: bridge {bridge} with {nodes} node link(s) and nftables table(s) {}; it has its own state directory and its own `edgenet remove`; edgenet leaves it as it is",
                o.id,
                tables.join(", ")
            ),
            beside: true,
        });
    }
    for (i, l) in &order {
        if beside[*i] {
            continue;
        }
        let id = &others[*i].id;
        // An external switch's bridge holds the host's adapter, and the host's addresses
        // moved to it: `remove --orphan` leaves it (what to give back was in the lost
        // state), so the notice says what to do by hand.
        let foreign_ports: Vec<&str> = links
            .iter()
            .filter(|p| {
                p.master.as_deref() == Some(l.name.as_str())
                    && p.alias.as_deref() != l.alias.as_deref()
            })
            .map(|p| p.name.as_str())
            .collect();
        found.push(Found::leftover(if !foreign_ports.is_empty() {
            format!(
                "bridge {} carries the mark of edgenet deployment {id}, not this state directory's (a deployment beside this one with its own state directory, or one whose state directory is gone), and holds {} (an external switch: the host's addresses and routes are on the bridge): edgenet leaves it; if that deployment is gone, move the addresses and routes back to {}, set `net.ipv6.conf.{}.disable_ipv6` back to 0, then `ip link del {}` (`edgenet remove --orphan {id}` deletes the rest of it, not this bridge), else its own `edgenet remove` does",
                l.name,
                foreign_ports.join(", "),
                foreign_ports.join(", "),
                foreign_ports[0],
                l.name
            )
        } else {
            format!(
                "interface {} carries the mark of edgenet deployment {id}, not this state directory's (a deployment beside this one with its own state directory, or one whose state directory is gone): edgenet leaves it; if that deployment is gone, `edgenet remove --orphan {id}` deletes everything carrying its mark here (this one by hand: `ip link del {}`), else its own `edgenet remove` does",
                l.name, l.name
            )
        }));
    }
    for (i, family, name) in &tables {
        if beside[*i] {
            continue;
        }
        let id = &others[*i].id;
        found.push(Found::leftover(format!(
            "nftables table {family} {name} is edgenet deployment {id}'s, not this state directory's (a deployment beside this one with its own state directory, or one whose state directory is gone): edgenet leaves it; if that deployment is gone, `edgenet remove --orphan {id}` deletes everything carrying its mark here (this one by hand: `nft delete table {family} {name}`), else its own `edgenet remove` does"
        )));
    }
    let mut ids = Vec::new();
    for (o, beside) in others.iter().zip(&beside) {
        if !beside {
            found.extend(node_namespaces_of(&o.id).into_iter().map(Found::leftover));
            ids.push(o.id.clone());
        }
    }
    (found, ids)
}

/// The node namespaces (`<node>-<id>`, marked `edgenet:<id>` on their `eth0`) of a deployment
/// met here as a leftover (B19 D4: after its state directory was lost, they were named
/// nowhere), and the forwarding it may have turned on. Only for ids already found by their
/// links or tables in this namespace: named namespaces are shared by every network
/// namespace of the host, so an id alone says which are this one's.
fn node_namespaces_of(id: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(deployment) = id.parse::<crate::state::DeploymentId>() else {
        return found;
    };
    let own = crate::journal::Ownership {
        alias: crate::names::alias(&deployment),
        group: crate::names::link_group(&deployment),
    };
    let suffix = format!("-{id}");
    for name in edgenet_host::netns::list().unwrap_or_default() {
        if !name.ends_with(&suffix)
            || !crate::node::netns::netns_is_ours(&name, &own).unwrap_or(false)
        {
            continue;
        }
        found.push(format!(
            "network namespace {name} is a node of edgenet deployment {id}, not this state directory's (a deployment beside this one with its own state directory, or one whose state directory is gone): edgenet leaves it; if that deployment is gone, `edgenet remove --orphan {id}` deletes everything carrying its mark here (this one by hand: `ip netns del {name}`), else its own `edgenet remove` does"
        ));
    }
    let forwarding = edgenet_host::sysctl::read(crate::forwarding::IP_FORWARD).unwrap_or_default();
    if forwarding.trim() == "1" {
        found.push(format!(
            "{} is 1: edgenet deployment {id} may have turned it on, and the value from before it is recorded only in its state directory; if that deployment is gone, `edgenet remove --orphan {id}` sets it back once nothing else routes through this host, if that deployment's deploy noted that it turned it on (in /run/edgenet, since the last boot), else leaves it on (by hand: `sysctl -w {}=0`)",
            crate::forwarding::IP_FORWARD,
            crate::forwarding::IP_FORWARD
        ));
    }
    found
}

/// A QEMU of a `vm` node whose state directory no longer holds its deployment (see
/// [`orphan_qemus`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanQemu {
    pub pid: u32,
    /// Its VM's directory name, `<node>-<id>`.
    pub guest: String,
    /// The deployment id its directory name ends in, when it has one.
    pub id: Option<String>,
    pub state_dir: std::path::PathBuf,
}

impl OrphanQemu {
    /// The leftover notice, with the command that stops it.
    pub fn text(&self) -> String {
        format!(
            "QEMU (pid {}) runs VM {} of a deployment that state directory {} no longer holds (it was deleted), so no edgenet run stops it: stop it (`kill {}`)",
            self.pid,
            self.guest,
            self.state_dir.display(),
            self.pid
        )
    }
}

/// QEMU processes in this network namespace started by edgenet for a `vm` node (pidfile
/// `<state dir>/vm/<guest>/qemu.pid`) whose state directory no longer holds a deployment.
pub fn orphan_qemus() -> Vec<OrphanQemu> {
    let netns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
    let ours = netns("self");
    let mut found = Vec::new();
    for pid in edgenet_host::procfs::pids() {
        let Some(pidfile) = qemu::qemu_pidfile_arg(pid) else {
            continue;
        };
        let pidfile = Path::new(&pidfile);
        let Some(vm_dir) = pidfile
            .file_name()
            .filter(|n| *n == "qemu.pid")
            .and(pidfile.parent())
        else {
            continue;
        };
        let Some(state_dir) = vm_dir
            .parent()
            .filter(|p| p.file_name().is_some_and(|n| n == "vm"))
            .and_then(Path::parent)
        else {
            continue;
        };
        // Its guest directory is `<node>-<id>`: still a deployment's while the state directory
        // holds that id (a QEMU whose own directory was deleted is then deploy's to repair).
        let recorded = crate::state::StateDir::new(state_dir)
            .peek()
            .ok()
            .flatten()
            .map(|s| s.deployment_id.to_string());
        let guest = vm_dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let still_recorded = recorded.is_some_and(|id| guest.ends_with(&format!("-{id}")));
        if still_recorded || netns(&pid.to_string()) != ours {
            continue;
        }
        let id = guest
            .rsplit_once('-')
            .map(|(_, id)| id.to_string())
            .filter(|id| id.parse::<crate::state::DeploymentId>().is_ok());
        found.push(OrphanQemu {
            pid,
            guest,
            id,
            state_dir: state_dir.to_path_buf(),
        });
    }
    found
}
