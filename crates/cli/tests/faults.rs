//! Fault injection: a deploy that fails (or dies) after any step leaves a state from which the
//! next deploy converges to exactly what a clean deploy builds, and `remove` then leaves nothing.

mod support;

use std::os::unix::process::ExitStatusExt;

use serde_json::json;
use support::*;

const CONFIG: &str = r#"{"Machines": [{"LinuxNode": {}, "WindowsNode": {}}], "Edgenet": {"PortForwards": [{"Protocol": "tcp", "HostPort": 8080, "NodePort": 30080}]}}"#;

fn clean_shape(mode: &str) -> serde_json::Value {
    let m = machine(&format!("fault-ref-{mode}")).unwrap();
    let cfg = m.write_config("c.json", &serde_json::from_str(CONFIG).unwrap());
    m.deploy(Some(&cfg));
    m.shape()
}

fn inject(mode: &str) {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    if !failpoints() {
        return;
    }
    let reference = clean_shape(mode);
    for step in edgenet_deploy::failpoint::steps(false) {
        let m = machine(&format!(
            "f{}-{}",
            &mode[..1],
            step.replace("node-", "n").replace("switch", "sw")
        ))
        .unwrap();
        let before = m.dump();
        let cfg = m.write_config("c.json", &serde_json::from_str(CONFIG).unwrap());
        let spec = if mode == "crash" {
            format!("{step}:crash")
        } else {
            step.to_string()
        };
        let out = m.edgenet_env(&["deploy", "-c", &cfg], &[("EDGENET_FAILPOINT", &spec)]);
        if mode == "crash" {
            assert_eq!(
                out.status.signal(),
                Some(6),
                "{step}: the process aborted: {out:?}"
            );
        } else {
            assert_eq!(
                out.status.code(),
                Some(3),
                "{step}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("failpoint {step}")));
        }
        m.deploy(Some(&cfg));
        assert_eq!(
            m.shape(),
            reference,
            "after a {mode} at {step}, the next deploy converges to a clean deploy's state"
        );
        let again = m.deploy(Some(&cfg));
        assert_eq!(again["changes"], json!([]), "{step}: and stays there");
        m.ok(&["remove"]);
        assert_eq!(
            m.dump(),
            before,
            "after a {mode} at {step}, remove leaves zero residue"
        );
    }
}

#[test]
fn a_failure_after_any_step_converges_and_removes_cleanly() {
    inject("error");
}

#[test]
fn a_crash_after_any_step_converges_and_removes_cleanly() {
    inject("crash");
}

#[test]
fn remove_cleans_up_straight_after_a_crash() {
    if !failpoints() {
        return;
    }
    for step in ["switch", "firewall", "node-link"] {
        let Some(m) = machine(&format!("fr-{step}")) else {
            return;
        };
        let before = m.dump();
        let out = m.edgenet_env(
            &["deploy"],
            &[("EDGENET_FAILPOINT", &format!("{step}:crash"))],
        );
        assert_eq!(out.status.signal(), Some(6));
        m.ok(&["remove"]);
        assert_eq!(m.dump(), before, "{step}");
    }
}
