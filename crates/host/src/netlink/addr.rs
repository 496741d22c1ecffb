//! IPv4 addresses: the [`Address`] value, the parser from the kernel's `RTM_NEWADDR`, the one
//! dump every "addresses of this link" question goes through, and add/delete. And a link's
//! IPv6 link-local addresses ([`LinkLocal`]): read, and put on another link as they are.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::Ipv4Net;
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::socket::{clone_io, Failure};
use super::{HostError, Netlink};

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

/// An IPv6 link-local address (scope link) of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkLocal {
    pub address: Ipv6Addr,
    pub prefix_len: u8,
    /// Duplicate address detection found it free (or was not asked for): neither `tentative`
    /// (still being checked) nor `dadfailed` (another host on the link has it).
    pub usable: bool,
}

impl Netlink {
    /// The IPv6 link-local addresses of `link`, in the kernel's order; none when there is no
    /// such link or it has no IPv6.
    pub fn ipv6_link_locals(&mut self, link: &str) -> Result<Vec<LinkLocal>, HostError> {
        let index = match self.link_index(link) {
            Ok(i) => i,
            Err(e) if e.errno() == Some(libc::ENODEV) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let messages = self
            .address_messages(AddressFamily::Inet6, Some(index))
            .map_err(|f| f.into_host("dump IPv6 addresses of", link))?;
        Ok(messages.iter().filter_map(parse_link_local).collect())
    }

    /// Puts `ll` on `link` as it is (its address and prefix, scope link) without duplicate
    /// address detection (`nodad`): for an address already found free on the same LAN with the
    /// same MAC. The kernel adds its prefix route (`fe80::/64 proto kernel`) as for any address
    /// and, on an up link, sends its router solicitation and MLD reports at once, as when
    /// detection completes. `Ok(false)` when the link has it already.
    pub fn add_link_local(&mut self, link: &str, ll: &LinkLocal) -> Result<bool, HostError> {
        let op = format!("add address {}/{} to", ll.address, ll.prefix_len);
        let index = self
            .link_index(link)
            .map_err(|e| HostError::new(&op, link, clone_io(e.io_error())))?;
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet6;
        msg.header.prefix_len = ll.prefix_len;
        msg.header.index = index;
        msg.header.scope = AddressScope::Link;
        msg.header.flags = AddressHeaderFlags::Nodad;
        let ip = IpAddr::V6(ll.address);
        msg.attributes.extend([
            AddressAttribute::Local(ip),
            AddressAttribute::Address(ip),
            AddressAttribute::Flags(AddressFlags::Nodad),
        ]);
        match self.ack_request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(_) => Ok(true),
            Err(f) if f.errno() == Some(libc::EEXIST) => Ok(false),
            Err(f) => Err(f.into_host(&op, link)),
        }
    }

    /// IPv4 addresses of all links.
    pub fn addresses(&mut self) -> Result<Vec<Address>, HostError> {
        let names = self.link_names()?;
        self.addresses_named(&names)
    }

    /// The IPv4 addresses on link `link`, in the kernel's order (a primary before its
    /// secondaries); none when there is no such link.
    pub fn addresses_of(&mut self, link: &str) -> Result<Vec<Address>, HostError> {
        let index = match self.link_index(link) {
            Ok(i) => i,
            Err(e) if e.errno() == Some(libc::ENODEV) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let messages = self
            .address_messages(AddressFamily::Inet, Some(index))
            .map_err(|f| f.into_host("dump IPv4 addresses of", link))?;
        Ok(messages
            .iter()
            .filter_map(parse_address)
            .map(|(link_index, address, broadcast)| Address {
                link_index,
                link: link.to_string(),
                address,
                broadcast,
            })
            .collect())
    }

    pub(super) fn addresses_named(
        &mut self,
        names: &HashMap<u32, String>,
    ) -> Result<Vec<Address>, HostError> {
        let messages = self
            .address_messages(AddressFamily::Inet, None)
            .map_err(|f| f.into_host("dump IPv4 addresses", ""))?;
        Ok(messages
            .iter()
            .filter_map(parse_address)
            .map(|(link_index, address, broadcast)| Address {
                link_index,
                link: names.get(&link_index).cloned().unwrap_or_default(),
                address,
                broadcast,
            })
            .collect())
    }

    /// The kernel's address messages of `family` (`Unspec`: every family), of the link with
    /// index `link` only when given. Every address dump of this crate is this one.
    pub(crate) fn address_messages(
        &mut self,
        family: AddressFamily,
        link: Option<u32>,
    ) -> Result<Vec<AddressMessage>, Failure> {
        let mut msg = AddressMessage::default();
        msg.header.family = family;
        let replies = self.dump(RouteNetlinkMessage::GetAddress(msg))?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => Some(a),
                _ => None,
            })
            .filter(|a| family == AddressFamily::Unspec || a.header.family == family)
            .filter(|a| link.is_none_or(|i| a.header.index == i))
            .collect())
    }

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
}

