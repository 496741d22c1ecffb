//! One snapshot of the live host for the core ([`HostFacts`]): taken once per command, in
//! the calling thread's network namespace (run it inside [`crate::netns::NetNs::run`] for a
//! lab machine).

use std::io;
use std::path::PathBuf;

use edgenet_core::host_facts::{HostAddress, HostFacts, HostLink, HostRoute};

use crate::error::HostError;
use crate::netlink::{Netlink, Snapshot};
use crate::{resolv, sysfs};

/// The host files facts are read from; the lab gives each machine its own resolv.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactsPaths {
    pub resolv_conf: PathBuf,
    /// systemd-resolved's upstream list, followed when resolv.conf names a local resolver.
    pub systemd_resolv_conf: PathBuf,
    /// Root of the network devices in sysfs (wireless detection).
    pub sysfs_net: PathBuf,
}

impl Default for FactsPaths {
    fn default() -> Self {
        FactsPaths {
            resolv_conf: resolv::ETC_RESOLV_CONF.into(),
            systemd_resolv_conf: resolv::SYSTEMD_RESOLV_CONF.into(),
            sysfs_net: sysfs::SYSFS_NET.into(),
        }
    }
}

/// Facts of the current network namespace, with the standard host files.
pub fn gather() -> Result<HostFacts, HostError> {
    gather_with(&FactsPaths::default())
}

/// Facts of the current network namespace, reading resolver files and sysfs from `paths`.
/// DNS trouble is reported inside [`HostFacts::dns`], not as an error.
pub fn gather_with(paths: &FactsPaths) -> Result<HostFacts, HostError> {
    let hostname = nix::unistd::gethostname()
        .map_err(|e| HostError::new("read hostname", "", io::Error::from(e)))?
        .to_string_lossy()
        .into_owned();
    let snapshot = Netlink::open()?.snapshot()?;
    let dns = resolv::read_host_dns(&paths.resolv_conf, &paths.systemd_resolv_conf);
    let mut facts = from_snapshot(hostname, snapshot, paths, dns);
    facts.firewall = host_firewall();
    Ok(facts)
}

fn from_snapshot(
    hostname: String,
    snapshot: Snapshot,
    paths: &FactsPaths,
    dns: edgenet_core::host_facts::HostDns,
) -> HostFacts {
    let links = snapshot
        .links
        .into_iter()
        .map(|l| HostLink {
            // Only a device without a kind (a NIC) can be a radio: veths, bridges and the
            // like are not looked up in sysfs (two `stat`s each, on a host with many nodes).
            wireless: l.kind.is_none()
                && l.name != "lo"
                && sysfs::is_wireless(&paths.sysfs_net, &l.name),
            name: l.name,
            index: l.index,
            mtu: l.mtu,
            up: l.up,
            lower_up: l.lower_up,
            mac: l.mac.map(|m| m.to_string()),
            kind: l.kind,
            master: l.master,
            alias: l.alias,
        })
        .collect();
    let addresses = snapshot
        .addresses
        .into_iter()
        .map(|a| HostAddress {
            link: a.link,
            address: a.address,
        })
        .collect();
    let routes = snapshot
        .routes
        .into_iter()
        .map(|r| HostRoute {
            destination: r.destination,
            link: r.link,
            gateway: r.gateway,
        })
        .collect();
    HostFacts {
        hostname,
        links,
        addresses,
        routes,
        dns,
        firewall: Default::default(),
    }
}

/// The ruleset of the calling thread's namespace as [`host_firewall`] reads it (one read per
/// command, kept in the session), for callers that need nothing else of it: no sysctl and no
/// route table read. `None` when it cannot be read.
pub fn host_ruleset() -> Option<std::sync::Arc<serde_json::Value>> {
    crate::nft::Nft::new().list_ruleset_for_walk().ok()
}

