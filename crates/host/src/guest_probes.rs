//! Probes run inside a `vm` node's guest through its agent (`guest-exec`), with the tools
//! every Linux guest has — even edgenet's busybox test guest: `ping`, `nc`, `nslookup`,
//! `cat`, `ip`. They measure from inside the guest what `doctor` and `lab status` measure
//! from inside a netns node with sockets of their own, so the guest's own address, routes,
//! resolver and firewall are what is tested.
//!
//! Every argument that reaches the guest's shell is quoted ([`quote`]); every command is
//! bounded by `timeout` in the guest and by the agent wait on the host.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::guest_agent::{GuestAgent, GuestOutput};
use crate::netlink::HostError;

/// The environment of every probe: a standard `PATH`, no proxy variables (probes go
/// direct, as `curl --noproxy '*'` does in a netns node).
pub const GUEST_ENV: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

/// How much longer than a probe's own bound the host waits for the agent's answer (TCG
/// guests start a process in tens of milliseconds, a loaded host may take seconds).
const AGENT_SLACK: Duration = Duration::from_secs(10);

/// `s` as one word for a POSIX shell.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs `script` with `/bin/sh -c` in the guest; `bound` is the script's own bound.
pub fn sh(ga: &mut GuestAgent, script: &str, bound: Duration) -> Result<GuestOutput, HostError> {
    ga.exec(
        "/bin/sh",
        &["-c".to_string(), script.to_string()],
        &[GUEST_ENV.to_string()],
        bound + AGENT_SLACK,
    )
}

fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

/// Pings every target at once from the guest (`ping -c 1 -W`), with `size` bytes of ICMP
/// payload when given; `true` per target that replied. Linux sets "don't fragment" on a
/// ping that fits the route's MTU, so a `size` of MTU − 28 checks the path's MTU.
pub fn ping_many(
    ga: &mut GuestAgent,
    targets: &[Ipv4Addr],
    size: Option<u32>,
    timeout: Duration,
) -> Result<Vec<bool>, HostError> {
    let size = size.map(|s| format!("-s {s} ")).unwrap_or_default();
    let mut script = String::new();
    for (i, t) in targets.iter().enumerate() {
        script.push_str(&format!(
            "(ping -c 1 -W {w} {size}{t} >/dev/null 2>&1 && echo '{i} ok' || echo '{i} no') &\n",
            w = secs(timeout)
        ));
    }
    script.push_str("wait\n");
    let out = sh(ga, &script, timeout)?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(parse_ping_sweep(&text, targets.len()))
}

fn parse_ping_sweep(text: &str, n: usize) -> Vec<bool> {
    let mut ok = vec![false; n];
    for line in text.lines() {
        let mut f = line.split_whitespace();
        if let (Some(Ok(i)), Some("ok")) = (f.next().map(str::parse::<usize>), f.next()) {
            if i < n {
                ok[i] = true;
            }
        }
    }
    ok
}

/// Opens a TCP connection from the guest (`nc`) and closes it. The error says what `nc`
/// saw (refused, timed out, no route).
pub fn tcp_connect(
    ga: &mut GuestAgent,
    address: Ipv4Addr,
    port: u16,
    timeout: Duration,
) -> Result<(), String> {
    let w = secs(timeout);
    // A peer that keeps the connection open after ours closed its side is still a
    // connection: `timeout` ends nc then, and no "can't connect" was said.
    let script = format!("timeout {} nc -w {w} {address} {port} </dev/null", w + 1);
    let out = sh(ga, &script, timeout + Duration::from_secs(1)).map_err(|e| e.to_string())?;
    let err = String::from_utf8_lossy(&out.stderr);
    let failed =
        err.contains("can't connect") || err.contains("timed out") || err.contains("bad address");
    if out.code == 0 || (!failed && (out.code == 124 || out.code == 143)) {
        Ok(())
    } else {
        Err(first_line(&err).unwrap_or_else(|| format!("nc exited {}", out.code)))
    }
}

fn first_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.trim_start_matches("nc: ").to_string())
}

/// An HTTP response seen from the guest: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestHttp {
    pub status: u16,
    pub body: String,
}

/// `GET path` (HTTP/1.0, `Host: host`) sent from the guest to `address:port` with `nc`:
/// the response, or why none came.
pub fn http_get(
    ga: &mut GuestAgent,
    address: Ipv4Addr,
    port: u16,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<GuestHttp, String> {
    let w = secs(timeout);
    let request =
        format!("GET {path} HTTP/1.0\\r\\nHost: {host}\\r\\nConnection: close\\r\\n\\r\\n");
    let script = format!(
        "printf %b {} | timeout {} nc -w {w} {address} {port}",
        quote(&request),
        w + 1
    );
    let out = sh(ga, &script, timeout + Duration::from_secs(1)).map_err(|e| e.to_string())?;
    parse_http(&String::from_utf8_lossy(&out.stdout)).ok_or_else(|| {
        first_line(&String::from_utf8_lossy(&out.stderr)).unwrap_or_else(|| {
            if out.code == 124 || out.code == 143 {
                format!("no response within {w} s")
            } else {
                format!("no HTTP response (nc exited {})", out.code)
            }
        })
    })
}

fn parse_http(text: &str) -> Option<GuestHttp> {
    let mut parts = text.lines().next()?.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some(GuestHttp { status, body })
}

/// How a DNS server answered a query made from the guest (`nslookup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestDns {
    /// RFC 1035 RCODE as far as `nslookup` names it (0, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED).
    pub rcode: u8,
    pub answers: u16,
}

