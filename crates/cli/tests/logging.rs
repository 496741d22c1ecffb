//! Logging and progress of `deploy` against the real kernel: `-vv`, `-vvv`, `-q`. A test
//! binary of its own, so that its namespaces do not add to the load under which deploy.rs's
//! tests delete and recreate node namespaces.

mod support;

use std::process::Command;

use support::*;

/// `-vv` shows every netlink change and file write, `-vvv` adds step timings; without `-v`
/// none of it.
#[test]
fn verbose_deploy_logs_what_it_does() {
    let Some(m) = machine("h7log") else { return };
    let quiet = m.edgenet(&["deploy", "--machine-name", "h7q"]);
    assert!(
        quiet.status.success(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("netlink"));
    m.ok(&["remove"]);

    let debug = m.edgenet(&["-vv", "deploy", "--machine-name", "h7q"]);
    assert!(debug.status.success());
    let log = String::from_utf8_lossy(&debug.stderr);
    assert!(log.contains("netlink: new link aksedgesw-int"), "{log}");
    assert!(log.contains("netlink: add address 192.168.0.1/24"), "{log}");
    assert!(log.contains("/proc/sys/net/ipv4/ip_forward"), "{log}");
    assert!(
        log.contains(&format!("write {}", m.state.join("state.json").display())),
        "{log}"
    );
    assert!(log.contains("resolv.conf"), "node files are written: {log}");
    assert!(
        !log.contains("step switch reached"),
        "timings are trace: {log}"
    );
    // What the log says was made is what the kernel has.
    let links = sh_out(&format!("ip -n {} -j link show aksedgesw-int", m.ns));
    assert!(links.contains("aksedgesw-int"));
    m.ok(&["remove"]);

    let trace = m.edgenet(&["-vvv", "deploy", "--machine-name", "h7q"]);
    assert!(trace.status.success());
    let log = String::from_utf8_lossy(&trace.stderr);
    for step in ["state", "switch", "firewall", "finish"] {
        assert!(
            log.contains(&format!("step {step} reached after")),
            "{step}: {log}"
        );
    }
}

/// On a terminal, deploy says what it is doing on stderr; `-q` keeps it to the results.
#[test]
fn quiet_silences_progress_on_a_terminal() {
    let Some(m) = machine("h7quiet") else { return };
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: needs util-linux's script for a terminal");
        return;
    }
    let on_tty = |flags: &str| {
        let line = format!(
            "nsenter --net=/run/netns/{} {} {flags} deploy --machine-name h7q",
            m.ns,
            env!("CARGO_BIN_EXE_edgenet")
        );
        let out = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env("EDGENET_STATE_DIR", &m.state)
            .env("EDGENET_RESOLV_CONF", &m.resolv)
            .env("TERM", "dumb")
            .env_remove("EDGENET_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let loud = on_tty("");
    assert!(loud.contains("edgenet: deploying"), "{loud}");
    m.ok(&["remove"]);
    let quiet = on_tty("-q");
    assert!(!quiet.contains("edgenet: deploying"), "{quiet}");
    assert!(
        quiet.contains("created bridge aksedgesw-int"),
        "results stay: {quiet}"
    );
}
