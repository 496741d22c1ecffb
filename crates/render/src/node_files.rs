//! Files shared by distributions: the kubelet's resolv.conf, proxy environments, and what a
//! Windows node gets.

use edgenet_core::config::Distribution;
use edgenet_core::plan::{NodePlan, Plan};

use crate::model::k3s::K3sConfig;
use crate::model::kubeadm::{
    self, Arg, BootstrapTokenDiscovery, Discovery, JoinConfiguration, NodeRegistration,
};
use crate::yaml::to_yaml;
use crate::{endpoint, node_file, usable_dns, RenderError, RenderOptions, RenderedFile};

/// resolv.conf with the planned DNS servers (never a loopback stub), and the host's search
/// list and options the plan carries.
pub fn resolv_conf(plan: &Plan, node: &NodePlan) -> Result<String, RenderError> {
    let mut text = String::from("# Written by edgenet render: the node's planned DNS servers.\n");
    let servers = usable_dns(plan, node)?;
    for server in &servers {
        text.push_str(&format!("nameserver {server}\n"));
    }
    if !servers.is_empty() {
        text.push_str(&node.resolver_lines());
    }
    Ok(text)
}

/// `KEY=value` lines for a systemd `EnvironmentFile=`: the proxy for the program and, with
/// `containerd`, the `CONTAINERD_*` copies K3s hands to its embedded containerd.
pub fn proxy_env_file(node: &NodePlan, containerd: bool) -> String {
    let mut text = String::from("# Written by edgenet render: the node's proxy environment.\n");
    let vars = proxy_pairs(node);
    if vars.is_empty() {
        text.push_str("# No proxy is configured (Network.Proxy).\n");
    }
    for (name, value) in &vars {
        text.push_str(&format!("{name}={value}\n"));
    }
    if containerd {
        for (name, value) in &vars {
            text.push_str(&format!("CONTAINERD_{name}={value}\n"));
        }
    }
    text
}

/// `HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY` of the plan (only when a proxy is set).
pub fn proxy_pairs(node: &NodePlan) -> Vec<(&'static str, String)> {
    let p = &node.proxy;
    let mut vars = Vec::new();
    if let Some(http) = &p.http_proxy {
        vars.push(("HTTP_PROXY", http.clone()));
    }
    if let Some(https) = &p.https_proxy {
        vars.push(("HTTPS_PROXY", https.clone()));
    }
    if !vars.is_empty() {
        vars.push(("NO_PROXY", p.no_proxy.clone()));
    }
    vars
}

/// A systemd drop-in giving a service the proxy environment (containerd under kubeadm).
pub fn proxy_dropin(node: &NodePlan) -> String {
    let mut text =
        String::from("# Written by edgenet render: the node's proxy environment.\n[Service]\n");
    for (name, value) in proxy_pairs(node) {
        // systemd expands `%` specifiers in Environment= (a percent-encoded password would
        // break the unit) and unescapes `\` and `"` inside the quotes; `$` stays literal.
        let value = value
            .replace('%', "%%")
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        text.push_str(&format!("Environment=\"{name}={value}\"\n"));
    }
    text
}

/// A Windows node: its join configuration and a script that sets its DNS and proxy.
pub fn windows_node(
    plan: &Plan,
    node: &NodePlan,
    opts: &RenderOptions,
) -> Result<Vec<RenderedFile>, RenderError> {
    let token = opts.token.clone().unwrap_or_else(crate::token_placeholder);
    let mut files = Vec::new();
    match plan.distribution {
        Distribution::K3s => {
            let config = K3sConfig {
                server: Some(format!("https://{}", endpoint(plan))),
                token_file: Some("C:/etc/rancher/k3s/edgenet-token".to_string()),
                node_name: Some(node.name.clone()),
                node_ip: vec![node.address.addr().to_string()],
                ..Default::default()
            };
            files.push(node_file(
                node,
                "C:/etc/rancher/k3s/config.yaml",
                "k3s-config",
                "K3s agent (Windows, experimental in K3s)",
                to_yaml(&config),
            ));
            files.push(
                node_file(
                    node,
                    "C:/etc/rancher/k3s/edgenet-token",
                    "k3s-token",
                    "K3s agent",
                    format!("{token}\n"),
                )
                .secret(),
            );
        }
        Distribution::K8s => {
            let join = JoinConfiguration {
                api_version: kubeadm::KUBEADM_API_VERSION.to_string(),
                kind: "JoinConfiguration".to_string(),
                discovery: Discovery {
                    bootstrap_token: BootstrapTokenDiscovery {
                        api_server_endpoint: endpoint(plan),
                        token,
                        ca_cert_hashes: vec![crate::kubeadm::ca_cert_hash(opts)],
                    },
                },
                control_plane: None,
                node_registration: NodeRegistration {
                    name: node.name.clone(),
                    cri_socket: Some("npipe:////./pipe/containerd-containerd".to_string()),
                    kubelet_extra_args: vec![Arg::new("node-ip", node.address.addr().to_string())],
                },
            };
            files.push(
                node_file(
                    node,
                    "C:/etc/kubernetes/edgenet/kubeadm.yaml",
                    "kubeadm",
                    "kubeadm join (Windows)",
                    to_yaml(&join),
                )
                .secret(),
            );
        }
    }
    files.push(node_file(
        node,
        "C:/edgenet/node-network.ps1",
        "node-network",
        "PowerShell on the Windows node",
        crate::powershell::windows_node_script(node),
    ));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_dropin_escapes_percent_for_systemd() {
        let plan_json = serde_json::json!({
            "Network": {
                "DnsServers": ["192.0.2.53"],
                "Proxy": {"Http": "http://user:p%40ss@proxy.corp:3128"}
            },
            "Machines": [{"LinuxNode": {}}],
            "Edgenet": {"Distribution": "k8s", "MachineName": "edge01"}
        });
        let loaded = edgenet_core::config::load(plan_json.to_string().as_bytes()).unwrap();
        let plan = edgenet_core::plan::build(
            &loaded.config,
            &edgenet_core::validate::Context::offline("test", "edge01"),
        )
        .unwrap();
        let mut node = plan.nodes[0].clone();
        let text = proxy_dropin(&node);
        assert!(
            text.contains("Environment=\"HTTP_PROXY=http://user:p%%40ss@proxy.corp:3128\"\n"),
            "{text}"
        );
        node.proxy.http_proxy = Some("http://a\"b\\c".into());
        let text = proxy_dropin(&node);
        assert!(text.contains(r#"HTTP_PROXY=http://a\"b\\c""#), "{text}");
    }
}
