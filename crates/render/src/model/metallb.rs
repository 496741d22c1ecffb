//! MetalLB `metallb.io/v1beta1` `IPAddressPool` and `L2Advertisement`.

use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "metallb.io/v1beta1";
pub const NAMESPACE: &str = "metallb-system";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    pub name: String,
    pub namespace: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpAddressPool {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: IpAddressPoolSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpAddressPoolSpec {
    pub addresses: Vec<String>,
    pub auto_assign: bool,
    #[serde(rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L2Advertisement {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: L2AdvertisementSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L2AdvertisementSpec {
    pub ip_address_pools: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
}
