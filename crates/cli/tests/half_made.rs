//! A deploy killed between creating a kernel object and marking it (the kernel ignores an alias
//! at creation, a namespace's mark is set on its `lo` once it exists) leaves an unmarked object
//! that its state records: the next deploy finishes it, `remove` deletes it. The same object
//! with anything else in it, or without the record, stays someone else's.

mod support;

use std::os::unix::process::ExitStatusExt;

use serde_json::json;
use support::*;

fn crash(m: &Machine, step: &str) {
    let out = m.edgenet_env(
        &["deploy"],
        &[("EDGENET_FAILPOINT", &format!("{step}:crash"))],
    );
    assert_eq!(out.status.signal(), Some(6), "{step}: {out:?}");
}

fn node_netns(m: &Machine) -> String {
    let names = m.node_namespaces();
    assert_eq!(names.len(), 1, "one node namespace: {names:?}");
    names[0].clone()
}

/// Killed between `ip netns add` and marking its `lo`: the namespace holds an unmarked `lo`.
#[test]
fn a_namespace_killed_before_its_mark_is_adopted_by_deploy_and_deleted_by_remove() {
    if !failpoints() {
        return;
    }
    let Some(m) = machine("f12a-nsd") else { return };
    let before = m.dump();
    crash(&m, "node-netns-made");
    let ns = node_netns(&m);
    let links = Machine::ip_json_in(&ns, "-d link show");
    assert_eq!(links.as_array().unwrap().len(), 1, "only lo: {links}");
    assert!(links[0].get("ifalias").is_none(), "lo unmarked: {links}");

    let report = m.deploy(None);
    assert!(
        report["changes"].as_array().unwrap().iter().any(|c| c
            .as_str()
            .unwrap()
            .contains(&format!("marked network namespace {ns}"))),
        "{report}"
    );
    let lo = Machine::ip_json_in(&ns, "-d link show lo");
    assert!(
        lo[0]["ifalias"].as_str().unwrap().starts_with("edgenet:"),
        "deploy marked it: {lo}"
    );
    assert_eq!(m.deploy(None)["changes"], json!([]));
    m.ok(&["remove"]);
    assert_eq!(m.dump(), before);
}

