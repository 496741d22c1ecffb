//! IPv4 routes of the main table: the [`Route`] value, the parser from the kernel's
//! `RTM_NEWROUTE`, and add/replace/delete.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::socket::clone_io;
use super::{HostError, Netlink};

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
    /// The route's type (`rtm_type`: 1 unicast; `blackhole`, `unreachable`, `prohibit`, `throw`
    /// are what `ip route` writes before the destination).
    pub kind: u8,
}

impl Route {
    /// The kernel's own route for the subnet of an address: it comes and goes with the address.
    pub fn is_connected(&self) -> bool {
        self.protocol == u8::from(RouteProtocol::Kernel) && self.gateway.is_none()
    }

    /// The word `ip route` writes before the destination of a route of this type (`blackhole`,
    /// `unreachable`, …); none for an ordinary (unicast) route.
    pub fn type_word(&self) -> Option<&'static str> {
        Some(match RouteType::from(self.kind) {
            RouteType::Unicast | RouteType::Unspec => return None,
            RouteType::Local => "local",
            RouteType::Broadcast => "broadcast",
            RouteType::Anycast => "anycast",
            RouteType::Multicast => "multicast",
            RouteType::BlackHole => "blackhole",
            RouteType::Unreachable => "unreachable",
            RouteType::Prohibit => "prohibit",
            RouteType::Throw => "throw",
            RouteType::Nat => "nat",
            _ => return None,
        })
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

impl Netlink {
    /// IPv4 routes of the main table.
    pub fn routes(&mut self) -> Result<Vec<Route>, HostError> {
        let names = self.link_names()?;
        self.routes_named(&names)
    }

    pub(super) fn routes_named(
        &mut self,
        names: &HashMap<u32, String>,
    ) -> Result<Vec<Route>, HostError> {
        let messages = self
            .route_messages(AddressFamily::Inet)
            .map_err(|f| f.into_host("dump IPv4 routes", ""))?;
        Ok(messages
            .iter()
            .filter_map(parse_route)
            .map(|mut r| {
                r.link = r.link_index.and_then(|i| names.get(&i).cloned());
                r
            })
            .collect())
    }

    /// IPv4 routes of every table but `local` (the kernel's routes to the host's own
    /// addresses), each with its table (`main` is 254), links named.
    pub fn routes_of_every_table(&mut self) -> Result<Vec<(u32, Route)>, HostError> {
        let names = self.link_names()?;
        let messages = self
            .route_messages(AddressFamily::Inet)
            .map_err(|f| f.into_host("dump IPv4 routes", ""))?;
        Ok(messages
            .iter()
            .filter_map(parse_route_in_table)
            .filter(|(table, _)| *table != u32::from(libc::RT_TABLE_LOCAL))
            .map(|(table, mut r)| {
                r.link = r.link_index.and_then(|i| names.get(&i).cloned());
                (table, r)
            })
            .collect())
    }

    /// The kernel's route messages of `family` (`Unspec`: every family), of every table.
    pub(crate) fn route_messages(
        &mut self,
        family: AddressFamily,
    ) -> Result<Vec<RouteMessage>, super::Failure> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family;
        msg.header.table = RouteHeader::RT_TABLE_UNSPEC;
        let replies = self.dump(RouteNetlinkMessage::GetRoute(msg))?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            })
            .filter(|r| family == AddressFamily::Unspec || r.header.address_family == family)
            .collect())
    }

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

/// The [`Route`] a route message describes, when it is an IPv4 route of the main table (its
/// device by index only).
pub(super) fn parse_route(msg: &RouteMessage) -> Option<Route> {
    parse_route_in_table(msg)
        .filter(|(table, _)| *table == u32::from(RouteHeader::RT_TABLE_MAIN))
        .map(|(_, r)| r)
}

