//! A recording fake of [`Kernel`] for root-free unit tests: a small model of links, IPv4
//! addresses and named namespaces; every change is logged (`create_bridge br0`, ...), and any
//! operation can be made to fail by its log line.

use std::collections::BTreeSet;
use std::io;

use edgenet_core::mac::MacAddr;
use edgenet_host::link_config::{LinkConfig, SavedLinkConfig};
use edgenet_host::netlink::{Address, BridgeSpec, Link, Route, RouteSpec, VethSpec};
use edgenet_host::HostError;
use ipnet::Ipv4Net;

use super::Kernel;

#[derive(Debug, Default)]
pub struct FakeKernel {
    pub links: Vec<Link>,
    pub addresses: Vec<(String, Ipv4Net)>,
    pub netns: BTreeSet<String>,
    /// Every change, in order (reads are not logged).
    pub log: Vec<String>,
    /// Log lines of operations that fail (with `EPERM`) instead of happening.
    pub fail: Vec<String>,
    /// What `move_link_config` reports it could not move (a route the kernel refuses).
    pub refuse_to_move: Vec<String>,
    next_index: u32,
}

fn not_found(op: &str, name: &str) -> HostError {
    HostError::new(op, name, io::Error::from_raw_os_error(19)) // ENODEV
}

impl FakeKernel {
    pub fn new() -> Self {
        FakeKernel {
            next_index: 2,
            ..Default::default()
        }
    }

    /// A link made by someone else (a physical adapter, a foreign bridge).
    pub fn add_link(&mut self, name: &str, kind: Option<&str>, alias: Option<&str>) -> &mut Link {
        self.next_index += 1;
        self.links.push(Link {
            index: self.next_index,
            name: name.into(),
            mtu: 1500,
            up: true,
            lower_up: true,
            mac: Some(MacAddr([0x02, 0, 0, 0, 0, self.next_index as u8])),
            kind: kind.map(String::from),
            master_index: None,
            master: None,
            alias: alias.map(String::from),
            group: 0,
            hairpin: false,
        });
        self.links.last_mut().expect("just pushed")
    }

    /// The changes logged since the last call.
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    /// Logs `line`, or fails when the test said so.
    fn act(&mut self, line: String) -> Result<(), HostError> {
        if self.fail.contains(&line) {
            return Err(HostError::new(
                line,
                "",
                io::Error::from_raw_os_error(1), // EPERM
            ));
        }
        self.log.push(line);
        Ok(())
    }

    fn get(&mut self, op: &str, name: &str) -> Result<&mut Link, HostError> {
        self.links
            .iter_mut()
            .find(|l| l.name == name)
            .ok_or_else(|| not_found(op, name))
    }

    fn new_link(&mut self, name: &str, kind: &str, mtu: Option<u32>, mac: Option<MacAddr>) {
        let group = 0;
        self.add_link(name, Some(kind), None);
        let l = self.links.last_mut().expect("just added");
        l.up = false;
        l.mtu = mtu.unwrap_or(1500);
        if mac.is_some() {
            l.mac = mac;
        }
        l.group = group;
    }
}

