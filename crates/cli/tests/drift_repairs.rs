//! Drift an operator makes by hand that `status` must name as what it is and `deploy` must
//! repair: the host end of a node's veth deleted (the node's link to the switch, not the node,
//! is gone).

mod support;

use serde_json::Value;
use support::*;

fn status(m: &Machine) -> (Option<i32>, Value) {
    let out = m.edgenet(&["status", "--output", "json"]);
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

/// The Linux node's namespace and the host end of its veth.
fn linux_node(m: &Machine) -> (String, String) {
    let id = m.state_id().unwrap();
    let netns = m
        .node_namespaces()
        .into_iter()
        .find(|n| n.ends_with(&format!("-ledge-{id}")))
        .expect("the Linux node's namespace");
    (netns, format!("en{id}l"))
}

#[test]
fn a_deleted_host_veth_is_the_nodes_link_gone_and_deploy_makes_it_again() {
    let Some(m) = machine("x15hv") else { return };
    m.deploy(None);
    let (netns, veth) = linux_node(&m);
    assert!(link(&m.ip_json("link show"), &veth).is_some());
    sh(&format!("ip -n {} link del {veth}", m.ns));
    // The kernel took the node's eth0 with it; the namespace stays.
    assert!(link(&Machine::ip_json_in(&netns, "link show"), "eth0").is_none());

    let (code, st) = status(&m);
    assert_eq!(code, Some(1), "{st:#}");
    let drift: Vec<&str> = st["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        drift
            .iter()
            .any(|d| d.contains("link to the switch is gone") && d.contains(&veth)),
        "{drift:#?}"
    );
    assert!(
        !drift.iter().any(|d| d.contains("is missing")),
        "{drift:#?}"
    );

    let changes = m.deploy(None)["changes"].to_string();
    assert!(
        changes.contains(&format!("created veth {veth}")),
        "{changes}"
    );
    let host = link(&m.ip_json("link show"), &veth).cloned().unwrap();
    assert_eq!(host["master"], "aksedgesw-int");
    let addrs = Machine::ip_json_in(&netns, "addr show");
    assert!(!ipv4_of(&addrs, "eth0").is_empty(), "{addrs:#}");
    let (code, st) = status(&m);
    assert_eq!(code, Some(0), "{st:#}");
}
