//! The adapter of an external switch: taken over ([`adopt_adapter`], [`move_addressing`]) and
//! given back ([`restore_adapter`]). The host's layer-3 configuration (addresses, routes in every table, rules naming the
//! adapter) moves from the adapter to the bridge, which takes the adapter's MAC, so the
//! machine keeps its connectivity (and its DHCP lease); `restore_adapter` moves it back.
//!
//! Both moves take the links as they are *now* (see [`edgenet_host::link_config`]): after a
//! reboot, a DHCP renewal or a killed run, what is on the links is what moves, and a move never
//! deletes anything from the link it moves to. The snapshot keeps only what edgenet itself
//! changes on the adapter: its bridge port state, and whether it was up.

use edgenet_core::mac::MacAddr;
use edgenet_core::plan::SwitchPlan;
use edgenet_host::link_config::SavedLinkConfig;
use serde::{Deserialize, Serialize};

use crate::error::DeployError;
use crate::journal::{Journal, Ownership};
use crate::kernel::Kernel;
use crate::state::{DeploymentState, KernelObject, ObjectKind, ObjectStatus};

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
    pub fn take(k: &mut dyn Kernel, adapter: &str) -> Result<AdapterSnapshot, DeployError> {
        let link = k
            .link(adapter)?
            .ok_or_else(|| DeployError::missing("adapter", adapter, "does not exist"))?;
        Ok(AdapterSnapshot {
            name: adapter.to_string(),
            mac: link.mac,
            mtu: link.mtu,
            up: link.up,
            disable_ipv6: edgenet_host::sysctl::read(&ipv6_conf(adapter, "disable_ipv6")).ok(),
        })
    }
}

/// The adapter now: by its name (with its MAC), or, renamed since (`ip link set up0 name
/// enp3s0`, or names swapped at boot), the one link with its MAC that is not the bridge and not
/// one of this deployment's (a port of the bridge first); the link under its name when no link
/// has its MAC (the NIC was replaced). `None` when it is gone.
pub fn find_adapter(
    k: &mut dyn Kernel,
    snap: &AdapterSnapshot,
    bridge: &str,
    own: &Ownership,
) -> Result<Option<String>, DeployError> {
    let by_name = k.link(&snap.name)?;
    let Some(mac) = snap.mac else {
        return Ok(by_name.map(|_| snap.name.clone()));
    };
    if by_name.as_ref().is_some_and(|l| l.mac == Some(mac)) {
        return Ok(Some(snap.name.clone()));
    }
    let mut candidates: Vec<_> = k
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
        (0, 0) => by_name.map(|_| snap.name.clone()),
        _ => None,
    })
}

/// The adapters `state` records that `facts` holds under several names by their recorded MAC
/// (none under its name, no port of the bridge to tell): (recorded, candidates), for a message
/// that names them instead of calling the adapter missing.
pub fn ambiguous_in_facts(
    state: &DeploymentState,
    facts: &edgenet_core::host_facts::HostFacts,
) -> Vec<(String, Vec<String>)> {
    let own = crate::names::alias(&state.deployment_id);
    let found = deployed_in_facts(state, facts);
    state
        .objects
        .iter()
        .filter_map(AdapterRecord::of)
        .filter(|r| !found.iter().any(|(was, _)| *was == r.adapter.name))
        .filter_map(|r| {
            let mac = r.adapter.mac?.to_string();
            let names: Vec<String> = facts
                .links
                .iter()
                .filter(|l| {
                    l.name != r.bridge
                        && l.mac.as_deref() == Some(mac.as_str())
                        && l.alias.as_deref() != Some(own.as_str())
                        && l.kind.as_deref() != Some("bridge")
                })
                .map(|l| l.name.clone())
                .collect();
            (names.len() > 1).then(|| (r.adapter.name.clone(), names))
        })
        .collect()
}

/// The adapters `state` records, as `facts` has them now: under their recorded name, or
/// renamed since and found by their recorded MAC as [`find_adapter`] finds them in the kernel:
/// (recorded, name now). For the checks and the plan before a deploy, so a config still naming
/// the old name means the adapter (a NIC renamed while deployed, or named anew at boot), as
/// the deploy itself follows it.
pub fn deployed_in_facts(
    state: &DeploymentState,
    facts: &edgenet_core::host_facts::HostFacts,
) -> Vec<(String, String)> {
    let own = crate::names::alias(&state.deployment_id);
    let mut found = Vec::new();
    for record in state.objects.iter().filter_map(AdapterRecord::of) {
        let (snap, bridge) = (&record.adapter, record.bridge.as_str());
        let mac = snap.mac.map(|m| m.to_string());
        // Under its name with its MAC (or no MAC recorded to tell): the same adapter. Under
        // its name with another MAC: another NIC took the name (names swapped at boot), and
        // the adapter is looked for by its MAC below.
        match facts.link(&snap.name) {
            Some(l) if mac.is_none() || l.mac == mac => {
                found.push((snap.name.clone(), snap.name.clone()));
                continue;
            }
            _ => {}
        }
        let Some(mac) = mac else {
            continue;
        };
        let candidates: Vec<_> = facts
            .links
            .iter()
            .filter(|l| {
                l.name != bridge
                    && l.mac.as_deref() == Some(mac.as_str())
                    && l.alias.as_deref() != Some(own.as_str())
                    && l.kind.as_deref() != Some("bridge")
            })
            .collect();
        let ports: Vec<_> = candidates
            .iter()
            .filter(|l| l.master.as_deref() == Some(bridge))
            .collect();
        let now = match (ports.as_slice(), candidates.as_slice()) {
            ([port], _) => Some(port.name.clone()),
            ([], [only]) => Some(only.name.clone()),
            _ => None,
        };
        if let Some(now) = now {
            found.push((snap.name.clone(), now));
        }
    }
    found
}

