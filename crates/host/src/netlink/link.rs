//! Links: the [`Link`] value, the parser from the kernel's `RTM_NEWLINK`, and every link
//! operation (bridges, veths, up/down, MTU, MAC, master, alias, group, namespace, delete).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use edgenet_core::mac::MacAddr;
use netlink_packet_core::{
    DecodeError, Emitable, NlasIterator, ParseableParametrized, NLM_F_ACK, NLM_F_CREATE,
    NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoBridge, InfoBridgePort, InfoData, InfoKind,
    InfoPortData, InfoPortKind, InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags, LinkHeader,
    LinkInfo, LinkLayerType, LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::socket::invalid_data;
use super::{HostError, Netlink};

/// The kernel's default bridge MTU.
const BRIDGE_DEFAULT_MTU: u32 = libc::ETH_DATA_LEN as u32;

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
    /// A bridge port in hairpin mode: frames may leave by the port they came in on.
    pub hairpin: bool,
}

/// How the kernel makes a link's IPv6 link-local address (`IFLA_INET6_ADDR_GEN_MODE`; `ip -d
/// link` shows it as `addrgenmode`): from the MAC (`eui64`, the default), none at all, from a
/// secret and the link's name (`stable_secret`), or at random.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrGenMode {
    Eui64,
    None,
    StablePrivacy,
    Random,
    Other(u8),
}

impl From<&In6AddrGenMode> for AddrGenMode {
    fn from(m: &In6AddrGenMode) -> Self {
        match m {
            In6AddrGenMode::Eui64 => AddrGenMode::Eui64,
            In6AddrGenMode::None => AddrGenMode::None,
            In6AddrGenMode::StablePrivacy => AddrGenMode::StablePrivacy,
            In6AddrGenMode::Random => AddrGenMode::Random,
            In6AddrGenMode::Other(v) => AddrGenMode::Other(*v),
            other => AddrGenMode::Other(u8::from(other)),
        }
    }
}

impl From<AddrGenMode> for In6AddrGenMode {
    fn from(m: AddrGenMode) -> Self {
        match m {
            AddrGenMode::Eui64 => In6AddrGenMode::Eui64,
            AddrGenMode::None => In6AddrGenMode::None,
            AddrGenMode::StablePrivacy => In6AddrGenMode::StablePrivacy,
            AddrGenMode::Random => In6AddrGenMode::Random,
            AddrGenMode::Other(v) => In6AddrGenMode::Other(v),
        }
    }
}

/// Some of a link's own IPv6 settings (`net.ipv6.conf.<link>.*`), read from the link itself
/// ([`Netlink::ipv6_settings`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Settings {
    pub accept_ra: i32,
    pub autoconf: i32,
    pub disable_ipv6: i32,
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
    /// IGMP/MLD snooping (`mcast_snooping`); `None` = the kernel's default (on).
    pub multicast_snooping: Option<bool>,
}

