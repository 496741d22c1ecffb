//! The kernel operations the drivers use, behind one small trait: links, addresses, routes,
//! the host's layer-3 configuration of a link, and named network namespaces.
//!
//! [`edgenet_host::netlink::Netlink`] is the real implementation (talking rtnetlink, named
//! namespaces under `/run/netns`); the tests' recording fake (`kernel/fake.rs`, test builds
//! only) keeps a small model of links and namespaces and logs every change, so the reconcile
//! logic of the switch drivers, rollback and remove is tested without root. What runs *inside*
//! a node's namespace (its `eth0`, addresses and default route) is not behind this trait: the
//! root tests cover it.

#[cfg(test)]
pub mod fake;
#[cfg(test)]
mod reconcile_tests;

use edgenet_core::mac::MacAddr;
use edgenet_host::link_config::{LinkConfig, SavedLinkConfig};
use edgenet_host::netlink::connected_route::ConnectedRoute;
use edgenet_host::netlink::{
    AddrGenMode, Address, BridgeSpec, Ipv6Settings, Link, LinkLocal, Neighbour, Netlink, Route,
    RouteSpec, VethSpec,
};
use edgenet_host::netns::{self, NetNs};
use edgenet_host::HostError;
use ipnet::Ipv4Net;

/// What the drivers ask of the kernel (the calling thread's network namespace).
pub trait Kernel {
    fn links(&mut self) -> Result<Vec<Link>, HostError>;
    fn link(&mut self, name: &str) -> Result<Option<Link>, HostError>;
    fn addresses(&mut self) -> Result<Vec<Address>, HostError>;
    fn routes(&mut self) -> Result<Vec<Route>, HostError>;
    /// The IPv4 addresses on `link`.
    fn addresses_of(&mut self, link: &str) -> Result<Vec<Ipv4Net>, HostError> {
        Ok(self
            .addresses()?
            .into_iter()
            .filter(|a| a.link == link)
            .map(|a| a.address)
            .collect())
    }

