//! edgenet's deploy side, modelled on netavark: validate first, then apply through small
//! driver traits (switch kinds, firewall, node runtimes), recording every object in a small
//! JSON state before creating it; roll back on failure; tear down collecting every error.

pub mod boot_unit;
pub mod deploy;
pub mod error;
pub mod failpoint;
pub mod firewall;
pub mod journal;
pub mod leftovers;
pub mod names;
pub mod node;
pub mod remove;
pub mod state;
pub mod status;
pub mod switch;

pub use deploy::{deploy, DeployFailure, DeployReport};
pub use error::DeployError;
pub use remove::{remove, RemoveReport};
pub use status::{status, StatusReport};
