//! Switch kinds behind one small trait, netavark-style: [`driver`] picks the implementation
//! for a switch, and deploy, status and remove all go through it. The internal switch
//! (single-machine) is a host-only bridge ([`bridge`]); the external switch (scalable) is a
//! bridge with the machine's adapter as its port ([`external`]), which takes the adapter over
//! and gives it back ([`adapter`]).

pub mod adapter;
pub mod adapter_owner;
pub mod bridge;
pub mod external;

pub use adapter::{restore_adapter, AdapterRecord, AdapterSnapshot};
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
}

pub trait SwitchDriver {
    /// Makes the live switch match `plan` (creating it if needed).
    fn ensure(
        &self,
        k: &mut dyn Kernel,
        plan: &SwitchPlan,
        own: &Ownership,
        j: &mut dyn Journal,
    ) -> Result<(), DeployError>;
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
    let bridge = plan
        .map(|p| p.switch.name.clone())
        .or_else(|| {
            state
                .objects
                .iter()
                .find_map(|o| adapter::AdapterRecord::of(o).map(|r| r.bridge))
        })
        .unwrap_or_default();
    Box::new(ExternalSwitch::from_state(&bridge, state))
}
