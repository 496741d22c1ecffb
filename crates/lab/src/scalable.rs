//! Scalable clusters in the lab: where a `ScalableCluster` config for the lab's LAN puts its
//! nodes ([`ScalableLayout`]), and the config itself ([`scalable_config`]).
//!
//! Every node of a scalable cluster is directly on the LAN with a static address, the LAN
//! router as its gateway and the LAN DNS as its DNS server. The addresses never collide with
//! the lab's own (router `198.18.0.1`, machines `198.18.0.(10 + N)` — past 200 machines
//! `198.18.3.(N - 200)` —, peer `198.18.0.254`):
//!
//! | machines | prefix | control plane | Linux node of machine N | Windows node of machine N | services (10) |
//! |---|---|---|---|---|---|
//! | 1 ..= 40 | /24 | 198.18.0.100 | 198.18.0.(100 + N) | 198.18.0.(150 + N) | 198.18.0.200 … .209 |
//! | 41 ..= 255 | /22 | 198.18.3.100 | 198.18.1.N | 198.18.2.N | 198.18.3.200 … .209 |
//!
//! The compact layout (up to [`COMPACT_MAX_MACHINES`]) keeps the whole cluster in
//! 198.18.0.0/24, the first /24 of the lab's /22 LAN, where machines take `.11` … `.50`. Past
//! that, machine addresses (`.11` … `.210`) would run into the nodes, so the wide layout
//! uses the whole /22 LAN: one /24 for Linux nodes, one for Windows nodes, one for the
//! control-plane endpoint and the services. Everything stays in 198.18.0.0/15.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{json, Value};

use crate::topology::{deployed_machine_name, machine_name, ADAPTER, LAN_ROUTER};

/// Most machines whose scalable config uses the compact /24 layout.
pub const COMPACT_MAX_MACHINES: u8 = 40;
/// Size of the LoadBalancer service range of a lab's scalable config.
pub const SERVICE_RANGE_SIZE: u8 = 10;

/// Addressing of a scalable config for a lab of `machines` machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalableLayout {
    machines: u8,
}

impl ScalableLayout {
    pub fn new(machines: u8) -> Self {
        ScalableLayout { machines }
    }

    pub fn machines(&self) -> u8 {
        self.machines
    }

    /// Whether the compact /24 layout is used (at most [`COMPACT_MAX_MACHINES`] machines).
    pub fn is_compact(&self) -> bool {
        self.machines <= COMPACT_MAX_MACHINES
    }

    /// `Network.Ip4PrefixLength`.
    pub fn prefix_len(&self) -> u8 {
        if self.is_compact() {
            24
        } else {
            22
        }
    }

    /// The nodes' subnet: `Ip4GatewayAddress/Ip4PrefixLength`.
    pub fn subnet(&self) -> Ipv4Net {
        Ipv4Net::new(LAN_ROUTER, self.prefix_len())
            .expect("24 and 22 are valid prefixes")
            .trunc()
    }

    /// `Network.Ip4GatewayAddress`: the LAN router.
    pub fn gateway(&self) -> Ipv4Addr {
        LAN_ROUTER
    }

    /// `Network.DnsServers`: the LAN DNS (a forwarder on the router).
    pub fn dns(&self) -> Ipv4Addr {
        LAN_ROUTER
    }

    /// `Network.ControlPlaneEndpointIp`.
    pub fn control_plane_endpoint(&self) -> Ipv4Addr {
        if self.is_compact() {
            Ipv4Addr::new(198, 18, 0, 100)
        } else {
            Ipv4Addr::new(198, 18, 3, 100)
        }
    }

    /// `Init.ServiceIPRangeStart`; the range has [`SERVICE_RANGE_SIZE`] addresses.
    pub fn service_range_start(&self) -> Ipv4Addr {
        if self.is_compact() {
            Ipv4Addr::new(198, 18, 0, 200)
        } else {
            Ipv4Addr::new(198, 18, 3, 200)
        }
    }

    /// Every address of the service range.
    pub fn service_range(&self) -> impl Iterator<Item = Ipv4Addr> {
        let start = u32::from(self.service_range_start());
        (0..u32::from(SERVICE_RANGE_SIZE)).map(move |i| Ipv4Addr::from(start + i))
    }

    /// The Linux node of machine `index` (1-based, as [`crate::LabMachine::index`]).
    ///
    /// # Panics
    /// When `index` is 0.
    pub fn linux_node(&self, index: u8) -> Ipv4Addr {
        assert!(index > 0, "machine indexes start at 1");
        if self.is_compact() {
            Ipv4Addr::new(198, 18, 0, 100 + index)
        } else {
            Ipv4Addr::new(198, 18, 1, index)
        }
    }

