//! A small synchronous rtnetlink handle, bound to one network namespace.
//!
//! Why synchronous and hand-rolled over `netlink-packet-route` + `netlink-sys` (as netavark
//! does) instead of `rtnetlink`: edgenet sends a handful of requests per command, one at a
//! time, so an async runtime would only add start-up time and resident memory.
//!
//! A netlink socket belongs to the network namespace of the thread that opened it, for its
//! whole life. [`Netlink::open`] therefore works on the *calling thread's* namespace and
//! [`Netlink::open_in`] on another one, without moving the caller.

use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

use edgenet_core::mac::MacAddr;
use ipnet::Ipv4Net;
use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::netns::NetNs;

/// An error of one kernel or host-file operation, naming what was attempted on which object,
/// e.g. `create bridge aksedgesw-int: File exists (os error 17)`.
///
/// The OS error is part of the message (it is the useful part), so it is not also returned as
/// [`std::error::Error::source`]; read it with [`HostError::io_error`] or [`HostError::errno`].
#[derive(Debug, thiserror::Error)]
#[error("{op}{}: {io}{}", object_part(.object), detail_part(.detail))]
pub struct HostError {
    op: String,
    object: String,
    io: io::Error,
    detail: Option<String>,
}

fn object_part(object: &str) -> String {
    if object.is_empty() {
        String::new()
    } else {
        format!(" {object}")
    }
}

fn detail_part(detail: &Option<String>) -> String {
    match detail {
        Some(d) => format!(" (kernel: {d})"),
        None => String::new(),
    }
}

impl HostError {
    /// `op` is a verb phrase ("create bridge"), `object` what it was done to ("aksedgesw-int").
    pub fn new(op: impl Into<String>, object: impl Into<String>, io: io::Error) -> Self {
        HostError {
            op: op.into(),
            object: object.into(),
            io,
            detail: None,
        }
    }

    /// Adds the kernel's extended-ack message (why a netlink request was refused).
    pub fn with_detail(mut self, detail: Option<String>) -> Self {
        self.detail = detail;
        self
    }

    pub fn op(&self) -> &str {
        &self.op
    }

    pub fn object(&self) -> &str {
        &self.object
    }

    pub fn io_error(&self) -> &io::Error {
        &self.io
    }

    /// The kernel's errno (`libc::EEXIST`, ...), when the failure came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        self.io.raw_os_error()
    }

    /// The object already exists (`EEXIST`).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// The object (or the link it lives on) does not exist: `ENODEV` (link), `ENOENT` (file,
    /// namespace), `ESRCH` (route), `EADDRNOTAVAIL` (address).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(libc::ENODEV | libc::ENOENT | libc::ESRCH | libc::EADDRNOTAVAIL)
        )
    }
}

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Carrier present (IFF_LOWER_UP).
    pub lower_up: bool,
    /// Only for Ethernet-like links (not loopback or tunnels without a MAC).
    pub mac: Option<MacAddr>,
    /// rtnetlink kind (`bridge`, `veth`, ...); `None` for physical devices and loopback.
    pub kind: Option<String>,
    pub master_index: Option<u32>,
    /// Name of the bridge/bond this link is a port of (resolved within the same dump).
    pub master: Option<String>,
    /// `ip link set NAME alias ...`; edgenet marks the links it creates with `edgenet:<id>`.
    pub alias: Option<String>,
    /// Link group (0 = default). edgenet puts its links in a group to delete them in one go.
    pub group: u32,
}

/// An IPv4 address on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub link_index: u32,
    /// Empty if the link vanished between the two dumps.
    pub link: String,
    pub address: Ipv4Net,
    /// `brd` in `ip addr`, when the address has one.
    pub broadcast: Option<Ipv4Addr>,
}

/// An IPv4 route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: Ipv4Net,
    pub link_index: Option<u32>,
    pub link: Option<String>,
    pub gateway: Option<Ipv4Addr>,
    /// Route metric (`metric` in `ip route`), when set.
    pub metric: Option<u32>,
    /// `proto` in `ip route` (2 = kernel: made by the kernel for an address's subnet).
    pub protocol: u8,
}

impl Route {
    /// The kernel's own route for the subnet of an address: it comes and goes with the address.
    pub fn is_connected(&self) -> bool {
        self.protocol == u8::from(RouteProtocol::Kernel) && self.gateway.is_none()
    }
}