/// Gives the adapter its configuration back: everything on the bridge moves to it while it is
/// still a port (when the bridge is already gone, e.g. after a reboot, only rules naming the
/// bridge remain to move), then it leaves the bridge and gets its MTU and state back. Whatever
/// the adapter already has is left on it. Returns what was restored.
pub fn restore_adapter(
    k: &mut dyn Kernel,
    snap: &AdapterSnapshot,
    recorded: Option<&SavedLinkConfig>,
    bridge: &str,
    own: &Ownership,
) -> Result<Vec<String>, DeployError> {
    let renamed;
    let was = snap.name.clone();
    let snap = match find_adapter(k, snap, bridge, own)? {
        Some(name) if name == snap.name => snap,
        Some(name) => {
            renamed = AdapterSnapshot {
                name,
                ..snap.clone()
            };
            &renamed
        }
        None => {
            return Err(DeployError::missing(
                "adapter",
                &snap.name,
                "is gone; nothing to restore it to",
            ))
        }
    };
    let Some(link) = k.link(&snap.name)? else {
        return Err(DeployError::missing(
            "adapter",
            &snap.name,
            "is gone; nothing to restore it to",
        ));
    };
    // Only a bridge of this deployment (or the one the adapter is a port of) gives anything
    // back: a foreign link that took the name keeps what it has.
    let bridge_gone = k.link(bridge)?.is_none();
    let ours = match k.link(bridge)? {
        Some(b) => own.owns(&b) || link.master.as_deref() == Some(bridge),
        None => true,
    };
    // Up first when it was up: routes cannot be put on a link that is down (a renamed adapter
    // may have been taken down on the way).
    if snap.up && !link.up {
        k.set_up(&snap.name, true)?;
    }
    // IPv6 back on the adapter first: the bridge's IPv6 addresses move to it.
    if let Some(previous) = &snap.disable_ipv6 {
        let key = ipv6_conf(&snap.name, "disable_ipv6");
        if edgenet_host::sysctl::read(&key).is_ok_and(|v| v.trim() != previous.trim()) {
            edgenet_host::sysctl::write(&key, previous)?;
        }
    }
    // The bridge's neighbour entries before its addresses go (the kernel flushes them with
    // the last one), but those of the nodes behind its other ports: they go with the bridge.
    let neighbours = if ours && !bridge_gone {
        k.movable_neighbours(bridge, Some(&snap.name))?
    } else {
        Vec::new()
    };
    let moved = if ours {
        k.move_link_config(bridge, &snap.name)?
    } else {
        Default::default()
    };
    let mut done: Vec<String> = moved
        .describe()
        .into_iter()
        .map(|m| format!("moved {m} from {bridge} back to {}", snap.name))
        .collect();
    done.extend(moved.beside().iter().map(|b| {
        format!(
            "kept {b} as it is (not edgenet's); the route moved back to {} went beside it",
            snap.name
        )
    }));
    done.extend(moved.beside_hops().iter().map(|h| {
        format!(
            "kept the hop {h} as it is (not edgenet's); the hop moved back to {} is beside it in the same IPv6 multipath route",
            snap.name
        )
    }));
    if link.master.as_deref() == Some(bridge) {
        k.set_master(&snap.name, None)?;
        done.push(format!("released {} from {bridge}", snap.name));
    }
    let link = k.link(&snap.name)?.expect("checked above");
    if link.mtu != snap.mtu {
        k.set_mtu(&snap.name, snap.mtu)?;
        done.push(format!("set MTU {} on {} back", snap.mtu, snap.name));
    }
    if link.up != snap.up {
        k.set_up(&snap.name, snap.up)?;
    }
    // Released: the adapter takes the neighbour entries back (with its IPv6 back first: the
    // kernel takes no IPv6 entry on a link without it).
    carry_neighbours(k, &neighbours, bridge, &snap.name)?;
    // Leaving the bridge can drop routes through the adapter; put back any that went. Routes
    // the adapter refused while it was a port (an IPv6 gateway not reachable through a port)
    // stayed on the bridge: they move now that it is not one.
    // Only when something did go: the move is not run a second time for nothing.
    if !moved.is_empty() {
        let now = k.link_config(&snap.name)?.describe();
        if moved.describe().iter().any(|d| !now.contains(d)) {
            k.apply_link_config(&moved, &snap.name)?;
        }
    }
    if ours && !moved.skipped().is_empty() && k.link(bridge)?.is_some() {
        let rest = k.move_link_config(bridge, &snap.name)?;
        done.extend(
            rest.describe()
                .into_iter()
                .map(|m| format!("moved {m} from {bridge} back to {}", snap.name)),
        );
        done.extend(
            rest.skipped()
                .iter()
                .map(|w| format!("could not put back {w}")),
        );
    }
    // The recorded configuration is the truth when the bridge lost it (deleted by hand, or
    // made again empty): whatever it holds that is on neither link goes on the adapter, and
    // what the kernel refuses is said so, never claimed restored. (While the bridge still
    // carried the host's addresses, those are newer than the record: a renewed lease.)
    let lost = bridge_gone || moved.addresses.is_empty();
    if let Some(saved) = recorded.filter(|_| ours && lost) {
        let mut present = k.link_config(&snap.name)?.describe();
        if k.link(bridge)?.is_some() {
            present.extend(k.link_config(bridge)?.describe());
        }
        let elsewhere = held_elsewhere(k, saved, &snap.name, &was, bridge)?;
        for (item, line) in elsewhere {
            present.push(item);
            done.push(line);
        }
        let (back, refused) = k.apply_saved_onto(saved, &snap.name, &present)?;
        let now = k.link_config(&snap.name)?.describe();
        for item in back {
            if now.contains(&item) || !item.starts_with("address") {
                done.push(format!(
                    "put back {item} on {} (as recorded; it was on neither link)",
                    snap.name
                ));
            } else {
                done.push(format!(
                    "could not put back {item} on {}: the kernel took it but it is not there",
                    snap.name
                ));
            }
        }
        done.extend(
            refused
                .into_iter()
                .map(|r| format!("could not put back {r} on {}", snap.name)),
        );
    }
    Ok(done)
}