/// The table and [`Route`] of an IPv4 route message, whatever its table.
fn parse_route_in_table(msg: &RouteMessage) -> Option<(u32, Route)> {
    if msg.header.address_family != AddressFamily::Inet {
        return None;
    }
    let mut table = u32::from(msg.header.table);
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut oif = None;
    let mut gateway = None;
    let mut metric = None;
    for attr in &msg.attributes {
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
    let route = Route {
        destination: Ipv4Net::new(dst, msg.header.destination_prefix_length).ok()?,
        link_index: oif,
        link: None,
        gateway,
        metric,
        protocol: u8::from(msg.header.protocol),
        kind: u8::from(msg.header.kind),
    };
    Some((table, route))
}

#[cfg(test)]
mod tests {
    use super::super::socket::off_the_wire;
    use super::*;
    use netlink_packet_route::route::RouteNextHop;

    fn parsed(msg: RouteMessage) -> Option<Route> {
        match off_the_wire(RouteNetlinkMessage::NewRoute(msg)) {
            RouteNetlinkMessage::NewRoute(m) => parse_route(&m),
            other => panic!("{other:?}"),
        }
    }

    fn v4(table: u8, prefix: u8) -> RouteMessage {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = table;
        msg.header.destination_prefix_length = prefix;
        msg
    }

    #[test]
    fn a_default_route_through_a_gateway() {
        let mut msg = v4(RouteHeader::RT_TABLE_MAIN, 0);
        msg.header.protocol = RouteProtocol::Dhcp;
        msg.attributes = vec![
            RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(198, 18, 0, 1))),
            RouteAttribute::Oif(2),
            RouteAttribute::Priority(100),
        ];
        let r = parsed(msg).unwrap();
        assert_eq!(r.destination, "0.0.0.0/0".parse::<Ipv4Net>().unwrap());
        assert_eq!(r.gateway, Some(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(
            (r.link_index, r.link.as_deref(), r.metric),
            (Some(2), None, Some(100))
        );
        assert!(!r.is_connected());
    }

    #[test]
    fn the_kernels_subnet_route_is_connected() {
        let mut msg = v4(RouteHeader::RT_TABLE_MAIN, 24);
        msg.header.protocol = RouteProtocol::Kernel;
        msg.attributes = vec![
            RouteAttribute::Destination(RouteAddress::Inet(Ipv4Addr::new(192, 0, 2, 0))),
            RouteAttribute::Oif(3),
        ];
        let r = parsed(msg).unwrap();
        assert_eq!(r.destination, "192.0.2.0/24".parse::<Ipv4Net>().unwrap());
        assert!(r.is_connected());
    }

    #[test]
    fn only_the_main_table_counts_even_when_given_as_an_attribute() {
        // Table ids above 255 only fit the RTA_TABLE attribute; the header then says 252.
        let mut other = v4(252, 0);
        other.attributes.push(RouteAttribute::Table(1000));
        assert_eq!(parsed(other), None);
        let mut main = v4(252, 0);
        main.attributes
            .push(RouteAttribute::Table(u32::from(RouteHeader::RT_TABLE_MAIN)));
        assert!(parsed(main).is_some());
        assert_eq!(parsed(v4(libc::RT_TABLE_LOCAL, 32)), None);
        // Every table's route, with its table, for those who ask for them.
        let mut other = v4(252, 0);
        other.attributes.push(RouteAttribute::Table(1000));
        let wire = match off_the_wire(RouteNetlinkMessage::NewRoute(other)) {
            RouteNetlinkMessage::NewRoute(m) => m,
            m => panic!("{m:?}"),
        };
        let (table, r) = parse_route_in_table(&wire).unwrap();
        assert_eq!((table, r.destination.prefix_len()), (1000, 0));
    }

    #[test]
    fn a_multipath_route_reports_its_first_hop() {
        let hop = |oif: u32, gw: [u8; 4]| {
            let mut h = RouteNextHop::default();
            h.interface_index = oif;
            h.attributes = vec![RouteAttribute::Gateway(RouteAddress::Inet(gw.into()))];
            h
        };
        let mut msg = v4(RouteHeader::RT_TABLE_MAIN, 0);
        msg.attributes = vec![RouteAttribute::MultiPath(vec![
            hop(4, [10, 0, 0, 1]),
            hop(5, [10, 0, 1, 1]),
        ])];
        let r = parsed(msg).unwrap();
        assert_eq!(
            (r.link_index, r.gateway),
            (Some(4), Some(Ipv4Addr::new(10, 0, 0, 1)))
        );
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
