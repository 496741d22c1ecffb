//! Small, bounded network probes done in-process: a DNS A query, an HTTP/1.0 GET, a TCP
//! connect, ICMP echo to many targets at once. Sockets belong to the namespace of the thread
//! that opens them, so callers run these inside [`edgenet_host::netns::NetNs::run`].
//!
//! Hand-written instead of shelling out to `dig`/`nc`/`ping` so readiness checks need no
//! extra packages and can check the *answer* (the right address, the lab's own page), not
//! only that something replied, and so one namespace pings all its peers with one socket
//! instead of one process per pair.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// Largest HTTP response read (the lab's page is tiny).
const HTTP_MAX: u64 = 64 * 1024;

/// Sends one recursive A query for `name` to `server` and returns the A records of the
/// answer. An error answer (NXDOMAIN, REFUSED, …) is an error naming its RCODE.
pub fn dns_a(server: SocketAddrV4, name: &str, timeout: Duration) -> io::Result<Vec<Ipv4Addr>> {
    let id = query_id();
    let query = dns_query(id, name)?;
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.set_read_timeout(Some(timeout))?;
    socket.connect(server)?;
    socket.send(&query)?;
    let mut buf = [0u8; 1500];
    loop {
        let n = socket.recv(&mut buf)?;
        match parse_dns_answer(&buf[..n], id) {
            // A stray datagram with another id: keep waiting (bounded by the read timeout).
            Err(e) if e.kind() == io::ErrorKind::InvalidData && n >= 2 && id_of(&buf) != id => {
                continue
            }
            other => return other,
        }
    }
}

fn id_of(buf: &[u8]) -> u16 {
    u16::from_be_bytes([buf[0], buf[1]])
}

fn query_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos as u16) ^ (std::process::id() as u16)
}

fn dns_query(id: u16, name: &str) -> io::Result<Vec<u8>> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1, AN=NS=AR=0
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad DNS name {name:?}"),
            ));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&[0, 1, 0, 1]); // A, IN
    Ok(q)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("DNS answer: {what}"))
}

/// Skips a (possibly compressed) name starting at `pos`; returns the position after it.
fn skip_name(msg: &[u8], mut pos: usize) -> io::Result<usize> {
    loop {
        let len = *msg.get(pos).ok_or_else(|| bad("truncated name"))?;
        match len {
            0 => return Ok(pos + 1),
            l if l & 0xC0 == 0xC0 => return Ok(pos + 2),
            l => pos += 1 + l as usize,
        }
    }
}

fn parse_dns_answer(msg: &[u8], id: u16) -> io::Result<Vec<Ipv4Addr>> {
    if msg.len() < 12 {
        return Err(bad("shorter than a header"));
    }
    if id_of(msg) != id {
        return Err(bad("id does not match the query"));
    }
    let rcode = msg[3] & 0x0F;
    if rcode != 0 {
        let name = match rcode {
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            5 => "REFUSED",
            _ => "error",
        };
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("DNS answer: {name} (rcode {rcode})"),
        ));
    }
    let qd = u16::from_be_bytes([msg[4], msg[5]]);
    let an = u16::from_be_bytes([msg[6], msg[7]]);
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(msg, pos)? + 4;
    }
    let mut found = Vec::new();
    for _ in 0..an {
        pos = skip_name(msg, pos)?;
        let fixed = msg
            .get(pos..pos + 10)
            .ok_or_else(|| bad("truncated record"))?;
        let kind = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let len = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        pos += 10;
        let data = msg
            .get(pos..pos + len)
            .ok_or_else(|| bad("truncated data"))?;
        if kind == 1 && class == 1 && len == 4 {
            found.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        pos += len;
    }
    Ok(found)
}

/// An HTTP response: status code and body (headers dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// `GET target HTTP/1.0` sent to `to` (the server, or a proxy with an absolute-URL
/// target), every step bounded by `timeout`.
pub fn http_get(
    to: SocketAddrV4,
    target: &str,
    host: &str,
    timeout: Duration,
) -> io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::V4(to), timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {target} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: edgenet-lab\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.take(HTTP_MAX).read_to_end(&mut raw)?;
    parse_http(&raw)
}