/// What of the recorded configuration another up link of the host has now, so it is not put
/// on the adapter too: after a reboot that swapped the NICs' names, the boot configures the
/// NIC that has the adapter's old name, and the recorded address on the adapter as well
/// would be the same address on two NICs. An address is held elsewhere when another up link
/// has its IP (whatever its prefix); a route when that link has it too, or when it goes
/// through that address's subnet (its gateway or destination there: without the address, the
/// adapter cannot reach it). Returns (description, what to report: a line starting "left ")
/// for each. `was`: the adapter's recorded name (the holder may have it now).
pub(crate) fn held_elsewhere(
    k: &mut dyn Kernel,
    saved: &SavedLinkConfig,
    adapter: &str,
    was: &str,
    bridge: &str,
) -> Result<Vec<(String, String)>, DeployError> {
    use ipnet::IpNet;
    use std::net::IpAddr;
    let recorded = saved.load();
    let wanted: Vec<IpNet> = recorded
        .address_strings()
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let up: Vec<String> = k
        .links()?
        .into_iter()
        .filter(|l| l.up && l.name != adapter && l.name != bridge)
        .map(|l| l.name)
        .collect();
    // (recorded address, the link that has its IP now)
    let mut held: Vec<(IpNet, String)> = Vec::new();
    for a in k.addresses()? {
        let ip = IpAddr::V4(a.address.addr());
        if let Some(w) = wanted.iter().find(|w| w.addr() == ip) {
            if up.contains(&a.link) && !held.iter().any(|(h, _)| h == w) {
                held.push((*w, a.link));
            }
        }
    }
    // IPv6 is listed per link: only for a global address (a link-local one is per link by
    // design, and a SLAAC one follows its NIC's MAC), so rarely.
    let global_v6 =
        |w: &IpNet| matches!(w.addr(), IpAddr::V6(a) if (a.segments()[0] & 0xffc0) != 0xfe80);
    if wanted.iter().any(global_v6) {
        for name in &up {
            // A link gone since the list is no holder.
            let Ok(config) = k.link_config(name) else {
                continue;
            };
            for a in config.address_strings() {
                let Ok(a) = a.parse::<IpNet>() else { continue };
                if let Some(w) = wanted.iter().find(|w| global_v6(w) && w.addr() == a.addr()) {
                    if !held.iter().any(|(h, _)| h == w) {
                        held.push((*w, name.clone()));
                    }
                }
            }
        }
    }
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let named = |on: &str| {
        if on == was && adapter != was {
            format!("{on} (another NIC has that name now; the adapter, by its MAC, is {adapter})")
        } else {
            on.to_string()
        }
    };
    let mut out: Vec<(String, String)> = held
        .iter()
        .map(|(w, on)| {
            (
                format!("address {w}"),
                format!(
                    "left address {w} on {}, which has it now: not put on {adapter} too (the host would have the same address on two NICs)",
                    named(on)
                ),
            )
        })
        .collect();
    let mut theirs: Vec<(String, Vec<String>)> = Vec::new();
    for (_, on) in &held {
        if !theirs.iter().any(|(n, _)| n == on) {
            let have = k.link_config(on).map(|c| c.describe()).unwrap_or_default();
            theirs.push((on.clone(), have));
        }
    }
    let routes = edgenet_host::link_config::LinkConfig {
        routes: recorded.routes.clone(),
        ..Default::default()
    }
    .describe();
    for route in routes {
        if let Some((on, _)) = theirs.iter().find(|(_, have)| have.contains(&route)) {
            out.push((
                route.clone(),
                format!("left route {route} on {on}, which has it now"),
            ));
            continue;
        }
        // `DEST [via GATEWAY] ...`, as `describe` writes it.
        let mut words = route.split(' ');
        let dest: Option<IpNet> = words.next().and_then(|d| d.parse().ok());
        let gateway: Option<IpAddr> = route
            .split(" via ")
            .nth(1)
            .and_then(|g| g.split(' ').next())
            .and_then(|g| g.parse().ok());
        let through = held.iter().find(|(w, _)| {
            let net = w.trunc();
            gateway.is_some_and(|g| net.contains(&g)) || dest.is_some_and(|d| net.contains(&d))
        });
        if let Some((w, on)) = through {
            out.push((
                route.clone(),
                format!(
                    "left route {route} off {adapter}: it goes through {}, which {on} has now (with {w})",
                    w.trunc()
                ),
            ));
        }
    }
    Ok(out)
}

