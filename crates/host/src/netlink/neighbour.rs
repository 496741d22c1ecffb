//! Neighbour (ARP and IPv6 neighbour discovery cache) entries.
//!
//! [`Netlink::learn_neighbour`] writes an IPv4 one as if the host had learned it from an
//! earlier exchange (`ip neigh replace IP lladdr MAC dev LINK nud stale proto static`), for a
//! caller that knows both ends of a link because it wired them.
//!
//! [`Netlink::movable_neighbours`] and [`Netlink::put_neighbours`] carry a link's entries to
//! another link on the same LAN along with its addresses (the external switch's take-over of
//! the adapter, and its way back): the host then knows its router and the other neighbours on
//! the new link at once, instead of asking for each again by broadcast. Only entries that hold
//! a neighbour's MAC move, each as the kernel would keep one it had learned a while ago
//! (*stale*: used at once, confirmed by a unicast probe after its first use, replaced when the
//! neighbour answers from another MAC); a permanent one stays permanent, and a unicast `noarp`
//! one (an administrator's static entry) stays `noarp`. Entries being resolved or failed,
//! the kernel's own `noarp` ones (multicast and broadcast), proxy entries and entries another
//! program manages (`extern_learn`, `managed`) do not move. An
//! entry the destination already has for the same address is kept there as it is.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use edgenet_core::mac::MacAddr;
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourExtFlags, NeighbourFlags, NeighbourMessage,
    NeighbourState,
};
use netlink_packet_route::route::{RouteProtocol, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::HostError;
use crate::netlink::Netlink;

/// One neighbour entry of a link that can move to another (see the module documentation):
/// the kernel's message as dumped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    msg: NeighbourMessage,
}

impl Neighbour {
    pub fn address(&self) -> Option<IpAddr> {
        self.msg.attributes.iter().find_map(|a| match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => Some(IpAddr::V4(*a)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
            _ => None,
        })
    }

    /// The neighbour's MAC (link-layer address), when the entry holds one.
    pub fn lladdr(&self) -> Option<&[u8]> {
        self.msg.attributes.iter().find_map(|a| match a {
            NeighbourAttribute::LinkLayerAddress(l) if !l.is_empty() => Some(l.as_slice()),
            _ => None,
        })
    }

    pub fn permanent(&self) -> bool {
        self.msg.header.state == NeighbourState::Permanent
    }

    /// `IP lladdr MAC` (and `permanent`, `router`), as `ip neigh` writes it.
    pub fn describe(&self) -> String {
        let ip = self
            .address()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "?".into());
        let mac = self
            .lladdr()
            .map(|l| {
                l.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            })
            .unwrap_or_default();
        let mut out = format!("{ip} lladdr {mac}");
        if self.msg.header.flags.contains(NeighbourFlags::Router) {
            out.push_str(" router");
        }
        if self.permanent() {
            out.push_str(" permanent");
        }
        if self.msg.header.state == NeighbourState::Noarp {
            out.push_str(" noarp");
        }
        out
    }

    /// The entry as it goes on to another link: the neighbour's address and MAC (and the
    /// router flag, and the protocol that made it), permanent or `noarp` (an administrator's
    /// static entry) when it was, else stale.
    fn moving_to(&self, ifindex: u32) -> NeighbourMessage {
        let mut msg = NeighbourMessage::default();
        msg.header.family = self.msg.header.family;
        msg.header.ifindex = ifindex;
        msg.header.state = if matches!(
            self.msg.header.state,
            NeighbourState::Permanent | NeighbourState::Noarp
        ) {
            self.msg.header.state
        } else {
            NeighbourState::Stale
        };
        msg.header.flags = self.msg.header.flags & NeighbourFlags::Router;
        msg.header.kind = self.msg.header.kind;
        msg.attributes = self
            .msg
            .attributes
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    NeighbourAttribute::Destination(_)
                        | NeighbourAttribute::LinkLayerAddress(_)
                        | NeighbourAttribute::Protocol(_)
                )
            })
            .cloned()
            .collect();
        msg
    }

    /// Whether the entry holds a neighbour's MAC that is the host's to carry (see the module
    /// documentation).
    fn movable(msg: &NeighbourMessage) -> bool {
        let state = matches!(
            msg.header.state,
            NeighbourState::Reachable
                | NeighbourState::Stale
                | NeighbourState::Delay
                | NeighbourState::Probe
                | NeighbourState::Permanent
                | NeighbourState::Noarp
        );
        let theirs = msg
            .header
            .flags
            .intersects(NeighbourFlags::Proxy | NeighbourFlags::ExtLearned)
            || msg.attributes.iter().any(|a| {
                matches!(a, NeighbourAttribute::ExtFlags(f)
                    if f.intersects(NeighbourExtFlags::Managed | NeighbourExtFlags::Locked))
            });
        let neighbour = Neighbour { msg: msg.clone() };
        let unicast = match neighbour.address() {
            Some(IpAddr::V4(a)) => !a.is_multicast() && !a.is_broadcast(),
            Some(IpAddr::V6(a)) => !a.is_multicast(),
            None => false,
        };
        state && !theirs && unicast && neighbour.lladdr().is_some()
    }
}

impl Netlink {
    /// Sets the ARP entry `address` → `mac` on `link`, replacing any. The entry is *stale*:
    /// used at once without asking (no broadcast request), confirmed by a unicast probe
    /// after its first use, and replaced as any learned entry when the neighbour speaks from
    /// another MAC — nothing is pinned. Marked `proto static`, so `ip neigh` tells it from
    /// one the kernel learned.
    pub fn learn_neighbour(
        &mut self,
        link: &str,
        address: Ipv4Addr,
        mac: MacAddr,
    ) -> Result<(), HostError> {
        let object = format!("{address} lladdr {mac} dev {link}");
        let index = self.link_index(link)?;
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = index;
        msg.header.state = NeighbourState::Stale;
        msg.header.kind = RouteType::Unicast;
        msg.attributes.extend([
            NeighbourAttribute::Destination(NeighbourAddress::Inet(address)),
            NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()),
            NeighbourAttribute::Protocol(RouteProtocol::Static),
        ]);
        self.ack_request(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map_err(|f| f.into_host("set neighbour", &object))?;
        Ok(())
    }
}

