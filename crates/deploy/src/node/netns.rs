//! The `netns` runtime: each node is a named network namespace (visible to `ip netns`) with
//! `eth0`, the peer of a veth whose host end is a port of the switch.

use edgenet_core::mac::MacAddr;
use edgenet_core::plan::NodePlan;
use edgenet_host::netlink::connected_route::serves;
use edgenet_host::netlink::dropping_route::cutting_off;
use edgenet_host::netlink::{Link, Netlink, RouteSpec, Snapshot, VethSpec};

use crate::kernel::Kernel;
use edgenet_host::netns::NetNs;
use ipnet::Ipv4Net;

use super::{NodeLive, NodeRef, NodeRuntime, NodeSpec};
use crate::error::DeployError;
use crate::journal::{Journal, Ownership};
use crate::names::NODE_IFNAME;
use crate::state::ObjectKind;

pub struct NetnsRuntime;

const DEFAULT_ROUTE: Ipv4Net = match Ipv4Net::new(std::net::Ipv4Addr::UNSPECIFIED, 0) {
    Ok(n) => n,
    Err(_) => panic!("0.0.0.0/0"),
};

impl NodeRuntime for NetnsRuntime {
    fn ensure(
        &self,
        nl: &mut dyn Kernel,
        node: &NodeSpec<'_>,
        own: &Ownership,
        j: &mut dyn Journal,
    ) -> Result<(), DeployError> {
        let ns_name = node.guest.as_str();
        // Made by this run on its own thread (recorded before): as if made just now.
        let ahead = j.made_ahead(ns_name)?;
        let exists = !ahead && nl.netns_exists(ns_name);
        // One netlink socket inside the namespace serves every step here (the lane that made
        // it ahead opened one); otherwise it is opened the first time it is needed.
        let mut inside_nl = if ahead {
            j.socket_inside(ns_name)
        } else {
            None
        };
        // One visit of a namespace that exists: whether it is ours, and what is inside (so a
        // redeploy that finds everything in place enters it only this once).
        let inside = if exists {
            Some(look_inside(ns_name, own)?)
        } else {
            None
        };
        if inside.as_ref().is_some_and(|i| !i.ours) {
            // Made by a run killed before it could mark it: recorded as pending, still empty.
            if !(j.pending(ObjectKind::Netns, ns_name, None) && netns_is_half_made(ns_name)?) {
                return Err(DeployError::Foreign {
                    what: "network namespace",
                    name: ns_name.to_string(),
                    hint: format!(
                        "it has this deployment's name but not its mark (an {NODE_IFNAME} with alias {}); \
                         delete it if it is left over (`ip netns del {ns_name}`)",
                        own.alias
                    ),
                });
            }
            mark_netns(socket_inside(&mut inside_nl, ns_name)?, own)?;
            j.created(ObjectKind::Netns, ns_name, None)?;
            j.changed(format!(
                "marked network namespace {ns_name} for {} (a stopped run had made it)",
                node.plan.name
            ));
        }
        if !exists {
            if !ahead {
                j.will_make(ObjectKind::Netns, ns_name, None)?;
                nl.netns_create(ns_name)?;
            }
            j.step("node-netns-made")?;
            mark_netns(socket_inside(&mut inside_nl, ns_name)?, own)?;
            j.created(ObjectKind::Netns, ns_name, None)?;
            j.changed(format!(
                "created network namespace {ns_name} for {}",
                node.plan.name
            ));
        }
        j.step("node-netns")?;

        let veth = node.host_link.as_str();
        // The namespace holds no eth0 (made now, or a stopped run's empty one): a veth of ours
        // under the node's name has its node end elsewhere — in the namespace deleted before,
        // which the kernel dismantles a moment later, taking this end with it. Made again.
        let empty_inside = !exists || inside.as_ref().is_some_and(|i| !i.ours);
        let existing = match nl.link(veth)? {
            Some(link)
                if empty_inside
                    && (link.alias.as_deref() == Some(own.alias.as_str())
                        || (link.group == own.group
                            && j.pending(ObjectKind::Veth, veth, None))) =>
            {
                nl.delete_link(veth)?;
                j.changed(format!(
                    "deleted veth {veth}: its node end was not in {ns_name} (it went with the namespace deleted before)"
                ));
                None
            }
            other => other,
        };
        // The veth as found, when this run did not make it (its master and state are then
        // still those read here).
        let mut found = None;
        match existing {
            None => {
                j.will_make(ObjectKind::Veth, veth, None)?;
                nl.create_veth(
                    &VethSpec {
                        name: veth,
                        peer_name: NODE_IFNAME,
                        mtu: Some(node.mtu),
                        mac: Some(host_veth_mac(veth)),
                        peer_mac: Some(node.mac),
                        peer_netns: None,
                        group: Some(own.group),
                    },
                    Some(ns_name),
                )?;
                j.step("node-link-made")?;
                nl.set_port_alias(veth, &own.alias)?;
                j.created(ObjectKind::Veth, veth, None)?;
                j.changed(format!(
                    "created veth {veth} ↔ {ns_name}:{NODE_IFNAME} (MAC {}, MTU {})",
                    node.mac, node.mtu
                ));
            }
            // A veth with our name but without our mark is someone else's; in our group but
            // without the alias, it is ours only with our record (a run stopped before marking it).
            Some(link)
                if link.alias.as_deref() != Some(own.alias.as_str())
                    && !(link.group == own.group && j.pending(ObjectKind::Veth, veth, None)) =>
            {
                return Err(DeployError::Foreign {
                    what: "interface",
                    name: veth.to_string(),
                    hint: format!("it does not carry this deployment's mark ({}); delete it if it is left over", own.alias),
                });
            }
            Some(link) => {
                // In our group but unmarked: a run was stopped between creating it and marking it.
                if link.alias.as_deref() != Some(own.alias.as_str()) {
                    nl.set_port_alias(veth, &own.alias)?;
                    j.created(ObjectKind::Veth, veth, None)?;
                }
                if link.mtu != node.mtu {
                    nl.set_mtu(veth, node.mtu)?;
                    j.changed(format!("set MTU {} on {veth} (was {})", node.mtu, link.mtu));
                }
                found = Some(link);
            }
        }
        match &found {
            Some(link) => super::join_switch_found(nl, link, node.switch, node.hairpin, j)?,
            None => super::join_switch(nl, veth, node.switch, node.hairpin, j, true)?,
        }
        j.step("node-link")?;

        // `eth0` comes up below: not before the firewall is in place.
        j.before_traffic()?;
        // Seen in place at the one visit above, with the veth neither made nor replaced since:
        // nothing inside changes, so the namespace is not entered again.
        if found.is_some()
            && inside
                .as_ref()
                .is_some_and(|i| i.settled(node.plan, node.mac, node.mtu, &own.alias))
        {
            j.step("node-address")?;
            return Ok(());
        }
        // Inside the node's namespace: real netlink there (the root tests cover it).
        let inside_nl = socket_inside(&mut inside_nl, ns_name)?;
        // Namespace and veth both made by this run: inside is what their creation left.
        let changes = if (ahead || !exists) && found.is_none() {
            configure_made(inside_nl, ns_name, node.plan, &own.alias)?
        } else {
            configure(inside_nl, ns_name, node, &own.alias)?
        };
        for c in changes {
            j.changed(c);
        }
        j.step("node-address")?;
        Ok(())
    }

