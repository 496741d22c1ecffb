//! What an operator tester met (B19) through the binary: a site renumbered under a deployment
//! (check, deploy and status say so; the gateway's silence on ARP too), and the command-line
//! contract around `-o json` and `-c` (render without TARGET, install-unit, remove).

mod support;

use std::process::{Command, Output};

use serde_json::{json, Value};
use support::*;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgenet"));
    cmd.env_remove("EDGENET_CONFIG")
        .env_remove("EDGENET_LOG")
        .env("NO_COLOR", "1");
    cmd
}

fn json_of_output(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn render_without_a_target_names_what_is_missing_in_json_too() {
    let out = bin().args(["render", "-o", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let v = json_of_output(&out);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("TARGET") && message.contains("--out") && message.contains("k3s-config"),
        "{message}"
    );
    assert_eq!(v["schema"], "edgenet.render/v1");
}

#[test]
fn install_unit_refuses_json_wherever_o_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let before = bin()
        .args(["-o", "json", "install-unit", "--print", "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(before.status.code(), Some(2), "{before:?}");
    let v = json_of_output(&before);
    assert_eq!(v["error"]["code"], "unsupported-format", "{v:#}");
    // As after the command (clap's usage error): exit 2 both ways.
    let after = bin()
        .args(["install-unit", "--print", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(after.status.code(), Some(2), "{after:?}");
    // Text still prints the unit.
    let text = bin()
        .args(["install-unit", "--print", "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(text.status.success(), "{text:?}");
    assert!(String::from_utf8_lossy(&text.stdout).contains("ExecStart="));
}

#[test]
fn remove_refuses_a_config_given_before_it_as_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("site.json");
    std::fs::write(&config, "{}").unwrap();
    let out = bin()
        .arg("-c")
        .arg(&config)
        .args(["-o", "json", "remove", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let v = json_of_output(&out);
    assert_eq!(v["error"]["code"], "invalid-arguments", "{v:#}");
    assert!(v["error"]["message"].as_str().unwrap().contains("recorded"));
    let after = bin().arg("remove").arg("-c").arg(&config).output().unwrap();
    assert_eq!(after.status.code(), Some(2), "{after:?}");
    // EDGENET_CONFIG set for every command (a profile, a unit) is not a word of this command
    // line: remove goes on.
    let env = bin()
        .env("EDGENET_CONFIG", &config)
        .args(["remove", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(env.status.success(), "{env:?}");
}

fn site(gateway_octets: &str) -> Value {
    json!({
        "DeploymentType": "ScalableCluster",
        "Init": {"ServiceIPRangeStart": "198.18.0.200", "ServiceIPRangeSize": 4},
        "Network": {"ControlPlaneEndpointIp": "198.18.0.100", "Ip4GatewayAddress": format!("{gateway_octets}.1"),
                    "Ip4PrefixLength": 24, "DnsServers": ["198.18.0.1"]},
        "Machines": [{"MachineName": "m0", "NetworkConnection": {"AdapterName": "eth0"},
                      "LinuxNode": {"Ip4Address": "198.18.0.101", "ControlPlane": true}}],
    })
}

fn codes(check: &Value) -> Vec<String> {
    check["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_site_renumbered_under_the_deployment_is_said_by_check_deploy_and_status() {
    let Some(lan) = lan("v19lan", 1) else { return };
    let m = &lan.machines[0];
    let cfg = m.write_config("site.json", &site("198.18.0"));
    let check = |cfg: &str| -> Value {
        serde_json::from_slice(&m.edgenet(&["check", "-c", cfg, "-o", "json"]).stdout).unwrap()
    };
    let clean = check(&cfg);
    assert!(
        !codes(&clean)
            .iter()
            .any(|c| c == "lan-mismatch" || c == "gateway-silent"),
        "{clean:#}"
    );
    m.ok(&["deploy", "-c", &cfg]);
    let status: Value = serde_json::from_str(&m.ok(&["status", "-o", "json"])).unwrap();
    assert!(status["notices"].is_null(), "{status:#}");

    // The site is renumbered by DHCP: the host's address (on the switch now) and the router
    // move to 10.20.0.0/24; the deployment still says 198.18.0.0/24.
    sh(&format!(
        "ip -n {ns} addr flush dev aksedgesw-ext && ip -n {ns} addr add 10.20.0.5/24 dev aksedgesw-ext && \
         ip -n {ns} route replace default via 10.20.0.1 dev aksedgesw-ext && \
         ip -n {l} addr flush dev lan0 && ip -n {l} addr add 10.20.0.1/24 dev lan0",
        ns = m.ns,
        l = lan.lan_ns()
    ));
    // (Whether status also calls the route it recorded drift is not this test's matter.)
    let status: Value =
        serde_json::from_slice(&m.edgenet(&["status", "-o", "json"]).stdout).unwrap();
    let notices = status["notices"].to_string();
    assert!(
        notices.contains("10.20.0.0/24") && notices.contains("198.18.0.0/24"),
        "{status:#}"
    );
    let found = codes(&check(&cfg));
    assert!(found.iter().any(|c| c == "lan-mismatch"), "{found:?}");
    assert!(found.iter().any(|c| c == "gateway-silent"), "{found:?}");
    // Deploy goes on (a boot must not be stuck) and carries both warnings.
    let deploy: Value = serde_json::from_str(&m.ok(&["deploy", "-c", &cfg, "-o", "json"])).unwrap();
    let warned = deploy["warnings"].to_string();
    assert!(
        warned.contains("lan-mismatch") && warned.contains("gateway-silent"),
        "{deploy:#}"
    );
    m.ok(&["remove"]);
}

/// B26 note: a unit installed with a state directory (or config) that a reboot empties, or from
/// inside a network namespace, would deploy anew or elsewhere at boot: said on stderr, the unit
/// still printed. A directory that survives says nothing.
#[test]
fn install_unit_warns_of_what_a_reboot_takes_or_where_the_unit_runs() {
    let under_tmp = tempfile::Builder::new()
        .prefix("edgenet-b26-")
        .tempdir_in("/tmp")
        .unwrap();
    let out = bin()
        .args(["install-unit", "--print", "--state-dir"])
        .arg(under_tmp.path().join("state"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ExecStart="));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: the state directory")
            && err.contains("/tmp, which is emptied at boot"),
        "{err}"
    );
    // On a disk that a reboot keeps: nothing to say about the state directory. The build's
    // own directory may itself be under /tmp (a clone there), so the first place that is not.
    let Some(kept) = [env!("CARGO_TARGET_TMPDIR"), "/var/tmp", "/var/lib"]
        .into_iter()
        .map(std::path::Path::new)
        .find(|p| survives_reboot(p))
        .and_then(|p| {
            tempfile::Builder::new()
                .prefix("edgenet-b26-")
                .tempdir_in(p)
                .ok()
        })
    else {
        eprintln!("skipped (the part with a kept directory): no directory here survives a reboot");
        return;
    };
    let out = bin()
        .args(["install-unit", "--print", "--state-dir"])
        .arg(kept.path().join("state"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("state directory"), "{err}");
    // B27 F8: reached through a link, /tmp is still /tmp.
    let link = kept.path().join("to-tmp");
    std::os::unix::fs::symlink(under_tmp.path(), &link).unwrap();
    let out = bin()
        .args(["install-unit", "--print", "--state-dir"])
        .arg(link.join("state"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/tmp, which is emptied at boot"), "{err}");
    // B27 F9: the unit cannot read standard input at boot.
    let out = bin()
        .args(["install-unit", "--print", "-c", "-", "--state-dir"])
        .arg(kept.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("-c - (standard input)"), "{err}");
    if !is_root() {
        eprintln!("skipped (the network namespace part): needs root");
        return;
    }
    let Some(m) = machine_prefixed("b26", "unit") else {
        return;
    };
    let out = m.edgenet(&["install-unit", "--print"]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "this command runs in the network namespace {},",
            m.ns
        )) || err.contains("a network namespace other than PID 1's"),
        "{err}"
    );
}

/// Whether `dir` is neither under /tmp nor on a tmpfs (as `install-unit` judges it).
fn survives_reboot(dir: &std::path::Path) -> bool {
    let Ok(real) = std::fs::canonicalize(dir) else {
        return false;
    };
    !real.starts_with("/tmp")
        && nix::sys::statfs::statfs(&real)
            .is_ok_and(|fs| fs.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC)
}
