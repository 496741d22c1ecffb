//! How the doctor looks from inside a node: a netns node is entered (netlink and sockets
//! in its namespace, `ping`/`curl`/`getent` run there with the node's resolv.conf); a VM
//! node is reached through its QEMU guest agent, and the same facts are read and the same
//! probes run by the guest's own tools ([`edgenet_host::guest_probes`]). The checks in
//! `lib.rs` judge what either saw, alike.

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use edgenet_core::mac::MacAddr;
use edgenet_host::exec::{BindMount, ExecOptions};
use edgenet_host::guest_agent::GuestAgent;
use edgenet_host::guest_probes;
use edgenet_host::netlink::{dropping_route, Netlink};
use edgenet_host::netns::NetNs;
use edgenet_host::probes;

use crate::{NodeHandle, NODE_IFNAME};

/// The node's interface and sysctls as seen from inside it.
pub(crate) struct Observed {
    pub mac: Option<MacAddr>,
    pub mtu: u32,
    pub up: bool,
    pub addresses: Vec<ipnet::Ipv4Net>,
    pub default_gateway: Option<Ipv4Addr>,
    /// Dropping routes made by hand that cut the node off (`prohibit 192.168.0.1/32`), as
    /// `ip route del` takes them (see edgenet_host::netlink::dropping_route).
    pub cutting_off: Vec<String>,
    pub ip_forward: Option<String>,
    pub bridge_nf: Option<String>,
}

/// A DNS answer: RCODE and number of answers.
pub(crate) struct Dns {
    pub rcode: u8,
    pub answers: u16,
}

pub(crate) enum Inside<'a> {
    Netns {
        netns: &'a str,
        /// The node's resolv.conf over /etc/resolv.conf.
        opts: ExecOptions,
    },
    Guest {
        node: &'a str,
        /// `linux` or `windows`: `node exec --node-type`.
        kind: &'static str,
        agent: RefCell<GuestAgent>,
    },
}

/// Proxy variables: what the proxy-env check compares in a guest's /etc/environment (which
/// may hold other variables, e.g. `PATH` on Ubuntu).
/// Why a paused VM's node has no way in (its agent never answers while it is paused).
pub const PAUSED: &str =
    "its VM is paused (its guest agent cannot answer): `edgenet deploy` resumes it";

const PROXY_VARIABLES: &[&str] = &["http_proxy", "https_proxy", "no_proxy", "all_proxy"];

