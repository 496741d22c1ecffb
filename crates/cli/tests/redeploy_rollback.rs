//! A deploy over a working deployment (issue 8, defect 5): when it fails at any step, the
//! previous deployment is left exactly as it was — not only what the failed run created is
//! deleted, but what it changed is changed back; and a new machine name renames the nodes in
//! place instead of breaking the deployment for good.

mod support;

use serde_json::{json, Value};
use support::*;

/// Everything a deployment is made of, including inside the node namespaces. nftables
/// handles are left out: putting a table back writes it in one transaction, and the kernel
/// numbers the new objects.
fn everything(m: &Machine) -> Value {
    fn no_handles(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.remove("handle");
                o.values_mut().for_each(no_handles);
            }
            Value::Array(a) => a.iter_mut().for_each(no_handles),
            _ => {}
        }
    }
    let mut dump = m.dump();
    no_handles(&mut dump["nft"]);
    json!({"dump": dump, "shape": m.shape()})
}

/// The paths where two JSON values differ, for a readable failure.
fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (u, v) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if u != v && !out.iter().any(|o| o.starts_with(&format!("{path}/{k} "))) {
                    diff(u, v, &format!("{path}/{k}"), out);
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                diff(u, v, &format!("{path}/{i}"), out);
            }
        }
        _ if a != b => out.push(format!("{path} {a} != {b}")),
        _ => {}
    }
}

fn assert_same(a: &Value, b: &Value, what: &str) {
    let mut out = Vec::new();
    diff(a, b, "", &mut out);
    assert!(out.is_empty(), "{what}:\n{}", out.join("\n"));
}

fn drift(m: &Machine) -> Value {
    let status: Value = serde_json::from_str(&m.ok(&["status", "--output", "json"])).unwrap();
    status["drift"].clone()
}

#[test]
fn a_failed_redeploy_leaves_the_previous_deployment_exactly_as_it_was() {
    if !failpoints() {
        return;
    }
    let Some(m) = machine("h8aredeploy") else {
        return;
    };
    let first = m.write_config(
        "first.json",
        &json!({"Machines": [{"LinuxNode": {}}], "Network": {"Ip4AddressPrefix": "192.168.77.0/24"}}),
    );
    // A different subnet (bridge address, node address, NAT rules), MTU, an offline firewall
    // and a second node: every kind of change a redeploy makes.
    let second = m.write_config(
        "second.json",
        &json!({
            "Machines": [{"NetworkConnection": {"Mtu": 1400}, "LinuxNode": {}, "WindowsNode": {}}],
            "Network": {"Ip4AddressPrefix": "192.168.78.0/24", "InternetDisabled": true}
        }),
    );
    m.deploy(Some(&first));
    let before = everything(&m);
    let recorded = || std::fs::read(m.state.join("config.json")).expect("config.json");
    let first_recorded = recorded();
    for step in edgenet_deploy::failpoint::steps(false) {
        let out = m.edgenet_env(&["deploy", "-c", &second], &[("EDGENET_FAILPOINT", step)]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_same(
            &everything(&m),
            &before,
            &format!("after a failure at {step}"),
        );
        assert_eq!(drift(&m), json!([]), "after a failure at {step}");
        // The config recorded is the deployment's that was put back, not the failed run's.
        assert_eq!(
            String::from_utf8_lossy(&recorded()),
            String::from_utf8_lossy(&first_recorded),
            "config.json after a failure at {step}"
        );
    }
    // So `deploy` without `-c` (the recorded deployment again) has nothing to change.
    let again = m.deploy(None);
    assert_eq!(again["changes"], json!([]), "{again:#}");
    assert_same(&everything(&m), &before, "deployed again from the record");
    // The failed runs left nothing that gets in the way of the change itself.
    m.deploy(Some(&second));
    assert_eq!(drift(&m), json!([]));
    m.deploy(Some(&first));
    assert_same(&everything(&m), &before, "deployed again");
}

#[test]
fn a_new_machine_name_renames_the_nodes_in_place() {
    let Some(m) = machine("h8arename") else {
        return;
    };
    let cfg = m.write_config(
        "c.json",
        &json!({"Machines": [{"MachineName": "edge", "LinuxNode": {}, "WindowsNode": {}}]}),
    );
    m.deploy(Some(&cfg));
    let id = m.state_id().unwrap();
    let inode = |ns: &str| {
        sh_out(&format!("stat -L -c %i /run/netns/{ns}"))
            .trim()
            .to_string()
    };
    let linux_before = inode(&format!("edge-ledge-{id}"));
    let out = m.edgenet(&["deploy", "-c", &cfg, "--machine-name", "edge2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        m.node_namespaces(),
        vec![format!("edge2-ledge-{id}"), format!("edge2-wedge-{id}")]
    );
    assert_eq!(
        inode(&format!("edge2-ledge-{id}")),
        linux_before,
        "the same namespace, renamed"
    );
    assert_eq!(drift(&m), json!([]));
    // The node still reaches its gateway through the switch.
    let status: Value = serde_json::from_str(&m.ok(&["status", "--output", "json"])).unwrap();
    let gw = status["plan"]["nodes"][0]["gateway"]
        .as_str()
        .unwrap()
        .to_string();
    sh(&format!(
        "ip netns exec edge2-ledge-{id} ping -c1 -W2 {gw} >/dev/null"
    ));
    // And back, then remove leaves nothing.
    let out = m.edgenet(&["deploy", "-c", &cfg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(inode(&format!("edge-ledge-{id}")), linux_before);
    m.ok(&["remove"]);
    assert!(m.node_namespaces().is_empty());
}
