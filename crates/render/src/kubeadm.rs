//! kubeadm (distribution k8s): v1beta4 Init/Cluster/Join configurations, KubeletConfiguration,
//! the kube-vip static pod, Calico's Installation, the LoadBalancer range and containerd's proxy.

use edgenet_core::plan::{NodePlan, NodeRole, Plan};

use crate::lb::{kube_vip_role, kube_vip_static_pod, lb_documents};
use crate::model::calico::{
    self, CalicoNetwork, Installation, InstallationSpec, IpPool, NodeAddressAutodetection,
};
use crate::model::kubeadm::*;
use crate::node_files::{proxy_dropin, resolv_conf};
use crate::yaml::{to_yaml, to_yaml_documents};
use crate::{
    endpoint, is_first_server, node_file, RenderError, RenderOptions, RenderedFile, API_PORT,
    PLACEHOLDER,
};

pub const CONFIG: &str = "/etc/kubernetes/edgenet/kubeadm.yaml";
pub const RESOLV: &str = "/etc/kubernetes/edgenet/resolv.conf";
pub const KUBE_VIP: &str = "/etc/kubernetes/manifests/kube-vip.yaml";
pub const ADDONS: &str = "/etc/kubernetes/edgenet/addons";
pub const CONTAINERD_PROXY: &str = "/etc/systemd/system/containerd.service.d/http-proxy.conf";

/// VXLAN's overhead on IPv4 (tigera docs, "Configure MTU").
pub const VXLAN_OVERHEAD: u32 = 50;

pub fn ca_cert_hash(opts: &RenderOptions) -> String {
    opts.ca_cert_hash
        .clone()
        .unwrap_or_else(|| format!("sha256:{PLACEHOLDER}-ca-cert-hash"))
}

fn token(opts: &RenderOptions) -> String {
    opts.token.clone().unwrap_or_else(crate::token_placeholder)
}

fn registration(node: &NodePlan) -> NodeRegistration {
    NodeRegistration {
        name: node.name.clone(),
        cri_socket: Some("unix:///run/containerd/containerd.sock".to_string()),
        kubelet_extra_args: vec![Arg::new("node-ip", node.address.addr().to_string())],
    }
}

/// Calico's IPAM block size for a pool: 16 blocks at least, so that a small pool (the seed's
/// 10.244.0.0/24) still gives every node blocks of its own; /26 (Calico's default) for big pools.
pub fn calico_block_size(pod_prefix: u8) -> u8 {
    (pod_prefix + 4).clamp(26, 30)
}

pub fn init_documents(
    plan: &Plan,
    node: &NodePlan,
    opts: &RenderOptions,
) -> (
    InitConfiguration,
    ClusterConfiguration,
    KubeletConfiguration,
) {
    let k = &plan.kubernetes;
    let init = InitConfiguration {
        api_version: KUBEADM_API_VERSION.to_string(),
        kind: "InitConfiguration".to_string(),
        bootstrap_tokens: opts
            .token
            .iter()
            .map(|t| BootstrapToken {
                token: t.clone(),
                description: Some("edgenet render --token-file".to_string()),
                ttl: Some("24h0m0s".to_string()),
            })
            .collect(),
        local_api_endpoint: ApiEndpoint {
            advertise_address: node.address.addr().to_string(),
            bind_port: API_PORT,
        },
        node_registration: registration(node),
    };
    let cluster = ClusterConfiguration {
        api_version: KUBEADM_API_VERSION.to_string(),
        kind: "ClusterConfiguration".to_string(),
        control_plane_endpoint: endpoint(plan),
        networking: Networking {
            pod_subnet: k.pod_cidr.to_string(),
            service_subnet: k.service_cidr.to_string(),
            dns_domain: "cluster.local".to_string(),
        },
        api_server: ApiServer {
            cert_sans: vec![plan.control_plane_endpoint.to_string()],
        },
        // Calico's IPAM hands out pod addresses; the controller manager's per-node /24s would
        // cover only one node of a /24 pool and log CIDRNotAvailable for every other.
        controller_manager: Some(ControlPlaneComponent {
            extra_args: vec![Arg::new("allocate-node-cidrs", "false")],
        }),
    };
    (init, cluster, kubelet(plan, node))
}

pub fn kubelet(plan: &Plan, node: &NodePlan) -> KubeletConfiguration {
    KubeletConfiguration {
        api_version: KUBELET_API_VERSION.to_string(),
        kind: "KubeletConfiguration".to_string(),
        cluster_dns: vec![plan.kubernetes.cluster_dns.to_string()],
        cluster_domain: "cluster.local".to_string(),
        resolv_conf: crate::has_dns(plan, node).then(|| RESOLV.to_string()),
    }
}

