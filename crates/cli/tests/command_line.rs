//! The command line as users of kubectl, podman and incus expect it: the JSON envelope of every
//! report, `-o` meaning one thing, completions and a man page, logging flags, `-c -`, help that
//! fits each command, enum spellings of the AKS EE cmdlets, colour, a closed pipe, and the
//! corpus of real AKS EE files through the binary.

use std::io::{Read, Write};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgenet"));
    cmd.env_remove("EDGENET_CONFIG")
        .env_remove("EDGENET_LOG")
        .env_remove("NO_COLOR");
    cmd
}

fn edgenet(args: &[&str]) -> Output {
    bin().args(args).output().expect("runs edgenet")
}

fn edgenet_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = bin();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("runs edgenet")
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            stdout(out),
            stderr(out)
        )
    })
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn corpus(name: &str) -> String {
    fixtures().join("corpus").join(name).display().to_string()
}

/// The envelope every report has: schema, ok, exit, error (the same object everywhere).
fn assert_envelope(v: &Value, schema: &str, exit: i32, keys: &[&str]) {
    assert_eq!(v["schema"], schema, "{v:#}");
    assert_eq!(v["exit"], exit, "{v:#}");
    assert_eq!(v["ok"], exit == 0, "{v:#}");
    let obj = v.as_object().unwrap();
    for k in ["schema", "ok", "exit", "error"].iter().chain(keys) {
        assert!(obj.contains_key(*k), "{schema}: key {k} missing in {v:#}");
    }
    // `ok: false` always comes with the error object, of the same shape everywhere.
    match &v["error"] {
        Value::Null => assert_eq!(exit, 0, "{v:#}"),
        Value::Object(e) => {
            let mut names: Vec<&str> = e.keys().map(String::as_str).collect();
            names.sort();
            assert_eq!(names, ["code", "exit", "hint", "message"], "{v:#}");
            assert_eq!(e["exit"], exit);
        }
        other => panic!("error is {other}"),
    }
}

#[test]
fn every_reporting_command_answers_in_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let s = state.to_str().unwrap();
    let labs = dir.path().join("labs");
    let l = labs.to_str().unwrap();
    let ok = corpus("v1.16-single-k3s-repo-sample.json");
    let bad = corpus("invalid-exact-duplicate-key.json");
    let cases: Vec<(Vec<&str>, &str, i32, Vec<&str>)> = vec![
        (
            vec!["check", "--offline-check", "-c", &ok],
            "edgenet.check/v1",
            0,
            vec!["source", "findings", "summary"],
        ),
        (
            vec!["check", "--offline-check", "-c", &bad],
            "edgenet.check/v1",
            1,
            vec!["findings"],
        ),
        (
            vec!["check", "-c", "/nonexistent.json"],
            "edgenet.check/v1",
            2,
            vec!["findings", "summary"],
        ),
        (
            vec!["plan", "--offline-check", "-c", &ok],
            "edgenet.plan/v1",
            0,
            vec!["switch", "nodes", "service_range"],
        ),
        (
            vec!["plan", "--offline-check", "-c", &bad],
            "edgenet.plan/v1",
            1,
            vec!["switch", "nodes"],
        ),
        (
            vec!["status", "--state-dir", s],
            "edgenet.status/v1",
            0,
            vec!["deployed", "plan", "nodes", "drift"],
        ),
        (
            vec!["node", "addr", "--state-dir", s],
            "edgenet.node-addr/v1",
            1,
            vec!["node", "ip", "mac"],
        ),
        (
            vec!["remove", "--state-dir", s],
            "edgenet.remove/v1",
            0,
            vec!["found", "removed", "errors"],
        ),
        (
            vec!["deploy", "--state-dir", s, "-c", &bad],
            "edgenet.deploy/v1",
            1,
            vec!["changes", "plan"],
        ),
        (
            vec!["lab", "status", "--name", "h7none", "--lab-dir", l],
            "edgenet.lab-status/v1",
            3,
            vec!["lab", "cells"],
        ),
        (
            vec!["lab", "down", "--name", "h7none", "--lab-dir", l],
            "edgenet.lab-down/v1",
            0,
            vec!["lab", "removed", "remove_runs"],
        ),
    ];
    for (args, schema, exit, keys) in cases {
        // `-o json` after the command, and `--output json` before it: one meaning.
        let mut after = args.clone();
        after.extend(["-o", "json"]);
        let out = edgenet(&after);
        assert_eq!(code(&out), exit, "{args:?}: {}", stderr(&out));
        assert_envelope(&json(&out), schema, exit, &keys);
        let mut before = vec!["--output", "json"];
        before.extend(&args);
        let out = edgenet(&before);
        assert_eq!(code(&out), exit, "{args:?}");
        assert_envelope(&json(&out), schema, exit, &keys);
    }
}