    fn remove(&self, k: &mut dyn Kernel, node: &NodeRef<'_>) -> Result<bool, DeployError> {
        Ok(k.netns_delete(node.guest)?)
    }

    fn live(&self, nl: &mut dyn Kernel, node: &NodeRef<'_>) -> Result<NodeLive, DeployError> {
        let (name, netns_name, host_veth, switch) =
            (node.name, node.guest, node.host_link, node.switch);
        let mut live = NodeLive {
            name: name.to_string(),
            netns: netns_name.to_string(),
            present: false,
            up: false,
            addresses: Vec::new(),
            mac: None,
            mtu: None,
            gateway: None,
            on_switch: nl
                .link(host_veth)?
                .is_some_and(|l| l.master.as_deref() == Some(switch)),
            lo_down: false,
            vm: None,
        };
        if !nl.netns_exists(netns_name) {
            return Ok(live);
        }
        let ns = NetNs::open(netns_name)?;
        ns.run(|| -> Result<(), DeployError> {
            let mut nl = Netlink::open()?;
            live.lo_down = nl.link("lo")?.is_some_and(|lo| !lo.up);
            if let Some(eth0) = nl.link(NODE_IFNAME)? {
                live.present = true;
                live.up = eth0.up;
                live.mac = eth0.mac.map(|m| m.to_string());
                live.mtu = Some(eth0.mtu);
                live.addresses = nl
                    .addresses_of(NODE_IFNAME)?
                    .into_iter()
                    .map(|a| a.address.to_string())
                    .collect();
                live.gateway = nl
                    .routes()?
                    .into_iter()
                    .find(|r| r.destination == DEFAULT_ROUTE)
                    .and_then(|r| r.gateway)
                    .map(|g| g.to_string());
            }
            Ok(())
        })??;
        Ok(live)
    }
}

