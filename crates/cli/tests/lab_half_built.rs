//! `lab status` on a half-built lab (a `lab up` killed midway: machines whose namespace was
//! never made, machines whose deploy never finished) reports it — exit 1 (findings), the
//! missing parts as failed cells and a `DOWN` note — instead of giving up with exit 3 or
//! passing on what little it could see.

mod support;

use std::path::Path;
use std::process::Output;

use support::*;

fn lab(name: &str, dir: &Path, args: &[&str]) -> Output {
    lab_cmd(name, dir, args).output().unwrap()
}

fn status_json(name: &str, dir: &Path) -> (Option<i32>, serde_json::Value) {
    let out = lab(name, dir, &["status", "-o", "json"]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "lab status -o json: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

#[test]
fn status_of_a_half_built_lab_reports_the_missing_parts_with_exit_1() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = lab_name("hb");
    let _down = LabDown(&name, dir.path());
    let up = lab(&name, dir.path(), &["up", "--scalable", "2", "--no-status"]);
    assert!(
        up.status.success(),
        "lab up: {}",
        String::from_utf8_lossy(&up.stderr)
    );

    // A machine whose deploy never finished: no deployment in its state directory.
    let state = dir.path().join(&name).join("machines/m2/state/state.json");
    let aside = state.with_file_name("state.json.aside");
    std::fs::rename(&state, &aside).unwrap();
    let (code, report) = status_json(&name, dir.path());
    // The text report's headline does not read as a success (B17b D10).
    let out = lab(&name, dir.path(), &["status"]);
    std::fs::rename(&aside, &state).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let headline = text
        .lines()
        .find(|l| l.contains("cells as expected"))
        .unwrap_or_else(|| panic!("no headline: {text}"));
    assert!(
        headline.contains("INCOMPLETE: nothing deployed on 1 of 2 machines"),
        "{text}"
    );
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["error"]["code"], "not-deployed", "{report:#}");
    assert!(
        report["notes"].as_array().unwrap().iter().any(|n| n
            .as_str()
            .unwrap()
            .starts_with("DOWN:")
            && n.as_str().unwrap().contains("m2")
            // The command it names reaches this lab (followed literally).
            && n.as_str().unwrap().contains(&format!(
                "edgenet lab down --name {name} --lab-dir {}",
                dir.path().display()
            ))),
        "{report:#}"
    );

    // A machine whose namespace is gone: its cells fail, the others are measured.
    sh(&format!("ip netns del enl-{name}-m2"));
    let (code, report) = status_json(&name, dir.path());
    assert_eq!(code, Some(1), "{report:#}");
    let cells = report["cells"].as_array().unwrap();
    let machine_cell = |m: &str| {
        cells
            .iter()
            .find(|c| c["row"] == "machine-to-internet" && c["from"] == m)
            .unwrap_or_else(|| panic!("no machine→internet cell of {m}: {report:#}"))
    };
    assert_eq!(machine_cell("m2")["ok"], false, "{report:#}");
    assert_eq!(machine_cell("m1")["ok"], true, "{report:#}");
    assert!(
        cells
            .iter()
            .any(|c| c["from"] == format!("{name}-m1-ledge").as_str()
                && c["to"] == "198.18.0.1"
                && c["ok"] == true),
        "m1's node still measured: {report:#}"
    );

    // The text report says the same, with exit 1.
    let out = lab(&name, dir.path(), &["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAILED"), "{text}");
}