impl<'a> BridgeSpec<'a> {
    pub fn new(name: &'a str) -> Self {
        BridgeSpec {
            name,
            mtu: None,
            mac: None,
            group: None,
            multicast_snooping: None,
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

impl Netlink {
    /// All links of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>, HostError> {
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Unspec;
        let mut links = self
            .dump_payloads(get_link(msg), |kind, payload| {
                if kind != libc::RTM_NEWLINK {
                    return Ok(None);
                }
                link_from_payload(payload)
                    .map(Some)
                    .map_err(|e| invalid_data(&format!("cannot parse a link: {e}")))
            })
            .map_err(|f| f.into_host("dump links", ""))?;
        let names: HashMap<u32, String> = links.iter().map(|l| (l.index, l.name.clone())).collect();
        for link in &mut links {
            link.master = link.master_index.and_then(|i| names.get(&i).cloned());
        }
        Ok(links)
    }

    /// One link by name; `None` when there is no such link.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>, HostError> {
        let replies =
            match self.ack_request(get_link(link_by_name(name)), NLM_F_REQUEST | NLM_F_ACK) {
                Ok(r) => r,
                Err(f) if f.errno() == Some(libc::ENODEV) => return Ok(None),
                Err(f) => return Err(f.into_host("get link", name)),
            };
        let Some(mut link) = replies.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)),
            _ => None,
        }) else {
            return Ok(None);
        };
        if let Some(master) = link.master_index {
            link.master = self.link_name(master)?;
        }
        Ok(Some(link))
    }

    /// The name of link `index` in the socket's namespace (`SIOCGIFNAME`, as [`Self::link_index`]
    /// asks for an index: no GetLink, so no link-watch event run under RTNL).
    fn link_name(&mut self, index: u32) -> Result<Option<String>, HostError> {
        nix::ioctl_readwrite_bad!(siocgifname, libc::SIOCGIFNAME, libc::ifreq);
        let fail = |e: io::Error| HostError::new("get link", format!("index {index}").as_str(), e);
        let Ok(ifindex) = libc::c_int::try_from(index) else {
            return Ok(None);
        };
        // SAFETY: ifreq is plain old data; all zeroes is a valid (empty) request.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        req.ifr_ifru.ifru_ifindex = ifindex;
        // SAFETY: the fd is this socket's, open for the call; the kernel writes a NUL-terminated
        // name of at most IFNAMSIZ bytes into `req`.
        match unsafe { siocgifname(self.socket.as_raw_fd(), &mut req) } {
            Ok(_) => {}
            Err(nix::errno::Errno::ENODEV) => return Ok(None),
            Err(e) => return Err(fail(io::Error::from(e))),
        }
        let name: Vec<u8> = req
            .ifr_name
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        Ok(Some(String::from_utf8_lossy(&name).into_owned()))
    }

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
        let mut info = vec![LinkInfo::Kind(InfoKind::Bridge)];
        if let Some(on) = spec.multicast_snooping {
            // At creation: a bridge made with snooping off never joins the all-snoopers
            // groups, so it sends no IGMP/MLD report for them.
            info.push(LinkInfo::Data(InfoData::Bridge(vec![
                InfoBridge::MulticastSnooping(on),
            ])));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(info));
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
        // One queue each, as the kernel leaves a veth anyway: asked for at creation, so it
        // does not cut the per-CPU default down after registering each end, each cut waiting
        // for an (expedited) RCU grace period while holding the RTNL lock.
        peer.attributes
            .extend([LinkAttribute::NumTxQueues(1), LinkAttribute::NumRxQueues(1)]);
        let mut msg = link_by_name(spec.name);
        msg.attributes
            .extend([LinkAttribute::NumTxQueues(1), LinkAttribute::NumRxQueues(1)]);
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

    /// Hairpin mode of bridge port `name` (`bridge link set dev NAME hairpin on`). Port
    /// attributes go in RTM_NEWLINK's slave data: RTM_SETLINK ignores them.
    pub fn set_hairpin(&mut self, name: &str, on: bool) -> Result<(), HostError> {
        let mut msg = link_by_name(name);
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                on,
            )])),
        ]));
        let op = format!("set hairpin {} on", if on { "on" } else { "off" });
        self.ack_request(RouteNetlinkMessage::NewLink(msg), NLM_F_REQUEST | NLM_F_ACK)
            .map_err(|f| f.into_host(&op, name))?;
        Ok(())
    }

    /// Sets the link's alias (`ifalias`); an empty alias removes it.
    pub fn set_alias(&mut self, name: &str, alias: &str) -> Result<(), HostError> {
        let mut msg = link_by_name(name);
        msg.attributes
            .push(LinkAttribute::IfAlias(alias.to_string()));
        self.set_link(msg, &format!("set alias {alias:?} on"), name)
    }

    /// Gives a new bridge port (or a node's link, whose port passes no IPv6) `alias` and, in
    /// the same request, no IPv6 link-local address of its own (`addrgenmode none`, as
    /// systemd-networkd leaves a bridge port): a port carries no address, and its link-local
    /// one would only send duplicate address detection, MLD reports and router solicitations
    /// down the port when it comes up. Before the link is up
    /// (the address is made when it comes up). Without IPv6 on the link (IPv6 off in the
    /// kernel, an MTU below 1280) the alias alone. (The external switch's bridge is made so
    /// too when it takes the adapter's link-local address, already checked, instead of making
    /// the same one and checking it again; the kernel refuses `addrgenmode` in the request
    /// that creates a link.)
    pub fn set_port_alias(&mut self, name: &str, alias: &str) -> Result<(), HostError> {
        let mut msg = link_by_name(name);
        msg.attributes.extend([
            LinkAttribute::IfAlias(alias.to_string()),
            LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
                In6AddrGenMode::None,
            )])]),
        ]);
        match self.set_link(
            msg,
            &format!("set alias {alias:?} (addrgenmode none) on"),
            name,
        ) {
            Err(e) if e.errno() == Some(libc::EAFNOSUPPORT) => self.set_alias(name, alias),
            r => r,
        }
    }

    /// How the kernel makes `name`'s IPv6 link-local address, as the link's own IPv6 settings
    /// say (`IFLA_AF_SPEC`, not the `default` sysctl a new link starts from). `None` when the link
    /// has no IPv6 (IPv6 off in the kernel, an MTU below 1280) or does not exist.
    pub fn ipv6_addr_gen_mode(&mut self, name: &str) -> Result<Option<AddrGenMode>, HostError> {
        self.inet6_setting(name, |s| match s {
            AfSpecInet6::AddrGenMode(mode) => Some(AddrGenMode::from(mode)),
            _ => None,
        })
    }

    /// `name`'s own IPv6 settings as the link reports them (`IFLA_AF_SPEC`, `AF_INET6`,
    /// `IFLA_INET6_CONF`): the very values `net.ipv6.conf.<name>.*` shows, read with one request
    /// instead of one `/proc/sys` walk each (a walk that grows with the number of network
    /// namespaces on the host). `None` when the link has no IPv6 (IPv6 off in the kernel, an MTU
    /// below 1280: no `net/ipv6/conf/<name>` either) or does not exist.
    pub fn ipv6_settings(&mut self, name: &str) -> Result<Option<Ipv6Settings>, HostError> {
        self.inet6_setting(name, |s| match s {
            AfSpecInet6::DevConf(conf) => Some(Ipv6Settings {
                accept_ra: conf.accept_ra,
                autoconf: conf.autoconf,
                disable_ipv6: conf.disable_ipv6,
            }),
            _ => None,
        })
    }

    /// The first of `name`'s `AF_INET6` link settings (`IFLA_AF_SPEC`) that `pick` takes, from
    /// one request; `None` when the link has no IPv6 or does not exist.
    fn inet6_setting<T>(
        &mut self,
        name: &str,
        pick: impl Fn(&AfSpecInet6) -> Option<T>,
    ) -> Result<Option<T>, HostError> {
        let replies =
            match self.ack_request(get_link(link_by_name(name)), NLM_F_REQUEST | NLM_F_ACK) {
                Ok(r) => r,
                Err(f) if f.errno() == Some(libc::ENODEV) => return Ok(None),
                Err(f) => return Err(f.into_host("get link", name)),
            };
        Ok(replies.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => l.attributes.iter().find_map(|a| match a {
                LinkAttribute::AfSpecUnspec(families) => families.iter().find_map(|f| match f {
                    AfSpecUnspec::Inet6(settings) => settings.iter().find_map(&pick),
                    _ => None,
                }),
                _ => None,
            }),
            _ => None,
        }))
    }

    /// Sets how the kernel makes `name`'s IPv6 link-local address (`ip link set NAME addrgenmode
    /// MODE`). It takes effect the next time the link comes up: an address already made stays.
    pub fn set_ipv6_addr_gen_mode(
        &mut self,
        name: &str,
        mode: AddrGenMode,
    ) -> Result<(), HostError> {
        let mut msg = link_by_name(name);
        msg.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(mode.into())],
            )]));
        self.set_link(msg, &format!("set addrgenmode {mode:?} on"), name)
    }

    /// Gives the link `alias` and brings it up, in one request (the kernel sets the alias
    /// first, then the flags).
    pub fn set_up_with_alias(&mut self, name: &str, alias: &str) -> Result<(), HostError> {
        let mut msg = link_by_name(name);
        msg.header.change_mask = LinkFlags::Up;
        msg.header.flags = LinkFlags::Up;
        msg.attributes
            .push(LinkAttribute::IfAlias(alias.to_string()));
        self.set_link(msg, &format!("set alias {alias:?} and up on"), name)
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

    /// The index of link `name` in the socket's namespace, asked with `SIOCGIFINDEX` on this
    /// socket: a name lookup under RCU. A GetLink would do too, but it also runs the link's
    /// pending carrier event under RTNL, and taking down a link that was never up (a bridge
    /// or a veth just made) waits for a grace period (`dev_deactivate`).
    pub fn link_index(&mut self, name: &str) -> Result<u32, HostError> {
        nix::ioctl_readwrite_bad!(siocgifindex, libc::SIOCGIFINDEX, libc::ifreq);
        let fail = |e: io::Error| HostError::new("find link", name, e);
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(fail(io::Error::from_raw_os_error(libc::ENODEV)));
        }
        // SAFETY: ifreq is plain old data; all zeroes is a valid (empty) request.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        // SAFETY: the fd is this socket's, open for the call; `req` is a valid, NUL-terminated
        // request the kernel fills in.
        unsafe { siocgifindex(self.socket.as_raw_fd(), &mut req) }
            .map_err(|e| fail(io::Error::from(e)))?;
        // SAFETY: SIOCGIFINDEX answered, so the union holds the index.
        let index = unsafe { req.ifr_ifru.ifru_ifindex };
        u32::try_from(index).map_err(|_| fail(io::Error::from_raw_os_error(libc::ENODEV)))
    }

    fn set_link(&mut self, msg: LinkMessage, op: &str, name: &str) -> Result<(), HostError> {
        self.ack_request(RouteNetlinkMessage::SetLink(msg), NLM_F_REQUEST | NLM_F_ACK)
            .map_err(|f| f.into_host(op, name))?;
        Ok(())
    }
}

