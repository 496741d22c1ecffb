//! A namespace under a node's name that edgenet did not make (the node's was deleted and
//! someone made one of the same name): deploy refuses it with one error naming the namespace
//! and the fix, and no rollback error besides (the previous deployment, put back, met the
//! same namespace); the host is as before.

mod support;

use serde_json::Value;
use support::*;

#[test]
fn a_refused_deploy_over_a_foreign_node_namespace_says_it_once_and_changes_nothing() {
    let Some(m) = machine("x15fn") else { return };
    m.deploy(None);
    let node = m.linux_node_namespace();
    sh(&format!("ip netns del {node} && ip netns add {node}"));
    let before = m.dump();

    let out = m.edgenet(&["deploy", "--output", "json"]);
    assert_eq!(out.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(&node), "{v:#}");
    let hint = v["error"]["hint"].as_str().unwrap();
    assert!(hint.contains(&format!("ip netns del {node}")), "{v:#}");
    assert_eq!(v["rollback_errors"], serde_json::json!([]), "{v:#}");
    assert_eq!(v["changes"], serde_json::json!([]), "{v:#}");

    // The text form: the error and its hint, nothing about a rollback.
    let out = m.edgenet(&["deploy"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&node), "{stderr}");
    assert!(!stderr.contains("rollback"), "{stderr}");
    assert_eq!(
        stderr.matches("already exists").count(),
        1,
        "said once: {stderr}"
    );
    assert_eq!(m.dump(), before, "the host changed");
    // The foreign namespace is untouched: still only its own lo, no mark.
    let links = Machine::ip_json_in(&node, "link show");
    assert_eq!(links.as_array().unwrap().len(), 1, "{links:#}");
    assert!(
        link(&links, "lo").unwrap().get("ifalias").is_none(),
        "{links:#}"
    );

    // Once it is deleted, deploy makes the node again.
    sh(&format!("ip netns del {node}"));
    m.deploy(None);
    assert!(link(&Machine::ip_json_in(&node, "link show"), "eth0").is_some());
    assert_eq!(m.edgenet(&["status"]).status.code(), Some(0));
}

/// A deploy that makes a deployment's nodes again (after a reboot, or namespaces deleted by
/// hand) and stops half-way (here: refused by a foreign namespace under the Linux node's
/// name, after it made the Windows node's namespace) leaves that namespace as its own
/// half-made one: once the foreign one is gone, the next deploy finishes it and remove
/// deletes everything.
#[test]
fn a_node_made_again_by_a_stopped_deploy_is_finished_by_the_next() {
    let Some(m) = machine("x16re") else { return };
    let both = m.write_config(
        "both.json",
        &serde_json::json!({"Machines": [{"LinuxNode": {}, "WindowsNode": {}}]}),
    );
    let before = m.dump();
    m.deploy(Some(&both));
    let nodes = m.node_namespaces();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    let linux = m.linux_node_namespace();
    let windows = nodes.iter().find(|n| **n != linux).unwrap().clone();
    // A reboot takes both; someone makes one under the Linux node's name.
    sh(&format!(
        "ip netns del {linux} && ip netns del {windows} && ip netns add {linux}"
    ));
    let out = m.edgenet(&["deploy", "-c", &both]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&linux),
        "{out:?}"
    );

    sh(&format!("ip netns del {linux}"));
    // The next deploy finishes what the stopped one made.
    m.ok(&["deploy", "-c", &both]);
    assert_nodes_in_place(
        &m,
        &[linux.clone(), windows.clone()],
        "after the stopped deploy",
    );
    m.ok(&["remove"]);
    assert!(m.node_namespaces().is_empty(), "{:?}", m.node_namespaces());
    assert_eq!(m.dump(), before, "remove left something");
}

/// Node namespaces deleted by hand and a deploy right after: the kernel dismantles a deleted
/// namespace a moment later, so the host ends of the old veths are still there when deploy
/// makes the namespaces again. Those veths are made again too (their node ends are not in the
/// new namespaces), instead of the deploy failing on an eth0 that is not there.
#[test]
fn a_deploy_right_after_the_node_namespaces_were_deleted_makes_them_again() {
    let Some(m) = machine("x16rd") else { return };
    let both = m.write_config(
        "both.json",
        &serde_json::json!({"Machines": [{"LinuxNode": {}, "WindowsNode": {}}]}),
    );
    m.deploy(Some(&both));
    for round in 0..3 {
        let nodes = m.node_namespaces();
        assert_eq!(nodes.len(), 2, "{nodes:?}");
        sh(&format!(
            "ip netns del {} && ip netns del {}",
            nodes[0], nodes[1]
        ));
        m.ok(&["deploy", "-c", &both]);
        assert_nodes_in_place(&m, &nodes, &format!("round {round}"));
    }
    m.ok(&["remove"]);
    assert!(m.node_namespaces().is_empty());
}

/// Every namespace of `nodes` holds the node's eth0 again, and status finds no drift.
fn assert_nodes_in_place(m: &Machine, nodes: &[String], when: &str) {
    for ns in nodes {
        let links = Machine::ip_json_in(ns, "link show");
        assert!(link(&links, "eth0").is_some(), "{when}: {ns}: {links:#}");
    }
    let status = m.edgenet(&["status"]);
    assert_eq!(
        status.status.code(),
        Some(0),
        "{when}: {}",
        String::from_utf8_lossy(&status.stdout)
    );
}

/// B19 D5: a link another tool made under the node link's name (`en<id>l`, fixed by the id,
/// which a reboot keeps) is refused before anything changes, as a foreign namespace is, and
/// `status` names it as foreign rather than sending the operator to a deploy that fails.
#[test]
fn a_foreign_link_under_the_node_links_name_is_refused_before_anything_changes() {
    let Some(m) = machine("q19fl") else { return };
    m.deploy(None);
    let id = m.state_id().unwrap();
    let node = m.linux_node_namespace();
    let veth = format!("en{id}l");
    // The node goes (its veth with it); another tool takes the name.
    sh(&format!(
        "ip -n {ns} link del {veth} && ip netns del {node} && \
         ip -n {ns} link add {veth} type veth peer name q19fpeer",
        ns = m.ns
    ));
    let out = m.edgenet(&["status", "--output", "json"]);
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    let drift = s["drift"].to_string();
    assert!(
        drift.contains(&format!(
            "interface {veth} (a veth) exists but does not carry this deployment's mark"
        )),
        "{drift}"
    );
    assert!(
        !drift.contains("was deleted")
            && !drift.contains("is missing")
            && !drift.contains("is down"),
        "{drift}"
    );
    let before = m.dump();
    let out = m.edgenet(&["deploy", "--output", "json"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains(&veth),
        "{v:#}"
    );
    let hint = v["error"]["hint"].as_str().unwrap();
    assert!(
        hint.contains(&format!("ip link del {veth}")) && hint.contains("nothing was changed"),
        "{v:#}"
    );
    assert_eq!(v["changes"], serde_json::json!([]), "{v:#}");
    assert_eq!(m.dump(), before, "the host changed");

    sh(&format!("ip -n {} link del {veth}", m.ns));
    m.deploy(None);
    assert_eq!(m.edgenet(&["status"]).status.code(), Some(0));
}
