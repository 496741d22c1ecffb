//! B23b: recovering the state directory. A deployment made with `--machine-name` whose
//! `state.json` was lost (moved aside as the hints say, emptied by a full disk) keeps its
//! machine name from `identity.json` at the next deploy: its node namespace and the node's MAC
//! stay (F5). A forwarding value recorded in a network namespace since made anew is not put
//! back in the new one (F9). A state directory reached through a link another user owns (F4)
//! and an `install-unit --binary` another user could replace (F3) are refused.

mod support;

use serde_json::Value;
use support::*;

/// The node namespaces of deployment `m` with the MAC of their `eth0`, as the kernel has them.
fn nodes_with_macs(m: &Machine) -> Vec<(String, String)> {
    m.node_namespaces()
        .into_iter()
        .map(|n| {
            let link: Value =
                serde_json::from_str(&sh_out(&format!("ip -n {n} -j link show eth0"))).unwrap();
            let mac = link[0]["address"].as_str().unwrap().to_string();
            (n, mac)
        })
        .collect()
}

/// F5: `mv state.json state.json.damaged` and deploy again (without `--machine-name`): the
/// deployment keeps the name it was made with (kept in `identity.json`), so the node namespace
/// and whatever runs in it stay, with the node's MAC; nothing is named after the host.
#[test]
fn a_deploy_after_state_json_was_moved_aside_keeps_the_machine_name() {
    let Some(m) = machine_prefixed("y3", "keep") else {
        return;
    };
    m.ok(&["deploy", "-o", "json", "--machine-name", "y3m1"]);
    let before = nodes_with_macs(&m);
    assert_eq!(before.len(), 1, "one node namespace: {before:?}");
    assert!(before[0].0.starts_with("y3m1-ledge-"), "{before:?}");
    std::fs::rename(
        m.state.join("state.json"),
        m.state.join("state.json.damaged"),
    )
    .unwrap();
    let out = m.edgenet(&["deploy", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        nodes_with_macs(&m),
        before,
        "the same node namespace, the same MAC: {}",
        text(&out)
    );
    let plan: Value = serde_json::from_str(&m.ok(&["status", "-o", "json"])).unwrap();
    assert!(
        plan.to_string().contains("y3m1-ledge"),
        "status names the kept node: {plan}"
    );
    m.ok(&["remove", "-o", "json"]);
    assert_eq!(nodes_with_macs(&m), vec![], "remove removed the node");
}

/// F9: the deployment's network namespace made anew in the same boot (a container restarted,
/// the state directory kept) with forwarding on by its own configuration: deploy and remove
/// leave it on. The value found before the first deploy (0) was the old namespace's, recorded
/// with its cookie, and is not put back in the new one.
#[test]
fn remove_does_not_put_back_forwarding_recorded_in_a_namespace_since_made_anew() {
    let Some(m) = machine_prefixed("y3", "fwd") else {
        return;
    };
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "0", "a new namespace");
    m.deploy(None);
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1");
    // The namespace made anew: its node namespaces go with the deployment's links.
    for n in m.node_namespaces() {
        sh(&format!("ip netns del {n}"));
    }
    sh(&format!(
        "ip netns del {ns} && ip netns add {ns} && ip -n {ns} link set lo up && ip netns exec {ns} sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'",
        ns = m.ns
    ));
    m.ok(&["deploy"]);
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1");
    let out = m.edgenet(&["remove", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        m.sysctl("net.ipv4.ip_forward"),
        "1",
        "left as the new namespace had it: {}",
        text(&out)
    );
}

/// F4: the state directory reached through a symbolic link another user owns (they could
/// point it at a directory of theirs): refused before anything is read (exit 2, naming the
/// link, its owner and the fix); the same link owned by root is fine.
#[test]
fn a_state_directory_through_a_link_another_user_owns_is_refused() {
    let Some(m) = machine_prefixed("y3", "link") else {
        return;
    };
    m.deploy(None);
    let before = m.dump();
    let link = m.dir.path().join("y3link");
    std::os::unix::fs::symlink(&m.state, &link).unwrap();
    let link_s = link.display().to_string();
    let status = |env: &[(&str, &str)]| m.edgenet_env(&["status", "-o", "json"], env);
    let ok = status(&[("EDGENET_STATE_DIR", &link_s)]);
    assert_eq!(ok.status.code(), Some(0), "root's link: {}", text(&ok));
    sh(&format!("chown -h 65534 {link_s}"));
    let out = status(&[("EDGENET_STATE_DIR", &link_s)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let error = stdout_json(&out)["error"].to_string();
    assert!(error.contains("unsafe-state-dir"), "{error}");
    assert!(
        error.contains(&link_s) && error.contains("uid 65534"),
        "{error}"
    );
    assert!(error.contains("chown -h root:root"), "the fix: {error}");
    assert_eq!(m.dump(), before, "nothing changed");
    std::fs::remove_file(&link).unwrap();
}

/// F3: `install-unit --binary` naming an edgenet another user could replace (the file or its
/// directory writable by others) is refused (exit 2, `unsafe-binary`: the path, its mode and
/// the fix), and no unit is written; the same binary made root's only is accepted.
#[test]
fn install_unit_refuses_a_binary_another_user_could_replace() {
    use std::os::unix::fs::PermissionsExt;
    if !is_root() {
        return;
    }
    let dir = tempfile::Builder::new().prefix("y3bin").tempdir().unwrap();
    let bin_dir = dir.path().join("bin");
    let unit_dir = dir.path().join("units");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::create_dir_all(&unit_dir).unwrap();
    let bin = bin_dir.join("edgenet");
    std::fs::copy(env!("CARGO_BIN_EXE_edgenet"), &bin).unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_edgenet"))
            .args(["install-unit", "--unit-dir"])
            .arg(&unit_dir)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--binary")
            .arg(&bin)
            .output()
            .unwrap()
    };
    for (what, path, mode) in [("file", &bin, 0o777), ("directory", &bin_dir, 0o777)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = run();
        assert_eq!(out.status.code(), Some(2), "{what}: {}", text(&out));
        let error = text(&out);
        assert!(
            error.contains("another user could replace"),
            "{what}: {error}"
        );
        assert!(
            error.contains(&path.display().to_string()) && error.contains("0777"),
            "{what}: {error}"
        );
        assert!(error.contains("chmod go-w"), "{what}: {error}");
        assert_eq!(std::fs::read_dir(&unit_dir).unwrap().count(), 0, "no unit");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = run();
    assert_eq!(out.status.code(), Some(0), "root's own: {}", text(&out));
}
