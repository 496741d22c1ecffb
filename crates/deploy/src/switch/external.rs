//! The external switch (scalable clusters): a bridge with the machine's adapter as its port.
//! The bridge takes the adapter's MAC and the host's configuration (see [`super::adapter`]),
//! so the machine keeps its connectivity and its DHCP lease.

use edgenet_core::plan::SwitchPlan;
use edgenet_host::link_config::SavedLinkConfig;

use super::adapter::{
    keep_host_config, move_addressing, restore_adapter, restore_on_bridge, AdapterRecord,
    AdapterSnapshot, OwnAddresses,
};
use super::bridge::{bridge_live, create_marked_bridge, delete_bridge};
use super::{SwitchDriver, SwitchLive};
use crate::error::DeployError;
use crate::journal::{Journal, Ownership};
use crate::kernel::Kernel;
use crate::state::{DeploymentState, ObjectKind, ObjectStatus};

pub struct ExternalSwitch {
    pub bridge: String,
    /// The adapter before the first change (from the state's record); `None` when a
    /// user-made bridge already has the adapter as its port and is used as it is.
    pub snapshot: Option<AdapterSnapshot>,
    /// The bridge is the user's (recorded as adopted): used, never deleted.
    pub users_bridge: bool,
    /// The host's configuration on the bridge as last recorded: what goes back on the adapter
    /// when neither link has it (the bridge was deleted by hand).
    pub moved: Option<SavedLinkConfig>,
    /// Set by `ensure` when it made the bridge or moved the adapter's configuration to it:
    /// the record of the host's configuration is taken again (see [`keep_host_config`]).
    moved_now: std::cell::Cell<bool>,
    /// The deployment's own addresses and MACs: the adapter's neighbour entries for them are
    /// not carried to the bridge.
    pub ours: OwnAddresses,
}

impl ExternalSwitch {
    /// The switch `bridge` as the state records it (see [`super::adapter::adopt_adapter`]).
    pub fn from_state(bridge: &str, state: &DeploymentState) -> ExternalSwitch {
        let record = state
            .objects
            .iter()
            .filter_map(AdapterRecord::of)
            .find(|r| r.bridge == bridge);
        ExternalSwitch {
            bridge: bridge.to_string(),
            snapshot: record.as_ref().map(|r| r.adapter.clone()),
            users_bridge: state
                .object(ObjectKind::Bridge, bridge, None)
                .is_some_and(|o| o.status == ObjectStatus::Adopted),
            moved: record.and_then(|r| r.moved),
            moved_now: std::cell::Cell::new(false),
            ours: OwnAddresses::of(
                state.pending_plan.as_ref().or(state.applied_plan.as_ref()),
                state,
            ),
        }
    }

    /// The switch of `record` to give its adapter back (`remove`): the bridge is never the
    /// user's there.
    pub fn to_release(record: &AdapterRecord) -> ExternalSwitch {
        ExternalSwitch {
            bridge: record.bridge.clone(),
            snapshot: Some(record.adapter.clone()),
            users_bridge: false,
            moved: record.moved.clone(),
            moved_now: std::cell::Cell::new(false),
            ours: OwnAddresses::default(),
        }
    }

    /// The switch of one adapter record (the state may record more than one).
    pub fn from_record(record: &AdapterRecord, state: &DeploymentState) -> ExternalSwitch {
        ExternalSwitch {
            bridge: record.bridge.clone(),
            snapshot: Some(record.adapter.clone()),
            users_bridge: state
                .object(ObjectKind::Bridge, &record.bridge, None)
                .is_some_and(|o| o.status == ObjectStatus::Adopted),
            moved: record.moved.clone(),
            moved_now: std::cell::Cell::new(false),
            ours: OwnAddresses::of(
                state.pending_plan.as_ref().or(state.applied_plan.as_ref()),
                state,
            ),
        }
    }
}

