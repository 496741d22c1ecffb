//! B23 F15: a report that cannot be written (standard output on a full disk, `/dev/full`) is
//! an error said on stderr — code `write`, exit 3 — never a panic (exit 101) and never exit 0
//! with the report silently lost (what a script reading `status -o json > file` would take for
//! "no drift").

mod support;

use std::process::{Command, Stdio};

use serde_json::Value;
use support::*;

fn full() -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full"),
    )
}

fn to_full(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd
        .stdout(full())
        .env("NO_COLOR", "1")
        .output()
        .expect("runs edgenet");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_write_error(what: &str, code: Option<i32>, stderr: &str, json: bool) {
    assert_eq!(code, Some(3), "{what}: {stderr}");
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert!(
        stderr.contains("No space left on device"),
        "{what}: {stderr}"
    );
    if json {
        let v: Value =
            serde_json::from_str(stderr).unwrap_or_else(|e| panic!("{what}: {e}: {stderr}"));
        assert_eq!(v["error"]["code"], "write", "{what}: {v}");
        assert_eq!(v["exit"], 3, "{what}: {v}");
        assert_eq!(v["ok"], false, "{what}: {v}");
    } else {
        assert!(
            stderr.contains("edgenet: cannot write the report"),
            "{what}: {stderr}"
        );
    }
}

#[test]
fn every_report_to_a_full_disk_is_a_write_error_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let cases: Vec<(Vec<&str>, bool)> = vec![
        (vec!["check", "--offline-check"], false),
        (vec!["check", "--offline-check", "-o", "json"], true),
        (vec!["plan", "--offline-check"], false),
        (vec!["plan", "--offline-check", "-o", "json"], true),
        (vec!["config", "new"], false),
        (vec!["completions", "bash"], false),
        (vec!["man"], false),
        (vec!["status", "--state-dir", state], false),
        (vec!["status", "--state-dir", state, "-o", "json"], true),
        (vec!["render", "k3s-config", "--state-dir", state], false),
    ];
    for (args, json) in cases {
        let (code, stderr) = to_full(edgenet_cmd().args(&args));
        assert_write_error(&format!("{args:?}"), code, &stderr, json);
    }
}

/// `status` of a real deployment, text and JSON, and a `deploy` whose report is lost: exit 3
/// (the host was changed all the same: a second deploy finds nothing to do).
#[test]
fn status_and_deploy_of_a_deployment_to_a_full_disk() {
    let Some(m) = machine_prefixed("e3", "full") else {
        return;
    };
    let run = |args: &[&str]| {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", m.ns))
            .arg(env!("CARGO_BIN_EXE_edgenet"))
            .args(args)
            .env("EDGENET_STATE_DIR", &m.state)
            .env("EDGENET_RESOLV_CONF", &m.resolv)
            .env_remove("EDGENET_FAILPOINT")
            .env_remove("EDGENET_CONFIG");
        to_full(&mut cmd)
    };
    let (code, stderr) = run(&["deploy"]);
    assert_write_error("deploy", code, &stderr, false);
    assert!(
        stderr.contains("exit status 0"),
        "the run's own status said: {stderr}"
    );
    assert!(
        m.ok(&["deploy"]).contains("No changes"),
        "the deploy was done"
    );
    let (code, stderr) = run(&["status"]);
    assert_write_error("status", code, &stderr, false);
    let (code, stderr) = run(&["status", "-o", "json"]);
    assert_write_error("status -o json", code, &stderr, true);
    let (code, stderr) = run(&["remove", "-o", "json"]);
    assert_write_error("remove -o json", code, &stderr, true);
    assert!(m.node_namespaces().is_empty(), "the remove was done");
}
