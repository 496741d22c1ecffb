//! [`LabMachine`]: one simulated machine of a lab — its namespace, adapter, addresses and
//! files — and the commands that run "on" it.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use edgenet_host::exec::{command_in, BindMount, ExecOptions};
use edgenet_host::netns::NetNs;

use crate::error::LabError;

/// One simulated machine: what `deploy` needs to run "on" it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabMachine {
    /// `m1`, `m2`, …
    pub name: String,
    pub index: u8,
    /// The machine's network namespace (`enl-<lab>-m1`) and its path under `/run/netns`.
    pub netns: String,
    pub netns_path: PathBuf,
    /// The machine's physical adapter (a veth into the LAN bridge), e.g. for an external
    /// switch config.
    pub adapter: String,
    /// Its static LAN address with the LAN prefix.
    pub address: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// The LAN DNS the machine's resolv.conf names.
    pub dns: Ipv4Addr,
    /// `http://198.18.0.1:3128` when the lab runs the proxy.
    pub proxy: Option<String>,
    /// The machine's own files.
    pub dir: PathBuf,
    /// Its resolv.conf (the "host's /etc/resolv.conf" for a deploy on this machine).
    pub resolv_conf: PathBuf,
    /// A state directory for the deployment on this machine.
    pub state_dir: PathBuf,
}

impl LabMachine {
    /// A command that runs in the machine's network namespace only (same mount namespace,
    /// so named namespaces it creates under `/run/netns` stay visible to everybody: run
    /// `edgenet deploy` this way, passing [`LabMachine::resolv_conf`] and
    /// [`LabMachine::state_dir`] explicitly).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Result<Command, LabError> {
        let ns = NetNs::open(&self.netns).map_err(|e| LabError::host(&self.netns, e))?;
        command_in(&ns, program, &ExecOptions::default())
            .map_err(|e| LabError::host(&self.netns, e))
    }

    /// A command that runs in the machine's network namespace *and* sees the machine's
    /// resolv.conf as `/etc/resolv.conf` (a private, slave mount namespace), for tools that
    /// only read the standard path (curl, getent). Not for anything that creates named
    /// namespaces: those would stay inside its mount namespace (NOTES.md).
    pub fn resolving_command(
        &self,
        program: impl AsRef<std::ffi::OsStr>,
    ) -> Result<Command, LabError> {
        let ns = NetNs::open(&self.netns).map_err(|e| LabError::host(&self.netns, e))?;
        let opts = ExecOptions {
            binds: vec![BindMount::new(&self.resolv_conf, "/etc/resolv.conf")],
            ..ExecOptions::default()
        };
        command_in(&ns, program, &opts).map_err(|e| LabError::host(&self.netns, e))
    }
}
