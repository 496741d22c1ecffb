//! RFC 5227 address-free probes (SPEC §3.2, §4 rule 12): "is anyone on this link using
//! these IPv4 addresses?".
//!
//! [`probe`] opens one `AF_PACKET` socket bound to one interface of the calling thread's
//! network namespace, sends ARP probes (who-has TARGET, sender IP 0.0.0.0, broadcast) for all
//! targets at once, a few rounds, and collects every host that answers for a target or claims
//! it as its own sender address. Because the sender IP is 0.0.0.0, nobody on the link learns a
//! neighbour entry from the probe, and nothing on the prober changes: no address, no route,
//! no ARP cache entry is touched. Nothing but these ARP requests is ever sent.
//!
//! The frame layout ([`ArpPacket`]) is pure and unit-tested without root.

use std::collections::{BTreeSet, HashSet};
use std::io;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use edgenet_core::mac::MacAddr;
use serde::Serialize;

use crate::error::HostError;
use crate::netlink::Netlink;

/// Length of an Ethernet/IPv4 ARP packet (without the Ethernet header, without padding).
pub const ARP_PACKET_LEN: usize = 28;
/// ARP operation "request" (who-has).
pub const ARP_REQUEST: u16 = 1;
/// ARP operation "reply" (is-at).
pub const ARP_REPLY: u16 = 2;

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const BROADCAST: [u8; 6] = [0xff; 6];
/// `ETH_P_ALL`: the socket is bound to every protocol (and an in-kernel filter keeps only
/// ARP) because a socket bound to `ETH_P_ARP` sees nothing on a bridge port: the bridge
/// consumes the port's frames before protocol-specific sockets get them, while "all
/// protocols" taps see them first.
const ETH_P_ALL: u16 = 0x0003;
/// Receive buffer asked for: room for the replies of a whole /24 answering at once
/// (each small frame costs roughly 1 KiB of buffer accounting). Capped by `rmem_max`.
const RCVBUF: libc::c_int = 1 << 20;
/// `PACKET_IGNORE_OUTGOING` (Linux ≥ 4.20): do not hand our own transmitted frames back to
/// us. Older kernels refuse it; outgoing frames are then dropped by their packet type.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// How a probe is paced. The whole probe takes `(count − 1) × interval + wait`, however many
/// targets there are (all targets go out in the same round).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Rounds of requests per target (RFC 5227's PROBE_NUM); 0 is treated as 1.
    pub count: u32,
    /// Time between the starts of two rounds.
    pub interval: Duration,
    /// How long to keep listening after the start of the last round.
    pub wait: Duration,
}

impl Default for ProbeOptions {
    /// 3 rounds 100 ms apart, then 200 ms of listening: 400 ms in all, for one address or a
    /// whole /24.
    fn default() -> Self {
        ProbeOptions {
            count: 3,
            interval: Duration::from_millis(100),
            wait: Duration::from_millis(200),
        }
    }
}

impl ProbeOptions {
    /// Total time a probe listens, from the first round to the end.
    pub fn duration(&self) -> Duration {
        self.interval * self.count.max(1).saturating_sub(1) + self.wait
    }
}

/// A host on the link that answers for (or claims) a probed address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ProbeAnswer {
    /// The probed address.
    pub address: Ipv4Addr,
    /// The sender hardware address of the ARP packet that answered or claimed it.
    pub mac: MacAddr,
}

/// An Ethernet/IPv4 ARP packet (RFC 826): the payload after the Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    /// [`ARP_REQUEST`], [`ARP_REPLY`] or anything else seen on the wire.
    pub operation: u16,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

/// Why received bytes are not an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArpParseError {
    #[error("ARP packet too short: {0} bytes, need {ARP_PACKET_LEN}")]
    TooShort(usize),
    #[error("ARP hardware type {0} is not Ethernet")]
    HardwareType(u16),
    #[error("ARP protocol type {0:#06x} is not IPv4")]
    ProtocolType(u16),
    #[error("ARP address lengths {hardware}/{protocol}, expected 6/4")]
    AddressLengths { hardware: u8, protocol: u8 },
}

