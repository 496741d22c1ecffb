//! Calico's operator `Installation` (`operator.tigera.io/v1`), the fields edgenet sets.

use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "operator.tigera.io/v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Installation {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: InstallationSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstallationSpec {
    pub calico_network: CalicoNetwork,
    /// The cluster's service range: required by Calico for Windows (the operator gives it to
    /// the Windows nodes' kube-proxy/HNS setup). Set only when the plan has a Windows node.
    #[serde(
        default,
        rename = "serviceCIDRs",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_cidrs: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CalicoNetwork {
    /// `Enabled` / `Disabled`: VXLAN needs no BGP.
    pub bgp: String,
    /// Omitted: Calico detects it from the node's interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    pub node_address_autodetection_v4: NodeAddressAutodetection,
    pub ip_pools: Vec<IpPool>,
    /// `HNS`: the operator also installs Calico on Windows nodes. Set only with a Windows node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_dataplane: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeAddressAutodetection {
    /// The node's interface by name: Linux-only clusters (no Windows interface has it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The first address inside one of these: valid on Linux and Windows nodes alike
    /// (`CIDRS []string json:"cidrs"` in the operator's type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidrs: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpPool {
    pub name: String,
    pub cidr: String,
    pub block_size: u8,
    pub encapsulation: String,
    pub nat_outgoing: String,
    pub node_selector: String,
}
