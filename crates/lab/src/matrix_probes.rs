//! How one cell of the `lab status` matrix is measured: a ping sweep from a node's namespace,
//! `curl` of the lab page, a TCP connect from the LAN peer to a listener in the node — real
//! traffic, from inside lab and node namespaces only, to lab addresses only. A VM node is
//! measured from inside its guest, through its guest agent (`ping`, `nc`, `nslookup` run
//! there: [`edgenet_host::guest_probes`]); a node targeted by a probe is the same for both
//! runtimes, except that a LAN→node listener in a guest is `nc -l`.

use std::collections::HashMap;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use edgenet_host::exec::{command_in, BindMount, ExecOptions};
use edgenet_host::guest_agent::GuestAgent;
use edgenet_host::guest_probes;
use edgenet_host::netlink::{Netlink, RouteSpec};
use edgenet_host::netns::NetNs;

use crate::machine::LabMachine;
use crate::matrix::NodeInfo;
use crate::probe::{ping_many, PingResult};
use crate::process::run_bounded;
use crate::topology::{ADAPTER, HTTP_SERVER, TEST_NAME};

/// Bound of one probe: a ping's wait for its reply (with a new request every 200 ms, so one
/// lost ARP exchange or request does not fail a cell), curl's connect and transfer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound of a routed inbound connect: over veths a SYN is answered in well under a
/// millisecond, and routed probes to nodes sharing an address take turns, so this one is
/// kept short.
const INBOUND_TIMEOUT: Duration = Duration::from_secs(1);

/// What a probe saw: reachable or not, and a detail for a human.
pub(crate) type Outcome = (bool, String);

/// How often the kernel found its ARP table full (`table_fulls` of
/// `/proc/net/stat/arp_cache`, summed over CPUs); `None` when unreadable.
pub(crate) fn arp_table_fulls() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/stat/arp_cache").ok()?;
    let mut lines = text.lines();
    let column = lines
        .next()?
        .split_whitespace()
        .position(|h| h == "table_fulls")?;
    lines
        .map(|l| {
            l.split_whitespace()
                .nth(column)
                .and_then(|v| u64::from_str_radix(v, 16).ok())
        })
        .sum()
}

/// Pings every target from `netns` with one socket ([`ping_many`]); one outcome per cell.
pub(crate) fn ping_sweep(netns: &str, targets: &[(usize, Ipv4Addr)]) -> Vec<(usize, Outcome)> {
    let addresses: Vec<Ipv4Addr> = targets.iter().map(|(_, a)| *a).collect();
    let results = NetNs::open(netns)
        .map_err(|e| e.to_string())
        .and_then(|ns| {
            ns.run(|| ping_many(&addresses, PROBE_TIMEOUT))
                .map_err(|e| e.to_string())
        })
        .and_then(|r| r.map_err(|e| e.to_string()));
    match results {
        Ok(results) => targets
            .iter()
            .zip(results)
            .map(|((index, _), result)| {
                let outcome = match result {
                    PingResult::Reply(rtt) => (true, format!("reply after {rtt:.1?}")),
                    PingResult::NoReply(reason) => (
                        false,
                        format!(
                            "no reply within {PROBE_TIMEOUT:?}{}",
                            reason.map(|r| format!(" ({r})")).unwrap_or_default()
                        ),
                    ),
                };
                (*index, outcome)
            })
            .collect(),
        Err(e) => targets
            .iter()
            .map(|(index, _)| (*index, (false, e.clone())))
            .collect(),
    }
}

/// Runs a probe command in `netns` (optionally with its own resolv.conf), bounded.
fn probe_command(
    netns: &str,
    argv: &[&str],
    resolv_conf: Option<&PathBuf>,
) -> Result<std::process::Output, String> {
    let ns = NetNs::open(netns).map_err(|e| e.to_string())?;
    let opts = ExecOptions {
        binds: resolv_conf
            .map(|r| vec![BindMount::new(r, "/etc/resolv.conf")])
            .unwrap_or_default(),
        ..ExecOptions::default()
    };
    let mut cmd = command_in(&ns, argv[0], &opts).map_err(|e| e.to_string())?;
    cmd.args(&argv[1..]);
    // The probe's own bound plus start-up: curl stops itself before this.
    run_bounded(cmd, argv[0], netns, PROBE_TIMEOUT * 2).map_err(|e| e.to_string())
}

