//! edgenet's host layer: the only code that talks to the kernel or reads host files.
//!
//! Everything above this crate works on plain data ([`edgenet_core::host_facts::HostFacts`],
//! plans, nft JSON documents); everything here is a thin, testable wrapper over one kernel or
//! file interface.

pub mod arp;
pub mod error;
pub mod exec;
pub mod facts;
pub mod guest_agent;
pub mod guest_image;
pub mod guest_probes;
pub mod iptables;
pub mod json_lines;
pub mod link_config;
pub mod lock;
pub mod net_manager;
pub mod netlink;
pub mod netns;
pub mod netns_mounts;
pub mod nft;
pub mod probes;
pub mod procfs;
pub mod qemu;
pub mod qmp;
pub mod resolv;
pub mod small_file;
pub mod sysctl;
pub mod sysfs;
pub mod tap;
pub mod vm_host;

pub use error::HostError;