impl Netlink {
    /// The MAC the host's ARP cache holds for `address` on `link`, when the entry is one the
    /// kernel would send to without asking the LAN first: reachable, stale, delay, probe or
    /// permanent (not one being resolved or failed, nor `noarp`). `None` without such an
    /// entry, without the link, and on a kernel that cannot look one entry up (before 4.20):
    /// the caller then asks by broadcast as it would without a cache.
    pub fn neighbour_mac(
        &mut self,
        link: &str,
        address: Ipv4Addr,
    ) -> Result<Option<MacAddr>, HostError> {
        let index = match self.link_index(link) {
            Ok(i) => i,
            Err(e) if e.errno() == Some(libc::ENODEV) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = index;
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                address,
            )));
        let replies = match self.ack_request(
            RouteNetlinkMessage::GetNeighbour(msg),
            NLM_F_REQUEST | NLM_F_ACK,
        ) {
            Ok(r) => r,
            Err(f) if matches!(f.errno(), Some(libc::ENOENT | libc::EOPNOTSUPP)) => {
                return Ok(None)
            }
            Err(f) => return Err(f.into_host("get neighbour", &format!("{address} dev {link}"))),
        };
        Ok(replies.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewNeighbour(n)
                if n.header.ifindex == index
                    && matches!(
                        n.header.state,
                        NeighbourState::Reachable
                            | NeighbourState::Stale
                            | NeighbourState::Delay
                            | NeighbourState::Probe
                            | NeighbourState::Permanent
                    ) =>
            {
                Neighbour { msg: n }
                    .lladdr()
                    .and_then(|l| <[u8; 6]>::try_from(l).ok())
                    .map(MacAddr)
                    .filter(|m| !m.is_zero() && !m.is_multicast())
            }
            _ => None,
        }))
    }

    /// The entries of `link` that move with its addresses (see the module documentation); none
    /// when the link is gone. With `port`, `link` is a bridge and `port` the one of its ports
    /// whose side the entries are going back to: an entry whose MAC the bridge has learned
    /// behind another of its ports (a node's) stays, it goes with the bridge.
    pub fn movable_neighbours(
        &mut self,
        link: &str,
        port: Option<&str>,
    ) -> Result<Vec<Neighbour>, HostError> {
        let index = match self.link_index(link) {
            Ok(i) => i,
            Err(e) if e.errno() == Some(libc::ENODEV) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut msg = NeighbourMessage::default();
        msg.attributes.push(NeighbourAttribute::IfIndex(index));
        let entries: Vec<Neighbour> = self
            .dump(RouteNetlinkMessage::GetNeighbour(msg))
            .map_err(|f| f.into_host("dump neighbours of", link))?
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n)
                    if n.header.ifindex == index
                        && matches!(
                            n.header.family,
                            AddressFamily::Inet | AddressFamily::Inet6
                        )
                        && Neighbour::movable(&n) =>
                {
                    Some(Neighbour { msg: n })
                }
                _ => None,
            })
            .collect();
        let Some(port) = port.filter(|_| !entries.is_empty()) else {
            return Ok(entries);
        };
        let port_index = self.link_index(port).ok();
        let behind_others = self.macs_behind_other_ports(index, port_index, link)?;
        Ok(entries
            .into_iter()
            .filter(|n| n.lladdr().is_none_or(|l| !behind_others.contains(l)))
            .collect())
    }

    /// The MACs bridge `bridge` has learned (or was given) behind its ports other than `port`.
    fn macs_behind_other_ports(
        &mut self,
        bridge: u32,
        port: Option<u32>,
        name: &str,
    ) -> Result<HashSet<Vec<u8>>, HostError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.attributes.push(NeighbourAttribute::Controller(bridge));
        Ok(self
            .dump(RouteNetlinkMessage::GetNeighbour(msg))
            .map_err(|f| f.into_host("dump the forwarding database of", name))?
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n)
                    if n.header.ifindex != bridge
                        && Some(n.header.ifindex) != port
                        && n.attributes.iter().any(
                            |a| matches!(a, NeighbourAttribute::Controller(b) if *b == bridge),
                        ) =>
                {
                    Neighbour { msg: n }.lladdr().map(<[u8]>::to_vec)
                }
                _ => None,
            })
            .collect())
    }

    /// Puts `entries` (of another link) on `link` (see the module documentation): returns those
    /// that went on, and those that did not, each with why. An entry `link` already has for
    /// the same address is left as it is and counted as neither.
    pub fn put_neighbours(
        &mut self,
        link: &str,
        entries: &[Neighbour],
    ) -> Result<(Vec<String>, Vec<String>), HostError> {
        if entries.is_empty() {
            return Ok(Default::default());
        }
        let index = self.link_index(link)?;
        let (mut put, mut refused) = (Vec::new(), Vec::new());
        for n in entries {
            match self.ack_request(
                RouteNetlinkMessage::NewNeighbour(n.moving_to(index)),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            ) {
                Ok(_) => put.push(n.describe()),
                Err(f) if f.errno() == Some(libc::EEXIST) => {}
                Err(f) => refused.push(format!(
                    "{}: {}",
                    n.describe(),
                    f.into_host("set neighbour on", link)
                )),
            }
        }
        Ok((put, refused))
    }
}
