//! `edgenet-bench dataplane`: TCP throughput (iperf3) through edgenet's switch against the bare
//! kernel paths it is built from, interleaved in one run:
//!
//! - `veth pair`: two namespaces joined by one veth pair, nothing else — the ceiling of
//!   node↔node.
//! - `switch node↔node`: the Linux node to the Windows node of an `edgenet deploy`, across the
//!   bridge, with `bridge-nf-call-iptables` at 1 (as on Docker and Kubernetes hosts: bridged
//!   packets pass the `ip` hooks), as edgenet leaves it (its `intra_switch` chain keeps them out
//!   of conntrack); again without that chain (deleted by hand, as edgenet's table was before
//!   it had one; the next `edgenet deploy` puts it back); with the sysctl at 0; with the sysctl
//!   at 0 and edgenet's bridge table (anti-spoofing) deleted too, i.e. the bridge with no
//!   netfilter at all (the next deploy puts it back); and, where the kernel has `clsact`, `u32`
//!   and `mirred`, with an experimental tc bypass of the bridge (see [`bypass`]; not something
//!   edgenet does).
//! - `routed`: a namespace routed by a plain router namespace to a "LAN" namespace, no bridge and
//!   no firewall — the ceiling of node→LAN.
//! - `switch node→LAN (NAT)`: the Linux node through the bridge, edgenet's forward filter and
//!   masquerade to a LAN namespace.
//!
//! Method, the same for every path: every veth has one queue per end (as edgenet makes them;
//! `ip link add type veth` alone makes one per CPU) and the kernel's default offloads; iperf3's
//! client is pinned to CPU 0 and its server to CPU 1; every round runs every path once, odd
//! rounds in the reverse order. Besides Gbit/s (median over median, and the median of the
//! per-round ratios) it prints the CPU time per KiB (see [`CpuMeter`]), which a busy machine
//! moves far less than throughput, and TCP retransmits (on a veth split over two CPUs they come
//! from reordering between the two CPUs' backlogs, not from loss).
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

/// Where iperf3 runs: on a machine with two CPUs or more the client is pinned to CPU 0 and the
/// server to CPU 1, for every path alike. Unpinned, the scheduler placed the two ends
/// differently from run to run (same CPU, or split, or moved mid-run), which alone moved a
/// single stream by ±20 %.
struct Placement {
    pinned: bool,
}

impl Placement {
    fn detect() -> Placement {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let taskset = Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        Placement {
            pinned: cpus >= 2 && taskset,
        }
    }

    /// `ip netns exec NS [taskset -c CPU] iperf3 ARGS`.
    fn iperf3(&self, ns: &str, cpu: u32, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]);
        if self.pinned {
            cmd.args(["taskset", "-c", &cpu.to_string()]);
        }
        cmd.arg("iperf3").args(args);
        cmd
    }
}

/// CPU time spent moving the bytes: iperf3's client and server (a veth hands its frames to the
/// receive softirq, which runs in the sender's context on `local_bh_enable`, or else in
/// ksoftirqd) plus both CPUs' ksoftirqd threads. Unlike Gbit/s it barely moves when other work
/// takes CPU time from the run, so it is the figure to trust on a busy machine. Measured with a
/// cgroup of our own (v1 `cpuacct` or v2 `cpu.stat`); `None` where neither can be made.
struct CpuMeter {
    dir: PathBuf,
    v2: bool,
    ksoftirqd: Vec<u32>,
}

