//! Small probes `doctor` runs from inside a node or on the host: a DNS query to one server, a
//! TCP connect, ping with "don't fragment", an HTTP fetch, the host's nftables ruleset. Call the
//! socket ones inside [`crate::netns::NetNs::run`] to probe from a node.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::HostError;
use crate::exec::{output_in, ExecOptions};

/// How a DNS server answered one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsReply {
    /// RFC 1035 RCODE (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED).
    pub rcode: u8,
    pub answers: u16,
}

/// Record types the doctor asks for.
pub const DNS_TYPE_A: u16 = 1;
pub const DNS_TYPE_NS: u16 = 2;

/// A DNS query packet for `name` (`.` or empty: the root).
pub fn dns_query_packet(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(32 + name.len());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        let bytes = &label.as_bytes()[..label.len().min(63)];
        p.push(bytes.len() as u8);
        p.extend_from_slice(bytes);
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p
}

/// The reply to query `id`, or `None` when `bytes` is not one.
pub fn parse_dns_reply(id: u16, bytes: &[u8]) -> Option<DnsReply> {
    if bytes.len() < 12 || u16::from_be_bytes([bytes[0], bytes[1]]) != id || bytes[2] & 0x80 == 0 {
        return None;
    }
    Some(DnsReply {
        rcode: bytes[3] & 0x0f,
        answers: u16::from_be_bytes([bytes[6], bytes[7]]),
    })
}

/// Sends one query to `server:53` over UDP (twice, if the first gets no reply in half the
/// time) and waits up to `timeout` for the reply.
pub fn dns_query(
    server: Ipv4Addr,
    name: &str,
    qtype: u16,
    timeout: Duration,
) -> io::Result<DnsReply> {
    let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
    socket.connect(SocketAddrV4::new(server, 53))?;
    let id =
        (std::process::id() as u16) ^ (Instant::now().elapsed().subsec_nanos() as u16) ^ 0x5a5a;
    let packet = dns_query_packet(id, name, qtype);
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    for attempt in 0..2 {
        socket.send(&packet)?;
        let until = if attempt == 0 {
            Instant::now() + timeout / 2
        } else {
            deadline
        };
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            socket.set_read_timeout(Some(left))?;
            match socket.recv(&mut buf) {
                Ok(n) => {
                    if let Some(reply) = parse_dns_reply(id, &buf[..n]) {
                        return Ok(reply);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) => return Err(e),
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no reply from {server} within {timeout:?}"),
    ))
}

/// Opens (and closes) a TCP connection.
pub fn tcp_connect(address: Ipv4Addr, port: u16, timeout: Duration) -> io::Result<()> {
    TcpStream::connect_timeout(&SocketAddr::V4(SocketAddrV4::new(address, port)), timeout).map(drop)
}

/// `ping -c 1` from inside `netns`; with `size`, an ICMP payload of that many bytes with
/// "don't fragment" set (a packet of `size + 28` bytes on the wire). Ok(true): a reply came.
pub fn ping_in(
    netns: &str,
    target: Ipv4Addr,
    size: Option<u32>,
    timeout_s: u32,
) -> Result<bool, HostError> {
    let mut argv: Vec<String> = vec![
        "ping".into(),
        "-n".into(),
        "-c".into(),
        "1".into(),
        "-W".into(),
        timeout_s.to_string(),
    ];
    if let Some(size) = size {
        argv.extend(["-M".into(), "do".into(), "-s".into(), size.to_string()]);
    }
    argv.push(target.to_string());
    let out = output_in(netns, &argv, &ExecOptions::default())?;
    Ok(out.status.success())
}

/// `curl` of `url` from inside `netns`, with its resolv.conf, straight out (no proxy):
/// Ok(None) when an HTTP response came, Ok(Some(why)) when none did.
pub fn http_get_in(
    netns: &str,
    url: &str,
    opts: &ExecOptions,
    timeout_s: u32,
) -> Result<Option<String>, HostError> {
    let argv = [
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "--noproxy",
        "*",
        "--max-time",
        &timeout_s.to_string(),
        url,
    ];
    let out = output_in(netns, &argv, opts)?;
    Ok(if out.status.success() {
        None
    } else {
        Some(String::from_utf8_lossy(&out.stderr).trim().to_string())
    })
}

/// The IPv4 addresses `name` resolves to inside `netns` (with `opts`' resolv.conf).
pub fn resolve_in(netns: &str, name: &str, opts: &ExecOptions) -> Result<Vec<Ipv4Addr>, HostError> {
    let out = output_in(netns, &["getent", "ahostsv4", name], opts)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found: Vec<Ipv4Addr> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    found.dedup();
    Ok(found)
}

/// `iptables-legacy-save -t filter` (rules made by the legacy iptables backend do not show in
/// the nftables ruleset); `Ok(None)` when there is no legacy filter table or no such tool.
/// Only read when the legacy filter table already exists in this namespace
/// (`/proc/net/ip_tables_names`): asking for it otherwise would load `ip_tables` and create it.
pub fn iptables_legacy_filter() -> io::Result<Option<String>> {
    let names = std::fs::read_to_string("/proc/net/ip_tables_names").unwrap_or_default();
    if !names.lines().any(|l| l.trim() == "filter") {
        return Ok(None);
    }
    match Command::new("iptables-legacy-save")
        .args(["-t", "filter"])
        .output()
    {
        Ok(out) if out.status.success() => {
            Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
        }
        Ok(out) => Err(io::Error::other(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_packet_encodes_the_name_and_a_reply_is_recognised() {
        let p = dns_query_packet(0x1234, "www.edgenet.test", DNS_TYPE_A);
        assert_eq!(&p[..2], &[0x12, 0x34]);
        assert_eq!(&p[12..16], b"\x03www");
        assert_eq!(&p[p.len() - 4..], &[0, 1, 0, 1]);
        let root = dns_query_packet(1, ".", DNS_TYPE_NS);
        assert_eq!(root.len(), 12 + 1 + 4);
        let mut reply = p.clone();
        reply[2] |= 0x80;
        reply[3] = 0x83; // RA + NXDOMAIN
        assert_eq!(
            parse_dns_reply(0x1234, &reply),
            Some(DnsReply {
                rcode: 3,
                answers: 0
            })
        );
        assert_eq!(parse_dns_reply(0x1235, &reply), None);
        assert_eq!(parse_dns_reply(0x1234, &p), None, "a query is not a reply");
    }
}
