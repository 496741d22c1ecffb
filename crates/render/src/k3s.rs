//! K3s: `config.yaml` per node (server or agent keys), its resolv.conf, token file, proxy
//! environment file and server manifests (kube-vip, LoadBalancer range).

use edgenet_core::plan::{NodePlan, NodeRole, Plan};

use crate::lb::{kube_vip_daemonset_documents, kube_vip_role, lb_documents};
use crate::model::k3s::K3sConfig;
use crate::node_files::{proxy_env_file, resolv_conf};
use crate::yaml::{to_yaml, to_yaml_documents};
use crate::{
    endpoint, is_first_server, node_file, service_range_text, RenderError, RenderOptions,
    RenderedFile,
};

pub const CONFIG: &str = "/etc/rancher/k3s/config.yaml";
pub const RESOLV: &str = "/etc/rancher/k3s/resolv.conf";
pub const TOKEN: &str = "/etc/rancher/k3s/edgenet-token";
pub const SERVER_ENV: &str = "/etc/systemd/system/k3s.service.env";
pub const AGENT_ENV: &str = "/etc/systemd/system/k3s-agent.service.env";
pub const MANIFESTS: &str = "/var/lib/rancher/k3s/server/manifests";

/// The config of one Linux node.
pub fn config(plan: &Plan, node: &NodePlan, opts: &RenderOptions) -> K3sConfig {
    let server = node.role == NodeRole::ControlPlane;
    let first = is_first_server(node, opts);
    let address = node.address.addr().to_string();
    let mut c = K3sConfig {
        node_name: Some(node.name.clone()),
        node_ip: vec![address.clone()],
        flannel_iface: Some(opts.node_interface.clone()),
        resolv_conf: crate::has_dns(plan, node).then(|| RESOLV.to_string()),
        // The first server generates a token when none is given; everyone else needs it.
        token_file: (!first || opts.token.is_some()).then(|| TOKEN.to_string()),
        server: (!first).then(|| format!("https://{}", endpoint(plan))),
        ..Default::default()
    };
    if server {
        let k = &plan.kubernetes;
        c.cluster_init = first.then_some(true);
        c.advertise_address = Some(address);
        c.tls_san = vec![plan.control_plane_endpoint.to_string()];
        c.cluster_cidr = Some(k.pod_cidr.to_string());
        c.service_cidr = Some(k.service_cidr.to_string());
        c.cluster_dns = Some(k.cluster_dns.to_string());
        c.cluster_domain = Some("cluster.local".to_string());
        c.flannel_backend = Some("vxlan".to_string());
        // Klipper (servicelb) would answer with node IPs; the range is kube-vip's or MetalLB's.
        if service_range_text(plan).is_some() {
            c.disable = vec!["servicelb".to_string()];
        }
    }
    c
}

pub fn linux_node(
    plan: &Plan,
    node: &NodePlan,
    opts: &RenderOptions,
) -> Result<Vec<RenderedFile>, RenderError> {
    let server = node.role == NodeRole::ControlPlane;
    let program = if server { "K3s server" } else { "K3s agent" };
    let c = config(plan, node, opts);
    let mut files = vec![node_file(node, CONFIG, "k3s-config", program, to_yaml(&c))];
    if c.resolv_conf.is_some() {
        files.push(node_file(
            node,
            RESOLV,
            "resolv",
            "kubelet (K3s resolv-conf)",
            resolv_conf(plan, node)?,
        ));
    }
    if c.token_file.is_some() {
        let token = opts.token.clone().unwrap_or_else(crate::token_placeholder);
        files.push(node_file(node, TOKEN, "k3s-token", program, format!("{token}\n")).secret());
    }
    files.push(node_file(
        node,
        if server { SERVER_ENV } else { AGENT_ENV },
        "proxy-env",
        &format!("{program} and its containerd (systemd EnvironmentFile)"),
        proxy_env_file(node, true),
    ));
    if server {
        if let Some(role) = kube_vip_role(plan, opts) {
            files.push(node_file(
                node,
                &format!("{MANIFESTS}/edgenet-kube-vip.yaml"),
                "kube-vip",
                "K3s deploy controller (kube-vip DaemonSet and RBAC)",
                to_yaml_documents(&kube_vip_daemonset_documents(plan, opts, role)),
            ));
        }
        let lb = lb_documents(plan, opts);
        if !lb.is_empty() {
            files.push(node_file(
                node,
                &format!("{MANIFESTS}/edgenet-service-range.yaml"),
                "lb",
                "K3s deploy controller (LoadBalancer range)",
                to_yaml_documents(&lb),
            ));
        }
    }
    Ok(files)
}