/// A request for links without their counters (`RTEXT_FILTER_SKIP_STATS`, as `ip link` asks
/// without `-s`): nothing here reads them, and filling them (the link's and IPv6's statistics)
/// is most of the kernel's work per link and most of the reply's bytes.
fn get_link(mut msg: LinkMessage) -> RouteNetlinkMessage {
    msg.attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    RouteNetlinkMessage::GetLink(msg)
}

fn link_by_name(name: &str) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg
}

/// The attributes [`parse_link`] reads. The others — statistics, every address family's
/// settings — are most of a link message's bytes and are stepped over undecoded.
const LINK_ATTRIBUTES_READ: [u16; 7] = [
    libc::IFLA_ADDRESS,
    libc::IFLA_IFNAME,
    libc::IFLA_MTU,
    libc::IFLA_MASTER,
    libc::IFLA_LINKINFO,
    libc::IFLA_IFALIAS,
    libc::IFLA_GROUP,
];

/// The [`Link`] an `RTM_NEWLINK` payload describes, decoding only the attributes it needs.
pub(super) fn link_from_payload(payload: &[u8]) -> Result<Link, DecodeError> {
    let header = LinkHeader::parse(payload)?;
    let mut msg = LinkMessage::default();
    for nla in NlasIterator::new(payload.get(header.buffer_len()..).unwrap_or(&[])) {
        let nla = nla?;
        if LINK_ATTRIBUTES_READ.contains(&nla.kind()) {
            msg.attributes.push(LinkAttribute::parse_with_param(
                &nla,
                header.interface_family,
            )?);
        }
    }
    msg.header = header;
    Ok(parse_link(&msg))
}

