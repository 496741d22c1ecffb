//! Do the Kubernetes files on the node (or under `render --out DIR/<node>`) agree with the plan?

use std::path::Path;

use edgenet_core::config::Distribution;
use edgenet_core::plan::{NodePlan, NodeRole, Plan};
use edgenet_render::model::k3s::K3sConfig;
use edgenet_render::model::kubeadm::KubeadmDocument;
use edgenet_render::yaml;

use crate::report::Check;

const K3S_CONFIG: &str = "etc/rancher/k3s/config.yaml";
const K3S_RESOLV: &str = "etc/rancher/k3s/resolv.conf";
const KUBEADM: &str = "etc/kubernetes/edgenet/kubeadm.yaml";
const KUBELET_RESOLV: &str = "etc/kubernetes/edgenet/resolv.conf";

/// Differences between the files under `root` and the plan; `None` when no file is there.
pub fn differences(plan: &Plan, node: &NodePlan, root: &Path) -> Option<Vec<String>> {
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).ok();
    let mut diffs = Vec::new();
    let mut any = false;
    let addr = node.address.addr().to_string();
    let endpoint = format!(
        "{}:{}",
        plan.control_plane_endpoint,
        edgenet_render::API_PORT
    );
    let k = &plan.kubernetes;
    let mut expect = |what: &str, have: Option<String>, want: String| {
        if have.as_deref() != Some(want.as_str()) {
            diffs.push(format!(
                "{what} is {}, the plan says {want}",
                have.unwrap_or_else(|| "missing".into())
            ));
        }
    };
    let resolv_file = match plan.distribution {
        Distribution::K3s => {
            if let Some(text) = read(K3S_CONFIG) {
                any = true;
                match yaml::from_yaml::<K3sConfig>(&text) {
                    Err(e) => expect(
                        K3S_CONFIG,
                        Some(format!("unreadable ({e})")),
                        "a K3s config".into(),
                    ),
                    Ok(c) => {
                        expect("node-ip", c.node_ip.first().cloned(), addr.clone());
                        expect("node-name", c.node_name.clone(), node.name.clone());
                        if let Some(server) = c.server.clone() {
                            expect("server", Some(server), format!("https://{endpoint}"));
                        }
                        if node.role == NodeRole::ControlPlane {
                            expect(
                                "cluster-cidr",
                                c.cluster_cidr.clone(),
                                k.pod_cidr.to_string(),
                            );
                            expect(
                                "service-cidr",
                                c.service_cidr.clone(),
                                k.service_cidr.to_string(),
                            );
                            expect(
                                "cluster-dns",
                                c.cluster_dns.clone(),
                                k.cluster_dns.to_string(),
                            );
                            let san = plan.control_plane_endpoint.to_string();
                            expect(
                                "tls-san",
                                c.tls_san.iter().find(|s| **s == san).cloned(),
                                san,
                            );
                        }
                    }
                }
            }
            K3S_RESOLV
        }
        Distribution::K8s => {
            if let Some(text) = read(KUBEADM) {
                any = true;
                match yaml::from_yaml_documents::<KubeadmDocument>(&text) {
                    Err(e) => expect(
                        KUBEADM,
                        Some(format!("unreadable ({e})")),
                        "kubeadm v1beta4 documents".into(),
                    ),
                    Ok(docs) => {
                        for doc in docs {
                            match doc {
                                KubeadmDocument::Init(i) => {
                                    expect(
                                        "advertiseAddress",
                                        Some(i.local_api_endpoint.advertise_address),
                                        addr.clone(),
                                    );
                                    expect(
                                        "node-ip",
                                        i.node_registration
                                            .kubelet_extra_args
                                            .iter()
                                            .find(|a| a.name == "node-ip")
                                            .map(|a| a.value.clone()),
                                        addr.clone(),
                                    );
                                }
                                KubeadmDocument::Cluster(c) => {
                                    expect(
                                        "controlPlaneEndpoint",
                                        Some(c.control_plane_endpoint),
                                        endpoint.clone(),
                                    );
                                    expect(
                                        "podSubnet",
                                        Some(c.networking.pod_subnet),
                                        k.pod_cidr.to_string(),
                                    );
                                    expect(
                                        "serviceSubnet",
                                        Some(c.networking.service_subnet),
                                        k.service_cidr.to_string(),
                                    );
                                }
                                KubeadmDocument::Join(j) => {
                                    expect(
                                        "apiServerEndpoint",
                                        Some(j.discovery.bootstrap_token.api_server_endpoint),
                                        endpoint.clone(),
                                    );
                                    expect(
                                        "node-ip",
                                        j.node_registration
                                            .kubelet_extra_args
                                            .iter()
                                            .find(|a| a.name == "node-ip")
                                            .map(|a| a.value.clone()),
                                        addr.clone(),
                                    );
                                }
                                KubeadmDocument::Kubelet(kc) => {
                                    expect(
                                        "clusterDNS",
                                        kc.cluster_dns.first().cloned(),
                                        k.cluster_dns.to_string(),
                                    );
                                }
                            }
                        }
                    }
                }
            }
            KUBELET_RESOLV
        }
    };
    if let Some(text) = read(resolv_file) {
        any = true;
        let have: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("nameserver "))
            .map(|s| s.trim().to_string())
            .collect();
        let want: Vec<String> = node
            .dns_servers
            .iter()
            .filter(|s| !s.is_loopback())
            .map(|s| s.to_string())
            .collect();
        if have != want {
            diffs.push(format!(
                "{resolv_file} names {have:?}, the plan's DNS servers are {want:?}"
            ));
        }
    }
    any.then_some(diffs)
}

