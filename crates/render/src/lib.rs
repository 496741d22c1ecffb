//! `edgenet render`: from the network plan, every file Kubernetes needs on each node of this
//! machine, so that K3s or kubeadm, the CNI, kube-vip or MetalLB, the container runtime's proxy
//! and the node's systemd units agree with the network by construction.
//!
//! Pure: plan + options in, a list of files out. Writing them is the CLI's job.

pub mod firewall_ports;
mod k3s;
mod kubeadm;
mod lb;
pub mod model;
mod node_files;
pub mod powershell;
mod readme;
mod units;
pub mod yaml;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use edgenet_core::config::Distribution;
use edgenet_core::plan::{NodeKind, NodePlan, NodeRole, Plan, SwitchKind};
use serde::{Deserialize, Serialize};

/// Schema of `edgenet render --output json`.
pub const RENDER_SCHEMA: &str = "edgenet.render/v1";

/// What clearly marks a value the user must fill in (never an invented secret).
pub const PLACEHOLDER: &str = "EDGENET-PLACEHOLDER";

/// The join token's placeholder, the same in every file (Linux and Windows, K3s and kubeadm).
pub fn token_placeholder() -> String {
    format!("{PLACEHOLDER}-join-token")
}

/// The API server port (K3s's supervisor shares it).
pub const API_PORT: u16 = 6443;

/// Who hands out LoadBalancer IPs from the service range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LbProvider {
    /// kube-vip (ARP) with the kube-vip cloud provider's `kubevip` ConfigMap.
    #[default]
    KubeVip,
    /// MetalLB `IPAddressPool` + `L2Advertisement`.
    Metallb,
}

/// Where a deployed `netns` node lives on the host, for the systemd units that run Kubernetes
/// inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNamespace {
    /// `ip netns` name (`/run/netns/<name>`).
    pub netns: String,
    /// The node's resolv.conf written by deploy, bound over `/etc/resolv.conf`.
    pub resolv_conf: String,
    /// The node's proxy environment file written by deploy.
    pub proxy_env: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    pub lb: LbProvider,
    /// Join token (K3s token or kubeadm bootstrap token); `None`: a marked placeholder.
    pub token: Option<String>,
    /// kubeadm discovery `sha256:<hex>`; `None`: a marked placeholder.
    pub ca_cert_hash: Option<String>,
    /// This machine creates the cluster: its control-plane Linux node runs `cluster-init` /
    /// `kubeadm init` (the first machine with a Linux node, in a config without `Join`).
    pub creates_cluster: bool,
    /// The node's interface (inside its namespace or VM).
    pub node_interface: String,
    /// Deployed namespaces by node name; a node without one gets no systemd units.
    pub namespaces: BTreeMap<String, NodeNamespace>,
    pub kube_vip_image: String,
    pub kube_vip_cloud_provider_image: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            lb: LbProvider::KubeVip,
            token: None,
            ca_cert_hash: None,
            creates_cluster: true,
            node_interface: "eth0".to_string(),
            namespaces: BTreeMap::new(),
            kube_vip_image: "ghcr.io/kube-vip/kube-vip:v1.0.4".to_string(),
            kube_vip_cloud_provider_image: "ghcr.io/kube-vip/kube-vip-cloud-provider:v0.0.12"
                .to_string(),
        }
    }
}

/// One rendered file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedFile {
    /// Node name, or `host` for files of the machine itself.
    pub node: String,
    /// `linux` / `windows` / `host`.
    pub node_kind: String,
    /// Absolute path on the node (`C:/…` on Windows).
    pub path: String,
    /// Short name for `edgenet render TARGET`.
    pub target: String,
    /// Which program reads it.
    pub consumer: String,
    /// File mode to write it with.
    pub mode: u32,
    /// Holds a secret (join token): written 0600, never printed in a listing.
    pub secret: bool,
    #[serde(skip)]
    pub contents: String,
}

