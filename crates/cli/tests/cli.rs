//! The `edgenet` binary as users and scripts run it: exit codes, JSON shapes, messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn edgenet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgenet"))
        .args(args)
        .env_remove("EDGENET_CONFIG")
        .output()
        .expect("runs edgenet")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited")
}

fn write_temp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

fn edit(name: &str, f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&std::fs::read(fixture(name)).unwrap()).unwrap();
    f(&mut v);
    v.to_string().into_bytes()
}

#[test]
fn fixtures_pass_check() {
    for name in [
        "aksee-single-machine.json",
        "aksee-scalable-first.json",
        "aksee-scalable-join.json",
        "aksee-preview-vswitch.json",
        "k8s-calico.json",
    ] {
        // --offline-check: the scalable fixtures name an adapter this test host may not have.
        let out = edgenet(&[
            "check",
            "--offline-check",
            "-c",
            fixture(name).to_str().unwrap(),
            "--output",
            "json",
        ]);
        assert_eq!(
            code(&out),
            0,
            "{name}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let findings = json(&out)["findings"].clone();
        assert!(findings
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] != "error"));
        assert!(
            findings
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["code"] == "host-checks-skipped"),
            "skips are said"
        );
    }
}

#[test]
fn broken_variants_fail_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "ipv6",
            edit("aksee-scalable-first.json", |v| {
                v["Machines"][0]["LinuxNode"]["Ip4Address"] = "fd00::171".into()
            }),
            "ipv6-not-supported",
            "Machines[0].LinuxNode.Ip4Address",
        ),
        (
            "dup",
            edit("aksee-scalable-first.json", |v| {
                v["Network"]["ControlPlaneEndpointIp"] = "192.168.1.171".into()
            }),
            "address-duplicate",
            "Machines[0].LinuxNode.Ip4Address",
        ),
        (
            "type",
            edit("aksee-single-machine.json", |v| {
                v["Init"]["ServiceIPRangeSize"] = "ten".into()
            }),
            "wrong-type",
            "Init.ServiceIPRangeSize",
        ),
        (
            "plugin",
            edit("k8s-calico.json", |v| {
                v["Network"]["NetworkPlugin"] = "flannel".into()
            }),
            "plugin-mismatch",
            "Network.NetworkPlugin",
        ),
        (
            "mac",
            edit("k8s-calico.json", |v| {
                v["Machines"][0]["LinuxNode"]["MacAddress"] = "03:00:00:00:00:01".into()
            }),
            "mac-not-unicast",
            "Machines[0].LinuxNode.MacAddress",
        ),
        (
            "join",
            edit("aksee-scalable-join.json", |v| {
                v["Init"]["ServiceIPRangeStart"] = "192.168.1.170".into()
            }),
            "address-duplicate",
            "Machines[0].LinuxNode.Ip4Address",
        ),
        (
            "preview",
            edit("aksee-preview-vswitch.json", |v| {
                v["Network"]["Ip4PrefixLength"] = "33".into()
            }),
            "invalid-cidr",
            "Network.Ip4PrefixLength",
        ),
    ];
    for (name, bytes, code_name, path) in cases {
        let file = write_temp(&dir, &format!("{name}.json"), &bytes);
        let out = edgenet(&["check", "--offline-check", "-c", &file, "--output", "json"]);
        assert_eq!(code(&out), 1, "{name}");
        let findings = json(&out)["findings"].clone();
        assert!(
            findings
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["code"] == code_name && f["path"] == path && f["severity"] == "error"),
            "{name}: no {code_name} at {path} in {findings:#}"
        );
    }
}