impl CpuMeter {
    fn new(name: &str) -> Option<CpuMeter> {
        let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
        let mount_of = |fstype: &str, option: Option<&str>| {
            mounts.lines().find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let ok = f.len() > 3
                    && f[2] == fstype
                    && option.is_none_or(|o| f[3].split(',').any(|x| x == o));
                ok.then(|| PathBuf::from(f[1]))
            })
        };
        let (parent, v2) = match mount_of("cgroup", Some("cpuacct")) {
            Some(p) => (p, false),
            None => (mount_of("cgroup2", None)?, true),
        };
        let dir = parent.join(name);
        std::fs::create_dir(&dir).ok()?;
        let ksoftirqd = pids_named("ksoftirqd/");
        let meter = CpuMeter { dir, v2, ksoftirqd };
        meter.usage_ns().map(|_| meter)
    }

    fn add(&self, pid: u32) {
        let _ = std::fs::write(self.dir.join("cgroup.procs"), pid.to_string());
    }

    fn usage_ns(&self) -> Option<u64> {
        let own = if self.v2 {
            let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
            stat.lines()
                .find_map(|l| l.strip_prefix("usage_usec "))?
                .trim()
                .parse::<u64>()
                .ok()?
                * 1000
        } else {
            std::fs::read_to_string(self.dir.join("cpuacct.usage"))
                .ok()?
                .trim()
                .parse()
                .ok()?
        };
        let softirq: u64 = self
            .ksoftirqd
            .iter()
            .filter_map(|p| {
                let s = std::fs::read_to_string(format!("/proc/{p}/schedstat")).ok()?;
                s.split_whitespace().next()?.parse::<u64>().ok()
            })
            .sum();
        Some(own + softirq)
    }
}

impl Drop for CpuMeter {
    fn drop(&mut self) {
        // Empty once its processes are gone (the servers are reaped before the meter drops).
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Processes whose `comm` starts with `prefix`.
fn pids_named(prefix: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.starts_with(prefix))
        })
        .collect()
}

