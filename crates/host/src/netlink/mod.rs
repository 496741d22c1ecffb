//! A small synchronous rtnetlink handle, bound to one network namespace.
//!
//! Why synchronous and hand-rolled over `netlink-packet-route` + `netlink-sys` (as netavark
//! does) instead of `rtnetlink`: edgenet sends a handful of requests per command, one at a
//! time, so an async runtime would only add start-up time and resident memory.
//!
//! A netlink socket belongs to the network namespace of the thread that opened it, for its
//! whole life. [`Netlink::open`] therefore works on the *calling thread's* namespace and
//! [`Netlink::open_in`] on another one, without moving the caller ([`Netlink::open_moving_into`]
//! moves it, for a thread that may stay there).
//!
//! Layout (as netavark's `netlink.rs` + `netlink_route.rs` and rtnetlink's `link/`, `addr/`,
//! `route/`): this file holds the handle; `socket` the request/ack/dump loop and the
//! parsing of whole datagrams; `link`, `addr`, `route`, `rule` and `neighbour` one object
//! kind each, its values, its operations and the parser from the kernel's message to the
//! value. Replies are read with `netlink-packet-route`'s message types and NLA iterators
//! only.

use std::collections::HashMap;

use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::netns::NetNs;

mod addr;
pub mod connected_route;
mod detached;
pub mod dropping_route;
mod link;
mod neighbour;
mod route;
mod rule;
mod socket;

pub use crate::error::HostError;
pub use addr::{Address, LinkLocal};
pub use detached::{deletions_finishing, DELETING_PROCESS_NAME};
pub use link::{AddrGenMode, BridgeSpec, Ipv6Settings, Link, VethSpec};
pub use neighbour::Neighbour;
pub use route::{Route, RouteSpec};

pub(crate) use socket::Failure;

/// Links, IPv4 addresses and main-table routes (what the host facts are read from), from one
/// link dump shared by the three tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub links: Vec<Link>,
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
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
            buf: Vec::with_capacity(socket::RECV_BUFFER),
        })
    }

    /// Opens a handle on another namespace: the socket is created with the calling thread
    /// visiting `ns` (see [`NetNs::run`]) and stays bound to `ns`.
    pub fn open_in(ns: &NetNs) -> Result<Self, HostError> {
        ns.run(Netlink::open)?
    }

    /// Opens a handle on namespace `ns` by moving the calling thread into it for good, with no
    /// thread started for it: only for a thread of one's own that does nothing in a network
    /// namespace afterwards (its file I/O is the same in any).
    pub fn open_moving_into(ns: &NetNs) -> Result<Self, HostError> {
        crate::netns::enter_for_good(ns)?;
        Netlink::open()
    }

    /// Links, IPv4 addresses and main-table IPv4 routes, sharing one link dump.
    pub fn snapshot(&mut self) -> Result<Snapshot, HostError> {
        let links = self.links()?;
        let names = names_of(&links);
        let addresses = self.addresses_named(&names)?;
        let routes = self.routes_named(&names)?;
        Ok(Snapshot {
            links,
            addresses,
            routes,
        })
    }

    /// Index → name of every link, for the dumps that only carry indexes.
    pub(crate) fn link_names(&mut self) -> Result<HashMap<u32, String>, HostError> {
        Ok(names_of(&self.links()?))
    }
}

fn names_of(links: &[Link]) -> HashMap<u32, String> {
    links.iter().map(|l| (l.index, l.name.clone())).collect()
}
