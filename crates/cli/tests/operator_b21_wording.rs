//! Wording an operator tester asked for (B21 N9), on the command line: `--machine` out of
//! range on a one-machine config, and a notice when `--machine-name`/`EDGENET_MACHINE_NAME`
//! replaces the config's `Machines[N].MachineName`. `check --offline-check`: no root needed.

mod support;

use std::process::Output;

use serde_json::{json, Value};

fn edgenet(config: &Value, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    support::run_with_config(dir.path(), config, args, env)
}

fn scalable(machines: usize) -> Value {
    let list: Vec<Value> = (0..machines)
        .map(|i| {
            json!({
                "MachineName": format!("m{}", i + 1),
                "NetworkConnection": {"AdapterName": "eth0"},
                "LinuxNode": {"Ip4Address": format!("198.18.0.{}", 11 + i), "ControlPlane": i == 0}
            })
        })
        .collect();
    json!({
        "DeploymentType": "ScalableCluster",
        "Network": {"ControlPlaneEndpointIp": "198.18.0.100", "Ip4GatewayAddress": "198.18.0.1", "Ip4PrefixLength": 24, "DnsServers": ["198.18.0.1"]},
        "Machines": list
    })
}

#[test]
fn machine_out_of_range_on_one_machine_does_not_say_0_to_0() {
    let out = edgenet(
        &scalable(1),
        &["check", "--offline-check", "--machine", "5"],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("0 to 0"), "{err}");
    assert!(
        err.contains("1 machine") && err.contains("--machine 0"),
        "{err}"
    );
    let out = edgenet(
        &scalable(3),
        &["check", "--offline-check", "--machine", "5"],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 machines (0 to 2)"), "{err}");
}

fn notices(out: &Output) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "machine-name-overridden")
        .cloned()
        .collect()
}

#[test]
fn a_machine_name_from_the_command_line_that_replaces_the_configs_is_noticed() {
    let cfg = scalable(3);
    let args = [
        "--output",
        "json",
        "check",
        "--offline-check",
        "--machine",
        "1",
    ];
    let f = notices(&edgenet(&cfg, &args, &[("EDGENET_MACHINE_NAME", "b21a")]));
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["path"], "Machines[1].MachineName");
    assert_eq!(f[0]["severity"], "notice");
    let text = f[0]["message"].as_str().unwrap();
    assert!(
        text.contains("\"m2\"") && text.contains("\"b21a\""),
        "{text}"
    );
    let mut with_flag = vec!["--machine-name", "b21a"];
    with_flag.extend(args);
    assert_eq!(notices(&edgenet(&cfg, &with_flag, &[])).len(), 1);
    // The same name, or none given: nothing to say.
    assert!(notices(&edgenet(&cfg, &args, &[("EDGENET_MACHINE_NAME", "m2")])).is_empty());
    assert!(notices(&edgenet(&cfg, &args, &[])).is_empty());
}

/// B21 N9: the adapter renamed while the bridge is gone (and another NIC under its old name):
/// status's drift does not say the adapter "has MAC X, not the recorded X".
#[test]
fn drift_after_a_rename_with_the_bridge_gone_does_not_contradict_itself() {
    let Some(m) = support::machine_prefixed("s21", "rn") else {
        return;
    };
    let _lan = support::adapter_lan(&m, false);
    let ns = &m.ns;
    let mut cfg = scalable(1);
    cfg["Machines"][0]["NetworkConnection"]["AdapterName"] = json!("up0");
    cfg["Network"]["SkipDnsCheck"] = json!(true);
    cfg["Machines"][0]["LinuxNode"]["Ip4Address"] = json!("198.18.0.101");
    let cfg = m.write_config("c.json", &cfg);
    m.ok(&["deploy", "-q", "-c", &cfg]);
    for step in [
        "link del aksedgesw-ext",
        "link set up0 down",
        "link set up0 name enp3s0",
        "link add up0 type veth peer name s21p0",
    ] {
        support::sh_out(&format!("ip -n {ns} {step}"));
    }
    let out = m.edgenet(&["status", "--output", "json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let drift: Vec<String> = status["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        drift.iter().any(|d| d.contains("aksedgesw-ext")),
        "{drift:#?}"
    );
    for d in &drift {
        // "(enp3s0 has MAC <m>, not the recorded <m>, …)": the same MAC twice.
        if let Some(rest) = d.split(" has MAC ").nth(1) {
            let have = rest.split(',').next().unwrap();
            let recorded = rest
                .split("not the recorded ")
                .nth(1)
                .and_then(|r| r.split(',').next());
            assert_ne!(Some(have), recorded, "contradictory: {d}");
        }
    }
}
