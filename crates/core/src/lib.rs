//! edgenet's pure core: deployment config → validated network plan.
//!
//! Nothing in this crate performs I/O. Facts about the live host come in as
//! [`host_facts::HostFacts`]; results go out as [`validate::Finding`]s and a [`plan::Plan`].
//!
//! Modules import downwards only, never in a circle: `mac`, `finding`, `ifname`, `no_proxy`
//! → `config` → `host_facts` → `addressing` → `context` → `plan` → `host_firewall` →
//! `validate`. What two layers share lives in the lower one (the validator re-exports
//! `Finding`, `Context` and friends from where they live).

pub mod addressing;
pub mod config;
pub mod context;
pub mod distro;
pub mod finding;
pub mod host_facts;
pub mod host_firewall;
pub mod ifname;
pub mod mac;
pub mod no_proxy;
pub mod plan;
pub mod redact;
pub mod validate;