    /// The Windows node of machine `index` (1-based).
    ///
    /// # Panics
    /// When `index` is 0.
    pub fn windows_node(&self, index: u8) -> Ipv4Addr {
        assert!(index > 0, "machine indexes start at 1");
        if self.is_compact() {
            Ipv4Addr::new(198, 18, 0, 150 + index)
        } else {
            Ipv4Addr::new(198, 18, 2, index)
        }
    }
}

/// An AKS-Edge-Essentials-style `ScalableCluster` config for a lab of `machines` machines on
/// the lab's LAN (layout in [`ScalableLayout`]): `Machines[i]` is lab machine `m<i+1>` with
/// adapter `eth0` and a Linux node (plus a Windows node when `windows`); only the first
/// machine's Linux node is a control-plane node, so the cluster has exactly one. The nodes
/// use the netns runtime. `machines == 0` gives a config without machines, which `check`
/// refuses.
pub fn scalable_config(machines: u8, windows: bool) -> Value {
    let layout = ScalableLayout::new(machines);
    let list: Vec<Value> = (1..=machines)
        .map(|index| {
            let mut machine = json!({
                "MachineName": machine_name(index),
                "NetworkConnection": { "AdapterName": ADAPTER },
                "LinuxNode": {
                    "Ip4Address": layout.linux_node(index).to_string(),
                    "ControlPlane": index == 1,
                },
            });
            if windows {
                machine["WindowsNode"] = json!({
                    "Ip4Address": layout.windows_node(index).to_string(),
                });
            }
            machine
        })
        .collect();
    json!({
        "SchemaVersion": "1.14",
        "Version": "1.0",
        "DeploymentType": "ScalableCluster",
        "Init": {
            "ServiceIPRangeStart": layout.service_range_start().to_string(),
            "ServiceIPRangeSize": SERVICE_RANGE_SIZE,
        },
        "Network": {
            "ControlPlaneEndpointIp": layout.control_plane_endpoint().to_string(),
            "Ip4GatewayAddress": layout.gateway().to_string(),
            "Ip4PrefixLength": layout.prefix_len(),
            "DnsServers": [layout.dns().to_string()],
        },
        "Machines": list,
        "Edgenet": { "NodeRuntime": "netns" },
    })
}

