//! `ip netns exec NS edgenet deploy` (or `unshare -m …`) runs edgenet in a mount namespace of its own whose mounts
//! never reach the host's: the node namespaces it mounted vanished when it exited, after it had
//! said "Deployed". It is refused before anything changes (exit 2, the way that works named).

mod support;

use std::process::Command;

use support::*;

#[test]
fn a_deploy_under_ip_netns_exec_or_unshare_m_is_refused_and_changes_nothing() {
    let Some(m) = machine("l15mn") else { return };
    let before = m.dump();
    let net = format!("--net=/run/netns/{}", m.ns);
    let edgenet = env!("CARGO_BIN_EXE_edgenet");
    let ways: [Vec<&str>; 3] = [
        vec!["ip", "netns", "exec", &m.ns, edgenet, "deploy"],
        // unshare's default: every mount a private copy.
        vec!["unshare", "-m", "nsenter", &net, edgenet, "deploy"],
        vec![
            "unshare",
            "-m",
            "--propagation",
            "slave",
            "nsenter",
            &net,
            edgenet,
            "deploy",
        ],
    ];
    for argv in ways {
        let out = Command::new(argv[0])
            .args(&argv[1..])
            .env("EDGENET_STATE_DIR", &m.state)
            .env("EDGENET_RESOLV_CONF", &m.resolv)
            .env("NO_COLOR", "1")
            .env_remove("EDGENET_FAILPOINT")
            .env_remove("EDGENET_CONFIG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{argv:?}: {stderr}");
        assert!(stderr.contains("mount namespace of its own"), "{stderr}");
        assert!(stderr.contains("nsenter --net="), "{stderr}");
        assert!(!m.state.exists(), "{argv:?}: the state directory was made");
        assert_eq!(m.dump(), before, "{argv:?}");
    }
    // The way the hint names works.
    m.deploy(None);
    assert_eq!(m.edgenet(&["status"]).status.code(), Some(0));
    m.ok(&["remove"]);
    assert_eq!(m.dump(), before);
}