/// `curl` the lab page, direct (never via a proxy from the environment); reachable only when
/// the lab's own page came back.
pub(crate) fn curl(
    netns: &str,
    url: &str,
    resolv_conf: Option<&PathBuf>,
    page: &str,
) -> (bool, String) {
    let secs = PROBE_TIMEOUT.as_secs().max(1).to_string();
    let argv = [
        "curl",
        "-sS",
        "--noproxy",
        "*",
        "--connect-timeout",
        &secs,
        "--max-time",
        &secs,
        url,
    ];
    let outcome = {
        let _slot = crate::services::HTTP_CLIENTS.enter();
        probe_command(netns, &argv, resolv_conf)
    };
    match outcome {
        Ok(out) if out.status.success() && out.stdout == page.as_bytes() => {
            (true, "got the lab page".into())
        }
        Ok(out) if out.status.success() => (false, "answered, but not with the lab page".into()),
        Ok(out) => (false, summary(&out)),
        Err(e) => (false, e),
    }
}

fn summary(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = stderr
        .lines()
        .chain(stdout.lines())
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    match out.status.code() {
        Some(code) => format!("exit {code}: {text}"),
        None => format!("{}: {text}", out.status),
    }
}

/// LAN→node: a listener in the node, then a TCP connect from the LAN peer — directly, or
/// (`via` a machine) over a /32 route to the node via that machine, set for the connect
/// only. Reachable only when the node's own listener accepted the connection (a reset
/// forged by a firewall does not count).
pub(crate) fn lan_connect(peer: &str, node: &NodeInfo, via: Option<&LabMachine>) -> (bool, String) {
    let listener = match NetNs::open(&node.netns)
        .and_then(|ns| ns.run(|| TcpListener::bind((node.address, 0))))
    {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return (false, format!("listen in node {}: {e}", node.name)),
        Err(e) => return (false, e.to_string()),
    };
    let port = match listener.local_addr() {
        Ok(a) => a.port(),
        Err(e) => return (false, format!("listener address: {e}")),
    };
    if let Err(e) = listener.set_nonblocking(true) {
        return (false, format!("listener: {e}"));
    }
    let route = via.map(|via| RouteSpec {
        destination: Ipv4Net::new(node.address, 32).expect("/32 is valid"),
        gateway: Some(via.address.addr()),
        link: Some(ADAPTER),
    });
    let peer_ns = match NetNs::open(peer) {
        Ok(ns) => ns,
        Err(e) => return (false, e.to_string()),
    };
    let connected = peer_ns.run(|| -> Result<Result<TcpStream, std::io::Error>, String> {
        let target = SocketAddr::V4(SocketAddrV4::new(node.address, port));
        let Some(route) = &route else {
            // Nothing to take turns for: the full bound, which covers a retransmitted SYN.
            return Ok(TcpStream::connect_timeout(&target, PROBE_TIMEOUT));
        };
        let mut nl = Netlink::open().map_err(|e| e.to_string())?;
        nl.replace_route(route).map_err(|e| e.to_string())?;
        let result = TcpStream::connect_timeout(&target, INBOUND_TIMEOUT);
        let _ = nl.del_route(route);
        Ok(result)
    });
    let stream = match connected {
        Ok(Ok(Ok(s))) => s,
        Ok(Ok(Err(e))) => return (false, format!("connect to port {port}: {e}")),
        Ok(Err(e)) => return (false, format!("route in LAN peer: {e}")),
        Err(e) => return (false, e.to_string()),
    };
    // The handshake completes on the client first; the accept queue may lag a moment.
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        match listener.accept() {
            Ok(_) => {
                drop(stream);
                return (true, format!("node accepted on port {port}"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                return (
                    false,
                    format!("connected, but not to the node's listener ({e})"),
                )
            }
        }
    }
}

/// How long `lab status` waits for the guest agent of a VM node that does not answer yet
/// (a TCG guest answers 3–10 s after QEMU starts; `lab status` right after `lab up` finds
/// it booting).
pub const GUEST_AGENT_WAIT: Duration = Duration::from_secs(90);

/// A VM node's guest agent, shared by that node's probes, which take it in turn (QEMU
/// serves one agent client at a time); the error when it never answered.
pub(crate) type GuestSlot = Mutex<Result<GuestAgent, String>>;

/// The guest agents of the VM nodes, by node name, each connected (waiting up to `wait`
/// for it, all at once).
pub(crate) fn connect_guests(nodes: &[NodeInfo], wait: Duration) -> HashMap<String, GuestSlot> {
    std::thread::scope(|scope| {
        let pending: Vec<_> = nodes
            .iter()
            .filter_map(|n| Some((n, n.guest_agent.as_ref()?)))
            .map(|(n, socket)| {
                (
                    n.name.clone(),
                    scope.spawn(move || connect_guest(socket, wait)),
                )
            })
            .collect();
        pending
            .into_iter()
            .map(|(name, h)| {
                let agent = h
                    .join()
                    .unwrap_or_else(|_| Err("connecting panicked".into()));
                (name, Mutex::new(agent))
            })
            .collect()
    })
}

fn connect_guest(socket: &Path, wait: Duration) -> Result<GuestAgent, String> {
    let deadline = Instant::now() + wait;
    let mut asked_qmp = false;
    loop {
        match GuestAgent::connect(socket, Duration::from_secs(2)) {
            Ok(ga) => return Ok(ga),
            Err(e) if GuestAgent::qemu_gone(&e) => {
                return Err(format!(
                    "its QEMU is not running ({e}): `edgenet status` on its machine says more, \
                     `edgenet deploy` starts it again"
                ))
            }
            // A paused guest's agent never answers: said at once, not after the whole wait.
            Err(_)
                if !asked_qmp && {
                    asked_qmp = true;
                    GuestAgent::vm_paused(socket)
                } =>
            {
                return Err(
                    "its VM is paused: `edgenet deploy` on its machine resumes it".to_string(),
                )
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(format!(
                    "the guest agent does not answer after {wait:?} ({e}): the guest is still \
                     booting, or its QEMU is not running (edgenet status on its machine)"
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Runs `probe` with the node's guest agent, or fails with why there is none.
fn with_guest<T>(
    guest: &GuestSlot,
    probe: impl FnOnce(&mut GuestAgent) -> Result<T, String>,
) -> Result<T, String> {
    let mut agent = guest.lock().unwrap_or_else(|e| e.into_inner());
    match agent.as_mut() {
        Ok(ga) => probe(ga),
        Err(e) => Err(e.clone()),
    }
}

/// The ping sweep of a VM node, from inside its guest (`ping`, all targets at once).
pub(crate) fn guest_ping_sweep(
    guest: &GuestSlot,
    targets: &[(usize, Ipv4Addr)],
) -> Vec<(usize, Outcome)> {
    let addresses: Vec<Ipv4Addr> = targets.iter().map(|(_, a)| *a).collect();
    let replies = with_guest(guest, |ga| {
        guest_probes::ping_many(ga, &addresses, None, PROBE_TIMEOUT).map_err(|e| e.to_string())
    });
    targets
        .iter()
        .enumerate()
        .map(|(i, (index, _))| {
            let outcome = match &replies {
                Ok(r) if r[i] => (true, "reply (ping in the guest)".to_string()),
                Ok(_) => (
                    false,
                    format!("no reply within {PROBE_TIMEOUT:?} (ping in the guest)"),
                ),
                Err(e) => (false, e.clone()),
            };
            (*index, outcome)
        })
        .collect()
}

/// The lab page fetched from inside a VM node's guest, direct: by address, or by name
/// through the guest's own resolver (`nslookup`, then `nc` to the address it gave).
pub(crate) fn guest_fetch(guest: &GuestSlot, by_name: bool, page: &str) -> Outcome {
    let _slot = crate::services::HTTP_CLIENTS.enter();
    let result = with_guest(guest, |ga| {
        let address = if by_name {
            *guest_probes::resolve(ga, TEST_NAME, PROBE_TIMEOUT)?
                .first()
                .expect("resolve returns at least one")
        } else {
            HTTP_SERVER
        };
        let host = if by_name {
            TEST_NAME.to_string()
        } else {
            HTTP_SERVER.to_string()
        };
        guest_probes::http_get(ga, address, 80, &host, "/", PROBE_TIMEOUT).map(|r| (address, r))
    });
    match result {
        Ok((_, r)) if r.status == 200 && r.body == page => (true, "got the lab page".into()),
        Ok((a, r)) => (
            false,
            format!("{a} answered {}, but not with the lab page", r.status),
        ),
        Err(e) => (false, e),
    }
}

/// LAN→node for a VM node: a listener in the guest (`nc -l`) that sends a token, then a TCP
/// connect from the LAN peer as for a netns node. Reachable only when the token came back:
/// the guest's own listener answered (a reset forged by a firewall does not count).
pub(crate) fn guest_lan_connect(
    peer: &str,
    node: &NodeInfo,
    via: Option<&LabMachine>,
    guest: &GuestSlot,
) -> Outcome {
    let mut agent = guest.lock().unwrap_or_else(|e| e.into_inner());
    let ga = match agent.as_mut() {
        Ok(ga) => ga,
        Err(e) => return (false, e.clone()),
    };
    // A port unlikely to be taken in the guest: random enough between runs.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let port = 20000 + ((std::process::id() ^ nanos) % 20000) as u16;
    let token = format!("edgenet-lab-{}-{port}", node.name);
    let listener = match guest_probes::Listener::start(ga, port, &token) {
        Ok(l) => l,
        Err(e) => return (false, format!("listen in the guest: {e}")),
    };
    // The listener starts in the guest a moment after guest-exec returns: a refused
    // connect is tried again until the bound.
    let bound = if via.is_some() {
        INBOUND_TIMEOUT
    } else {
        PROBE_TIMEOUT
    };
    let deadline = Instant::now() + bound + PROBE_TIMEOUT;
    let outcome = loop {
        match peer_connect(peer, node.address, port, via, bound) {
            Ok(mut stream) => {
                let _ = stream.set_read_timeout(Some(PROBE_TIMEOUT));
                let mut got = Vec::new();
                let mut buf = [0u8; 256];
                while !got.ends_with(b"\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                break if String::from_utf8_lossy(&got).trim() == token {
                    (
                        true,
                        format!("the guest's listener answered on port {port}"),
                    )
                } else {
                    (
                        false,
                        format!("connected, but not to the guest's listener on port {port}"),
                    )
                };
            }
            Err(e) if e.contains("refused") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => break (false, e),
        }
    };
    listener.stop(ga);
    outcome
}

/// A TCP connect from the LAN peer to `address:port`, directly or (`via` a machine) over a
/// /32 route set for the connect only.
fn peer_connect(
    peer: &str,
    address: Ipv4Addr,
    port: u16,
    via: Option<&LabMachine>,
    timeout: Duration,
) -> Result<TcpStream, String> {
    let route = via.map(|via| RouteSpec {
        destination: Ipv4Net::new(address, 32).expect("/32 is valid"),
        gateway: Some(via.address.addr()),
        link: Some(ADAPTER),
    });
    let peer_ns = NetNs::open(peer).map_err(|e| e.to_string())?;
    let connected = peer_ns
        .run(|| -> Result<Result<TcpStream, std::io::Error>, String> {
            let target = SocketAddr::V4(SocketAddrV4::new(address, port));
            let Some(route) = &route else {
                return Ok(TcpStream::connect_timeout(&target, timeout));
            };
            let mut nl = Netlink::open().map_err(|e| e.to_string())?;
            nl.replace_route(route).map_err(|e| e.to_string())?;
            let result = TcpStream::connect_timeout(&target, timeout);
            let _ = nl.del_route(route);
            Ok(result)
        })
        .map_err(|e| e.to_string())?;
    match connected {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(format!("connect to port {port}: {e}")),
        Err(e) => Err(format!("route in LAN peer: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_table_stats_are_read() {
        // Present on every Linux kernel with IPv4.
        assert!(arp_table_fulls().is_some());
    }
}
