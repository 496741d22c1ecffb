//! How one cell of the `lab status` matrix is measured: a ping sweep from a node's namespace,
//! `curl` of the lab page, a TCP connect from the LAN peer to a listener in the node — real
//! traffic, from inside lab and node namespaces only, to lab addresses only.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use edgenet_host::exec::{command_in, BindMount, ExecOptions};
use edgenet_host::netlink::{Netlink, RouteSpec};
use edgenet_host::netns::NetNs;

use crate::lab::LabMachine;
use crate::matrix::NodeInfo;
use crate::probe::{ping_many, PingResult};
use crate::process::run_bounded;
use crate::topology::ADAPTER;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_table_stats_are_read() {
        // Present on every Linux kernel with IPv4.
        assert!(arp_table_fulls().is_some());
    }
}
