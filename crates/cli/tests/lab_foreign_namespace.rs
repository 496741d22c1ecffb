//! A namespace of the name a lab would give one of its own, made by somebody else before the
//! lab: `lab up` refuses it clearly before building anything, and neither `lab down` nor the
//! teardown of a failed up ever deletes it (the lab used to record the name before creating
//! it, so its teardown deleted the other party's namespace). Labs are named `c3…`.

mod support;

use std::process::Command;

use support::*;

/// The foreign namespace is still the one the test made: its marker link is there.
fn still_there(ns: &str) -> bool {
    Command::new("ip")
        .args(["-n", ns, "link", "show", "c3mark"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn foreign(name: &str) -> NsGuard {
    let guard = NsGuard::create(name);
    sh(&format!(
        "ip -n {name} link add c3mark type veth peer name c3markp"
    ));
    guard
}

#[test]
fn lab_up_refuses_a_foreign_namespace_of_its_machines_name_and_down_leaves_it() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = lab_name("c3f");
    let taken = format!("enl-{name}-m2");
    let _foreign = foreign(&taken);
    let _down = LabDown(&name, dir.path());
    let up = lab_cmd(&name, dir.path(), &["up", "--scalable", "2", "--no-status"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&up.stderr);
    // The refused up left nothing it made (B25 F6): no lock file, no generated config.
    let lock = dir.path().join(&name).join("lab.lock");
    let generated = dir.path().join(format!("{name}-scalable-2.json"));
    let (lock_left, generated_left) = (lock.exists(), generated.exists());
    // Taken down (as its hint says), the foreign namespace stays the foreign one.
    let down = lab_cmd(&name, dir.path(), &["down"]).output().unwrap();
    assert!(
        still_there(&taken),
        "lab down deleted {taken}: {err}\n{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_eq!(up.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!(
            "network namespace {taken} exists already and is not this lab's; nothing was built"
        )),
        "{err}"
    );
    assert!(err.contains("--name"), "{err}");
    assert!(!lock_left, "{} left behind", lock.display());
    assert!(!generated_left, "{} left behind", generated.display());
    // Nothing of the lab was made.
    for role in ["inet", "lan", "peer", "m1"] {
        assert!(
            !netns_exists(&format!("enl-{name}-{role}")),
            "{role}: {err}"
        );
    }
}

/// The library: `Lab::up` refuses a foreign `inet` namespace, and dropping what it returned
/// (a failed up tears down what it built) leaves it.
#[test]
fn a_failed_lab_up_tears_down_only_what_it_made() {
    use edgenet_lab::{Lab, LabError, LabMachine, LabSpec};
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = lab_name("c3g");
    let taken = format!("enl-{name}-inet");
    let _foreign = foreign(&taken);
    let spec = LabSpec::new(&name, dir.path().join(&name));
    let up = Lab::up(&spec, |_: &LabMachine| -> Result<(), String> {
        panic!("no deploy on a lab that was refused")
    });
    let e = up.expect_err("lab up went through");
    let error = e.error.to_string();
    let refused = matches!(&e.error, LabError::NamespaceTaken { netns, .. } if *netns == taken);
    drop(e);
    assert!(still_there(&taken), "the teardown deleted {taken}: {error}");
    assert!(refused, "{error}");
}
