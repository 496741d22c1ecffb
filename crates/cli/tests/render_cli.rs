//! `edgenet render` on the command line: `--out DIR` writes every file where the listing says,
//! secrets 0600; `render TARGET` prints one file (never the token); unknown targets name the
//! known ones. Changes nothing on the host: no root needed.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use serde_json::{json, Value};

fn base_config() -> Value {
    json!({
        "DeploymentType": "SingleMachineCluster",
        "Init": {"ServiceIPRangeSize": 4},
        "Network": {"DnsServers": ["192.0.2.53"], "Ip4AddressPrefix": "192.168.77.0/24"},
        "Machines": [{"LinuxNode": {}}],
        "Edgenet": {"MachineName": "edge01"}
    })
}

fn edgenet(dir: &std::path::Path, args: &[&str]) -> Output {
    edgenet_with(dir, base_config(), args)
}

fn edgenet_with(dir: &std::path::Path, config: Value, args: &[&str]) -> Output {
    support::run_with_config(dir, &config, args, &[])
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
    assert_eq!(out.status.code(), Some(2));
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
    // An input file the command line named is unusable: exit 2 (B21 N7).
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-file"));
    assert!(!out_dir.exists(), "nothing written");
}

#[test]
fn a_second_render_deletes_what_it_no_longer_produces() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out_arg = out_dir.to_str().unwrap();
    let out = edgenet(dir.path(), &["render", "--out", out_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let range = out_dir
        .join("edge01-ledge/var/lib/rancher/k3s/server/manifests/edgenet-service-range.yaml");
    assert!(range.exists());
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join(".edgenet-render.json")).unwrap(),
    )
    .unwrap();
    assert!(manifest["files"].as_array().unwrap().iter().any(
        |f| f == "edge01-ledge/var/lib/rancher/k3s/server/manifests/edgenet-service-range.yaml"
    ));

    // A file of the user's own in DIR is left alone.
    std::fs::write(out_dir.join("notes.txt"), "mine").unwrap();
    let mut config = base_config();
    config["Init"]["ServiceIPRangeSize"] = json!(0);
    let out = edgenet_with(dir.path(), config, &["render", "--out", out_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!range.exists(), "the stale service range is still there");
    assert!(out_dir
        .join("edge01-ledge/etc/rancher/k3s/config.yaml")
        .exists());
    assert!(out_dir.join("notes.txt").exists());
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed"));
}

#[test]
fn a_non_empty_directory_no_render_wrote_is_refused_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::write(out_dir.join("precious"), "x").unwrap();
    let out_arg = out_dir.to_str().unwrap();
    let out = edgenet(dir.path(), &["render", "--out", out_arg]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not empty") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&out_dir).unwrap().count(),
        1,
        "nothing written"
    );
    let out = edgenet(dir.path(), &["render", "--out", out_arg, "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out_dir.join("precious").exists());
    assert!(out_dir.join(".edgenet-render.json").exists());
}

#[test]
fn printed_proxy_env_masks_the_password_and_the_files_are_0600() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config();
    config["Network"]["Proxy"] = json!({
        "Http": "http://bob:s3cret@proxy.corp.example:3128",
        "Https": "http://bob:s3cret@proxy.corp.example:3128",
        "No": "corp.example"
    });
    let out = edgenet_with(dir.path(), config.clone(), &["render", "proxy-env"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("s3cret") && text.contains("bob:***@proxy"),
        "{text}"
    );
    let out_dir = dir.path().join("out");
    let out = edgenet_with(
        dir.path(),
        config,
        &[
            "--output",
            "json",
            "render",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = out_dir.join("edge01-ledge/etc/systemd/system/k3s.service.env");
    assert_eq!(
        std::fs::metadata(&env).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let listing: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["target"] == "proxy-env")
        .unwrap();
    assert_eq!(entry["secret"], true);
}

#[test]
fn command_line_mistakes_exit_2_naming_the_argument() {
    let dir = tempfile::tempdir().unwrap();
    let out = edgenet(dir.path(), &["render", "k3s-config", "--machine", "9"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--machine 9"), "{err}");

    let empty = dir.path().join("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    let out = edgenet(
        dir.path(),
        &[
            "render",
            "k3s-config",
            "--token-file",
            empty.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(empty.to_str().unwrap()) && err.contains("empty"),
        "{err}"
    );
}

#[test]
fn a_join_token_in_the_config_is_named_as_unused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config();
    config["Join"] = json!({"ClusterJoinToken": "K10fromconfig"});
    let out = edgenet_with(dir.path(), config, &["render", "k3s-config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Join.ClusterJoinToken") && err.contains("--token-file"),
        "{err}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("K10fromconfig"));
}

/// B21 N9: `render --help` and the "no file" hint name the same targets, and every file a
/// render lists (K3s and K8s, Linux and Windows nodes) has one of them.
#[test]
fn help_and_the_no_file_hint_list_the_same_targets() {
    let dir = tempfile::tempdir().unwrap();
    let help = edgenet(dir.path(), &["render", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout).replace('\n', " ");
    let help: String = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let listed = help
        .split("instead of writing them all: ")
        .nth(1)
        .and_then(|t| t.split(" (").next())
        .unwrap_or_else(|| panic!("no target list in {help}"));
    let targets: Vec<&str> = listed.split(", ").collect();
    assert!(targets.contains(&"node-exec"), "{help}");
    let out = edgenet(dir.path(), &["render", "no-such-thing"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let every = err
        .split("every target")
        .nth(1)
        .unwrap_or_else(|| panic!("{err}"));
    for t in &targets {
        assert!(every.contains(t), "{t} missing from the hint: {err}");
    }
    let mut config = base_config();
    config["Machines"][0]["WindowsNode"] = json!({});
    for distribution in ["K3s", "K8s"] {
        config["Edgenet"]["Distribution"] = json!(distribution);
        let out_dir = dir.path().join(format!("out-{distribution}"));
        let out = edgenet_with(
            dir.path(),
            config.clone(),
            &[
                "--output",
                "json",
                "render",
                "--out",
                out_dir.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing: Value = serde_json::from_slice(&out.stdout).unwrap();
        for f in listing["files"].as_array().unwrap() {
            let t = f["target"].as_str().unwrap_or_else(|| panic!("{f}"));
            assert!(targets.contains(&t), "{t} not in --help: {listed}");
        }
    }
}
