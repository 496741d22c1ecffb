//! `edgenet-bench dataplane`: TCP throughput (iperf3) through edgenet's switch against the bare
//! kernel paths it is built from, interleaved in one run:
//!
//! - `veth pair`: two namespaces joined by one veth pair, nothing else — the ceiling of
//!   node↔node.
//! - `switch node↔node`: the Linux node to the Windows node of an `edgenet deploy`, across the
//!   bridge, with `bridge-nf-call-iptables` at 1 (as on Docker and Kubernetes hosts: bridged
//!   packets pass the `ip` hooks), as edgenet leaves it (its `intra_switch` chain keeps them out
//!   of conntrack); again without that chain (deleted by hand, as edgenet's table was before
//!   it had one; the next `edgenet deploy` puts it back); and with the sysctl at 0.
//! - `routed`: a namespace routed by a plain router namespace to a "LAN" namespace, no bridge and
//!   no firewall — the ceiling of node→LAN.
//! - `switch node→LAN (NAT)`: the Linux node through the bridge, edgenet's forward filter and
//!   masquerade to a LAN namespace.
//!
//! Every address is in 198.18.0.0/15 or the switch subnet, inside namespaces made here.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::deploy::{edgenet_bin, Ns};

const SECONDS: &str = "2";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sh(script: &str) {
    let out = Command::new("sh").args(["-ec", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn server(ns: &str) -> Server {
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "iperf3", "-s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3");
    // Wait until it listens.
    for _ in 0..100 {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "ss", "-Hltn", "sport = :5201"])
            .output()
            .unwrap();
        if !out.stdout.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Server(child)
}

/// Gbit/s received by the server of one iperf3 run from `ns` to `addr`.
fn throughput(ns: &str, addr: &str) -> f64 {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "iperf3", "-c", addr, "-t", SECONDS, "-J",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| {
            panic!(
                "iperf3 from {ns} to {addr}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
    bps / 1e9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn node_namespace(prefix: &str) -> String {
    let out = Command::new("ip")
        .args(["-j", "netns", "list"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["name"].as_str())
        .find(|n| n.starts_with(prefix))
        .unwrap_or_else(|| panic!("no namespace {prefix}*"))
        .to_string()
}

/// The name of edgenet's `ip` table in `machine`.
fn ip_table(machine: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", machine, "nft", "-j", "list", "tables"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    list["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("table"))
        .find(|t| {
            t["family"] == "ip"
                && t["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("edgenet_"))
        })
        .and_then(|t| t["name"].as_str())
        .unwrap_or_else(|| panic!("no ip edgenet_* table in {machine}"))
        .to_string()
}

struct Deployment {
    machine: String,
    state: PathBuf,
    resolv: PathBuf,
}

impl Deployment {
    fn edgenet(&self, args: &[&str]) {
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.machine))
            .arg(edgenet_bin())
            .args(args)
            .env("EDGENET_STATE_DIR", &self.state)
            .env("EDGENET_RESOLV_CONF", &self.resolv)
            .env("EDGENET_MACHINE_NAME", "dp")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "edgenet {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.machine))
            .arg(edgenet_bin())
            .arg("remove")
            .env("EDGENET_STATE_DIR", &self.state)
            .stdout(Stdio::null())
            .status();
        if let Some(dir) = self.state.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub fn bench(runs: usize) {
    if Command::new("iperf3").arg("-v").output().is_err() {
        eprintln!("edgenet-bench dataplane: iperf3 is missing: apt-get install iperf3");
        std::process::exit(2);
    }
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("edgenet-bench-dp-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();

    // veth pair.
    let (va, vb) = (
        Ns::new(&format!("endpa-{pid}")),
        Ns::new(&format!("endpb-{pid}")),
    );
    sh(&format!(
        "ip -n {a} link add v0 type veth peer name v0 netns {b}
         ip -n {a} addr add 198.18.9.1/24 dev v0; ip -n {a} link set v0 up
         ip -n {b} addr add 198.18.9.2/24 dev v0; ip -n {b} link set v0 up",
        a = va.0,
        b = vb.0
    ));

    // Routed: client → router → LAN, plain forwarding.
    let (rc, rr, rl) = (
        Ns::new(&format!("endprc-{pid}")),
        Ns::new(&format!("endprr-{pid}")),
        Ns::new(&format!("endprl-{pid}")),
    );
    sh(&format!(
        "ip -n {c} link add eth0 type veth peer name down0 netns {r}
         ip -n {r} link add up0 type veth peer name eth0 netns {l}
         ip -n {c} addr add 198.18.10.2/24 dev eth0; ip -n {c} link set eth0 up
         ip -n {c} route add default via 198.18.10.1
         ip -n {r} addr add 198.18.10.1/24 dev down0; ip -n {r} link set down0 up
         ip -n {r} addr add 198.18.11.11/24 dev up0; ip -n {r} link set up0 up
         ip netns exec {r} sysctl -qw net.ipv4.ip_forward=1
         ip -n {l} addr add 198.18.11.1/24 dev eth0; ip -n {l} link set eth0 up
         ip -n {l} route add 198.18.10.0/24 via 198.18.11.11",
        c = rc.0,
        r = rr.0,
        l = rl.0
    ));

    // edgenet: a machine with an uplink to a LAN namespace, Linux + Windows nodes.
    let (machine, lan) = (
        Ns::new(&format!("endpm-{pid}")),
        Ns::new(&format!("endpl-{pid}")),
    );
    sh(&format!(
        "ip -n {m} link add up0 type veth peer name eth0 netns {l}
         ip -n {m} addr add 198.18.12.11/24 dev up0; ip -n {m} link set up0 up
         ip -n {m} route add default via 198.18.12.1
         ip -n {l} addr add 198.18.12.1/24 dev eth0; ip -n {l} link set eth0 up",
        m = machine.0,
        l = lan.0
    ));
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 198.18.12.1\n").unwrap();
    let config = dir.join("linux-windows.json");
    std::fs::write(
        &config,
        r#"{"Machines": [{"LinuxNode": {}, "WindowsNode": {}}]}"#,
    )
    .unwrap();
    let deployment = Deployment {
        machine: machine.0.clone(),
        state: dir.join("state"),
        resolv,
    };
    deployment.edgenet(&["deploy", "-c", config.to_str().unwrap()]);
    let linux = node_namespace("dp-ledge-");
    let windows = node_namespace("dp-wedge-");
    let table = ip_table(&machine.0);
    // Before: the table without its intra_switch chain. After: `edgenet deploy` repairs it.
    let without_notrack = |gone: bool| {
        if gone {
            sh(&format!(
                "ip netns exec {m} nft flush chain ip {table} intra_switch
                 ip netns exec {m} nft delete chain ip {table} intra_switch",
                m = machine.0
            ));
        } else {
            deployment.edgenet(&["deploy", "-c", config.to_str().unwrap()]);
            sh(&format!(
                "ip netns exec {m} nft list chain ip {table} intra_switch >/dev/null",
                m = machine.0
            ));
        }
    };
    let bnf = |on: bool| {
        sh(&format!(
            "ip netns exec {} sysctl -qw net.bridge.bridge-nf-call-iptables={}",
            machine.0,
            u8::from(on)
        ))
    };

    let servers = [
        server(&vb.0),
        server(&rl.0),
        server(&windows),
        server(&lan.0),
    ];
    let windows_ip = "192.168.0.3"; // the built-in subnet in an empty machine namespace
    let mut rows: Vec<(&str, Vec<f64>)> = vec![
        ("veth pair", vec![]),
        ("switch node↔node (bridge-nf 1)", vec![]),
        ("  without intra_switch notrack", vec![]),
        ("switch node↔node (bridge-nf 0)", vec![]),
        ("routed", vec![]),
        ("switch node→LAN (NAT)", vec![]),
    ];
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_before = load();
    // Per round, the node↔node runs with and without the chain back to back (which goes
    // first alternates): their ratio, round by round, is the A/B a noisy machine still shows.
    let mut after_over_before = Vec::new();
    for round in 0..runs {
        rows[0].1.push(throughput(&va.0, "198.18.9.2"));
        bnf(true);
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let mut pair = [0.0; 2];
        for gone in order {
            without_notrack(gone);
            let t = throughput(&linux, windows_ip);
            rows[if gone { 2 } else { 1 }].1.push(t);
            pair[usize::from(gone)] = t;
        }
        after_over_before.push(pair[0] / pair[1]);
        without_notrack(false);
        bnf(false);
        rows[3].1.push(throughput(&linux, windows_ip));
        bnf(true);
        rows[4].1.push(throughput(&rc.0, "198.18.11.1"));
        rows[5].1.push(throughput(&linux, "198.18.12.1"));
    }
    let med: Vec<f64> = rows.iter().map(|(_, v)| median(v.clone())).collect();
    println!("TCP throughput, iperf3 -t {SECONDS}, {runs} runs each, interleaved, median");
    println!("{:<32} {:>10} {:>12}", "path", "Gbit/s", "of ceiling");
    let ceiling = [med[0], med[0], med[0], med[0], med[4], med[4]];
    for (i, (label, _)) in rows.iter().enumerate() {
        println!(
            "{label:<32} {:>10.2} {:>11.0}%",
            med[i],
            100.0 * med[i] / ceiling[i]
        );
    }
    let wins = after_over_before.iter().filter(|r| **r > 1.0).count();
    println!(
        "intra_switch notrack, bridge-nf 1: {:+.1}% (median of the {runs} back-to-back pairs), \
         faster in {wins} of {runs}\nload average before: {}load average after:  {}",
        100.0 * (median(after_over_before) - 1.0),
        load_before,
        load()
    );
    drop(servers);
    drop(deployment);
    let _ = std::fs::remove_dir_all(&dir);
}
