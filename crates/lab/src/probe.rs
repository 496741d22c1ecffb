//! Small, bounded network probes done in-process: a DNS A query, an HTTP/1.0 GET, a TCP
//! connect. Sockets belong to the namespace of the thread that opens them, so callers run
//! these inside [`edgenet_host::netns::NetNs::run`].
//!
//! Hand-written instead of shelling out to `dig`/`nc` so readiness checks need no extra
//! packages and can check the *answer* (the right address, the lab's own page), not only
//! that something replied.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

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