/// The [`Link`] a link message describes (its master by index only).
pub(super) fn parse_link(msg: &LinkMessage) -> Link {
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
        hairpin: false,
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
                    match info {
                        LinkInfo::Kind(kind) => link.kind = Some(kind.to_string()),
                        LinkInfo::PortData(InfoPortData::BridgePort(port)) => {
                            link.hairpin = port.contains(&InfoBridgePort::HairpinMode(true));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    link
}

#[cfg(test)]
mod tests {
    use super::super::socket::off_the_wire;
    use super::*;
    use netlink_packet_route::link::LinkHeader;

    /// The link a message describes, read both ways: decoded whole, as single gets are, and
    /// with only the attributes read decoded, as dumps are. They must agree.
    fn parsed(msg: LinkMessage) -> Link {
        let mut payload = vec![0; msg.buffer_len()];
        msg.emit(&mut payload);
        let whole = match off_the_wire(RouteNetlinkMessage::NewLink(msg)) {
            RouteNetlinkMessage::NewLink(m) => parse_link(&m),
            other => panic!("{other:?}"),
        };
        assert_eq!(link_from_payload(&payload).expect("decodes"), whole);
        whole
    }

    #[test]
    fn the_attributes_a_dump_steps_over_change_nothing_read() {
        use netlink_packet_route::link::{LinkXdp, State, Stats, XdpAttached};
        let mut msg = LinkMessage::default();
        msg.header.index = 9;
        msg.header.link_layer_type = LinkLayerType::Ether;
        msg.header.flags = LinkFlags::Up;
        // Attributes nobody reads before, between and after the ones read.
        msg.attributes = vec![
            LinkAttribute::TxQueueLen(1000),
            LinkAttribute::OperState(State::Up),
            LinkAttribute::Stats(Stats::default()),
            LinkAttribute::IfName("br-x".into()),
            LinkAttribute::Xdp(vec![LinkXdp::Attached(XdpAttached::None)]),
            LinkAttribute::Mtu(9000),
            LinkAttribute::NumTxQueues(1),
            LinkAttribute::Address(vec![0x02, 0, 0, 0, 0, 9]),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]),
            LinkAttribute::Group(7),
            LinkAttribute::Carrier(1),
        ];
        let link = parsed(msg);
        assert_eq!(
            (
                link.name.as_str(),
                link.mtu,
                link.kind.as_deref(),
                link.group
            ),
            ("br-x", 9000, Some("bridge"), 7)
        );
        assert_eq!(link.mac, Some("02:00:00:00:00:09".parse().unwrap()));
    }

    #[test]
    fn a_truncated_link_payload_is_an_error_not_a_panic() {
        let mut msg = LinkMessage::default();
        msg.attributes = vec![LinkAttribute::IfName("eth0".into())];
        let mut payload = vec![0; msg.buffer_len()];
        msg.emit(&mut payload);
        for cut in [0, 10, payload.len() - 6] {
            assert!(link_from_payload(&payload[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_bridge_port_is_read_with_every_field() {
        let mut msg = LinkMessage::default();
        msg.header.index = 7;
        msg.header.link_layer_type = LinkLayerType::Ether;
        msg.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        msg.attributes = vec![
            LinkAttribute::IfName("veth-n1".into()),
            LinkAttribute::Mtu(1450),
            LinkAttribute::Address(vec![0x02, 0, 0x5e, 0, 0x53, 1]),
            LinkAttribute::Controller(3),
            LinkAttribute::IfAlias("edgenet:abc".into()),
            LinkAttribute::Group(4242),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
        ];
        assert_eq!(
            parsed(msg),
            Link {
                index: 7,
                name: "veth-n1".into(),
                mtu: 1450,
                up: true,
                lower_up: true,
                mac: Some("02:00:5e:00:53:01".parse().unwrap()),
                kind: Some("veth".into()),
                master_index: Some(3),
                master: None,
                alias: Some("edgenet:abc".into()),
                group: 4242,
                hairpin: false,
            }
        );
    }

    #[test]
    fn loopback_has_no_mac_kind_master_or_alias() {
        let mut msg = LinkMessage::default();
        msg.header = LinkHeader::default();
        msg.header.index = 1;
        msg.header.link_layer_type = LinkLayerType::Loopback;
        msg.attributes = vec![
            LinkAttribute::IfName("lo".into()),
            LinkAttribute::Mtu(65536),
            LinkAttribute::Address(vec![0; 6]),
            LinkAttribute::Controller(0),
            LinkAttribute::IfAlias(String::new()),
        ];
        let lo = parsed(msg);
        assert_eq!((lo.name.as_str(), lo.mtu, lo.up), ("lo", 65536, false));
        assert_eq!(
            (lo.mac, lo.kind, lo.master_index, lo.alias),
            (None, None, None, None)
        );
    }

    #[test]
    fn the_default_bridge_mtu_is_the_ethernet_payload() {
        assert_eq!(BRIDGE_DEFAULT_MTU, 1500);
    }
}