impl ArpPacket {
    /// The RFC 5227 probe for `target`: who-has `target`, sender IP 0.0.0.0, target MAC
    /// zero, sender MAC = the prober's interface MAC.
    pub fn probe(sender_mac: MacAddr, target: Ipv4Addr) -> Self {
        ArpPacket {
            operation: ARP_REQUEST,
            sender_mac,
            sender_ip: Ipv4Addr::UNSPECIFIED,
            target_mac: MacAddr([0; 6]),
            target_ip: target,
        }
    }

    /// A gratuitous ARP announcing that `mac` now has `ip` (RFC 5227 §2.3): neighbours update
    /// a stale cache entry at once, e.g. when a node comes back with a new MAC.
    pub fn announcement(mac: MacAddr, ip: Ipv4Addr) -> Self {
        ArpPacket {
            operation: ARP_REQUEST,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: MacAddr([0; 6]),
            target_ip: ip,
        }
    }

    /// Wire form (network byte order), 28 bytes.
    pub fn to_bytes(&self) -> [u8; ARP_PACKET_LEN] {
        let mut b = [0u8; ARP_PACKET_LEN];
        b[0..2].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        b[2..4].copy_from_slice(&PTYPE_IPV4.to_be_bytes());
        b[4] = 6;
        b[5] = 4;
        b[6..8].copy_from_slice(&self.operation.to_be_bytes());
        b[8..14].copy_from_slice(&self.sender_mac.0);
        b[14..18].copy_from_slice(&self.sender_ip.octets());
        b[18..24].copy_from_slice(&self.target_mac.0);
        b[24..28].copy_from_slice(&self.target_ip.octets());
        b
    }

    /// Parses the ARP payload of a frame. Trailing bytes (Ethernet padding up to the 60-byte
    /// minimum frame) are ignored; anything that is not Ethernet/IPv4 ARP is refused.
    pub fn parse(bytes: &[u8]) -> Result<Self, ArpParseError> {
        let Some(b) = bytes.get(..ARP_PACKET_LEN) else {
            return Err(ArpParseError::TooShort(bytes.len()));
        };
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let mac_at = |i: usize| {
            let mut m = [0u8; 6];
            m.copy_from_slice(&b[i..i + 6]);
            MacAddr(m)
        };
        let ip_at = |i: usize| Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]);
        if u16_at(0) != HTYPE_ETHERNET {
            return Err(ArpParseError::HardwareType(u16_at(0)));
        }
        if u16_at(2) != PTYPE_IPV4 {
            return Err(ArpParseError::ProtocolType(u16_at(2)));
        }
        if b[4] != 6 || b[5] != 4 {
            return Err(ArpParseError::AddressLengths {
                hardware: b[4],
                protocol: b[5],
            });
        }
        Ok(ArpPacket {
            operation: u16_at(6),
            sender_mac: mac_at(8),
            sender_ip: ip_at(14),
            target_mac: mac_at(18),
            target_ip: ip_at(24),
        })
    }

    /// What this packet says about the probed `targets`: a reply from a target, or a request
    /// (e.g. a gratuitous ARP or an ordinary who-has) whose sender is a target, means that
    /// address is in use by `sender_mac` (RFC 5227 §2.1.1). Probes from others (sender IP
    /// 0.0.0.0) claim nothing and yield `None`.
    pub fn answer_for(&self, targets: &HashSet<Ipv4Addr>) -> Option<ProbeAnswer> {
        let claims = matches!(self.operation, ARP_REQUEST | ARP_REPLY)
            && !self.sender_ip.is_unspecified()
            && targets.contains(&self.sender_ip);
        claims.then_some(ProbeAnswer {
            address: self.sender_ip,
            mac: self.sender_mac,
        })
    }
}

