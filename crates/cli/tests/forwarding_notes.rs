//! The forwarding evidence a deploy leaves in /run/edgenet (`netns-DEV-INO.ip_forward.by`,
//! read by `remove --orphan` once the state directory is lost) is keyed by the namespace's
//! inode, which the kernel gives to a later namespace once this one is gone: the note carries
//! the namespace's cookie, and a note of another namespace is not taken as evidence (it is
//! deleted); deleting a test's namespace deletes its notes. Namespaces are named `c3-…`.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use serde_json::json;
use support::*;

/// The note file about namespace `ns` with `suffix`.
fn note(ns: &str, suffix: &str) -> PathBuf {
    let meta = std::fs::metadata(format!("/run/netns/{ns}")).unwrap();
    PathBuf::from(format!(
        "/run/edgenet/netns-{}-{}.{suffix}",
        meta.dev(),
        meta.ino()
    ))
}

fn text_of(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A machine whose forwarding is off, deployed with a NAT switch (deploy turns forwarding on
/// and notes it); returns the machine and the deployment id.
fn deployed(tag: &str) -> Option<(Machine, String)> {
    let m = machine_prefixed("c3", tag)?;
    let cfg = m.write_config(
        "int.json",
        &json!({"Network": {"SkipDnsCheck": true}, "Edgenet": {"SwitchName": format!("c3sw{tag}"), "MachineName": format!("c3{tag}")}}),
    );
    sh(&format!(
        "ip netns exec {} sysctl -qw net.ipv4.ip_forward=0",
        m.ns
    ));
    m.ok(&["deploy", "-c", &cfg, "-q"]);
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1");
    let id = m.state_id().unwrap();
    Some((m, id))
}

/// A note a deleted namespace of the same inode left (another cookie) names this deployment
/// id: `remove --orphan` does not take it as evidence, leaves forwarding on (and says how to
/// turn it off), and deletes the stale note.
#[test]
fn a_forwarding_note_of_another_namespace_is_no_evidence_and_goes() {
    let Some((m, id)) = deployed("n1") else {
        return;
    };
    let path = note(&m.ns, "ip_forward.by");
    let written = std::fs::read_to_string(&path).unwrap();
    let cookie: u64 = written
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("netns-cookie "))
        .unwrap_or_else(|| panic!("no cookie line in {}: {written:?}", path.display()))
        .parse()
        .unwrap();
    assert!(
        written.lines().any(|l| l == format!("{id} 0")),
        "{written:?}"
    );
    // The note as another namespace (same inode, another cookie) would have left it.
    std::fs::write(&path, format!("netns-cookie {}\n{id} 0\n", cookie ^ 1)).unwrap();
    std::fs::remove_dir_all(&m.state).unwrap();
    let out = m.edgenet(&["remove", "--orphan", &id]);
    let text = text_of(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1", "{text}");
    assert!(
        text.contains("nothing says this deployment turned it on"),
        "{text}"
    );
    assert!(!path.exists(), "the stale note stayed: {text}");
}

/// The same with its own note: the evidence counts and forwarding goes back to 0 (the note
/// is used up).
#[test]
fn a_forwarding_note_of_this_namespace_is_evidence() {
    let Some((m, id)) = deployed("n2") else {
        return;
    };
    let path = note(&m.ns, "ip_forward.by");
    assert!(path.exists());
    std::fs::remove_dir_all(&m.state).unwrap();
    let out = m.edgenet(&["remove", "--orphan", &id]);
    let text = text_of(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "0", "{text}");
    assert!(!path.exists(), "{text}");
}

/// A test that deletes its namespace without `edgenet remove` (here: its state directory lost
/// first) leaves no note behind.
#[test]
fn deleting_a_tests_namespace_deletes_its_notes() {
    let Some((m, _)) = deployed("n3") else {
        return;
    };
    let path = note(&m.ns, "ip_forward.by");
    assert!(path.exists());
    std::fs::remove_dir_all(&m.state).unwrap();
    drop(m);
    assert!(!path.exists(), "{} stayed", path.display());
}
