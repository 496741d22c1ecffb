//! The black-box operator test B23, finding 9: `lab` marked every offline (`InternetDisabled`)
//! scalable cluster FAILED, expecting the LAN not to reach the nodes — on a scalable cluster
//! the LAN is the cluster's subnet and does reach them. Labs are named `g3…`.

mod support;

use serde_json::Value;
use support::*;

#[test]
fn an_offline_scalable_lab_passes_with_its_lan_reaching_the_nodes() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = lab_name("g3off");
    let _down = LabDown(&name, dir.path());
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/lab-scalable-3.json"
    );
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    config["Network"]["InternetDisabled"] = Value::Bool(true);
    config["Machines"].as_array_mut().unwrap().truncate(2);
    let file = dir.path().join("offline.json");
    std::fs::write(&file, config.to_string()).unwrap();
    let out = lab_cmd(
        &name,
        dir.path(),
        &["up", file.to_str().unwrap(), "-o", "json"],
    )
    .output()
    .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let cells = report["cells"].as_array().expect("cells");
    let row = |r: &str| -> Vec<&Value> { cells.iter().filter(|c| c["row"] == r).collect() };
    // What the kernel did: a TCP connect from the LAN peer reached each node…
    let lan = row("lan-to-node");
    assert_eq!(lan.len(), 2, "{report:#}");
    for c in &lan {
        assert_eq!(c["actual"], "reachable", "{c:#}");
        assert_eq!(c["expected"], "reachable", "{c:#}");
    }
    // …the nodes of the two machines reached each other over the LAN…
    let across = row("node-to-node");
    assert!(
        across
            .iter()
            .any(|c| c["from"].as_str().unwrap().contains("m1")
                && c["to"].as_str().unwrap().contains("m2")
                && c["actual"] == "reachable"),
        "{report:#}"
    );
    // …and the internet beyond the router stayed cut off.
    let internet: Vec<&Value> = cells
        .iter()
        .filter(|c| c["row"].as_str().unwrap().starts_with("node-to-internet"))
        .collect();
    assert!(!internet.is_empty(), "{report:#}");
    for c in &internet {
        assert_eq!(c["actual"], "unreachable", "{c:#}");
    }
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["ok"], true, "{report:#}");
}
