//! The protocol: one request out, then its replies, ACK or NACK (with the kernel's extended-ack
//! reason), or a dump to its end. Datagrams are cut into messages with `netlink-packet-core`'s
//! [`NetlinkBuffer`] and decoded as [`RouteNetlinkMessage`]s; the reading of one datagram
//! ([`read_datagram`]) is pure, so it is unit-tested on the crate's own serialized messages.

use std::io;
use std::net::Ipv4Addr;

use netlink_packet_core::{
    Emitable, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator,
    ParseableParametrized, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK_TLVS,
    NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{HostError, Netlink};

/// `NLMSGERR_ATTR_MSG` (linux/netlink.h): the human-readable reason in an extended ack. Not
/// exported by libc or the netlink crates.
pub(super) const NLMSGERR_ATTR_MSG: u16 = 1;
/// `NLMSG_ALIGNTO` (linux/netlink.h): messages in a datagram start on 4-byte boundaries.
const NLMSG_ALIGNTO: usize = 4;
/// How long a dump that the kernel flagged as interrupted (the table changed meanwhile) is
/// retried before giving up: a host whose containers come and go changes its links many times
/// a second, and a dump of hundreds of links takes milliseconds (five tries were not enough
/// beside ~150 link deletions a second: B17a).
const DUMP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a request failed, before it is given its operation and object.
#[derive(Debug)]
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

    fn kernel(code: i32, detail: Option<String>) -> Self {
        Failure {
            io: io::Error::from_raw_os_error(code.abs()),
            detail,
        }
    }
}

/// Takes one reply message undecoded: its type and payload.
type OnReply<'a> = dyn FnMut(u16, &[u8]) -> Result<(), Failure> + 'a;

/// The answer to one request, gathered over one or more datagrams.
#[derive(Debug, Default)]
pub(super) struct Replies {
    pub(super) messages: Vec<RouteNetlinkMessage>,
    /// A dump the kernel flagged as inconsistent (the table changed while it was dumped).
    pub(super) interrupted: bool,
}