#[test]
fn file_output_is_f_and_o_is_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new.json");
    let f = file.to_str().unwrap();
    let out = edgenet(&["config", "new", "-f", f]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("SingleMachineCluster"));
    // -o is the output format everywhere: a file name is not one.
    let out = edgenet(&["config", "new", "-o", f]);
    assert_eq!(code(&out), 2);
    let out = edgenet(&["plan", "-o", "yaml"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("json"), "{}", stderr(&out));
    // Formats are matched in any case.
    assert_eq!(code(&edgenet(&["plan", "-o", "JSON"])), 0);
}

#[test]
fn enums_take_any_case_and_the_cmdlet_spellings() {
    let dir = tempfile::tempdir().unwrap();
    for (args, kind, windows) in [
        (
            vec![
                "--deployment-type",
                "ScalableCluster",
                "--node-type",
                "LinuxAndWindows",
                "--distro",
                "K8S",
            ],
            "ScalableCluster",
            true,
        ),
        (
            vec![
                "--deployment-type",
                "SingleMachineCluster",
                "--node-type",
                "Linux",
            ],
            "SingleMachineCluster",
            false,
        ),
        (
            vec![
                "--deployment-type",
                "SCALABLE",
                "--node-type",
                "linux-and-windows",
            ],
            "ScalableCluster",
            true,
        ),
    ] {
        let file = dir.path().join("c.json");
        let f = file.to_str().unwrap();
        let mut all = vec!["config", "new", "--force", "-f", f];
        all.extend(&args);
        let out = edgenet(&all);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(v["DeploymentType"], kind, "{args:?}");
        assert_eq!(
            v["Machines"][0].get("WindowsNode").is_some(),
            windows,
            "{args:?}"
        );
    }
    let out = edgenet(&[
        "node",
        "addr",
        "--node-type",
        "Windows",
        "--state-dir",
        "/nonexistent",
    ]);
    assert_ne!(code(&out), 2, "Windows is a node type: {}", stderr(&out));
}

#[test]
fn completions_for_every_shell_and_a_man_page() {
    for (shell, needle) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef edgenet"),
        ("fish", "complete -c edgenet"),
        ("powershell", "Register-ArgumentCompleter"),
        ("PowerShell", "Register-ArgumentCompleter"),
    ] {
        let out = edgenet(&["completions", shell]);
        assert_eq!(code(&out), 0, "{shell}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains(needle), "{shell}");
        // Generated from the one clap definition: subcommands and their flags are in it.
        assert!(
            text.contains("scale-config") && text.contains("offline-check"),
            "{shell}"
        );
    }
    let out = edgenet(&["man"]);
    assert_eq!(code(&out), 0);
    let page = stdout(&out);
    assert!(
        page.starts_with(".ie") || page.contains(".TH edgenet"),
        "{page}"
    );
    assert!(page.contains("deploy"));
}

