//! Issue 11: a two-machine scalable lab in which machine m1's node is a QEMU VM
//! (`Machines[0].NodeRuntime: "vm"`, the test guest that `lab up` builds on demand) and
//! machine m2's a network namespace. `lab up`, then `lab status`: every cell of the matrix as
//! the scalable cluster promises — the VM node's own cells measured inside its guest
//! through the guest agent, VM↔netns node pings both ways, the LAN reaching the VM's own
//! listener — and `doctor` passing inside the guest and in the netns node; then `lab down`
//! leaves no QEMU process, namespace (with its tap and nftables tables), or file.
//! And a single machine whose node is a VM (tests/fixtures/vm-single.json, as the README
//! runs it): NAT egress from the guest, and inbound from the LAN closed — the LAN peer's
//! connect to the guest's own listener, routed via the machine, gets nothing.
//! TCG only here: each test takes about 20–30 s (the guest answers 3–10 s after QEMU
//! starts; its power-down at `lab down` takes a few seconds).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};
use support::{is_root, lab_name};

fn config() -> Value {
    let machine = |i: usize, runtime: &str| {
        json!({
            "MachineName": format!("m{}", i + 1),
            "NodeRuntime": runtime,
            "NetworkConnection": {"AdapterName": "eth0", "Mtu": 0},
            "LinuxNode": {
                "ControlPlane": i == 0,
                "Ip4Address": format!("198.18.0.{}", 101 + i),
                "CpuCount": 1, "MemoryInMB": 256, "DataSizeInGB": 3
            }
        })
    };
    json!({
        "DeploymentType": "ScalableCluster",
        "Init": {"ServiceIPRangeStart": "198.18.0.200", "ServiceIPRangeSize": 10},
        "Network": {
            "ControlPlaneEndpointIp": "198.18.0.100",
            "Ip4GatewayAddress": "198.18.0.1",
            "Ip4PrefixLength": 24,
            "DnsServers": ["198.18.0.1"]
        },
        "Machines": [machine(0, "vm"), machine(1, "netns")],
        "Edgenet": {"Distribution": "k3s"}
    })
}

fn skip() -> bool {
    if !is_root() {
        eprintln!("skipped: needs root");
        return true;
    }
    if !Path::new("/usr/bin/qemu-system-x86_64").exists()
        || !Path::new("/usr/bin/genisoimage").exists()
    {
        eprintln!("skipped: needs qemu-system-x86 and genisoimage (scripts/deps.sh installs them)");
        return true;
    }
    false
}

fn edgenet(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edgenet"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("EDGENET_CONFIG")
        .output()
        .unwrap()
}

fn json_of(out: &std::process::Output, what: &str) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Every `qemu.pid` under `dir`.
fn pidfiles(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(pidfiles(&p));
        } else if p.file_name() == Some("qemu.pid".as_ref()) {
            out.push(p);
        }
    }
    out
}

/// A QEMU process (not a zombie) with this PID.
fn qemu_alive(pid: u32) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, r)| r.trim_start().chars().next());
    comm.trim().starts_with("qemu") && state.is_some_and(|s| s != 'Z')
}

fn lab_namespaces(name: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("enl-{name}-")))
        .map(String::from)
        .collect()
}

/// Takes the lab down when the test fails half-way.
struct Down(String, String);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = edgenet(&["lab", "down", "--name", &self.0, "--lab-dir", &self.1]);
    }
}

