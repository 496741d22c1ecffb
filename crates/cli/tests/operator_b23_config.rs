//! Findings of the black-box operator test B23 about configs and what edgenet says: 8 (a
//! `deploy -c` renamed the nodes to the host name), 1 (AksEdgeDeploy's K8s preview template),
//! 12 (NetworkManager's recipe for a static adapter), 2 (adapter names offline), 16 (processes
//! in a node namespace at remove), 10 (loopback port forwards) and the nits of 7. Namespaces
//! are named `g3-…`.

mod support;

use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::*;

fn json_out(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn codes(findings: &Value) -> Vec<String> {
    findings
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["code"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `edgenet ARGS` outside any machine namespace (offline checks), with `config` in a temp file
/// named by `{config}` in the arguments.
fn offline(config: &[u8], args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.json");
    std::fs::write(&file, config).unwrap();
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{config}", file.to_str().unwrap()))
        .collect();
    edgenet_cmd().args(&args).output().unwrap()
}

/// F8: the machine name a deployment was made with is kept by `deploy -c FILE` without
/// `--machine-name`, and said; a rename happens only when asked.
#[test]
fn a_deploy_with_c_keeps_the_recorded_machine_name() {
    let Some(m) = machine_prefixed("g3", "keep") else {
        return;
    };
    let cfg = m.default_config();
    m.ok(&["deploy", "--machine-name", "g3site", "-c", &cfg]);
    let id = m.state_id().unwrap();
    let before = m.node_namespaces();
    assert_eq!(before, vec![format!("g3site-ledge-{id}")]);

    // The operator re-applies the site file (a DNS change) without repeating the flag.
    let out = m.edgenet(&["deploy", "-c", &cfg, "-o", "json"]);
    let report = json_out(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(m.node_namespaces(), before, "the nodes were renamed");
    assert!(
        sh_out("ip netns list").contains(&format!("g3site-ledge-{id}")),
        "the kernel's namespace keeps its name"
    );
    assert_eq!(report["plan"]["machine"]["name"], "g3site", "{report:#}");
    let kept = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "machine-name-kept")
        .unwrap_or_else(|| panic!("not said: {report:#}"));
    assert_eq!(kept["severity"], "notice");
    assert!(
        kept["hint"].as_str().unwrap().contains("--machine-name"),
        "{kept:#}"
    );
    // Said on stderr in text output too.
    let out = m.edgenet(&["deploy", "-c", &cfg]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("machine-name-kept"), "{err}");
    assert_eq!(m.node_namespaces(), before);

    // A rename when asked.
    m.ok(&["deploy", "--machine-name", "g3new", "-c", &cfg]);
    assert_eq!(m.node_namespaces(), vec![format!("g3new-ledge-{id}")]);
    // A name the file writes wins over the recorded one (asked in the file).
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    v["Edgenet"] = json!({"MachineName": "g3file"});
    let named = m.write_config("named.json", &v);
    let out = m.edgenet(&["deploy", "-c", &named, "-o", "json"]);
    let report = json_out(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(m.node_namespaces(), vec![format!("g3file-ledge-{id}")]);
    assert!(!codes(&report["warnings"]).contains(&"machine-name-kept".to_string()));
}

/// F1: AksEdgeDeploy's user config names the product (K8s) and its template writes flannel:
/// the distribution was derived, not written, so the contradiction is a warning (K8s with
/// calico is planned), not an error; an explicit Edgenet.Distribution stays an error.
#[test]
fn a_derived_distribution_contradicting_the_plugin_is_a_warning() {
    let aide = json!({
        "SchemaVersion": "1.1",
        "KubernetesDistribution": "",
        "AksEdgeProduct": "Azure Kubernetes Service Edge Essentials - K8s (Public Preview)",
        "DeployOptions": {"NetworkPlugin": "flannel", "SingleMachineCluster": true, "NodeType": "Linux"},
        "EndUser": {"AcceptEula": true},
        "LinuxVm": {"CpuCount": 4, "MemoryInMB": 4096},
        "Network": {"InternetDisabled": false}
    });
    let out = offline(
        aide.to_string().as_bytes(),
        &["check", "--offline-check", "-c", "{config}", "-o", "json"],
    );
    let report = json_out(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "plugin-mismatch")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["path"], "DeployOptions.NetworkPlugin");
    let out = offline(
        aide.to_string().as_bytes(),
        &["plan", "--offline-check", "-c", "{config}", "-o", "json"],
    );
    let plan = json_out(&out);
    assert_eq!(plan["distribution"], "k8s", "{plan:#}");
    assert_eq!(plan["kubernetes"]["network_plugin"], "calico", "{plan:#}");

    let explicit = json!({
        "DeploymentType": "SingleMachineCluster",
        "Network": {"NetworkPlugin": "flannel"},
        "Edgenet": {"Distribution": "k8s"}
    });
    let out = offline(
        explicit.to_string().as_bytes(),
        &["check", "--offline-check", "-c", "{config}", "-o", "json"],
    );
    let report = json_out(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert!(report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "plugin-mismatch" && f["severity"] == "error"));
}

/// F2: adapter names Linux cannot use are refused offline too.
#[test]
fn adapter_names_linux_cannot_use_are_refused_offline() {
    for name in ["Ethernet 2", "averyveryverylongname0", "eth0\u{0}x"] {
        let mut v = site_config(name);
        v["Machines"][0]["MachineName"] = json!("g3m");
        let out = offline(
            v.to_string().as_bytes(),
            &["check", "--offline-check", "-c", "{config}", "-o", "json"],
        );
        let report = json_out(&out);
        assert_eq!(out.status.code(), Some(1), "{name:?}: {report:#}");
        let f = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == "invalid-name")
            .unwrap_or_else(|| panic!("{name:?}: {report:#}"));
        assert_eq!(f["path"], "Machines[0].NetworkConnection.AdapterName");
        assert!(f["hint"].as_str().unwrap().contains("ip -br link"));
    }
}

/// F2: `plan` escapes a control character in the adapter's name as `check` does, never
/// printing it raw.
#[test]
fn plan_text_escapes_a_nul_in_the_adapter_name() {
    let Some(m) = machine_prefixed("g3", "nul") else {
        return;
    };
    let v = site_config("eth0\u{0}x");
    let file = m.write_config("nul.json", &v);
    let out = m.edgenet(&["plan", "--offline-check", "-c", &file]);
    assert!(
        !out.stdout.contains(&0) && !out.stderr.contains(&0),
        "a raw NUL: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// F12: NetworkManager's recipe for an adapter with a static address keeps it (manual, with
/// its address, gateway and DNS); `auto` only for a leased one.
#[test]
fn the_network_manager_recipe_keeps_a_static_address() {
    let Some(m) = machine_prefixed("g3", "nm") else {
        return;
    };
    let _lan = adapter_lan(&m, false);
    let index = link(&m.ip_json("link show"), "up0").unwrap()["ifindex"]
        .as_u64()
        .unwrap();
    let nm = m.dir.path().join("nm");
    std::fs::create_dir_all(nm.join("devices")).unwrap();
    std::fs::write(
        nm.join(format!("devices/{index}")),
        "[device]\nmanaged=true\n",
    )
    .unwrap();
    let cfg = m.write_config("site.json", &site_config("up0"));
    let env = [("EDGENET_NM_RUN_DIR", nm.to_str().unwrap())];
    let recipe = |_: &str| {
        let out = m.edgenet_env(&["check", "-c", &cfg, "-o", "json"], &env);
        let report = json_out(&out);
        assert_eq!(out.status.code(), Some(1), "{report:#}");
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == "adapter-managed")
            .unwrap_or_else(|| panic!("{report:#}"))["hint"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let hint = recipe("static");
    assert!(
        hint.contains("ipv4.method manual ipv4.addresses 198.18.0.11/24 ipv4.gateway 198.18.0.1 ipv4.dns 198.18.0.1\n"),
        "{hint}"
    );
    assert!(!hint.contains("ipv4.method auto"), "{hint}");
    // A leased address (a lifetime, as a DHCP client sets it): auto.
    sh(&format!(
        "ip -n {ns} addr change 198.18.0.11/24 dev up0 valid_lft 3600 preferred_lft 3600",
        ns = m.ns
    ));
    let hint = recipe("dynamic");
    assert!(hint.contains("ipv4.method auto\n"), "{hint}");
    assert!(!hint.contains("ipv4.method manual"), "{hint}");
}

/// F16: processes that still run in a node namespace are named by status and by remove
/// (which completes: they are not edgenet's), with the fix.
#[test]
fn processes_left_in_a_node_namespace_are_named() {
    let Some(m) = machine_prefixed("g3", "proc") else {
        return;
    };
    m.deploy(Some(&m.default_config()));
    let ns = m.linux_node_namespace();
    let mut child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .args(["sleep", "300"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let guard = Kill(&mut child);
    // Until its exec is done the process is `nsenter`: wait until it is in the namespace.
    let inode = |p: &str| std::fs::read_link(p).map(|l| l.display().to_string()).ok();
    let node_ns = sh_out(&format!("ip netns exec {ns} readlink /proc/self/ns/net"));
    for _ in 0..200 {
        if inode(&format!("/proc/{pid}/ns/net")).as_deref() == Some(node_ns.trim())
            && std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
                == b"sleep\x00300\x00"
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

    let (_, status) = m.json(&["status"]);
    let said = format!("sleep 300 (pid {pid})");
    assert!(
        status["notices"]
            .as_array()
            .is_some_and(|n| n.iter().any(|l| l.as_str().unwrap().contains(&said))),
        "{status:#}"
    );
    let out = m.edgenet(&["remove", "-o", "json"]);
    let report = json_out(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    let left = report["left"].as_array().unwrap();
    let line = left
        .iter()
        .filter_map(|l| l.as_str())
        .find(|l| l.contains(&said))
        .unwrap_or_else(|| panic!("{report:#}"));
    assert!(
        line.contains(&ns) && line.contains("systemctl stop"),
        "{line}"
    );
    // What the kernel shows: the name is gone, the namespace lives on with the process.
    assert!(!netns_exists(&ns));
    assert_eq!(
        inode(&format!("/proc/{pid}/ns/net")).as_deref(),
        Some(node_ns.trim())
    );
    drop(guard);
}

/// F10: `plan` says that loopback is not forwarded.
#[test]
fn plan_says_port_forwards_are_not_at_loopback() {
    let v = json!({
        "DeploymentType": "SingleMachineCluster",
        "Edgenet": {"PortForwards": [{"Protocol": "tcp", "HostPort": 8080, "Node": "linux", "NodePort": 80}]}
    });
    let out = offline(
        v.to_string().as_bytes(),
        &["plan", "--offline-check", "-c", "{config}"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("not at 127.0.0.1"), "{text}");
}

/// F7: the nits.
#[test]
fn the_nits_of_b23() {
    // Two byte-order marks, an empty file: named.
    let out = offline(
        b"\xef\xbb\xbf\xef\xbb\xbf{}",
        &["check", "--offline-check", "-c", "{config}"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("second byte-order mark"), "{err}");
    let out = offline(b"", &["check", "--offline-check", "-c", "{config}"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the file is empty"), "{err}");
    // `null` said once.
    let out = offline(
        br#"{"DeploymentType":"SingleMachineCluster","Network":{"DnsServers":["198.51.100.1",null]}}"#,
        &["check", "--offline-check", "-c", "{config}"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Network.DnsServers[1] is null, expected"),
        "{text}"
    );
    // --machine-name in capitals: read in lower case with a notice, as MachineName is.
    let out = offline(
        br#"{"DeploymentType":"SingleMachineCluster"}"#,
        &[
            "plan",
            "--offline-check",
            "-c",
            "{config}",
            "--machine-name",
            "G3EDGE01",
            "-o",
            "json",
        ],
    );
    let plan = json_out(&out);
    assert_eq!(out.status.code(), Some(0), "{plan:#}");
    assert_eq!(plan["machine"]["name"], "g3edge01");
    assert!(String::from_utf8_lossy(&out.stderr).contains("machine-name-case"));
    // A multi-machine config without --machine: a command-line omission, exit 2.
    let mut two = site_config("eth0");
    let mut second = two["Machines"][0].clone();
    second["MachineName"] = json!("m1");
    second["LinuxNode"]["Ip4Address"] = json!("198.18.0.102");
    second["LinuxNode"]["ControlPlane"] = json!(false);
    two["Machines"].as_array_mut().unwrap().push(second);
    let out = offline(
        two.to_string().as_bytes(),
        &["plan", "--offline-check", "-c", "{config}", "-o", "json"],
    );
    let report = json_out(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    assert_eq!(report["error"]["code"], "invalid-arguments");
    assert!(report["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("--machine"));
    // AksEdgeDeploy's user config schema 1.3 is not a deployment config's unknown version.
    let out = offline(
        br#"{"SchemaVersion":"1.3","AksEdgeProduct":"AKS Edge Essentials - K3s","AksEdgeConfigFile":"aio-aksedge-config.json"}"#,
        &["check", "--offline-check", "-c", "{config}", "-o", "json"],
    );
    let report = json_out(&out);
    let found = codes(&report["findings"]);
    assert!(found.contains(&"wrong-file".to_string()), "{report:#}");
    assert!(
        !found.contains(&"unknown-schema-version".to_string()),
        "{report:#}"
    );
    // `render` names no unused token for the `""` that `scale-config` writes (not set).
    let dir = tempfile::tempdir().unwrap();
    let mut join = json!({
        "DeploymentType": "SingleMachineCluster",
        "Network": {"DnsServers": ["192.0.2.53"], "Ip4AddressPrefix": "192.168.77.0/24"},
        "Machines": [{"LinuxNode": {}}],
        "Edgenet": {"MachineName": "g3edge"}
    });
    join["Join"] =
        json!({"ClusterJoinToken": "", "DiscoveryTokenHash": "", "CertificateKey": null});
    let out = run_with_config(dir.path(), &join, &["render", "k3s-config"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("is not used"), "{err}");
    join["Join"]["ClusterJoinToken"] = json!("K10fromconfig");
    let out = run_with_config(dir.path(), &join, &["render", "k3s-config"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Join.ClusterJoinToken in the config is not used"),
        "{err}"
    );
    assert!(!err.contains("Join.DiscoveryTokenHash"), "{err}");
    // `-o json` after `node exec` (json-output.md: before or after the command).
    let out = edgenet_cmd()
        .args([
            "node",
            "exec",
            "-o",
            "json",
            "--state-dir",
            "/nonexistent-g3",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    let report = json_out(&out);
    assert_eq!(report["schema"], "edgenet.error/v1", "{report:#}");
    assert_ne!(report["error"]["code"], "usage", "{report:#}");
}

/// F7/F8: `deploy -c` of a multi-machine file without `--machine` is a command-line omission
/// (exit 2, nothing changed), and the hint names the machine this state directory deployed.
#[test]
fn a_multi_machine_deploy_without_machine_names_the_deployed_one() {
    let Some(m) = machine_prefixed("g3", "mm") else {
        return;
    };
    let _lan = adapter_lan(&m, false);
    let mut two = site_config("up0");
    let mut second = two["Machines"][0].clone();
    second["MachineName"] = json!("m1");
    second["LinuxNode"]["Ip4Address"] = json!("198.18.0.102");
    second["LinuxNode"]["ControlPlane"] = json!(false);
    two["Machines"].as_array_mut().unwrap().push(second);
    two["Machines"][0]["LinuxNode"]["ControlPlane"] = json!(true);
    two["Machines"][1]["LinuxNode"]["ControlPlane"] = json!(true);
    let mut third = two["Machines"][1].clone();
    third["MachineName"] = json!("m2");
    third["LinuxNode"]["Ip4Address"] = json!("198.18.0.103");
    two["Machines"].as_array_mut().unwrap().push(third);
    let file = m.write_config("three.json", &two);
    m.ok(&["deploy", "-c", &file, "--machine", "0"]);
    let before = m.dump();
    let out = m.edgenet(&["deploy", "-c", &file, "-o", "json"]);
    let report = json_out(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    assert_eq!(report["error"]["code"], "invalid-arguments");
    assert!(
        report["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("machine 0 (m0), so --machine 0"),
        "{report:#}"
    );
    assert_eq!(m.dump(), before);
}