#[test]
fn unreadable_configs_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read(fixture("aksee-scalable-first.json")).unwrap();
    let mut huge = b"{\"Pad\": \"".to_vec();
    huge.resize(10 * 1024 * 1024, b'x');
    huge.extend(b"\"}");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "malformed",
            b"{ \"DeploymentType\": SingleMachineCluster }".to_vec(),
            "not valid JSON",
        ),
        (
            "truncated",
            text[..text.len() / 2].to_vec(),
            "not valid JSON",
        ),
        ("huge", huge, "at most"),
        (
            // Windows-1252 is read (with a notice); a byte it leaves undefined is not text.
            "not-text",
            b"{\"Edgenet\": {\"MachineName\": \"b\x81ckerei\"}}".to_vec(),
            "neither UTF-8 nor Windows-1252",
        ),
        ("array", b"[]".to_vec(), "must be a JSON object"),
        ("empty", Vec::new(), "not valid JSON"),
    ];
    for (name, bytes, needle) in cases {
        let file = write_temp(&dir, name, &bytes);
        let out = edgenet(&["check", "-c", &file]);
        assert_eq!(code(&out), 2, "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(needle) && stderr.contains(&file),
            "{name}: {stderr}"
        );
        let out = edgenet(&["check", "-c", &file, "--output", "json"]);
        assert_eq!(code(&out), 2);
        let report = json(&out);
        assert_eq!(report["schema"], "edgenet.check/v1", "{name}");
        assert_eq!(report["error"]["code"], "unreadable-config", "{name}");
        assert!(report["findings"].is_null(), "{name}");
        assert_eq!(report["source"], file.as_str(), "{name}");
    }
    let out = edgenet(&["plan", "-c", "/nonexistent/edgenet.json"]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/edgenet.json"));
}

#[test]
fn plan_json_of_the_builtin_default() {
    let out = edgenet(&["plan", "--output", "json"]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let p = json(&out);
    assert_eq!(p["schema"], "edgenet.plan/v1");
    assert_eq!(p["switch"]["name"], "aksedgesw-int");
    assert_eq!(p["kubernetes"]["pod_cidr"], "10.42.0.0/16");
    assert_eq!(p["kubernetes"]["service_cidr"], "10.43.0.0/16");
    assert_eq!(p["kubernetes"]["cluster_dns"], "10.43.0.10");
    assert_eq!(p["nodes"][0]["role"], "control-plane");
    assert!(p["nodes"][0]["name"].as_str().unwrap().ends_with("-ledge"));
}

#[test]
fn plan_refuses_a_config_with_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_temp(
        &dir,
        "bad.json",
        &edit("k8s-calico.json", |v| {
            v["Network"]["Ip4AddressPrefix"] = "10.96.1.0/24".into()
        }),
    );
    let out = edgenet(&["plan", "--offline-check", "-c", &file]);
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("overlaps-kubernetes-range"));
}

#[test]
fn several_machines_need_machine_flag() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = edit("aksee-scalable-first.json", |v| {
        v["Machines"][0]["MachineName"] = "m0".into();
        let mut second = v["Machines"][0].clone();
        second["MachineName"] = "m1".into();
        second["LinuxNode"]["Ip4Address"] = "192.168.1.172".into();
        second["LinuxNode"]["ControlPlane"] = false.into();
        v["Machines"].as_array_mut().unwrap().push(second);
    });
    let file = write_temp(&dir, "two.json", &bytes);
    let out = edgenet(&["plan", "--offline-check", "-c", &file]);
    // A command-line omission, as a --machine out of range is: exit 2 (B23 F7).
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--machine"));
    let out = edgenet(&[
        "plan",
        "--offline-check",
        "-c",
        &file,
        "--machine",
        "1",
        "--output",
        "json",
    ]);
    assert_eq!(code(&out), 0);
    assert_eq!(json(&out)["nodes"][0]["name"], "m1-ledge");
    let out = edgenet(&[
        "check",
        "--offline-check",
        "-c",
        &file,
        "--machine",
        "7",
        "--output",
        "json",
    ]);
    // Refused like plan refuses it: a wrong command line, before any rule runs.
    assert_eq!(code(&out), 2);
    assert_eq!(json(&out)["error"]["code"], "invalid-arguments");
    assert!(json(&out)["findings"].is_null());
    for cmd in ["check", "plan"] {
        let out = edgenet(&[cmd, "--offline-check", "-c", &file, "--machine", "2"]);
        assert_eq!(code(&out), 2, "{cmd}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--machine 2 is out of range"));
    }
}