/// One query of `qtype` (`a`, `ns`) for `name` to `server` from the guest (`None`: the
/// guest's resolv.conf); an error when no answer came.
pub fn dns_query(
    ga: &mut GuestAgent,
    server: Option<Ipv4Addr>,
    name: &str,
    qtype: &str,
    timeout: Duration,
) -> Result<GuestDns, String> {
    // nslookup asks again after a lost reply; its whole run is bounded.
    let bound = Duration::from_secs(secs(timeout) * 2);
    let script = format!(
        "timeout {} nslookup -type={qtype} {} {}",
        bound.as_secs(),
        quote(name),
        server.map(|s| s.to_string()).unwrap_or_default()
    );
    let out = sh(ga, &script, bound).map_err(|e| e.to_string())?;
    parse_nslookup(
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    )
    .map(|(dns, _)| dns)
}

/// The IPv4 addresses `name` resolves to in the guest (its own resolv.conf).
pub fn resolve(
    ga: &mut GuestAgent,
    name: &str,
    timeout: Duration,
) -> Result<Vec<Ipv4Addr>, String> {
    let bound = Duration::from_secs(secs(timeout) * 2);
    let script = format!(
        "timeout {} nslookup -type=a {}",
        bound.as_secs(),
        quote(name)
    );
    let out = sh(ga, &script, bound).map_err(|e| e.to_string())?;
    let (dns, found) = parse_nslookup(
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    )?;
    if found.is_empty() {
        return Err(format!("{name} does not resolve (rcode {})", dns.rcode));
    }
    Ok(found)
}

/// busybox/bind `nslookup` output: the answer's RCODE, its count and the IPv4 addresses.
fn parse_nslookup(stdout: &str, stderr: &str) -> Result<(GuestDns, Vec<Ipv4Addr>), String> {
    let all = format!("{stdout}\n{stderr}");
    if all.contains("timed out") || all.contains("no servers could be reached") {
        return Err("no answer (timed out)".into());
    }
    let rcode = if all.contains("NXDOMAIN") {
        3
    } else if all.contains("SERVFAIL") {
        2
    } else if all.contains("REFUSED") {
        5
    } else {
        0
    };
    // After "Name:" come the answers; the server's own "Address:" comes before it.
    let answers_part = stdout.split_once("Name:").map(|(_, a)| a).unwrap_or("");
    let found: Vec<Ipv4Addr> = answers_part
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Address:"))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    let other_answers = stdout
        .lines()
        .filter(|l| l.contains("nameserver =") || l.contains("canonical name ="))
        .count();
    if rcode == 0 && found.is_empty() && other_answers == 0 && !stdout.contains("Server:") {
        return Err(first_line(stderr).unwrap_or_else(|| "nslookup said nothing".into()));
    }
    let answers = (found.len() + other_answers).min(usize::from(u16::MAX)) as u16;
    Ok((GuestDns { rcode, answers }, found))
}

/// The contents of a file in the guest; `None` when it cannot be read.
pub fn read_file(ga: &mut GuestAgent, path: &str, timeout: Duration) -> Option<String> {
    let out = sh(ga, &format!("cat {}", quote(path)), timeout).ok()?;
    (out.code == 0).then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What the guest's interface `ifname` looks like, read in one `guest-exec`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuestLink {
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    /// Administratively up and with carrier.
    pub up: bool,
    /// `ADDR/PREFIX`.
    pub addresses: Vec<String>,
    pub default_gateway: Option<Ipv4Addr>,
    pub ip_forward: Option<String>,
    pub bridge_nf: Option<String>,
}

/// Reads `ifname`'s MAC, MTU, state, IPv4 addresses and the default route through it, and
/// the two sysctls Kubernetes needs; `Ok(None)` when the guest has no such interface.
pub fn link(
    ga: &mut GuestAgent,
    ifname: &str,
    timeout: Duration,
) -> Result<Option<GuestLink>, String> {
    let d = format!("/sys/class/net/{ifname}");
    let script = format!(
        "[ -d {d} ] || {{ echo missing; exit 0; }}\n\
         echo \"mac $(cat {d}/address)\"; echo \"mtu $(cat {d}/mtu)\"\n\
         echo \"operstate $(cat {d}/operstate)\"; echo \"carrier $(cat {d}/carrier 2>/dev/null)\"\n\
         echo \"fwd $(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)\"\n\
         echo \"brnf $(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)\"\n\
         ip -o -4 addr show dev {ifname} | sed 's/^/addr /'\n\
         ip -4 route show default | sed 's/^/route /'\n"
    );
    let out = sh(ga, &script, timeout).map_err(|e| e.to_string())?;
    Ok(parse_link(&String::from_utf8_lossy(&out.stdout), ifname))
}