fn server(place: &Placement, meter: Option<&CpuMeter>, ns: &str, port: u16) -> Server {
    let child = place
        .iperf3(ns, 1, &["-s", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3");
    if let Some(m) = meter {
        m.add(child.id());
    }
    // Wait until it listens.
    for _ in 0..100 {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "ss", "-Hltn"])
            .arg(format!("sport = :{port}"))
            .output()
            .unwrap();
        if !out.stdout.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Server(child)
}

/// One iperf3 run.
#[derive(Clone, Copy)]
struct Sample {
    /// Gbit/s received by the server.
    gbps: f64,
    /// CPU ns per KiB received (see [`CpuMeter`]).
    cost: Option<f64>,
    retransmits: f64,
}

fn throughput(
    place: &Placement,
    meter: Option<&CpuMeter>,
    ns: &str,
    addr: &str,
    port: u16,
) -> Sample {
    // iperf3's server refuses a client for a moment after a test ("the server is busy running
    // a test"), longer on a loaded machine: such a run is tried again, not counted.
    for _ in 0..10 {
        if let Some(s) = run_once(place, meter, ns, addr, port) {
            return s;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    run_once(place, meter, ns, addr, port)
        .unwrap_or_else(|| panic!("iperf3 from {ns} to {addr}: the server stayed busy"))
}

/// One iperf3 run; `None` when the server was still busy with the one before.
fn run_once(
    place: &Placement,
    meter: Option<&CpuMeter>,
    ns: &str,
    addr: &str,
    port: u16,
) -> Option<Sample> {
    let before = meter.and_then(CpuMeter::usage_ns);
    let child = place
        .iperf3(
            ns,
            0,
            &["-c", addr, "-p", &port.to_string(), "-t", SECONDS, "-J"],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(m) = meter {
        m.add(child.id());
    }
    let out = child.wait_with_output().unwrap();
    let after = meter.and_then(CpuMeter::usage_ns);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    if v["error"].as_str().is_some_and(|e| e.contains("busy")) {
        return None;
    }
    let received = &v["end"]["sum_received"];
    let bps = received["bits_per_second"].as_f64().unwrap_or_else(|| {
        panic!(
            "iperf3 from {ns} to {addr}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let bytes = received["bytes"].as_f64().unwrap_or(0.0);
    let cost = match (before, after) {
        (Some(b), Some(a)) if bytes > 0.0 => Some((a - b) as f64 / (bytes / 1024.0)),
        _ => None,
    };
    Some(Sample {
        gbps: bps / 1e9,
        cost,
        retransmits: v["end"]["sum_sent"]["retransmits"].as_f64().unwrap_or(0.0),
    })
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
    /// `EDGENET_MACHINE_NAME`, unique to this run: the node namespaces are named after it.
    name: String,
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
            .env("EDGENET_MACHINE_NAME", &self.name)
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

/// The MAC of `eth0` in `ns`.
fn eth0_mac(ns: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", ns, "-j", "link", "show", "eth0"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v[0]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no eth0 in {ns}"))
        .to_string()
}

/// The switch port (host end of the node's veth) whose name ends in `suffix` (`l` for the
/// Linux node, `w` for the Windows node: `en<id>l`, `en<id>w`).
fn port(machine: &str, suffix: char) -> String {
    let out = Command::new("ip")
        .args(["-n", machine, "-j", "link", "show", "type", "veth"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|l| l.get("master").is_some())
        .filter_map(|l| l["ifname"].as_str())
        .find(|n| n.ends_with(suffix))
        .unwrap_or_else(|| panic!("no switch port *{suffix} in {machine}"))
        .to_string()
}

/// An experiment, not what edgenet does: node↔node frames taken at one port's tc ingress and
/// put straight on the other port's egress (`u32` + `mirred`; flower is not built into every
/// kernel), matched on source MAC and address and destination MAC, so that only frames the
/// bridge table would let through skip it. The upper bound of an intra-switch bypass that still
/// crosses both veths.
fn bypass(machine: &str, on: bool, linux: (&str, &str, &str), windows: (&str, &str, &str)) {
    let m = machine;
    if !on {
        sh(&format!(
            "tc -n {m} qdisc del dev {} clsact; tc -n {m} qdisc del dev {} clsact",
            linux.0, windows.0
        ));
        return;
    }
    for ((from, from_mac, from_ip), (to, to_mac, _)) in [(linux, windows), (windows, linux)] {
        sh(&format!(
            "tc -n {m} qdisc add dev {from} clsact
             tc -n {m} filter add dev {from} ingress protocol ip u32 match ether src {from_mac} \
               match ether dst {to_mac} match ip src {from_ip}/32 action mirred egress redirect dev {to}"
        ));
    }
}

/// One line of the table: a path, the state it is measured in, and its ceiling's row.
struct Row<'a> {
    label: &'a str,
    client: String,
    addr: &'a str,
    port: u16,
    ceiling: usize,
    /// Puts the machine in this row's state before the run, and back after it.
    enter: Box<dyn Fn() + 'a>,
    leave: Box<dyn Fn() + 'a>,
    samples: Vec<Sample>,
}

pub fn bench(runs: usize) {
    if Command::new("iperf3").arg("-v").output().is_err() {
        eprintln!("edgenet-bench dataplane: iperf3 is missing: apt-get install iperf3");
        std::process::exit(2);
    }
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("edgenet-bench-dp-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    // Every veth here has one queue per end, as edgenet makes its nodes' veths (`ip link add
    // type veth` alone gives one per CPU); offloads are the kernel's defaults on both sides.
    let veth = "numtxqueues 1 numrxqueues 1 type veth peer";
    let one_queue = "numtxqueues 1 numrxqueues 1";

    // veth pair.
    let (va, vb) = (
        Ns::new(&format!("endpa-{pid}")),
        Ns::new(&format!("endpb-{pid}")),
    );
    sh(&format!(
        "ip -n {a} link add v0 {veth} name v0 {one_queue} netns {b}
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
        "ip -n {c} link add eth0 {veth} name down0 {one_queue} netns {r}
         ip -n {r} link add up0 {veth} name eth0 {one_queue} netns {l}
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
        "ip -n {m} link add up0 {veth} name eth0 {one_queue} netns {l}
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
        name: format!("dp{pid}"),
        state: dir.join("state"),
        resolv,
    };
    let config = config.to_str().unwrap().to_string();
    deployment.edgenet(&["deploy", "-c", &config]);
    let linux = node_namespace(&format!("{}-ledge-", deployment.name));
    let windows = node_namespace(&format!("{}-wedge-", deployment.name));
    let table = ip_table(&machine.0);
    let m = machine.0.as_str();
    // What a row takes away, `edgenet deploy` puts back (and the check says it did).
    let repair = || {
        deployment.edgenet(&["deploy", "-c", &config]);
        sh(&format!(
            "ip netns exec {m} nft list chain ip {table} intra_switch >/dev/null
             ip netns exec {m} nft list table bridge {table} >/dev/null"
        ));
    };
    let bnf = |on: bool| {
        sh(&format!(
            "ip netns exec {m} sysctl -qw net.bridge.bridge-nf-call-iptables={}",
            u8::from(on)
        ))
    };
    let nothing = || Box::new(|| {}) as Box<dyn Fn()>;

    let (lport, wport) = (port(m, 'l'), port(m, 'w'));
    let (lmac, wmac) = (eth0_mac(&linux), eth0_mac(&windows));
    let lnode = (lport.as_str(), lmac.as_str(), "192.168.0.2");
    let wnode = (wport.as_str(), wmac.as_str(), "192.168.0.3");
    // Only where the kernel has clsact, u32 and mirred.
    let can_bypass = Command::new("sh")
        .args([
            "-ec",
            &format!(
                "tc -n {m} qdisc add dev {lport} clsact
             tc -n {m} filter add dev {lport} ingress protocol ip u32 match ip src 192.168.0.2/32 \
               action mirred egress redirect dev {wport}
             tc -n {m} qdisc del dev {lport} clsact"
            ),
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let _ = Command::new("tc")
        .args(["-n", m, "qdisc", "del", "dev", &lport, "clsact"])
        .stderr(Stdio::null())
        .status();

    let place = Placement::detect();
    let meter = CpuMeter::new(&format!("edgenet-bench-dp-{pid}"));
    let windows_ip = "192.168.0.3"; // the built-in subnet in an empty machine namespace
    let mut rows = vec![
        Row {
            label: "veth pair",
            client: va.0.clone(),
            addr: "198.18.9.2",
            port: 5201,
            ceiling: 0,
            enter: nothing(),
            leave: nothing(),
            samples: vec![],
        },
        Row {
            label: "switch node↔node (bridge-nf 1)",
            client: linux.clone(),
            addr: windows_ip,
            port: 5202,
            ceiling: 0,
            enter: nothing(),
            leave: nothing(),
            samples: vec![],
        },
        Row {
            label: "  without intra_switch notrack",
            client: linux.clone(),
            addr: windows_ip,
            port: 5202,
            ceiling: 0,
            enter: Box::new(|| {
                sh(&format!(
                    "ip netns exec {m} nft flush chain ip {table} intra_switch
                     ip netns exec {m} nft delete chain ip {table} intra_switch"
                ))
            }),
            leave: Box::new(repair),
            samples: vec![],
        },
        Row {
            label: "switch node↔node (bridge-nf 0)",
            client: linux.clone(),
            addr: windows_ip,
            port: 5202,
            ceiling: 0,
            enter: Box::new(|| bnf(false)),
            leave: Box::new(|| bnf(true)),
            samples: vec![],
        },
        Row {
            label: "  and no bridge table (no nft)",
            client: linux.clone(),
            addr: windows_ip,
            port: 5202,
            ceiling: 0,
            enter: Box::new(|| {
                bnf(false);
                sh(&format!(
                    "ip netns exec {m} nft delete table bridge {table}"
                ));
            }),
            leave: Box::new(|| {
                bnf(true);
                repair();
            }),
            samples: vec![],
        },
        Row {
            label: "  tc bypass port→port (not edgenet)",
            client: linux.clone(),
            addr: windows_ip,
            port: 5202,
            ceiling: 0,
            enter: Box::new(move || bypass(m, true, lnode, wnode)),
            leave: Box::new(move || bypass(m, false, lnode, wnode)),
            samples: vec![],
        },
        Row {
            label: "routed",
            client: rc.0.clone(),
            addr: "198.18.11.1",
            port: 5203,
            ceiling: 6,
            enter: nothing(),
            leave: nothing(),
            samples: vec![],
        },
        Row {
            label: "switch node→LAN (NAT)",
            client: linux.clone(),
            addr: "198.18.12.1",
            port: 5204,
            ceiling: 6,
            enter: nothing(),
            leave: nothing(),
            samples: vec![],
        },
    ];
    if !can_bypass {
        rows.retain(|r| !r.label.contains("tc bypass"));
        for r in &mut rows {
            r.ceiling = r.ceiling.min(5);
        }
    }
    let servers = [
        server(&place, meter.as_ref(), &vb.0, 5201),
        server(&place, meter.as_ref(), &windows, 5202),
        server(&place, meter.as_ref(), &rl.0, 5203),
        server(&place, meter.as_ref(), &lan.0, 5204),
    ];
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_before = load();
    bnf(true);
    // Every round runs every row; odd rounds in the reverse order, so no row always follows
    // the same one.
    for round in 0..runs {
        let mut order: Vec<usize> = (0..rows.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let r = &mut rows[i];
            (r.enter)();
            let s = throughput(&place, meter.as_ref(), &r.client, r.addr, r.port);
            (r.leave)();
            r.samples.push(s);
        }
    }
    let load_after = load();
    drop(servers);
    drop(meter);

    println!(
        "TCP throughput, iperf3 -t {SECONDS}, {runs} rounds, every path once per round \
         (order reversed every other round); medians.\n\
         iperf3 {}; every veth one queue per end, kernel-default offloads.",
        if place.pinned {
            "client on CPU 0, server on CPU 1 for every path"
        } else {
            "unpinned (fewer than 2 CPUs or no taskset)"
        }
    );
    println!(
        "{:<36} {:>7} {:>10} {:>8} {:>10} {:>10} {:>6}",
        "path", "Gbit/s", "of ceiling", "(paired)", "CPU ns/KiB", "(ceiling's", "retr"
    );
    println!(
        "{:<32} {:>7} {:>10} {:>8} {:>10} {:>10}",
        "", "", "", "", "", "in %)"
    );
    for r in &rows {
        let ceiling = &rows[r.ceiling].samples;
        let gbps = median(r.samples.iter().map(|s| s.gbps).collect());
        let of_ceiling = gbps / median(ceiling.iter().map(|s| s.gbps).collect());
        // The same ratio round by round: what stays when the machine's speed moves between
        // rounds.
        let paired = median(
            r.samples
                .iter()
                .zip(ceiling)
                .map(|(s, c)| s.gbps / c.gbps)
                .collect(),
        );
        let costs: Vec<f64> = r.samples.iter().filter_map(|s| s.cost).collect();
        let ceiling_costs: Vec<f64> = ceiling.iter().filter_map(|s| s.cost).collect();
        let (cost, cost_ratio) = if costs.len() == r.samples.len() && !costs.is_empty() {
            let c = median(costs);
            (
                format!("{c:.0}"),
                format!("{:.0}%", 100.0 * median(ceiling_costs) / c),
            )
        } else {
            ("-".into(), "-".into())
        };
        println!(
            "{:<36} {gbps:>7.2} {:>9.0}% {:>7.0}% {cost:>10} {cost_ratio:>10} {:>6.0}",
            r.label,
            100.0 * of_ceiling,
            100.0 * paired,
            median(r.samples.iter().map(|s| s.retransmits).collect()),
        );
    }
    let with = &rows[1].samples;
    let without = &rows[2].samples;
    let ratios: Vec<f64> = with
        .iter()
        .zip(without)
        .map(|(a, b)| a.gbps / b.gbps)
        .collect();
    let wins = ratios.iter().filter(|r| **r > 1.0).count();
    println!(
        "\"of ceiling\": median over median; \"(paired)\": median of the per-round ratios; \
         \"(ceiling's in %)\": the ceiling's CPU per KiB over this path's, the throughput a path \
         would reach on CPUs of its own.\n\
         intra_switch notrack, bridge-nf 1: {:+.1}% (median of the {runs} per-round ratios), \
         faster in {wins} of {runs}\nload average before: {}load average after:  {}",
        100.0 * (median(ratios) - 1.0),
        load_before,
        load_after
    );
    drop(rows);
    drop(deployment);
    let _ = std::fs::remove_dir_all(&dir);
}
