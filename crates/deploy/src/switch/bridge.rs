//! The bridge: the internal switch `aksedgesw-int` with the host's `.1`, and what both switch
//! kinds share (deleting a bridge that is ours, reading it for `status`).

use edgenet_core::mac::MacAddr;
use edgenet_core::plan::SwitchPlan;
use edgenet_host::netlink::BridgeSpec;

use super::{SwitchDriver, SwitchLive};
use crate::error::DeployError;
use crate::journal::{Journal, Ownership};
use crate::kernel::Kernel;
use crate::state::{DeploymentState, ObjectKind, ObjectStatus};

pub struct InternalSwitch {
    /// The bridge's MAC: a bridge without ports takes its MAC from the first port added; a
    /// fixed one (generated once, kept in the state) keeps the host's neighbours' caches valid
    /// across redeploys. `None` outside a deploy (remove, status).
    pub mac: Option<MacAddr>,
}

impl SwitchDriver for InternalSwitch {
    fn ensure(
        &self,
        k: &mut dyn Kernel,
        plan: &SwitchPlan,
        own: &Ownership,
        j: &mut dyn Journal,
    ) -> Result<bool, DeployError> {
        let name = plan.name.as_str();
        let mtu = plan.mtu.unwrap_or(edgenet_core::plan::DEFAULT_INTERNAL_MTU);
        let mut made = false;
        match k.link(name)? {
            None => {
                create_marked_bridge(k, name, mtu, self.mac, own, j, NewBridge::Up)?;
                j.changed(format!("created bridge {name} (MTU {mtu})"));
                made = true;
            }
            Some(link) => {
                // The group alone (no alias yet) is ours only with our record: a run stopped
                // between creating the bridge and marking it.
                let ours = link.alias.as_deref() == Some(own.alias.as_str())
                    || (link.group == own.group && j.pending(ObjectKind::Bridge, name, None));
                if !ours || link.kind.as_deref() != Some("bridge") {
                    let what = link.kind.clone().unwrap_or_else(|| "device".into());
                    let hint = match link.alias.as_deref() {
                        Some(mark) if mark.starts_with("edgenet:") => format!(
                            "{name} is a {what} of another edgenet deployment (mark {mark}: one beside this one with its own state directory, or one whose state directory is gone; this state directory's is {}); run `edgenet remove` with that deployment's --state-dir, or set Edgenet.SwitchName to another name",
                            own.alias
                        ),
                        _ => format!(
                            "{name} is a {what} edgenet did not create; set Edgenet.SwitchName to a name no interface has"
                        ),
                    };
                    return Err(DeployError::Foreign {
                        what: "interface",
                        name: name.to_string(),
                        hint,
                    });
                }
                if link.alias.as_deref() != Some(own.alias.as_str()) {
                    k.set_alias(name, &own.alias)?;
                    j.created(ObjectKind::Bridge, name, None)?;
                }
                if link.mtu != mtu {
                    k.set_mtu(name, mtu)?;
                    j.changed(format!("set MTU {mtu} on {name} (was {})", link.mtu));
                }
                if let Some(mac) = self.mac.filter(|m| link.mac != Some(*m)) {
                    k.set_mac(name, mac)?;
                    j.changed(format!("set MAC {mac} on {name}"));
                }
                if !link.up {
                    k.set_up(name, true)?;
                    j.changed(format!("brought {name} up"));
                }
            }
        }
        j.step("switch")?;

        let wanted = plan
            .host_address
            .expect("an internal switch has a host address");
        let present = k.addresses_of(name)?;
        for stale in present.iter().filter(|a| **a != wanted) {
            k.del_address(name, *stale)?;
            j.changed(format!("removed address {stale} from {name}"));
        }
        if !present.contains(&wanted) {
            k.add_address(name, wanted)?;
            j.changed(format!("added address {wanted} to {name}"));
        }
        j.step("switch-address")?;
        Ok(made)
    }

    fn release(&self, _k: &mut dyn Kernel, _own: &Ownership) -> Result<Vec<String>, DeployError> {
        Ok(Vec::new())
    }

    fn remove(&self, k: &mut dyn Kernel, name: &str, own: &Ownership) -> Result<bool, DeployError> {
        delete_bridge(k, name, own)
    }

    fn live(
        &self,
        k: &mut dyn Kernel,
        name: &str,
        own: &Ownership,
    ) -> Result<SwitchLive, DeployError> {
        bridge_live(k, name, own)
    }
}