fn parse_http(raw: &[u8]) -> io::Result<HttpResponse> {
    let text = String::from_utf8_lossy(raw);
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not an HTTP response: {:?}",
                text.chars().take(60).collect::<String>()
            ),
        )
    };
    let status_line = text.lines().next().ok_or_else(invalid)?;
    let mut parts = status_line.split_whitespace();
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(invalid());
    }
    let status = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(invalid)?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok(HttpResponse { status, body })
}

/// How often [`ping_many`] sends again to a target that has not answered yet (a request
/// queued behind an unresolved neighbour, or dropped in a burst, gets another chance).
const PING_RESEND: Duration = Duration::from_millis(200);
/// Marks the lab's echo requests (payload), so a stray reply is never taken for one.
const PING_MAGIC: &[u8; 16] = b"edgenet-lab-ping";
/// ICMP types.
const ECHO_REPLY: u8 = 0;
const DEST_UNREACHABLE: u8 = 3;
const ECHO_REQUEST: u8 = 8;
/// `setsockopt(SOL_RAW, ICMP_FILTER)`: a mask of ICMP types the socket does *not* receive.
const SOL_RAW: nix::libc::c_int = 255;
const ICMP_FILTER: nix::libc::c_int = 1;
/// Receive buffer asked for (root may exceed `rmem_max`): replies from many targets at once.
const PING_RCVBUF: nix::libc::c_int = 1 << 20;

/// Identifier of the next [`ping_many`] call (ICMP echo id), unique within the process.
static PING_ID: AtomicU16 = AtomicU16::new(0);

/// What [`ping_many`] found for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingResult {
    /// An echo reply from the target, after this round-trip time (from the first request).
    Reply(Duration),
    /// No reply before the deadline; the reason when one is known (a send error, an ICMP
    /// destination-unreachable).
    NoReply(Option<String>),
}

/// Sends ICMP echo requests to every target from the calling thread's network namespace
/// and waits, at most `timeout` in all, for each target's reply; targets that have not
/// answered get another request every 200 ms. One raw socket serves all targets (needs
/// `CAP_NET_RAW`), so pinging a hundred peers costs about as much as pinging one. Results
/// are in the order of `targets`. An error only when the socket cannot be made.
pub fn ping_many(targets: &[Ipv4Addr], timeout: Duration) -> io::Result<Vec<PingResult>> {
    if targets.len() > usize::from(u16::MAX) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "at most 65535 targets per call",
        ));
    }
    let socket = raw_icmp_socket()?;
    let id = PING_ID.fetch_add(1, Ordering::Relaxed) ^ (std::process::id() as u16);
    let started = Instant::now();
    let deadline = started + timeout;
    let mut results: Vec<Option<Duration>> = vec![None; targets.len()];
    let mut reasons: Vec<Option<String>> = vec![None; targets.len()];
    let mut waiting = targets.len();
    let mut next_send = started;
    let mut buf = [0u8; 1500];
    while waiting > 0 {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if now >= next_send {
            for (seq, target) in targets.iter().enumerate() {
                if results[seq].is_some() {
                    continue;
                }
                let request = echo_request(id, seq as u16);
                match socket.send_to(&request, SocketAddrV4::new(*target, 0)) {
                    Ok(_) => {}
                    Err(e) => reasons[seq] = Some(format!("send: {e}")),
                }
            }
            next_send = now + PING_RESEND;
        }
        let wait = next_send
            .min(deadline)
            .saturating_duration_since(Instant::now());
        socket.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        match parse_icmp(&buf[..n], id) {
            Some(Icmp::Reply { seq, from }) => {
                let seq = usize::from(seq);
                if seq < targets.len() && targets[seq] == from && results[seq].is_none() {
                    results[seq] = Some(started.elapsed());
                    waiting -= 1;
                }
            }
            Some(Icmp::Unreachable { seq, from, code }) => {
                if let Some(reason) = reasons.get_mut(usize::from(seq)) {
                    *reason = Some(format!("destination unreachable (code {code}) from {from}"));
                }
            }
            None => {}
        }
    }
    Ok(results
        .into_iter()
        .zip(reasons)
        .map(|(r, reason)| match r {
            Some(rtt) => PingResult::Reply(rtt),
            None => PingResult::NoReply(reason),
        })
        .collect())
}

