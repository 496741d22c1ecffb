//! The external switch (scalable clusters): a bridge with the machine's adapter as its port.
//! The host's addresses and routes move from the adapter to the bridge, which takes the
//! adapter's MAC, so the machine keeps its connectivity; `restore_adapter` puts everything
//! back exactly as the snapshot taken before the first change says.

use std::net::Ipv4Addr;

use edgenet_core::mac::MacAddr;
use edgenet_core::plan::SwitchPlan;
use edgenet_host::netlink::{BridgeSpec, Netlink, RouteSpec};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::{SwitchDriver, SwitchLive};
use crate::error::DeployError;
use crate::journal::{Journal, Ownership};
use crate::state::ObjectKind;

/// The adapter as it was before edgenet touched it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterSnapshot {
    pub name: String,
    pub mac: Option<MacAddr>,
    pub mtu: u32,
    pub up: bool,
    pub addresses: Vec<SavedAddress>,
    /// Main-table routes through the adapter, except the kernel's own subnet routes (those
    /// come back with the addresses).
    pub routes: Vec<SavedRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedAddress {
    pub address: Ipv4Net,
    pub broadcast: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedRoute {
    pub destination: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub metric: Option<u32>,
    pub protocol: u8,
}

impl AdapterSnapshot {
    pub fn take(nl: &mut Netlink, adapter: &str) -> Result<AdapterSnapshot, DeployError> {
        let link = nl
            .link(adapter)?
            .ok_or_else(|| DeployError::Unsupported(format!("adapter {adapter} does not exist")))?;
        let addresses = nl
            .addresses()?
            .into_iter()
            .filter(|a| a.link == adapter)
            .map(|a| SavedAddress {
                address: a.address,
                broadcast: a.broadcast,
            })
            .collect();
        let routes = nl
            .routes()?
            .into_iter()
            .filter(|r| r.link.as_deref() == Some(adapter) && !r.is_connected())
            .map(|r| SavedRoute {
                destination: r.destination,
                gateway: r.gateway,
                metric: r.metric,
                protocol: r.protocol,
            })
            .collect();
        Ok(AdapterSnapshot {
            name: adapter.to_string(),
            mac: link.mac,
            mtu: link.mtu,
            up: link.up,
            addresses,
            routes,
        })
    }
}

/// Moves the snapshot's addresses and routes onto `to` (the bridge, or the adapter on the way
/// back) and takes the addresses off `from`. Addresses are added before they are removed and
/// routes are replaced in place, so the host is reachable throughout.
fn move_addressing(
    nl: &mut Netlink,
    snap: &AdapterSnapshot,
    from: &str,
    to: &str,
) -> Result<Vec<String>, DeployError> {
    let mut changes = Vec::new();
    let on = |nl: &mut Netlink, link: &str| -> Result<Vec<Ipv4Net>, DeployError> {
        Ok(nl
            .addresses()?
            .into_iter()
            .filter(|a| a.link == link)
            .map(|a| a.address)
            .collect())
    };
    let present = on(nl, to)?;
    for a in &snap.addresses {
        if !present.contains(&a.address) {
            nl.add_address_with(to, a.address, a.broadcast)?;
            changes.push(format!("moved address {} from {from} to {to}", a.address));
        }
    }
    for r in &snap.routes {
        let spec = RouteSpec {
            destination: r.destination,
            gateway: r.gateway,
            link: Some(to),
        };
        nl.restore_route(&spec, r.metric, r.protocol)?;
    }
    if nl.link(from)?.is_some() {
        let left = on(nl, from)?;
        for a in snap.addresses.iter().filter(|a| left.contains(&a.address)) {
            nl.del_address(from, a.address)?;
        }
    }
    Ok(changes)
}

/// Puts the adapter back as the snapshot says: addresses and routes first (while it may still
/// be a port), then out of the bridge, then MTU and state.
pub fn restore_adapter(
    nl: &mut Netlink,
    snap: &AdapterSnapshot,
    bridge: &str,
) -> Result<(), DeployError> {
    let Some(link) = nl.link(&snap.name)? else {
        return Err(DeployError::Unsupported(format!(
            "adapter {} is gone; nothing to restore it to",
            snap.name
        )));
    };
    let bridge_exists = nl.link(bridge)?.is_some();
    move_addressing(
        nl,
        snap,
        if bridge_exists { bridge } else { &snap.name },
        &snap.name,
    )?;
    if link.master.as_deref() == Some(bridge) {
        nl.set_master(&snap.name, None)?;
    }
    let link = nl.link(&snap.name)?.expect("checked above");
    if link.mtu != snap.mtu {
        nl.set_mtu(&snap.name, snap.mtu)?;
    }
    if link.up != snap.up {
        nl.set_up(&snap.name, snap.up)?;
    }
    // Routes through the adapter vanish while it is released; put back any that did.
    let live: Vec<_> = nl
        .routes()?
        .into_iter()
        .filter(|r| r.link.as_deref() == Some(snap.name.as_str()))
        .collect();
    for r in &snap.routes {
        if !live.iter().any(|l| {
            l.destination == r.destination && l.gateway == r.gateway && l.metric == r.metric
        }) {
            let spec = RouteSpec {
                destination: r.destination,
                gateway: r.gateway,
                link: Some(&snap.name),
            };
            nl.restore_route(&spec, r.metric, r.protocol)?;
        }
    }
    Ok(())
}

pub struct ExternalSwitch<'a> {
    /// The adapter before the first change; `None` when a user-made bridge already has the
    /// adapter as its port and is used as it is.
    pub snapshot: Option<&'a AdapterSnapshot>,
}

