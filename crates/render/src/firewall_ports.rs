//! The ports the distribution and its CNI use between nodes, as a table and as nftables rules.

use edgenet_core::config::Distribution;
use edgenet_core::plan::{Plan, SwitchKind};
use serde::Serialize;

use crate::LbProvider;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortRule {
    pub protocol: &'static str,
    /// `6443` or `2379-2380`.
    pub ports: &'static str,
    /// Who connects.
    pub from: &'static str,
    pub purpose: &'static str,
}

const fn rule(
    protocol: &'static str,
    ports: &'static str,
    from: &'static str,
    purpose: &'static str,
) -> PortRule {
    PortRule {
        protocol,
        ports,
        from,
        purpose,
    }
}

/// Inbound ports a node of the distribution must accept from the cluster.
pub fn ports(distribution: Distribution, lb: LbProvider) -> Vec<PortRule> {
    let mut rules = vec![
        rule(
            "tcp",
            "6443",
            "all nodes, clients",
            "Kubernetes API server (K3s: the supervisor too)",
        ),
        rule(
            "tcp",
            "2379-2380",
            "control-plane nodes",
            "etcd between servers",
        ),
        rule("tcp", "10250", "all nodes", "kubelet"),
        rule("tcp", "30000-32767", "clients", "NodePort services"),
        rule("udp", "30000-32767", "clients", "NodePort services"),
    ];
    match distribution {
        Distribution::K3s => {
            rules.push(rule("udp", "8472", "all nodes", "flannel VXLAN"));
        }
        Distribution::K8s => {
            rules.push(rule(
                "tcp",
                "10257",
                "the node itself",
                "kube-controller-manager",
            ));
            rules.push(rule("tcp", "10259", "the node itself", "kube-scheduler"));
            rules.push(rule("udp", "4789", "all nodes", "Calico VXLAN"));
            rules.push(rule("tcp", "5473", "all nodes", "Calico Typha"));
            rules.push(rule(
                "tcp",
                "179",
                "all nodes",
                "Calico BGP (only if BGP is enabled; edgenet renders VXLAN without BGP)",
            ));
        }
    }
    if lb == LbProvider::Metallb {
        rules.push(rule(
            "tcp",
            "7946",
            "all nodes",
            "MetalLB memberlist (speakers)",
        ));
        rules.push(rule(
            "udp",
            "7946",
            "all nodes",
            "MetalLB memberlist (speakers)",
        ));
    }
    rules
}

/// The table and chain `nft_snippet` adds its rules to (Debian's `/etc/nftables.conf`).
/// Forward, not input: the nodes are namespaces or VMs behind the switch, so traffic to them
/// is routed or bridged through the host and never reaches its input hook.
pub const FORWARD_CHAIN: &str = "inet filter forward";

/// Accept rules for the host firewall's own forward chain, as an `nft -f` script. A rule in a
/// table of our own could not help: an accept ends only its own base chain, the user's chain
/// still drops, and nft cannot jump across tables. `insert` puts the rules before a final drop.
pub fn nft_snippet(plan: &Plan, lb: LbProvider) -> String {
    nft_snippet_for(plan, lb, FORWARD_CHAIN)
}

/// The same, for another `family table chain` with a forward hook.
pub fn nft_snippet_for(plan: &Plan, lb: LbProvider, chain: &str) -> String {
    let subnet = plan.switch.subnet.trunc();
    let switch = &plan.switch.name;
    let mut text =
        String::from("# Written by edgenet render: ports Kubernetes needs between the nodes.\n");
    if plan.switch.kind == SwitchKind::Internal {
        text.push_str("# Single machine: edgenet's own nftables table already lets these through on the switch;\n# this is only needed if another firewall filters traffic between the nodes.\n");
    }
    text.push_str(&format!(
        "# Adds accept rules to the forward chain `{chain}` (the table Debian's /etc/nftables.conf\n\
         # defines): the nodes sit behind the switch {switch}, so their traffic is forwarded (or\n\
         # bridged, with bridge-nf-call-iptables = 1) and never reaches the host's input chain.\n\
         # For another table or chain replace `{chain}` below, then load with `nft -f FILE`.\n"
    ));
    // The switch's own traffic, exactly as status/check propose it for a forward chain that
    // drops: frames between the nodes of an internal switch are untracked (edgenet's table
    // notracks them), so no `ct state` rule would match their replies (B21 N3).
    let fix_subnet = edgenet_core::host_firewall::fix_subnet(plan);
    for r in edgenet_core::host_firewall::forward_accept_rules(switch, fix_subnet.as_deref()) {
        text.push_str(&format!(
            "insert rule {chain} {r} comment \"edgenet: the switch's own traffic\"\n"
        ));
    }
    if fix_subnet.is_none() {
        // Replies to clients routed from outside the switch (tracked: they leave it).
        text.push_str(&format!(
            "insert rule {chain} iifname \"{switch}\" ip saddr {subnet} ct state established,related accept comment \"edgenet: replies from the nodes\"\n"
        ));
    }
    for r in ports(plan.distribution, lb) {
        text.push_str(&format!(
            "insert rule {chain} oifname \"{switch}\" ip daddr {subnet} {} dport {} accept comment \"edgenet: {}\"\n",
            r.protocol,
            r.ports,
            r.purpose.split(" (").next().unwrap_or(r.purpose)
        ));
    }
    text
}

/// The table as text.
pub fn table(distribution: Distribution, lb: LbProvider) -> String {
    let mut text = format!(
        "{:<6} {:<12} {:<22} {}\n",
        "PROTO", "PORTS", "FROM", "PURPOSE"
    );
    for r in ports(distribution, lb) {
        text.push_str(&format!(
            "{:<6} {:<12} {:<22} {}\n",
            r.protocol, r.ports, r.from, r.purpose
        ));
    }
    text
}
