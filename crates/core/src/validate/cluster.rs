//! Rule group 10: the network plugin agrees with the distribution; the control plane has an
//! odd number of members when this config creates the cluster.

use super::{Code, Finding};
use crate::config::{is_control_plane, Config};

pub(super) fn check(config: &Config, out: &mut Vec<Finding>) {
    // Without Edgenet.Distribution the plugin chooses it (as the AKS EE installer pairs them),
    // so only an explicit distribution can contradict the plugin.
    if let (Some(distro), Some(plugin)) =
        (config.edgenet.distribution, config.network.network_plugin)
    {
        let expected = distro.ranges().network_plugin;
        // AksEdgeDeploy's user config names the product ("AKS Edge Essentials - K8s (Public
        // Preview)"), not the distribution, and its template writes `NetworkPlugin: flannel`
        // with either product (B23 F1): the author did not contradict the plugin, edgenet
        // derived the distribution. The product is what is installed (the installer, not the
        // file, chooses the distribution), so it stays, and its plugin is used: a warning.
        let derived = config
            .written_path("Edgenet.Distribution")
            .ends_with("AksEdgeProduct");
        if plugin != expected && derived {
            out.push(
                Finding::warning(
                    Code::PluginMismatch,
                    "Network.NetworkPlugin",
                    format!(
                        "Network.NetworkPlugin is {:?}, but AksEdgeProduct names {}, which runs {}: the cluster is planned as {} with {} ({:?} is not used)",
                        plugin.as_str(),
                        distro.as_str(),
                        expected.as_str(),
                        distro.as_str(),
                        expected.as_str(),
                        plugin.as_str(),
                    ),
                )
                .hint(format!(
                    "set Network.NetworkPlugin to {:?} to agree with the product (AksEdgeDeploy's template writes \"flannel\" with either product), or name the {} product if the cluster is {}",
                    expected.as_str(),
                    if distro == crate::config::Distribution::K3s { "K8s" } else { "K3s" },
                    if distro == crate::config::Distribution::K3s { "K8s" } else { "K3s" },
                )),
            );
        } else if plugin != expected {
            out.push(
                Finding::error(
                    Code::PluginMismatch,
                    "Network.NetworkPlugin",
                    format!(
                        "Network.NetworkPlugin is {:?}, but Edgenet.Distribution {} uses {}",
                        plugin.as_str(),
                        distro.as_str(),
                        expected.as_str()
                    ),
                )
                .hint(format!(
                    "set NetworkPlugin to {:?}, or Edgenet.Distribution to {:?} (or remove it: the plugin then decides)",
                    expected.as_str(),
                    if distro == crate::config::Distribution::K3s {
                        "k8s"
                    } else {
                        "k3s"
                    }
                )),
            );
        }
    }

    if !config.is_scalable() {
        if let Some(m) = config.machines.first() {
            if m.linux_node.as_ref().and_then(|n| n.control_plane) == Some(false) {
                out.push(
                    Finding::error(Code::ControlPlaneCount, "Machines[0].LinuxNode.ControlPlane", "Machines[0].LinuxNode.ControlPlane is false, but the Linux node of a SingleMachineCluster is its control plane")
                        .hint("remove ControlPlane or set it to true"),
                );
            }
        }
        return;
    }
    // A Linux node the loader refused cannot be counted: the count would be a guess.
    let uncounted = !config.invalid_paths.is_empty()
        && (0..config.machines.len())
            .any(|i| super::refused(config, &format!("Machines[{i}].LinuxNode")));
    if config.join || uncounted {
        return;
    }
    let members = (0..config.machines.len())
        .filter(|&i| is_control_plane(config, i, true))
        .count();
    if members % 2 == 0 {
        let message = if members == 0 {
            "no Linux node runs the control plane, and this config creates the cluster".to_string()
        } else {
            format!("{members} Linux nodes run the control plane; etcd needs an odd number to keep quorum")
        };
        out.push(
            Finding::error(Code::ControlPlaneCount, "Machines", message)
                .hint("set ControlPlane on 1, 3 or 5 Linux nodes (a config with a Join section adds to a running cluster)"),
        );
    }
}
