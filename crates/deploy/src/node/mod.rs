//! Node runtimes behind one small trait: how a node guest is made and joined to the switch.
//! `netns` (a named network namespace per node) is built here; `vm` (QEMU with a tap) is
//! planned and refused with a clear message until it exists.

pub mod files;
pub(crate) mod netns;

pub use self::netns::NetnsRuntime;

use edgenet_core::mac::MacAddr;
use edgenet_core::plan::NodePlan;
use edgenet_host::netlink::Netlink;

use crate::error::DeployError;
use crate::journal::{Journal, Ownership};

/// One node as the runtime builds it: the plan plus the names and MAC the deployment fixed.
#[derive(Debug, Clone)]
pub struct NodeSpec<'a> {
    pub plan: &'a NodePlan,
    pub netns: String,
    pub host_veth: String,
    pub mac: MacAddr,
    pub mtu: u32,
    pub switch: &'a str,
}

/// A node's interface as the kernel has it, for `status`, `node addr` and drift.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeLive {
    pub name: String,
    pub netns: String,
    pub present: bool,
    pub up: bool,
    pub addresses: Vec<String>,
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    pub gateway: Option<String>,
    /// The host end is a port of the switch.
    pub on_switch: bool,
}

pub trait NodeRuntime {
    fn ensure(
        &self,
        nl: &mut Netlink,
        node: &NodeSpec<'_>,
        own: &Ownership,
        j: &mut dyn Journal,
    ) -> Result<(), DeployError>;
    /// Deletes the node's guest (and with it its end of the link).
    fn remove(&self, netns: &str) -> Result<bool, DeployError>;
    fn live(
        &self,
        nl: &mut Netlink,
        name: &str,
        netns: &str,
        host_veth: &str,
        switch: &str,
    ) -> Result<NodeLive, DeployError>;
}
