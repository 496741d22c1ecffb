//! B23: the state directory as something to trust and to get out of. A state directory (or a
//! file in it) another user owns or may write is refused before anything is read (F11), and
//! `remove` writes back only the sysctl edgenet itself changes; a damaged `state.json` does not
//! lock the operator out: remove sets it aside and works from the marks (F6); a forwarding
//! record of an earlier boot is not put back in this one (F13).

mod support;

use serde_json::Value;
use support::*;

fn code_of(out: &std::process::Output) -> String {
    stdout_json(out)["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn state_json(m: &Machine) -> Value {
    serde_json::from_str(&std::fs::read_to_string(m.state.join("state.json")).unwrap()).unwrap()
}

fn write_state_json(m: &Machine, v: &Value) {
    std::fs::write(m.state.join("state.json"), v.to_string()).unwrap();
}

fn set_forwarding(m: &Machine, value: &str) {
    sh(&format!(
        "ip netns exec {} sh -c 'echo {value} > /proc/sys/net/ipv4/ip_forward'",
        m.ns
    ));
}

/// F11: a state directory writable by others, or owned by another user, or a config.json in
/// it that another user wrote: every command that reads it refuses (exit 2, naming the
/// directory or file, its owner and mode, and the chmod/chown), and nothing on the host changes.
#[test]
fn a_state_directory_others_can_write_is_refused_before_anything_is_read() {
    use std::os::unix::fs::PermissionsExt;
    let Some(m) = machine_prefixed("e3", "own") else {
        return;
    };
    m.deploy(None);
    let before = m.dump();
    let dir = m.state.display().to_string();
    let refused = |what: &str, args: &[&str], needle: &str| {
        let out = m.edgenet(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{what}: {args:?}: {}",
            text(&out)
        );
        assert_eq!(code_of(&out), "unsafe-state-dir", "{what}: {}", text(&out));
        let message = stdout_json(&out)["error"].to_string();
        assert!(
            message.contains(needle),
            "{what}: names {needle}: {message}"
        );
        assert!(message.contains("chmod"), "{what}: the fix: {message}");
    };
    std::fs::set_permissions(&m.state, std::fs::Permissions::from_mode(0o777)).unwrap();
    for args in [
        &["deploy", "-o", "json"][..],
        &["status", "-o", "json"],
        &["remove", "-o", "json"],
    ] {
        refused(
            "0777",
            args,
            &format!("{dir} (owner root (uid 0), mode 0777)"),
        );
    }
    assert_eq!(m.dump(), before, "nothing changed");
    std::fs::set_permissions(&m.state, std::fs::Permissions::from_mode(0o700)).unwrap();
    // The directory owned by another user (root's own mode bits do not help then).
    sh(&format!("chown 65534 {dir}"));
    refused("owner", &["deploy", "-o", "json"], "uid 65534");
    sh(&format!("chown 0 {dir}"));
    // A config.json written by another user (renamed over edgenet's in an open directory).
    let config = m.state.join("config.json");
    sh(&format!("chown 65534 {}", config.display()));
    refused(
        "file",
        &["deploy", "-o", "json"],
        &format!("{}", config.display()),
    );
    assert_eq!(m.dump(), before, "nothing changed");
    sh(&format!("chown 0 {}", config.display()));
    // Trusted again: the commands work.
    m.ok(&["status"]);
    m.ok(&["remove"]);
}

/// F11: remove writes back only net.ipv4.ip_forward (the one sysctl deploy records); any
/// other key a state file lists is said and left as the kernel has it.
#[test]
fn remove_writes_back_no_sysctl_edgenet_does_not_change() {
    let Some(m) = machine_prefixed("e3", "sys") else {
        return;
    };
    m.deploy(None);
    let key = "net.ipv4.conf.all.arp_ignore";
    let live = m.sysctl(key);
    let mut state = state_json(&m);
    state["sysctls"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"key": key, "netns": null, "previous": "8", "value": live}));
    write_state_json(&m, &state);
    let out = m.edgenet(&["remove", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(m.sysctl(key), live, "not written");
    let report = stdout_json(&out);
    assert!(report["left"].to_string().contains(key), "said: {report}");
    assert!(!report["restored"].to_string().contains(key), "{report}");
}

/// F6: a truncated state.json: deploy and status refuse with the way out in the hint; remove
/// sets the file aside, rebuilds the records from the marks and removes everything.
#[test]
fn a_damaged_state_file_is_set_aside_by_remove_which_removes_everything() {
    let Some(m) = machine_prefixed("e3", "dmg") else {
        return;
    };
    let before = m.dump();
    let id = m.deploy(None)["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = m.state.join("state.json");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    for args in [&["deploy", "-o", "json"][..], &["status", "-o", "json"]] {
        let out = m.edgenet(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out));
        let error = &stdout_json(&out)["error"];
        assert_eq!(error["code"], "state");
        let hint = error["hint"].as_str().unwrap_or_default();
        assert!(
            hint.contains(&format!("edgenet remove --state-dir {}", m.state.display())),
            "{args:?}: the way out: {error}"
        );
        assert!(!error["message"].to_string().contains("forget"), "{error}");
    }
    let out = m.edgenet(&["remove", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = stdout_json(&out);
    let left = report["left"].to_string();
    assert!(
        left.contains("state.json.damaged"),
        "said where it went: {report}"
    );
    // Every object of the deployment is gone from the kernel.
    let links = m.ip_json("-d link show").to_string();
    assert!(!links.contains(&format!("edgenet:{id}")), "{links}");
    assert!(
        !m.nft_json().to_string().contains(&format!("edgenet_{id}")),
        "tables gone"
    );
    assert_eq!(m.node_namespaces(), Vec::<String>::new());
    // The damaged file is kept for the operator, nothing else of the deployment.
    assert_eq!(
        std::fs::read(m.state.join("state.json.damaged")).unwrap(),
        &bytes[..bytes.len() / 2]
    );
    let files: Vec<String> = std::fs::read_dir(&m.state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, vec!["state.json.damaged".to_string()]);
    // Forwarding's value before went with the records: left at 1 and said so.
    assert!(left.contains("net.ipv4.ip_forward at 1"), "{report}");
    set_forwarding(&m, "0");
    std::fs::remove_dir_all(&m.state).unwrap();
    let mut after = m.dump();
    after["state_files"] = before["state_files"].clone();
    assert_eq!(after, before);
}

fn this_boot() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string()
}

/// What a reboot does to the record (the kernel's boot id cannot be faked): the state keeps the
/// boot id the record was taken in; this rewrites it to another boot's.
fn record_from_an_earlier_boot(m: &Machine) {
    let mut state = state_json(m);
    let sysctls = state["sysctls"].as_array_mut().unwrap();
    assert_eq!(sysctls.len(), 1, "{sysctls:?}");
    sysctls[0]["boot_id"] = "00000000-0000-4000-8000-000000000000".into();
    write_state_json(m, &state);
}

/// F13: forwarding was 0 when edgenet turned it on, in an earlier boot; this boot turned it on
/// itself (a router's sysctl.d). remove leaves it on: the value of an earlier boot is not put
/// back.
#[test]
fn remove_does_not_put_back_forwarding_recorded_in_an_earlier_boot() {
    let Some(m) = machine_prefixed("e3", "boot") else {
        return;
    };
    m.deploy(None);
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1");
    record_from_an_earlier_boot(&m);
    let out = m.edgenet(&["remove", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        m.sysctl("net.ipv4.ip_forward"),
        "1",
        "left as this boot set it"
    );
    let report = stdout_json(&out);
    assert!(
        report["left"].to_string().contains("earlier boot"),
        "{report}"
    );
    set_forwarding(&m, "0");
}

/// F13: the boot unit's deploy in the new boot drops the earlier boot's record (it changed
/// nothing in this boot); a deploy that does turn forwarding on in this boot records this
/// boot's value, which remove puts back.
#[test]
fn a_deploy_in_a_new_boot_records_only_what_it_changes_in_this_boot() {
    let Some(m) = machine_prefixed("e3", "boot2") else {
        return;
    };
    m.deploy(None);
    record_from_an_earlier_boot(&m);
    m.ok(&["deploy"]);
    assert_eq!(state_json(&m)["sysctls"], serde_json::json!([]), "dropped");
    m.ok(&["remove"]);
    assert_eq!(
        m.sysctl("net.ipv4.ip_forward"),
        "1",
        "left as this boot set it"
    );
    // Off in this boot: deploy turns it on and records 0 with this boot; remove puts 0 back.
    set_forwarding(&m, "0");
    m.deploy(None);
    assert_eq!(
        state_json(&m)["sysctls"][0]["boot_id"],
        this_boot().as_str()
    );
    m.ok(&["remove"]);
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "0");
}
