//! `/etc/rancher/k3s/config.yaml`: K3s's command-line flags as YAML keys (the flag without `--`;
//! repeatable flags become lists).

use serde::{Deserialize, Serialize};

/// The keys edgenet writes. Which of them a node may carry depends on its role: an agent given a
/// server-only key refuses to start, so [`K3sConfig::server_only_keys`] names them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct K3sConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_init: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_ip: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_address: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_san: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_dns: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flannel_iface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flannel_backend: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disable: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolv_conf: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubelet_arg: Vec<String>,
}

impl K3sConfig {
    /// Keys set in this file (as K3s spells them), for checks against K3s's flag lists.
    pub fn keys(&self) -> Vec<String> {
        let value = serde_json::to_value(self).expect("a K3s config serialises");
        value
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Keys edgenet writes only on servers.
    pub fn server_only_keys() -> &'static [&'static str] {
        &[
            "cluster-init",
            "advertise-address",
            "tls-san",
            "cluster-cidr",
            "service-cidr",
            "cluster-dns",
            "cluster-domain",
            "flannel-backend",
            "disable",
        ]
    }
}
