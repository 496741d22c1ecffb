//! RFC 5227 address-free probes (SPEC §3.2, §4 rule 12): "is anyone on this link using
//! these IPv4 addresses?".
//!
//! [`probe`] opens one `AF_PACKET` socket bound to one interface of the calling thread's
//! network namespace, sends ARP probes (who-has TARGET, sender IP 0.0.0.0, broadcast) for all
//! targets at once, a few rounds, and collects every host that answers for a target or claims
//! it as its own sender address. [`probe_known`] asks a target whose MAC the host already
//! knows (the gateway) by unicast first, and broadcasts only if that goes unanswered. Because the sender IP is 0.0.0.0, nobody on the link learns a
//! neighbour entry from the probe, and nothing on the prober changes: no address, no route,
//! no ARP cache entry is touched. Nothing but these ARP requests is ever sent.
//!
//! Frames are laid out and read by `etherparse` ([`ArpPacket`] converts, pure and unit-tested
//! without root); the socket is `socket2`'s, polled with `nix`.

use std::collections::{BTreeSet, HashSet};
use std::io::{self, Read};
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use edgenet_core::mac::MacAddr;
use etherparse::{
    ArpEthIpv4Packet, ArpOperation, ArpPacket as WireArp, EtherType, Ethernet2Header,
    Ethernet2Slice,
};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::Serialize;
use socket2::{Domain, SockAddr, SockAddrStorage, SockFilter, Socket, Type};

use crate::error::HostError;
use crate::netlink::Netlink;

/// Length of an Ethernet/IPv4 ARP packet (without the Ethernet header, without padding).
pub const ARP_PACKET_LEN: usize = ArpEthIpv4Packet::LEN;
/// ARP operation "request" (who-has).
pub const ARP_REQUEST: u16 = libc::ARPOP_REQUEST;
/// ARP operation "reply" (is-at).
pub const ARP_REPLY: u16 = libc::ARPOP_REPLY;

const BROADCAST: [u8; 6] = [0xff; 6];
/// Receive buffer asked for: room for the replies of a whole /24 answering at once
/// (each small frame costs roughly 1 KiB of buffer accounting). Capped by `rmem_max`.
const RCVBUF: usize = 1 << 20;

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
        ArpEthIpv4Packet {
            operation: ArpOperation(self.operation),
            sender_mac: self.sender_mac.0,
            sender_ipv4: self.sender_ip.octets(),
            target_mac: self.target_mac.0,
            target_ipv4: self.target_ip.octets(),
        }
        .to_bytes()
    }

    /// The whole Ethernet frame: broadcast from `source` (the interface's own MAC).
    fn to_frame(self, source: MacAddr) -> Vec<u8> {
        self.to_frame_for(source, MacAddr(BROADCAST))
    }

    /// The whole Ethernet frame from `source` to `destination` (one host's MAC, or broadcast).
    fn to_frame_for(self, source: MacAddr, destination: MacAddr) -> Vec<u8> {
        let ethernet = Ethernet2Header {
            source: source.0,
            destination: destination.0,
            ether_type: EtherType::ARP,
        };
        let mut frame = ethernet.to_bytes().to_vec();
        frame.extend_from_slice(&self.to_bytes());
        frame
    }

    /// Parses the ARP payload of a frame. Trailing bytes (Ethernet padding up to the 60-byte
    /// minimum frame) are ignored; anything that is not Ethernet/IPv4 ARP is refused.
    pub fn parse(bytes: &[u8]) -> Result<Self, ArpParseError> {
        let Some(b) = bytes.get(..ARP_PACKET_LEN) else {
            return Err(ArpParseError::TooShort(bytes.len()));
        };
        // A generic ARP packet first (any hardware and protocol), then the Ethernet/IPv4 one.
        let Ok(arp) = WireArp::from_slice(b) else {
            // Long enough for Ethernet/IPv4, so the header's address lengths claim more.
            return Err(ArpParseError::AddressLengths {
                hardware: b[4],
                protocol: b[5],
            });
        };
        let p = arp.try_eth_ipv4().map_err(|e| {
            use etherparse::err::arp::ArpEthIpv4FromError as E;
            match e {
                E::NonMatchingHwType(t) => ArpParseError::HardwareType(t.0),
                E::NonMatchingProtocolType(t) => ArpParseError::ProtocolType(t.0),
                E::NonMatchingHwAddrSize(_) | E::NonMatchingProtoAddrSize(_) => {
                    ArpParseError::AddressLengths {
                        hardware: arp.hw_addr_size(),
                        protocol: arp.protocol_addr_size(),
                    }
                }
            }
        })?;
        Ok(ArpPacket {
            operation: p.operation.0,
            sender_mac: MacAddr(p.sender_mac),
            sender_ip: p.sender_ipv4_addr(),
            target_mac: MacAddr(p.target_mac),
            target_ip: p.target_ipv4_addr(),
        })
    }

    /// The ARP packet in a whole Ethernet frame; `None` for any other frame.
    fn from_frame(frame: &[u8]) -> Option<Self> {
        let ethernet = Ethernet2Slice::from_slice_without_fcs(frame).ok()?;
        if ethernet.ether_type() != EtherType::ARP {
            return None;
        }
        ArpPacket::parse(ethernet.payload_slice()).ok()
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
    probe_known(ifname, targets, &[], opts)
}

