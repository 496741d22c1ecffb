//! The external switch (scalable clusters): a bridge with the machine's adapter as its port.
//! The host's layer-3 configuration (addresses, routes in every table, rules naming the
//! adapter) moves from the adapter to the bridge, which takes the adapter's MAC, so the
//! machine keeps its connectivity (and its DHCP lease); `restore_adapter` moves it back.
//!
//! Both moves take the links as they are *now* (see [`edgenet_host::link_config`]): after a
//! reboot, a DHCP renewal or a killed run, what is on the links is what moves, and a move never
//! deletes anything from the link it moves to. The snapshot keeps only what edgenet itself
//! changes on the adapter: its bridge port state, and whether it was up.

use edgenet_core::mac::MacAddr;
use edgenet_core::plan::SwitchPlan;
use edgenet_host::netlink::{BridgeSpec, Netlink};
use serde::{Deserialize, Serialize};

use super::{SwitchDriver, SwitchLive};
use crate::error::DeployError;
use crate::journal::{Journal, Ownership};
use crate::state::ObjectKind;

/// The adapter's link settings before edgenet made it a port of the switch. (Older states
/// also listed addresses and routes here; they are ignored: the live ones move.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterSnapshot {
    pub name: String,
    pub mac: Option<MacAddr>,
    pub mtu: u32,
    pub up: bool,
    /// `net.ipv6.conf.<adapter>.disable_ipv6` before: a port does no IPv6 of its own (its
    /// SLAAC prefix route would win over the bridge's), and gets this back on remove. `None`
    /// without IPv6, or in states of earlier versions (then left as it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_ipv6: Option<String>,
}

/// `net/ipv6/conf/<link>/<key>`, the slash form (a link name may contain dots).
pub fn ipv6_conf(link: &str, key: &str) -> String {
    format!("net/ipv6/conf/{link}/{key}")
}

impl AdapterSnapshot {
    pub fn take(nl: &mut Netlink, adapter: &str) -> Result<AdapterSnapshot, DeployError> {
        let link = nl
            .link(adapter)?
            .ok_or_else(|| DeployError::Unsupported(format!("adapter {adapter} does not exist")))?;
        Ok(AdapterSnapshot {
            name: adapter.to_string(),
            mac: link.mac,
            mtu: link.mtu,
            up: link.up,
            disable_ipv6: edgenet_host::sysctl::read(&ipv6_conf(adapter, "disable_ipv6")).ok(),
        })
    }
}

/// The adapter now: by its name, or, renamed since (`ip link set up0 name enp3s0`), the one
/// link with its MAC that is not the bridge and not one of this deployment's (a port of the
/// bridge first). `None` when it is gone.
pub fn find_adapter(
    nl: &mut Netlink,
    snap: &AdapterSnapshot,
    bridge: &str,
    own: &Ownership,
) -> Result<Option<String>, DeployError> {
    if nl.link(&snap.name)?.is_some() {
        return Ok(Some(snap.name.clone()));
    }
    let Some(mac) = snap.mac else {
        return Ok(None);
    };
    let mut candidates: Vec<_> = nl
        .links()?
        .into_iter()
        .filter(|l| {
            l.name != bridge
                && l.mac == Some(mac)
                && !own.owns(l)
                && l.kind.as_deref() != Some("bridge")
        })
        .collect();
    candidates.sort_by_key(|l| l.master.as_deref() != Some(bridge));
    let ports = candidates
        .iter()
        .filter(|l| l.master.as_deref() == Some(bridge))
        .count();
    Ok(match (ports, candidates.len()) {
        (1, _) | (0, 1) => candidates.into_iter().next().map(|l| l.name),
        _ => None,
    })
}