/// The lines of [`restore_adapter`] for a report on `what` (the adapter as messages name it):
/// (what went back, what is left, each naming `what`). What the kernel refused ("could not
/// ...") is left for the administrator to add by hand; what another NIC has now ("left ...")
/// stays where it is.
pub fn report_lines(what: &str, done: Vec<String>) -> (Vec<String>, Vec<String>) {
    let (mut ok, mut left) = (Vec::new(), Vec::new());
    for line in done {
        if line.starts_with("could not") {
            left.push(format!("{what}: {line}; add it by hand"));
        } else if let Some(rest) = line.strip_prefix("left ") {
            left.push(format!("{what}: {rest}"));
        } else {
            ok.push(line);
        }
    }
    (ok, left)
}

/// The bridge takes router advertisements as the adapter did (its `accept_ra`, `autoconf`),
/// and the port stops doing IPv6: its SLAAC address and kernel prefix route would otherwise
/// stay on the port and win over the bridge's, and IPv6 from the host would go nowhere.
///
/// The values are read from the two links (one netlink request each, the same values
/// `/proc/sys/net/ipv6/conf/<link>/*` shows); only the writes go through `/proc/sys`.
fn port_without_ipv6(
    k: &mut dyn Kernel,
    adapter: &str,
    bridge: &str,
    j: &mut dyn Journal,
) -> Result<(), DeployError> {
    use edgenet_host::sysctl;
    let want = k.ipv6_settings(adapter)?;
    let have = k.ipv6_settings(bridge)?;
    if let (Some(want), Some(have)) = (want, have) {
        for (key, want, have) in [
            ("accept_ra", want.accept_ra, have.accept_ra),
            ("autoconf", want.autoconf, have.autoconf),
        ] {
            if want != have {
                sysctl::write(&ipv6_conf(bridge, key), &want.to_string())?;
            }
        }
    }
    let key = ipv6_conf(adapter, "disable_ipv6");
    let Some(now) = want else {
        // As a read of the missing /proc/sys file said.
        return Err(edgenet_host::netlink::HostError::new(
            "read sysctl",
            key,
            std::io::Error::from_raw_os_error(libc::ENOENT),
        )
        .into());
    };
    if now.disable_ipv6 != 1 {
        sysctl::write(&key, "1")?;
        j.changed(format!(
            "stopped IPv6 on {adapter}, a port of {bridge} (its router advertisements now configure {bridge})"
        ));
    }
    Ok(())
}