/// [`probe`], told the MACs the host already has for some targets (`known`: address, MAC —
/// the gateway's entry in the neighbour cache, say). Such a target is asked first by unicast,
/// to that MAC alone, as the kernel confirms an entry it holds: the other hosts of the LAN do
/// not each handle one more broadcast. If it has not answered by the next round, that round
/// and the later ones broadcast as for any other target (the MAC may be stale: a router
/// replaced, a NIC changed). A probe of one round broadcasts only, so a stale MAC can never
/// hide a target. Every target is still reported by whoever answers or claims it; a unicast
/// request reaches only the host with that MAC, so `known` is for a target that is expected
/// to answer (the gateway), not for an address that must be free. A MAC given for an address
/// not among `targets`, or a multicast or zero one, is ignored.
pub fn probe_known(
    ifname: &str,
    targets: &[Ipv4Addr],
    known: &[(Ipv4Addr, MacAddr)],
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
    let sock = PacketSocket::open(ifname, index, &order)?;

    let count = opts.count.max(1);
    let start = Instant::now();
    let end = start + opts.interval * (count - 1) + opts.wait;
    let frames: Vec<Vec<u8>> = order
        .iter()
        .map(|t| ArpPacket::probe(mac, *t).to_frame(mac))
        .collect();
    // The first round's frame of a target whose MAC is known: to that MAC (a later round is
    // left to broadcast in).
    let unicast: Vec<Option<Vec<u8>>> = order
        .iter()
        .map(|t| {
            let (_, to) = known.iter().find(|(a, _)| a == t)?;
            (count > 1 && !to.is_zero() && !to.is_multicast())
                .then(|| ArpPacket::probe(mac, *t).to_frame_for(mac, *to))
        })
        .collect();
    let mut sent_ok = vec![false; order.len()];
    let mut last_send_error: Option<io::Error> = None;
    let mut answers = BTreeSet::new();
    let mut buf = [0u8; 2048];

    for round in 0..count {
        let due = start + opts.interval * round;
        sock.receive_until(due, &mut buf, &wanted, &mut answers)?;
        for (i, frame) in frames.iter().enumerate() {
            // A target that answered is known to be in use (or, the gateway, to be there):
            // asking again adds no finding, only a broadcast every host on the LAN handles
            // (on a large LAN that is most of the probe's cost, see BENCHMARKS.md).
            if sent_ok[i] && answers.iter().any(|a| a.address == order[i]) {
                continue;
            }
            let frame = match &unicast[i] {
                Some(to_one) if round == 0 => to_one,
                _ => frame,
            };
            match sock.send_frame(frame) {
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

/// Announces on `ifname` (in the calling thread's namespace), with one gratuitous ARP, that
/// `mac` has `ip`. `mac` need not be the interface's own: a machine announces its nodes on its
/// adapter, where the frame goes straight to the LAN (a node's own link may still be held back
/// by its bridge port for up to a second after it came up).
pub fn announce(ifname: &str, mac: MacAddr, ip: Ipv4Addr) -> Result<(), HostError> {
    let (index, own) = usable_link(ifname)?;
    let sock = PacketSocket::open(ifname, index, &[])?;
    sock.send_frame(&ArpPacket::announcement(mac, ip).to_frame(own))
        .map_err(|e| HostError::new("send ARP announcement on", ifname, e))
}

/// Index and MAC of `ifname`, which must exist, be up, have carrier and an Ethernet MAC.
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

/// An `AF_PACKET`/`SOCK_RAW` socket that sees only the ARP frames arriving on one interface
/// (bound to all protocols of the interface, with a kernel filter that keeps only incoming
/// ARP) and sends whole Ethernet frames out of it.
struct PacketSocket {
    sock: Socket,
    ifname: String,
}

impl PacketSocket {
    /// `targets`: the addresses whose ARP the socket takes in (see [`arp_filter`]); none for a
    /// socket that only sends.
    fn open(ifname: &str, index: u32, targets: &[Ipv4Addr]) -> Result<Self, HostError> {
        let fail = |op: &str, e| HostError::new(op, ifname, e);
        // No protocol: the socket receives nothing until bind() below names the protocol and
        // the interface, so no frame of another interface can slip in before that.
        let sock = Socket::new(Domain::PACKET, Type::RAW, None)
            .map_err(|e| fail("open ARP packet socket for", e))?;
        // Best effort: a larger receive buffer.
        let _ = sock.set_recv_buffer_size(RCVBUF);
        // Before bind: from the moment frames flow in, only incoming ARP is queued.
        let filter: Vec<SockFilter> = arp_filter(targets)
            .into_iter()
            .map(|(code, jt, jf, k)| SockFilter::new(code, jt, jf, k))
            .collect();
        sock.attach_filter(&filter)
            .map_err(|e| fail("attach ARP filter to packet socket for", e))?;
        sock.set_nonblocking(true)
            .map_err(|e| fail("set ARP packet socket non-blocking for", e))?;
        // All protocols (the filter keeps ARP): a socket bound to ETH_P_ARP sees nothing on a
        // bridge port, since the bridge takes the port's frames before protocol-specific
        // sockets get them, while "all protocols" taps see them first.
        sock.bind(&link_address(index, libc::ETH_P_ALL as u16))
            .map_err(|e| fail("bind ARP packet socket to", e))?;
        Ok(PacketSocket {
            sock,
            ifname: ifname.to_string(),
        })
    }

    /// Sends one whole Ethernet frame out of the bound interface.
    fn send_frame(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            match self.sock.send(frame) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// One frame without blocking: `Ok(None)` when none is queued; `Ok(Some(None))` for a
    /// frame that is not an Ethernet/IPv4 ARP packet.
    fn recv_one(&self, buf: &mut [u8]) -> Result<Option<Option<ArpPacket>>, HostError> {
        match (&self.sock).read(buf) {
            Ok(n) => Ok(Some(ArpPacket::from_frame(&buf[..n]))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Some(None)),
            Err(e) => Err(HostError::new("receive ARP on", &self.ifname, e)),
        }
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
            let left = (deadline - now).max(Duration::from_millis(1));
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(HostError::new("wait for ARP on", &self.ifname, e.into())),
            }
        }
    }
}

/// Most targets [`arp_filter`] checks one by one (each check's jump to "keep" must fit the
/// 8-bit offset of a classic BPF jump); a probe of more keeps every incoming ARP frame.
const FILTERED_TARGETS: usize = 250;

/// Classic BPF program run by the kernel on every frame of the interface: drop our own
/// outgoing frames, keep ARP whose sender address is one of `targets` (the only frames
/// [`ArpPacket::answer_for`] can take), drop everything else. In tcpdump's notation:
/// `ldh [pkttype]; jeq #outgoing, drop; ldh [proto]; jeq #0x806, next, drop; ld [28];
/// jeq #target1, keep; …; drop: ret #0; keep: ret #0xffff`. With more than
/// [`FILTERED_TARGETS`] targets every ARP frame is kept (no `ld [28]`, no target checks).
///
/// A frame the filter drops never wakes the prober: on a large LAN, where every host's ARP
/// requests reach every port, most of the ARP a probe's socket saw was other hosts' and was
/// read only to be thrown away.
fn arp_filter(targets: &[Ipv4Addr]) -> Vec<(u16, u8, u8, u32)> {
    const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // Ancillary loads: what the kernel knows of the frame, not its bytes.
    const PKTTYPE: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32;
    const PROTOCOL: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32;
    // The ARP sender protocol address: Ethernet header (14) + 8 bytes of ARP header + the
    // sender's 6-byte MAC.
    const SENDER_IP: u32 = 28;
    let checked: &[Ipv4Addr] = if targets.len() > FILTERED_TARGETS {
        &[]
    } else {
        targets
    };
    // Layout: 0 pkttype, 1 outgoing?, 2 proto, 3 ARP?, [4 sender, 5… one check per target],
    // then drop, then keep. A jump's offset counts from the next instruction.
    let filtered = !checked.is_empty() || targets.is_empty();
    let first_check = 5;
    let drop = if filtered {
        first_check + checked.len()
    } else {
        4
    };
    let keep = drop + 1;
    let jump = |from: usize, to: usize| u8::try_from(to - from - 1).expect("short program");
    let mut program = vec![
        (LD_H_ABS, 0, 0, PKTTYPE),
        (JEQ_K, jump(1, drop), 0, libc::PACKET_OUTGOING as u32),
        (LD_H_ABS, 0, 0, PROTOCOL),
    ];
    if filtered {
        program.push((JEQ_K, 0, jump(3, drop), libc::ETH_P_ARP as u32));
        program.push((LD_W_ABS, 0, 0, SENDER_IP));
        for (i, t) in checked.iter().enumerate() {
            program.push((JEQ_K, jump(first_check + i, keep), 0, u32::from(*t)));
        }
    } else {
        program.push((JEQ_K, jump(3, keep), jump(3, drop), libc::ETH_P_ARP as u32));
    }
    program.push((RET_K, 0, 0, 0));
    // Keep: up to 64 KiB of the frame, i.e. all of it.
    program.push((RET_K, 0, 0, 0xffff));
    program
}

/// The link-layer address of interface `index` for `protocol` (host order), for bind().
fn link_address(index: u32, protocol: u16) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: the storage is large and aligned enough for every socket address, sockaddr_ll
    // included, and all-zero is a valid sockaddr_ll; the length given is sockaddr_ll's size,
    // and its family field says AF_PACKET.
    unsafe {
        let ll = storage.view_as::<libc::sockaddr_ll>();
        ll.sll_family = libc::AF_PACKET as libc::sa_family_t;
        ll.sll_protocol = protocol.to_be();
        ll.sll_ifindex = index as libc::c_int;
        SockAddr::new(
            storage,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
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

    #[test]
    fn a_frame_is_a_broadcast_from_the_interface_and_reads_back() {
        let own = mac("02:00:5e:00:53:01");
        let p = ArpPacket::announcement(mac("02:00:5e:00:53:99"), ip("10.0.0.5"));
        let frame = p.to_frame(own);
        assert_eq!(frame.len(), 14 + ARP_PACKET_LEN);
        assert_eq!(&frame[0..6], &[0xff; 6], "to everybody");
        assert_eq!(&frame[6..12], &own.0, "from the interface");
        assert_eq!(&frame[12..14], &[0x08, 0x06], "ethertype ARP");
        assert_eq!(ArpPacket::from_frame(&frame), Some(p));
        // Padded to the 60-byte minimum, as it arrives from a real NIC.
        let mut padded = frame.clone();
        padded.resize(60, 0);
        assert_eq!(ArpPacket::from_frame(&padded), Some(p));
    }

    #[test]
    fn a_frame_for_one_host_goes_to_its_mac_with_the_same_probe() {
        let (own, them) = (mac("02:00:5e:00:53:01"), mac("52:54:00:00:00:01"));
        let p = ArpPacket::probe(own, ip("10.0.0.1"));
        let frame = p.to_frame_for(own, them);
        assert_eq!(&frame[0..6], &them.0, "to that host only");
        assert_eq!(&frame[6..12], &own.0);
        assert_eq!(frame[14..], p.to_frame(own)[14..], "the same ARP probe");
        assert_eq!(ArpPacket::from_frame(&frame), Some(p));
    }

    #[test]
    fn frames_that_are_not_arp_are_not_packets() {
        let mut ipv4 = ArpPacket::probe(mac("02:00:00:00:00:01"), ip("10.0.0.1"))
            .to_frame(mac("02:00:00:00:00:01"));
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(ArpPacket::from_frame(&ipv4), None);
        assert_eq!(ArpPacket::from_frame(&ipv4[..10]), None);
    }

    /// Runs a program of [`arp_filter`] the way the kernel does, for the instructions it
    /// uses: how many bytes of `frame` it keeps (0: dropped).
    fn run_filter(program: &[(u16, u8, u8, u32)], frame: &[u8], pkttype: u32, proto: u32) -> u32 {
        let mut a = 0u32;
        let mut pc = 0;
        loop {
            let (code, jt, jf, k) = program[pc];
            pc += 1;
            match u32::from(code) {
                c if c == libc::BPF_LD | libc::BPF_H | libc::BPF_ABS => {
                    a = match k {
                        k if k == (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32 => pkttype,
                        k if k == (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32 => proto,
                        k => panic!("unexpected half-word load {k:#x}"),
                    }
                }
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    let at = k as usize;
                    let Some(b) = frame.get(at..at + 4) else {
                        return 0;
                    };
                    a = u32::from_be_bytes(b.try_into().unwrap());
                }
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                    pc += usize::from(if a == k { jt } else { jf });
                }
                c if c == libc::BPF_RET | libc::BPF_K => return k,
                c => panic!("unexpected instruction {c:#x}"),
            }
        }
    }

    #[test]
    fn the_filter_keeps_only_incoming_arp_from_a_target() {
        let target = ip("10.77.0.10");
        let other = ip("10.77.0.99");
        let from = |sender: Ipv4Addr| {
            ArpPacket {
                operation: ARP_REPLY,
                sender_mac: mac("02:00:00:00:00:02"),
                sender_ip: sender,
                target_mac: mac("02:00:00:00:00:01"),
                target_ip: ip("10.77.0.1"),
            }
            .to_frame(mac("02:00:00:00:00:02"))
        };
        let arp = libc::ETH_P_ARP as u32;
        let incoming = libc::PACKET_BROADCAST as u32;
        let outgoing = libc::PACKET_OUTGOING as u32;
        let f = arp_filter(&[ip("10.77.0.5"), target, ip("10.77.0.20")]);
        assert_eq!(run_filter(&f, &from(target), incoming, arp), 0xffff);
        // Another host's ARP (on a large LAN, most of what reaches the port) never wakes
        // the prober.
        assert_eq!(run_filter(&f, &from(other), incoming, arp), 0);
        assert_eq!(run_filter(&f, &from(target), outgoing, arp), 0);
        assert_eq!(run_filter(&f, &from(target), incoming, 0x0800), 0);
        assert_eq!(run_filter(&f, &from(target)[..20], incoming, arp), 0);
        // A socket that only sends takes in no ARP at all.
        let none = arp_filter(&[]);
        assert_eq!(run_filter(&none, &from(target), incoming, arp), 0);
        // Too many targets to check one by one: every incoming ARP frame is kept.
        let many: Vec<Ipv4Addr> = (0..=FILTERED_TARGETS as u32)
            .map(|i| Ipv4Addr::from(0x0a4d_0100 + i))
            .collect();
        let all = arp_filter(&many);
        assert_eq!(run_filter(&all, &from(other), incoming, arp), 0xffff);
        assert_eq!(run_filter(&all, &from(other), outgoing, arp), 0);
        assert_eq!(run_filter(&all, &from(other), incoming, 0x0800), 0);
        // The most targets checked one by one still fit the jumps, and the last is kept.
        let most = &many[..FILTERED_TARGETS];
        let f = arp_filter(most);
        assert_eq!(
            run_filter(&f, &from(most[FILTERED_TARGETS - 1]), incoming, arp),
            0xffff
        );
        assert_eq!(run_filter(&f, &from(most[0]), incoming, arp), 0xffff);
        assert_eq!(run_filter(&f, &from(other), incoming, arp), 0);
    }
}