#[test]
fn a_vm_node_and_a_netns_node_on_two_machines_reach_each_other_and_doctor_passes() {
    if skip() {
        return;
    }
    let started = Instant::now();
    let name = lab_name("vml");
    let tmp = tempfile::tempdir().unwrap();
    let labs = tmp.path().join("labs");
    let labs_s = labs.display().to_string();
    let cfg = tmp.path().join("mixed.json");
    std::fs::write(&cfg, config().to_string()).unwrap();
    let _down = Down(name.clone(), labs_s.clone());

    // lab up: builds (or finds cached) the test guest, deploys m1 with a VM node, m2 with
    // a netns node.
    let up = edgenet(&[
        "lab",
        "up",
        cfg.to_str().unwrap(),
        "--name",
        &name,
        "--lab-dir",
        &labs_s,
        "--no-status",
    ]);
    assert!(
        up.status.success(),
        "lab up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    eprintln!("lab up took {:?}", started.elapsed());
    let pids: Vec<u32> = pidfiles(&labs)
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok()?.trim().parse().ok())
        .collect();
    assert_eq!(pids.len(), 1, "one VM: {pids:?}");
    assert!(qemu_alive(pids[0]));

    // lab status: the matrix (the guest is waited for) and the doctor of every machine.
    let t = Instant::now();
    let out = edgenet(&[
        "--output",
        "json",
        "lab",
        "status",
        "--name",
        &name,
        "--lab-dir",
        &labs_s,
    ]);
    let status = json_of(&out, "lab status");
    eprintln!("lab status took {:?}", t.elapsed());
    let cells = status["cells"].as_array().expect("cells");
    let failed: Vec<&Value> = cells.iter().filter(|c| c["ok"] != true).collect();
    assert!(failed.is_empty(), "cells not as expected: {failed:#?}");
    let cell = |row: &str, from: &str, to: &str| -> &Value {
        cells
            .iter()
            .find(|c| {
                c["row"] == row
                    && c["from"].as_str().unwrap().contains(from)
                    && c["to"].as_str().unwrap().contains(to)
            })
            .unwrap_or_else(|| panic!("no {row} cell {from} → {to}: {cells:#?}"))
    };
    // VM ↔ netns, both ways, and the VM's own cells, measured in the guest.
    for (row, from, to) in [
        ("node-to-node", "m1-ledge", "m2-ledge 198.18.0.102"),
        ("node-to-node", "m2-ledge", "m1-ledge 198.18.0.101"),
        ("node-to-host", "m1-ledge", "198.18.0.1"),
        ("node-to-internet-by-address", "m1-ledge", "203.0.113.80"),
        ("node-to-internet-by-name", "m1-ledge", "www.edgenet.test"),
        ("lan-to-node", "LAN", "m1-ledge"),
        ("lan-to-node", "LAN", "m2-ledge"),
    ] {
        let c = cell(row, from, to);
        assert_eq!(c["actual"], "reachable", "{c:#}");
    }
    assert!(
        cell("node-to-node", "m1-ledge", "m2-ledge")["detail"]
            .as_str()
            .unwrap()
            .contains("in the guest"),
        "the VM's probe ran in its guest"
    );
    assert!(cell("lan-to-node", "LAN", "m1-ledge")["detail"]
        .as_str()
        .unwrap()
        .contains("the guest's listener answered"));
    // doctor passes on both machines; on m1 its node checks ran inside the guest.
    for m in ["m1", "m2"] {
        let d = &status["doctor"][m];
        let fails: Vec<&Value> = d["checks"]
            .as_array()
            .unwrap_or_else(|| panic!("doctor on {m}: {d:#}"))
            .iter()
            .filter(|c| c["status"] == "FAIL")
            .collect();
        assert!(fails.is_empty(), "doctor on {m}: {fails:#?}");
        assert_eq!(d["fail"], 0, "{d:#}");
    }
    let m1_checks = status["doctor"]["m1"]["checks"].as_array().unwrap();
    for check in [
        "guest-agent",
        "address",
        "mac",
        "mtu",
        "default-route",
        "gateway",
        "dns",
        "egress",
    ] {
        assert!(
            m1_checks
                .iter()
                .any(|c| c["scope"] == "m1-ledge" && c["check"] == check && c["status"] == "PASS"),
            "{check} in the guest: {m1_checks:#?}"
        );
    }
    assert_eq!(status["ok"], true, "{status:#}");

    // lab down: no QEMU, no namespace (the taps and tables were in them), no file. The VM
    // machine runs `edgenet remove` (QEMU lives outside the namespaces); the netns machine's
    // deployment goes with its namespaces.
    let t = Instant::now();
    let down = edgenet(&[
        "lab",
        "down",
        "--name",
        &name,
        "--lab-dir",
        &labs_s,
        "--output",
        "json",
    ]);
    assert!(
        down.status.success(),
        "lab down: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    eprintln!("lab down took {:?}", t.elapsed());
    let report = json_of(&down, "lab down");
    assert_eq!(report["remove_runs"], 1, "{report:#}");
    assert!(!qemu_alive(pids[0]), "QEMU {} still runs", pids[0]);
    assert_eq!(lab_namespaces(&name), Vec::<String>::new());
    let left: Vec<_> = std::fs::read_dir(&labs)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "files left: {left:?}");
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains(&format!("enl-{name}")),
        "a link of the lab in the host's namespace"
    );
    eprintln!("vm lab test took {:?}", started.elapsed());
}