/// Everything [`crate::facts`] needs, from one link dump shared by the three tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub links: Vec<Link>,
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
}

/// A bridge to create.
#[derive(Debug, Clone, Copy)]
pub struct BridgeSpec<'a> {
    pub name: &'a str,
    /// `None` = kernel default (1500, then the minimum of its ports' MTUs).
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    /// Set at creation, so the link is marked as ours from its first instant.
    pub group: Option<u32>,
}

impl<'a> BridgeSpec<'a> {
    pub fn new(name: &'a str) -> Self {
        BridgeSpec {
            name,
            mtu: None,
            mac: None,
            group: None,
        }
    }
}

/// A veth pair to create; the peer may be created directly inside another namespace.
#[derive(Debug, Clone, Copy)]
pub struct VethSpec<'a> {
    pub name: &'a str,
    pub peer_name: &'a str,
    /// Applied to both ends (the kernel would give the peer 1500 otherwise).
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    pub peer_mac: Option<MacAddr>,
    /// Namespace for the peer; `None` = the handle's own namespace.
    pub peer_netns: Option<BorrowedFd<'a>>,
    /// Group of the local end (deleting it deletes the peer too).
    pub group: Option<u32>,
}

impl<'a> VethSpec<'a> {
    pub fn new(name: &'a str, peer_name: &'a str) -> Self {
        VethSpec {
            name,
            peer_name,
            mtu: None,
            mac: None,
            peer_mac: None,
            peer_netns: None,
            group: None,
        }
    }
}

/// An IPv4 route to add or delete in the main table.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec<'a> {
    pub destination: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    /// Output device.
    pub link: Option<&'a str>,
}

/// The kernel's default bridge MTU (ETH_DATA_LEN).
const BRIDGE_DEFAULT_MTU: u32 = 1500;
/// `NLMSGERR_ATTR_MSG`: the human-readable reason in an extended ack.
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
/// How often a dump that the kernel flagged as interrupted (the table changed meanwhile) is
/// retried before giving up.
const DUMP_RETRIES: usize = 5;

/// Why a request failed, before it is given its operation and object.
pub(crate) struct Failure {
    io: io::Error,
    detail: Option<String>,
}

impl From<io::Error> for Failure {
    fn from(io: io::Error) -> Self {
        Failure { io, detail: None }
    }
}

impl Failure {
    pub(crate) fn into_host(self, op: &str, object: &str) -> HostError {
        HostError::new(op, object, self.io).with_detail(self.detail)
    }

    pub(crate) fn errno(&self) -> Option<i32> {
        self.io.raw_os_error()
    }
}