    fn create_bridge(&mut self, spec: &BridgeSpec<'_>) -> Result<(), HostError>;
    /// A veth pair whose peer is created in the named namespace `peer_netns` (`None`: here).
    fn create_veth(
        &mut self,
        spec: &VethSpec<'_>,
        peer_netns: Option<&str>,
    ) -> Result<(), HostError>;
    fn set_up(&mut self, name: &str, up: bool) -> Result<(), HostError>;
    fn set_mtu(&mut self, name: &str, mtu: u32) -> Result<(), HostError>;
    fn set_mac(&mut self, name: &str, mac: MacAddr) -> Result<(), HostError>;
    fn set_master(&mut self, name: &str, master: Option<&str>) -> Result<(), HostError>;
    fn set_hairpin(&mut self, name: &str, on: bool) -> Result<(), HostError>;
    fn set_alias(&mut self, name: &str, alias: &str) -> Result<(), HostError>;
    /// [`Kernel::set_alias`] for a new bridge port that is not up yet: also no IPv6 link-local
    /// address of its own (see [`edgenet_host::netlink::Netlink::set_port_alias`]).
    fn set_port_alias(&mut self, name: &str, alias: &str) -> Result<(), HostError> {
        self.set_alias(name, alias)
    }
    fn set_group(&mut self, name: &str, group: u32) -> Result<(), HostError>;
    /// `Ok(false)` when there was no such link.
    fn delete_link(&mut self, name: &str) -> Result<bool, HostError>;
    /// Deletes every link of `group`; `Ok(false)` when there was none.
    fn delete_group(&mut self, group: u32) -> Result<bool, HostError>;
    /// [`Kernel::delete_group`] that returns once every link of the group is out of the
    /// kernel's view, not once the kernel has freed them (remove's fast path).
    fn delete_group_detached(&mut self, group: u32) -> Result<bool, HostError> {
        self.delete_group(group)
    }
    fn link_index(&mut self, name: &str) -> Result<u32, HostError>;
    fn add_address(&mut self, link: &str, address: Ipv4Net) -> Result<(), HostError>;
    fn del_address(&mut self, link: &str, address: Ipv4Net) -> Result<bool, HostError>;
    fn replace_route(&mut self, spec: &RouteSpec<'_>) -> Result<(), HostError>;

    /// The host's layer-3 configuration on a link (see [`edgenet_host::link_config`]).
    fn link_config(&mut self, name: &str) -> Result<LinkConfig, HostError>;
    fn move_link_config(&mut self, from: &str, to: &str) -> Result<LinkConfig, HostError>;
    fn apply_link_config(
        &mut self,
        config: &LinkConfig,
        link: &str,
    ) -> Result<Vec<(usize, String)>, HostError>;
    fn apply_saved(&mut self, saved: &SavedLinkConfig) -> Result<LinkConfig, HostError>;
    /// What `saved` holds that `present` does not name, put on `link`: (put back, refused).
    fn apply_saved_onto(
        &mut self,
        saved: &SavedLinkConfig,
        link: &str,
        present: &[String],
    ) -> Result<(Vec<String>, Vec<String>), HostError>;

    /// The kernel's connected routes of `link`'s addresses that are gone (deleted by hand;
    /// see [`edgenet_host::netlink::connected_route`]), and adding one back. (The fake has none.)
    fn missing_connected_routes(
        &mut self,
        _link: &str,
        _own: &[Ipv4Net],
    ) -> Result<Vec<ConnectedRoute>, HostError> {
        Ok(Vec::new())
    }
    fn add_connected_route(&mut self, _link: &str, _r: &ConnectedRoute) -> Result<(), HostError> {
        Ok(())
    }

    /// The neighbour entries of `link` that move with its addresses, and putting them on
    /// another link: (put, refused) (see [`edgenet_host::netlink::Netlink::movable_neighbours`]).
    /// (The fake has none.)
    fn movable_neighbours(
        &mut self,
        _link: &str,
        _port: Option<&str>,
    ) -> Result<Vec<Neighbour>, HostError> {
        Ok(Vec::new())
    }
    fn put_neighbours(
        &mut self,
        _link: &str,
        _entries: &[Neighbour],
    ) -> Result<(Vec<String>, Vec<String>), HostError> {
        Ok(Default::default())
    }

    /// How the kernel makes `link`'s IPv6 link-local address, its link-local addresses, putting
    /// one on a link without duplicate address detection, and setting the mode (see
    /// [`edgenet_host::netlink::Netlink::ipv6_addr_gen_mode`] and
    /// [`edgenet_host::netlink::Netlink::add_link_local`]). (The fake has no IPv6.)
    fn ipv6_addr_gen_mode(&mut self, _link: &str) -> Result<Option<AddrGenMode>, HostError> {
        Ok(None)
    }
    fn set_ipv6_addr_gen_mode(&mut self, _link: &str, _mode: AddrGenMode) -> Result<(), HostError> {
        Ok(())
    }
    /// `link`'s own IPv6 settings (see [`edgenet_host::netlink::Netlink::ipv6_settings`]).
    fn ipv6_settings(&mut self, _link: &str) -> Result<Option<Ipv6Settings>, HostError> {
        Ok(None)
    }
    fn ipv6_link_locals(&mut self, _link: &str) -> Result<Vec<LinkLocal>, HostError> {
        Ok(Vec::new())
    }
    fn add_link_local(&mut self, _link: &str, _ll: &LinkLocal) -> Result<bool, HostError> {
        Ok(true)
    }

    /// Named network namespaces (`ip netns`).
    fn netns_exists(&mut self, name: &str) -> bool;
    fn netns_create(&mut self, name: &str) -> Result<(), HostError>;
    /// `Ok(false)` when there was no such namespace.
    fn netns_delete(&mut self, name: &str) -> Result<bool, HostError>;
}

/// Opens the real kernel: rtnetlink in the calling thread's namespace.
pub fn open() -> Result<Netlink, HostError> {
    Netlink::open()
}

impl Kernel for Netlink {
    fn links(&mut self) -> Result<Vec<Link>, HostError> {
        Netlink::links(self)
    }
    fn link(&mut self, name: &str) -> Result<Option<Link>, HostError> {
        Netlink::link(self, name)
    }
    fn addresses(&mut self) -> Result<Vec<Address>, HostError> {
        Netlink::addresses(self)
    }
    fn routes(&mut self) -> Result<Vec<Route>, HostError> {
        Netlink::routes(self)
    }
    fn addresses_of(&mut self, link: &str) -> Result<Vec<Ipv4Net>, HostError> {
        Ok(Netlink::addresses_of(self, link)?
            .into_iter()
            .map(|a| a.address)
            .collect())
    }
    fn create_bridge(&mut self, spec: &BridgeSpec<'_>) -> Result<(), HostError> {
        Netlink::create_bridge(self, spec)
    }
    fn create_veth(
        &mut self,
        spec: &VethSpec<'_>,
        peer_netns: Option<&str>,
    ) -> Result<(), HostError> {
        match peer_netns {
            None => Netlink::create_veth(self, spec),
            Some(name) => {
                let ns = NetNs::open(name)?;
                let mut spec: VethSpec<'_> = *spec;
                spec.peer_netns = Some(std::os::fd::AsFd::as_fd(&ns));
                Netlink::create_veth(self, &spec)
            }
        }
    }
    fn set_up(&mut self, name: &str, up: bool) -> Result<(), HostError> {
        Netlink::set_up(self, name, up)
    }
    fn set_mtu(&mut self, name: &str, mtu: u32) -> Result<(), HostError> {
        Netlink::set_mtu(self, name, mtu)
    }
    fn set_mac(&mut self, name: &str, mac: MacAddr) -> Result<(), HostError> {
        Netlink::set_mac(self, name, mac)
    }
    fn set_master(&mut self, name: &str, master: Option<&str>) -> Result<(), HostError> {
        Netlink::set_master(self, name, master)
    }
    fn set_hairpin(&mut self, name: &str, on: bool) -> Result<(), HostError> {
        Netlink::set_hairpin(self, name, on)
    }
    fn set_alias(&mut self, name: &str, alias: &str) -> Result<(), HostError> {
        Netlink::set_alias(self, name, alias)
    }
    fn set_port_alias(&mut self, name: &str, alias: &str) -> Result<(), HostError> {
        Netlink::set_port_alias(self, name, alias)
    }
    fn set_group(&mut self, name: &str, group: u32) -> Result<(), HostError> {
        Netlink::set_group(self, name, group)
    }
    fn delete_link(&mut self, name: &str) -> Result<bool, HostError> {
        Netlink::delete_link(self, name)
    }
    fn delete_group(&mut self, group: u32) -> Result<bool, HostError> {
        Netlink::delete_group(self, group)
    }
    fn delete_group_detached(&mut self, group: u32) -> Result<bool, HostError> {
        Netlink::delete_group_detached(self, group)
    }
    fn link_index(&mut self, name: &str) -> Result<u32, HostError> {
        Netlink::link_index(self, name)
    }
    fn add_address(&mut self, link: &str, address: Ipv4Net) -> Result<(), HostError> {
        Netlink::add_address(self, link, address)
    }
    fn del_address(&mut self, link: &str, address: Ipv4Net) -> Result<bool, HostError> {
        Netlink::del_address(self, link, address)
    }
    fn replace_route(&mut self, spec: &RouteSpec<'_>) -> Result<(), HostError> {
        Netlink::replace_route(self, spec)
    }
    fn link_config(&mut self, name: &str) -> Result<LinkConfig, HostError> {
        Netlink::link_config(self, name)
    }
    fn move_link_config(&mut self, from: &str, to: &str) -> Result<LinkConfig, HostError> {
        Netlink::move_link_config(self, from, to)
    }
    fn apply_link_config(
        &mut self,
        config: &LinkConfig,
        link: &str,
    ) -> Result<Vec<(usize, String)>, HostError> {
        Netlink::apply_link_config(self, config, link)
    }
    fn apply_saved(&mut self, saved: &SavedLinkConfig) -> Result<LinkConfig, HostError> {
        Netlink::apply_saved(self, saved)
    }
    fn apply_saved_onto(
        &mut self,
        saved: &SavedLinkConfig,
        link: &str,
        present: &[String],
    ) -> Result<(Vec<String>, Vec<String>), HostError> {
        Netlink::apply_saved_onto(self, saved, link, present)
    }
    fn missing_connected_routes(
        &mut self,
        link: &str,
        own: &[Ipv4Net],
    ) -> Result<Vec<ConnectedRoute>, HostError> {
        Netlink::missing_connected_routes(self, link, own)
    }
    fn add_connected_route(&mut self, link: &str, r: &ConnectedRoute) -> Result<(), HostError> {
        Netlink::add_connected_route(self, link, r)
    }
    fn ipv6_addr_gen_mode(&mut self, link: &str) -> Result<Option<AddrGenMode>, HostError> {
        Netlink::ipv6_addr_gen_mode(self, link)
    }
    fn ipv6_settings(&mut self, link: &str) -> Result<Option<Ipv6Settings>, HostError> {
        Netlink::ipv6_settings(self, link)
    }
    fn set_ipv6_addr_gen_mode(&mut self, link: &str, mode: AddrGenMode) -> Result<(), HostError> {
        Netlink::set_ipv6_addr_gen_mode(self, link, mode)
    }
    fn ipv6_link_locals(&mut self, link: &str) -> Result<Vec<LinkLocal>, HostError> {
        Netlink::ipv6_link_locals(self, link)
    }
    fn add_link_local(&mut self, link: &str, ll: &LinkLocal) -> Result<bool, HostError> {
        Netlink::add_link_local(self, link, ll)
    }
    fn movable_neighbours(
        &mut self,
        link: &str,
        port: Option<&str>,
    ) -> Result<Vec<Neighbour>, HostError> {
        Netlink::movable_neighbours(self, link, port)
    }
    fn put_neighbours(
        &mut self,
        link: &str,
        entries: &[Neighbour],
    ) -> Result<(Vec<String>, Vec<String>), HostError> {
        Netlink::put_neighbours(self, link, entries)
    }
    fn netns_exists(&mut self, name: &str) -> bool {
        netns::exists(name)
    }
    fn netns_create(&mut self, name: &str) -> Result<(), HostError> {
        netns::create(name)
    }
    fn netns_delete(&mut self, name: &str) -> Result<bool, HostError> {
        netns::delete(name)
    }
}