pub fn join_document(plan: &Plan, node: &NodePlan, opts: &RenderOptions) -> JoinConfiguration {
    JoinConfiguration {
        api_version: KUBEADM_API_VERSION.to_string(),
        kind: "JoinConfiguration".to_string(),
        discovery: Discovery {
            bootstrap_token: BootstrapTokenDiscovery {
                api_server_endpoint: endpoint(plan),
                token: token(opts),
                ca_cert_hashes: vec![ca_cert_hash(opts)],
            },
        },
        control_plane: (node.role == NodeRole::ControlPlane).then(|| JoinControlPlane {
            local_api_endpoint: ApiEndpoint {
                advertise_address: node.address.addr().to_string(),
                bind_port: API_PORT,
            },
            certificate_key: format!("{PLACEHOLDER}-certificate-key"),
        }),
        node_registration: registration(node),
    }
}

pub fn calico_installation(plan: &Plan, opts: &RenderOptions) -> Installation {
    let pod = plan.kubernetes.pod_cidr;
    // Calico's operator install for Windows: the HNS dataplane and the service range.
    let windows = plan
        .nodes
        .iter()
        .any(|n| n.kind == edgenet_core::plan::NodeKind::Windows);
    Installation {
        api_version: calico::API_VERSION.to_string(),
        kind: "Installation".to_string(),
        metadata: calico::Metadata {
            name: "default".to_string(),
            namespace: None,
        },
        spec: InstallationSpec {
            calico_network: CalicoNetwork {
                bgp: "Disabled".to_string(),
                mtu: plan.switch.mtu.map(|m| m.saturating_sub(VXLAN_OVERHEAD)),
                // The setting is cluster-wide and reaches calico-node-windows too, whose
                // adapter is `Ethernet`, never the Linux interface name (B21 N8): with a
                // Windows node, the switch's subnet, where every node's address lies.
                node_address_autodetection_v4: if windows {
                    NodeAddressAutodetection {
                        interface: None,
                        cidrs: Some(vec![plan.switch.subnet.trunc().to_string()]),
                    }
                } else {
                    NodeAddressAutodetection {
                        interface: Some(opts.node_interface.clone()),
                        cidrs: None,
                    }
                },
                ip_pools: vec![IpPool {
                    name: "default-ipv4-ippool".to_string(),
                    cidr: pod.to_string(),
                    block_size: calico_block_size(pod.prefix_len()),
                    encapsulation: "VXLAN".to_string(),
                    nat_outgoing: "Enabled".to_string(),
                    node_selector: "all()".to_string(),
                }],
                windows_dataplane: windows.then(|| "HNS".to_string()),
            },
            service_cidrs: windows.then(|| vec![plan.kubernetes.service_cidr.to_string()]),
        },
    }
}

pub fn linux_node(
    plan: &Plan,
    node: &NodePlan,
    opts: &RenderOptions,
) -> Result<Vec<RenderedFile>, RenderError> {
    let first = is_first_server(node, opts);
    let docs = if first {
        let (init, cluster, kubelet) = init_documents(plan, node, opts);
        vec![to_yaml(&init), to_yaml(&cluster), to_yaml(&kubelet)]
    } else {
        vec![to_yaml(&join_document(plan, node, opts))]
    };
    let consumer = if first {
        "kubeadm init --config"
    } else {
        "kubeadm join --config"
    };
    let mut files =
        vec![node_file(node, CONFIG, "kubeadm", consumer, to_yaml_documents(&docs)).secret()];
    if crate::has_dns(plan, node) {
        files.push(node_file(
            node,
            RESOLV,
            "resolv",
            "kubelet (resolvConf)",
            resolv_conf(plan, node)?,
        ));
    }
    files.extend([node_file(
        node,
        CONTAINERD_PROXY,
        "proxy-env",
        "containerd (systemd drop-in)",
        proxy_dropin(node),
    )]);
    if node.role == NodeRole::ControlPlane {
        if let Some(role) = kube_vip_role(plan, opts) {
            files.push(node_file(
                node,
                KUBE_VIP,
                "kube-vip",
                "kubelet (static pod)",
                to_yaml(&kube_vip_static_pod(plan, opts, role, first)),
            ));
        }
    }
    if first {
        files.push(node_file(
            node,
            &format!("{ADDONS}/calico-installation.yaml"),
            "calico",
            "kubectl apply (Tigera operator)",
            to_yaml(&calico_installation(plan, opts)),
        ));
        let lb = lb_documents(plan, opts);
        if !lb.is_empty() {
            files.push(node_file(
                node,
                &format!("{ADDONS}/service-range.yaml"),
                "lb",
                "kubectl apply (LoadBalancer range)",
                to_yaml_documents(&lb),
            ));
        }
    }
    Ok(files)
}