impl Kernel for FakeKernel {
    fn links(&mut self) -> Result<Vec<Link>, HostError> {
        Ok(self.links.clone())
    }
    fn link(&mut self, name: &str) -> Result<Option<Link>, HostError> {
        Ok(self.links.iter().find(|l| l.name == name).cloned())
    }
    fn addresses(&mut self) -> Result<Vec<Address>, HostError> {
        Ok(self
            .addresses
            .iter()
            .map(|(link, address)| Address {
                link_index: self
                    .links
                    .iter()
                    .find(|l| &l.name == link)
                    .map_or(0, |l| l.index),
                link: link.clone(),
                address: *address,
                broadcast: None,
            })
            .collect())
    }
    fn routes(&mut self) -> Result<Vec<Route>, HostError> {
        Ok(Vec::new())
    }
    fn create_bridge(&mut self, spec: &BridgeSpec<'_>) -> Result<(), HostError> {
        if self.links.iter().any(|l| l.name == spec.name) {
            return Err(HostError::new(
                "create bridge",
                spec.name,
                io::Error::from_raw_os_error(17), // EEXIST
            ));
        }
        self.act(format!("create_bridge {}", spec.name))?;
        self.new_link(spec.name, "bridge", spec.mtu, spec.mac);
        self.links.last_mut().expect("just made").group = spec.group.unwrap_or(0);
        Ok(())
    }
    fn create_veth(
        &mut self,
        spec: &VethSpec<'_>,
        peer_netns: Option<&str>,
    ) -> Result<(), HostError> {
        self.act(format!(
            "create_veth {} peer {} in {}",
            spec.name,
            spec.peer_name,
            peer_netns.unwrap_or("-")
        ))?;
        self.new_link(spec.name, "veth", spec.mtu, spec.mac);
        self.links.last_mut().expect("just made").group = spec.group.unwrap_or(0);
        Ok(())
    }
    fn set_up(&mut self, name: &str, up: bool) -> Result<(), HostError> {
        self.get("set up", name)?;
        self.act(format!("set_up {name} {up}"))?;
        self.get("set up", name)?.up = up;
        Ok(())
    }
    fn set_mtu(&mut self, name: &str, mtu: u32) -> Result<(), HostError> {
        self.get("set mtu", name)?;
        self.act(format!("set_mtu {name} {mtu}"))?;
        self.get("set mtu", name)?.mtu = mtu;
        Ok(())
    }
    fn set_mac(&mut self, name: &str, mac: MacAddr) -> Result<(), HostError> {
        self.get("set mac", name)?;
        self.act(format!("set_mac {name} {mac}"))?;
        self.get("set mac", name)?.mac = Some(mac);
        Ok(())
    }
    fn set_master(&mut self, name: &str, master: Option<&str>) -> Result<(), HostError> {
        self.get("set master", name)?;
        self.act(format!("set_master {name} {}", master.unwrap_or("-")))?;
        self.get("set master", name)?.master = master.map(String::from);
        Ok(())
    }
    fn set_hairpin(&mut self, name: &str, on: bool) -> Result<(), HostError> {
        self.get("set hairpin", name)?;
        self.act(format!("set_hairpin {name} {on}"))?;
        self.get("set hairpin", name)?.hairpin = on;
        Ok(())
    }
    fn set_alias(&mut self, name: &str, alias: &str) -> Result<(), HostError> {
        self.get("set alias", name)?;
        self.act(format!("set_alias {name} {alias}"))?;
        self.get("set alias", name)?.alias = Some(alias.into());
        Ok(())
    }
    fn set_group(&mut self, name: &str, group: u32) -> Result<(), HostError> {
        self.get("set group", name)?;
        self.act(format!("set_group {name} {group}"))?;
        self.get("set group", name)?.group = group;
        Ok(())
    }
    fn delete_link(&mut self, name: &str) -> Result<bool, HostError> {
        self.act(format!("delete_link {name}"))?;
        let before = self.links.len();
        self.links.retain(|l| l.name != name);
        self.addresses.retain(|(l, _)| l != name);
        for l in &mut self.links {
            if l.master.as_deref() == Some(name) {
                l.master = None;
            }
        }
        Ok(self.links.len() != before)
    }
    fn delete_group(&mut self, group: u32) -> Result<bool, HostError> {
        self.act(format!("delete_group {group}"))?;
        let names: Vec<String> = self
            .links
            .iter()
            .filter(|l| l.group == group)
            .map(|l| l.name.clone())
            .collect();
        self.links.retain(|l| l.group != group);
        Ok(!names.is_empty())
    }
    fn link_index(&mut self, name: &str) -> Result<u32, HostError> {
        Ok(self.get("link index", name)?.index)
    }
    fn add_address(&mut self, link: &str, address: Ipv4Net) -> Result<(), HostError> {
        self.get("add address", link)?;
        self.act(format!("add_address {link} {address}"))?;
        self.addresses.push((link.into(), address));
        Ok(())
    }
    fn del_address(&mut self, link: &str, address: Ipv4Net) -> Result<bool, HostError> {
        self.act(format!("del_address {link} {address}"))?;
        let before = self.addresses.len();
        self.addresses
            .retain(|(l, a)| !(l == link && *a == address));
        Ok(self.addresses.len() != before)
    }
    fn replace_route(&mut self, spec: &RouteSpec<'_>) -> Result<(), HostError> {
        self.act(format!("replace_route {}", spec.destination))
    }
    fn link_config(&mut self, name: &str) -> Result<LinkConfig, HostError> {
        self.get("link config", name)?;
        Ok(LinkConfig::default())
    }
    fn move_link_config(&mut self, from: &str, to: &str) -> Result<LinkConfig, HostError> {
        self.act(format!("move_link_config {from} {to}"))?;
        for (link, _) in self.addresses.iter_mut().filter(|(l, _)| l == from) {
            *link = to.to_string();
        }
        Ok(LinkConfig {
            skipped: self.refuse_to_move.clone(),
            ..LinkConfig::default()
        })
    }
    fn apply_link_config(
        &mut self,
        _config: &LinkConfig,
        link: &str,
    ) -> Result<Vec<(usize, String)>, HostError> {
        self.act(format!("apply_link_config {link}"))?;
        Ok(Vec::new())
    }
    fn apply_saved(&mut self, saved: &SavedLinkConfig) -> Result<LinkConfig, HostError> {
        self.act(format!("apply_saved {}", saved.link))?;
        Ok(LinkConfig::default())
    }
    /// Puts back one line per recorded route (`route N`); a route named in `fail`
    /// (`apply_saved_onto route N`) is refused.
    fn apply_saved_onto(
        &mut self,
        saved: &SavedLinkConfig,
        link: &str,
        present: &[String],
    ) -> Result<(Vec<String>, Vec<String>), HostError> {
        self.act(format!("apply_saved_onto {} {link}", saved.link))?;
        let (mut back, mut refused) = (Vec::new(), Vec::new());
        for item in (0..saved.routes.len()).map(|i| format!("route {i}")) {
            if present.contains(&item) {
                continue;
            }
            if self.fail.contains(&format!("apply_saved_onto {item}")) {
                refused.push(format!("{item}: refused"));
            } else {
                back.push(item);
            }
        }
        Ok((back, refused))
    }
    fn netns_exists(&mut self, name: &str) -> bool {
        self.netns.contains(name)
    }
    fn netns_create(&mut self, name: &str) -> Result<(), HostError> {
        self.act(format!("netns_create {name}"))?;
        self.netns.insert(name.into());
        Ok(())
    }
    fn netns_delete(&mut self, name: &str) -> Result<bool, HostError> {
        self.act(format!("netns_delete {name}"))?;
        Ok(self.netns.remove(name))
    }
}