/// Whether the network namespace `name` is this deployment's. Its marks: its `eth0`, the
/// peer of our veth, created in the deployment's link group and then given the deployment's
/// alias; and its `lo`, given the alias right after the namespace is made (so a namespace of
/// ours is known before its `eth0` exists, or after it went with its veth). See
/// [`links_are_ours`] for the rule. A namespace that merely has our name (even one the state
/// records: it may have been deleted and made again by someone else) is never adopted.
pub fn netns_is_ours(name: &str, own: &Ownership) -> Result<bool, DeployError> {
    let ns = NetNs::open(name)?;
    let own = own.clone();
    ns.run(move || -> Result<bool, DeployError> {
        Ok(links_are_ours(&Netlink::open()?.links()?, &own))
    })?
}

/// `netns_is_ours` on the links of the namespace, the one rule every command applies:
/// - an `eth0` with the deployment's alias: the node, whatever else is inside (what runs in
///   the node makes links of its own: Kubernetes' `cni0`, `flannel.1`, `tunl0`,
///   `kube-ipvs0`, the pods' veths);
/// - an `eth0` without the alias: the deployment's only in its link group and alone with
///   `lo` (a run stopped between making the veth and marking `eth0`, before anything could
///   run inside); an `eth0` whose peer merely has our veth's name is someone else's;
/// - no `eth0`: the deployment's when its `lo` carries the alias (only edgenet marks a `lo`):
///   just made, or a node whose veth went (someone deleted the host end), pods' links and
///   all, which deploy gives a new veth and remove deletes.
pub fn links_are_ours(links: &[Link], own: &Ownership) -> bool {
    let only_ours = links
        .iter()
        .all(|l| l.name == "lo" || l.name == NODE_IFNAME);
    match links.iter().find(|l| l.name == NODE_IFNAME) {
        Some(eth0) if eth0.alias.as_deref() == Some(own.alias.as_str()) => true,
        Some(eth0) => only_ours && eth0.group == own.group,
        None => links
            .iter()
            .any(|l| l.name == "lo" && l.alias.as_deref() == Some(own.alias.as_str())),
    }
}

/// An existing node namespace as one visit saw it.
struct Inside {
    /// As [`netns_is_ours`] says.
    ours: bool,
    /// Its links, IPv4 addresses and main-table routes (one link, address and route dump).
    seen: Snapshot,
}

/// Enters the namespace `name` once: whether it is ours, and what is inside.
fn look_inside(name: &str, own: &Ownership) -> Result<Inside, DeployError> {
    let ns = NetNs::open(name)?;
    let own = own.clone();
    ns.run(move || -> Result<Inside, DeployError> {
        let seen = Netlink::open()?.snapshot()?;
        Ok(Inside {
            ours: links_are_ours(&seen.links, &own),
            seen,
        })
    })?
}