#[test]
fn config_new_writes_configs_that_check_accepts() {
    let dir = tempfile::tempdir().unwrap();
    for deployment in ["single", "scalable"] {
        for nodes in ["linux", "linux-and-windows"] {
            for distro in ["k3s", "k8s"] {
                let file = dir
                    .path()
                    .join(format!("{deployment}-{nodes}-{distro}.json"));
                let f = file.to_str().unwrap();
                let out = edgenet(&[
                    "config",
                    "new",
                    "--deployment-type",
                    deployment,
                    "--node-type",
                    nodes,
                    "--distro",
                    distro,
                    "-f",
                    f,
                ]);
                assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
                let out = edgenet(&["check", "--offline-check", "-c", f, "--output", "json"]);
                let findings = json(&out)["findings"].clone();
                let errors: Vec<&Value> = findings
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|f| f["severity"] == "error")
                    .collect();
                if deployment == "single" {
                    assert_eq!(code(&out), 0, "{findings:#}");
                } else {
                    assert_eq!(code(&out), 1);
                    assert!(
                        !errors.is_empty() && errors.iter().all(|f| f["code"] == "placeholder"),
                        "{findings:#}"
                    );
                }
            }
        }
    }
    // An existing file is kept unless --force.
    let file = dir.path().join("single-linux-k3s.json");
    let out = edgenet(&["config", "new", "--file", file.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    let out = edgenet(&["config", "new", "--node-type", "windows"]);
    assert_eq!(code(&out), 2);
}

#[test]
fn text_output_has_no_colour_when_piped_and_json_errors_are_json() {
    let out = edgenet(&["check"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\x1b'));
    let out = edgenet(&["plan", "-c", "/nonexistent.json", "--output", "json"]);
    assert_eq!(code(&out), 2);
    assert_eq!(json(&out)["error"]["code"], "unreadable-config");
}

#[test]
fn help_everywhere() {
    for args in [
        vec!["--help"],
        vec!["check", "--help"],
        vec!["plan", "--help"],
        vec!["config", "new", "--help"],
    ] {
        let out = edgenet(&args);
        assert_eq!(code(&out), 0);
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
    }
    assert_eq!(code(&edgenet(&["no-such-command"])), 2);
}

#[test]
fn scale_config_writes_a_joining_config_that_checks_and_refuses_used_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("join.json");
    let cluster = fixture("aksee-scalable-first.json");
    let c = cluster.to_str().unwrap();
    let o = out.to_str().unwrap();
    let run = edgenet(&[
        "scale-config",
        "-c",
        c,
        "--linux-node-ip",
        "192.168.1.172",
        "--windows-node-ip",
        "192.168.1.173",
        "-f",
        o,
    ]);
    assert_eq!(code(&run), 0, "{}", String::from_utf8_lossy(&run.stderr));
    let scale: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let original: Value = serde_json::from_slice(&std::fs::read(&cluster).unwrap()).unwrap();
    assert_eq!(
        scale["Network"], original["Network"],
        "same network section"
    );
    assert!(
        scale["Join"].get("ControlPlaneEndpointIp").is_none(),
        "not an AKS EE Join key"
    );
    assert!(scale["Join"].get("ClusterJoinToken").is_some());
    // Join tokens and Arc secrets: readable by the owner only.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        scale["Machines"][0]["LinuxNode"]["Ip4Address"],
        "192.168.1.172"
    );
    assert_eq!(scale["Machines"][0]["LinuxNode"]["ControlPlane"], false);
    let checked = edgenet(&["check", "--offline-check", "-c", o, "--output", "json"]);
    assert_eq!(
        code(&checked),
        0,
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
    // The cluster config and the scale config together: no address twice.
    let mut together = original.clone();
    let mut second = scale["Machines"][0].clone();
    second["MachineName"] = "second".into();
    together["Machines"][0]["MachineName"] = "first".into();
    together["Machines"].as_array_mut().unwrap().push(second);
    let t = dir.path().join("together.json");
    std::fs::write(&t, together.to_string()).unwrap();
    assert_eq!(
        code(&edgenet(&[
            "check",
            "--offline-check",
            "-c",
            t.to_str().unwrap()
        ])),
        0
    );

    for used in ["192.168.1.171", "192.168.1.191", "192.168.1.155"] {
        let refused = edgenet(&["scale-config", "-c", c, "--linux-node-ip", used]);
        assert_eq!(code(&refused), 1, "{used}");
        assert!(String::from_utf8_lossy(&refused.stderr).contains(used));
    }
    let outside = edgenet(&["scale-config", "-c", c, "--linux-node-ip", "10.9.9.9"]);
    assert_eq!(code(&outside), 1);
    assert!(String::from_utf8_lossy(&outside.stderr).contains("address-outside-subnet"));
    let single = edgenet(&[
        "scale-config",
        "-c",
        fixture("aksee-single-machine.json").to_str().unwrap(),
        "--linux-node-ip",
        "192.168.0.9",
    ]);
    assert_eq!(code(&single), 1);
}

/// `EDGENET_MACHINE_NAME` names this machine (B17a 6): scale-config, run in deploy's
/// environment, does not give it to the new machine (which would collide with this one's
/// entry); the new machine's name is `--new-machine-name`.
#[test]
fn scale_config_names_the_new_machine_with_new_machine_name_not_this_machines_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster: Value =
        serde_json::from_slice(&std::fs::read(fixture("aksee-scalable-first.json")).unwrap())
            .unwrap();
    cluster["Machines"][0]["MachineName"] = "m1".into();
    let c = write_temp(&dir, "cluster.json", cluster.to_string().as_bytes());
    let run = |extra: &[&str]| {
        let mut args = vec!["scale-config", "-c", &c, "--linux-node-ip", "192.168.1.172"];
        args.extend(extra);
        Command::new(env!("CARGO_BIN_EXE_edgenet"))
            .args(&args)
            .env_remove("EDGENET_CONFIG")
            .env("EDGENET_MACHINE_NAME", "m1")
            .output()
            .expect("runs edgenet")
    };
    let plain = run(&[]);
    assert_eq!(
        code(&plain),
        0,
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let scale: Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert!(
        scale["Machines"][0].get("MachineName").is_none(),
        "{scale:#}"
    );

    let named = run(&["--new-machine-name", "m2"]);
    assert_eq!(
        code(&named),
        0,
        "{}",
        String::from_utf8_lossy(&named.stderr)
    );
    let scale: Value = serde_json::from_slice(&named.stdout).unwrap();
    assert_eq!(scale["Machines"][0]["MachineName"], "m2", "{scale:#}");

    // On the command line, --machine-name is this machine's too: said, not used.
    let flag = run(&["--machine-name", "m9"]);
    assert_eq!(code(&flag), 0, "{}", String::from_utf8_lossy(&flag.stderr));
    let scale: Value = serde_json::from_slice(&flag.stdout).unwrap();
    assert!(
        scale["Machines"][0].get("MachineName").is_none(),
        "{scale:#}"
    );
    assert!(
        String::from_utf8_lossy(&flag.stderr).contains("--new-machine-name"),
        "{}",
        String::from_utf8_lossy(&flag.stderr)
    );
    let bad = run(&["--new-machine-name", "no/slash"]);
    assert_eq!(code(&bad), 2, "{}", String::from_utf8_lossy(&bad.stderr));
}
