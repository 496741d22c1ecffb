//! The lab's hand-over to the runs it starts (`EDGENET_LAB_NETNS`, `EDGENET_LAB_PARENT`): the
//! run enters the machine's namespace itself and refuses to start when the lab that asked for
//! it is gone, so the lab can spawn it without forking.

mod support;

use std::process::Output;

use serde_json::{json, Value};
use support::*;

/// A scalable config whose adapter is `adapter`: `check` says `adapter-down` where a link of
/// that name is (down), `adapter-missing` where none is. No probe is sent.
fn config(adapter: &str) -> Value {
    json!({
        "SchemaVersion": "1.14",
        "DeploymentType": "ScalableCluster",
        "Init": {"ServiceIPRangeStart": "10.99.0.20", "ServiceIPRangeSize": 5},
        "Network": {
            "ControlPlaneEndpointIp": "10.99.0.10",
            "Ip4GatewayAddress": "10.99.0.1",
            "Ip4PrefixLength": 24,
            "DnsServers": ["10.99.0.1"],
            "SkipAddressFreeCheck": true,
            "SkipDnsCheck": true
        },
        "Machines": [{
            "MachineName": "hand",
            "NetworkConnection": {"AdapterName": adapter},
            "LinuxNode": {"Ip4Address": "10.99.0.11", "ControlPlane": true}
        }]
    })
}

/// `edgenet check` started in namespace `from` (by `ip netns exec`, which execs it: this test
/// process stays its parent) with the given hand-over variables.
fn check_from(from: &str, dir: &std::path::Path, env: &[(&str, String)]) -> Output {
    let file = dir.join("config.json");
    std::fs::write(&file, config("handp0").to_string()).unwrap();
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", from, env!("CARGO_BIN_EXE_edgenet")])
        .args(["check", "-o", "json", "-c"])
        .arg(&file)
        .env("NO_COLOR", "1")
        .env_remove("EDGENET_CONFIG")
        .env_remove("EDGENET_LAB_NETNS")
        .env_remove("EDGENET_LAB_PARENT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn adapter_codes(out: &Output) -> Vec<String> {
    stdout_json(out)["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings: {}", described(out)))
        .iter()
        .filter(|f| f["path"] == "Machines[0].NetworkConnection.AdapterName")
        .map(|f| f["code"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_run_the_lab_starts_enters_the_machine_namespace_it_names() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let machine = NsGuard::create(&run_name("hoa", "m"));
    let elsewhere = NsGuard::create(&run_name("hoa", "o"));
    sh(&format!(
        "ip -n {} link add handp0 type veth peer name handp1",
        machine.name()
    ));
    let dir = tempfile::tempdir().unwrap();
    let me = std::process::id().to_string();
    // Started elsewhere, told to run in the machine: it sees the machine's adapter.
    let handed = check_from(
        elsewhere.name(),
        dir.path(),
        &[
            (
                "EDGENET_LAB_NETNS",
                format!("/run/netns/{}", machine.name()),
            ),
            ("EDGENET_LAB_PARENT", me.clone()),
        ],
    );
    assert_eq!(
        adapter_codes(&handed),
        ["adapter-down"],
        "{}",
        described(&handed)
    );
    // Without the hand-over the same run stays where it was started.
    let stayed = check_from(elsewhere.name(), dir.path(), &[]);
    assert_eq!(
        adapter_codes(&stayed),
        ["adapter-missing"],
        "{}",
        described(&stayed)
    );
}

#[test]
fn a_run_whose_lab_is_gone_does_nothing() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let elsewhere = NsGuard::create(&run_name("hob", "o"));
    let dir = tempfile::tempdir().unwrap();
    // Its parent is this test, not process 1.
    let orphaned = check_from(
        elsewhere.name(),
        dir.path(),
        &[("EDGENET_LAB_PARENT", "1".to_string())],
    );
    assert_eq!(orphaned.status.code(), Some(3), "{}", described(&orphaned));
    let report = stdout_json(&orphaned);
    assert_eq!(report["error"]["code"], "lab-handover", "{report}");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("is gone"),
        "{report}"
    );
    assert!(report["findings"].is_null(), "{report}");
}