impl Inside {
    /// Whether the node's side is as [`NetnsRuntime::ensure`] would leave it, so that it
    /// would change nothing inside: `lo` up, `eth0` with the node's MAC, MTU, the mark, up,
    /// exactly the node's address with the kernel's route for it, and the default route via the
    /// node's gateway.
    fn settled(&self, plan: &NodePlan, mac: MacAddr, mtu: u32, alias: &str) -> bool {
        let link = |name: &str| self.seen.links.iter().find(|l| l.name == name);
        let lo_ok = link("lo").is_none_or(|l| l.up);
        let eth0_ok = link(NODE_IFNAME).is_some_and(|e| {
            e.mac == Some(mac) && e.mtu == mtu && e.up && e.alias.as_deref() == Some(alias)
        });
        let mut addresses = self
            .seen
            .addresses
            .iter()
            .filter(|a| a.link == NODE_IFNAME)
            .map(|a| a.address);
        let address_ok = addresses.next() == Some(plan.address) && addresses.next().is_none();
        let route_ok = self
            .seen
            .routes
            .iter()
            .find(|r| r.destination == DEFAULT_ROUTE)
            .and_then(|r| r.gateway)
            == Some(plan.gateway);
        // The kernel's route for the address (deleted by hand, it never comes back by itself).
        let connected_ok = plan.address.prefix_len() >= 32
            || link(NODE_IFNAME).is_some_and(|e| {
                self.seen
                    .routes
                    .iter()
                    .any(|r| serves(r, plan.address.trunc(), e.index))
            });
        // A blackhole/prohibit route made by hand that hides the gateway or half the
        // addresses (see edgenet_host::netlink::dropping_route).
        let open = cutting_off(&self.seen.routes, plan.gateway).is_empty();
        lo_ok && eth0_ok && address_ok && route_ok && connected_ok && open
    }
}

/// Makes the inside of an existing namespace as the plan wants, changing only what differs:
/// `lo` up, `eth0` with the node's MAC, MTU, mark and address, up, and the default route.
fn configure(
    nl: &mut Netlink,
    guest: &str,
    node: &NodeSpec<'_>,
    alias: &str,
) -> Result<Vec<String>, DeployError> {
    let (plan, mac, mtu) = (node.plan, node.mac, node.mtu);
    let mut changes = Vec::new();
    // One dump for both: a dump does not run pending link events (a GetLink of the
    // new eth0 would, see `join_switch`).
    let links = nl.links()?;
    if links.iter().any(|l| l.name == "lo" && !l.up) {
        nl.set_up("lo", true)?;
        changes.push(format!("brought {guest}:lo up"));
    }
    let eth0 = links
        .into_iter()
        .find(|l| l.name == NODE_IFNAME)
        .ok_or_else(|| {
            DeployError::missing(
                "interface",
                NODE_IFNAME,
                &format!("vanished from the node namespace {guest}"),
            )
        })?;
    if eth0.mac != Some(mac) {
        nl.set_mac(NODE_IFNAME, mac)?;
        changes.push(format!("set MAC {mac} on {}", plan.name));
    }
    if eth0.mtu != mtu {
        nl.set_mtu(NODE_IFNAME, mtu)?;
        changes.push(format!("set MTU {mtu} on {}", plan.name));
    }
    if !eth0.up {
        nl.set_up(NODE_IFNAME, true)?;
        changes.push(format!("brought {guest}:{NODE_IFNAME} up"));
    }
    // The namespace's mark: remove and the next deploy know it by this alias.
    if eth0.alias.as_deref() != Some(alias) {
        nl.set_alias(NODE_IFNAME, alias)?;
    }
    let present: Vec<Ipv4Net> = nl
        .addresses_of(NODE_IFNAME)?
        .into_iter()
        .map(|a| a.address)
        .collect();
    for stale in present.iter().filter(|a| **a != plan.address) {
        nl.del_address(NODE_IFNAME, *stale)?;
        changes.push(format!("removed address {stale} from {}", plan.name));
    }
    if !present.contains(&plan.address) {
        nl.add_address(NODE_IFNAME, plan.address)?;
        changes.push(format!("gave {} the address {}", plan.name, plan.address));
    }
    // Before the default route: its gateway is reachable only through this one.
    changes.extend(super::connected_route::restore(
        nl,
        &plan.name,
        plan.address,
    )?);
    let routes = nl.routes()?;
    // A dropping route made by hand that cuts the node off (drift, see
    // edgenet_host::netlink::dropping_route); ones that block a narrower range stay.
    for r in cutting_off(&routes, plan.gateway) {
        if nl.del_dropping_route(r)? {
            changes.push(format!(
                "deleted {}'s route {} (it cut the node off)",
                plan.name,
                super::stray_routes::describe(r)
            ));
        }
    }
    let default = routes.into_iter().find(|r| r.destination == DEFAULT_ROUTE);
    if default.as_ref().and_then(|r| r.gateway) != Some(plan.gateway) {
        nl.replace_route(&RouteSpec {
            destination: DEFAULT_ROUTE,
            gateway: Some(plan.gateway),
            link: Some(NODE_IFNAME),
        })?;
        changes.push(format!(
            "set {}'s default route via {}",
            plan.name, plan.gateway
        ));
    }
    Ok(changes)
}

