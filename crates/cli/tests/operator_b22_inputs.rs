//! Defects of the black-box operator test B22 about what the command line names: resolver
//! files (finding 4) and the smaller points of finding 13. Namespaces are named `g22-…`.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// edgenet with `args` in namespace `ns`, killed if it has not ended after a minute (a FIFO would block it for
/// ever without the fix), its address space capped (a device read to the end would grow it
/// until the machine runs out of memory without the fix).
fn edgenet_capped(ns: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 1000000; exec \"$@\"")
        .arg("sh")
        .arg("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .arg(env!("CARGO_BIN_EXE_edgenet"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("EDGENET_CONFIG")
        .env_remove("EDGENET_RESOLV_CONF")
        .env_remove("EDGENET_UPSTREAM_RESOLV_CONF")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn resolver_files_that_are_not_regular_files_are_refused_as_command_line_mistakes() {
    let Some(m) = machine_prefixed("g22", "resolv") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let fifo = fifo.display().to_string();
    let missing = dir.path().join("none").display().to_string();
    let state = dir.path().join("state").display().to_string();
    for (flag, path, why) in [
        (
            "--resolv-conf",
            "/dev/zero",
            "is not a regular file (it is a character device)",
        ),
        (
            "--resolv-conf",
            fifo.as_str(),
            "is not a regular file (it is a FIFO)",
        ),
        ("--resolv-conf", missing.as_str(), "does not exist"),
        (
            "--upstream-resolv-conf",
            "/dev/zero",
            "is not a regular file (it is a character device)",
        ),
        (
            "--upstream-resolv-conf",
            fifo.as_str(),
            "is not a regular file (it is a FIFO)",
        ),
    ] {
        for command in ["check", "plan", "deploy"] {
            let out = edgenet_capped(
                &m.ns,
                &["--state-dir", &state, command, flag, path, "-o", "json"],
            );
            assert_eq!(
                out.status.code(),
                Some(2),
                "{command} {flag} {path}: {out:?}"
            );
            let v = json(&out);
            assert_eq!(v["error"]["code"], "invalid-arguments", "{v}");
            let message = v["error"]["message"].as_str().unwrap();
            assert_eq!(
                message,
                format!("{flag} {path}: {why}; nothing was read or changed"),
                "{v}"
            );
            assert!(v["error"]["hint"].as_str().unwrap().contains(flag), "{v}");
            assert!(
                !std::path::Path::new(&state).exists(),
                "{command} made {state}"
            );
        }
    }
}

#[test]
fn an_oversized_resolver_file_is_refused() {
    let Some(m) = machine_prefixed("g22", "bigresolv") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("resolv.conf");
    let mut text = "nameserver 192.0.2.53\n".to_string();
    text.push_str(&"#".repeat(2 << 20));
    std::fs::write(&big, text).unwrap();
    let big = big.display().to_string();
    let out = edgenet_capped(
        &m.ns,
        &[
            "check",
            "--offline-check",
            "--resolv-conf",
            &big,
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let v = json(&out);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("edgenet reads at most 1048576 bytes (1 MiB) of a resolver file"),
        "{v}"
    );
}

/// B22 finding 11: install-unit refuses what would make a unit that cannot work, with deploy's
/// exit codes, and writes nothing then.
#[test]
fn install_unit_refuses_a_unit_that_cannot_work_and_writes_nothing() {
    let Some(m) = machine_prefixed("g22", "unit") else {
        return;
    };
    let units = m.dir.path().join("units");
    let unit = units.join("edgenet.service");
    let state = m.state.display().to_string();
    let units_arg = units.display().to_string();
    let good = m.write_config(
        "good.json",
        &serde_json::json!({"Network": {"SkipDnsCheck": true}, "Edgenet": {"SwitchName": "g22u", "MachineName": "g22u"}}),
    );
    let dup = m.dir.path().join("dup.json");
    std::fs::write(
        &dup,
        r#"{"Network":{"SkipDnsCheck":true},"Edgenet":{"SwitchName":"g22u","SwitchName":"g22v","MachineName":"g22u"}}"#,
    )
    .unwrap();
    let dup = dup.display().to_string();
    let not_exec = m.dir.path().join("edgenet-copy");
    std::fs::write(&not_exec, "#!/bin/sh\n").unwrap();
    let not_exec = not_exec.display().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--state-dir",
            &state,
            "install-unit",
            "--unit-dir",
            &units_arg,
        ];
        args.extend_from_slice(extra);
        edgenet_capped(&m.ns, &args)
    };
    let cases: [(&[&str], i32, &str, &str); 6] = [
        (
            &["-c", &dup],
            1,
            "has 1 error(s); no unit was written",
            "error[duplicate-key]",
        ),
        (
            &["-c", &good, "--binary", "relative/edgenet"],
            2,
            "--binary relative/edgenet: not an absolute path",
            "hint: give the absolute path",
        ),
        (
            &["-c", &good, "--binary", "/nonexistent-g22/edgenet"],
            2,
            "--binary /nonexistent-g22/edgenet: does not exist",
            "no unit was written",
        ),
        (
            &["-c", &good, "--binary", &not_exec],
            2,
            "is not executable",
            "no unit was written",
        ),
        (
            &["-c", &good, "--machine", "3"],
            2,
            "--machine 3 is out of range",
            "use --machine 0",
        ),
        (
            &["-c", &good, "--binary", "/tmp"],
            2,
            "--binary /tmp: is not a regular file",
            "no unit was written",
        ),
    ];
    for (extra, code, said, also) in cases {
        let out = run(extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{extra:?}: {err}");
        assert!(err.contains(said) && err.contains(also), "{extra:?}: {err}");
        assert!(!units.exists(), "{extra:?} wrote {}", units.display());
    }

    // A foreign unit in the way: exit 3 (`foreign-unit`), left as it was.
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(&unit, "[Unit]\nDescription=theirs\n").unwrap();
    let out = run(&["-c", &good]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&unit).unwrap(),
        "[Unit]\nDescription=theirs\n"
    );
    std::fs::remove_file(&unit).unwrap();

    // The "at boot it runs" line quotes a path with a space, `%` and `$` as a shell reads it.
    let odd_dir = m.dir.path().join("d dir%n$x");
    std::fs::create_dir_all(&odd_dir).unwrap();
    let odd = odd_dir.join("site 1.json");
    std::fs::copy(&good, &odd).unwrap();
    let odd = odd.display().to_string();
    let out = run(&["-c", &odd]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!(" --config '{odd}' --wait 300")),
        "{said}"
    );
    let written = std::fs::read_to_string(&unit).unwrap();
    let expected = odd.replace('%', "%%").replace('$', "$$");
    assert!(
        written.contains(&format!("--config \"{expected}\"")),
        "{written}"
    );
}

