//! Undoing recorded objects, shared by a failed deploy's rollback and by `remove`: each object
//! goes through the driver that made it (the switch's, the node runtime's, the firewall's),
//! in a fixed order, and one failure never stops the others.

use std::path::Path;

use edgenet_core::plan::Plan;

use crate::error::DeployError;
use crate::firewall::{self, FirewallDriver};
use crate::journal::Ownership;
use crate::kernel::Kernel;
use crate::node;
use crate::state::{DeploymentState, KernelObject, ObjectKind, ObjectStatus};
use crate::switch::{self, AdapterRecord, SwitchDriver};

/// The drivers a teardown uses, picked from what the state records.
pub struct Teardown<'a> {
    pub own: Ownership,
    pub switch: Box<dyn SwitchDriver>,
    pub firewall: Box<dyn FirewallDriver>,
    pub plan: Option<&'a Plan>,
    pub state_dir: &'a Path,
}

impl<'a> Teardown<'a> {
    pub fn of_state(state: &'a DeploymentState, state_dir: &'a Path) -> Teardown<'a> {
        let id = &state.deployment_id;
        Teardown {
            own: Ownership {
                alias: crate::names::alias(id),
                group: crate::names::link_group(id),
            },
            switch: switch::driver_of_state(state),
            firewall: firewall::driver(),
            plan: state.applied_plan.as_ref().or(state.pending_plan.as_ref()),
            state_dir,
        }
    }

    /// Deletes (or gives back) one recorded object if it exists and is ours; `Ok(false)` when
    /// it was already gone.
    pub fn undo(&self, k: &mut dyn Kernel, o: &KernelObject) -> Result<bool, DeployError> {
        if let Some(result) = node::remove_guest(k, o, self.plan, self.state_dir) {
            return result;
        }
        match o.kind {
            // A bridge the user made is used, never deleted.
            ObjectKind::Bridge if o.status == ObjectStatus::Adopted => Ok(false),
            ObjectKind::Bridge => self.switch.remove(k, &o.name, &self.own),
            ObjectKind::Veth | ObjectKind::Tap => match k.link(&o.name)? {
                Some(link) if self.own.owns(&link) => Ok(k.delete_link(&o.name)?),
                Some(_) => Err(DeployError::Foreign {
                    what: "interface",
                    name: o.name.clone(),
                    hint: "it no longer carries this deployment's mark, so edgenet leaves it"
                        .into(),
                }),
                None => Ok(false),
            },
            ObjectKind::NftTable => Ok(self.firewall.remove(&o.name)?),
            ObjectKind::FirewallRule => {
                let (chain, rule) =
                    firewall::host_rules::rule_of_record(&o.name).ok_or_else(|| {
                        DeployError::Unsupported(format!("bad rule record {}", o.name))
                    })?;
                let args: Vec<&str> = rule.iter().map(String::as_str).collect();
                Ok(edgenet_host::iptables::delete_all(&chain, &args)?)
            }
            ObjectKind::Adapter => {
                for done in self.release_adapter(k, o)? {
                    tracing::info!("{done}");
                }
                Ok(true)
            }
            other => Err(DeployError::Unsupported(format!(
                "edgenet does not create {} objects",
                kind_name(other)
            ))),
        }
    }

    /// Gives a recorded adapter back, through the external driver of its own record (its
    /// bridge, snapshot and the host's configuration as last recorded); returns what it did,
    /// lines starting with "could not" for what it could not put back.
    pub fn release_adapter(
        &self,
        k: &mut dyn Kernel,
        o: &KernelObject,
    ) -> Result<Vec<String>, DeployError> {
        let Some(record) = AdapterRecord::of(o) else {
            return Err(DeployError::Unsupported(format!(
                "the state has no snapshot of adapter {}",
                o.name
            )));
        };
        switch::ExternalSwitch::to_release(&record).release(k, &self.own)
    }

    /// Undoes `objects` in [`removal_rank`] order (newest first within a rank), carrying on
    /// past every failure; returns each object with its outcome, in the order tried.
    pub fn undo_all(
        &self,
        k: &mut dyn Kernel,
        mut objects: Vec<KernelObject>,
    ) -> Vec<(KernelObject, Result<bool, DeployError>)> {
        objects.reverse();
        objects.sort_by_key(|o| removal_rank(o.kind));
        objects
            .into_iter()
            .map(|o| {
                let result = self.undo(k, &o);
                (o, result)
            })
            .collect()
    }
}

/// Order in which objects are undone: firewall, nodes, the adapter back to its addresses,
/// then the bridge (so that the host keeps its addresses while the bridge goes).
pub fn removal_rank(kind: ObjectKind) -> u8 {
    match kind {
        ObjectKind::NftTable | ObjectKind::FirewallRule => 0,
        ObjectKind::Netns | ObjectKind::Vm => 1,
        ObjectKind::Veth | ObjectKind::Tap => 2,
        ObjectKind::Adapter => 3,
        ObjectKind::Bridge => 4,
    }
}

/// A kind of object as messages name it.
/// An object as every message names it: nftables tables with their family (`nftables table
/// ip edgenet_X`; the `ip` table is recorded by its bare name).
pub fn object_words(kind: ObjectKind, name: &str) -> String {
    match kind {
        ObjectKind::NftTable => {
            let (family, table) = name.split_once(' ').unwrap_or(("ip", name));
            format!("nftables table {family} {table}")
        }
        kind => format!("{} {name}", kind_name(kind)),
    }
}

pub fn kind_name(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Netns => "network namespace",
        ObjectKind::Bridge => "bridge",
        ObjectKind::Veth => "veth",
        ObjectKind::Tap => "tap",
        ObjectKind::NftTable => "nftables table",
        ObjectKind::Adapter => "adapter",
        ObjectKind::FirewallRule => "host firewall rule",
        ObjectKind::Vm => "virtual machine",
    }
}
