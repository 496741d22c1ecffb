//! The external switch (scalable clusters): a bridge with the machine's adapter as its port.
//! The bridge takes the adapter's MAC and the host's configuration (see [`super::adapter`]),
//! so the machine keeps its connectivity and its DHCP lease.

use std::net::Ipv6Addr;

use edgenet_core::mac::MacAddr;
use edgenet_core::plan::SwitchPlan;
use edgenet_host::link_config::SavedLinkConfig;
use edgenet_host::netlink::{AddrGenMode, LinkLocal};

use super::adapter::{
    ipv6_conf, keep_host_config, move_addressing, restore_adapter, restore_on_bridge,
    AdapterRecord, AdapterSnapshot, OwnAddresses,
};
use super::bridge::{bridge_live, create_marked_bridge, delete_bridge, NewBridge};
use super::{SwitchDriver, SwitchLive};
use crate::error::DeployError;
use crate::journal::{Journal, Ownership};
use crate::kernel::Kernel;
use crate::state::{DeploymentState, ObjectKind, ObjectStatus};

pub struct ExternalSwitch {
    pub bridge: String,
    /// The adapter before the first change (from the state's record); `None` when a
    /// user-made bridge already has the adapter as its port and is used as it is.
    pub snapshot: Option<AdapterSnapshot>,
    /// The bridge is the user's (recorded as adopted): used, never deleted.
    pub users_bridge: bool,
    /// The host's configuration on the bridge as last recorded: what goes back on the adapter
    /// when neither link has it (the bridge was deleted by hand).
    pub moved: Option<SavedLinkConfig>,
    /// Set by `ensure` when it made the bridge or moved the adapter's configuration to it:
    /// the record of the host's configuration is taken again (see [`keep_host_config`]).
    moved_now: std::cell::Cell<bool>,
    /// The deployment's own addresses and MACs: the adapter's neighbour entries for them are
    /// not carried to the bridge.
    pub ours: OwnAddresses,
}

impl ExternalSwitch {
    /// The switch `bridge` as the state records it (see [`super::adapter::adopt_adapter`]).
    pub fn from_state(bridge: &str, state: &DeploymentState) -> ExternalSwitch {
        let record = state
            .objects
            .iter()
            .filter_map(AdapterRecord::of)
            .find(|r| r.bridge == bridge);
        ExternalSwitch {
            bridge: bridge.to_string(),
            snapshot: record.as_ref().map(|r| r.adapter.clone()),
            users_bridge: state
                .object(ObjectKind::Bridge, bridge, None)
                .is_some_and(|o| o.status == ObjectStatus::Adopted),
            moved: record.and_then(|r| r.moved),
            moved_now: std::cell::Cell::new(false),
            ours: OwnAddresses::of(
                state.pending_plan.as_ref().or(state.applied_plan.as_ref()),
                state,
            ),
        }
    }

    /// The switch of `record` to give its adapter back (`remove`): the bridge is never the
    /// user's there.
    pub fn to_release(record: &AdapterRecord) -> ExternalSwitch {
        ExternalSwitch {
            bridge: record.bridge.clone(),
            snapshot: Some(record.adapter.clone()),
            users_bridge: false,
            moved: record.moved.clone(),
            moved_now: std::cell::Cell::new(false),
            ours: OwnAddresses::default(),
        }
    }

    /// The switch of one adapter record (the state may record more than one).
    pub fn from_record(record: &AdapterRecord, state: &DeploymentState) -> ExternalSwitch {
        ExternalSwitch {
            bridge: record.bridge.clone(),
            snapshot: Some(record.adapter.clone()),
            users_bridge: state
                .object(ObjectKind::Bridge, &record.bridge, None)
                .is_some_and(|o| o.status == ObjectStatus::Adopted),
            moved: record.moved.clone(),
            moved_now: std::cell::Cell::new(false),
            ours: OwnAddresses::of(
                state.pending_plan.as_ref().or(state.applied_plan.as_ref()),
                state,
            ),
        }
    }
}