/// Moves the host's layer-3 configuration from the adapter to the bridge (addresses, routes,
/// rules; see [`edgenet_host::link_config`]) and, with IPv6, stops the port's own IPv6.
/// Returns whether anything moved.
pub fn move_addressing(
    k: &mut dyn Kernel,
    snap: &AdapterSnapshot,
    bridge: &str,
    ours: &OwnAddresses,
    j: &mut dyn Journal,
) -> Result<bool, DeployError> {
    let adapter = snap.name.as_str();
    // The neighbour entries first: the kernel flushes a link's ARP entries with its last IPv4
    // address, and its IPv6 ones with its IPv6. An entry for one of the deployment's own
    // addresses or MACs stays behind (see [`OwnAddresses`]).
    let mut neighbours = k.movable_neighbours(adapter, None)?;
    neighbours.retain(|n| {
        let keep = !ours.holds(n);
        if !keep {
            tracing::info!(
                "left neighbour entry {} on {adapter}: the address or MAC is this deployment's own (the host learns it afresh)",
                n.describe()
            );
        }
        keep
    });
    let moved = k.move_link_config(adapter, bridge)?;
    let any = !moved.describe().is_empty();
    carry_neighbours(k, &neighbours, adapter, bridge)?;
    for item in moved.describe() {
        j.changed(format!("moved {item} from {adapter} to {bridge}"));
    }
    for b in moved.beside() {
        j.changed(format!(
            "kept {b} as it is (not edgenet's); the route moved to {bridge} went beside it, and the kernel uses the one that came first"
        ));
    }
    for h in moved.beside_hops() {
        j.changed(format!(
            "kept the hop {h} as it is (not edgenet's); the hop moved to {bridge} is beside it in the same IPv6 multipath route, and the kernel spreads the traffic over both"
        ));
    }
    for warning in moved.skipped() {
        j.warn(warning.clone());
    }
    if snap.disable_ipv6.is_some() {
        port_without_ipv6(k, adapter, bridge, j)?;
    }
    Ok(any)
}

/// The addresses and MACs a deployment gives its own nodes (the nodes' addresses, the
/// control-plane endpoint, the service range) and their MACs. An adapter's neighbour entry
/// for one of them is someone else's that held it before (a replaced machine, an old VM):
/// carried to the bridge it would make the host send to that MAC until the kernel let the
/// node's own announcement replace it, so it is not carried.
#[derive(Debug, Clone, Default)]
pub struct OwnAddresses {
    addresses: std::collections::HashSet<std::net::IpAddr>,
    service_range: Option<edgenet_core::plan::ServiceRange>,
    macs: std::collections::HashSet<[u8; 6]>,
}

impl OwnAddresses {
    /// What `plan` gives this machine, with the node MACs the state recorded.
    pub fn of(plan: Option<&edgenet_core::plan::Plan>, state: &DeploymentState) -> OwnAddresses {
        let mut ours = OwnAddresses {
            macs: state.macs.values().map(|m| m.0).collect(),
            ..Default::default()
        };
        if let Some(plan) = plan {
            ours.addresses.extend(
                plan.nodes
                    .iter()
                    .map(|n| std::net::IpAddr::V4(n.address.addr())),
            );
            ours.addresses
                .insert(std::net::IpAddr::V4(plan.control_plane_endpoint));
            ours.service_range = plan.service_range;
            for node in &plan.nodes {
                if let edgenet_core::plan::MacAssignment::Static { address } = &node.mac {
                    ours.macs.insert(address.0);
                }
            }
        }
        ours
    }

    /// Whether `n` is for one of these addresses or MACs.
    pub fn holds(&self, n: &edgenet_host::netlink::Neighbour) -> bool {
        let address = n.address().is_some_and(|a| {
            self.addresses.contains(&a)
                || matches!((a, &self.service_range), (std::net::IpAddr::V4(v4), Some(r)) if r.contains(v4))
        });
        let mac = n
            .lladdr()
            .and_then(|l| <[u8; 6]>::try_from(l).ok())
            .is_some_and(|l| self.macs.contains(&l));
        address || mac
    }
}

/// Puts the neighbour entries `from` had (its ARP and IPv6 neighbour cache: the router's and
/// the other neighbours' MACs) on `to`, which takes over its addresses on the same LAN, so the
/// host does not ask for each again by broadcast (see [`edgenet_host::netlink::Neighbour`]).
/// A cache: what the kernel refuses is logged and left for it to learn again, never an error,
/// and nothing is recorded. `from` keeps its entries until the kernel drops them with its
/// addresses (it does not use them as a port); an entry `to` has already is left as it is.
fn carry_neighbours(
    k: &mut dyn Kernel,
    entries: &[edgenet_host::netlink::Neighbour],
    from: &str,
    to: &str,
) -> Result<(), DeployError> {
    let (put, refused) = k.put_neighbours(to, entries)?;
    for n in put {
        tracing::info!("moved neighbour entry {n} from {from} to {to}");
    }
    for r in refused {
        tracing::warn!(
            "could not move neighbour entry {r} (the host learns it again when it needs it)"
        );
    }
    Ok(())
}

/// What the record of the host's configuration on the bridge holds that the bridge lacks now
/// (a route the kernel flushed when the bridge was set down, an address deleted by hand),
/// leaving out what the bridge has something newer in place of (see
/// [`edgenet_host::link_config::superseded`]). Returns (missing, what counts as present).
pub fn missing_on_bridge(
    k: &mut dyn Kernel,
    recorded: &SavedLinkConfig,
    bridge: &str,
) -> Result<(Vec<String>, Vec<String>), DeployError> {
    let live = k.link_config(bridge)?;
    let saved = recorded.load();
    let mut present = live.describe();
    present.extend(edgenet_host::link_config::superseded(&saved, &live));
    let missing = saved
        .describe()
        .into_iter()
        .filter(|d| !present.contains(d))
        .collect();
    Ok((missing, present))
}

