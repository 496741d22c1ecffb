//! `DIR/README`: what goes where, and the commands to run.

use edgenet_core::config::Distribution;
use edgenet_core::plan::{NodeKind, Plan};

use crate::kubeadm::{calico_block_size, VXLAN_OVERHEAD};
use crate::{is_first_server, service_range_text, LbProvider, RenderOptions, Rendered};

pub fn readme(plan: &Plan, opts: &RenderOptions, rendered: &Rendered) -> String {
    let mut t = Vec::new();
    t.push(format!(
        "Files rendered by edgenet for machine {} ({}). Each directory is a node; under it, the file's absolute path on that node.",
        plan.machine.name,
        plan.distribution.as_str()
    ));
    t.push(String::new());
    for f in &rendered.files {
        t.push(format!(
            "  {:<60} {}{}",
            f.relative_out_path(),
            f.consumer,
            if f.secret { " (secret, mode 0600)" } else { "" }
        ));
    }
    t.push(String::new());
    for n in &rendered.notices {
        t.push(format!("NOTE: {n}"));
    }
    t.push(String::new());
    t.push("Install each file with its mode (`install -m`; `cp` would keep the mode of the copy in DIR, and the proxy".into());
    t.push("environment and token files hold secrets: 0600). A netns node shares the host's filesystem, so this runs on the host.".into());
    t.push("Kubernetes runs INSIDE the node's network namespace (kubelet, containerd and kubeadm's checks of".into());
    t.push("127.0.0.1:10248 and the API endpoints only work there): every kubeadm/kubectl command below is run".into());
    t.push("through `ip netns exec <namespace>` (the rendered /usr/local/sbin/edgenet-<node> does the same:".into());
    t.push("`sudo edgenet-<node> kubeadm init --config …`).".into());
    t.push(String::new());
    let vm = plan.node_runtime == edgenet_core::config::NodeRuntime::Vm;
    for node in plan.nodes.iter().filter(|n| n.kind == NodeKind::Linux) {
        let first = is_first_server(node, opts);
        let units = opts.namespaces.contains_key(&node.name);
        let exec = match opts.namespaces.get(&node.name) {
            Some(ns) => format!("sudo ip netns exec {} ", ns.netns),
            // Inside the guest, through its agent (from this host).
            None if vm => "sudo edgenet node exec -- ".to_string(),
            None => "sudo ".to_string(),
        };
        let server = node.role == edgenet_core::plan::NodeRole::ControlPlane;
        match plan.distribution {
            Distribution::K3s => t.push(format!(
                "Node {} (K3s {}):",
                node.name,
                if server { "server" } else { "agent" }
            )),
            Distribution::K8s => t.push(format!("Node {} (kubeadm):", node.name)),
        }
        if vm {
            t.push("  # a VM node: `edgenet deploy` put the files below into the guest (its NoCloud seed, rendered with".into());
            t.push("  # the defaults: copy in by hand what --token-file, --ca-cert-hash or --lb change); no unit on the host.".into());
            t.push("  # The commands run inside the guest, through its agent (`edgenet node exec --`).".into());
        } else if !units {
            t.push("  # not deployed as a netns node here: run these on the node itself (no `ip netns exec`)".into());
        }
        let installer_note = if units {
            "installs the binary; the installer's unit is replaced by ours below"
        } else {
            "installs the binary and the installer's own unit, which reads the config below"
        };
        if plan.distribution == Distribution::K3s && vm {
            t.push(format!(
                "  {exec}sh -c 'curl -sfL https://get.k3s.io | INSTALL_K3S_SKIP_START=true INSTALL_K3S_SKIP_ENABLE=true sh -s - {}'",
                if server { "server" } else { "agent" }
            ));
            t.push(format!("      # {installer_note}"));
        } else if plan.distribution == Distribution::K3s {
            t.push("  curl -sfL https://get.k3s.io | INSTALL_K3S_SKIP_START=true INSTALL_K3S_SKIP_ENABLE=true sh -s - \\".into());
            t.push(format!(
                "      {}   # {installer_note}",
                if server { "server" } else { "agent" }
            ));
        }
        for f in rendered.files.iter().filter(|f| f.node == node.name) {
            if vm {
                t.push(format!(
                    "  # in the guest: {} (DIR/{})",
                    f.path,
                    f.relative_out_path()
                ));
                continue;
            }
            t.push(format!(
                "  sudo install -D -m {:04o} DIR/{} {}",
                f.mode,
                f.relative_out_path(),
                f.path
            ));
        }
        match plan.distribution {
            Distribution::K3s => {
                let unit = if server { "k3s" } else { "k3s-agent" };
                if vm {
                    t.push(format!("  {exec}systemctl enable --now {unit}"));
                } else {
                    t.push(format!(
                        "  sudo systemctl daemon-reload && sudo systemctl enable --now {unit}"
                    ));
                }
                if server {
                    t.push(format!("  {exec}k3s kubectl get nodes -o wide"));
                }
                if first && opts.token.is_none() {
                    t.push("  # the join token for the other nodes: /var/lib/rancher/k3s/server/node-token;".into());
                    t.push(
                        "  # give it to `edgenet render --token-file FILE` on the joining machines"
                            .into(),
                    );
                } else if !first && opts.token.is_none() {
                    t.push("  # the token: copy /var/lib/rancher/k3s/server/node-token from the first server into a file,".into());
                    t.push("  # then render again with --token-file FILE (or write it into /etc/rancher/k3s/edgenet-token, mode 0600)".into());
                }
            }
            Distribution::K8s => {
                if vm {
                    t.push(format!("  {exec}systemctl restart containerd kubelet"));
                } else {
                    t.push(
                        "  sudo systemctl daemon-reload && sudo systemctl restart containerd kubelet"
                            .into(),
                    );
                }
                let kubectl = format!("{exec}kubectl --kubeconfig /etc/kubernetes/admin.conf");
                if first {
                    t.push(format!("  {exec}kubeadm init --config /etc/kubernetes/edgenet/kubeadm.yaml --upload-certs"));
                    t.push(format!("  {kubectl} create -f https://raw.githubusercontent.com/projectcalico/calico/<version>/manifests/tigera-operator.yaml"));
                    t.push(format!(
                        "  {kubectl} apply -f /etc/kubernetes/edgenet/addons/"
                    ));
                    t.push("  # kube-vip used super-admin.conf during init; switch it to admin.conf now:".into());
                    t.push("  sudo sed -i 's#super-admin.conf#admin.conf#' /etc/kubernetes/manifests/kube-vip.yaml".into());
                } else {
                    if opts.token.is_none() || opts.ca_cert_hash.is_none() {
                        t.push("  # token and CA hash: `kubeadm token create --print-join-command` on a control-plane node, then".into());
                        t.push(
                            "  # render again with --token-file FILE --ca-cert-hash sha256:<hex>"
                                .into(),
                        );
                    }
                    if server {
                        t.push("  # a control-plane join also needs the certificate key (`kubeadm init phase upload-certs --upload-certs`)".into());
                    }
                    t.push(format!(
                        "  {exec}kubeadm join --config /etc/kubernetes/edgenet/kubeadm.yaml"
                    ));
                }
            }
        }
        t.push(String::new());
    }
    t.push("Network facts the files encode:".into());
    t.push(format!(
        "  control-plane endpoint {}:6443 (tls-san / certSANs from first boot)",
        plan.control_plane_endpoint
    ));
    t.push(format!(
        "  pod CIDR {}, service CIDR {}, cluster DNS {}",
        plan.kubernetes.pod_cidr, plan.kubernetes.service_cidr, plan.kubernetes.cluster_dns
    ));
    match plan.distribution {
        Distribution::K3s => t.push(format!(
            "  flannel VXLAN follows the node interface's MTU ({}): pods get it minus {VXLAN_OVERHEAD}; K3s has no MTU key.",
            plan.switch.mtu.map_or("the adapter's".into(), |m| m.to_string())
        )),
        Distribution::K8s => {
            let pod = plan.kubernetes.pod_cidr;
            t.push(format!(
                "  Calico: pool {pod} (= kubeadm podSubnet, in no_proxy), VXLAN, MTU {}, block size /{}: {} blocks, so every node gets blocks of its own;",
                plan.switch.mtu.map_or("detected".into(), |m| (m.saturating_sub(VXLAN_OVERHEAD)).to_string()),
                calico_block_size(pod.prefix_len()),
                1u32 << (calico_block_size(pod.prefix_len()) - pod.prefix_len()),
            ));
            t.push("  the controller manager's per-node CIDR allocation is off (allocate-node-cidrs=false): Calico's IPAM assigns pod addresses, so a /24 pool serves many nodes.".into());
        }
    }
    match (service_range_text(plan), opts.lb) {
        (None, _) => t.push("  no LoadBalancer range (Init.ServiceIPRangeSize is 0): no LoadBalancer objects rendered.".into()),
        (Some(r), LbProvider::KubeVip) => t.push(format!(
            "  LoadBalancer range {r}: the kube-vip cloud provider (rendered) hands out addresses from the kubevip ConfigMap; kube-vip announces them by ARP"
        )),
        (Some(r), LbProvider::Metallb) => t.push(format!(
            "  LoadBalancer range {r}: MetalLB IPAddressPool + L2Advertisement (install MetalLB first: https://metallb.io/installation/)"
        )),
    }
    t.push(String::new());
    t.push("Ports between nodes:".into());
    if plan.switch.kind == edgenet_core::plan::SwitchKind::Internal {
        t.push("  (single machine: edgenet's own nftables table already lets these through on the switch; host/etc/nftables.d/ is only for another firewall that filters between the nodes)".into());
    }
    t.push(crate::firewall_ports::table(plan.distribution, opts.lb));
    t.join("\n") + "\n"
}
