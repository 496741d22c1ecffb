//! Defects of the black-box operator test B22 about what `deploy` reports (findings 8, 9, 12).
//! Namespaces are named `g22-…`.

mod support;

use std::path::PathBuf;
use std::process::Output;

use serde_json::{json, Value};
use support::*;

/// A second deployment in the machine's namespace with its own state directory; removed on
/// drop (declare it after the machine: it is dropped first).
struct Beside<'a> {
    m: &'a Machine,
    state: PathBuf,
}

impl Beside<'_> {
    fn edgenet_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let state = self.state.display().to_string();
        let mut all = vec![("EDGENET_STATE_DIR", state.as_str())];
        all.extend_from_slice(env);
        self.m.edgenet_env(args, &all)
    }
}

impl Drop for Beside<'_> {
    fn drop(&mut self) {
        let _ = self.edgenet_env(&["remove", "--wait", "5"], &[]);
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn internal(m: &Machine, name: &str, switch: &str, machine: &str) -> String {
    m.write_config(
        name,
        &json!({"Network": {"SkipDnsCheck": true}, "Edgenet": {"SwitchName": switch, "MachineName": machine}}),
    )
}

#[test]
fn deploy_reports_another_deployment_as_a_notice_in_its_report() {
    let Some(m) = machine_prefixed("g22", "beside") else {
        return;
    };
    let c1 = internal(&m, "c1.json", "g22sw1", "g22c1");
    let c2 = internal(&m, "c2.json", "g22sw2", "g22c2");
    let first = m.deploy(Some(&c1));
    let first_id = first["deployment_id"].as_str().unwrap().to_string();
    let other = Beside {
        m: &m,
        state: m.dir.path().join("state2"),
    };
    // EDGENET_LOG=error hid the log line the notice was: a finding is not a log record.
    let out = other.edgenet_env(
        &["deploy", "-c", &c2, "-o", "json"],
        &[("EDGENET_LOG", "error")],
    );
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let notices: Vec<&Value> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["code"] == "another-deployment")
        .collect();
    assert_eq!(notices.len(), 1, "{v}");
    assert_eq!(notices[0]["severity"], "notice");
    let message = notices[0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "another edgenet deployment (id {first_id}) beside this one: bridge g22sw1"
        )),
        "{message}"
    );
    // The bridge it names is really there, untouched, with its node link.
    let links = m.ip_json("-d link show master g22sw1");
    assert_eq!(links.as_array().unwrap().len(), 1, "{links}");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "notice[another-deployment] another edgenet deployment (id {first_id})"
        )),
        "{err}"
    );
    assert!(!err.contains("WARN"), "{err}");
    // Said once: the next deploy of that state directory does not repeat it.
    let again = other.edgenet_env(&["deploy", "-c", &c2, "-o", "json"], &[]);
    let v: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(
        !v["warnings"].to_string().contains("another-deployment"),
        "{v}"
    );
}