impl SwitchDriver for ExternalSwitch<'_> {
    fn ensure(
        &self,
        nl: &mut Netlink,
        plan: &SwitchPlan,
        _mac: MacAddr,
        own: &Ownership,
        j: &mut dyn Journal,
    ) -> Result<(), DeployError> {
        let name = plan.name.as_str();
        let Some(snap) = self.snapshot else {
            // A bridge the user made, with the adapter as its port: used as it is.
            j.step("switch")?;
            j.step("switch-adapter")?;
            j.step("switch-address")?;
            return Ok(());
        };
        let adapter = snap.name.as_str();
        let mtu = plan.mtu.unwrap_or(snap.mtu);
        match nl.link(name)? {
            None => {
                j.will_create(ObjectKind::Bridge, name, None)?;
                nl.create_bridge(&BridgeSpec { name, mtu: Some(mtu), mac: snap.mac, group: Some(own.group) })?;
                nl.set_alias(name, &own.alias)?;
                nl.set_up(name, true)?;
                j.created(ObjectKind::Bridge, name, None)?;
                j.changed(format!("created bridge {name} with {adapter}'s MAC (MTU {mtu})"));
            }
            Some(link) if own.owns(&link) && link.kind.as_deref() == Some("bridge") => {
                if link.mtu != mtu {
                    nl.set_mtu(name, mtu)?;
                    j.changed(format!("set MTU {mtu} on {name} (was {})", link.mtu));
                }
                if !link.up {
                    nl.set_up(name, true)?;
                    j.changed(format!("brought {name} up"));
                }
            }
            Some(_) => {
                return Err(DeployError::Foreign {
                    what: "interface",
                    name: name.to_string(),
                    hint: format!("{name} exists without {adapter} as its port and was not made by edgenet; make {adapter} its port to use it, or set Edgenet.SwitchName to another name"),
                })
            }
        }
        j.step("switch")?;

        let link = nl
            .link(adapter)?
            .ok_or_else(|| DeployError::Unsupported(format!("adapter {adapter} vanished")))?;
        if link.master.as_deref() != Some(name) {
            nl.set_master(adapter, Some(name))?;
            j.changed(format!("made {adapter} a port of {name}"));
        }
        if !link.up {
            nl.set_up(adapter, true)?;
        }
        j.step("switch-adapter")?;

        for change in move_addressing(nl, snap, adapter, name)? {
            j.changed(change);
        }
        j.step("switch-address")?;
        Ok(())
    }

    fn remove(&self, nl: &mut Netlink, name: &str, own: &Ownership) -> Result<bool, DeployError> {
        if let Some(snap) = self.snapshot {
            restore_adapter(nl, snap, name)?;
        }
        super::InternalSwitch.remove(nl, name, own)
    }

    fn live(
        &self,
        nl: &mut Netlink,
        name: &str,
        own: &Ownership,
    ) -> Result<SwitchLive, DeployError> {
        super::InternalSwitch.live(nl, name, own)
    }
}