/// [`scalable_config`] as `edgenet lab up --scalable` deploys it in lab `lab`: machine `m<i>`
/// is named [`deployed_machine_name`] (`<lab>-m<i>`), so its nodes and their namespaces carry
/// the lab's name.
pub fn lab_scalable_config(lab: &str, machines: u8, windows: bool) -> Value {
    let mut config = scalable_config(machines, windows);
    if let Some(list) = config["Machines"].as_array_mut() {
        for (index, machine) in (1..=machines).zip(list) {
            machine["MachineName"] = deployed_machine_name(lab, &machine_name(index)).into();
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::topology::{machine_address, LAN_PEER, LAN_SUBNET, MAX_MACHINES};

    fn ip(v: &Value) -> Ipv4Addr {
        v.as_str()
            .expect("an address string")
            .parse()
            .expect("an address")
    }

    #[test]
    fn three_machines_use_the_compact_layout() {
        let c = scalable_config(3, true);
        assert_eq!(c["DeploymentType"], "ScalableCluster");
        assert_eq!(c["Network"]["Ip4GatewayAddress"], "198.18.0.1");
        assert_eq!(c["Network"]["Ip4PrefixLength"], 24);
        assert_eq!(c["Network"]["ControlPlaneEndpointIp"], "198.18.0.100");
        assert_eq!(c["Network"]["DnsServers"], json!(["198.18.0.1"]));
        assert_eq!(c["Init"]["ServiceIPRangeStart"], "198.18.0.200");
        assert_eq!(c["Init"]["ServiceIPRangeSize"], 10);
        let machines = c["Machines"].as_array().unwrap();
        assert_eq!(machines.len(), 3);
        for (i, m) in machines.iter().enumerate() {
            assert_eq!(m["MachineName"], format!("m{}", i + 1));
            assert_eq!(m["NetworkConnection"]["AdapterName"], "eth0");
            assert_eq!(
                m["LinuxNode"]["Ip4Address"],
                format!("198.18.0.{}", 101 + i)
            );
            assert_eq!(m["LinuxNode"]["ControlPlane"], i == 0);
            assert_eq!(
                m["WindowsNode"]["Ip4Address"],
                format!("198.18.0.{}", 151 + i)
            );
        }
        assert!(scalable_config(3, false)["Machines"][0]
            .get("WindowsNode")
            .is_none());
    }

    /// For every lab size: every address of the config (nodes, endpoint, services) is in the
    /// config's subnet and the lab's LAN, is neither network, broadcast nor gateway, and no
    /// two of them or of the lab's own addresses (router, machines, peer) are equal.
    #[test]
    fn addresses_never_collide_with_each_other_or_the_lab() {
        let bench: Ipv4Net = "198.18.0.0/15".parse().unwrap();
        for machines in 1..=u8::MAX {
            let layout = ScalableLayout::new(machines);
            let c = scalable_config(machines, true);
            let subnet = Ipv4Net::new(
                ip(&c["Network"]["Ip4GatewayAddress"]),
                c["Network"]["Ip4PrefixLength"].as_u64().unwrap() as u8,
            )
            .unwrap()
            .trunc();
            assert_eq!(subnet, layout.subnet());
            assert!(LAN_SUBNET.contains(&subnet), "{subnet}");
            let mut owners: HashMap<Ipv4Addr, String> = HashMap::new();
            let mut claim = |a: Ipv4Addr, who: String| {
                if let Some(before) = owners.insert(a, who.clone()) {
                    panic!("{machines} machines: {a} is both {before} and {who}");
                }
            };
            claim(LAN_ROUTER, "router".into());
            claim(LAN_PEER, "peer".into());
            for i in 1..=machines {
                claim(machine_address(i), format!("machine {i}"));
            }
            let mut cluster = vec![ip(&c["Network"]["ControlPlaneEndpointIp"])];
            let start = u32::from(ip(&c["Init"]["ServiceIPRangeStart"]));
            let size = c["Init"]["ServiceIPRangeSize"].as_u64().unwrap() as u32;
            cluster.extend((0..size).map(|i| Ipv4Addr::from(start + i)));
            for m in c["Machines"].as_array().unwrap() {
                cluster.push(ip(&m["LinuxNode"]["Ip4Address"]));
                cluster.push(ip(&m["WindowsNode"]["Ip4Address"]));
            }
            assert_eq!(cluster.len(), 1 + 10 + 2 * machines as usize);
            for (n, a) in cluster.into_iter().enumerate() {
                assert!(
                    subnet.contains(&a),
                    "{machines} machines: {a} not in {subnet}"
                );
                assert!(bench.contains(&a));
                assert!(a != subnet.network() && a != subnet.broadcast(), "{a}");
                claim(a, format!("cluster address #{n}"));
            }
            let control_planes = c["Machines"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["LinuxNode"]["ControlPlane"] == true)
                .count();
            assert_eq!(control_planes, 1);
        }
    }

    #[test]
    fn past_forty_machines_the_wide_layout_is_used() {
        assert!(ScalableLayout::new(COMPACT_MAX_MACHINES).is_compact());
        let wide = ScalableLayout::new(COMPACT_MAX_MACHINES + 1);
        assert!(!wide.is_compact());
        assert_eq!(wide.subnet(), "198.18.0.0/22".parse::<Ipv4Net>().unwrap());
        assert_eq!(wide.linux_node(50), Ipv4Addr::new(198, 18, 1, 50));
        assert_eq!(wide.windows_node(50), Ipv4Addr::new(198, 18, 2, 50));
        let c = scalable_config(50, false);
        assert_eq!(c["Network"]["Ip4PrefixLength"], 22);
        assert_eq!(c["Machines"][49]["MachineName"], "m50");
    }

    /// The config passes edgenet's own offline `check` (whole-cluster rules included) for
    /// small and large labs, with and without Windows nodes.
    #[test]
    fn the_config_passes_check() {
        use edgenet_core::validate::{check, Context, Severity};
        for machines in [1, 3, 10, COMPACT_MAX_MACHINES, 50, MAX_MACHINES] {
            for windows in [false, true] {
                let bytes = serde_json::to_vec(&scalable_config(machines, windows)).unwrap();
                let loaded = edgenet_core::config::load(&bytes).unwrap();
                let findings = check(&loaded, &Context::offline("unit test", "lab"));
                let errors: Vec<_> = findings
                    .iter()
                    .filter(|f| f.severity == Severity::Error)
                    .collect();
                assert!(errors.is_empty(), "{machines} machines: {errors:#?}");
            }
        }
    }
}
