//! Kernel object names of a deployment. Every name carries the deployment id, except the
//! switch (whose name the config gives), so two deployments with different state directories
//! never collide (SPEC §5.4).

use edgenet_core::plan::NodeKind;

use crate::state::DeploymentId;

/// Mark written as the alias of every link edgenet creates: `edgenet:<id>`. A link with the
/// switch's name but without this mark is someone else's and is never touched.
pub fn alias(id: &DeploymentId) -> String {
    format!("edgenet:{id}")
}

/// Link group of the deployment's links: set at creation (the alias can only follow), and one
/// `ip link del group N` request removes them all.
pub fn link_group(id: &DeploymentId) -> u32 {
    let bits = u32::from_str_radix(id.as_str(), 16).unwrap_or(0) & 0x00ff_ffff;
    0x4500_0000 | bits
}

/// The node's network namespace, as `ip netns` lists it: `<node name>-<id>`.
pub fn node_netns(node_name: &str, id: &DeploymentId) -> String {
    format!("{node_name}-{id}")
}

/// Host end of a node's veth: `en<id>l` / `en<id>w` (9 bytes, well inside IFNAMSIZ).
pub fn host_veth(kind: NodeKind, id: &DeploymentId) -> String {
    let tag = match kind {
        NodeKind::Linux => 'l',
        NodeKind::Windows => 'w',
    };
    format!("en{id}{tag}")
}

/// The node's interface inside its namespace.
pub const NODE_IFNAME: &str = "eth0";

/// Key of the switch's generated MAC in the state's MAC table.
pub fn switch_mac_key(switch: &str) -> String {
    format!("switch:{switch}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_differ_per_deployment() {
        let a: DeploymentId = "0a1b2c".parse().unwrap();
        let b: DeploymentId = "ffffff".parse().unwrap();
        assert_eq!(host_veth(NodeKind::Linux, &a), "en0a1b2cl");
        assert!(host_veth(NodeKind::Windows, &b).len() <= 15);
        assert_ne!(link_group(&a), link_group(&b));
        assert_ne!(node_netns("edge-ledge", &a), node_netns("edge-ledge", &b));
        assert_eq!(alias(&a), "edgenet:0a1b2c");
    }
}