/// B22 finding 13: `remove --orphan` takes an id in capitals as the same id, and does not say
/// "Removed" when it removed nothing (only an unmarked look-alike, which it leaves).
#[test]
fn remove_orphan_takes_capitals_and_says_when_nothing_was_removed() {
    let Some(m) = machine_prefixed("g22", "orphan") else {
        return;
    };
    sh(&format!(
        "ip netns exec {} nft 'add table ip edgenet_abcdef; add chain ip edgenet_abcdef c; add rule ip edgenet_abcdef c counter'",
        m.ns
    ));
    let out = m.edgenet(&["remove", "--orphan", "ABCDEF"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(said.contains("  left "), "{said}");
    assert!(
        said.contains("Nothing was removed: nothing in this network namespace carries the mark of deployment abcdef any more; what is listed as left is not edgenet's to delete."),
        "{said}"
    );
    assert!(!said.contains("Removed what deployment"), "{said}");
    // The look-alike is still there.
    let tables = sh_out(&format!("ip netns exec {} nft list tables", m.ns));
    assert!(tables.contains("table ip edgenet_abcdef"), "{tables}");
}

/// B22 finding 13: a `--state-dir` that names a file is a command-line mistake (exit 2, with
/// a hint), for every command that reads a state directory.
#[test]
fn a_state_dir_that_is_a_file_is_a_command_line_mistake() {
    let Some(m) = machine_prefixed("g22", "statefile") else {
        return;
    };
    let file = m.write_config(
        "c.json",
        &serde_json::json!({"Network": {"SkipDnsCheck": true}, "Edgenet": {"SwitchName": "g22sf", "MachineName": "g22sf"}}),
    );
    let before = std::fs::read(&file).unwrap();
    for command in [&["deploy"][..], &["remove"], &["status"], &["check"]] {
        let mut args = vec!["--state-dir", file.as_str(), "-o", "json"];
        args.extend_from_slice(command);
        let out = edgenet_capped(&m.ns, &args);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {out:?}");
        let v = json(&out);
        assert_eq!(v["error"]["code"], "invalid-arguments", "{v}");
        assert_eq!(
            v["error"]["message"],
            format!("--state-dir {file}: is a regular file, not a directory; nothing was read or changed"),
            "{v}"
        );
        assert!(
            v["error"]["hint"]
                .as_str()
                .unwrap()
                .contains("a config goes to -c"),
            "{v}"
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), before);
    assert!(bridges(&m.ns).is_empty());
}