impl Netlink {
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
        Ok(self.exchange(msg, flags)?.messages)
    }

    /// A dump, retried when the kernel says the table changed while it was being dumped.
    pub(crate) fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        let start = std::time::Instant::now();
        while start.elapsed() < DUMP_PATIENCE {
            let replies = self.exchange(msg.clone(), NLM_F_REQUEST | NLM_F_DUMP)?;
            if !replies.interrupted {
                return Ok(replies.messages);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "the table kept changing while it was dumped",
        )
        .into())
    }

    /// A dump whose replies go to `each` as their message type and payload bytes, not decoded
    /// into [`RouteNetlinkMessage`]s: for dumps of which edgenet reads a few attributes (a
    /// host's links, whose statistics and per-family settings are most of each message and
    /// whose decoding cost ~10 µs a link). Retried like [`Self::dump`].
    pub(crate) fn dump_payloads<T>(
        &mut self,
        msg: RouteNetlinkMessage,
        mut each: impl FnMut(u16, &[u8]) -> Result<Option<T>, Failure>,
    ) -> Result<Vec<T>, Failure> {
        let start = std::time::Instant::now();
        while start.elapsed() < DUMP_PATIENCE {
            let mut found = Vec::new();
            let interrupted = self.exchange_with(
                msg.clone(),
                NLM_F_REQUEST | NLM_F_DUMP,
                &mut |kind, payload| {
                    found.extend(each(kind, payload)?);
                    Ok(())
                },
            )?;
            if !interrupted {
                return Ok(found);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "the table kept changing while it was dumped",
        )
        .into())
    }

    /// Sends one request and reads until its ACK/NACK or end of dump.
    fn exchange(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<Replies, Failure> {
        let mut messages = Vec::new();
        let interrupted = self.exchange_with(msg, flags, &mut |kind, payload| {
            messages.push(decode(kind, payload)?);
            Ok(())
        })?;
        Ok(Replies {
            messages,
            interrupted,
        })
    }

    /// [`Self::exchange`] with every reply message (not the ACK or end of dump) handed to
    /// `reply` undecoded; returns whether the kernel flagged the dump as interrupted.
    fn exchange_with(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        reply: &mut OnReply<'_>,
    ) -> Result<bool, Failure> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.socket.send(&request_bytes(msg, flags, seq), 0)?;
        let mut interrupted = false;
        loop {
            self.recv_datagram()?;
            if read_datagram_with(&self.buf, seq, &mut interrupted, reply)? {
                return Ok(interrupted);
            }
        }
    }

    /// Reads one whole datagram into `self.buf`: one `recv` into a buffer larger than any
    /// answer the kernel sends to these requests (dumps come in datagrams of at most 32 KiB,
    /// the kernel's cap; a single answer is a few KiB), instead of a peek for its size and a
    /// second read (one syscall and one copy less per datagram). A datagram that still did not
    /// fit is an error, never a silently cut answer.
    fn recv_datagram(&mut self) -> Result<(), Failure> {
        loop {
            self.buf.clear();
            if self.buf.capacity() < RECV_BUFFER {
                self.buf.reserve(RECV_BUFFER);
            }
            match self.socket.recv(&mut self.buf, libc::MSG_TRUNC) {
                Ok(size) if size > self.buf.len() => {
                    return Err(invalid_data(&format!(
                        "a netlink answer of {size} bytes did not fit the {} byte buffer",
                        self.buf.len()
                    )))
                }
                Ok(_) => return Ok(()),
                // A signal arrived while waiting: the answer is still coming.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The receive buffer of a [`Netlink`] handle: twice the kernel's largest dump datagram.
pub(super) const RECV_BUFFER: usize = 64 * 1024;

/// The wire form of request `msg` with `flags` and sequence number `seq`.
pub(super) fn request_bytes(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut packet = NetlinkMessage::from(msg);
    packet.header.flags = flags;
    packet.header.sequence_number = seq;
    packet.finalize();
    let mut out = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut out);
    out
}

/// Reads the messages of one datagram that answer request `seq` into `replies`. Returns
/// whether the answer is complete (ACK or end of dump); a NACK or a failed dump is the error
/// the kernel gave, with its extended-ack reason. Messages of other requests (late answers)
/// are skipped.
#[cfg(test)]
pub(super) fn read_datagram(
    datagram: &[u8],
    seq: u32,
    replies: &mut Replies,
) -> Result<bool, Failure> {
    let Replies {
        messages,
        interrupted,
    } = replies;
    read_datagram_with(datagram, seq, interrupted, &mut |kind, payload| {
        messages.push(decode(kind, payload)?);
        Ok(())
    })
}

/// The kernel's answer to request `seq`, read from one datagram: its ACK, or its NACK as the
/// error, with the kernel's reason.
pub(super) fn read_ack(datagram: &[u8], seq: u32) -> Result<(), Failure> {
    let mut interrupted = false;
    if read_datagram_with(datagram, seq, &mut interrupted, &mut |_, _| Ok(()))? {
        Ok(())
    } else {
        Err(invalid_data("the answer held no acknowledgement"))
    }
}

/// [`read_datagram`] with each reply message handed to `reply` as its type and payload bytes;
/// `interrupted` is set when the kernel flags a message of the dump as inconsistent.
fn read_datagram_with(
    datagram: &[u8],
    seq: u32,
    interrupted: &mut bool,
    reply: &mut OnReply<'_>,
) -> Result<bool, Failure> {
    let mut rest = datagram;
    while !rest.is_empty() {
        let len = NetlinkBuffer::new_checked(rest)
            .map_err(|e| invalid_data(&format!("truncated netlink message: {e}")))?
            .length() as usize;
        let bytes = &rest[..len];
        rest = rest
            .get(len.next_multiple_of(NLMSG_ALIGNTO)..)
            .unwrap_or(&[]);
        let header = NetlinkBuffer::new(bytes);
        if header.sequence_number() != seq {
            continue; // a late answer to an earlier request
        }
        let flags = header.flags();
        if flags & NLM_F_DUMP_INTR != 0 {
            *interrupted = true;
        }
        let kind = header.message_type();
        if !matches!(kind, NLMSG_ERROR | NLMSG_DONE | NLMSG_OVERRUN | NLMSG_NOOP) {
            reply(kind, header.payload())?;
            continue;
        }
        let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
            .map_err(|e| invalid_data(&format!("cannot parse netlink reply: {e}")))?;
        match message.payload {
            NetlinkPayload::Error(e) => {
                return match e.code {
                    None => Ok(true),
                    Some(code) => Err(Failure::kernel(code.get(), error_detail(flags, &e.header))),
                };
            }
            NetlinkPayload::Done(d) => {
                if d.code != 0 {
                    let detail = if flags & NLM_F_ACK_TLVS != 0 {
                        attr_message(&d.extended_ack)
                    } else {
                        None
                    };
                    return Err(Failure::kernel(d.code, detail));
                }
                return Ok(true);
            }
            NetlinkPayload::Overrun(_) => return Err(invalid_data("netlink overrun")),
            _ => {}
        }
    }
    Ok(false)
}

/// One reply message decoded whole.
fn decode(kind: u16, payload: &[u8]) -> Result<RouteNetlinkMessage, Failure> {
    RouteNetlinkMessage::parse_with_param(payload, kind)
        .map_err(|e| invalid_data(&format!("cannot parse netlink reply: {e}")))
}

pub(super) fn invalid_data(msg: &str) -> Failure {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string()).into()
}

/// `io::Error` is not `Clone`; errno errors are rebuilt exactly, others keep kind and text.
pub(super) fn clone_io(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// The kernel's extended-ack message from an NLMSG_ERROR payload (after the error code): the
/// echoed request (only its header when capped), then attributes.
pub(super) fn error_detail(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    // A capped echo keeps the request's length field but not the rest of the request.
    let echoed_len = if flags & NLM_F_CAPPED != 0 {
        NetlinkHeader::default().buffer_len()
    } else {
        let echoed = NetlinkBuffer::new_checked(payload).ok()?;
        (echoed.length() as usize).next_multiple_of(NLMSG_ALIGNTO)
    };
    attr_message(payload.get(echoed_len..)?)
}

/// The text of the `NLMSGERR_ATTR_MSG` attribute among the extended-ack attributes.
fn attr_message(attrs: &[u8]) -> Option<String> {
    let nla = NlasIterator::new(attrs)
        .map_while(Result::ok)
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)?;
    let text = nla.value().split(|b| *b == 0).next().unwrap_or_default();
    let text = String::from_utf8_lossy(text).trim().to_string();
    (!text.is_empty()).then_some(text)
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
        // The family's own unspecified address when there is no destination (a default
        // route): an IPv6 prefix never prints as 0.0.0.0/N.
        let dst = m.attributes.iter().find_map(|a| match a {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(ip.to_string()),
            RouteAttribute::Destination(RouteAddress::Inet6(ip)) => Some(ip.to_string()),
            _ => None,
        });
        let dst = dst.unwrap_or_else(|| match m.header.address_family {
            AddressFamily::Inet6 => std::net::Ipv6Addr::UNSPECIFIED.to_string(),
            _ => Ipv4Addr::UNSPECIFIED.to_string(),
        });
        format!("{verb} route {dst}/{}", m.header.destination_prefix_length)
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

/// `msg` as the kernel would send it in answer to request 1, read back by [`read_datagram`]:
/// the parsers of each object kind are tested on what really comes off the wire.
#[cfg(test)]
pub(super) fn off_the_wire(msg: RouteNetlinkMessage) -> RouteNetlinkMessage {
    let mut reply = NetlinkMessage::from(msg);
    reply.header.sequence_number = 1;
    reply.finalize();
    let mut datagram = vec![0u8; reply.buffer_len()];
    reply.serialize(&mut datagram);
    let mut replies = Replies::default();
    assert!(!read_datagram(&datagram, 1, &mut replies).expect("parses"));
    replies.messages.pop().expect("one message")
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{DefaultNla, DoneMessage, ErrorMessage, NLM_F_MULTIPART};
    use std::num::NonZeroI32;

    #[test]
    fn an_ipv6_route_is_described_with_its_own_prefix() {
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet6;
        r.header.destination_prefix_length = 48;
        r.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet6(
                "2001:db8:18::".parse().unwrap(),
            )));
        assert_eq!(
            describe(&RouteNetlinkMessage::NewRoute(r.clone())).unwrap(),
            "add route 2001:db8:18::/48"
        );
        r.attributes.clear();
        r.header.destination_prefix_length = 0;
        assert_eq!(
            describe(&RouteNetlinkMessage::NewRoute(r)).unwrap(),
            "add route ::/0"
        );
    }

    /// One kernel-side message as it comes off the socket.
    fn wire(payload: NetlinkPayload<RouteNetlinkMessage>, seq: u32, flags: u16) -> Vec<u8> {
        let mut m = NetlinkMessage::new(NetlinkHeader::default(), payload);
        m.header.sequence_number = seq;
        m.header.flags = flags;
        m.finalize();
        let mut out = vec![0u8; m.buffer_len()];
        m.serialize(&mut out);
        out.resize(out.len().next_multiple_of(NLMSG_ALIGNTO), 0);
        out
    }

    fn link_msg(index: u32, name: &str) -> RouteNetlinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::IfName(name.into()));
        RouteNetlinkMessage::NewLink(m)
    }

    /// The extended-ack attributes a kernel appends: one `NLMSGERR_ATTR_MSG`.
    fn ext_ack(text: &str) -> Vec<u8> {
        let mut value = text.as_bytes().to_vec();
        value.push(0);
        let nla = DefaultNla::new(NLMSGERR_ATTR_MSG, value);
        let mut out = vec![0u8; nla.buffer_len()];
        nla.emit(&mut out);
        out
    }

    fn nack(seq: u32, errno: i32, echoed: &[u8], text: &str) -> Vec<u8> {
        let mut e = ErrorMessage::default();
        e.code = NonZeroI32::new(-errno);
        e.header = echoed.to_vec();
        e.header.extend(ext_ack(text));
        wire(NetlinkPayload::Error(e), seq, NLM_F_CAPPED | NLM_F_ACK_TLVS)
    }

    #[test]
    fn a_dump_in_two_datagrams_is_read_to_its_end() {
        let mut first = wire(
            NetlinkPayload::InnerMessage(link_msg(1, "lo")),
            7,
            NLM_F_MULTIPART,
        );
        first.extend(wire(
            NetlinkPayload::InnerMessage(link_msg(2, "eth0")),
            7,
            NLM_F_MULTIPART,
        ));
        let mut replies = Replies::default();
        assert!(!read_datagram(&first, 7, &mut replies).unwrap());
        let done = wire(
            NetlinkPayload::Done(DoneMessage::default()),
            7,
            NLM_F_MULTIPART,
        );
        assert!(read_datagram(&done, 7, &mut replies).unwrap());
        assert_eq!(
            replies.messages,
            vec![link_msg(1, "lo"), link_msg(2, "eth0")]
        );
        assert!(!replies.interrupted);
    }

    #[test]
    fn late_answers_are_skipped_and_interrupted_dumps_flagged() {
        let mut d = wire(NetlinkPayload::InnerMessage(link_msg(9, "old")), 6, 0);
        d.extend(wire(
            NetlinkPayload::InnerMessage(link_msg(1, "lo")),
            7,
            NLM_F_MULTIPART | NLM_F_DUMP_INTR,
        ));
        d.extend(wire(NetlinkPayload::Done(DoneMessage::default()), 7, 0));
        let mut replies = Replies::default();
        assert!(read_datagram(&d, 7, &mut replies).unwrap());
        assert_eq!(replies.messages, vec![link_msg(1, "lo")]);
        assert!(replies.interrupted);
    }

    #[test]
    fn an_ack_ends_the_answer() {
        let ack = wire(NetlinkPayload::Error(ErrorMessage::default()), 3, 0);
        let mut replies = Replies::default();
        assert!(read_datagram(&ack, 3, &mut replies).unwrap());
        assert!(replies.messages.is_empty());
    }

    #[test]
    fn a_nack_gives_errno_and_the_kernels_reason() {
        let request = request_bytes(link_msg(0, "x"), NLM_F_REQUEST, 4);
        // Capped: only the request's header is echoed.
        let capped = nack(
            4,
            libc::ERANGE,
            &request[..NetlinkHeader::default().buffer_len()],
            "bad mtu",
        );
        let f = read_datagram(&capped, 4, &mut Replies::default()).unwrap_err();
        assert_eq!(f.errno(), Some(libc::ERANGE));
        let e = f.into_host("set mtu 1 on", "x").to_string();
        assert!(e.ends_with("(kernel: bad mtu)"), "{e}");
        // Not capped: the whole request is echoed before the attributes.
        let mut e = ErrorMessage::default();
        e.code = NonZeroI32::new(-libc::EINVAL);
        e.header = request.clone();
        e.header.extend(ext_ack("whole request"));
        let full = wire(NetlinkPayload::Error(e), 4, NLM_F_ACK_TLVS);
        let f = read_datagram(&full, 4, &mut Replies::default()).unwrap_err();
        assert_eq!(f.detail.as_deref(), Some("whole request"));
        // Without NLM_F_ACK_TLVS there is no reason to read.
        assert_eq!(error_detail(NLM_F_CAPPED, &request), None);
    }

    #[test]
    fn a_failed_dump_gives_errno_and_reason() {
        let mut d = DoneMessage::default();
        d.code = -libc::EOPNOTSUPP;
        d.extended_ack = ext_ack("no dump here");
        let done = wire(NetlinkPayload::Done(d), 5, NLM_F_ACK_TLVS);
        let f = read_datagram(&done, 5, &mut Replies::default()).unwrap_err();
        assert_eq!(f.errno(), Some(libc::EOPNOTSUPP));
        assert_eq!(f.detail.as_deref(), Some("no dump here"));
    }

    #[test]
    fn truncated_datagrams_are_errors_not_panics() {
        let whole = wire(NetlinkPayload::InnerMessage(link_msg(1, "lo")), 1, 0);
        let message_len = NetlinkBuffer::new(&whole).length() as usize;
        for len in 1..message_len {
            let r = read_datagram(&whole[..len], 1, &mut Replies::default());
            assert!(r.is_err(), "{len} bytes");
        }
    }
}
