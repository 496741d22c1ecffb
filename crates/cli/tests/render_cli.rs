//! `edgenet render` on the command line: `--out DIR` writes every file where the listing says,
//! secrets 0600; `render TARGET` prints one file (never the token); unknown targets name the
//! known ones. Changes nothing on the host: no root needed.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn edgenet(dir: &std::path::Path, args: &[&str]) -> Output {
    let config = json!({
        "DeploymentType": "SingleMachineCluster",
        "Init": {"ServiceIPRangeSize": 4},
        "Network": {"DnsServers": ["192.0.2.53"], "Ip4AddressPrefix": "192.168.77.0/24"},
        "Machines": [{"LinuxNode": {}}],
        "Edgenet": {"MachineName": "edge01"}
    });
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    Command::new(env!("CARGO_BIN_EXE_edgenet"))
        .arg("-c")
        .arg(&path)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn out_dir_holds_every_listed_file_and_a_readme() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "K10secret-token-value\n").unwrap();
    let out_dir = dir.path().join("out");
    let out = edgenet(
        dir.path(),
        &[
            "--output",
            "json",
            "render",
            "--out",
            out_dir.to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listing["schema"], "edgenet.render/v1");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("K10secret"),
        "the token is never listed"
    );
    let files = listing["files"].as_array().unwrap();
    assert!(files.len() >= 6);
    for f in files {
        let node = f["node"].as_str().unwrap();
        let path = f["path"].as_str().unwrap();
        let on_disk = out_dir.join(node).join(path.trim_start_matches('/'));
        let meta =
            std::fs::metadata(&on_disk).unwrap_or_else(|e| panic!("{}: {e}", on_disk.display()));
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(
            mode,
            f["mode"].as_u64().unwrap() as u32,
            "{}",
            on_disk.display()
        );
        assert!(f["consumer"].as_str().is_some_and(|c| !c.is_empty()));
    }
    let config =
        std::fs::read_to_string(out_dir.join("edge01-ledge/etc/rancher/k3s/config.yaml")).unwrap();
    assert!(config.contains("token-file: /etc/rancher/k3s/edgenet-token"));
    assert!(!config.contains("K10secret"));
    let token_file = out_dir.join("edge01-ledge/etc/rancher/k3s/edgenet-token");
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap(),
        "K10secret-token-value\n"
    );
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let readme = std::fs::read_to_string(out_dir.join("README")).unwrap();
    assert!(readme.contains("systemctl enable --now k3s"));
    assert!(!readme.contains("K10secret"));
}

#[test]
fn one_target_is_printed_and_the_token_is_masked() {
    let dir = tempfile::tempdir().unwrap();
    let out = edgenet(dir.path(), &["render", "k3s-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("node-ip:\n- \"192.168.77.2\"") || text.contains("node-ip:\n- 192.168.77.2"),
        "{text}"
    );

    let token = dir.path().join("token");
    std::fs::write(&token, "K10secret-token-value").unwrap();
    let out = edgenet(
        dir.path(),
        &[
            "render",
            "k3s-token",
            "--token-file",
            token.to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("K10secret"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("***"));

    let out = edgenet(dir.path(), &["render", "powershell"]);
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("New-VMSwitch -Name 'aksedgesw-int' -SwitchType Internal"));
    let out = edgenet(dir.path(), &["render", "ports"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("8472"));

    let out = edgenet(dir.path(), &["render", "kubeconfig"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no file \"kubeconfig\"") && err.contains("k3s-config"),
        "{err}"
    );
}

#[test]
fn a_bad_token_file_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "two words").unwrap();
    let out_dir = dir.path().join("out");
    let out = edgenet(
        dir.path(),
        &[
            "render",
            "--out",
            out_dir.to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-file"));
    assert!(!out_dir.exists(), "nothing written");
}
