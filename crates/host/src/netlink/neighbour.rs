//! IPv4 neighbour (ARP cache) entries: [`Netlink::learn_neighbour`] writes one as if the host
//! had learned it from an earlier exchange (`ip neigh replace IP lladdr MAC dev LINK nud
//! stale proto static`), for a caller that knows both ends of a link because it wired them.

use std::net::Ipv4Addr;

use edgenet_core::mac::MacAddr;
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteProtocol, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::HostError;
use crate::netlink::Netlink;

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