/// A [`crate::journal::Journal`] that records into an in-memory state, and fails at a named
/// step (as `EDGENET_FAILPOINT` would).
pub struct FakeJournal {
    pub state: crate::state::DeploymentState,
    pub changes: Vec<String>,
    pub warnings: Vec<String>,
    /// Objects recorded by this run, in order (what a rollback undoes).
    pub new_objects: Vec<crate::state::KernelObject>,
    pub fail_at: Option<&'static str>,
}

impl Default for FakeJournal {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeJournal {
    pub fn new() -> Self {
        FakeJournal {
            state: crate::state::DeploymentState::new("0a1b2c".parse().expect("an id")),
            changes: Vec::new(),
            warnings: Vec::new(),
            new_objects: Vec::new(),
            fail_at: None,
        }
    }

    pub fn own(&self) -> crate::journal::Ownership {
        let id = &self.state.deployment_id;
        crate::journal::Ownership {
            alias: crate::names::alias(id),
            group: crate::names::link_group(id),
        }
    }
}

impl crate::journal::Journal for FakeJournal {
    fn will_create(
        &mut self,
        kind: crate::state::ObjectKind,
        name: &str,
        netns: Option<&str>,
    ) -> Result<(), crate::error::DeployError> {
        if self.state.object(kind, name, netns).is_none() {
            self.new_objects
                .push(crate::state::KernelObject::new(kind, name, netns));
        }
        self.state.record_object(kind, name, netns);
        Ok(())
    }
    fn will_make(
        &mut self,
        kind: crate::state::ObjectKind,
        name: &str,
        netns: Option<&str>,
    ) -> Result<(), crate::error::DeployError> {
        self.will_create(kind, name, netns)?;
        self.state.record_object(kind, name, netns).status = crate::state::ObjectStatus::Pending;
        Ok(())
    }
    fn created(
        &mut self,
        kind: crate::state::ObjectKind,
        name: &str,
        netns: Option<&str>,
    ) -> Result<(), crate::error::DeployError> {
        self.state.record_object(kind, name, netns).status = crate::state::ObjectStatus::Created;
        Ok(())
    }
    fn changed(&mut self, what: String) {
        self.changes.push(what);
    }
    fn warn(&mut self, what: String) {
        self.warnings.push(what);
    }
    fn step(&mut self, name: &str) -> Result<(), crate::error::DeployError> {
        if self.fail_at == Some(name) {
            return Err(crate::error::DeployError::Unsupported(format!(
                "failed at step {name}"
            )));
        }
        Ok(())
    }
    fn recorded(&self, kind: crate::state::ObjectKind, name: &str, netns: Option<&str>) -> bool {
        self.state.object(kind, name, netns).is_some()
    }
    fn pending(&self, kind: crate::state::ObjectKind, name: &str, netns: Option<&str>) -> bool {
        self.state
            .object(kind, name, netns)
            .is_some_and(|o| o.status == crate::state::ObjectStatus::Pending)
    }
}
