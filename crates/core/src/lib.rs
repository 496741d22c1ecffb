//! edgenet's pure core: deployment config → validated network plan.
//!
//! Nothing in this crate performs I/O. Facts about the live host come in as
//! [`host_facts::HostFacts`]; results go out as [`validate::Finding`]s and a [`plan::Plan`].

pub mod addressing;
pub mod config;
pub mod distro;
pub mod host_facts;
pub mod host_firewall;
pub mod mac;
pub mod no_proxy;
pub mod plan;
pub mod redact;
pub mod validate;