/// A synchronous NETLINK_ROUTE socket.
#[derive(Debug)]
pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// Opens a handle on the calling thread's network namespace.
    pub fn open() -> Result<Self, HostError> {
        let fail = |e| HostError::new("open netlink socket", "", e);
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(fail)?;
        socket.bind_auto().map_err(fail)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(fail)?;
        // Extended acks carry the kernel's reason for a refusal; capped acks keep them small.
        // Both are best effort: old kernels without them still work.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(Netlink {
            socket,
            seq: 0,
            buf: Vec::with_capacity(32 * 1024),
        })
    }

    /// Opens a handle on another namespace without moving the calling thread: the socket is
    /// created by a short-lived thread inside `ns` and stays bound to `ns`.
    pub fn open_in(ns: &NetNs) -> Result<Self, HostError> {
        ns.run(Netlink::open)?
    }

    // ---- dumps ----

    /// All links of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>, HostError> {
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Unspec;
        let replies = self
            .dump(RouteNetlinkMessage::GetLink(msg))
            .map_err(|f| f.into_host("dump links", ""))?;
        let mut links: Vec<Link> = replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from(l)),
                _ => None,
            })
            .collect();
        let names: HashMap<u32, String> = links.iter().map(|l| (l.index, l.name.clone())).collect();
        for link in &mut links {
            link.master = link.master_index.and_then(|i| names.get(&i).cloned());
        }
        Ok(links)
    }

    /// One link by name; `None` when there is no such link.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>, HostError> {
        let replies = match self.ack_request(
            RouteNetlinkMessage::GetLink(link_by_name(name)),
            NLM_F_REQUEST | NLM_F_ACK,
        ) {
            Ok(r) => r,
            Err(f) if f.errno() == Some(libc::ENODEV) => return Ok(None),
            Err(f) => return Err(f.into_host("get link", name)),
        };
        let Some(mut link) = replies.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(link_from(l)),
            _ => None,
        }) else {
            return Ok(None);
        };
        if let Some(master) = link.master_index {
            link.master = self.link_name(master)?;
        }
        Ok(Some(link))
    }

    /// IPv4 addresses of all links.
    pub fn addresses(&mut self) -> Result<Vec<Address>, HostError> {
        let names = self.link_names()?;
        self.addresses_named(&names)
    }

    /// IPv4 routes of the main table.
    pub fn routes(&mut self) -> Result<Vec<Route>, HostError> {
        let names = self.link_names()?;
        self.routes_named(&names)
    }

    /// Links, IPv4 addresses and main-table IPv4 routes, sharing one link dump.
    pub fn snapshot(&mut self) -> Result<Snapshot, HostError> {
        let links = self.links()?;
        let names: HashMap<u32, String> = links.iter().map(|l| (l.index, l.name.clone())).collect();
        let addresses = self.addresses_named(&names)?;
        let routes = self.routes_named(&names)?;
        Ok(Snapshot {
            links,
            addresses,
            routes,
        })
    }

    fn link_names(&mut self) -> Result<HashMap<u32, String>, HostError> {
        Ok(self
            .links()?
            .into_iter()
            .map(|l| (l.index, l.name))
            .collect())
    }

    fn link_name(&mut self, index: u32) -> Result<Option<String>, HostError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.ack_request(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST | NLM_F_ACK) {
            Ok(replies) => Ok(replies.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from(l).name),
                _ => None,
            })),
            Err(f) if f.errno() == Some(libc::ENODEV) => Ok(None),
            Err(f) => Err(f.into_host("get link", format!("index {index}").as_str())),
        }
    }

    fn addresses_named(&mut self, names: &HashMap<u32, String>) -> Result<Vec<Address>, HostError> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        let replies = self
            .dump(RouteNetlinkMessage::GetAddress(msg))
            .map_err(|f| f.into_host("dump IPv4 addresses", ""))?;
        let mut out = Vec::new();
        for reply in &replies {
            let RouteNetlinkMessage::NewAddress(a) = reply else {
                continue;
            };
            if a.header.family != AddressFamily::Inet {
                continue;
            }
            // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on
            // point-to-point links, and equals IFA_LOCAL elsewhere.
            let mut local = None;
            let mut address = None;
            let mut broadcast = None;
            for attr in &a.attributes {
                match attr {
                    AddressAttribute::Broadcast(ip) => broadcast = Some(*ip),
                    AddressAttribute::Local(std::net::IpAddr::V4(ip)) => local = Some(*ip),
                    AddressAttribute::Address(std::net::IpAddr::V4(ip)) => address = Some(*ip),
                    _ => {}
                }
            }
            let Some(ip) = local.or(address) else {
                continue;
            };
            let Ok(net) = Ipv4Net::new(ip, a.header.prefix_len) else {
                continue;
            };
            out.push(Address {
                link_index: a.header.index,
                link: names.get(&a.header.index).cloned().unwrap_or_default(),
                address: net,
                broadcast,
            });
        }
        Ok(out)
    }

    fn routes_named(&mut self, names: &HashMap<u32, String>) -> Result<Vec<Route>, HostError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        let replies = self
            .dump(RouteNetlinkMessage::GetRoute(msg))
            .map_err(|f| f.into_host("dump IPv4 routes", ""))?;
        let mut out = Vec::new();
        for reply in &replies {
            let RouteNetlinkMessage::NewRoute(r) = reply else {
                continue;
            };
            if r.header.address_family != AddressFamily::Inet {
                continue;
            }
            let mut table = u32::from(r.header.table);
            let mut dst = Ipv4Addr::UNSPECIFIED;
            let mut oif = None;
            let mut gateway = None;
            let mut metric = None;
            for attr in &r.attributes {
                match attr {
                    RouteAttribute::Table(t) => table = *t,
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = *ip,
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gateway = Some(*ip),
                    RouteAttribute::Priority(p) => metric = Some(*p),
                    // A multipath route has no single device or gateway: report its first hop.
                    RouteAttribute::MultiPath(hops) => {
                        if let Some(hop) = hops.first() {
                            oif = oif.or(Some(hop.interface_index));
                            for a in &hop.attributes {
                                if let RouteAttribute::Gateway(RouteAddress::Inet(ip)) = a {
                                    gateway = gateway.or(Some(*ip));
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
                continue;
            }
            let Ok(destination) = Ipv4Net::new(dst, r.header.destination_prefix_length) else {
                continue;
            };
            out.push(Route {
                destination,
                link_index: oif,
                link: oif.and_then(|i| names.get(&i).cloned()),
                gateway,
                metric,
                protocol: u8::from(r.header.protocol),
            });
        }
        Ok(out)
    }

    // ---- links ----

    /// Creates a bridge. Fails with `EEXIST` when a link of that name exists.
    ///
    /// A bridge whose MTU was never *changed* follows the minimum MTU of its ports, so an MTU
    /// other than the default is set after creation, which pins it (`BROPT_MTU_SET_BY_USER`).
    pub fn create_bridge(&mut self, spec: &BridgeSpec<'_>) -> Result<(), HostError> {
        let op = "create bridge";
        let mut msg = link_by_name(spec.name);
        if let Some(mac) = spec.mac {
            msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        }
        if let Some(group) = spec.group {
            msg.attributes.push(LinkAttribute::Group(group));
        }
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.ack_request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map_err(|f| f.into_host(op, spec.name))?;
        if let Some(mtu) = spec.mtu.filter(|m| *m != BRIDGE_DEFAULT_MTU) {
            if let Err(e) = self.set_mtu(spec.name, mtu) {
                // Do not leave a half-made bridge behind; the MTU error is the one to report.
                let _ = self.delete_link(spec.name);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Creates a veth pair, the peer optionally directly inside another namespace.
    pub fn create_veth(&mut self, spec: &VethSpec<'_>) -> Result<(), HostError> {
        let mut peer = link_by_name(spec.peer_name);
        if let Some(mtu) = spec.mtu {
            peer.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = spec.peer_mac {
            peer.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        }
        if let Some(fd) = spec.peer_netns {
            peer.attributes.push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
        }
        // Both ends in the group: the peer carries the mark from the moment it exists.
        if let Some(group) = spec.group {
            peer.attributes.push(LinkAttribute::Group(group));
        }
        let mut msg = link_by_name(spec.name);
        if let Some(mtu) = spec.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = spec.mac {
            msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        }
        if let Some(group) = spec.group {
            msg.attributes.push(LinkAttribute::Group(group));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        let object = format!("{} (peer {})", spec.name, spec.peer_name);
        self.ack_request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map_err(|f| f.into_host("create veth", &object))?;
        Ok(())
    }

    /// Sets a link administratively up or down.
    pub fn set_up(&mut self, name: &str, up: bool) -> Result<(), HostError> {
        let mut msg = link_by_name(name);
        msg.header.change_mask = LinkFlags::Up;
        if up {
            msg.header.flags = LinkFlags::Up;
        }
        let op = if up { "set up" } else { "set down" };
        self.set_link(msg, op, name)
    }

    pub fn set_mtu(&mut self, name: &str, mtu: u32) -> Result<(), HostError> {
        let mut msg = link_by_name(name);
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        self.set_link(msg, &format!("set mtu {mtu} on"), name)
    }

    pub fn set_mac(&mut self, name: &str, mac: MacAddr) -> Result<(), HostError> {
        let mut msg = link_by_name(name);
        msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        self.set_link(msg, &format!("set mac {mac} on"), name)
    }

    /// Makes `name` a port of bridge `master`, or of nothing with `None`.
    pub fn set_master(&mut self, name: &str, master: Option<&str>) -> Result<(), HostError> {
        let (index, op) = match master {
            Some(m) => (self.link_index(m)?, format!("set master {m} on")),
            None => (0, "set nomaster on".to_string()),
        };
        let mut msg = link_by_name(name);
        msg.attributes.push(LinkAttribute::Controller(index));
        self.set_link(msg, &op, name)
    }

    /// Sets the link's alias (`ifalias`); an empty alias removes it.
    pub fn set_alias(&mut self, name: &str, alias: &str) -> Result<(), HostError> {
        let mut msg = link_by_name(name);
        msg.attributes
            .push(LinkAttribute::IfAlias(alias.to_string()));
        self.set_link(msg, &format!("set alias {alias:?} on"), name)
    }

    pub fn set_group(&mut self, name: &str, group: u32) -> Result<(), HostError> {
        let mut msg = link_by_name(name);
        msg.attributes.push(LinkAttribute::Group(group));
        self.set_link(msg, &format!("set group {group} on"), name)
    }

    /// Moves a link into another namespace (it keeps its name there).
    pub fn move_to_netns(&mut self, name: &str, ns: BorrowedFd<'_>) -> Result<(), HostError> {
        let mut msg = link_by_name(name);
        msg.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        self.set_link(msg, "move to another netns", name)
    }

    /// Deletes a link by name. Returns whether it existed; a missing link is not an error.
    pub fn delete_link(&mut self, name: &str) -> Result<bool, HostError> {
        match self.ack_request(
            RouteNetlinkMessage::DelLink(link_by_name(name)),
            NLM_F_REQUEST | NLM_F_ACK,
        ) {
            Ok(_) => Ok(true),
            Err(f) if f.errno() == Some(libc::ENODEV) => Ok(false),
            Err(f) => Err(f.into_host("delete link", name)),
        }
    }

    /// Deletes every link of `group` in one request (`ip link del group N`): the kernel then
    /// waits for RCU once instead of once per link. Returns whether any link was in the group.
    /// The kernel refuses (EOPNOTSUPP) when the group holds a link that cannot be deleted,
    /// e.g. a physical adapter, and then deletes nothing.
    pub fn delete_group(&mut self, group: u32) -> Result<bool, HostError> {
        let object = format!("group {group}");
        if group == 0 {
            return Err(HostError::new(
                "delete links of",
                object,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "group 0 is the default group of every link",
                ),
            ));
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::Group(group));
        match self.ack_request(RouteNetlinkMessage::DelLink(msg), NLM_F_REQUEST | NLM_F_ACK) {
            Ok(_) => Ok(true),
            Err(f) if f.errno() == Some(libc::ENODEV) => Ok(false),
            Err(f) => Err(f.into_host("delete links of", &object)),
        }
    }

    /// The index of link `name`; `ENODEV` error naming it when missing.
    pub fn link_index(&mut self, name: &str) -> Result<u32, HostError> {
        let replies = self
            .ack_request(
                RouteNetlinkMessage::GetLink(link_by_name(name)),
                NLM_F_REQUEST | NLM_F_ACK,
            )
            .map_err(|f| f.into_host("find link", name))?;
        replies
            .iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })
            .ok_or_else(|| {
                HostError::new(
                    "find link",
                    name,
                    io::Error::from_raw_os_error(libc::ENODEV),
                )
            })
    }

    fn set_link(&mut self, msg: LinkMessage, op: &str, name: &str) -> Result<(), HostError> {
        self.ack_request(RouteNetlinkMessage::SetLink(msg), NLM_F_REQUEST | NLM_F_ACK)
            .map_err(|f| f.into_host(op, name))?;
        Ok(())
    }

    // ---- addresses ----

    /// Adds an IPv4 address with its subnet broadcast (as `ip addr add A/P brd + dev L`).
    /// Fails with `EEXIST` when the link already has it.
    pub fn add_address(&mut self, link: &str, address: Ipv4Net) -> Result<(), HostError> {
        let broadcast = (address.prefix_len() < 31).then(|| address.broadcast());
        self.add_address_with(link, address, broadcast)
    }

    /// Adds an address with exactly the given broadcast (none: like `ip addr add` without
    /// `brd`), to put a host's address back as it was listed.
    pub fn add_address_with(
        &mut self,
        link: &str,
        address: Ipv4Net,
        broadcast: Option<Ipv4Addr>,
    ) -> Result<(), HostError> {
        let op = format!("add address {address} to");
        let index = self
            .link_index(link)
            .map_err(|e| HostError::new(&op, link, clone_io(e.io_error())))?;
        let mut msg = address_message(index, address);
        if let Some(brd) = broadcast {
            msg.attributes.push(AddressAttribute::Broadcast(brd));
        }
        self.ack_request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map_err(|f| f.into_host(&op, link))?;
        Ok(())
    }

    /// Deletes an IPv4 address. Returns whether it existed; a missing address or link is fine.
    pub fn del_address(&mut self, link: &str, address: Ipv4Net) -> Result<bool, HostError> {
        let op = format!("delete address {address} from");
        let index = match self.link_index(link) {
            Ok(i) => i,
            Err(e) if e.errno() == Some(libc::ENODEV) => return Ok(false),
            Err(e) => return Err(HostError::new(&op, link, clone_io(e.io_error()))),
        };
        let msg = address_message(index, address);
        match self.ack_request(
            RouteNetlinkMessage::DelAddress(msg),
            NLM_F_REQUEST | NLM_F_ACK,
        ) {
            Ok(_) => Ok(true),
            Err(f) if f.errno() == Some(libc::EADDRNOTAVAIL) => Ok(false),
            Err(f) => Err(f.into_host(&op, link)),
        }
    }

    // ---- routes ----

    /// Adds a main-table IPv4 route; fails with `EEXIST` when one with that destination
    /// (and metric) exists.
    pub fn add_route(&mut self, spec: &RouteSpec<'_>) -> Result<(), HostError> {
        self.new_route(spec, NLM_F_CREATE | NLM_F_EXCL, "add route")
    }

    /// Adds or replaces the main-table IPv4 route to `spec.destination`.
    pub fn replace_route(&mut self, spec: &RouteSpec<'_>) -> Result<(), HostError> {
        self.new_route(spec, NLM_F_CREATE | NLM_F_REPLACE, "replace route")
    }

    fn new_route(&mut self, spec: &RouteSpec<'_>, flags: u16, op: &str) -> Result<(), HostError> {
        let object = route_object(spec);
        let mut msg = self.route_message(spec, op, &object)?;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.kind = RouteType::Unicast;
        msg.header.scope = if spec.gateway.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        self.ack_request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_REQUEST | NLM_F_ACK | flags,
        )
        .map_err(|f| f.into_host(op, &object))?;
        Ok(())
    }

    /// Deletes a main-table IPv4 route matching the given destination (and gateway and device
    /// when given). Returns whether one existed; a missing route or device is fine.
    pub fn del_route(&mut self, spec: &RouteSpec<'_>) -> Result<bool, HostError> {
        let op = "delete route";
        let object = route_object(spec);
        let mut msg = match self.route_message(spec, op, &object) {
            Ok(m) => m,
            Err(e) if e.errno() == Some(libc::ENODEV) => return Ok(false),
            Err(e) => return Err(e),
        };
        // Like `ip route del`: match any scope, protocol and type.
        msg.header.scope = RouteScope::NoWhere;
        match self.ack_request(
            RouteNetlinkMessage::DelRoute(msg),
            NLM_F_REQUEST | NLM_F_ACK,
        ) {
            Ok(_) => Ok(true),
            Err(f) if f.errno() == Some(libc::ESRCH) => Ok(false),
            Err(f) => Err(f.into_host(op, &object)),
        }
    }

    fn route_message(
        &mut self,
        spec: &RouteSpec<'_>,
        op: &str,
        object: &str,
    ) -> Result<RouteMessage, HostError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.destination_prefix_length = spec.destination.prefix_len();
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        if spec.destination.prefix_len() > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet(
                    spec.destination.network(),
                )));
        }
        if let Some(gw) = spec.gateway {
            msg.attributes
                .push(RouteAttribute::Gateway(RouteAddress::Inet(gw)));
        }
        if let Some(link) = spec.link {
            let index = self
                .link_index(link)
                .map_err(|e| HostError::new(op, object, clone_io(e.io_error())))?;
            msg.attributes.push(RouteAttribute::Oif(index));
        }
        Ok(msg)
    }

    // ---- protocol ----

    /// A request answered by an ACK (or a NACK), possibly preceded by reply messages.
    pub(crate) fn ack_request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        // Every change edgenet makes to the kernel passes here: `-vv` shows them all.
        match describe(&msg) {
            Some(change) => tracing::debug!("netlink: {change}"),
            None => tracing::trace!("netlink: {msg:?}"),
        }
        let (replies, _) = self.exchange(msg, flags)?;
        Ok(replies)
    }

    /// A dump, retried when the kernel says the table changed while it was being dumped.
    pub(crate) fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        for _ in 0..DUMP_RETRIES {
            let (replies, interrupted) = self.exchange(msg.clone(), NLM_F_REQUEST | NLM_F_DUMP)?;
            if !interrupted {
                return Ok(replies);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "the table kept changing while it was dumped",
        )
        .into())
    }

    /// Sends one request and reads until its ACK/NACK or end of dump. Returns the reply
    /// messages and whether a dump was flagged as interrupted.
    fn exchange(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(Vec<RouteNetlinkMessage>, bool), Failure> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut packet = NetlinkMessage::from(msg);
        packet.header.flags = flags;
        packet.header.sequence_number = seq;
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket.send(&out, 0)?;

        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            self.recv_datagram()?;
            let mut offset = 0;
            while offset + 16 <= self.buf.len() {
                let len = u32::from_ne_bytes([
                    self.buf[offset],
                    self.buf[offset + 1],
                    self.buf[offset + 2],
                    self.buf[offset + 3],
                ]) as usize;
                if len < 16 || offset + len > self.buf.len() {
                    return Err(invalid_data("truncated netlink message"));
                }
                let bytes = &self.buf[offset..offset + len];
                offset += (len + 3) & !3;
                let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                    .map_err(|e| invalid_data(&format!("cannot parse netlink reply: {e}")))?;
                if message.header.sequence_number != seq {
                    continue; // a late answer to an earlier request
                }
                let header_flags = message.header.flags;
                if header_flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match message.payload {
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok((replies, interrupted)),
                            Some(code) => Err(Failure {
                                io: io::Error::from_raw_os_error(code.get().abs()),
                                detail: error_detail(header_flags, &e.header),
                            }),
                        };
                    }
                    NetlinkPayload::Done(d) => {
                        if d.code != 0 {
                            let detail = if header_flags & NLM_F_ACK_TLVS != 0 {
                                tlv_message(&d.extended_ack)
                            } else {
                                None
                            };
                            return Err(Failure {
                                io: io::Error::from_raw_os_error(d.code.abs()),
                                detail,
                            });
                        }
                        return Ok((replies, interrupted));
                    }
                    NetlinkPayload::Overrun(_) => {
                        return Err(invalid_data("netlink overrun"));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Reads one whole datagram into `self.buf`, growing it when the datagram is larger.
    fn recv_datagram(&mut self) -> Result<(), Failure> {
        loop {
            self.buf.clear();
            let peeked = self
                .socket
                .recv(&mut self.buf, libc::MSG_PEEK | libc::MSG_TRUNC)
                .and_then(|size| {
                    self.buf.clear();
                    if size > self.buf.capacity() {
                        self.buf.reserve(size);
                    }
                    self.socket.recv(&mut self.buf, 0)
                });
            match peeked {
                Ok(_) => return Ok(()),
                // A signal arrived while waiting: the answer is still coming.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn invalid_data(msg: &str) -> Failure {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string()).into()
}

/// `io::Error` is not `Clone`; errno errors are rebuilt exactly, others keep kind and text.
fn clone_io(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// The kernel's extended-ack message from an NLMSG_ERROR payload (after the error code):
/// the echoed request header (whole request unless capped), then TLVs.
fn error_detail(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || payload.len() < 16 {
        return None;
    }
    let echoed = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        let len = u32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize;
        (len + 3) & !3
    };
    tlv_message(payload.get(echoed..)?)
}

fn tlv_message(mut tlvs: &[u8]) -> Option<String> {
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            let text = String::from_utf8_lossy(text).trim().to_string();
            return (!text.is_empty()).then_some(text);
        }
        let step = (len + 3) & !3;
        tlvs = tlvs.get(step..)?;
    }
    None
}

fn link_by_name(name: &str) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg
}

fn address_message(index: u32, address: Ipv4Net) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.prefix_len = address.prefix_len();
    msg.header.index = index;
    msg.header.scope = AddressScope::Universe;
    let ip = std::net::IpAddr::V4(address.addr());
    msg.attributes.push(AddressAttribute::Local(ip));
    msg.attributes.push(AddressAttribute::Address(ip));
    msg
}

