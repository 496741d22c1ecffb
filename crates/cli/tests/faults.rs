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
    // A first deploy also passes the points between creating an object and marking it.
    let steps = edgenet_deploy::failpoint::steps(false)
        .into_iter()
        .chain(edgenet_deploy::failpoint::MID_STEPS.iter().copied());
    for step in steps {
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
    for step in [
        "switch",
        "firewall",
        "node-link",
        "switch-made",
        "node-netns-made",
        "node-link-made",
    ] {
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

/// The state of a run goes to an append-only journal and `state.json` is replaced once, at the
/// end; the identity (id, generated MACs) is fsynced to `identity.json` before success. A
/// first deploy killed half-way leaves its later records in the journal only: remove and the next
/// deploy read them (same deployment id, same MACs), and a redeploy that changes nothing
/// writes no file at all.
#[test]
fn a_killed_first_deploy_is_found_in_the_journal_and_an_idle_redeploy_writes_nothing() {
    use std::os::unix::fs::MetadataExt;
    if !failpoints() {
        return;
    }
    let Some(m) = machine("fj") else { return };
    let before = m.dump();
    let file = |name: &str| m.state.join(name);
    let json = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(file(name)).unwrap()).unwrap()
    };
    let out = m.edgenet_env(&["deploy"], &[("EDGENET_FAILPOINT", "node-link:crash")]);
    assert_eq!(out.status.signal(), Some(6));
    assert_eq!(
        json("state.json")["phase"],
        "deploying",
        "a killed first deploy made state.json with its first record only"
    );
    let journal = std::fs::read_to_string(file("state.journal")).unwrap();
    let last: serde_json::Value = serde_json::from_str(journal.lines().last().unwrap()).unwrap();
    let id = last["state"]["deployment_id"].as_str().unwrap().to_string();
    let macs = last["state"]["macs"].clone();
    assert!(
        last["state"]["objects"].as_array().unwrap().len() >= 3,
        "the bridge, tables and node records are in the journal: {last}"
    );
    // What status reads is the journal's state.
    let status = m.edgenet(&["status", "--output", "json"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains(&format!("\"deployment_id\": \"{id}\"")),
        "{status}"
    );

    let report = m.deploy(None);
    assert_eq!(report["deployment_id"], id.as_str(), "the same deployment");
    let state = json("state.json");
    assert_eq!(state["phase"], "deployed");
    assert_eq!(state["macs"], macs, "the generated MACs are kept");
    assert_eq!(
        std::fs::metadata(file("state.journal"))
            .map(|f| f.len())
            .unwrap_or(0),
        0,
        "the journal is emptied at the end of a run"
    );
    let identity = json("identity.json");
    assert_eq!(identity["deployment_id"], id.as_str());
    assert_eq!(identity["macs"], macs);

    let ino = std::fs::metadata(file("state.json")).unwrap().ino();
    let again = m.deploy(None);
    assert_eq!(again["changes"], json!([]));
    assert_eq!(
        std::fs::metadata(file("state.json")).unwrap().ino(),
        ino,
        "an idle redeploy does not replace state.json"
    );
    assert_eq!(
        std::fs::metadata(file("state.journal"))
            .map(|f| f.len())
            .unwrap_or(0),
        0,
        "nor appends to the journal"
    );
    m.ok(&["remove"]);
    assert!(!m.state.exists(), "remove takes every state file");
    assert_eq!(m.dump(), before);
}