#[test]
fn remove_deletes_a_namespace_killed_before_its_mark() {
    if !failpoints() {
        return;
    }
    let Some(m) = machine("f12a-nsr") else { return };
    let before = m.dump();
    crash(&m, "node-netns-made");
    let ns = node_netns(&m);
    let out = m.ok(&["remove", "--output", "json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["left"], json!([]), "{report}");
    assert!(!sh_out("ip netns list").contains(&ns), "{ns} deleted");
    assert_eq!(m.dump(), before);
}

/// The recorded namespace with anything more than a bare `lo` in it is not the half-made one.
#[test]
fn a_recorded_unmarked_namespace_with_content_stays_foreign() {
    if !failpoints() {
        return;
    }
    let Some(m) = machine("f12a-nsf") else { return };
    crash(&m, "node-netns-made");
    let ns = node_netns(&m);
    sh(&format!(
        "ip -n {ns} link add f12aa type veth peer name f12ab"
    ));
    let out = m.edgenet(&["deploy"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not made by this edgenet deployment"));
    let out = m.ok(&["remove", "--output", "json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(report["left"].to_string().contains(&ns), "{report}");
    assert!(
        sh_out("ip netns list").contains(&ns),
        "someone else's namespace is left"
    );
    sh(&format!("ip netns del {ns}"));
}

/// Killed between creating the bridge (in the deployment's group) and setting its alias:
/// neither the pre-deploy check nor deploy take it for another tool's bridge.
#[test]
fn a_bridge_killed_before_its_alias_is_finished_by_deploy_and_check() {
    if !failpoints() {
        return;
    }
    let Some(m) = machine("f12a-br") else { return };
    let before = m.dump();
    crash(&m, "switch-made");
    let br = m.ip_json("-d link show aksedgesw-int");
    assert!(br[0].get("ifalias").is_none(), "unmarked: {br}");
    m.ok(&["check"]);
    m.deploy(None);
    let br = m.ip_json("-d link show aksedgesw-int");
    assert!(
        br[0]["ifalias"].as_str().unwrap().starts_with("edgenet:"),
        "{br}"
    );
    assert_eq!(m.deploy(None)["changes"], json!([]));
    m.ok(&["remove"]);
    assert_eq!(m.dump(), before);
}

/// Same for a node's veth (created in the group, then given its alias).
#[test]
fn a_veth_killed_before_its_alias_is_finished_by_deploy() {
    if !failpoints() {
        return;
    }
    let Some(m) = machine("f12a-ve") else { return };
    let before = m.dump();
    crash(&m, "node-link-made");
    m.deploy(None);
    let links = m.ip_json("-d link show type veth");
    assert!(!links.as_array().unwrap().is_empty());
    for l in links.as_array().unwrap() {
        assert!(
            l["ifalias"]
                .as_str()
                .is_some_and(|a| a.starts_with("edgenet:")),
            "{l}"
        );
    }
    m.ok(&["remove"]);
    assert_eq!(m.dump(), before);
}

/// An identity temp file left by a kill mid-write is cleaned: remove leaves no directory.
#[test]
fn a_stale_identity_temp_file_is_cleaned() {
    let Some(m) = machine("f12a-tmp") else { return };
    let before = m.dump();
    m.deploy(None);
    std::fs::write(m.state.join(".identity.json.AbC123.tmp"), "{").unwrap();
    m.ok(&["remove"]);
    assert!(!m.state.exists(), "remove took every file");
    assert_eq!(m.dump(), before);
}

/// Killed between creating the namespace's file under /run/netns and bind-mounting the
/// namespace on it: remove deletes the recorded placeholder (`ip netns list` shows it).
#[test]
fn remove_deletes_the_placeholder_of_a_namespace_killed_before_its_mount() {
    if !failpoints() {
        return;
    }
    let Some(m) = machine("f12a-nsp") else { return };
    let before = m.dump();
    crash(&m, "node-netns-made");
    let ns = node_netns(&m);
    sh(&format!("umount /run/netns/{ns}"));
    let out = m.ok(&["remove", "--output", "json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["left"], json!([]), "{report}");
    assert!(
        !std::path::Path::new(&format!("/run/netns/{ns}")).exists(),
        "the placeholder is gone"
    );
    assert_eq!(m.dump(), before);
}

/// A rename (a new machine name) killed right after the node's namespace took its new name:
/// the next deploy with that name finishes it and the node keeps its MAC, and renaming back
/// and forth afterwards keeps it too.
#[test]
fn a_rename_killed_half_way_keeps_the_nodes_mac() {
    if !failpoints() {
        return;
    }
    let Some(m) = machine("f14-ren") else { return };
    let before = m.dump();
    m.deploy(None);
    let mac = |m: &Machine| {
        let ns = node_netns(m);
        Machine::ip_json_in(&ns, "link show eth0")[0]["address"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = mac(&m);
    let out = m.edgenet_env(
        &["deploy", "--machine-name", "rn2"],
        &[("EDGENET_FAILPOINT", "node-renamed:crash")],
    );
    assert_eq!(out.status.signal(), Some(6), "{out:?}");
    m.ok(&["deploy", "--machine-name", "rn2"]);
    assert_eq!(mac(&m), first, "the renamed node keeps its MAC");
    m.ok(&["deploy", "--machine-name", "rn3"]);
    m.ok(&["deploy", "--machine-name", "rn2"]);
    assert_eq!(mac(&m), first, "and keeps it through later renames");
    let identity: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(m.state.join("identity.json")).unwrap())
            .unwrap();
    let linux_macs = identity["macs"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.ends_with("-ledge"))
        .count();
    assert_eq!(linux_macs, 1, "one MAC for the one Linux node: {identity}");
    m.ok(&["remove"]);
    assert_eq!(m.dump(), before);
}