fn address_message(index: u32, address: Ipv4Net) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.prefix_len = address.prefix_len();
    msg.header.index = index;
    msg.header.scope = AddressScope::Universe;
    let ip = IpAddr::V4(address.addr());
    msg.attributes.push(AddressAttribute::Local(ip));
    msg.attributes.push(AddressAttribute::Address(ip));
    msg
}

/// Link index, address and broadcast of an IPv4 address message; `None` for another family.
pub(super) fn parse_address(msg: &AddressMessage) -> Option<(u32, Ipv4Net, Option<Ipv4Addr>)> {
    if msg.header.family != AddressFamily::Inet {
        return None;
    }
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point
    // links, and equals IFA_LOCAL elsewhere.
    let mut local = None;
    let mut address = None;
    let mut broadcast = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Broadcast(ip) => broadcast = Some(*ip),
            AddressAttribute::Local(IpAddr::V4(ip)) => local = Some(*ip),
            AddressAttribute::Address(IpAddr::V4(ip)) => address = Some(*ip),
            _ => {}
        }
    }
    let net = Ipv4Net::new(local.or(address)?, msg.header.prefix_len).ok()?;
    Some((msg.header.index, net, broadcast))
}

/// The IPv6 link-local address an address message describes; `None` for any other address.
fn parse_link_local(msg: &AddressMessage) -> Option<LinkLocal> {
    if msg.header.family != AddressFamily::Inet6 || msg.header.scope != AddressScope::Link {
        return None;
    }
    let mut address = None;
    // IFA_FLAGS (32 bits) when the kernel sends it, else the header's 8.
    let mut flags = AddressFlags::from_bits_retain(u32::from(msg.header.flags.bits()));
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(IpAddr::V6(ip)) => address = Some(*ip),
            AddressAttribute::Address(IpAddr::V6(ip)) => {
                address.get_or_insert(*ip);
            }
            AddressAttribute::Flags(f) => flags = *f,
            _ => {}
        }
    }
    let address = address.filter(|a| (a.segments()[0] & 0xffc0) == 0xfe80)?;
    Some(LinkLocal {
        address,
        prefix_len: msg.header.prefix_len,
        usable: !flags.intersects(AddressFlags::Tentative | AddressFlags::Dadfailed),
    })
}

#[cfg(test)]
mod tests {
    use super::super::socket::off_the_wire;
    use super::*;
    use std::net::Ipv6Addr;

    fn parsed(msg: AddressMessage) -> Option<(u32, Ipv4Net, Option<Ipv4Addr>)> {
        match off_the_wire(RouteNetlinkMessage::NewAddress(msg)) {
            RouteNetlinkMessage::NewAddress(m) => parse_address(&m),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_add_address_sends_reads_back_as_the_same_address() {
        let net: Ipv4Net = "192.0.2.10/24".parse().unwrap();
        let mut msg = address_message(5, net);
        msg.attributes
            .push(AddressAttribute::Broadcast(net.broadcast()));
        assert_eq!(parsed(msg), Some((5, net, Some(net.broadcast()))));
    }

    #[test]
    fn the_local_address_wins_over_the_peer_on_point_to_point_links() {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = 32;
        msg.header.index = 9;
        msg.attributes = vec![
            AddressAttribute::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))),
            AddressAttribute::Local(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
        ];
        assert_eq!(parsed(msg), Some((9, "10.0.0.1/32".parse().unwrap(), None)));
    }

    #[test]
    fn other_families_and_addressless_messages_are_not_ipv4_addresses() {
        let mut v6 = AddressMessage::default();
        v6.header.family = AddressFamily::Inet6;
        v6.header.prefix_len = 64;
        v6.attributes = vec![AddressAttribute::Address(IpAddr::V6(Ipv6Addr::LOCALHOST))];
        assert_eq!(parsed(v6), None);
        let mut empty = AddressMessage::default();
        empty.header.family = AddressFamily::Inet;
        assert_eq!(parsed(empty), None);
    }
}