fn parse_link(text: &str, ifname: &str) -> Option<GuestLink> {
    if text.lines().any(|l| l.trim() == "missing") {
        return None;
    }
    let mut link = GuestLink::default();
    let (mut admin_up, mut carrier) = (false, false);
    for line in text.lines() {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        let value = (!rest.is_empty()).then(|| rest.to_string());
        match key {
            "mac" => link.mac = value,
            "mtu" => link.mtu = rest.parse().ok(),
            "operstate" => admin_up = rest == "up" || rest == "unknown",
            "carrier" => carrier = rest == "1",
            "fwd" => link.ip_forward = value,
            "brnf" => link.bridge_nf = value,
            "addr" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                if let Some(i) = words.iter().position(|w| *w == "inet") {
                    if let Some(a) = words.get(i + 1) {
                        link.addresses.push((*a).to_string());
                    }
                }
            }
            "route" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let via = words.iter().position(|w| *w == "via");
                let dev = words.iter().position(|w| *w == "dev");
                let on_link = dev.and_then(|i| words.get(i + 1)) == Some(&ifname);
                if let (Some(i), true, None) = (via, on_link, link.default_gateway) {
                    link.default_gateway = words.get(i + 1).and_then(|g| g.parse().ok());
                }
            }
            _ => {}
        }
    }
    link.up = admin_up && carrier;
    Some(link)
}

/// A TCP listener in the guest on `port` (`nc -l`) that sends `token` to whoever connects:
/// a peer that reads the token reached the guest's own socket, not a firewall's forged
/// answer. [`Listener::stop`] ends it.
pub struct Listener {
    pid: i64,
}

impl Listener {
    pub fn start(ga: &mut GuestAgent, port: u16, token: &str) -> Result<Listener, HostError> {
        let pid = ga.spawn(
            "/bin/sh",
            &["-c".to_string(), format!("exec nc -l -p {port}")],
            &[GUEST_ENV.to_string()],
            Some(format!("{token}\n").as_bytes()),
        )?;
        Ok(Listener { pid })
    }

    /// Ends the listener if it still runs (after a connection it ends by itself).
    pub fn stop(self, ga: &mut GuestAgent) {
        if matches!(ga.exec_status(self.pid), Ok(None)) {
            let _ = sh(ga, &format!("kill {}", self.pid), Duration::from_secs(2));
            let _ = ga.exec_status(self.pid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn a_ping_sweep_is_read_per_target() {
        assert_eq!(
            parse_ping_sweep("1 ok\n0 no\n7 ok\n", 3),
            vec![false, true, false]
        );
    }

    #[test]
    fn nslookup_answers_and_errors_are_read() {
        let ok = "Server:\t\t198.18.0.1\nAddress:\t198.18.0.1:53\n\nName:\twww.edgenet.test\nAddress: 203.0.113.80\n\n";
        let (dns, found) = parse_nslookup(ok, "").unwrap();
        assert_eq!(
            dns,
            GuestDns {
                rcode: 0,
                answers: 1
            }
        );
        assert_eq!(found, vec![Ipv4Addr::new(203, 0, 113, 80)]);
        let nx = "Server:\t\t198.18.0.1\nAddress:\t198.18.0.1:53\n\n** server can't find nope.test: NXDOMAIN\n\n";
        assert_eq!(parse_nslookup(nx, "").unwrap().0.rcode, 3);
        let ns = "Server:\t\t1.1.1.1\nAddress:\t1.1.1.1:53\n\nNon-authoritative answer:\n.\tnameserver = a.root-servers.net\n";
        assert_eq!(parse_nslookup(ns, "").unwrap().0.answers, 1);
        assert!(
            parse_nslookup(";; connection timed out; no servers could be reached\n", "").is_err()
        );
    }

    #[test]
    fn a_guest_link_is_read() {
        let text = "mac 02:15:5d:00:00:02\nmtu 1400\noperstate up\ncarrier 1\nfwd 0\nbrnf \n\
                    addr 2: eth0    inet 192.168.0.2/24 brd 192.168.0.255 scope global eth0\\       valid_lft forever\n\
                    route default via 192.168.0.1 dev eth0 \n";
        let l = parse_link(text, "eth0").unwrap();
        assert_eq!(l.mac.as_deref(), Some("02:15:5d:00:00:02"));
        assert_eq!(l.mtu, Some(1400));
        assert!(l.up);
        assert_eq!(l.addresses, vec!["192.168.0.2/24"]);
        assert_eq!(l.default_gateway, Some(Ipv4Addr::new(192, 168, 0, 1)));
        assert_eq!(l.ip_forward.as_deref(), Some("0"));
        assert_eq!(l.bridge_nf, None);
        assert_eq!(parse_link("missing\n", "eth0"), None);
    }

    #[test]
    fn http_responses_are_split() {
        let r = parse_http("HTTP/1.0 200 OK\r\nServer: x\r\n\r\nhello\n").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "hello\n"));
        assert!(parse_http("").is_none());
    }
}
