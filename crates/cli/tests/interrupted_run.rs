//! Ctrl-C (SIGINT) during a deploy or remove: the process still ends by the signal (exit
//! status 130 in a shell), but says on stderr that the run was interrupted and what to do, and
//! with `-o json` stdout holds one parseable failure envelope (code `interrupted`, exit 130).
//! What an interrupted deploy left, the next deploy converges and `remove` cleans.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

fn spawn(m: &Machine, args: &[&str]) -> Child {
    Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", m.ns))
        .arg(env!("CARGO_BIN_EXE_edgenet"))
        .args(args)
        .env("EDGENET_STATE_DIR", &m.state)
        .env("EDGENET_RESOLV_CONF", &m.resolv)
        .env("NO_COLOR", "1")
        .env_remove("EDGENET_FAILPOINT")
        .env_remove("EDGENET_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn sigint(child: &Child) {
    // nsenter execs edgenet in the same process: the child's pid is edgenet's.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
}

/// Waits until `child` holds the state directory open (it waits for its lock).
fn wait_for_lock(m: &Machine, child: &Child) {
    let fds = format!("/proc/{}/fd", child.id());
    let start = Instant::now();
    while !std::fs::read_dir(&fds).into_iter().flatten().any(|e| {
        e.ok()
            .and_then(|e| std::fs::read_link(e.path()).ok())
            .is_some_and(|t| t == m.state)
    }) {
        assert!(start.elapsed() < Duration::from_secs(20), "never waited");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_interrupted_deploy_or_remove_says_so_and_json_gets_its_envelope() {
    let Some(m) = machine("x15si") else { return };
    m.deploy(None);
    let held = std::fs::File::open(&m.state).unwrap();
    held.lock().unwrap();

    // -o json: one envelope on stdout, the words on stderr.
    let child = spawn(&m, &["deploy", "--wait", "30", "-o", "json"]);
    wait_for_lock(&m, &child);
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(libc_sigint()), "{:?}", out.status);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(v["schema"], "edgenet.deploy/v1", "{v:#}");
    assert_eq!(v["ok"], false);
    assert_eq!(v["exit"], 130);
    assert_eq!(v["error"]["code"], "interrupted");
    assert!(v["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("edgenet deploy"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("deploy interrupted by SIGINT"), "{stderr}");

    // Text: the words on stderr, nothing on stdout.
    let child = spawn(&m, &["remove", "--wait", "30"]);
    wait_for_lock(&m, &child);
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(libc_sigint()), "{:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("remove interrupted by SIGINT"), "{stderr}");
    assert!(stderr.contains("edgenet remove"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    held.unlock().unwrap();
    // It was interrupted while it waited: the deployment is as it was.
    assert_eq!(m.edgenet(&["status"]).status.code(), Some(0));
}

/// A first deploy interrupted part-way (after growing delays until one is caught mid-run):
/// it says so, the next deploy converges and remove leaves nothing.
#[test]
fn a_deploy_interrupted_part_way_is_finished_by_the_next_deploy() {
    let Some(m) = machine("x15sp") else { return };
    let before = m.dump();
    let mut caught = false;
    for delay_ms in (0..400).step_by(4) {
        let child = spawn(&m, &["deploy"]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        sigint(&child);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.signal() == Some(libc_sigint()) {
            // (Signalled before edgenet started, it is gone before it could say anything.)
            if m.state_id().is_none() {
                continue;
            }
            assert!(stderr.contains("deploy interrupted by SIGINT"), "{stderr}");
            if m.edgenet(&["status"]).status.code() != Some(0) {
                caught = true;
                eprintln!("caught part-way after {delay_ms} ms: {stderr}");
                let v = m.deploy(None);
                assert!(v["ok"] == true, "{v:#}");
                assert_eq!(m.edgenet(&["status"]).status.code(), Some(0));
                break;
            }
        } else {
            assert!(out.status.success(), "{:?}: {stderr}", out.status);
            assert!(!stderr.contains("interrupted"), "{stderr}");
        }
        m.ok(&["remove"]);
    }
    assert!(caught, "no delay caught the deploy part-way");
    m.ok(&["remove"]);
    assert_eq!(m.dump(), before);
}

fn libc_sigint() -> i32 {
    nix::sys::signal::Signal::SIGINT as i32
}

/// The signal twice, at once, as `timeout` and a terminal's Ctrl-C deliver it (to the process
/// and to its group): whichever threads take the two, the run still says it was interrupted.
/// (With the handler reset after its first run, the second copy reached another thread with
/// the default disposition and ended the run silently, 8 times in 60 under `timeout`.)
#[test]
fn a_signal_sent_twice_at_once_is_still_said() {
    let Some(m) = machine("l15s2") else { return };
    let mut said = 0;
    for round in 0..60u64 {
        let child = spawn(&m, &["deploy", "-o", "json"]);
        std::thread::sleep(Duration::from_micros(2_000 + (round % 12) * 500));
        sigint(&child);
        sigint(&child);
        let out = child.wait_with_output().unwrap();
        if out.status.signal() == Some(libc_sigint()) && m.state_id().is_some() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("deploy interrupted by SIGINT"),
                "round {round}: ended by SIGINT after changing the host, silently: {stderr:?}"
            );
            let _: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!(
                    "round {round}: {e}: {}",
                    String::from_utf8_lossy(&out.stdout)
                )
            });
            said += 1;
        }
        m.ok(&["remove"]);
    }
    assert!(said > 0, "no round interrupted a deploy part-way");
    eprintln!("{said} rounds interrupted part-way, each said so");
}

/// SIGHUP (the terminal or SSH session went away) is said like SIGINT and ends the run by it.
#[test]
fn a_hangup_is_said_too() {
    let Some(m) = machine("l15hu") else { return };
    m.deploy(None);
    let held = std::fs::File::open(&m.state).unwrap();
    held.lock().unwrap();
    let child = spawn(&m, &["deploy", "--wait", "30", "-o", "json"]);
    wait_for_lock(&m, &child);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(nix::sys::signal::Signal::SIGHUP as i32),
        "{:?}",
        out.status
    );
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(v["exit"], 129, "{v:#}");
    assert_eq!(v["error"]["code"], "interrupted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("deploy interrupted by SIGHUP"), "{stderr}");
    held.unlock().unwrap();
    assert_eq!(m.edgenet(&["status"]).status.code(), Some(0));
}
