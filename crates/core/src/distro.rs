//! What each Kubernetes distribution reserves inside the cluster (SPEC §1).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::config::{Distribution, NetworkPlugin};

/// The Kubernetes-internal ranges of a distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubernetesRanges {
    /// The pod CIDR handed to the distribution.
    pub pod_cidr: Ipv4Net,
    /// What overlap checks treat as taken by pods (wider than `pod_cidr` for K8s, whose
    /// documented /24 is commonly grown to the /16).
    pub pod_reserved: Ipv4Net,
    pub service_cidr: Ipv4Net,
    pub cluster_dns: Ipv4Addr,
    pub network_plugin: NetworkPlugin,
}

const fn net(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    match Ipv4Net::new(Ipv4Addr::new(a, b, c, d), prefix) {
        Ok(n) => n,
        Err(_) => panic!("invalid constant network"),
    }
}

impl Distribution {
    pub fn ranges(self) -> KubernetesRanges {
        match self {
            Distribution::K3s => KubernetesRanges {
                pod_cidr: net(10, 42, 0, 0, 16),
                pod_reserved: net(10, 42, 0, 0, 16),
                service_cidr: net(10, 43, 0, 0, 16),
                cluster_dns: Ipv4Addr::new(10, 43, 0, 10),
                network_plugin: NetworkPlugin::Flannel,
            },
            Distribution::K8s => KubernetesRanges {
                pod_cidr: net(10, 244, 0, 0, 24),
                pod_reserved: net(10, 244, 0, 0, 16),
                service_cidr: net(10, 96, 0, 0, 12),
                cluster_dns: Ipv4Addr::new(10, 96, 0, 10),
                network_plugin: NetworkPlugin::Calico,
            },
        }
    }
}

impl KubernetesRanges {
    /// Ranges no switch subnet, service IP or endpoint may overlap, with their names.
    pub fn reserved(&self) -> [(&'static str, Ipv4Net); 2] {
        [
            ("pod CIDR", self.pod_reserved),
            ("service CIDR", self.service_cidr),
        ]
    }
}
