//! Switch kinds behind one small trait. The internal switch (single-machine) is a host-only
//! bridge; the external switch (scalable) is a bridge with the machine's adapter as its port.

pub mod adapter_owner;
pub mod external;
mod internal;

pub use external::{restore_adapter, AdapterSnapshot, ExternalSwitch};
pub use internal::InternalSwitch;

use edgenet_core::mac::MacAddr;
use edgenet_core::plan::SwitchPlan;
use edgenet_host::netlink::Netlink;

use crate::error::DeployError;
use crate::journal::{Journal, Ownership};

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
        nl: &mut Netlink,
        plan: &SwitchPlan,
        mac: MacAddr,
        own: &Ownership,
        j: &mut dyn Journal,
    ) -> Result<(), DeployError>;
    /// Deletes the switch if it is ours; `Ok(false)` when there was nothing to delete.
    fn remove(&self, nl: &mut Netlink, name: &str, own: &Ownership) -> Result<bool, DeployError>;
    fn live(
        &self,
        nl: &mut Netlink,
        name: &str,
        own: &Ownership,
    ) -> Result<SwitchLive, DeployError>;
}