/// Everything `render` produces for one machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub schema: &'static str,
    pub machine: String,
    pub distribution: Distribution,
    pub files: Vec<RenderedFile>,
    /// Things the user must know (placeholders left, units skipped, …).
    pub notices: Vec<String>,
    #[serde(skip)]
    pub readme: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// No usable (non-loopback) DNS server for a node.
    NoDnsServer {
        node: String,
    },
    /// The token file's content is not a token the distribution accepts.
    BadToken {
        why: String,
    },
    BadCaCertHash {
        value: String,
    },
    /// Nothing to render for the node selection.
    NoNode {
        kind: NodeKind,
    },
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderError::NoDnsServer { node } => write!(
                f,
                "node {node} has no DNS server that is not a loopback address (K3s and the kubelet would fall back to 8.8.8.8); set Network.DnsServers"
            ),
            RenderError::BadToken { why } => write!(f, "--token-file: {why}"),
            RenderError::BadCaCertHash { value } => write!(
                f,
                "--ca-cert-hash {value:?} is not sha256:<64 hex digits>; `kubeadm token create --print-join-command` prints it"
            ),
            RenderError::NoNode { kind } => write!(
                f,
                "this machine has no {} node; choose another with --node",
                kind.as_str()
            ),
        }
    }
}

impl std::error::Error for RenderError {}

/// The control-plane endpoint as `host:port`.
pub fn endpoint(plan: &Plan) -> String {
    format!("{}:{API_PORT}", plan.control_plane_endpoint)
}

/// The node's DNS servers as K3s and the kubelet may use them: no loopback (a stub resolver
/// inside a node namespace answers nothing). Empty only for an offline plan without DNS
/// servers: there nothing outside the cluster is resolved anyway, so the files leave the
/// resolver to K3s/the kubelet (see `has_dns`).
pub fn usable_dns(plan: &Plan, node: &NodePlan) -> Result<Vec<Ipv4Addr>, RenderError> {
    let servers: Vec<Ipv4Addr> = node
        .dns_servers
        .iter()
        .copied()
        .filter(|s| !s.is_loopback() && !s.is_unspecified())
        .collect();
    if servers.is_empty() && plan.switch.outbound != edgenet_core::plan::Outbound::Offline {
        return Err(RenderError::NoDnsServer {
            node: node.name.clone(),
        });
    }
    Ok(servers)
}

/// The node gets a rendered resolv file (`resolv-conf` / `resolvConf`). Without one (offline,
/// no DNS servers) K3s falls back to its own resolv.conf and the kubelet to /etc/resolv.conf:
/// an empty nameserver list would make CoreDNS's `forward` fail to start.
pub fn has_dns(plan: &Plan, node: &NodePlan) -> bool {
    usable_dns(plan, node).is_ok_and(|s| !s.is_empty())
}

/// The cluster has a control-plane VIP of its own (scalable), which kube-vip must hold.
pub fn has_vip(plan: &Plan) -> bool {
    plan.switch.kind == SwitchKind::External
        && plan
            .nodes
            .iter()
            .all(|n| n.address.addr() != plan.control_plane_endpoint)
}

/// This node creates the cluster (K3s `cluster-init`, `kubeadm init`).
pub fn is_first_server(node: &NodePlan, opts: &RenderOptions) -> bool {
    opts.creates_cluster && node.kind == NodeKind::Linux && node.role == NodeRole::ControlPlane
}

/// The service range as MetalLB / kube-vip spell it (`a-b`), or `None` when empty.
pub fn service_range_text(plan: &Plan) -> Option<String> {
    plan.service_range
        .filter(|r| r.size > 0)
        .map(|r| format!("{}-{}", r.start, r.end))
}