#[test]
fn a_single_machine_lab_with_a_vm_node_has_nat_egress_and_inbound_closed() {
    if skip() {
        return;
    }
    let started = Instant::now();
    let name = lab_name("vms");
    let tmp = tempfile::tempdir().unwrap();
    let labs = tmp.path().join("labs");
    let labs_s = labs.display().to_string();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/vm-single.json");
    let _down = Down(name.clone(), labs_s.clone());
    // `lab up` measures the matrix itself when not told otherwise.
    let out = edgenet(&[
        "--output",
        "json",
        "lab",
        "up",
        fixture.to_str().unwrap(),
        "--name",
        &name,
        "--lab-dir",
        &labs_s,
    ]);
    let status = json_of(&out, "lab up");
    eprintln!("lab up with its matrix took {:?}", started.elapsed());
    let cells = status["cells"].as_array().expect("cells");
    let failed: Vec<&Value> = cells.iter().filter(|c| c["ok"] != true).collect();
    assert!(failed.is_empty(), "cells not as expected: {failed:#?}");
    let of = |row: &str| -> Vec<&Value> {
        cells
            .iter()
            .filter(|c| c["row"] == row && c["from"].as_str().unwrap().contains("-ledge"))
            .collect()
    };
    for row in [
        "node-to-host",
        "node-to-internet-by-address",
        "node-to-internet-by-name",
    ] {
        let c = of(row);
        assert_eq!(c.len(), 1, "{row}: {cells:#?}");
        assert_eq!(c[0]["actual"], "reachable", "{:#}", c[0]);
        assert!(
            c[0]["what"].as_str().unwrap().contains("in the guest"),
            "{:#}",
            c[0]
        );
    }
    // Inbound closed: the connect to the guest's listener, routed via the machine, times
    // out (dropped), while the same kind of probe reaches it on a LAN (the other test).
    let lan: Vec<&Value> = cells.iter().filter(|c| c["row"] == "lan-to-node").collect();
    assert_eq!(lan.len(), 1, "{cells:#?}");
    assert_eq!(lan[0]["expected"], "unreachable");
    assert_eq!(lan[0]["actual"], "unreachable");
    let detail = lan[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("timed out") || detail.contains("os error 110"),
        "dropped, not refused: {detail}"
    );
    let d = status["doctor"].as_object().unwrap();
    let (_, report) = d.iter().next().expect("a doctor report");
    assert_eq!(report["fail"], 0, "{report:#}");
    assert!(report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["check"] == "guest-agent" && c["status"] == "PASS"));
    let down = edgenet(&["lab", "down", "--name", &name, "--lab-dir", &labs_s]);
    assert!(down.status.success());
    assert_eq!(lab_namespaces(&name), Vec::<String>::new());
    assert!(pidfiles(&labs).is_empty());
    eprintln!("single-machine vm lab test took {:?}", started.elapsed());
}