fn route_object(spec: &RouteSpec<'_>) -> String {
    let mut s = spec.destination.to_string();
    if let Some(gw) = spec.gateway {
        s.push_str(&format!(" via {gw}"));
    }
    if let Some(link) = spec.link {
        s.push_str(&format!(" dev {link}"));
    }
    s
}

fn link_from(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        mtu: 0,
        up: msg.header.flags.contains(LinkFlags::Up),
        lower_up: msg.header.flags.contains(LinkFlags::LowerUp),
        mac: None,
        kind: None,
        master_index: None,
        master: None,
        alias: None,
        group: 0,
    };
    let ether = msg.header.link_layer_type == LinkLayerType::Ether;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Address(a) if ether => {
                if let Ok(octets) = <[u8; 6]>::try_from(a.as_slice()) {
                    link.mac = Some(MacAddr(octets));
                }
            }
            LinkAttribute::Controller(m) if *m != 0 => link.master_index = Some(*m),
            LinkAttribute::IfAlias(a) if !a.is_empty() => link.alias = Some(a.clone()),
            LinkAttribute::Group(g) => link.group = *g,
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

/// A one-line account of a change request, for the debug log (`None`: not a change).
fn describe(msg: &RouteNetlinkMessage) -> Option<String> {
    let link = |verb: &str, m: &LinkMessage| {
        let name = m.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        });
        format!(
            "{verb} link {}",
            name.unwrap_or_else(|| format!("index {}", m.header.index))
        )
    };
    let address = |verb: &str, m: &AddressMessage| {
        let ip = m.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        });
        format!(
            "{verb} address {}/{} on index {}",
            ip.map_or("?".to_string(), |ip| ip.to_string()),
            m.header.prefix_len,
            m.header.index
        )
    };
    let route = |verb: &str, m: &RouteMessage| {
        let dst = m.attributes.iter().find_map(|a| match a {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(*ip),
            _ => None,
        });
        format!(
            "{verb} route {}/{}",
            dst.unwrap_or(Ipv4Addr::UNSPECIFIED),
            m.header.destination_prefix_length
        )
    };
    Some(match msg {
        RouteNetlinkMessage::NewLink(m) => link("new", m),
        RouteNetlinkMessage::SetLink(m) => link("set", m),
        RouteNetlinkMessage::DelLink(m) => link("delete", m),
        RouteNetlinkMessage::NewAddress(m) => address("add", m),
        RouteNetlinkMessage::DelAddress(m) => address("delete", m),
        RouteNetlinkMessage::NewRoute(m) => route("add", m),
        RouteNetlinkMessage::DelRoute(m) => route("delete", m),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_operation_and_object() {
        let e = HostError::new(
            "create bridge",
            "aksedgesw-int",
            io::Error::from_raw_os_error(libc::EEXIST),
        );
        assert!(e
            .to_string()
            .starts_with("create bridge aksedgesw-int: File exists"));
        assert!(e.is_exists());
        assert!(!e.is_not_found());
        let e = HostError::new("dump links", "", io::Error::from_raw_os_error(libc::EPERM))
            .with_detail(Some("nope".into()));
        assert!(e
            .to_string()
            .starts_with("dump links: Operation not permitted"));
        assert!(e.to_string().ends_with("(kernel: nope)"));
    }

    #[test]
    fn extended_ack_message_is_found_in_capped_error() {
        // 16-byte echoed header, then one NLMSGERR_ATTR_MSG TLV "bad mtu\0".
        let mut payload = vec![0u8; 16];
        let text = b"bad mtu\0";
        payload.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(text);
        assert_eq!(
            error_detail(NLM_F_CAPPED | NLM_F_ACK_TLVS, &payload).as_deref(),
            Some("bad mtu")
        );
        assert_eq!(error_detail(NLM_F_CAPPED, &payload), None);
    }

    #[test]
    fn route_object_reads_like_ip_route() {
        let spec = RouteSpec {
            destination: "0.0.0.0/0".parse().unwrap(),
            gateway: Some(Ipv4Addr::new(198, 18, 0, 1)),
            link: Some("eth0"),
        };
        assert_eq!(route_object(&spec), "0.0.0.0/0 via 198.18.0.1 dev eth0");
    }
}
