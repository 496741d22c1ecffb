//! Wording an operator tester asked for (B21 N9), on the command line: `--machine` out of
//! range on a one-machine config, and a notice when `--machine-name`/`EDGENET_MACHINE_NAME`
//! replaces the config's `Machines[N].MachineName`. `check --offline-check`: no root needed.

use std::process::{Command, Output};

use serde_json::{json, Value};

fn edgenet(config: &Value, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgenet"));
    cmd.arg("-c")
        .arg(&path)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("EDGENET_MACHINE_NAME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
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