/// Deletes the bridge `name` if it carries our mark; `Ok(false)` when it is gone already.
/// What [`create_marked_bridge`] leaves the new bridge as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NewBridge {
    /// Up at once.
    Up,
    /// Down: the caller brings it up (a deploy that stops before finds it down and brings it
    /// up). Without `own_link_local`, the mark goes on with `addrgenmode none` in the same
    /// request: the bridge makes no IPv6 link-local address of its own when it comes up, and
    /// takes the adapter's (see `super::external`).
    Down { own_link_local: bool },
}

/// Creates bridge `name` with this deployment's mark and group, recorded before and after:
/// the part both switch kinds share; up, or down, as `then` says.
pub(crate) fn create_marked_bridge(
    k: &mut dyn Kernel,
    name: &str,
    mtu: u32,
    mac: Option<MacAddr>,
    own: &Ownership,
    j: &mut dyn Journal,
    then: NewBridge,
) -> Result<(), DeployError> {
    j.will_make(ObjectKind::Bridge, name, None)?;
    k.create_bridge(&BridgeSpec {
        name,
        mtu: Some(mtu),
        mac,
        group: Some(own.group),
        // A switch of a few node ports gains nothing from snooping, and with it on every
        // machine joins the all-snoopers groups on its LAN and a node gets a group only if
        // the switch saw its report (README, "The switch and multicast").
        multicast_snooping: Some(false),
    })?;
    // The kernel ignores an alias at creation: a kill here leaves the bridge with only the
    // group and a pending record, which the next deploy and remove know as ours.
    j.step("switch-made")?;
    match then {
        NewBridge::Down {
            own_link_local: false,
        } => k.set_port_alias(name, &own.alias)?,
        _ => k.set_alias(name, &own.alias)?,
    }
    if then == NewBridge::Up {
        k.set_up(name, true)?;
    }
    j.created(ObjectKind::Bridge, name, None)?;
    Ok(())
}

pub(crate) fn delete_bridge(
    k: &mut dyn Kernel,
    name: &str,
    own: &Ownership,
) -> Result<bool, DeployError> {
    match k.link(name)? {
        Some(link) if own.owns(&link) => Ok(k.delete_link(name)?),
        Some(_) => Err(DeployError::Foreign {
            what: "interface",
            name: name.to_string(),
            hint: "it no longer carries this deployment's mark, so remove leaves it in place"
                .into(),
        }),
        None => Ok(false),
    }
}

/// The bridge a run of this deployment made and was stopped before marking (killed between
/// creating it and setting its alias, which the kernel ignores at creation): recorded as
/// pending, a bridge in the deployment's link group, without an alias. Deploy finishes it.
pub fn unmarked_own_bridge(state: &DeploymentState) -> Option<String> {
    let group = crate::names::link_group(&state.deployment_id);
    let mut pending = state
        .objects
        .iter()
        .filter(|o| o.kind == ObjectKind::Bridge && o.status == ObjectStatus::Pending)
        .peekable();
    // No socket for a state without one (every run but one stopped mid-deploy).
    pending.peek()?;
    let mut k = crate::kernel::open().ok()?;
    pending
        .find(|o| {
            k.link(&o.name).ok().flatten().is_some_and(|l| {
                l.kind.as_deref() == Some("bridge") && l.alias.is_none() && l.group == group
            })
        })
        .map(|o| o.name.clone())
}

/// The bridge as the kernel has it.
pub(crate) fn bridge_live(
    k: &mut dyn Kernel,
    name: &str,
    own: &Ownership,
) -> Result<SwitchLive, DeployError> {
    let link = k.link(name)?;
    let addresses = match &link {
        Some(_) => k
            .addresses_of(name)?
            .into_iter()
            .map(|a| a.to_string())
            .collect(),
        None => Vec::new(),
    };
    Ok(SwitchLive {
        name: name.to_string(),
        present: link.is_some(),
        ours: link.as_ref().is_some_and(|l| own.owns(l)),
        up: link.as_ref().is_some_and(|l| l.up),
        mtu: link.as_ref().map(|l| l.mtu),
        mac: link.as_ref().and_then(|l| l.mac.map(|m| m.to_string())),
        addresses,
        adapter: None,
        adapter_carrier: None,
    })
}
