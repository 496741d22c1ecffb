//! The nftables tables are written on their own thread while the main thread makes the nodes.
//! A failure of that write, noticed while the node lane is under way, goes into the same
//! rollback as any other: nothing remains (kernel dumps, not edgenet's word), and the next
//! deploy converges to what a clean one builds.

mod support;

use std::os::unix::process::ExitStatusExt;

use serde_json::json;
use support::*;

const CONFIG: &str = r#"{"Machines": [{"LinuxNode": {}, "WindowsNode": {}}]}"#;

/// The node namespaces a failed deploy's text report says it made (`changed: created network
/// namespace NAME for NODE`).
fn namespaces_made(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("changed: created network namespace "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

fn our_tables(m: &Machine) -> Vec<String> {
    m.nft_json()["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["table"]["name"].as_str())
        .filter(|n| n.starts_with("edgenet_"))
        .map(String::from)
        .collect()
}

#[test]
fn a_firewall_write_failing_beside_the_node_lane_is_rolled_back_and_the_next_deploy_converges() {
    if !failpoints() {
        return;
    }
    let Some(m) = machine("p13lane") else { return };
    let before = m.dump();
    let cfg = m.write_config("c.json", &serde_json::from_str(CONFIG).unwrap());
    // The failpoint fires on the nftables thread right after its write went into the kernel.
    let out = m.edgenet_env(
        &["deploy", "-c", &cfg],
        &[("EDGENET_FAILPOINT", "firewall-written")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("failpoint firewall-written"), "{stderr}");
    assert!(
        stderr.contains("changed: wrote nftables table bridge edgenet_"),
        "the tables were written: {stderr}"
    );
    // The node lane ran meanwhile: the first node's namespace was made, then undone.
    let made = namespaces_made(&stderr);
    assert!(
        !made.is_empty(),
        "a node namespace was made meanwhile: {stderr}"
    );
    for ns in &made {
        assert!(
            stderr.contains(&format!("rolled back: deleted network namespace {ns}")),
            "{ns}: {stderr}"
        );
    }
    assert!(
        stderr.contains("rolled back: deleted nftables table bridge edgenet_"),
        "{stderr}"
    );
    assert!(!stderr.contains("rollback error"), "{stderr}");
    // What the kernel holds: no namespace, no table, no link, no file left.
    let list = sh_out("ip -j netns list");
    for ns in &made {
        assert!(!list.contains(&format!("\"{ns}\"")), "{ns} is gone: {list}");
    }
    assert_eq!(our_tables(&m), Vec::<String>::new(), "no table of ours");
    let links = m.ip_json("link show");
    assert_eq!(
        links.as_array().unwrap().len(),
        1,
        "only lo in the machine: {links}"
    );
    // A first deploy undone entirely leaves no deployment (only its state directory's lock).
    let (mut after, mut was) = (m.dump(), before.clone());
    let files = after["state_files"].take();
    was["state_files"].take();
    assert_eq!(
        after, was,
        "nothing of the failed run remains in the kernel"
    );
    assert!(
        !files.to_string().contains("state.json") && !files.to_string().contains("journal"),
        "{files}"
    );

    // The next deploy converges to the full deployment, and stays there.
    let report = m.deploy(Some(&cfg));
    assert_eq!(our_tables(&m).len(), 2, "both tables: {report}");
    let nodes = m.node_namespaces();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    for ns in &nodes {
        let addrs = Machine::ip_json_in(ns, "addr show eth0");
        assert_eq!(ipv4_of(&addrs, "eth0").len(), 1, "{ns}: {addrs}");
    }
    let again = m.deploy(Some(&cfg));
    assert_eq!(again["changes"], json!([]));
    m.ok(&["remove"]);
    assert_eq!(m.dump(), before, "remove leaves zero residue");
}

/// Killed while the nftables thread has just written (the main thread somewhere in the nodes):
/// the next deploy converges and remove cleans.
#[test]
fn a_kill_right_after_the_firewall_write_converges_and_removes_cleanly() {
    if !failpoints() {
        return;
    }
    let Some(m) = machine("p13lanek") else { return };
    let before = m.dump();
    let cfg = m.write_config("c.json", &serde_json::from_str(CONFIG).unwrap());
    let out = m.edgenet_env(
        &["deploy", "-c", &cfg],
        &[("EDGENET_FAILPOINT", "firewall-written:crash")],
    );
    assert_eq!(out.status.signal(), Some(6), "{out:?}");
    m.deploy(Some(&cfg));
    assert_eq!(our_tables(&m).len(), 2);
    let again = m.deploy(Some(&cfg));
    assert_eq!(again["changes"], json!([]));
    m.ok(&["remove"]);
    assert_eq!(m.dump(), before);
}
