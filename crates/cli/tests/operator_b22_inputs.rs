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