/// Puts back on the bridge what [`missing_on_bridge`] finds missing, each with a change line;
/// what the kernel refuses is a warning, never claimed put back.
pub fn restore_on_bridge(
    k: &mut dyn Kernel,
    recorded: &SavedLinkConfig,
    bridge: &str,
    adapter: &str,
    j: &mut dyn Journal,
) -> Result<(), DeployError> {
    let (missing, mut present) = missing_on_bridge(k, recorded, bridge)?;
    if missing.is_empty() {
        return Ok(());
    }
    // What another up NIC has now stays there: not put on the bridge too (the same address
    // on two NICs), said so.
    for (item, line) in held_elsewhere(k, recorded, bridge, bridge, adapter)? {
        if missing.contains(&item) {
            j.warn(line);
        }
        present.push(item);
    }
    let (back, refused) = k.apply_saved_onto(recorded, bridge, &present)?;
    for item in back {
        j.changed(format!(
            "put back {item} on {bridge}, as recorded when {adapter}'s configuration moved there"
        ));
    }
    for r in refused {
        j.warn(format!("could not put back {r} on {bridge}"));
    }
    Ok(())
}

/// What the state keeps about an adopted adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterRecord {
    pub bridge: String,
    pub adapter: AdapterSnapshot,
    /// The host's configuration on the bridge after the last move: put back when neither the
    /// bridge nor the adapter has any (the bridge was deleted by hand, nothing restored it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved: Option<SavedLinkConfig>,
}

impl AdapterRecord {
    /// The record an `Adapter` object of the state carries.
    pub fn of(o: &KernelObject) -> Option<AdapterRecord> {
        if o.kind != ObjectKind::Adapter {
            return None;
        }
        let restore = o.restore.as_ref()?;
        let mut record: AdapterRecord = serde_json::from_value(restore.clone()).ok()?;
        // A lapsed DHCP lease is never put back, a running one with what is left of it.
        if let Some(moved) = record.moved.as_ref() {
            record.moved = Some(super::adapter_lease::current_in(restore, moved).config);
        }
        Some(record)
    }

    /// The record of `adapter` in `state`.
    pub fn in_state(state: &DeploymentState, adapter: &str) -> Option<AdapterRecord> {
        state
            .object(ObjectKind::Adapter, adapter, None)
            .and_then(AdapterRecord::of)
    }

    pub(crate) fn store(&self, state: &mut DeploymentState) {
        state
            .record_object(ObjectKind::Adapter, &self.adapter_key(), None)
            .restore = Some(serde_json::to_value(self).expect("serialises"));
        // The lifetimes in `moved` are as of now.
        if let Some(restore) = state
            .record_object(ObjectKind::Adapter, &self.adapter_key(), None)
            .restore
            .as_mut()
        {
            super::adapter_lease::stamp(restore);
        }
    }

    fn adapter_key(&self) -> String {
        self.adapter.name.clone()
    }
}

/// What [`adopt_adapter`] decided.
#[derive(Debug, Default)]
pub struct Adoption {
    /// The adapter as it was before edgenet's first change; `None` when a bridge the user
    /// made already has the adapter as its port (used as it is, never deleted).
    pub snapshot: Option<AdapterSnapshot>,
    /// The state changed: save it before the kernel is touched.
    pub state_changed: bool,
    /// The adapter's record is new with this run (a rollback gives the adapter back).
    pub new_record: bool,
    pub changes: Vec<String>,
}

