//! edgenet's deploy side, modelled on netavark: validate first, then apply through small
//! driver traits (switch kinds, firewall, node runtimes), recording every object in a small
//! JSON state before creating it; roll back on failure; tear down collecting every error.
//!
//! - [`switch::driver`], [`node::runtime`], [`firewall::driver`] pick the drivers; deploy,
//!   status and remove (through [`teardown`]) all go through them.
//! - The drivers reach the kernel through [`kernel::Kernel`] (real: rtnetlink; in unit tests a
//!   recording fake), so their reconcile logic is tested without root.

pub mod boot_unit;
pub mod deploy;
pub mod error;
pub mod failpoint;
pub mod firewall;
pub mod forwarding;
pub mod journal;
pub mod kernel;
pub mod leftovers;
pub mod names;
pub mod node;
pub mod orphan;
pub mod own_files;
pub mod remove;
pub mod state;
pub mod status;
pub mod switch;
pub mod teardown;

pub use deploy::{deploy, DeployFailure, DeployReport};
pub use error::DeployError;
pub use remove::{remove, RemoveReport};
pub use status::{status, StatusReport};
