//! `ip netns exec NS edgenet deploy` runs edgenet in a mount namespace of its own whose mounts
//! never reach the host's: the node namespaces it mounted vanished when it exited, after it had
//! said "Deployed". It is refused before anything changes (exit 2, the way that works named).

mod support;

use std::process::Command;

use support::*;

#[test]
fn a_deploy_under_ip_netns_exec_is_refused_and_changes_nothing() {
    let Some(m) = machine("l15mn") else { return };
    let before = m.dump();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &m.ns,
            env!("CARGO_BIN_EXE_edgenet"),
            "deploy",
        ])
        .env("EDGENET_STATE_DIR", &m.state)
        .env("EDGENET_RESOLV_CONF", &m.resolv)
        .env("NO_COLOR", "1")
        .env_remove("EDGENET_FAILPOINT")
        .env_remove("EDGENET_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ip netns exec"), "{stderr}");
    assert!(stderr.contains("nsenter --net="), "{stderr}");
    assert!(!m.state.exists(), "the state directory was made");
    assert_eq!(m.dump(), before);
    // The way the hint names works.
    m.deploy(None);
    assert_eq!(m.edgenet(&["status"]).status.code(), Some(0));
    m.ok(&["remove"]);
    assert_eq!(m.dump(), before);
}
