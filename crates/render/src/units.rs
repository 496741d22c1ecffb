//! systemd units that run Kubernetes inside a `netns` node: K3s as a whole unit, or drop-ins
//! that move containerd and the kubelet (from their packages) into the node's namespace.

use edgenet_core::config::Distribution;
use edgenet_core::plan::{NodePlan, NodeRole, Plan};

use crate::{k3s, node_file, NodeNamespace, RenderOptions, RenderedFile};

pub const K3S_SERVER_UNIT: &str = "/etc/systemd/system/k3s.service";
pub const K3S_AGENT_UNIT: &str = "/etc/systemd/system/k3s-agent.service";
pub const CONTAINERD_DROPIN: &str =
    "/etc/systemd/system/containerd.service.d/20-edgenet-netns.conf";
pub const KUBELET_DROPIN: &str = "/etc/systemd/system/kubelet.service.d/20-edgenet-netns.conf";

/// The lines that put a service into the node: its namespace and its resolv.conf. The unit
/// refuses to start (visibly) when the namespace is missing, instead of running on the host.
fn namespace_lines(ns: &NodeNamespace) -> (String, String) {
    let unit = format!("AssertPathExists=/run/netns/{netns}\n", netns = ns.netns);
    let service = format!(
        "NetworkNamespacePath=/run/netns/{netns}\nBindReadOnlyPaths={resolv}:/etc/resolv.conf\n",
        netns = ns.netns,
        resolv = ns.resolv_conf
    );
    (unit, service)
}

pub fn k3s_unit(node: &NodePlan, ns: &NodeNamespace) -> String {
    let server = node.role == NodeRole::ControlPlane;
    let (unit, service) = namespace_lines(ns);
    // As K3s's installer writes them: the server notifies systemd when ready, the agent not.
    let (what, env, exec, kind) = if server {
        (
            "server",
            k3s::SERVER_ENV,
            "/usr/local/bin/k3s server",
            "notify",
        )
    } else {
        ("agent", k3s::AGENT_ENV, "/usr/local/bin/k3s agent", "exec")
    };
    format!(
        "# Written by edgenet render: K3s {what} inside node {name} (network namespace {netns}).\n\
[Unit]\n\
Description=Lightweight Kubernetes ({what}) in edgenet node {name}\n\
Documentation=https://docs.k3s.io\n\
Wants=network-online.target\n\
After=network-online.target\n\
{unit}\
\n\
[Service]\n\
Type={kind}\n\
EnvironmentFile=-{env}\n\
{service}\
KillMode=process\n\
Delegate=yes\n\
LimitNOFILE=1048576\n\
LimitNPROC=infinity\n\
LimitCORE=infinity\n\
TasksMax=infinity\n\
TimeoutStartSec=0\n\
Restart=always\n\
RestartSec=5s\n\
ExecStartPre=-/sbin/modprobe br_netfilter\n\
ExecStartPre=-/sbin/modprobe overlay\n\
ExecStart={exec}\n\
\n\
[Install]\n\
WantedBy=multi-user.target\n",
        name = node.name,
        netns = ns.netns,
    )
}

/// A drop-in moving a packaged service (containerd, kubelet) into the node.
pub fn dropin(node: &NodePlan, ns: &NodeNamespace, program: &str) -> String {
    let (unit, service) = namespace_lines(ns);
    format!(
        "# Written by edgenet render: runs {program} inside node {name} (network namespace {netns}).\n\
[Unit]\n\
{unit}\
\n\
[Service]\n\
{service}",
        name = node.name,
        netns = ns.netns,
    )
}

/// `/usr/local/sbin/edgenet-<node>`: runs a command inside the node's network namespace
/// (`edgenet-<node> kubeadm init --config …`), where the kubelet and the API server are.
pub fn exec_wrapper_path(node: &NodePlan) -> String {
    format!("/usr/local/sbin/edgenet-{}", node.name)
}

fn exec_wrapper(node: &NodePlan, ns: &NodeNamespace) -> RenderedFile {
    let mut f = node_file(
        node,
        &exec_wrapper_path(node),
        "node-exec",
        "you (runs a command inside the node)",
        format!(
            "#!/bin/sh\n# Written by edgenet render: runs a command inside node {name} (network namespace {netns}),\n# where the kubelet, containerd and the API server are: kubeadm, kubectl, k3s.\nif [ \"$#\" -eq 0 ]; then echo \"usage: $0 COMMAND [ARG...]\" >&2; exit 2; fi\nexec ip netns exec {netns} \"$@\"\n",
            name = node.name,
            netns = ns.netns,
        ),
    );
    f.mode = 0o755;
    f
}

pub fn node_units(
    plan: &Plan,
    node: &NodePlan,
    ns: &NodeNamespace,
    _opts: &RenderOptions,
) -> Vec<RenderedFile> {
    let mut files = units_of(plan, node, ns);
    files.push(exec_wrapper(node, ns));
    files
}

fn units_of(plan: &Plan, node: &NodePlan, ns: &NodeNamespace) -> Vec<RenderedFile> {
    match plan.distribution {
        Distribution::K3s => {
            let path = if node.role == NodeRole::ControlPlane {
                K3S_SERVER_UNIT
            } else {
                K3S_AGENT_UNIT
            };
            vec![node_file(node, path, "unit", "systemd", k3s_unit(node, ns))]
        }
        Distribution::K8s => vec![
            node_file(
                node,
                CONTAINERD_DROPIN,
                "unit",
                "systemd (containerd)",
                dropin(node, ns, "containerd"),
            ),
            node_file(
                node,
                KUBELET_DROPIN,
                "unit",
                "systemd (kubelet)",
                dropin(node, ns, "the kubelet"),
            ),
        ],
    }
}
