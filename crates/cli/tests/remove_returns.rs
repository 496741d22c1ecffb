//! `remove` returns once the kernel shows nothing of the deployment any more, while the
//! kernel's final freeing of the links may still run in a child of remove's: the kernel is read
//! right when remove returns (not once it has settled), and a deploy right after makes the same
//! names again.

mod support;

use serde_json::{json, Value};
use support::*;

/// What the kernel shows of any deployment in the machine, read at once: link names, nftables
/// tables, node namespaces.
fn kernel_view(m: &Machine) -> Value {
    let mut links: Vec<String> = m
        .ip_json("link show")
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect();
    links.sort();
    let tables: Vec<String> = json_of(&format!("ip netns exec {} nft -j list tables", m.ns))
        ["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| {
            Some(format!(
                "{} {}",
                t["table"]["family"].as_str()?,
                t["table"]["name"].as_str()?
            ))
        })
        .collect();
    json!({"links": links, "tables": tables, "netns": m.node_namespaces()})
}

#[test]
fn everything_is_gone_when_remove_returns_and_a_deploy_right_after_succeeds() {
    let Some(m) = machine("m19-rmret") else {
        return;
    };
    let before = kernel_view(&m);
    let cfg = m.write_config(
        "lw.json",
        &json!({"Machines": [{"LinuxNode": {}, "WindowsNode": {}}]}),
    );
    for round in 0..3 {
        m.deploy(Some(&cfg));
        let deployed = kernel_view(&m);
        assert_ne!(deployed, before, "round {round}: the deploy made nothing");
        let report: Value = serde_json::from_str(&m.ok(&["remove", "--output", "json"])).unwrap();
        // Read before anything else runs: no settling, no retry.
        let after = kernel_view(&m);
        assert_eq!(
            after, before,
            "round {round}: the kernel still shows the deployment when remove has returned"
        );
        assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
        assert!(
            report["removed"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r.as_str().unwrap().starts_with("bridge ")),
            "{report}"
        );
        assert!(!m.state.exists(), "round {round}: the state is cleared");
    }
    // The same names, made again right after the last remove returned.
    m.deploy(Some(&cfg));
    m.ok(&["remove"]);
    assert_eq!(kernel_view(&m), before);
}

/// B20 D9: forwarding already back to the value from before the deploy when remove runs (a
/// remove killed after restoring it, as a SIGKILL at the right moment leaves it, or by hand):
/// `left` names the interrupted remove among the causes.
#[test]
fn forwarding_already_restored_names_an_interrupted_remove() {
    let Some(m) = machine("o21fwd") else { return };
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "0");
    m.deploy(None);
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1");
    sh(&format!(
        "ip netns exec {} sysctl -qw net.ipv4.ip_forward=0",
        m.ns
    ));
    let report: Value = serde_json::from_str(&m.ok(&["remove", "--output", "json"])).unwrap();
    let left = report["left"].to_string();
    assert!(
        left.contains(
            "net.ipv4.ip_forward at 0: already back to the value edgenet found (by an earlier, interrupted remove, a rollback, or by hand)"
        ),
        "{report:#}"
    );
}