/// The host's nftables ruleset (iptables-nft rules included) and whether bridged IPv4 frames
/// pass the IP hooks, in the calling thread's network namespace. Never an error: what could
/// not be read is said in `problem`, and the firewall rules are then not checked.
pub fn host_firewall() -> edgenet_core::host_firewall::HostFirewall {
    let bridge_nf_call_iptables = crate::sysctl::read(BRIDGE_NF_CALL_IPTABLES)
        .map(|v| v.trim() == "1")
        .unwrap_or(false);
    let (uplink, gateway) = std::fs::read_to_string("/proc/thread-self/net/route")
        .ok()
        .and_then(|t| default_route(&t))
        .unzip();
    match crate::nft::Nft::new().list_ruleset_for_walk() {
        Ok(ruleset) => edgenet_core::host_firewall::HostFirewall {
            // Read only in the rare case it matters (one process more otherwise).
            docker_user: edgenet_core::host_firewall::docker_user_out_of_order(&ruleset)
                .then(|| {
                    crate::iptables::list_rules(edgenet_core::host_firewall::DOCKER_USER)
                        .ok()
                        .flatten()
                })
                .flatten(),
            ruleset: Some(ruleset),
            bridge_nf_call_iptables,
            problem: None,
            uplink,
            gateway: gateway.flatten(),
        },
        Err(e) => edgenet_core::host_firewall::HostFirewall {
            ruleset: None,
            bridge_nf_call_iptables,
            problem: Some(e.to_string()),
            uplink,
            gateway: gateway.flatten(),
            docker_user: None,
        },
    }
}

/// The default route's interface and gateway from `/proc/net/route` (of the calling thread's
/// namespace): where the nodes' traffic leaves the host.
fn default_route(table: &str) -> Option<(String, Option<std::net::Ipv4Addr>)> {
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 8 || f[1] != "00000000" || f[7] != "00000000" {
            return None;
        }
        let gw = u32::from_str_radix(f[2], 16)
            .ok()
            .filter(|g| *g != 0)
            .map(|g| std::net::Ipv4Addr::from(g.swap_bytes()));
        Some((f[0].to_string(), gw))
    })
}

/// 1 when br_netfilter hands bridged IPv4 frames to the `ip` hooks (Docker loads it).
pub const BRIDGE_NF_CALL_IPTABLES: &str = "net.bridge.bridge-nf-call-iptables";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::{Address, Link, Route};
    use edgenet_core::mac::MacAddr;

    #[test]
    fn default_route_is_read_from_proc() {
        let t = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                 up0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n\
                 up0\t00000000\t010012C6\t0003\t0\t0\t0\t00000000\n";
        assert_eq!(
            default_route(t),
            Some(("up0".to_string(), Some("198.18.0.1".parse().unwrap())))
        );
        assert_eq!(default_route("Iface\n"), None);
    }

    #[test]
    fn snapshot_maps_onto_host_facts_with_wireless_from_sysfs() {
        let sysfs = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(sysfs.path().join("wlan0/phy80211")).unwrap();
        let paths = FactsPaths {
            sysfs_net: sysfs.path().to_path_buf(),
            ..FactsPaths::default()
        };
        let link = |index, name: &str| Link {
            index,
            name: name.into(),
            mtu: 1500,
            up: true,
            lower_up: false,
            mac: Some(MacAddr([2, 0, 0, 0, 0, index as u8])),
            kind: None,
            master_index: None,
            master: None,
            alias: None,
            group: 0,
            hairpin: false,
        };
        let mut port = link(3, "veth0");
        port.kind = Some("veth".into());
        port.master = Some("br0".into());
        let snapshot = Snapshot {
            links: vec![link(2, "wlan0"), port],
            addresses: vec![Address {
                link_index: 2,
                link: "wlan0".into(),
                address: "198.18.0.5/24".parse().unwrap(),
                broadcast: None,
            }],
            routes: vec![Route {
                destination: "0.0.0.0/0".parse().unwrap(),
                link_index: Some(2),
                link: Some("wlan0".into()),
                gateway: Some("198.18.0.1".parse().unwrap()),
                metric: Some(600),
                protocol: 3,
                kind: 1,
            }],
        };
        let facts = from_snapshot("m1".into(), snapshot, &paths, Default::default());
        let wlan = facts.link("wlan0").unwrap();
        assert!(wlan.wireless);
        assert_eq!(wlan.mac.as_deref(), Some("02:00:00:00:00:02"));
        let port = facts.link("veth0").unwrap();
        assert!(!port.wireless);
        assert_eq!(port.master.as_deref(), Some("br0"));
        assert_eq!(port.kind.as_deref(), Some("veth"));
        assert_eq!(facts.addresses[0].link, "wlan0");
        assert_eq!(facts.routes[0].gateway, Some("198.18.0.1".parse().unwrap()));
    }
}