/// A raw ICMP socket that receives only echo replies and destination-unreachable messages.
fn raw_icmp_socket() -> io::Result<UdpSocket> {
    use nix::libc;
    // SAFETY: plain system calls on an fd this function owns; `OwnedFd` closes it.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMP,
        );
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("raw ICMP socket: {e}")));
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let filter: u32 = !((1 << ECHO_REPLY) | (1 << DEST_UNREACHABLE));
        // Best effort: without the filter, other ICMP is parsed and ignored.
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_RAW,
            ICMP_FILTER,
            (&filter as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        );
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&PING_RCVBUF as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        // A datagram socket's methods (send_to, recv, timeouts) are exactly what a raw
        // socket needs; only its type differs.
        Ok(UdpSocket::from(fd))
    }
}

fn echo_request(id: u16, seq: u16) -> [u8; 8 + PING_MAGIC.len()] {
    let mut p = [0u8; 8 + PING_MAGIC.len()];
    p[0] = ECHO_REQUEST;
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..].copy_from_slice(PING_MAGIC);
    let sum = checksum(&p);
    p[2..4].copy_from_slice(&sum.to_be_bytes());
    p
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[derive(Debug, PartialEq, Eq)]
enum Icmp {
    Reply { seq: u16, from: Ipv4Addr },
    Unreachable { seq: u16, from: Ipv4Addr, code: u8 },
}

/// An IPv4 packet as a raw socket receives it (IP header included): our echo reply, or a
/// destination-unreachable about one of our requests.
fn parse_icmp(packet: &[u8], id: u16) -> Option<Icmp> {
    let (from, icmp) = split_ip(packet)?;
    match *icmp.first()? {
        ECHO_REPLY => {
            if icmp.len() < 8 + PING_MAGIC.len()
                || icmp[4..6] != id.to_be_bytes()
                || &icmp[8..8 + PING_MAGIC.len()] != PING_MAGIC
            {
                return None;
            }
            Some(Icmp::Reply {
                seq: u16::from_be_bytes([icmp[6], icmp[7]]),
                from,
            })
        }
        DEST_UNREACHABLE => {
            let code = *icmp.get(1)?;
            // The original datagram: its IP header and the first 8 bytes of our request.
            let (_, original) = split_ip(icmp.get(8..)?)?;
            if original.len() < 8
                || original[0] != ECHO_REQUEST
                || original[4..6] != id.to_be_bytes()
            {
                return None;
            }
            Some(Icmp::Unreachable {
                seq: u16::from_be_bytes([original[6], original[7]]),
                from,
                code,
            })
        }
        _ => None,
    }
}