/// The adapter of an external switch, as it was before the first change: taken and recorded
/// (so that rollback and remove can put it back) before anything is touched, and kept from
/// then on. No snapshot when a bridge the user made already has the adapter as its port:
/// edgenet then uses it as it is and records it as adopted, never to be deleted.
pub fn adopt_adapter(
    k: &mut dyn Kernel,
    state: &mut DeploymentState,
    plan: &SwitchPlan,
    own: &Ownership,
) -> Result<Adoption, DeployError> {
    let adapter = plan
        .adapter
        .as_deref()
        .expect("an external switch has an adapter");
    let bridge = plan.name.as_str();
    if let Some(snap) = AdapterRecord::in_state(state, adapter) {
        // While the adapter is still our bridge's port, the snapshot says how it was
        // before; once it is not (a reboot deleted the bridge, or someone released it),
        // the host owns it again and it is taken as it is now.
        let live = k.link(adapter)?;
        if live.as_ref().and_then(|l| l.master.as_deref()) == Some(bridge) {
            return Ok(Adoption {
                snapshot: Some(snap.adapter),
                ..Adoption::default()
            });
        }
        let mut now = AdapterSnapshot::take(k, adapter)?;
        // IPv6 still off on the adapter is edgenet's doing (the bridge went, the sysctl
        // stayed): what it was before edgenet is still the recorded value.
        if now.disable_ipv6.as_deref() == Some("1") && snap.adapter.disable_ipv6.is_some() {
            now.disable_ipv6 = snap.adapter.disable_ipv6.clone();
        }
        let mut changes = Vec::new();
        if now != snap.adapter {
            changes.push(format!(
                "took {adapter} as it is now (it is no longer a port of {bridge})"
            ));
        }
        AdapterRecord {
            bridge: bridge.to_string(),
            adapter: now.clone(),
            moved: snap.moved,
        }
        .store(state);
        return Ok(Adoption {
            snapshot: Some(now),
            state_changed: true,
            new_record: false,
            changes,
        });
    }
    if state
        .object(ObjectKind::Bridge, bridge, None)
        .is_some_and(|o| o.status == ObjectStatus::Adopted)
    {
        return Ok(Adoption::default());
    }
    let user_bridge = k.link(bridge)?.filter(|b| !own.owns(b));
    let adapter_link = k.link(adapter)?;
    if user_bridge.is_some()
        && adapter_link.as_ref().and_then(|a| a.master.as_deref()) == Some(bridge)
    {
        state.record_object(ObjectKind::Bridge, bridge, None).status = ObjectStatus::Adopted;
        return Ok(Adoption {
            snapshot: None,
            state_changed: true,
            new_record: false,
            changes: vec![format!(
                "using the existing bridge {bridge} with {adapter} as its port, as it is"
            )],
        });
    }
    let snap = AdapterSnapshot::take(k, adapter)?;
    let record = AdapterRecord {
        bridge: bridge.to_string(),
        adapter: snap.clone(),
        moved: None,
    };
    record.store(state);
    state
        .record_object(ObjectKind::Adapter, adapter, None)
        .status = ObjectStatus::Adopted;
    Ok(Adoption {
        snapshot: Some(snap),
        state_changed: true,
        new_record: true,
        changes: Vec::new(),
    })
}

/// The host's configuration on the bridge is recorded after a move (`moved_now`: this run made
/// the bridge or moved the adapter's configuration to it; or nothing is recorded yet), and
/// only then: what an administrator adds on the bridge later is not recorded, so deleting it
/// again is theirs to do, never undone by a deploy putting "recorded" items back. When the
/// bridge and the adapter both have none (the bridge was deleted by hand and nothing put the
/// adapter's addresses back), the recorded one goes back on the bridge, so the host is not
/// left offline. Returns the changes made, and whether the state changed.
pub fn keep_host_config(
    k: &mut dyn Kernel,
    state: &mut DeploymentState,
    plan: &SwitchPlan,
    moved_now: bool,
) -> Result<(Vec<String>, bool), DeployError> {
    let (Some(adapter), bridge) = (plan.adapter.as_deref(), plan.name.as_str()) else {
        return Ok((Vec::new(), false));
    };
    let Some(mut record) = AdapterRecord::in_state(state, adapter) else {
        return Ok((Vec::new(), false));
    };
    let on_bridge = k.link_config(bridge)?;
    if on_bridge.addresses.is_empty() && k.link_config(adapter)?.addresses.is_empty() {
        let lapsed = super::adapter_lease::lapsed_in_state(state, adapter);
        let lapsed: Vec<String> = (!lapsed.is_empty())
            .then(|| {
                format!(
                    "warning: {}",
                    super::adapter_lease::lapsed_line(&lapsed, adapter, bridge)
                )
            })
            .into_iter()
            .collect();
        let Some(saved) = record.moved.as_ref().filter(|m| !m.addresses.is_empty()) else {
            return Ok((lapsed, false));
        };
        // What another up NIC has now stays there: not put on the bridge too.
        let elsewhere = held_elsewhere(k, saved, bridge, bridge, adapter)?;
        if !elsewhere.is_empty() {
            let present: Vec<String> = elsewhere.iter().map(|(item, _)| item.clone()).collect();
            let (back, refused) = k.apply_saved_onto(saved, bridge, &present)?;
            let mut changes: Vec<String> = back
                .into_iter()
                .map(|item| format!(
                    "put back {item} on {bridge}, as recorded when {adapter}'s configuration moved there (it was on neither link)"
                ))
                .collect();
            changes.extend(
                elsewhere
                    .into_iter()
                    .map(|(_, line)| format!("warning: {line}")),
            );
            changes.extend(
                refused
                    .into_iter()
                    .map(|r| format!("warning: could not put back {r} on {bridge}")),
            );
            changes.extend(lapsed);
            return Ok((changes, false));
        }
        let back = k.apply_saved(saved)?;
        let mut changes: Vec<String> = back
            .describe()
            .into_iter()
            .map(|item| format!(
                "put back {item} on {bridge}, as recorded when {adapter}'s configuration moved there (it was on neither link)"
            ))
            .collect();
        changes.extend(back.beside().iter().map(|b| {
            format!(
                "kept {b} as it is (not edgenet's); the route put back on {bridge} went beside it"
            )
        }));
        changes.extend(
            back.skipped()
                .iter()
                .map(|w| format!("warning: could not put back {w}")),
        );
        changes.extend(lapsed);
        return Ok((changes, false));
    }
    if on_bridge.addresses.is_empty() || (record.moved.is_some() && !moved_now) {
        return Ok((Vec::new(), false));
    }
    let saved = SavedLinkConfig::save(&on_bridge, bridge, k.link_index(bridge)?);
    if record.moved.as_ref() != Some(&saved) {
        record.moved = Some(saved);
        record.store(state);
        return Ok((Vec::new(), true));
    }
    Ok((Vec::new(), false))
}

