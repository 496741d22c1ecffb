//! `remove --orphan ID` (B19 D4): a deployment whose state directory is gone is removed by its
//! id — everything in the machine's namespace that carries its mark, its node namespaces, and
//! forwarding once nothing else needs it — and refused while a state directory holds the id.

mod support;

use support::*;

/// Lost state directory: status points at `--orphan`, which leaves the namespace as it was
/// before the deploy (forwarding back to 0), and a second run finds nothing.
#[test]
fn an_orphan_is_removed_by_its_id() {
    let Some(m) = machine("o21orph") else { return };
    let before = m.dump();
    let id = m.deploy(None)["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let node = m.linux_node_namespace();
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1");
    std::fs::remove_dir_all(&m.state).unwrap();

    let out = m.edgenet(&["status", "-o", "json"]);
    let notices = stdout_json(&out)["notices"].to_string();
    assert!(
        notices.contains(&format!("edgenet remove --orphan {id}")),
        "{notices}"
    );

    // The deploy it blocks (the switch name is taken) points at it too.
    let out = m.edgenet(&["check"]);
    assert!(
        text(&out).contains(&format!("`edgenet remove --orphan {id}`")),
        "{}",
        text(&out)
    );

    let out = m.edgenet(&["remove", "--orphan", &id, "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = stdout_json(&out);
    assert_eq!(report["schema"], "edgenet.remove/v1", "{report:#}");
    assert_eq!(report["orphan"], true, "{report:#}");
    assert_eq!(report["found"], true, "{report:#}");
    assert_eq!(report["deployment_id"], id.as_str(), "{report:#}");
    let removed = report["removed"].to_string();
    for what in [
        "interface aksedgesw-int".to_string(),
        format!("nftables table ip edgenet_{id}"),
        format!("network namespace {node}"),
    ] {
        assert!(removed.contains(&what), "{what}: {report:#}");
    }
    assert!(
        report["restored"]
            .to_string()
            .contains("net.ipv4.ip_forward to 0"),
        "{report:#}"
    );
    assert_eq!(report["errors"], serde_json::json!([]), "{report:#}");

    let after = m.dump();
    for key in ["links", "addresses", "routes", "nft", "netns", "ip_forward"] {
        assert_eq!(before[key], after[key], "{key} differs after --orphan");
    }
    let out = m.edgenet(&["status", "-o", "json"]);
    assert!(
        !stdout_json(&out)["notices"].to_string().contains(&id),
        "{}",
        text(&out)
    );
    // Nothing left: said so, exit 0.
    let out = m.edgenet(&["remove", "--orphan", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "nothing in this network namespace carries the mark of deployment {id}"
        )),
        "{}",
        text(&out)
    );
}

/// Beside a live deployment: the orphan goes, the live one and the forwarding it needs stay;
/// the live one's id is refused (it is not an orphan), a malformed id is a usage error.
#[test]
fn an_orphan_beside_a_live_deployment_leaves_it_and_forwarding() {
    let Some(m) = machine("o21orpb") else { return };
    let orphan = m.deploy(None)["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_dir_all(&m.state).unwrap();
    let cfg = m.write_config(
        "b.json",
        &serde_json::json!({"Edgenet": {"SwitchName": "o21sw-b"}}),
    );
    let live = m.deploy(Some(&cfg))["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(live, orphan);

    let out = m.edgenet(&["remove", "--orphan", &live, "-o", "json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(
        stdout_json(&out)["error"]["code"],
        "not-orphan",
        "{}",
        text(&out)
    );
    let out = m.edgenet(&["remove", "--orphan", "XYZ", "-o", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(
        stdout_json(&out)["error"]["code"],
        "invalid-arguments",
        "{}",
        text(&out)
    );

    let out = m.edgenet(&["remove", "--orphan", &orphan, "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = stdout_json(&out);
    assert!(
        report["removed"]
            .to_string()
            .contains("interface aksedgesw-int"),
        "{report:#}"
    );
    assert!(
        report["left"]
            .to_string()
            .contains("net.ipv4.ip_forward at 1 (not set back: another edgenet deployment"),
        "{report:#}"
    );
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1");
    let out = m.edgenet(&["status", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let st = stdout_json(&out);
    assert_eq!(st["drift"], serde_json::json!([]), "{st:#}");
    assert!(!st["notices"].to_string().contains(&orphan), "{st:#}");
    // The live deployment's remove then puts forwarding back.
    m.ok(&["remove"]);
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "0");
}