/// Probes `targets` on `ifname` (an Ethernet-like interface of the calling thread's network
/// namespace) and returns every (address, MAC) that answered or claimed one of them,
/// deduplicated and sorted. An empty result means no target is in use on the link.
///
/// The probe reaches what `ifname` reaches: on a bridge, every port (the LAN and any local
/// node behind the bridge); on a bridge *port* (the adapter once the external switch exists),
/// only the segment behind that port — replies are still seen there, since the socket taps
/// the port before the bridge takes its frames.
///
/// Errors (each naming the interface or address): the interface does not exist (`ENODEV`),
/// is down (`ENETDOWN`) or has no carrier, has no Ethernet MAC; a target is not a unicast
/// address (`EINVAL`); the packet socket cannot be opened (needs `CAP_NET_RAW`) or a target's
/// probe could not be sent in any round. An empty `targets` returns `Ok` without touching
/// the kernel.
pub fn probe(
    ifname: &str,
    targets: &[Ipv4Addr],
    opts: &ProbeOptions,
) -> Result<Vec<ProbeAnswer>, HostError> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    for t in targets {
        if t.is_unspecified() || t.is_broadcast() || t.is_multicast() || t.is_loopback() {
            return Err(HostError::new(
                "ARP probe of",
                t.to_string(),
                io::Error::new(io::ErrorKind::InvalidInput, "not a unicast IPv4 address"),
            ));
        }
    }
    // Unique targets, in a stable order.
    let order: Vec<Ipv4Addr> = targets
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let wanted: HashSet<Ipv4Addr> = order.iter().copied().collect();

    let (index, mac) = usable_link(ifname)?;
    let sock = PacketSocket::open(ifname, index)?;

    let count = opts.count.max(1);
    let start = Instant::now();
    let end = start + opts.interval * (count - 1) + opts.wait;
    let frames: Vec<[u8; ARP_PACKET_LEN]> = order
        .iter()
        .map(|t| ArpPacket::probe(mac, *t).to_bytes())
        .collect();
    let mut sent_ok = vec![false; order.len()];
    let mut last_send_error: Option<io::Error> = None;
    let mut answers = BTreeSet::new();
    let mut buf = [0u8; 2048];

    for round in 0..count {
        let due = start + opts.interval * round;
        sock.receive_until(due, &mut buf, &wanted, &mut answers)?;
        for (i, frame) in frames.iter().enumerate() {
            match sock.send_broadcast(frame) {
                Ok(()) => sent_ok[i] = true,
                // A full device queue (ENOBUFS) or similar: later rounds retry this target;
                // only a target that never went out is an error.
                Err(e) => last_send_error = Some(e),
            }
            // Replies to the first targets arrive while the burst is still going out; take
            // them now so a large burst cannot overflow the receive buffer.
            sock.drain(&mut buf, &wanted, &mut answers)?;
        }
    }
    sock.receive_until(end, &mut buf, &wanted, &mut answers)?;

    if let Some(i) = sent_ok.iter().position(|ok| !ok) {
        let e = last_send_error.unwrap_or_else(|| io::Error::other("not sent"));
        return Err(HostError::new(
            format!("send ARP probe for {} on", order[i]),
            ifname,
            e,
        ));
    }
    Ok(answers.into_iter().collect())
}

/// Index and MAC of `ifname`, which must exist, be up, have carrier and an Ethernet MAC.
/// Announces on `ifname` (in the calling thread's namespace), with one gratuitous ARP, that
/// `mac` has `ip`. `mac` need not be the interface's own: a machine announces its nodes on its
/// adapter, where the frame goes straight to the LAN (a node's own link may still be held back
/// by its bridge port for up to a second after it came up).
pub fn announce(ifname: &str, mac: MacAddr, ip: Ipv4Addr) -> Result<(), HostError> {
    let (index, _) = usable_link(ifname)?;
    let sock = PacketSocket::open(ifname, index)?;
    sock.send_broadcast(&ArpPacket::announcement(mac, ip).to_bytes())
        .map_err(|e| HostError::new("send ARP announcement on", ifname, e))
}

fn usable_link(ifname: &str) -> Result<(u32, MacAddr), HostError> {
    const OP: &str = "ARP probe on";
    let link = Netlink::open()?
        .link(ifname)?
        .ok_or_else(|| HostError::new(OP, ifname, io::Error::from_raw_os_error(libc::ENODEV)))?;
    if !link.up {
        return Err(HostError::new(
            OP,
            ifname,
            io::Error::from_raw_os_error(libc::ENETDOWN),
        ));
    }
    if !link.lower_up {
        return Err(HostError::new(
            OP,
            ifname,
            io::Error::new(
                io::ErrorKind::NotConnected,
                "interface is up but has no carrier (nothing connected to it)",
            ),
        ));
    }
    let Some(mac) = link.mac.filter(|m| !m.is_zero()) else {
        return Err(HostError::new(
            OP,
            ifname,
            io::Error::new(
                io::ErrorKind::Unsupported,
                "interface has no Ethernet MAC address (ARP needs an Ethernet link)",
            ),
        ));
    };
    Ok((link.index, mac))
}