#[cfg(test)]
mod tests {
    use edgenet_core::host_facts::{HostFacts, HostLink};

    fn nic(name: &str, mac: &str) -> HostLink {
        HostLink {
            name: name.into(),
            index: 2,
            mtu: 1500,
            up: true,
            lower_up: true,
            mac: Some(mac.into()),
            kind: None,
            master: None,
            wireless: false,
            alias: None,
        }
    }

    /// The adapters of the records as the host facts have them: by name with the MAC, renamed
    /// (by MAC), swapped (the name now another MAC's: found by MAC), or on two links (named).
    #[test]
    fn the_deployments_adapters_are_found_in_the_facts_by_name_and_mac() {
        let mut state = crate::state::DeploymentState::new("abc123".parse().unwrap());
        super::AdapterRecord {
            bridge: "aksedgesw-ext".into(),
            adapter: super::AdapterSnapshot {
                name: "Ethernet".into(),
                mac: Some("02:00:00:00:00:01".parse().unwrap()),
                mtu: 1500,
                up: true,
                disable_ipv6: None,
            },
            moved: None,
        }
        .store(&mut state);
        let facts = |links: Vec<HostLink>| HostFacts {
            links,
            ..Default::default()
        };
        let same = facts(vec![nic("Ethernet", "02:00:00:00:00:01")]);
        assert_eq!(
            super::deployed_in_facts(&state, &same),
            [("Ethernet".to_string(), "Ethernet".to_string())]
        );
        let renamed = facts(vec![nic("enp3s0", "02:00:00:00:00:01")]);
        assert_eq!(
            super::deployed_in_facts(&state, &renamed),
            [("Ethernet".to_string(), "enp3s0".to_string())]
        );
        let swapped = facts(vec![
            nic("Ethernet", "02:00:00:00:00:02"),
            nic("enp3s0", "02:00:00:00:00:01"),
        ]);
        assert_eq!(
            super::deployed_in_facts(&state, &swapped),
            [("Ethernet".to_string(), "enp3s0".to_string())]
        );
        let twice = facts(vec![
            nic("enp3s0", "02:00:00:00:00:01"),
            nic("eth9", "02:00:00:00:00:01"),
        ]);
        assert!(super::deployed_in_facts(&state, &twice).is_empty());
        assert_eq!(
            super::ambiguous_in_facts(&state, &twice),
            [(
                "Ethernet".to_string(),
                vec!["enp3s0".to_string(), "eth9".to_string()]
            )]
        );
    }

    /// What another NIC has now is left where it is, not for the administrator to add.
    #[test]
    fn report_lines_tell_left_from_refused() {
        let (ok, left) = super::report_lines(
            "adapter eth0",
            vec![
                "moved address 10.0.0.2/24 from br back to eth0".into(),
                "could not put back route 0 on eth0".into(),
                "left address 10.0.0.3/24 on eth1, which has it now".into(),
            ],
        );
        assert_eq!(ok, ["moved address 10.0.0.2/24 from br back to eth0"]);
        assert_eq!(
            left,
            [
                "adapter eth0: could not put back route 0 on eth0; add it by hand",
                "adapter eth0: address 10.0.0.3/24 on eth1, which has it now",
            ]
        );
    }

    #[test]
    fn an_adapter_record_of_an_older_edgenet_still_reads() {
        // Older states also listed the adapter's addresses and routes; the live ones move now.
        let old = serde_json::json!({
            "bridge": "aksedgesw-ext",
            "adapter": {
                "name": "eth0", "mac": "02:00:00:00:00:01", "mtu": 1500, "up": true,
                "addresses": [{"address": "198.18.0.11/24", "broadcast": "198.18.0.255"}],
                "routes": [{"destination": "0.0.0.0/0", "gateway": "198.18.0.1", "metric": null, "protocol": 3}]
            }
        });
        let record: super::AdapterRecord = serde_json::from_value(old).unwrap();
        assert_eq!(record.adapter.name, "eth0");
        assert_eq!(record.adapter.mtu, 1500);
    }
}