/// Checks a token for the distribution.
pub fn check_token(distribution: Distribution, token: &str) -> Result<(), RenderError> {
    let bad = |why: &str| RenderError::BadToken {
        why: why.to_string(),
    };
    if token.is_empty() {
        return Err(bad("the file is empty; put the join token in it"));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            "the token contains white space or control characters; the file must hold only the token",
        ));
    }
    if distribution == Distribution::K8s {
        let ok = token.split_once('.').is_some_and(|(id, secret)| {
            id.len() == 6
                && secret.len() == 16
                && id
                    .chars()
                    .chain(secret.chars())
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
        if !ok {
            return Err(bad(
                "a kubeadm bootstrap token has the form [a-z0-9]{6}.[a-z0-9]{16} (`kubeadm token generate` makes one)",
            ));
        }
    }
    Ok(())
}

/// Renders every file of every node of the plan's machine.
pub fn render(plan: &Plan, opts: &RenderOptions) -> Result<Rendered, RenderError> {
    if let Some(token) = &opts.token {
        check_token(plan.distribution, token)?;
    }
    if let Some(hash) = &opts.ca_cert_hash {
        let ok = hash
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()));
        if !ok {
            return Err(RenderError::BadCaCertHash {
                value: hash.clone(),
            });
        }
    }
    let mut files = Vec::new();
    let mut notices = Vec::new();
    for node in &plan.nodes {
        // Refuses a node without a usable DNS server unless the plan is offline.
        if node.kind == NodeKind::Linux {
            usable_dns(plan, node)?;
        }
        let mut out = match (plan.distribution, node.kind) {
            (Distribution::K3s, NodeKind::Linux) => k3s::linux_node(plan, node, opts)?,
            (Distribution::K8s, NodeKind::Linux) => kubeadm::linux_node(plan, node, opts)?,
            (_, NodeKind::Windows) => node_files::windows_node(plan, node, opts)?,
        };
        if node.kind == NodeKind::Linux {
            match opts.namespaces.get(&node.name) {
                Some(ns) => out.extend(units::node_units(plan, node, ns, opts)),
                // Its files go into the guest, not onto the host: no unit to wait for.
                None if plan.node_runtime == edgenet_core::config::NodeRuntime::Vm => {
                    notices.push(format!(
                        "{} is a VM node (NodeRuntime vm): `edgenet deploy` delivers these files into its guest, in the guest's NoCloud seed (README \"VM nodes\"; rendered with the defaults, so what --token-file, --ca-cert-hash or --lb change is copied in by hand, e.g. `edgenet node exec -- sh -c 'cat > PATH' < FILE`); it needs no systemd unit on the host",
                        node.name
                    ))
                }
                None => notices.push(format!(
                    "no systemd units for {}: it is not deployed as a netns node on this host (run `edgenet deploy`, then render again)",
                    node.name
                )),
            }
        }
        files.extend(out);
    }
    // A proxy URL with `user:password@` makes the file a secret like the token.
    for f in &mut files {
        if !f.secret && edgenet_core::redact::has_credentials(&f.contents) {
            f.secret = true;
            f.mode = 0o600;
        }
    }
    // One notice per kind of placeholder left, naming the option that fills it.
    for (what, marker, fix) in [
        (
            "the join token",
            token_placeholder(),
            "give --token-file FILE",
        ),
        (
            "the kubeadm CA certificate hash",
            format!("{PLACEHOLDER}-ca-cert-hash"),
            "give --ca-cert-hash sha256:<hex> (`kubeadm token create --print-join-command` prints it)",
        ),
        (
            "the kubeadm certificate key of a joining control plane",
            format!("{PLACEHOLDER}-certificate-key"),
            "replace it with the key `kubeadm init phase upload-certs --upload-certs` prints",
        ),
    ] {
        if files.iter().any(|f| f.contents.contains(&marker)) {
            notices.push(format!(
                "{what} is a placeholder ({marker}); {fix}, or replace it as the README says"
            ));
        }
    }
    files.push(host_file(
        plan,
        "/etc/nftables.d/edgenet-kubernetes-ports.nft",
        "nftables",
        "nft (host firewall, if it filters)",
        firewall_ports::nft_snippet(plan, opts.lb),
    ));
    files.push(host_file(
        plan,
        "edgenet-network.ps1",
        "powershell",
        "PowerShell on a Windows host (Hyper-V)",
        powershell::script(plan),
    ));
    let mut rendered = Rendered {
        schema: RENDER_SCHEMA,
        machine: plan.machine.name.clone(),
        distribution: plan.distribution,
        files,
        notices,
        readme: String::new(),
    };
    rendered.readme = readme::readme(plan, opts, &rendered);
    Ok(rendered)
}