/// (source address, payload) of an IPv4 packet carrying ICMP.
fn split_ip(packet: &[u8]) -> Option<(Ipv4Addr, &[u8])> {
    let first = *packet.first()?;
    if first >> 4 != 4 || packet.len() < 20 || packet[9] != 1 {
        return None;
    }
    let header = usize::from(first & 0x0f) * 4;
    let from = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    Some((from, packet.get(header..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip_packet(from: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
        p.extend_from_slice(&from.octets());
        p.extend_from_slice(&[198, 18, 0, 101]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn echo_requests_carry_a_valid_checksum_and_replies_are_matched() {
        let request = echo_request(0x1234, 7);
        assert_eq!(
            checksum(&request),
            0,
            "a packet with its checksum sums to zero"
        );
        let target = Ipv4Addr::new(198, 18, 0, 102);
        let mut reply = request;
        reply[0] = ECHO_REPLY;
        assert_eq!(
            parse_icmp(&ip_packet(target, &reply), 0x1234),
            Some(Icmp::Reply {
                seq: 7,
                from: target
            })
        );
        assert_eq!(
            parse_icmp(&ip_packet(target, &reply), 0x4321),
            None,
            "other id"
        );
        let mut foreign = reply;
        foreign[8] ^= 1;
        assert_eq!(parse_icmp(&ip_packet(target, &foreign), 0x1234), None);
        // A destination unreachable quoting our request.
        let router = Ipv4Addr::new(198, 18, 0, 1);
        let mut unreachable = vec![DEST_UNREACHABLE, 1, 0, 0, 0, 0, 0, 0];
        unreachable.extend(ip_packet(target, &request[..8]));
        assert_eq!(
            parse_icmp(&ip_packet(router, &unreachable), 0x1234),
            Some(Icmp::Unreachable {
                seq: 7,
                from: router,
                code: 1
            })
        );
        assert_eq!(parse_icmp(&[0x45, 0, 0], 0x1234), None, "truncated");
    }

    #[test]
    fn ping_many_answers_for_loopback_and_times_out_for_nobody() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: raw ICMP sockets need root");
            return;
        }
        // In a fresh namespace (loopback up) so the host's own network is not touched.
        let ns_name = format!("enl-probe{}-t", std::process::id());
        edgenet_host::netns::create(&ns_name).unwrap();
        let result = edgenet_host::netns::run_in(&ns_name, || {
            let mut nl = edgenet_host::netlink::Netlink::open().unwrap();
            nl.set_up("lo", true).unwrap();
            let started = Instant::now();
            let got = ping_many(
                &[
                    Ipv4Addr::LOCALHOST,
                    Ipv4Addr::new(198, 18, 9, 9),
                    Ipv4Addr::new(127, 0, 0, 2),
                ],
                Duration::from_millis(300),
            );
            (got, started.elapsed())
        });
        edgenet_host::netns::delete(&ns_name).unwrap();
        let (got, took) = result.unwrap();
        let got = got.unwrap();
        assert!(matches!(got[0], PingResult::Reply(_)), "{got:?}");
        assert!(matches!(got[2], PingResult::Reply(_)), "{got:?}");
        match &got[1] {
            PingResult::NoReply(Some(reason)) => assert!(reason.contains("send"), "{reason}"),
            other => panic!("no route there: {other:?}"),
        }
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    #[test]
    fn a_query_is_well_formed() {
        let q = dns_query(0x1234, "www.edgenet.test").unwrap();
        assert_eq!(&q[..2], &[0x12, 0x34]);
        assert_eq!(&q[12..16], b"\x03www");
        assert_eq!(&q[q.len() - 4..], &[0, 1, 0, 1]);
        assert!(dns_query(1, "a..b").is_err());
    }

    #[test]
    fn answers_with_compressed_names_are_parsed() {
        let mut msg = dns_query(7, "www.edgenet.test").unwrap();
        msg[2] = 0x81; // QR, RD
        msg[3] = 0x80; // RA, NOERROR
        msg[7] = 2; // AN = 2
        for last in [80u8, 81] {
            msg.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, last]);
        }
        let got = parse_dns_answer(&msg, 7).unwrap();
        assert_eq!(
            got,
            vec![
                Ipv4Addr::new(203, 0, 113, 80),
                Ipv4Addr::new(203, 0, 113, 81)
            ]
        );
        assert!(parse_dns_answer(&msg, 8).is_err());
        msg[3] = 0x83;
        let e = parse_dns_answer(&msg, 7).unwrap_err();
        assert!(e.to_string().contains("NXDOMAIN"), "{e}");
    }

    #[test]
    fn http_responses_are_split() {
        let r = parse_http(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\nhello\n").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "hello\n");
        assert!(parse_http(b"SSH-2.0-OpenSSH").is_err());
    }
}
