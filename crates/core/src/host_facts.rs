//! What the core needs to know about the live host, as plain data.
//!
//! The host layer (`edgenet-host`) fills this in from netlink, sysfs and resolver files; the core
//! only reads it. Keeping it plain data is what lets every host-dependent rule be unit-tested
//! without root and without touching the machine.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// A snapshot of the host's network, taken once per command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    pub hostname: String,
    pub links: Vec<HostLink>,
    /// IPv4 addresses with their prefix, and the link that carries them.
    pub addresses: Vec<HostAddress>,
    /// IPv4 routes of the main table (the default route included; rules ignore it).
    pub routes: Vec<HostRoute>,
    pub dns: HostDns,
    /// The host's nftables ruleset, for firewalls that would drop the switch's traffic.
    #[serde(default)]
    pub firewall: HostFirewall,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostLink {
    pub name: String,
    pub index: u32,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Carrier present (IFF_LOWER_UP).
    pub lower_up: bool,
    /// Lower-case colon form, when the link has an Ethernet address.
    pub mac: Option<String>,
    /// rtnetlink link kind (`bridge`, `veth`, `bond`, ...); `None` for physical devices.
    pub kind: Option<String>,
    /// Name of the bridge (or bond) this link is a port of.
    pub master: Option<String>,
    /// A wireless device (it has `/sys/class/net/<name>/wireless` or `phy80211`).
    pub wireless: bool,
    /// The link's alias (`ip link set X alias …`): edgenet marks its links `edgenet:<id>`.
    #[serde(default)]
    pub alias: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAddress {
    pub link: String,
    pub address: Ipv4Net,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRoute {
    pub destination: Ipv4Net,
    /// Output device, when the route has one.
    pub link: Option<String>,
    pub gateway: Option<Ipv4Addr>,
}

/// The host's DNS servers as a node should see them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDns {
    /// Upstream servers usable from a node: never loopback.
    pub servers: Vec<Ipv4Addr>,
    /// File the servers were read from (`/etc/resolv.conf`, `/run/systemd/resolve/resolv.conf`).
    pub source: Option<String>,
    /// Loopback resolvers found and set aside (e.g. the systemd stub 127.0.0.53).
    pub loopback_skipped: Vec<Ipv4Addr>,
    /// Why no servers were found, when none were.
    pub problem: Option<String>,
    /// The host's search list (its resolv.conf's last `search` or `domain` line), which nodes
    /// get too: short names resolve in a node as on the host.
    #[serde(default)]
    pub search: Vec<String>,
    /// The resolver options of the file the servers came from that mean the same in a node
    /// (`ndots:2`, `timeout:1`, `rotate`, `edns0`, …), without `trust-ad` (trusts the AD bit of
    /// a resolver on a trusted path — the host's own stub —, not of servers across the network)
    /// and glibc's removed IPv6 ones.
    #[serde(default)]
    pub options: Vec<String>,
}

impl HostFacts {
    pub fn link(&self, name: &str) -> Option<&HostLink> {
        self.links.iter().find(|l| l.name == name)
    }
}

/// What the host layer read of the firewall.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFirewall {
    /// `nft -j list ruleset`; `None` when it could not be read (see `problem`). Shared with
    /// the host layer's one read per command, not copied.
    pub ruleset: Option<std::sync::Arc<serde_json::Value>>,
    /// `net.bridge.bridge-nf-call-iptables` is 1: bridged IPv4 frames (node to node, node to
    /// LAN on an external switch) pass the `ip`/`inet` forward hook too (Docker turns it on).
    pub bridge_nf_call_iptables: bool,
    pub problem: Option<String>,
    /// The interface of the default route and its gateway, where a NAT switch's traffic goes.
    #[serde(default)]
    pub uplink: Option<String>,
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// Docker's `DOCKER-USER` as `iptables -S` prints it, read only when the ruleset shows
    /// another rule above an accept there ([`crate::host_firewall::docker_user_out_of_order`]):
    /// whether edgenet's accepts are present but below a user's rule, for every command's fix.
    #[serde(default)]
    pub docker_user: Option<Vec<String>>,
}

/// What the host layer read for the `vm` rules (validate/vm.rs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmHost {
    /// CPUs this process may run on.
    pub cpus: Option<u32>,
    /// `MemTotal` of /proc/meminfo, in MB.
    pub memory_mb: Option<u64>,
    /// Each image path of the config, as written, and what is there.
    pub files: BTreeMap<String, FileFacts>,
    /// The state directory (`--state-dir`), where each VM's sockets live, and the length of a
    /// deployment id (part of each VM's directory name).
    pub state_dir: Option<String>,
    pub id_len: usize,
}

/// One image path on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFacts {
    Missing,
    /// Not a regular file: what it is ("a directory").
    NotAFile(String),
    Unreadable(String),
    /// Its size and first bytes (at least 1 KiB when the file has them).
    File {
        size: u64,
        head: Vec<u8>,
    },
}
