//! A `lab up` killed early (B25 F2, F3), made repeatable with the lab's failpoint
//! `lab-service-spawned` (the process aborts right after a service's spawn, before the service
//! is in the lab's state: what a SIGKILL at that moment leaves):
//! - the daemon it had just started is still named (its pid file, written by the child before
//!   it execs the daemon), and `lab down` stops it, deletes the namespaces and succeeds;
//! - `lab status` on that lab (no machine made yet) reports it incomplete, exit 1, not
//!   "0 of 0 cells as expected".

mod support;

use std::path::Path;
use std::process::Output;

use support::*;

fn lab(name: &str, dir: &Path, args: &[&str]) -> Output {
    lab_cmd(name, dir, args).output().unwrap()
}

/// Field 22 of /proc/PID/stat (start time), `None` when there is no such process.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[test]
fn a_lab_up_killed_after_a_spawn_leaks_nothing_and_status_says_incomplete() {
    if !is_root() || !failpoints() {
        eprintln!("skipped: needs root and failpoints");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = lab_name("y25k");
    let _down = LabDown(&name, dir.path());
    let up = lab_cmd(&name, dir.path(), &["up", "--scalable", "2", "--no-status"])
        .env("EDGENET_LAB_FAILPOINT", "lab-service-spawned")
        .output()
        .unwrap();
    assert!(
        !up.status.success() && up.status.code().is_none(),
        "lab up must die at the failpoint: {:?} {}",
        up.status,
        String::from_utf8_lossy(&up.stderr)
    );
    let root = dir.path().join(&name);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("lab.json")).unwrap()).unwrap();
    assert_eq!(state["services"], serde_json::json!([]), "{state:#}");
    // The first service (the upstream DNS) runs, recorded only by its pid file.
    let pid_file = root.join("run/dns-upstream.pid");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()))
        .trim()
        .parse()
        .unwrap();
    let started = start_time(pid).expect("the spawned daemon runs");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "dnsmasq");

    // F2: the lab was to have 2 machines and has none: incomplete, exit 1.
    let status = lab(&name, dir.path(), &["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(
        status.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        text.contains("INCOMPLETE: nothing deployed on 2 of 2 machines"),
        "{text}"
    );
    let status = lab(&name, dir.path(), &["status", "-o", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status.status.code(), Some(1), "{report:#}");
    assert_eq!(report["ok"], false, "{report:#}");
    assert_eq!(report["error"]["code"], "not-deployed", "{report:#}");

    // F3: down stops it and removes everything.
    let down = lab(&name, dir.path(), &["down"]);
    assert!(
        down.status.success(),
        "lab down: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_ne!(
        start_time(pid),
        Some(started),
        "dnsmasq {pid} still runs after lab down"
    );
    let left = sh_out("ip netns list");
    assert!(!left.contains(&format!("enl-{name}-")), "{left}");
}
