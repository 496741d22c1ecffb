//! Findings of the black-box operator test B23b about inputs and what edgenet says: F8 (a
//! control character in a proxy URL reached the node's `proxy.env`), F1/F11 (`--help` and
//! `--version` whose output is lost exited 0) and F2 (`render` after `deploy --machine-name`
//! said the plan differs). Namespaces are named `x3-…`.

mod support;

use serde_json::Value;
use support::*;

fn single_machine() -> Value {
    let path = format!(
        "{}/../../examples/single-machine.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// F8: a control character anywhere in `Proxy.Http`/`Https` — the URL parser drops newlines
/// and tabs and encodes the rest, so only the raw value shows it — is a `proxy-url` error
/// naming the field, the value escaped and the fix; `check` exits 1.
#[test]
fn a_control_character_in_a_proxy_url_is_a_config_error() {
    let cases = [
        (
            "Http",
            "http://proxy.example.com:3128/\nLD_PRELOAD=/tmp/x3evil.so\n",
        ),
        ("Https", "http://proxy.example.com:3128/x\rY"),
        ("Http", "http://proxy.example.com:3128/\u{1b}[2J"),
        ("Https", "http://proxy.example.com:3128/?q=a\u{0}b"),
        ("Http", "http://proxy.example.com:3128/a\tb"),
        ("Http", "http://proxy.example.com:3128/\u{7f}"),
    ];
    for (field, url) in cases {
        let mut cfg = single_machine();
        cfg["Network"]["Proxy"]["Http"] = "http://proxy.example.com:3128".into();
        cfg["Network"]["Proxy"][field] = url.into();
        let dir = tempfile::tempdir().unwrap();
        let out = run_with_config(
            dir.path(),
            &cfg,
            &["check", "--offline-check", "-o", "json"],
            &[],
        );
        assert_eq!(out.status.code(), Some(1), "{url:?}: {}", text(&out));
        let report = stdout_json(&out);
        let finding = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == "proxy-url")
            .unwrap_or_else(|| panic!("{url:?}: no proxy-url error: {report:#}"));
        assert_eq!(
            finding["path"],
            format!("Network.Proxy.{field}"),
            "{finding:#}"
        );
        let message = finding["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("Network.Proxy.{field}")),
            "{message}"
        );
        assert!(message.contains("control character"), "{message}");
        assert!(
            !message.chars().any(|c| c.is_control()),
            "the value is not escaped: {message:?}"
        );
        // The value, escaped as Rust and JSON write it (`\n`, `\u{1b}`…).
        let escaped: String = format!("{url:?}").chars().skip(1).take(35).collect();
        assert!(
            message.contains(&escaped),
            "the value is not named escaped ({escaped}): {message}"
        );
        let hint = finding["hint"].as_str().unwrap();
        assert!(
            hint.contains("remove") && hint.contains("percent-encode"),
            "{hint}"
        );

        // Text: the same, and no raw control character reaches the terminal.
        let out = run_with_config(dir.path(), &cfg, &["check", "--offline-check"], &[]);
        assert_eq!(out.status.code(), Some(1), "{url:?}: {}", text(&out));
        let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
        let all = String::from_utf8_lossy(&all);
        assert!(all.contains("proxy-url"), "{all}");
        assert!(
            !all.chars().any(|c| c.is_control() && c != '\n'),
            "raw control character printed: {all:?}"
        );
        // `plan` refuses the config the same way and prints nothing raw either.
        let out = run_with_config(dir.path(), &cfg, &["plan", "--offline-check"], &[]);
        assert_eq!(out.status.code(), Some(1), "{url:?}: {}", text(&out));
        let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
        let all = String::from_utf8_lossy(&all);
        assert!(
            !all.chars().any(|c| c.is_control() && c != '\n'),
            "raw control character printed: {all:?}"
        );
    }
    // Percent-encoded, the same characters are fine.
    let mut cfg = single_machine();
    cfg["Network"]["Proxy"]["Http"] = "http://proxy.example.com:3128/a%0Ab%1B".into();
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_config(dir.path(), &cfg, &["check", "--offline-check"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// F8: `deploy` of such a config changes nothing: no state, no link, no node namespace, no
/// `proxy.env`.
#[test]
fn deploy_refuses_a_proxy_url_with_a_newline_and_changes_nothing() {
    let Some(m) = machine_prefixed("x3", "pxnl") else {
        return;
    };
    let mut cfg = single_machine();
    cfg["Network"]["Proxy"]["Http"] =
        "http://proxy.example.com:3128/\nLD_PRELOAD=/tmp/x3evil.so\n".into();
    let file = m.write_config("proxy-nl.json", &cfg);
    let links_before = m.ip_json("link show");
    let nft_before = m.nft_json();
    let netns_before = sh_out("ip netns list");
    let out = m.edgenet(&["deploy", "-c", &file, "--machine-name", "x3pn"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("proxy-url"), "{}", text(&out));
    assert_eq!(m.ip_json("link show"), links_before);
    assert_eq!(m.nft_json(), nft_before);
    assert_eq!(sh_out("ip netns list"), netns_before);
    assert!(
        !m.state.join("state.json").exists(),
        "a deployment was recorded"
    );
    assert!(!m.state.join("nodes").exists(), "node files were written");
}

/// F1: `--help` and `--version` are reports on standard output too: to a full disk they are a
/// write error (exit 3, code `write` on stderr), not exit 0 with the text lost; written, they
/// are what clap prints (exit 0).
#[test]
fn help_and_version_to_a_full_disk_are_write_errors() {
    let full = || {
        std::process::Stdio::from(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .expect("/dev/full"),
        )
    };
    for args in [
        vec!["--help"],
        vec!["-h"],
        vec!["--version"],
        vec!["-V"],
        vec!["deploy", "--help"],
        vec!["help", "status"],
    ] {
        let out = edgenet_cmd().args(&args).stdout(full()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(
            stderr.contains("edgenet: cannot write the")
                && stderr.contains("No space left on device"),
            "{args:?}: {stderr}"
        );
        let ok = edgenet_cmd().args(&args).output().unwrap();
        assert_eq!(ok.status.code(), Some(0), "{args:?}: {}", text(&ok));
        assert!(
            !ok.stdout.is_empty() && ok.stderr.is_empty(),
            "{}",
            text(&ok)
        );
    }
    let out = edgenet_cmd()
        .args(["-o", "json", "--version"])
        .stdout(full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&out.stderr).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(v["error"]["code"], "write", "{v}");
    assert_eq!(v["exit"], 3, "{v}");
}

/// F2: after `deploy --machine-name NAME`, `render` without `-c` nor `--machine-name`
/// renders the deployment as its machine, as `deploy` keeps the name: no "plan differs"
/// notice telling to run a deploy that would change nothing; the files name NAME's nodes.
#[test]
fn render_uses_the_recorded_machine_name_as_deploy_does() {
    let Some(m) = machine_prefixed("x3", "rname") else {
        return;
    };
    m.ok(&["deploy", "--machine-name", "x3named"]);
    let id = m.state_id().unwrap();
    assert_eq!(m.node_namespaces(), vec![format!("x3named-ledge-{id}")]);
    let deploy = m.edgenet(&["deploy", "-o", "json"]);
    assert_eq!(deploy.status.code(), Some(0), "{}", text(&deploy));

    let out = m.edgenet(&["render", "resolv"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("differs"), "spurious notice: {stderr}");
    let (code, report) = m.json(&["render", "k3s-config"]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["machine"], "x3named", "{report:#}");
    assert!(
        report["notices"].as_array().is_none_or(|n| n.is_empty()),
        "{report:#}"
    );
    let contents = report["contents"].as_str().unwrap_or_default();
    assert!(contents.contains("x3named-ledge"), "{report:#}");
    // The same with `-c` of a file that names no machine (the built-in default).
    let cfg = m.default_config();
    let out = m.edgenet(&["render", "resolv", "-c", &cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("differs"), "spurious notice: {stderr}");
    // --machine-name still renders as the name given.
    let (code, report) = m.json(&[
        "render",
        "k3s-config",
        "--machine-name",
        "x3other",
        "--from-config",
    ]);
    assert_eq!(code, Some(0), "{report:#}");
    assert!(
        report["contents"]
            .as_str()
            .unwrap_or_default()
            .contains("x3other-ledge"),
        "{report:#}"
    );
    m.ok(&["remove"]);
}