fn host_file(
    plan: &Plan,
    path: &str,
    target: &str,
    consumer: &str,
    contents: String,
) -> RenderedFile {
    let _ = plan;
    RenderedFile {
        node: "host".to_string(),
        node_kind: "host".to_string(),
        path: path.to_string(),
        target: target.to_string(),
        consumer: consumer.to_string(),
        mode: 0o644,
        secret: false,
        contents,
    }
}

/// A file of a node.
pub(crate) fn node_file(
    node: &NodePlan,
    path: &str,
    target: &str,
    consumer: &str,
    contents: String,
) -> RenderedFile {
    RenderedFile {
        node: node.name.clone(),
        node_kind: node.kind.as_str().to_string(),
        path: path.to_string(),
        target: target.to_string(),
        consumer: consumer.to_string(),
        mode: 0o644,
        secret: false,
        contents,
    }
}

impl RenderedFile {
    pub(crate) fn secret(mut self) -> Self {
        self.secret = true;
        self.mode = 0o600;
        self
    }

    /// Where the file goes under `render --out DIR`: `<node>/<path without its root>`
    /// (`C:/x` → `<node>/C/x`).
    pub fn relative_out_path(&self) -> String {
        let bytes = self.path.as_bytes();
        let path = if bytes.len() > 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
            format!("{}{}", &self.path[..1], &self.path[2..])
        } else {
            self.path.clone()
        };
        let path = path.trim_start_matches('/');
        format!("{}/{}", self.node, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(node: &str, path: &str) -> RenderedFile {
        RenderedFile {
            node: node.into(),
            node_kind: "linux".into(),
            path: path.into(),
            target: "x".into(),
            consumer: "x".into(),
            mode: 0o644,
            secret: false,
            contents: String::new(),
        }
    }

    #[test]
    fn out_paths_keep_the_node_and_drop_the_root_or_drive_colon() {
        assert_eq!(
            file("a-ledge", "/etc/rancher/k3s/config.yaml").relative_out_path(),
            "a-ledge/etc/rancher/k3s/config.yaml"
        );
        assert_eq!(
            file("a-wedge", "C:/etc/x.yaml").relative_out_path(),
            "a-wedge/C/etc/x.yaml"
        );
        assert_eq!(
            file("host", "edgenet-network.ps1").relative_out_path(),
            "host/edgenet-network.ps1"
        );
    }

    #[test]
    fn tokens_are_checked_per_distribution() {
        assert!(check_token(Distribution::K3s, "K10abc::server:xyz").is_ok());
        assert!(check_token(Distribution::K3s, "").is_err());
        assert!(check_token(Distribution::K3s, "a b").is_err());
        assert!(check_token(Distribution::K8s, "abcdef.0123456789abcdef").is_ok());
        assert!(check_token(Distribution::K8s, "ABCDEF.0123456789abcdef").is_err());
        assert!(check_token(Distribution::K8s, "abcdef.0123").is_err());
    }

    #[test]
    fn calico_blocks_leave_room_for_many_nodes() {
        assert_eq!(
            kubeadm::calico_block_size(16),
            26,
            "Calico's default for a /16"
        );
        assert_eq!(
            kubeadm::calico_block_size(24),
            28,
            "16 blocks in the seed's /24"
        );
        assert_eq!(kubeadm::calico_block_size(27), 30);
    }
}
