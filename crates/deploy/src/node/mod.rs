//! Node runtimes behind one small trait: how a node guest is made and joined to the switch.
//! `netns`: a named network namespace per node, joined by a veth; `vm`: a QEMU virtual
//! machine per node, joined by a tap. [`runtime`] picks the plan's.

pub mod connected_route;
pub mod files;
pub(crate) mod netns;
pub mod processes;
pub mod seed;
pub mod stray_routes;
pub mod vm;
pub mod vm_launch;

pub use self::netns::{links_are_ours as netns_links_are_ours, NetnsRuntime};
pub use self::vm::VmRuntime;

use std::path::Path;

use edgenet_core::config::NodeRuntime as RuntimeKind;
use edgenet_core::mac::MacAddr;
use edgenet_core::plan::{NodePlan, Plan};

use crate::error::DeployError;
use crate::journal::{Journal, Ownership};
use crate::kernel::Kernel;
use crate::state::{KernelObject, ObjectKind};

/// One node as the runtime builds it: the plan plus the names and MAC the deployment fixed.
#[derive(Debug, Clone)]
pub struct NodeSpec<'a> {
    pub plan: &'a NodePlan,
    /// The guest's name: the network namespace (`netns`) or the VM (`vm`), `<node>-<id>`.
    pub guest: String,
    /// The host end of the node's link, a port of the switch: a veth (`netns`) or a tap (`vm`).
    pub host_link: String,
    pub mac: MacAddr,
    pub mtu: u32,
    pub switch: &'a str,
    /// The switch port in hairpin mode: on a NAT switch with port forwards (see `join_switch`).
    pub hairpin: bool,
}

/// A deployed node, by its names: what `remove` and `live` need.
#[derive(Debug, Clone, Copy)]
pub struct NodeRef<'a> {
    pub name: &'a str,
    pub guest: &'a str,
    pub host_link: &'a str,
    pub switch: &'a str,
}

/// A node's interface as the kernel has it, for `status`, `node addr` and drift.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeLive {
    pub name: String,
    /// The guest's name (network namespace or VM).
    pub netns: String,
    pub present: bool,
    pub up: bool,
    pub addresses: Vec<String>,
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    pub gateway: Option<String>,
    /// The host end is a port of the switch.
    pub on_switch: bool,
    /// A `netns` node's `lo` is down (its own services are unreachable to itself).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lo_down: bool,
    /// A `vm` node's QEMU, as QMP and the guest agent report it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm: Option<VmLive>,
}