/// Gives the adapter its configuration back: everything on the bridge moves to it while it is
/// still a port (when the bridge is already gone, e.g. after a reboot, only rules naming the
/// bridge remain to move), then it leaves the bridge and gets its MTU and state back. Whatever
/// the adapter already has is left on it. Returns what was restored.
pub fn restore_adapter(
    nl: &mut Netlink,
    snap: &AdapterSnapshot,
    bridge: &str,
    own: &Ownership,
) -> Result<Vec<String>, DeployError> {
    let renamed;
    let snap = match find_adapter(nl, snap, bridge, own)? {
        Some(name) if name == snap.name => snap,
        Some(name) => {
            renamed = AdapterSnapshot {
                name,
                ..snap.clone()
            };
            &renamed
        }
        None => {
            return Err(DeployError::Unsupported(format!(
                "adapter {} is gone; nothing to restore it to",
                snap.name
            )))
        }
    };
    let Some(link) = nl.link(&snap.name)? else {
        return Err(DeployError::Unsupported(format!(
            "adapter {} is gone; nothing to restore it to",
            snap.name
        )));
    };
    // Only a bridge of this deployment (or the one the adapter is a port of) gives anything
    // back: a foreign link that took the name keeps what it has.
    let ours = match nl.link(bridge)? {
        Some(b) => own.owns(&b) || link.master.as_deref() == Some(bridge),
        None => true,
    };
    // Up first when it was up: routes cannot be put on a link that is down (a renamed adapter
    // may have been taken down on the way).
    if snap.up && !link.up {
        nl.set_up(&snap.name, true)?;
    }
    // IPv6 back on the adapter first: the bridge's IPv6 addresses move to it.
    if let Some(previous) = &snap.disable_ipv6 {
        let key = ipv6_conf(&snap.name, "disable_ipv6");
        if edgenet_host::sysctl::read(&key).is_ok_and(|v| v.trim() != previous.trim()) {
            edgenet_host::sysctl::write(&key, previous)?;
        }
    }
    let moved = if ours {
        nl.move_link_config(bridge, &snap.name)?
    } else {
        Default::default()
    };
    let mut done: Vec<String> = moved
        .describe()
        .into_iter()
        .map(|m| format!("moved {m} from {bridge} back to {}", snap.name))
        .collect();
    if link.master.as_deref() == Some(bridge) {
        nl.set_master(&snap.name, None)?;
        done.push(format!("released {} from {bridge}", snap.name));
    }
    let link = nl.link(&snap.name)?.expect("checked above");
    if link.mtu != snap.mtu {
        nl.set_mtu(&snap.name, snap.mtu)?;
        done.push(format!("set MTU {} on {} back", snap.mtu, snap.name));
    }
    if link.up != snap.up {
        nl.set_up(&snap.name, snap.up)?;
    }
    // Leaving the bridge can drop routes through the adapter; put back any that went.
    if !moved.is_empty() {
        nl.apply_link_config(&moved, &snap.name)?;
    }
    Ok(done)
}

/// The bridge takes router advertisements as the adapter did (its `accept_ra`, `autoconf`),
/// and the port stops doing IPv6: its SLAAC address and kernel prefix route would otherwise
/// stay on the port and win over the bridge's, and IPv6 from the host would go nowhere.
fn port_without_ipv6(adapter: &str, bridge: &str, j: &mut dyn Journal) -> Result<(), DeployError> {
    use edgenet_host::sysctl;
    for key in ["accept_ra", "autoconf"] {
        if let (Ok(want), Ok(have)) = (
            sysctl::read(&ipv6_conf(adapter, key)),
            sysctl::read(&ipv6_conf(bridge, key)),
        ) {
            if want.trim() != have.trim() {
                sysctl::write(&ipv6_conf(bridge, key), &want)?;
            }
        }
    }
    let key = ipv6_conf(adapter, "disable_ipv6");
    if sysctl::read(&key)?.trim() != "1" {
        sysctl::write(&key, "1")?;
        j.changed(format!(
            "stopped IPv6 on {adapter}, a port of {bridge} (its router advertisements now configure {bridge})"
        ));
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

        let moved = nl.move_link_config(adapter, name)?;
        for item in moved.describe() {
            j.changed(format!("moved {item} from {adapter} to {name}"));
        }
        for warning in moved.skipped() {
            j.changed(format!("warning: {warning}"));
        }
        if snap.disable_ipv6.is_some() {
            port_without_ipv6(adapter, name, j)?;
        }
        j.step("switch-address")?;
        Ok(())
    }

    fn remove(&self, nl: &mut Netlink, name: &str, own: &Ownership) -> Result<bool, DeployError> {
        if let Some(snap) = self.snapshot {
            restore_adapter(nl, snap, name, own)?;
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
