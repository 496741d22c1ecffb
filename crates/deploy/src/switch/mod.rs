//! Switch kinds behind one small trait, netavark-style: [`driver`] picks the implementation
//! for a switch, and deploy, status and remove all go through it. The internal switch
//! (single-machine) is a host-only bridge ([`bridge`]); the external switch (scalable) is a
//! bridge with the machine's adapter as its port ([`external`]), which takes the adapter over
//! and gives it back ([`adapter`]).

pub mod adapter;
pub mod adapter_lease;
pub mod adapter_owner;
pub mod bridge;
pub mod connected_route;
pub mod external;
pub mod retire;

pub use adapter::{report_lines, restore_adapter, AdapterRecord, AdapterSnapshot};
pub use bridge::InternalSwitch;
pub use external::ExternalSwitch;

use edgenet_core::plan::{SwitchKind, SwitchPlan};

use crate::error::DeployError;
use crate::journal::{Journal, Ownership};
use crate::kernel::Kernel;
use crate::names;
use crate::state::{DeploymentState, ObjectKind, ObjectStatus};

/// Live facts about a switch, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SwitchLive {
    pub name: String,
    pub present: bool,
    /// Carries this deployment's mark.
    pub ours: bool,
    pub up: bool,
    pub mtu: Option<u32>,
    pub mac: Option<String>,
    pub addresses: Vec<String>,
    /// An external switch's adapter (by its name now) and whether it has carrier
    /// (`IFF_LOWER_UP`: something on the wire); `None` without an adapter, or when it is
    /// missing or administratively down (said as drift).
    pub adapter: Option<String>,
    pub adapter_carrier: Option<bool>,
}

pub trait SwitchDriver {
    /// Makes the live switch match `plan` (creating it if needed). `true` when this call made
    /// the bridge: everything on it (its connected routes included) is the kernel's own making.
    fn ensure(
        &self,
        k: &mut dyn Kernel,
        plan: &SwitchPlan,
        own: &Ownership,
        j: &mut dyn Journal,
    ) -> Result<bool, DeployError>;
    /// Gives the host back what the switch took over (an external switch's adapter and the
    /// host's configuration on the bridge), before the bridge goes. Returns what it did.
    fn release(&self, k: &mut dyn Kernel, own: &Ownership) -> Result<Vec<String>, DeployError>;
    /// Deletes the switch if it is ours; `Ok(false)` when there was nothing to delete.
    fn remove(&self, k: &mut dyn Kernel, name: &str, own: &Ownership) -> Result<bool, DeployError>;
    fn live(
        &self,
        k: &mut dyn Kernel,
        name: &str,
        own: &Ownership,
    ) -> Result<SwitchLive, DeployError>;
    /// After [`SwitchDriver::ensure`]: what the state keeps about the live switch (the
    /// external switch records the host's configuration on its bridge). Returns the changes
    /// made and whether the state changed.
    fn settle(
        &self,
        _k: &mut dyn Kernel,
        _state: &mut DeploymentState,
        _plan: &SwitchPlan,
    ) -> Result<(Vec<String>, bool), DeployError> {
        Ok((Vec::new(), false))
    }
}

/// What [`prepare`] settled.
#[derive(Debug)]
pub struct Prepared {
    /// The MTU of the switch, the default of its nodes' links: the plan's, else (external)
    /// the adapter's or the user's bridge's.
    pub mtu: u32,
    /// An adapter this run recorded first (a rollback gives it back).
    pub new_adapter_record: Option<String>,
    /// The state changed: save it before the kernel is touched.
    pub state_changed: bool,
    pub changes: Vec<String>,
}

/// What a deploy settles in the state before the switch is ensured (the caller saves the
/// state next): the internal bridge's MAC, generated once (unique among `taken`) and kept; the
/// external switch's adapter, taken and recorded before anything changes.
pub fn prepare(
    k: &mut dyn Kernel,
    state: &mut DeploymentState,
    plan: &SwitchPlan,
    own: &Ownership,
    taken: &[edgenet_core::mac::MacAddr],
) -> Result<Prepared, DeployError> {
    let mut prepared = Prepared {
        mtu: plan.mtu.unwrap_or(edgenet_core::plan::DEFAULT_INTERNAL_MTU),
        new_adapter_record: None,
        state_changed: false,
        changes: Vec::new(),
    };
    match plan.kind {
        SwitchKind::Internal => {
            let key = names::switch_mac_key(&plan.name);
            prepared.state_changed = !state.macs.contains_key(&key);
            state.mac_for_random(&key, taken);
        }
        SwitchKind::External => {
            let adoption = adapter::adopt_adapter(k, state, plan, own)?;
            if adoption.new_record {
                prepared.new_adapter_record = plan.adapter.clone();
            }
            prepared.changes = adoption.changes;
            prepared.state_changed = adoption.state_changed;
            if let Some(snap) = &adoption.snapshot {
                prepared.mtu = plan.mtu.unwrap_or(snap.mtu);
            } else if let Some(bridge) = k.link(&plan.name)? {
                prepared.mtu = plan.mtu.unwrap_or(bridge.mtu);
            }
        }
    }
    Ok(prepared)
}

/// The driver of `plan`'s switch, with what the state recorded about it (the internal
/// switch's MAC; the external switch's adapter snapshot, or that the bridge is the user's).
pub fn driver(plan: &SwitchPlan, state: &DeploymentState) -> Box<dyn SwitchDriver> {
    match plan.kind {
        SwitchKind::Internal => Box::new(InternalSwitch {
            mac: state.macs.get(&names::switch_mac_key(&plan.name)).copied(),
        }),
        SwitchKind::External => Box::new(ExternalSwitch::from_state(&plan.name, state)),
    }
}

/// The driver of the switch a state records, for remove and rollback (which go by the
/// records): external when an adapter or a user's bridge is recorded, else internal.
pub fn driver_of_state(state: &DeploymentState) -> Box<dyn SwitchDriver> {
    let plan = state.applied_plan.as_ref().or(state.pending_plan.as_ref());
    let external = plan.is_some_and(|p| p.switch.kind == SwitchKind::External)
        || state.objects.iter().any(|o| {
            o.kind == ObjectKind::Adapter
                || (o.kind == ObjectKind::Bridge && o.status == ObjectStatus::Adopted)
        });
    if !external {
        return Box::new(InternalSwitch { mac: None });
    }
    // The adapter's record names the bridge it was given to (what remove gives it back from).
    let bridge = state
        .objects
        .iter()
        .find_map(|o| adapter::AdapterRecord::of(o).map(|r| r.bridge))
        .or_else(|| plan.map(|p| p.switch.name.clone()))
        .unwrap_or_default();
    Box::new(ExternalSwitch::from_state(&bridge, state))
}