/// Configures the inside of a namespace this run has just made, around the `eth0` of a veth
/// it has just made: `lo` is down (marked only), `eth0` down with the node's MAC and MTU (set
/// at creation), no address, no route. Nothing to read back, so no dumps; the mark and `up`
/// of `eth0` go in one request. The same changes, in the same words, as the general path.
fn configure_made(
    nl: &mut Netlink,
    guest: &str,
    plan: &NodePlan,
    alias: &str,
) -> Result<Vec<String>, DeployError> {
    nl.set_up("lo", true)?;
    // Without an IPv6 link-local address: the node's switch port passes only IPv4 and ARP
    // (firewall/bridge_rules.rs), so the address's duplicate address detection, router
    // solicitations and MLD reports would only be dropped there. Set before the link is up
    // (the kernel makes the address when it comes up, and applies the flags of a request
    // before its IPv6 settings, so not in one request).
    nl.set_port_alias(NODE_IFNAME, alias)?;
    nl.set_up(NODE_IFNAME, true)?;
    nl.add_address(NODE_IFNAME, plan.address)?;
    nl.replace_route(&RouteSpec {
        destination: DEFAULT_ROUTE,
        gateway: Some(plan.gateway),
        link: Some(NODE_IFNAME),
    })?;
    Ok(vec![
        format!("brought {guest}:lo up"),
        format!("brought {guest}:{NODE_IFNAME} up"),
        format!("gave {} the address {}", plan.name, plan.address),
        format!("set {}'s default route via {}", plan.name, plan.gateway),
    ])
}

/// Whether the namespace `name` is as `ip netns add` leaves it: only a `lo` that is down and
/// carries no alias. One the state records and finds so is the one a killed run made before it
/// could mark it (anyone else's would have been used); any other content keeps it foreign.
pub fn netns_is_half_made(name: &str) -> Result<bool, DeployError> {
    let ns = NetNs::open(name)?;
    ns.run(move || -> Result<bool, DeployError> {
        let links = Netlink::open()?.links()?;
        Ok(matches!(links.as_slice(), [lo] if lo.name == "lo" && !lo.up && lo.alias.is_none()))
    })?
}

/// Marks a namespace just made as this deployment's (its `lo` gets the alias), through a
/// socket inside it.
fn mark_netns(inside: &mut Netlink, own: &Ownership) -> Result<(), DeployError> {
    Ok(inside.set_alias("lo", &own.alias)?)
}

/// The socket inside namespace `name` in `slot`, opened there first if there is none yet.
fn socket_inside<'a>(
    slot: &'a mut Option<Netlink>,
    name: &str,
) -> Result<&'a mut Netlink, DeployError> {
    if slot.is_none() {
        *slot = Some(Netlink::open_in(&NetNs::open(name)?)?);
    }
    Ok(slot.as_mut().expect("opened above"))
}