#[test]
fn help_of_each_command_lists_only_its_options() {
    let help = |args: &[&str]| {
        let out = edgenet(args);
        assert_eq!(code(&out), 0, "{args:?}");
        stdout(&out)
    };
    let status = help(&["status", "--help"]);
    assert!(status.contains("--state-dir") && status.contains("--output"));
    for unused in [
        "--config",
        "--resolv-conf",
        "--machine-name",
        "--upstream-resolv-conf",
    ] {
        assert!(!status.contains(unused), "status lists {unused}:\n{status}");
    }
    let check = help(&["check", "--help"]);
    for used in [
        "--config",
        "--output",
        "--resolv-conf",
        "--machine",
        "--offline-check",
    ] {
        assert!(check.contains(used), "check does not list {used}");
    }
    let new = help(&["config", "new", "--help"]);
    // config new reports in JSON what it wrote (-o before or after the command).
    assert!(new.contains("--file") && !new.contains("--state-dir") && new.contains("--output"));
    let addr = help(&["node", "addr", "--help"]);
    assert!(!addr.contains("--config"));
    let lab = help(&["lab", "status", "--help"]);
    assert!(!lab.contains("--state-dir") && !lab.contains("--config"));
    // Global options given before the command still work for any command.
    let out = edgenet(&[
        "--state-dir",
        "/nonexistent",
        "--resolv-conf",
        "/nonexistent",
        "status",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // An option the command does not use is refused after it.
    assert_eq!(code(&edgenet(&["status", "--resolv-conf", "/x"])), 2);
}

#[test]
fn config_from_standard_input() {
    let text = std::fs::read(corpus("v1.9-scalable-docs-servicesipsize-casing.json")).unwrap();
    let mut child = bin()
        .args(["plan", "--offline-check", "-c", "-", "-o", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json(&out)["service_range"]["size"], 10);
    // Unreadable input names standard input.
    let mut child = bin()
        .args(["check", "-c", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"{ nope").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("standard input"), "{}", stderr(&out));
}

#[test]
fn too_large_is_refused_after_reading_at_most_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.json");
    let size = 9 * 1024 * 1024 + 12_345;
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(b"{\"Pad\": \"").unwrap();
    f.write_all(&vec![b'x'; size - 11]).unwrap();
    f.write_all(b"\"}").unwrap();
    drop(f);
    let out = edgenet(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("more than 8 MiB"), "{}", stderr(&out));
    // Endless sources end too: /dev/zero, and `yes | edgenet check -c -`.
    let timed = |mut child: std::process::Child| -> Output {
        let start = std::time::Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            if start.elapsed() > std::time::Duration::from_secs(60) {
                child.kill().unwrap();
                panic!("edgenet still reading an endless config after 60 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let zero = bin()
        .args(["check", "-c", "/dev/zero"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = timed(zero);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("more than 8 MiB"), "{}", stderr(&out));
    let mut yes = bin()
        .args(["check", "-c", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = yes.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let line = b"y\n".repeat(4096);
        while input.write_all(&line).is_ok() {}
    });
    let out = timed(yes);
    writer.join().unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("more than 8 MiB"), "{}", stderr(&out));
}

#[test]
fn usage_errors_answer_in_json_when_json_is_asked_for() {
    for args in [
        &["-o", "json", "check", "--bogus"][..],
        &["check", "--bogus", "--output", "json"],
        &["--output=json", "plan", "--machine", "x"],
        &["-ojson", "nosuchcommand"],
    ] {
        let out = edgenet(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        let v = json(&out);
        assert_envelope(&v, "edgenet.error/v1", 2, &[]);
        assert_eq!(v["error"]["code"], "usage", "{v:#}");
        assert!(!stderr(&out).is_empty());
    }
    // Text output: clap's message alone, nothing on stdout.
    let out = edgenet(&["check", "--bogus"]);
    assert_eq!(code(&out), 2);
    assert!(stdout(&out).is_empty());
}

#[test]
fn output_given_twice_the_last_one_wins_before_or_after_the_command() {
    for args in [
        &["-o", "json", "-o", "text", "check", "--offline-check"][..],
        &["-o", "json", "check", "--offline-check", "-o", "text"],
    ] {
        let out = edgenet(args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        assert!(
            serde_json::from_slice::<Value>(&out.stdout).is_err(),
            "{args:?}"
        );
    }
    let out = edgenet(&["-o", "text", "check", "--offline-check", "-o", "json"]);
    assert_envelope(&json(&out), "edgenet.check/v1", 0, &[]);
}

#[test]
fn completions_and_man_refuse_other_formats() {
    for args in [
        &["-o", "json", "completions", "bash"][..],
        &["completions", "bash", "-o", "json"],
        &["-o", "svg", "man"],
        // `-o` after `man` is the same as before it (it was an unknown option there).
        &["-o", "json", "man"],
        &["man", "-o", "json"],
        &["man", "--output", "svg"],
    ] {
        let out = edgenet(args);
        assert_eq!(code(&out), 2, "{args:?}");
        assert_eq!(json_or_text_code(&out), "unsupported-format", "{args:?}");
    }
    // D12: `-o text` after the command is harmless, as before it.
    let out = edgenet(&["completions", "bash", "-o", "text"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("complete -F"));
    let out = edgenet(&["man", "-o", "text"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains(".TH edgenet"), "{}", stdout(&out));
    // Same envelope in both places.
    let before = edgenet(&["-o", "json", "man"]);
    let after = edgenet(&["man", "-o", "json"]);
    assert_eq!(stdout(&before), stdout(&after));
}

/// `man` and `completions` take `-o` as every command does (the one definition), with a help
/// line that says what they write: text only, not the JSON envelope of every other command.
#[test]
fn man_and_completions_help_say_text_only() {
    for (args, what) in [
        (&["man", "--help"][..], "a manual page"),
        (&["completions", "--help"], "a completion script"),
    ] {
        let out = edgenet(args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        let help = stdout(&out);
        // `-h`: the option and its help on one line.
        let short = stdout(&edgenet(&[args[0], "-h"]));
        let line = short
            .lines()
            .find(|l| l.trim_start().starts_with("-o, --output <FORMAT>"))
            .unwrap_or_else(|| panic!("{args:?}: no -o: {short}"));
        assert!(
            line.contains("text only") && line.contains(what),
            "{args:?}: {line}"
        );
        assert!(
            !help.contains("one envelope per report"),
            "{args:?}: {help}"
        );
    }
    // Every other command keeps the one help line.
    let status = stdout(&edgenet(&["status", "--help"]));
    assert!(status.contains("one envelope per report"), "{status}");
}

fn json_or_text_code(out: &Output) -> String {
    match serde_json::from_slice::<Value>(&out.stdout) {
        Ok(v) => v["error"]["code"].as_str().unwrap_or("").to_string(),
        Err(_) => {
            if stderr(out).contains("writes text only")
                || stderr(out).contains("is not available for this command")
            {
                "unsupported-format".into()
            } else {
                stderr(out)
            }
        }
    }
}

#[test]
fn clap_help_and_errors_follow_color() {
    let out = edgenet(&["--color", "always", "check", "--bogus"]);
    assert!(stderr(&out).contains("\x1b["), "{}", stderr(&out));
    let out = edgenet(&["--color", "never", "check", "--bogus"]);
    assert!(!stderr(&out).contains("\x1b["), "{}", stderr(&out));
    let out = edgenet(&["--color=always", "--help"]);
    assert!(stdout(&out).contains("\x1b["));
    let out = edgenet_env(&["--color", "auto", "--help"], &[("NO_COLOR", "1")]);
    assert!(!stdout(&out).contains("\x1b["));
}

#[test]
fn lab_up_refuses_zero_machines_before_writing_anything() {
    let out = edgenet(&["lab", "up", "--name", "f7zero", "--scalable", "0"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--scalable"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1..=255") || stderr(&out).contains("not in"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_empty_edgenet_config_is_unset_and_a_missing_file_has_a_hint() {
    let out = edgenet_env(&["check", "--offline-check"], &[("EDGENET_CONFIG", "")]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = edgenet(&["check", "-c", "/nonexistent-f7.json"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("hint:"), "{}", stderr(&out));
}

#[test]
fn a_joining_machine_plan_says_why_it_has_no_service_ips() {
    let out = edgenet(&[
        "plan",
        "--offline-check",
        "-c",
        &corpus("v1.15-scalable-join-k3s-jumpstart.json"),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("joining machine"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("ServiceIPRangeSize is 0"));
}

#[test]
fn config_new_and_scale_config_take_o_after_the_command_and_report_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new.json");
    let out = edgenet(&["config", "new", "-f", file.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v = json(&out);
    assert_envelope(&v, "edgenet.config/v1", 0, &["file", "config"]);
    assert_eq!(v["file"], file.to_str().unwrap());
    let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(v["config"], written);
    let scale = dir.path().join("scale.json");
    let out = edgenet(&[
        "scale-config",
        "-c",
        &corpus("v1.13-scalable-three-machines.json"),
        "--linux-node-ip",
        "10.1.0.120",
        "-f",
        scale.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_envelope(&json(&out), "edgenet.config/v1", 0, &["file", "config"]);
}

#[test]
fn config_new_writes_the_current_schema_version() {
    let out = edgenet(&["config", "new"]);
    assert_eq!(code(&out), 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["SchemaVersion"], "1.16");
}

#[test]
fn render_enums_take_any_case() {
    let out = edgenet(&[
        "render",
        "--lb",
        "MetalLB",
        "--node",
        "Linux",
        "readme",
        "--offline-check",
    ]);
    assert!(!stderr(&out).contains("invalid value"), "{}", stderr(&out));
}

#[test]
fn logging_flags() {
    let ok = corpus("v1.16-single-k3s-repo-sample.json");
    let out = edgenet_env(
        &["check", "--offline-check", "-c", &ok],
        &[("EDGENET_LOG", "edgenet=nonsense")],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("EDGENET_LOG"), "{}", stderr(&out));
    let out = edgenet_env(
        &["check", "--offline-check", "-c", &ok],
        &[("EDGENET_LOG", "debug")],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // -q and -v say opposite things.
    assert_eq!(code(&edgenet(&["-q", "-v", "check"])), 2);
    let out = edgenet(&["-q", "check", "--offline-check", "-c", &ok]);
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn colour_follows_color_no_color_and_term() {
    let bad = corpus("invalid-exact-duplicate-key.json");
    let args = ["check", "--offline-check", "-c", bad.as_str()];
    let esc = |out: &Output| stdout(out).contains('\x1b');
    let mut always = vec!["--color", "always"];
    always.extend(args);
    assert!(esc(&edgenet(&always)));
    let mut never = vec!["--color", "never"];
    never.extend(args);
    assert!(!esc(&edgenet(&never)));
    // auto: not on a pipe.
    assert!(!esc(&edgenet(&args)));
    // auto on a terminal: coloured, unless NO_COLOR or TERM=dumb (a pty from util-linux's
    // `script`).
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: the terminal cases need util-linux's script");
        return;
    }
    let on_tty = |env: &[(&str, &str)]| {
        let line = format!("{} {}", env!("CARGO_BIN_EXE_edgenet"), args.join(" "));
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .env_remove("NO_COLOR")
            .env("TERM", "xterm");
        for (k, v) in env {
            cmd.env(k, v);
        }
        String::from_utf8_lossy(&cmd.output().unwrap().stdout).contains('\x1b')
    };
    assert!(on_tty(&[]), "a terminal is coloured");
    assert!(!on_tty(&[("NO_COLOR", "1")]), "NO_COLOR");
    assert!(!on_tty(&[("TERM", "dumb")]), "TERM=dumb");
}

/// `edgenet … | head -1`: the reader goes away; edgenet ends quietly, as `ls` does (killed by
/// SIGPIPE, no panic, nothing on stderr). `deploy` and `remove`, whose report comes once the
/// host is changed, lose it and exit with their own status instead (see interrupted_run.rs).
#[test]
fn a_closed_pipe_ends_every_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("state").display().to_string();
    let ok = corpus("v1.13-scalable-three-machines.json");
    let commands: Vec<Vec<&str>> = vec![
        vec!["check", "--offline-check", "-c", &ok],
        vec!["plan", "--offline-check", "-c", &ok, "--machine", "1"],
        vec!["status", "--state-dir", &s],
        vec!["remove", "--state-dir", &s],
        vec!["config", "new", "--deployment-type", "scalable"],
        vec!["completions", "zsh"],
        vec!["man"],
        vec!["--help"],
    ];
    for args in commands {
        for format in ["text", "json"] {
            let mut all = args.clone();
            if !matches!(args[0], "config" | "completions" | "man" | "--help") {
                all.extend(["--output", format]);
            }
            // The reader is gone before edgenet writes anything (as when `head` has exited).
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            let mut child = bin()
                .args(&all)
                .stdout(writer)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            let status = child.wait().unwrap();
            assert!(!err.contains("panicked"), "{all:?}: {err}");
            assert!(!err.contains("Broken pipe"), "{all:?}: {err}");
            use std::os::unix::process::ExitStatusExt;
            if args[0] == "remove" {
                assert_eq!(status.code(), Some(0), "{all:?}: {status:?} {err}");
            } else {
                assert_eq!(status.signal(), Some(13), "{all:?}: {status:?} {err}");
            }
            assert!(err.is_empty(), "{all:?}: {err}");
        }
    }
}

#[test]
fn lab_up_refuses_a_config_that_fails_check_from_c_and_edgenet_config() {
    let dir = tempfile::tempdir().unwrap();
    let labs = dir.path().join("labs");
    let l = labs.to_str().unwrap();
    let bad = corpus("invalid-service-range-two-places.json");
    let with_c = edgenet(&["lab", "up", "-c", &bad, "--name", "h7bad", "--lab-dir", l]);
    let with_env = edgenet_env(
        &["lab", "up", "--name", "h7bad", "--lab-dir", l],
        &[("EDGENET_CONFIG", &bad)],
    );
    for out in [with_c, with_env] {
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("conflicting-fields")
                && stderr(&out).contains("the lab was not built"),
            "{}",
            stderr(&out)
        );
    }
    // From standard input too, and nothing is written for it.
    let mut child = bin()
        .args(["lab", "up", "-c", "-", "--name", "h7bad", "--lab-dir", l])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&bad).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("standard input has"),
        "{}",
        stderr(&out)
    );
    assert!(!labs.exists(), "nothing was built or written");
}

/// Every file of the corpus through the binary: valid ones pass `check` and plan, invalid ones
/// fail with exit 1.
#[test]
fn the_corpus_through_the_binary() {
    let mut n = 0;
    for entry in std::fs::read_dir(fixtures().join("corpus")).unwrap() {
        let path = entry.unwrap().path();
        let p = path.to_str().unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        if !name.ends_with(".json") {
            continue;
        }
        let valid = !name.starts_with("invalid-");
        let out = edgenet(&[
            "check",
            "--offline-check",
            "-c",
            p,
            "--machine",
            "0",
            "-o",
            "json",
        ]);
        assert_eq!(
            code(&out),
            if valid { 0 } else { 1 },
            "{name}: {}",
            stdout(&out)
        );
        let out = edgenet(&["plan", "--offline-check", "-c", p, "--machine", "0"]);
        assert_eq!(
            code(&out),
            if valid { 0 } else { 1 },
            "{name}: {}",
            stderr(&out)
        );
        n += 1;
    }
    assert!(n >= 15);
}

/// A cluster config with keys in another case (as PowerShell accepts it) still makes a
/// joining machine's config, written in the schema's spelling.
#[test]
fn scale_config_from_a_lower_case_cluster_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("join.json");
    let run = edgenet(&[
        "scale-config",
        "-c",
        &corpus("v1.16-scalable-lowercase-keys.json"),
        "--linux-node-ip",
        "192.168.20.232",
        "-f",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&run), 0, "{}", stderr(&run));
    let v: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["Network"]["ControlPlaneEndpointIp"], "192.168.20.230");
    assert_eq!(
        v["Machines"][0]["LinuxNode"]["Ip4Address"],
        "192.168.20.232"
    );
    let checked = edgenet(&["check", "--offline-check", "-c", out.to_str().unwrap()]);
    assert_eq!(code(&checked), 0, "{}", stdout(&checked));
}

#[test]
fn help_of_help_is_help_not_a_usage_error() {
    for flag in ["--help", "-h"] {
        let out = edgenet(&["help", flag]);
        assert_eq!(code(&out), 0, "help {flag}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("Usage: edgenet help"),
            "help {flag} prints the help of `help`: {}",
            stdout(&out)
        );
    }
}

#[test]
fn a_json_usage_error_names_what_is_missing() {
    let out = edgenet(&["-o", "json", "node", "exec"]);
    assert_eq!(code(&out), 2);
    let v = json(&out);
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("were not provided") && message.contains("<CMD>"),
        "the message names the missing argument: {message}"
    );
}

#[test]
fn a_command_group_without_its_subcommand_answers_json_when_asked() {
    for group in ["node", "config", "lab"] {
        let out = edgenet(&["-o", "json", group]);
        assert_eq!(code(&out), 2, "{group}: {}", stderr(&out));
        let v = json(&out);
        assert_eq!(v["schema"], "edgenet.error/v1", "{group}: {v:#}");
        assert!(
            v["error"]["message"].as_str().is_some_and(
                |m| m.contains(&format!("edgenet {group}")) && m.contains("subcommand")
            ),
            "{group}: {v:#}"
        );
        // Without JSON asked for, the group's help, as before.
        let out = edgenet(&[group]);
        assert_eq!(code(&out), 0, "{group}");
        assert!(stderr(&out).contains("Usage:"), "{group}");
    }
}
