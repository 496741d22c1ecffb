//! Helpers shared by the lab's root tests (`lab.rs`, `scalable.rs`): the root check, lab
//! names, command runners, the node plumbing of the stand-in deploys and the checks that a
//! lab left nothing behind.

// Each test file uses only part of this module.
#![allow(dead_code)]

use std::fmt::Display;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use edgenet_core::plan::NodeKind;
use edgenet_host::exec::{output_in, ExecOptions};
use edgenet_host::netns;
use edgenet_lab::topology;
use edgenet_lab::{LabMachine, NodeInfo, ServiceRecord};
use tempfile::TempDir;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

pub fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        eprintln!("SKIP: edgenet-lab tests need root (they create network namespaces)");
        false
    }
}

/// The start of a root test: `None` (after the SKIP message) when not root; else the test's
/// lab name, a scratch directory and the [`NodeCleanup`] of the lab's namespaces.
pub fn root_test(name: String) -> std::io::Result<Option<(String, TempDir, NodeCleanup)>> {
    if !is_root() {
        return Ok(None);
    }
    let cleanup = NodeCleanup(name.clone());
    Ok(Some((name, tempfile::tempdir()?, cleanup)))
}

/// A lab name unique to this test process and test; `file` tells the test files apart.
pub fn lab_name(file: &str, test: &str) -> String {
    format!("{file}{}{test}", std::process::id())
}

/// The command's output when it succeeds, else an error naming it with its status and stderr.
fn checked(cmd: &Command, out: Output) -> Result<Output, String> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs `cmd` with no input; see [`checked`].
pub fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    checked(cmd, out)
}

/// Runs `cmd` with `input` on its stdin; see [`checked`].
pub fn run_with_input(cmd: &mut Command, input: &str) -> Result<Output, String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    checked(cmd, out)
}

/// Runs `ip [-n NETNS] -batch -` with `commands`, one per line.
pub fn ip_batch(netns: Option<&str>, commands: &[String]) -> Result<(), String> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    run_with_input(cmd.args(["-batch", "-"]), &commands.join("\n"))
        .map(|_| ())
        .map_err(|e| format!("{e}\n{}", commands.join("\n")))
}

/// `curl -sS --max-time 5 ARGS…` in `netns`.
pub fn curl_in(netns: &str, args: &[&str]) -> Output {
    let mut argv = vec!["curl", "-sS", "--max-time", "5"];
    argv.extend_from_slice(args);
    output_in(netns, &argv, &ExecOptions::default()).unwrap()
}

/// The namespace `enl-<lab>-<machine>-<tag>` of a node of the stand-in deploys.
pub fn node_netns(lab: &str, m: &LabMachine, tag: &str) -> String {
    format!("{}{}-{tag}", topology::prefix(lab), m.name)
}

/// The resolv.conf the stand-in deploys give the nodes of machine `m`.
pub fn node_resolv_conf(m: &LabMachine) -> PathBuf {
    m.state_dir.join("node-resolv.conf")
}

pub fn write_node_resolv_conf(m: &LabMachine, dns: impl Display) -> Result<(), String> {
    std::fs::write(node_resolv_conf(m), format!("nameserver {dns}\n")).map_err(|e| e.to_string())
}

/// A node of a stand-in deploy: namespace `node` with `eth0` holding `address` (with its
/// prefix length) and a default route via `gateway`, its other end `port` on bridge `switch`
/// in machine `m`.
pub fn plug_node(
    m: &LabMachine,
    switch: &str,
    node: &str,
    port: &str,
    address: &str,
    gateway: Ipv4Addr,
) -> Result<(), String> {
    ip_batch(None, &[format!("netns add {node}")])?;
    ip_batch(
        Some(&m.netns),
        &[
            format!("link add {port} type veth peer name eth0 netns {node}"),
            format!("link set {port} master {switch} up"),
        ],
    )?;
    ip_batch(
        Some(node),
        &[
            "link set lo up".to_string(),
            format!("addr add {address} dev eth0"),
            "link set eth0 up".to_string(),
            format!("route add default via {gateway}"),
        ],
    )
}

/// Deletes the nodes' namespaces (the stand-in undeploy).
pub fn delete_namespaces(names: impl IntoIterator<Item = String>) -> Result<(), String> {
    for ns in names {
        netns::delete(&ns).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The node as a deployment would report it to `lab status`.
pub fn node_info(
    m: &LabMachine,
    kind: NodeKind,
    netns: String,
    address: Ipv4Addr,
    host: Ipv4Addr,
) -> NodeInfo {
    NodeInfo {
        name: format!("{}-{}", m.name, kind.suffix()),
        machine: m.name.clone(),
        netns,
        address,
        host,
        kind,
        resolv_conf: Some(node_resolv_conf(m)),
        guest_agent: None,
    }
}

/// Namespaces on the host whose name starts with the lab's prefix.
pub fn leftover_namespaces(lab: &str) -> Vec<String> {
    let prefix = topology::prefix(lab);
    netns::list()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Deletes the namespaces the stand-in deploy made when a test fails half-way (the lab's
/// own `Drop` removes only what the lab made). Assertions about leftovers run before it.
pub struct NodeCleanup(pub String);

impl Drop for NodeCleanup {
    fn drop(&mut self) {
        for ns in leftover_namespaces(&self.0) {
            let _ = netns::delete(&ns);
        }
    }
}

/// A recorded service still runs: the PID exists with the recorded start time and is not
/// a zombie.
pub fn still_running(s: &ServiceRecord) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", s.pid)) else {
        return false;
    };
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[0] != "Z" && fields[19] == s.start_time.to_string()
}

/// No namespace with the lab's prefix is left and none of `services` runs.
pub fn assert_gone(lab: &str, services: &[ServiceRecord]) {
    assert_eq!(
        leftover_namespaces(lab),
        Vec::<String>::new(),
        "namespaces left"
    );
    for s in services {
        assert!(!still_running(s), "{} (pid {}) still runs", s.name, s.pid);
    }
}