impl SwitchDriver for ExternalSwitch {
    fn ensure(
        &self,
        k: &mut dyn Kernel,
        plan: &SwitchPlan,
        own: &Ownership,
        j: &mut dyn Journal,
    ) -> Result<bool, DeployError> {
        let name = plan.name.as_str();
        let Some(snap) = self.snapshot.as_ref() else {
            // A bridge the user made, with the adapter as its port: used as it is, except for
            // addresses left on the port, unreachable there (status says so): they move to
            // the bridge.
            j.step("switch")?;
            j.step("switch-adapter")?;
            if let Some(adapter) = plan.adapter.as_deref() {
                let is_port = k
                    .link(adapter)?
                    .is_some_and(|a| a.master.as_deref() == Some(name));
                if is_port && !k.link_config(adapter)?.addresses.is_empty() {
                    let moved = k.move_link_config(adapter, name)?;
                    for item in moved.describe() {
                        j.changed(format!("moved {item} from {adapter} to {name}"));
                    }
                }
            }
            j.step("switch-address")?;
            return Ok(false);
        };
        let adapter = snap.name.as_str();
        let mtu = plan.mtu.unwrap_or(snap.mtu);
        // A new bridge comes up only once the adapter is its port: up without a port it has
        // no carrier, and the GetLink that finds it for the port would run that link-state
        // event under RTNL (linkwatch: an RCU grace period every other deploy on the host
        // waits for); up with its port it has carrier from the start.
        let mut bring_up = false;
        let mut found = false;
        let mut taken = Vec::new();
        match k.link(name)? {
            None => {
                let mode = k.ipv6_addr_gen_mode(adapter)?;
                taken = link_locals_to_take(k, adapter, mode, mtu)?;
                // The adapter's MAC: the LAN (and its DHCP server) keeps seeing the same host.
                let then = NewBridge::Down {
                    own_link_local: taken.is_empty(),
                };
                create_marked_bridge(k, name, mtu, snap.mac, own, j, then)?;
                // Still down: with IPv6 off it never makes an address nor sends a frame; it
                // makes its addresses as the adapter does.
                inherit_ipv6_off(snap, name, j)?;
                inherit_addr_gen_mode(k, adapter, mode, name, mtu)?;
                bring_up = true;
                j.changed(format!(
                    "created bridge {name} with {adapter}'s MAC (MTU {mtu})"
                ));
            }
            Some(link) if own.owns(&link) && link.kind.as_deref() == Some("bridge") => {
                found = true;
                if link.mtu != mtu {
                    k.set_mtu(name, mtu)?;
                    j.changed(format!("set MTU {mtu} on {name} (was {})", link.mtu));
                }
                // The adapter's MAC (changed by hand, or an adapter the plan changed).
                if let Some(mac) = snap.mac.filter(|m| link.mac != Some(*m)) {
                    k.set_mac(name, mac)?;
                    j.changed(format!(
                        "set MAC {mac} ({adapter}'s) on {name} back (it had {})",
                        link.mac.map(|m| m.to_string()).unwrap_or_else(|| "none".into())
                    ));
                }
                inherit_ipv6_off(snap, name, j)?;
                if !link.up {
                    k.set_up(name, true)?;
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

        let link = k
            .link(adapter)?
            .ok_or_else(|| DeployError::missing("adapter", adapter, "vanished"))?;
        if link.master.as_deref() != Some(name) {
            k.set_master(adapter, Some(name))?;
            j.changed(format!("made {adapter} a port of {name}"));
        }
        if !link.up {
            k.set_up(adapter, true)?;
        }
        if bring_up {
            k.set_up(name, true)?;
        }
        if !taken.is_empty() {
            take_link_locals(k, name, adapter, &taken)?;
        } else if found {
            restore_link_local(k, name, snap.mac, j)?;
        }
        j.step("switch-adapter")?;

        if move_addressing(k, snap, name, &self.ours, j)? || !found {
            self.moved_now.set(true);
        }
        // A bridge set down by hand lost its routes (the kernel flushes them) and its IPv6
        // addresses; bringing it up gives back neither: the record does. (A bridge made now
        // gets the record back when neither link has any address, see `keep_host_config`.)
        if let Some(recorded) = self.moved.as_ref().filter(|_| found) {
            restore_on_bridge(k, recorded, name, adapter, j)?;
        }
        j.step("switch-address")?;
        Ok(!found)
    }

    /// The adapter gets the host's configuration back while it is still a port.
    fn release(&self, k: &mut dyn Kernel, own: &Ownership) -> Result<Vec<String>, DeployError> {
        match &self.snapshot {
            Some(snap) => restore_adapter(k, snap, self.moved.as_ref(), &self.bridge, own),
            None => Ok(Vec::new()),
        }
    }

    /// A bridge the user made is used, never deleted; ours goes once released.
    fn remove(&self, k: &mut dyn Kernel, name: &str, own: &Ownership) -> Result<bool, DeployError> {
        if self.users_bridge && name == self.bridge {
            return Ok(false);
        }
        delete_bridge(k, name, own)
    }

    fn live(
        &self,
        k: &mut dyn Kernel,
        name: &str,
        own: &Ownership,
    ) -> Result<SwitchLive, DeployError> {
        bridge_live(k, name, own)
    }

    fn settle(
        &self,
        k: &mut dyn Kernel,
        state: &mut DeploymentState,
        plan: &SwitchPlan,
    ) -> Result<(Vec<String>, bool), DeployError> {
        if self.snapshot.is_none() {
            return Ok((Vec::new(), false));
        }
        keep_host_config(k, state, plan, self.moved_now.get())
    }
}

/// An adapter with IPv6 off (`net.ipv6.conf.<adapter>.disable_ipv6=1` before edgenet made it a
/// port, as recorded) hands that on to the bridge that takes its place on the LAN, as it hands
/// on its MAC and its addresses: set while the bridge is still down, it never makes an IPv6
/// address, never answers nor solicits on the LAN, never takes a router advertisement. A
/// bridge found with IPv6 on again is set back (reported as a change, and by `status` as
/// drift): the recorded adapter is what deploy reproduces, as a reboot would.
pub(crate) fn inherit_ipv6_off(
    snap: &AdapterSnapshot,
    bridge: &str,
    j: &mut dyn Journal,
) -> Result<(), DeployError> {
    use edgenet_host::sysctl;
    if snap.disable_ipv6.as_deref().map(str::trim) != Some("1") {
        return Ok(());
    }
    let key = ipv6_conf(bridge, "disable_ipv6");
    match sysctl::read(&key) {
        Ok(v) if v.trim() == "1" => {}
        Ok(_) => {
            sysctl::write(&key, "1")?;
            j.changed(format!(
                "turned IPv6 off on {bridge}, as it was on {} before it became a port",
                snap.name
            ));
        }
        // No IPv6 in this kernel: nothing to turn off.
        Err(_) => {}
    }
    Ok(())
}

/// An adapter that makes its IPv6 addresses from a secret rather than from its MAC (`addr_gen_mode`
/// 2, stable-privacy: NetworkManager's and RFC 7217's way; or 3, a random secret) hands that on
/// to the new bridge, still down, so that the host's link-local and SLAAC addresses on the LAN
/// never start giving its MAC away because a bridge took the adapter's place (B24 F3). For
/// stable-privacy the bridge takes the adapter's own `stable_secret`, when it has one (writing
/// it sets the mode as well); one that uses the namespace's (`net.ipv6.conf.default.
/// stable_secret`) has nothing of its own, and the bridge, new, already has that one and its
/// mode from the defaults. With the same secret the bridge's address is the adapter's when
/// neither has a permanent hardware address (a veth; the kernel hashes that in, not the MAC),
/// else another one from the same secret, never the MAC. Random: the bridge draws its own
/// secret, as the kernel does for each link. Nothing is changed on the adapter, so `remove`
/// leaves it as it was. A cache of what the kernel would make: logged, not a change.
fn inherit_addr_gen_mode(
    k: &mut dyn Kernel,
    adapter: &str,
    mode: Option<AddrGenMode>,
    bridge: &str,
    mtu: u32,
) -> Result<(), DeployError> {
    use edgenet_host::sysctl;
    let Some(mode @ (AddrGenMode::StablePrivacy | AddrGenMode::Random)) = mode else {
        return Ok(());
    };
    // Below IPv6's minimum MTU the bridge has no IPv6 to set.
    if mtu < 1280 {
        return Ok(());
    }
    if mode == AddrGenMode::StablePrivacy {
        // Unset (EIO): the adapter uses the namespace's default, which the bridge has.
        if let Ok(secret) = sysctl::read(&ipv6_conf(adapter, "stable_secret")) {
            sysctl::write(&ipv6_conf(bridge, "stable_secret"), &secret)?;
        }
    }
    if k.ipv6_addr_gen_mode(bridge)? != Some(mode) {
        k.set_ipv6_addr_gen_mode(bridge, mode)?;
    }
    tracing::info!(
        "{bridge} makes its IPv6 addresses as {adapter} does ({mode:?}), not from its MAC"
    );
    Ok(())
}

/// The IPv6 link-local addresses of the adapter that the new bridge takes as they are, with no
/// duplicate address detection of its own: the bridge has the adapter's MAC, so the address
/// the kernel would make on it is the very one the adapter already has, and the LAN already
/// found free. Taken, they spare every host on the LAN a second neighbour solicitation, and the
/// host has IPv6 on the bridge at once (a new address is tentative for a second or two). The
/// bridge is then made without a link-local address of its own (`addrgenmode none`); the
/// kernel still forms its SLAAC addresses from its MAC (EUI-64: the adapter's very ones) and
/// still sends its router solicitation (as detection completes: at once, for an address that
/// needs none). None — the bridge makes and checks its own, as the kernel does — unless all of:
///
/// - the adapter makes its link-local address from its MAC (`addrgenmode eui64`, the kernel's
///   default), read from the adapter's own IPv6 settings. With `stable_secret` or `random` the
///   address depends on a secret, and so do its SLAAC addresses: the bridge makes its own in
///   the adapter's mode (see [`inherit_addr_gen_mode`]), not from the MAC. With `none` the
///   adapter has no kernel-made address to hand on, and the bridge does as the kernel's
///   defaults say.
/// - it has one that detection found free (neither tentative nor dadfailed): an address not
///   yet, or not, found free must be checked by the bridge itself. Only those go.
/// - the bridge can do IPv6 (an MTU of at least 1280).
fn link_locals_to_take(
    k: &mut dyn Kernel,
    adapter: &str,
    mode: Option<AddrGenMode>,
    mtu: u32,
) -> Result<Vec<LinkLocal>, DeployError> {
    const IPV6_MIN_MTU: u32 = 1280;
    if mtu < IPV6_MIN_MTU || mode != Some(AddrGenMode::Eui64) {
        return Ok(Vec::new());
    }
    Ok(k.ipv6_link_locals(adapter)?
        .into_iter()
        .filter(|ll| ll.usable)
        .collect())
}

/// Puts the adapter's link-local addresses on the bridge, now up with the adapter as its port
/// (see [`link_locals_to_take`]), then sets the bridge making its own again (`addrgenmode
/// eui64`, as the adapter does): the mode takes effect the next time the bridge comes up, so
/// the address carried over stays as it is (no second address, no detection), and a bridge set
/// down and up later makes that very address again from its MAC, checked on the LAN as after
/// any down/up. One the kernel refuses (IPv6 off on the bridge) leaves the bridge making its
/// own as well: when IPv6 comes on there, the kernel makes one. A cache of what the kernel
/// would do: logged, not a change.
fn take_link_locals(
    k: &mut dyn Kernel,
    bridge: &str,
    adapter: &str,
    taken: &[LinkLocal],
) -> Result<(), DeployError> {
    for ll in taken {
        match k.add_link_local(bridge, ll) {
            Ok(_) => tracing::info!(
                "gave {bridge} {adapter}'s IPv6 link-local address {}/{} (found free by {adapter} already: no second duplicate address detection)",
                ll.address,
                ll.prefix_len
            ),
            Err(e) => {
                tracing::info!(
                    "{bridge} makes its own IPv6 link-local address: the kernel refused {adapter}'s ({e})"
                );
                break;
            }
        }
    }
    k.set_ipv6_addr_gen_mode(bridge, AddrGenMode::Eui64)?;
    Ok(())
}

/// A bridge left in mode `none` (made so by an earlier edgenet, which did not set it back to
/// `eui64` after taking the adapter's address) has no link-local address once it was set down
/// (the kernel drops a link's IPv6 addresses when it goes down and, in mode `none`, makes none
/// when it comes back up): the one the kernel would have made from its MAC — the adapter's —
/// goes back, and the bridge makes its own from then on (`eui64`), so a later down/up needs no
/// deploy. A bridge in mode `none` that still has its address is only set to `eui64`. Nothing
/// for a bridge in another mode: the kernel makes its own.
fn restore_link_local(
    k: &mut dyn Kernel,
    bridge: &str,
    mac: Option<MacAddr>,
    j: &mut dyn Journal,
) -> Result<(), DeployError> {
    if k.ipv6_addr_gen_mode(bridge)? != Some(AddrGenMode::None) {
        return Ok(());
    }
    let mac = mac.filter(|m| !m.is_zero());
    let (Some(mac), true) = (mac, k.ipv6_link_locals(bridge)?.is_empty()) else {
        k.set_ipv6_addr_gen_mode(bridge, AddrGenMode::Eui64)?;
        return Ok(());
    };
    let ll = LinkLocal {
        address: eui64_link_local(mac),
        prefix_len: 64,
        usable: true,
    };
    match k.add_link_local(bridge, &ll) {
        Ok(_) => j.changed(format!(
            "put back IPv6 link-local address {}/64 on {bridge} (it had none, as after being set down)",
            ll.address
        )),
        Err(e) => {
            tracing::info!(
                "{bridge} makes its own IPv6 link-local address: the kernel refused {} ({e})",
                ll.address
            );
        }
    }
    k.set_ipv6_addr_gen_mode(bridge, AddrGenMode::Eui64)?;
    Ok(())
}

/// The link-local address the kernel makes from `mac` in mode `eui64` (RFC 4291 appendix A:
/// the universal/local bit flipped, `ff:fe` in the middle).
fn eui64_link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_eui64_link_local_address_is_the_kernels() {
        // As the kernel made it for a veth with this MAC: fe80::4886:53ff:fe44:e345.
        let mac = "4a:86:53:44:e3:45".parse().unwrap();
        assert_eq!(
            super::eui64_link_local(mac).to_string(),
            "fe80::4886:53ff:fe44:e345"
        );
        let local = "02:00:5e:00:53:01".parse().unwrap();
        assert_eq!(
            super::eui64_link_local(local).to_string(),
            "fe80::5eff:fe00:5301"
        );
    }
}