impl<'a> Inside<'a> {
    /// The way into `node`: its namespace, or its guest agent (waiting up to `wait` for it;
    /// the error says why it does not answer).
    pub fn enter(node: &'a NodeHandle, wait: Duration) -> Result<Inside<'a>, String> {
        let Some(socket) = &node.guest_agent else {
            return Ok(Inside::Netns {
                netns: &node.netns,
                opts: ExecOptions {
                    binds: vec![BindMount::new(&node.resolv_conf, "/etc/resolv.conf")],
                    ..Default::default()
                },
            });
        };
        let deadline = std::time::Instant::now() + wait;
        let mut asked_qmp = false;
        loop {
            match GuestAgent::connect(socket, Duration::from_secs(2)) {
                Ok(ga) => {
                    return Ok(Inside::Guest {
                        node: &node.plan.name,
                        kind: match node.plan.kind {
                            edgenet_core::plan::NodeKind::Linux => "linux",
                            edgenet_core::plan::NodeKind::Windows => "windows",
                        },
                        agent: RefCell::new(ga),
                    })
                }
                Err(e) if GuestAgent::qemu_gone(&e) || std::time::Instant::now() >= deadline => {
                    return Err(e.to_string())
                }
                Err(_)
                    if !asked_qmp && {
                        asked_qmp = true;
                        GuestAgent::vm_paused(socket)
                    } =>
                {
                    return Err(PAUSED.into())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// A command prefix that runs a command in the node, for fixes.
    pub fn run_prefix(&self) -> String {
        match self {
            Inside::Netns { netns, .. } => format!("ip netns exec {netns}"),
            Inside::Guest { kind, .. } => format!("edgenet node exec --node-type {kind} --"),
        }
    }

    /// What the node is, for details (`namespace X`, `the guest of VM node X`).
    pub fn what(&self) -> String {
        match self {
            Inside::Netns { netns, .. } => format!("namespace {netns}"),
            Inside::Guest { node, .. } => format!("the guest of VM node {node}"),
        }
    }

    fn in_netns<T: Send>(
        netns: &str,
        f: impl FnOnce() -> std::io::Result<T> + Send,
    ) -> Result<T, String> {
        NetNs::open(netns)
            .map_err(|e| e.to_string())
            .and_then(|ns| ns.run(f).map_err(|e| e.to_string()))
            .and_then(|r| r.map_err(|e| e.to_string()))
    }

    pub fn observe(&self) -> Result<Option<Observed>, String> {
        match self {
            Inside::Netns { netns, .. } => observe_netns(netns),
            Inside::Guest { agent, .. } => {
                let link = guest_probes::link(
                    &mut agent.borrow_mut(),
                    NODE_IFNAME,
                    Duration::from_secs(5),
                )?;
                Ok(link.map(|l| Observed {
                    mac: l.mac.and_then(|m| m.parse().ok()),
                    mtu: l.mtu.unwrap_or(0),
                    up: l.up,
                    addresses: l.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
                    default_gateway: l.default_gateway,
                    cutting_off: Vec::new(),
                    ip_forward: l.ip_forward,
                    bridge_nf: l.bridge_nf,
                }))
            }
        }
    }

    /// One ping (with `size` bytes of payload and "don't fragment"); `true`: a reply came.
    pub fn ping(&self, target: Ipv4Addr, size: Option<u32>, timeout_s: u32) -> bool {
        match self {
            Inside::Netns { netns, .. } => {
                matches!(probes::ping_in(netns, target, size, timeout_s), Ok(true))
            }
            Inside::Guest { agent, .. } => guest_probes::ping_many(
                &mut agent.borrow_mut(),
                &[target],
                size,
                Duration::from_secs(u64::from(timeout_s)),
            )
            .is_ok_and(|r| r[0]),
        }
    }

    /// A query to `server`: for `name` (A), or without one for the root (NS).
    pub fn dns(
        &self,
        server: Ipv4Addr,
        name: Option<&str>,
        timeout: Duration,
    ) -> Result<Dns, String> {
        match self {
            Inside::Netns { netns, .. } => {
                let (name, qtype) = match name {
                    Some(name) => (name, probes::DNS_TYPE_A),
                    None => (".", probes::DNS_TYPE_NS),
                };
                Self::in_netns(netns, move || {
                    probes::dns_query(server, name, qtype, timeout)
                })
                .map(|r| Dns {
                    rcode: r.rcode,
                    answers: r.answers,
                })
            }
            Inside::Guest { agent, .. } => {
                let (name, qtype) = match name {
                    Some(name) => (name, "a"),
                    None => (".", "ns"),
                };
                guest_probes::dns_query(&mut agent.borrow_mut(), Some(server), name, qtype, timeout)
                    .map(|r| Dns {
                        rcode: r.rcode,
                        answers: r.answers,
                    })
            }
        }
    }

    /// The addresses `name` resolves to in the node (its resolver, its resolv.conf).
    pub fn resolve(&self, name: &str, timeout: Duration) -> Vec<Ipv4Addr> {
        match self {
            Inside::Netns { netns, opts } => {
                probes::resolve_in(netns, name, opts).unwrap_or_default()
            }
            Inside::Guest { agent, .. } => {
                guest_probes::resolve(&mut agent.borrow_mut(), name, timeout).unwrap_or_default()
            }
        }
    }

    pub fn tcp_connect(&self, ip: Ipv4Addr, port: u16, timeout: Duration) -> Result<(), String> {
        match self {
            Inside::Netns { netns, .. } => {
                Self::in_netns(netns, move || probes::tcp_connect(ip, port, timeout))
            }
            Inside::Guest { agent, .. } => {
                guest_probes::tcp_connect(&mut agent.borrow_mut(), ip, port, timeout)
            }
        }
    }

    /// An HTTP request to `url`, direct (no proxy): Ok(None) when a response came,
    /// Ok(Some(why)) when none did. In a guest, an `https` URL is a TCP connect to its port
    /// (a minimal guest has no TLS client).
    pub fn http_get(&self, url: &str, timeout_s: u32) -> Result<Option<String>, String> {
        match self {
            Inside::Netns { netns, opts } => {
                probes::http_get_in(netns, url, opts, timeout_s).map_err(|e| e.to_string())
            }
            Inside::Guest { agent, .. } => {
                let timeout = Duration::from_secs(u64::from(timeout_s));
                let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
                let host = parsed.host_str().unwrap_or_default().to_string();
                let port = parsed.port_or_known_default().unwrap_or(80);
                let address = match host.parse::<Ipv4Addr>() {
                    Ok(a) => a,
                    Err(_) => {
                        match guest_probes::resolve(&mut agent.borrow_mut(), &host, timeout) {
                            Ok(found) => found[0],
                            Err(e) => return Ok(Some(format!("{host}: {e}"))),
                        }
                    }
                };
                let mut ga = agent.borrow_mut();
                if parsed.scheme() == "https" {
                    return Ok(guest_probes::tcp_connect(&mut ga, address, port, timeout).err());
                }
                let mut path = parsed.path().to_string();
                if let Some(q) = parsed.query() {
                    path = format!("{path}?{q}");
                }
                Ok(guest_probes::http_get(&mut ga, address, port, &host, &path, timeout).err())
            }
        }
    }

    /// The node's proxy environment: where it is read, and its `NAME=value` lines (in a
    /// guest, only the proxy variables of its /etc/environment).
    pub fn proxy_env(&self, host_file: &Path) -> (String, Vec<(String, String)>) {
        let (shown, text, only_proxy) = match self {
            Inside::Netns { .. } => (
                host_file.display().to_string(),
                std::fs::read_to_string(host_file).unwrap_or_default(),
                false,
            ),
            Inside::Guest { agent, .. } => (
                "/etc/environment in the guest".to_string(),
                guest_probes::read_file(
                    &mut agent.borrow_mut(),
                    "/etc/environment",
                    Duration::from_secs(5),
                )
                .unwrap_or_default(),
                true,
            ),
        };
        let vars = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .filter(|(k, _)| !only_proxy || PROXY_VARIABLES.contains(&k.to_lowercase().as_str()))
            .collect();
        (shown, vars)
    }

    /// A directory holding the node's files at their paths (`/` for a netns node, which
    /// shares the host's files), for the rendered-files check: a guest's `paths` are copied
    /// into `scratch`. `None` with the guest: the root to show instead.
    pub fn files_root(&self, paths: &[String], scratch: &Path) -> (PathBuf, Option<String>) {
        match self {
            Inside::Netns { .. } => (PathBuf::from("/"), None),
            Inside::Guest { agent, .. } => {
                for p in paths {
                    let Some(text) =
                        guest_probes::read_file(&mut agent.borrow_mut(), p, Duration::from_secs(5))
                    else {
                        continue;
                    };
                    let to = scratch.join(p.trim_start_matches('/'));
                    if let Some(dir) = to.parent() {
                        let _ = std::fs::create_dir_all(dir);
                    }
                    let _ = std::fs::write(&to, text);
                }
                (scratch.to_path_buf(), Some("the guest's /".to_string()))
            }
        }
    }
}

fn observe_netns(netns: &str) -> Result<Option<Observed>, String> {
    let ns = NetNs::open(netns).map_err(|e| e.to_string())?;
    let result = ns
        .run(|| -> Result<Option<Observed>, String> {
            let mut nl = Netlink::open().map_err(|e| e.to_string())?;
            let Some(link) = nl.link(NODE_IFNAME).map_err(|e| e.to_string())? else {
                return Ok(None);
            };
            let addresses = nl
                .addresses_of(NODE_IFNAME)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|a| a.address)
                .collect();
            let routes = nl.routes().map_err(|e| e.to_string())?;
            let default_gateway = routes
                .iter()
                .find(|r| r.destination.prefix_len() == 0 && r.link.as_deref() == Some(NODE_IFNAME))
                .and_then(|r| r.gateway);
            let cutting_off = default_gateway
                .map(|gw| dropping_route::cutting_off(&routes, gw))
                .unwrap_or_default()
                .into_iter()
                .map(|r| {
                    let kind = r.type_word().unwrap_or("unicast");
                    format!("{kind} {}", r.destination)
                })
                .collect();
            Ok(Some(Observed {
                mac: link.mac,
                mtu: link.mtu,
                up: link.up && link.lower_up,
                addresses,
                default_gateway,
                cutting_off,
                ip_forward: edgenet_host::sysctl::read("net.ipv4.ip_forward").ok(),
                bridge_nf: edgenet_host::sysctl::read("net.bridge.bridge-nf-call-iptables").ok(),
            }))
        })
        .map_err(|e| e.to_string())?;
    result
}