/// The host end of a node's veth gets a MAC derived from its name (which carries the
/// deployment id and the node kind), so it is the same after every reboot and kernel dumps
/// match: locally administered unicast (`0e:` prefix), FNV-1a of the name for the rest.
pub fn host_veth_mac(veth: &str) -> edgenet_core::mac::MacAddr {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in veth.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    edgenet_core::mac::MacAddr([0x0e, b[3], b[4], b[5], b[6], b[7]])
}

#[cfg(test)]
mod host_veth_mac_tests {
    use super::host_veth_mac;

    #[test]
    fn the_host_veth_mac_is_stable_unicast_and_local() {
        let a = host_veth_mac("lv-a0129c");
        assert_eq!(a, host_veth_mac("lv-a0129c"));
        assert_ne!(a, host_veth_mac("wv-a0129c"));
        assert_ne!(a, host_veth_mac("lv-b0129c"));
        assert_eq!(a.0[0] & 0x01, 0, "unicast");
        assert_eq!(a.0[0] & 0x02, 0x02, "locally administered");
    }
}

#[cfg(test)]
mod ownership_rule_tests {
    use super::links_are_ours;
    use crate::journal::Ownership;
    use edgenet_host::netlink::Link;

    fn own() -> Ownership {
        Ownership {
            alias: "edgenet:abc123".into(),
            group: 7,
        }
    }

    fn link(name: &str, alias: Option<&str>, group: u32) -> Link {
        Link {
            index: 1,
            name: name.into(),
            mtu: 1500,
            up: true,
            lower_up: true,
            mac: None,
            kind: None,
            master_index: None,
            master: None,
            alias: alias.map(String::from),
            group,
            hairpin: false,
        }
    }

    fn pods() -> Vec<Link> {
        ["cni0", "flannel.1", "vethc0ffee", "kube-ipvs0", "tunl0"]
            .into_iter()
            .map(|n| link(n, None, 0))
            .collect()
    }

    #[test]
    fn a_marked_eth0_keeps_the_namespace_ours_whatever_the_node_made_inside() {
        let own = own();
        let mut links = vec![
            link("lo", Some(&own.alias), 0),
            link("eth0", Some(&own.alias), 7),
        ];
        assert!(links_are_ours(&links, &own));
        links.extend(pods());
        assert!(links_are_ours(&links, &own));
    }

    #[test]
    fn an_eth0_in_the_group_without_the_alias_is_ours_only_alone_with_lo() {
        let own = own();
        let mut links = vec![link("lo", Some(&own.alias), 0), link("eth0", None, 7)];
        assert!(links_are_ours(&links, &own));
        links.extend(pods());
        assert!(!links_are_ours(&links, &own));
    }

    #[test]
    fn an_eth0_without_the_mark_is_someone_elses_even_with_a_marked_lo() {
        let own = own();
        for eth0 in [
            link("eth0", None, 0),
            link("eth0", Some("edgenet:other"), 0),
        ] {
            let mut links = vec![link("lo", Some(&own.alias), 0), eth0];
            assert!(!links_are_ours(&links, &own));
            links.extend(pods());
            assert!(!links_are_ours(&links, &own));
        }
    }

    #[test]
    fn without_eth0_a_marked_lo_is_ours_pods_or_not() {
        let own = own();
        assert!(links_are_ours(&[link("lo", Some(&own.alias), 0)], &own));
        assert!(!links_are_ours(&[link("lo", None, 0)], &own));
        assert!(!links_are_ours(
            &[link("lo", Some("edgenet:other1"), 0)],
            &own
        ));
        // A node running pods whose veth was deleted: its eth0 went with it.
        let mut links = vec![link("lo", Some(&own.alias), 0)];
        links.extend(pods());
        assert!(links_are_ours(&links, &own));
        let mut theirs = vec![link("lo", None, 0)];
        theirs.extend(pods());
        assert!(!links_are_ours(&theirs, &own));
    }
}