pub fn check(plan: &Plan, node: &NodePlan, root: &Path) -> Check {
    let scope = node.name.as_str();
    match differences(plan, node, root) {
        None => Check::skip(scope, "rendered-files", format!("no rendered Kubernetes files under {}", root.display())),
        Some(d) if d.is_empty() => Check::pass(scope, "rendered-files", format!("the files under {} agree with the plan", root.display())),
        Some(d) => Check::fail(
            scope,
            "rendered-files",
            d.join("; "),
            "edgenet render --out DIR again and install the files (README), then restart K3s or the kubelet",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgenet_core::config::load;
    use edgenet_core::plan;
    use edgenet_core::validate::Context;
    use edgenet_render::{render, RenderOptions};

    fn plan_of(distribution: &str) -> Plan {
        let config = serde_json::json!({
            "Network": {"DnsServers": ["192.0.2.53"], "Ip4AddressPrefix": "192.168.77.0/24"},
            "Machines": [{"LinuxNode": {}}],
            "Edgenet": {"Distribution": distribution, "MachineName": "edge01"}
        });
        let loaded = load(config.to_string().as_bytes()).unwrap();
        plan::build(&loaded.config, &Context::offline("test", "edge01")).unwrap()
    }

    #[test]
    fn rendered_files_agree_until_one_is_edited() {
        for distribution in ["k3s", "k8s"] {
            let plan = plan_of(distribution);
            let node = &plan.nodes[0];
            let dir = tempfile::tempdir().unwrap();
            assert_eq!(
                differences(&plan, node, dir.path()),
                None,
                "no files: not judged"
            );
            let r = render(&plan, &RenderOptions::default()).unwrap();
            for f in r.files.iter().filter(|f| f.node == node.name) {
                let path = dir.path().join(f.path.trim_start_matches('/'));
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &f.contents).unwrap();
            }
            assert_eq!(
                differences(&plan, node, dir.path()),
                Some(vec![]),
                "{distribution}"
            );
            let resolv = if distribution == "k3s" {
                K3S_RESOLV
            } else {
                KUBELET_RESOLV
            };
            std::fs::write(dir.path().join(resolv), "nameserver 8.8.8.8\n").unwrap();
            let diffs = differences(&plan, node, dir.path()).unwrap();
            assert_eq!(diffs.len(), 1, "{diffs:?}");
            assert!(diffs[0].contains("8.8.8.8") && diffs[0].contains("192.0.2.53"));
        }
    }
}
