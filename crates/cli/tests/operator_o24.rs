//! Loose ends an operator runs into (step fourteen, O24): `node exec` of a command that is not
//! there or not runnable, and the others named at each test. Namespaces are named `o24-…`.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::*;

/// `node exec` of a command that does not exist exits 127, of one that is there but cannot be
/// run 126 — as shells, `env`, `nsenter` and `ip netns exec` do — naming the command.
#[test]
fn node_exec_of_a_missing_or_unrunnable_command_exits_127_or_126() {
    let Some(m) = machine_prefixed("o24", "exec") else {
        return;
    };
    m.deploy(None);
    let out = m.edgenet(&["node", "exec", "--", "o24-no-such-command", "-x"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(127), "{err}");
    assert!(
        err.contains("o24-no-such-command: command not found"),
        "{err}"
    );
    assert!(
        err.contains("linux-ledge") || err.contains("-ledge"),
        "{err}"
    );

    let script = m.dir.path().join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = m.edgenet(&["node", "exec", "--", script.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(126), "{err}");
    assert!(
        err.contains(&format!("{}: Permission denied", script.display())),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing ran");

    // The command's own status still passes through.
    let out = m.edgenet(&["node", "exec", "--", "sh", "-c", "exit 127"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A host name longer than a machine name may be is shortened with the notice
/// `machine-name-shortened` (check and deploy), which names it, what it became and the fix.
#[test]
fn a_deploy_on_a_host_with_a_too_long_name_says_it_shortened_it() {
    let Some(m) = machine_prefixed("o24", "longname") else {
        return;
    };
    let long = "o24-build-agent-0123456789-0123456789-0123456789-abcdefghij";
    let short = &long[..57];
    // The host name in a UTS namespace of its own, the network in the machine's.
    let deploy = std::process::Command::new("unshare")
        .args([
            "--uts",
            "sh",
            "-c",
            "hostname \"$1\" && shift && exec \"$@\"",
            "sh",
            long,
        ])
        .arg("nsenter")
        .arg(format!("--net=/run/netns/{}", m.ns))
        .arg(env!("CARGO_BIN_EXE_edgenet"))
        .args(["deploy", "-o", "json"])
        .env("EDGENET_STATE_DIR", &m.state)
        .env("EDGENET_RESOLV_CONF", &m.resolv)
        .env_remove("EDGENET_MACHINE_NAME")
        .env_remove("EDGENET_CONFIG")
        .output()
        .unwrap();
    let report = stdout_json(&deploy);
    assert_eq!(deploy.status.code(), Some(0), "{report}");
    let notice = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "machine-name-shortened")
        .unwrap_or_else(|| panic!("no notice: {report}"));
    assert_eq!(notice["severity"], "notice");
    let message = notice["message"].as_str().unwrap();
    assert!(
        message.contains(long) && message.contains(&format!("{short:?}")),
        "{message}"
    );
    assert!(
        notice["hint"].as_str().unwrap().contains("--machine-name"),
        "{notice}"
    );
    let err = String::from_utf8_lossy(&deploy.stderr);
    assert!(err.contains("machine-name-shortened"), "{err}");
    // What the kernel got: the node's namespace is named after the shortened name.
    assert_eq!(report["plan"]["machine"]["name"], short, "{report}");
    let id = m.state_id().unwrap();
    m.edgenet(&["status"]); // records the id, so that the guard's drop sweeps its namespaces
    let nodes = m.node_namespaces();
    assert!(nodes.contains(&format!("{short}-ledge-{id}")), "{nodes:?}");
}