impl SwitchDriver for ExternalSwitch {
    fn ensure(
        &self,
        k: &mut dyn Kernel,
        plan: &SwitchPlan,
        own: &Ownership,
        j: &mut dyn Journal,
    ) -> Result<bool, DeployError> {
        let name = plan.name.as_str();
        let Some(snap) = self.snapshot.as_ref() else {
            // A bridge the user made, with the adapter as its port: used as it is, except for
            // addresses left on the port, unreachable there (status says so): they move to
            // the bridge.
            j.step("switch")?;
            j.step("switch-adapter")?;
            if let Some(adapter) = plan.adapter.as_deref() {
                let is_port = k
                    .link(adapter)?
                    .is_some_and(|a| a.master.as_deref() == Some(name));
                if is_port && !k.link_config(adapter)?.addresses.is_empty() {
                    let moved = k.move_link_config(adapter, name)?;
                    for item in moved.describe() {
                        j.changed(format!("moved {item} from {adapter} to {name}"));
                    }
                }
            }
            j.step("switch-address")?;
            return Ok(false);
        };
        let adapter = snap.name.as_str();
        let mtu = plan.mtu.unwrap_or(snap.mtu);
        // A new bridge comes up only once the adapter is its port: up without a port it has
        // no carrier, and the GetLink that finds it for the port would run that link-state
        // event under RTNL (linkwatch: an RCU grace period every other deploy on the host
        // waits for); up with its port it has carrier from the start.
        let mut bring_up = false;
        let mut found = false;
        match k.link(name)? {
            None => {
                // The adapter's MAC: the LAN (and its DHCP server) keeps seeing the same host.
                create_marked_bridge(k, name, mtu, snap.mac, own, j, false)?;
                bring_up = true;
                j.changed(format!(
                    "created bridge {name} with {adapter}'s MAC (MTU {mtu})"
                ));
            }
            Some(link) if own.owns(&link) && link.kind.as_deref() == Some("bridge") => {
                found = true;
                if link.mtu != mtu {
                    k.set_mtu(name, mtu)?;
                    j.changed(format!("set MTU {mtu} on {name} (was {})", link.mtu));
                }
                // The adapter's MAC (changed by hand, or an adapter the plan changed).
                if let Some(mac) = snap.mac.filter(|m| link.mac != Some(*m)) {
                    k.set_mac(name, mac)?;
                    j.changed(format!(
                        "set MAC {mac} ({adapter}'s) on {name} back (it had {})",
                        link.mac.map(|m| m.to_string()).unwrap_or_else(|| "none".into())
                    ));
                }
                if !link.up {
                    k.set_up(name, true)?;
                    j.changed(format!("brought {name} up"));
                }
            }
            Some(_) => {
                return Err(DeployError::Foreign {
                    what: "interface",
                    name: name.to_string(),
                    hint: format!("{name} exists without {adapter} as its port and was not made by edgenet; make {adapter} its port to use it, or set Edgenet.SwitchName to another name"),
                })
            }
        }
        j.step("switch")?;

        let link = k
            .link(adapter)?
            .ok_or_else(|| DeployError::missing("adapter", adapter, "vanished"))?;
        if link.master.as_deref() != Some(name) {
            k.set_master(adapter, Some(name))?;
            j.changed(format!("made {adapter} a port of {name}"));
        }
        if !link.up {
            k.set_up(adapter, true)?;
        }
        if bring_up {
            k.set_up(name, true)?;
        }
        j.step("switch-adapter")?;

        if move_addressing(k, snap, name, &self.ours, j)? || !found {
            self.moved_now.set(true);
        }
        // A bridge set down by hand lost its routes (the kernel flushes them) and its IPv6
        // addresses; bringing it up gives back neither: the record does. (A bridge made now
        // gets the record back when neither link has any address, see `keep_host_config`.)
        if let Some(recorded) = self.moved.as_ref().filter(|_| found) {
            restore_on_bridge(k, recorded, name, adapter, j)?;
        }
        j.step("switch-address")?;
        Ok(!found)
    }

    /// The adapter gets the host's configuration back while it is still a port.
    fn release(&self, k: &mut dyn Kernel, own: &Ownership) -> Result<Vec<String>, DeployError> {
        match &self.snapshot {
            Some(snap) => restore_adapter(k, snap, self.moved.as_ref(), &self.bridge, own),
            None => Ok(Vec::new()),
        }
    }

    /// A bridge the user made is used, never deleted; ours goes once released.
    fn remove(&self, k: &mut dyn Kernel, name: &str, own: &Ownership) -> Result<bool, DeployError> {
        if self.users_bridge && name == self.bridge {
            return Ok(false);
        }
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

    fn settle(
        &self,
        k: &mut dyn Kernel,
        state: &mut DeploymentState,
        plan: &SwitchPlan,
    ) -> Result<(Vec<String>, bool), DeployError> {
        if self.snapshot.is_none() {
            return Ok((Vec::new(), false));
        }
        keep_host_config(k, state, plan, self.moved_now.get())
    }
}