impl NodeLive {
    /// A node whose guest is not there.
    pub fn absent(name: &str, guest: &str) -> Self {
        NodeLive {
            name: name.to_string(),
            netns: guest.to_string(),
            present: false,
            up: false,
            addresses: Vec::new(),
            mac: None,
            mtu: None,
            gateway: None,
            on_switch: false,
            lo_down: false,
            vm: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VmLive {
    /// QEMU's PID (from its pidfile, checked to be that QEMU); `None`: not running.
    pub pid: Option<u32>,
    /// The accelerator its QEMU runs with (`kvm`/`tcg`, from its command line in /proc);
    /// `None`: not running, or not readable.
    pub accel: Option<edgenet_host::qemu::Accel>,
    /// QMP's run state (`running`, `paused`, `shutdown`, ...) or `not running`.
    pub run_state: String,
    /// The guest agent answered (the interface facts come from it).
    pub agent: bool,
    /// `up`; `booting` (no answer yet, within [`vm::BOOT_GRACE`] of QEMU's start); `busy`
    /// (another edgenet command holds its socket); `not answering`; `-` (no QEMU).
    pub agent_state: String,
    /// Seconds since QEMU started (its pidfile was written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime: Option<u64>,
    /// Its cloud-init seed was rewritten after QEMU started: the guest has not applied it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub seed_pending: bool,
}

pub trait NodeRuntime {
    fn ensure(
        &self,
        nl: &mut dyn Kernel,
        node: &NodeSpec<'_>,
        own: &Ownership,
        j: &mut dyn Journal,
    ) -> Result<(), DeployError>;
    /// Deletes the node's guest (and with it its end of the link).
    fn remove(&self, k: &mut dyn Kernel, node: &NodeRef<'_>) -> Result<bool, DeployError>;
    fn live(&self, nl: &mut dyn Kernel, node: &NodeRef<'_>) -> Result<NodeLive, DeployError>;
}

/// The runtime of `kind` (deploy and status: the plan's `Edgenet.NodeRuntime`; remove: the
/// one that made a recorded guest, see [`remove_guest`]). The `vm` runtime's image is checked
/// when a node is made ([`vm::Image::from_plan`]; deploy checks it before anything changes).
pub fn runtime(kind: RuntimeKind, plan: &Plan, state_dir: &Path) -> Box<dyn NodeRuntime> {
    match kind {
        RuntimeKind::Netns => Box::new(NetnsRuntime),
        RuntimeKind::Vm => Box::new(VmRuntime {
            state_dir: state_dir.to_path_buf(),
            image: vm::Image::from_plan(plan).ok(),
            plan: plan.clone(),
        }),
    }
}

/// Deletes a recorded guest (a `Netns` or `Vm` record) with the runtime that made it, whatever
/// the plan says now; `None` for other records. `plan` is the deployment's (a `vm` record
/// without one is stopped by its directory).
pub fn remove_guest(
    k: &mut dyn Kernel,
    o: &KernelObject,
    plan: Option<&Plan>,
    state_dir: &Path,
) -> Option<Result<bool, DeployError>> {
    let (kind, guest) = match o.kind {
        ObjectKind::Netns => (RuntimeKind::Netns, o.name.as_str()),
        ObjectKind::Vm => {
            let dir = Path::new(&o.name);
            let guest = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
            match plan {
                // The record names the VM's directory: `<state dir>/vm/<guest>`.
                Some(_) if vm::vm_dir(state_dir, guest) == dir => (RuntimeKind::Vm, guest),
                _ => return Some(vm::stop(dir)),
            }
        }
        _ => return None,
    };
    let node = NodeRef {
        name: guest,
        guest,
        host_link: "",
        switch: "",
    };
    Some(match plan {
        Some(plan) => runtime(kind, plan, state_dir).remove(k, &node),
        None => NetnsRuntime.remove(k, &node),
    })
}

/// Makes the host end `name` of a node's link a port of `switch`, and up. `fresh`: the caller
/// has just created it (no master, down), so it is not asked for: a GetLink of a link whose
/// carrier-off event is still pending runs that event under RTNL, and taking a link down waits
/// for a grace period (`dev_deactivate`); once it is up with a carrier, the kernel's own
/// link watch finds nothing to take down.
pub(crate) fn join_switch(
    nl: &mut dyn Kernel,
    name: &str,
    switch: &str,
    hairpin: bool,
    j: &mut dyn Journal,
    fresh: bool,
) -> Result<(), DeployError> {
    if fresh {
        nl.set_master(name, Some(switch))?;
        j.changed(format!("attached {name} to {switch}"));
        if hairpin {
            nl.set_hairpin(name, true)?;
        }
        nl.set_up(name, true)?;
        return Ok(());
    }
    let link = nl.link(name)?.expect("the caller just ensured it");
    join_switch_found(nl, &link, switch, hairpin, j)
}

/// [`join_switch`] with the link as the caller just read it (its master and state unchanged
/// since): not asked for again.
pub(crate) fn join_switch_found(
    nl: &mut dyn Kernel,
    link: &edgenet_host::netlink::Link,
    switch: &str,
    hairpin: bool,
    j: &mut dyn Journal,
) -> Result<(), DeployError> {
    let name = link.name.as_str();
    let attached = link.master.as_deref() == Some(switch);
    if !attached {
        nl.set_master(name, Some(switch))?;
        j.changed(format!("attached {name} to {switch}"));
    }
    // Hairpin (as Docker and CNI's `hairpinMode` do), only where port forwards are hairpinned:
    // a node's connection to a forward that leads back to itself leaves by the port it came in
    // on when the host bridges its DNAT (`bridge-nf-call-iptables=1`). Part of attaching; a
    // change only on a port that was.
    let live = attached && link.hairpin;
    if live != hairpin && (attached || hairpin) {
        nl.set_hairpin(name, hairpin)?;
        if attached {
            let state = if hairpin { "on" } else { "off" };
            j.changed(format!("set hairpin {state} on {name}"));
        }
    }
    if !link.up {
        nl.set_up(name, true)?;
        j.changed(format!("brought {name} up"));
    }
    Ok(())
}

/// The host end of a node's link (`en<id>l`, a veth or a VM's tap) under this deployment's
/// name but not its own: neither its mark nor its link group (in its group without the mark
/// is a run stopped before marking it, which deploy finishes). Found before anything changes
/// (B19 D5: met halfway through deploy, it left the adapter taken over).
pub fn foreign_host_link(
    k: &mut dyn Kernel,
    name: &str,
    own: &Ownership,
) -> Result<Option<edgenet_host::netlink::Link>, edgenet_host::HostError> {
    Ok(k.link(name)?.filter(|l| !own.owns(l)))
}

/// What to do about a [`foreign_host_link`]: the words `status` and `deploy` both use.
pub fn foreign_host_link_hint(link: &edgenet_host::netlink::Link, own: &Ownership) -> String {
    let what = link.kind.as_deref().unwrap_or("device");
    let name = &link.name;
    match link.alias.as_deref() {
        Some(mark) if mark.starts_with("edgenet:") => format!(
            "interface {name} (a {what}) exists but carries another edgenet deployment's mark ({mark}), not this one's ({}): run `edgenet remove` with that deployment's --state-dir, or if that deployment is gone `edgenet remove --orphan {}` (everything carrying its mark; this one alone: `ip link del {name}`)",
            own.alias,
            mark.trim_start_matches("edgenet:")
        ),
        _ => format!(
            "interface {name} (a {what}) exists but does not carry this deployment's mark ({}): another tool made it under the name of this deployment's node link; delete it if it is left over (`ip link del {name}`)",
            own.alias
        ),
    }
}