/// An `AF_PACKET`/`SOCK_DGRAM` socket that sees only ARP frames of one interface (bound to
/// all protocols of the interface, with a kernel filter that keeps only ARP). With
/// `SOCK_DGRAM` the kernel writes the Ethernet header (source = the interface's MAC,
/// destination = the address given to `sendto`) and strips it on receive.
struct PacketSocket {
    fd: OwnedFd,
    ifname: String,
    index: u32,
}

impl PacketSocket {
    fn open(ifname: &str, index: u32) -> Result<Self, HostError> {
        // SAFETY: plain socket(2) call; the returned descriptor is checked and then owned
        // by exactly one OwnedFd. Protocol 0 means "receive nothing" until bind() below
        // names the protocol and the interface, so no frame of another interface can slip
        // in before that.
        let raw: RawFd =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(HostError::new(
                "open ARP packet socket for",
                ifname,
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sock = PacketSocket {
            fd,
            ifname: ifname.to_string(),
            index,
        };

        // Best effort: a larger receive buffer and no copies of our own frames.
        sock.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF);
        sock.setsockopt(libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
        // Before bind: from the moment frames flow in, only ARP is queued.
        sock.attach_arp_filter()?;

        let addr = sock.sockaddr(ETH_P_ALL, None);
        // SAFETY: `addr` is a fully initialised sockaddr_ll that outlives the call, and the
        // length passed is its size.
        let rc = unsafe {
            libc::bind(
                sock.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(HostError::new(
                "bind ARP packet socket to",
                ifname,
                io::Error::last_os_error(),
            ));
        }
        Ok(sock)
    }

    fn setsockopt(&self, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
        // SAFETY: `value` is a c_int that outlives the call, and its size is passed.
        let _ = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&value as *const libc::c_int).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }

    /// Classic BPF program run by the kernel on every frame: keep it if its ethertype is
    /// ARP, drop it otherwise (`ldh [proto]; jeq #0x806, keep, drop`).
    fn attach_arp_filter(&self) -> Result<(), HostError> {
        const BPF_LD_H_ABS: u16 = 0x08 | 0x20; // BPF_LD (0) | BPF_H | BPF_ABS
        const BPF_JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
        const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
        const SKF_AD_PROTOCOL: u32 = (-0x1000i32) as u32; // SKF_AD_OFF + SKF_AD_PROTOCOL (0)
        let mut prog = [
            libc::sock_filter {
                code: BPF_LD_H_ABS,
                jt: 0,
                jf: 0,
                k: SKF_AD_PROTOCOL,
            },
            libc::sock_filter {
                code: BPF_JEQ_K,
                jt: 0,
                jf: 1,
                k: u32::from(ETH_P_ARP),
            },
            libc::sock_filter {
                code: BPF_RET_K,
                jt: 0,
                jf: 0,
                k: 0xffff,
            },
            libc::sock_filter {
                code: BPF_RET_K,
                jt: 0,
                jf: 0,
                k: 0,
            },
        ];
        let fprog = libc::sock_fprog {
            len: prog.len() as libc::c_ushort,
            filter: prog.as_mut_ptr(),
        };
        // SAFETY: `fprog` points at `prog`, both live across the call; the kernel copies the
        // program and only reads them.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&fprog as *const libc::sock_fprog).cast(),
                mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(HostError::new(
                "attach ARP filter to packet socket for",
                &self.ifname,
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// A link-layer address on our interface for `protocol` (host order), with `dest` as
    /// the hardware address.
    fn sockaddr(&self, protocol: u16, dest: Option<[u8; 6]>) -> libc::sockaddr_ll {
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as libc::c_ushort;
        addr.sll_protocol = protocol.to_be();
        addr.sll_ifindex = self.index as libc::c_int;
        if let Some(d) = dest {
            addr.sll_halen = 6;
            addr.sll_addr[..6].copy_from_slice(&d);
        }
        addr
    }

    /// Sends one ARP packet to the Ethernet broadcast address.
    fn send_broadcast(&self, packet: &[u8]) -> io::Result<()> {
        // With SOCK_DGRAM, sll_protocol becomes the frame's ethertype.
        let addr = self.sockaddr(ETH_P_ARP, Some(BROADCAST));
        loop {
            // SAFETY: `packet` and `addr` are valid for the lengths passed and outlive the
            // call; the kernel only reads them.
            let n = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    packet.as_ptr().cast(),
                    packet.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
                    mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// One frame without blocking: `Ok(None)` when none is queued; `Ok(Some(None))` for a
    /// frame that is not for us (our own outgoing copy, not ARP, malformed).
    fn recv_one(&self, buf: &mut [u8]) -> Result<Option<Option<ArpPacket>>, HostError> {
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
        let mut from_len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `buf` is writable for `buf.len()` bytes, `from`/`from_len` describe a
        // writable sockaddr_ll; all outlive the call.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                (&mut from as *mut libc::sockaddr_ll).cast::<libc::sockaddr>(),
                &mut from_len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                io::ErrorKind::Interrupted => Ok(Some(None)),
                _ => Err(HostError::new("receive ARP on", &self.ifname, e)),
            };
        }
        // Our own frames (kernels without PACKET_IGNORE_OUTGOING) and, belt and braces,
        // anything the filter let through that is not ARP.
        if from.sll_pkttype == libc::PACKET_OUTGOING || from.sll_protocol != ETH_P_ARP.to_be() {
            return Ok(Some(None));
        }
        Ok(Some(ArpPacket::parse(&buf[..n as usize]).ok()))
    }

    /// Takes every frame already queued.
    fn drain(
        &self,
        buf: &mut [u8],
        wanted: &HashSet<Ipv4Addr>,
        answers: &mut BTreeSet<ProbeAnswer>,
    ) -> Result<(), HostError> {
        while let Some(frame) = self.recv_one(buf)? {
            if let Some(a) = frame.and_then(|p| p.answer_for(wanted)) {
                answers.insert(a);
            }
        }
        Ok(())
    }

    /// Collects answers until `deadline`.
    fn receive_until(
        &self,
        deadline: Instant,
        buf: &mut [u8],
        wanted: &HashSet<Ipv4Addr>,
        answers: &mut BTreeSet<ProbeAnswer>,
    ) -> Result<(), HostError> {
        loop {
            self.drain(buf, wanted, answers)?;
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            // Round up so we never spin on a sub-millisecond remainder.
            let left = deadline - now;
            let ms = left.as_millis().max(1).min(libc::c_int::MAX as u128) as libc::c_int;
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, count 1.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(HostError::new("wait for ARP on", &self.ifname, e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn probe_request_has_the_rfc5227_layout() {
        let m = mac("02:00:5e:00:53:01");
        let b = ArpPacket::probe(m, ip("192.0.2.7")).to_bytes();
        assert_eq!(b.len(), 28);
        assert_eq!(&b[0..2], &[0, 1], "hardware type Ethernet");
        assert_eq!(&b[2..4], &[0x08, 0x00], "protocol type IPv4");
        assert_eq!(b[4], 6);
        assert_eq!(b[5], 4);
        assert_eq!(&b[6..8], &[0, 1], "opcode request");
        assert_eq!(&b[8..14], &m.0, "sender MAC is ours");
        assert_eq!(&b[14..18], &[0, 0, 0, 0], "sender IP 0.0.0.0");
        assert_eq!(&b[18..24], &[0; 6], "target MAC zero");
        assert_eq!(&b[24..28], &[192, 0, 2, 7], "target IP");
    }

    #[test]
    fn build_and_parse_round_trip() {
        let p = ArpPacket {
            operation: ARP_REPLY,
            sender_mac: mac("52:54:00:12:34:56"),
            sender_ip: ip("10.1.2.3"),
            target_mac: mac("02:00:5e:00:53:01"),
            target_ip: ip("0.0.0.0"),
        };
        assert_eq!(ArpPacket::parse(&p.to_bytes()).unwrap(), p);
    }

    #[test]
    fn reply_parser_extracts_sender_and_ignores_padding() {
        // A reply as Linux sends it to a probe (target IP 0.0.0.0), padded to 46 bytes.
        let mut b = vec![
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02, // header, opcode reply
            0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc, // sender MAC
            10, 77, 0, 10, // sender IP
            0x02, 0x00, 0x5e, 0x00, 0x53, 0x01, // target MAC
            0, 0, 0, 0, // target IP
        ];
        b.resize(46, 0);
        let p = ArpPacket::parse(&b).unwrap();
        assert_eq!(p.operation, ARP_REPLY);
        assert_eq!(p.sender_mac, mac("52:54:00:aa:bb:cc"));
        assert_eq!(p.sender_ip, ip("10.77.0.10"));
        assert_eq!(p.target_ip, ip("0.0.0.0"));
    }

    #[test]
    fn malformed_frames_are_rejected_without_panic() {
        let good = ArpPacket::probe(mac("02:00:00:00:00:01"), ip("10.0.0.1")).to_bytes();
        for len in 0..ARP_PACKET_LEN {
            assert_eq!(
                ArpPacket::parse(&good[..len]),
                Err(ArpParseError::TooShort(len))
            );
        }
        let mut b = good;
        b[1] = 6; // IEEE 802 hardware type
        assert_eq!(ArpPacket::parse(&b), Err(ArpParseError::HardwareType(6)));
        let mut b = good;
        b[2] = 0x86;
        b[3] = 0xdd;
        assert_eq!(
            ArpPacket::parse(&b),
            Err(ArpParseError::ProtocolType(0x86dd))
        );
        let mut b = good;
        b[5] = 16;
        assert_eq!(
            ArpPacket::parse(&b),
            Err(ArpParseError::AddressLengths {
                hardware: 6,
                protocol: 16
            })
        );
        // Arbitrary bytes of every length never panic.
        let mut x: u32 = 0x1234_5678;
        for len in 0..80 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = ArpPacket::parse(&bytes);
        }
    }

    #[test]
    fn replies_and_claims_for_targets_are_answers_probes_are_not() {
        let targets: HashSet<Ipv4Addr> = [ip("10.0.0.5"), ip("10.0.0.6")].into();
        let them = mac("52:54:00:00:00:99");
        let reply = ArpPacket {
            operation: ARP_REPLY,
            sender_mac: them,
            sender_ip: ip("10.0.0.5"),
            target_mac: mac("02:00:00:00:00:01"),
            target_ip: Ipv4Addr::UNSPECIFIED,
        };
        assert_eq!(
            reply.answer_for(&targets),
            Some(ProbeAnswer {
                address: ip("10.0.0.5"),
                mac: them
            })
        );
        // Someone asking for another host, with a target as its own address: a claim.
        let claim = ArpPacket {
            operation: ARP_REQUEST,
            sender_ip: ip("10.0.0.6"),
            target_ip: ip("10.0.0.1"),
            ..reply
        };
        assert_eq!(claim.answer_for(&targets).unwrap().address, ip("10.0.0.6"));
        // Another prober's probe for a target claims nothing.
        let probe = ArpPacket::probe(them, ip("10.0.0.5"));
        assert_eq!(probe.answer_for(&targets), None);
        // A reply for an address not probed.
        let other = ArpPacket {
            sender_ip: ip("10.0.0.7"),
            ..reply
        };
        assert_eq!(other.answer_for(&targets), None);
        // Unknown opcodes (RARP etc.) are ignored.
        let rarp = ArpPacket {
            operation: 4,
            ..reply
        };
        assert_eq!(rarp.answer_for(&targets), None);
    }

    #[test]
    fn default_options_are_bounded() {
        let o = ProbeOptions::default();
        assert!((2..=3).contains(&o.count));
        assert_eq!(o.duration(), Duration::from_millis(400));
        let one = ProbeOptions {
            count: 0,
            ..ProbeOptions::default()
        };
        assert_eq!(one.duration(), one.wait);
    }

    #[test]
    fn empty_target_list_is_ok_without_a_socket() {
        // Would fail (no such interface, or no CAP_NET_RAW) if it touched the kernel.
        let r = probe("does-not-exist0", &[], &ProbeOptions::default()).unwrap();
        assert!(r.is_empty());
    }

    #[test]
    fn non_unicast_targets_are_refused_before_anything_is_opened() {
        for bad in ["0.0.0.0", "255.255.255.255", "224.0.0.1", "127.0.0.1"] {
            let e = probe("does-not-exist0", &[ip(bad)], &ProbeOptions::default()).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
            assert_eq!(e.io_error().kind(), io::ErrorKind::InvalidInput, "{e}");
        }
    }
}
