//! Scalable-shaped labs against the real kernel: every machine's adapter becomes a port of a
//! bridge inside the machine, and the nodes sit directly on the LAN with addresses from
//! [`scalable_config`]. Needs root; skipped with a message otherwise.
//!
//! The deploy used here is a stand-in made of plain `ip` commands (the real one is
//! `edgenet deploy`): in the machine namespace a bridge `aksedgesw-ext` with the adapter's
//! MAC and `eth0` as its port, the machine's address and default route moved from `eth0` to
//! the bridge; per node a namespace `enl-<lab>-<machine>-ledge|wedge` whose `eth0` (a veth on
//! the bridge) holds the node's LAN address with the LAN router as gateway.

mod common;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use common::{
    assert_gone, curl_in, delete_namespaces, ip_batch, is_root, leftover_namespaces, node_info,
    plug_node, root_test, write_node_resolv_conf, NodeCleanup, TestResult,
};
use edgenet_core::plan::NodeKind;
use edgenet_host::exec::{output_in, ExecOptions};
use edgenet_host::netlink::Netlink;
use edgenet_host::netns::NetNs;
use edgenet_lab::topology::{self, HTTP_SERVER, LAN_PEER, LAN_ROUTER};
use edgenet_lab::{scalable_config, Expectations, Lab, LabMachine, LabSpec, NodeInfo, Reach, Row};
use serde_json::Value;

const SWITCH: &str = "aksedgesw-ext";

/// A lab name unique to this test process and test.
fn lab_name(test: &str) -> String {
    common::lab_name("s", test)
}

/// One node of the config on one machine.
#[derive(Debug, Clone)]
struct ConfigNode {
    kind: NodeKind,
    address: Ipv4Addr,
}

/// The nodes `config` gives lab machine `m` (its `Machines[index - 1]` entry); none for a
/// lab without a config (`Value::Null`).
fn config_nodes(config: &Value, m: &LabMachine) -> Vec<ConfigNode> {
    if config.is_null() {
        return Vec::new();
    }
    let entry = &config["Machines"][usize::from(m.index) - 1];
    assert_eq!(entry["MachineName"], m.name.as_str());
    [
        ("LinuxNode", NodeKind::Linux),
        ("WindowsNode", NodeKind::Windows),
    ]
    .into_iter()
    .filter_map(|(key, kind)| {
        let address = entry.get(key)?["Ip4Address"].as_str()?.parse().ok()?;
        Some(ConfigNode { kind, address })
    })
    .collect()
}

fn prefix_len(config: &Value) -> u64 {
    config["Network"]["Ip4PrefixLength"].as_u64().unwrap()
}

fn gateway(config: &Value) -> Ipv4Addr {
    config["Network"]["Ip4GatewayAddress"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn node_netns(lab: &str, m: &LabMachine, kind: NodeKind) -> String {
    common::node_netns(lab, m, kind.suffix())
}

/// The stand-in scalable deploy of machine `m`: external switch, then its nodes.
fn fake_deploy(lab: &str, config: &Value, m: &LabMachine) -> Result<(), String> {
    let adapter_mac = {
        let ns = NetNs::open(&m.netns).map_err(|e| e.to_string())?;
        let mut nl = Netlink::open_in(&ns).map_err(|e| e.to_string())?;
        nl.link(&m.adapter)
            .map_err(|e| e.to_string())?
            .and_then(|l| l.mac)
            .ok_or("the adapter has no MAC")?
    };
    let prefix = prefix_len(config);
    let gw = gateway(config);
    let address = m.address.to_string();
    let adapter = m.adapter.as_str();
    ip_batch(
        Some(&m.netns),
        &[
            format!("link add {SWITCH} address {adapter_mac} type bridge"),
            format!("link set {SWITCH} up"),
            format!("link set {adapter} master {SWITCH}"),
            format!("route del default via {}", m.gateway),
            format!("addr del {address} dev {adapter}"),
            format!("addr add {address} dev {SWITCH}"),
            format!("route add default via {} dev {SWITCH}", m.gateway),
        ],
    )?;
    for n in config_nodes(config, m) {
        plug_node(
            m,
            SWITCH,
            &node_netns(lab, m, n.kind),
            &format!("v-{}", n.kind.suffix()),
            &format!("{}/{prefix}", n.address),
            gw,
        )?;
    }
    write_node_resolv_conf(m, config["Network"]["DnsServers"][0].as_str().unwrap())
}

fn fake_undeploy(lab: &str, config: &Value, m: &LabMachine) -> Result<(), String> {
    delete_namespaces(
        config_nodes(config, m)
            .into_iter()
            .map(|n| node_netns(lab, m, n.kind)),
    )
}

/// The nodes as a deployment would report them to `lab status`.
fn nodes_of(lab: &str, config: &Value, machines: &[LabMachine]) -> Vec<NodeInfo> {
    let mut nodes = Vec::new();
    for m in machines {
        for n in config_nodes(config, m) {
            nodes.push(node_info(
                m,
                n.kind,
                node_netns(lab, m, n.kind),
                n.address,
                gateway(config),
            ));
        }
    }
    nodes
}

/// Identities of the lab's namespaces (the nodes' included), to find processes in them.
fn namespace_ids(lab: &str) -> HashSet<(u64, u64)> {
    leftover_namespaces(lab)
        .iter()
        .filter_map(|n| NetNs::open(n).ok()?.id().ok())
        .collect()
}

/// PIDs of processes in any of `ids` (a namespace stays alive while a process is in it, even
/// after its name is gone).
fn processes_in(ids: &HashSet<(u64, u64)>) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .map(|m| ids.contains(&(m.dev(), m.ino())))
                .unwrap_or(false)
        })
        .collect()
}

/// Brings the lab down with the stand-in undeploy and checks that nothing is left: no
/// namespace with the lab's prefix, no service, no process in any of its namespaces.
fn down_and_check(lab: Lab, name: &str, config: &Value) -> Result<Duration, String> {
    let services = lab.services().to_vec();
    let ids = namespace_ids(name);
    assert!(!ids.is_empty());
    let started = Instant::now();
    lab.down(|m| fake_undeploy(name, config, m))
        .map_err(|e| e.to_string())?;
    let took = started.elapsed();
    assert_gone(name, &services);
    assert_eq!(processes_in(&ids), Vec::<u32>::new(), "processes left");
    Ok(took)
}

#[test]
fn three_machines_every_node_reaches_every_other_the_gateway_the_lan_and_the_internet() -> TestResult
{
    let Some((name, dir, _cleanup)) = root_test(lab_name("three"))? else {
        return Ok(());
    };
    let config = scalable_config(3, true);
    let mut spec = LabSpec::new(&name, dir.path().join("lab"));
    spec.machines = 3;
    spec.proxy = false;
    let lab = Lab::up(&spec, |m| fake_deploy(&name, &config, m)).map_err(|e| e.to_string())?;
    let machines = lab.machines();
    let nodes = nodes_of(&name, &config, &machines);
    assert_eq!(nodes.len(), 6);
    assert_eq!(nodes[0].address, Ipv4Addr::new(198, 18, 0, 101));
    assert_eq!(nodes[1].address, Ipv4Addr::new(198, 18, 0, 151));

    // The machine kept its connectivity through the bridge.
    let m2 = &machines[1];
    let routes = output_in(&m2.netns, &["ip", "route"], &ExecOptions::default())?;
    let routes = String::from_utf8(routes.stdout)?;
    assert!(
        routes.contains(&format!("default via {LAN_ROUTER} dev {SWITCH}")),
        "{routes}"
    );

    let started = Instant::now();
    let matrix = lab.status(&nodes, &Expectations::SCALABLE)?;
    let took = started.elapsed();
    let table = matrix.render_table();
    eprintln!("{table}matrix of 3 machines / 6 nodes in {took:?}");
    assert!(matrix.all_ok(), "{table}");
    let count = |row| matrix.row(row).count();
    assert_eq!(count(Row::MachineToInternet), 3);
    assert_eq!(count(Row::NodeToHost), 6);
    assert_eq!(
        count(Row::NodeToNode),
        30,
        "every ordered pair across machines"
    );
    assert_eq!(count(Row::NodeToInternetByAddress), 6);
    assert_eq!(count(Row::NodeToInternetByName), 6);
    assert_eq!(count(Row::LanToNode), 6);
    assert!(matrix
        .row(Row::NodeToHost)
        .all(|c| c.to == LAN_ROUTER.to_string()));
    assert!(matrix
        .row(Row::NodeToNode)
        .any(|c| c.from == "m1-ledge" && c.to == "m3-wedge 198.18.0.153"));
    assert!(
        matrix
            .row(Row::LanToNode)
            .all(|c| c.what.contains("direct")),
        "no route via a machine for nodes on the LAN"
    );

    // No NAT anywhere: the internet server sees the node's own LAN address.
    let http_log = lab.log("http");
    let before = std::fs::read_to_string(&http_log)?.lines().count();
    let out = curl_in(
        &nodes[2].netns,
        &["--noproxy", "*", &topology::http_url_by_address()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(&http_log)?;
    let new: Vec<&str> = log.lines().skip(before).collect();
    assert!(
        new.iter()
            .any(|l| l.starts_with(&format!("{}:", nodes[2].address))),
        "{HTTP_SERVER} did not see {}: {new:?}",
        nodes[2].address
    );

    // Negative control: m2's Linux node loses its link → exactly the cells involving it
    // fail, in both directions; everything else still works.
    let victim = nodes
        .iter()
        .find(|n| n.name == "m2-ledge")
        .expect("m2-ledge")
        .clone();
    ip_batch(Some(&victim.netns), &["link set eth0 down".to_string()])?;
    let changed = lab.status(&nodes, &Expectations::SCALABLE)?;
    let table = changed.render_table();
    eprintln!("{table}");
    let involves = |from: &str, to: &str| {
        from == victim.name || to == format!("{} {}", victim.name, victim.address)
    };
    let mut failed = 0;
    for c in &changed.cells {
        let want = if involves(&c.from, &c.to) {
            failed += 1;
            Reach::Unreachable
        } else {
            Reach::Reachable
        };
        assert_eq!(c.actual, want, "{c:?}");
        assert_eq!(c.ok, want == Reach::Reachable, "{c:?}");
    }
    // Its gateway, 5 peers each way, two internet rows, LAN→node.
    assert_eq!(failed, 1 + 5 + 5 + 2 + 1, "{table}");
    let c = changed
        .cells
        .iter()
        .find(|c| c.row == Row::LanToNode && c.to.starts_with("m2-ledge"))
        .unwrap();
    assert_eq!(c.from, format!("LAN {LAN_PEER}"));

    down_and_check(lab, &name, &config)?;
    Ok(())
}

#[test]
fn ten_machines_come_up_measure_and_go_away_without_residue() -> TestResult {
    let Some((name, dir, _cleanup)) = root_test(lab_name("ten"))? else {
        return Ok(());
    };
    let config = scalable_config(10, true);
    let mut spec = LabSpec::new(&name, dir.path().join("lab"));
    spec.machines = 10;
    let started = Instant::now();
    let lab = Lab::up(&spec, |m| fake_deploy(&name, &config, m)).map_err(|e| e.to_string())?;
    let up = started.elapsed();
    assert_eq!(lab.machines().len(), 10);
    let nodes = nodes_of(&name, &config, &lab.machines());
    assert_eq!(nodes.len(), 20);
    let started = Instant::now();
    let matrix = lab.status(&nodes, &Expectations::SCALABLE)?;
    let status = started.elapsed();
    let failures: Vec<_> = matrix.cells.iter().filter(|c| !c.ok).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(matrix.row(Row::NodeToNode).count(), 20 * 19);
    let down = down_and_check(lab, &name, &config)?;
    eprintln!(
        "10 machines, 20 nodes: up (with the stand-in deploy) {up:?}, status ({} cells) {status:?}, down {down:?}",
        matrix.cells.len()
    );
    // Times are printed, never asserted: speed is measured by `edgenet-bench lab`.
    Ok(())
}

/// The lab's own part with a trivial deploy: 10 machines come up and go down and nothing is
/// left (the time is printed; `edgenet-bench lab` measures it).
#[test]
fn ten_bare_machines_come_up_and_leave_nothing() -> TestResult {
    let Some((name, dir, _cleanup)) = root_test(lab_name("bare"))? else {
        return Ok(());
    };
    let mut spec = LabSpec::new(&name, dir.path().join("lab"));
    spec.machines = 10;
    let started = Instant::now();
    let lab = Lab::up(&spec, |_| Ok::<(), String>(())).map_err(|e| e.to_string())?;
    let up = started.elapsed();
    assert_eq!(
        leftover_namespaces(&name).len(),
        13,
        "inet, lan, peer, 10 machines"
    );
    let down = down_and_check(lab, &name, &Value::Null)?;
    eprintln!("10 bare machines: up {up:?}, down {down:?}");
    Ok(())
}

/// Timings for the benchmark (run with `--ignored --nocapture`; `EDGENET_LAB_SIZES=1,10,50`
/// by default): `up`, `status` and `down` with a trivial deploy, then with the stand-in
/// scalable deploy and the SCALABLE matrix — Linux nodes only, or Linux and Windows nodes
/// with `EDGENET_LAB_WINDOWS=1` (50 machines: 50 or 100 nodes, node pairs sampled).
#[test]
#[ignore = "benchmark: run explicitly"]
fn timings() -> TestResult {
    if !is_root() {
        return Ok(());
    }
    let windows = std::env::var_os("EDGENET_LAB_WINDOWS").is_some();
    let sizes: Vec<u8> = std::env::var("EDGENET_LAB_SIZES")
        .unwrap_or_else(|_| "1,10,50".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    for machines in sizes {
        let dir = tempfile::tempdir()?;
        let name = lab_name(&format!("b{machines}"));
        let _cleanup = NodeCleanup(name.clone());
        let mut spec = LabSpec::new(&name, dir.path().join("bare"));
        spec.machines = machines;
        let started = Instant::now();
        let lab = Lab::up(&spec, |_| Ok::<(), String>(())).map_err(|e| e.to_string())?;
        let up = started.elapsed();
        let started = Instant::now();
        let matrix = lab.status(&[], &Expectations::NAT)?;
        let status = started.elapsed();
        assert!(matrix.all_ok(), "{}", matrix.render_table());
        let down = down_and_check(lab, &name, &Value::Null)?;
        println!(
            "bare      {machines:>3} machines: up {:>8.1?}  status {:>8.1?}  down {:>8.1?}",
            up, status, down
        );

        let name = lab_name(&format!("s{machines}"));
        let _cleanup = NodeCleanup(name.clone());
        let config = scalable_config(machines, windows);
        let mut spec = LabSpec::new(&name, dir.path().join("scalable"));
        spec.machines = machines;
        let started = Instant::now();
        let lab = Lab::up(&spec, |m| fake_deploy(&name, &config, m)).map_err(|e| e.to_string())?;
        let up = started.elapsed();
        let nodes = nodes_of(&name, &config, &lab.machines());
        let started = Instant::now();
        let matrix = lab.status(&nodes, &Expectations::SCALABLE)?;
        let status = started.elapsed();
        let failures: Vec<_> = matrix.cells.iter().filter(|c| !c.ok).collect();
        assert!(failures.is_empty(), "{failures:#?}");
        let down = down_and_check(lab, &name, &config)?;
        println!(
            "scalable  {machines:>3} machines: up {:>8.1?}  status {:>8.1?} ({} nodes, {} cells)  down {:>8.1?}",
            up,
            status,
            nodes.len(),
            matrix.cells.len(),
            down
        );
    }
    Ok(())
}

/// `send <ifname>`: from this machine's adapter, an MLDv2 listener report (to 33:33::16) and
/// an ICMPv6 echo request to all nodes (33:33::1), twenty times each, 100 ms apart (two
/// seconds: a listener that starts late on a loaded machine still hears some).
/// `recv <ifname> <src mac> <seconds>`: prints which of the two arrived from `src mac` (REPORT,
/// ECHO; the machine's own neighbour discovery is not counted).
const LAN_MULTICAST_PY: &str = r#"
import socket, sys, time
mode, ifname = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86dd))
s.bind((ifname, 0))
def frame(dst, icmp_type, dst_ip):
    mac = s.getsockname()[4]
    body = bytes([icmp_type, 0, 0, 0]) + bytes(4)
    ip6 = (b"\x60\x00\x00\x00" + len(body).to_bytes(2, "big") + b"\x3a\x01"
           + b"\xfe\x80" + bytes(13) + b"\x01" + dst_ip)
    return dst + mac + b"\x86\xdd" + ip6 + body
if mode == "send":
    all_mld = b"\xff\x02" + bytes(13) + b"\x16"
    all_nodes = b"\xff\x02" + bytes(13) + b"\x01"
    all_routers = b"\xff\x02" + bytes(13) + b"\x02"
    for _ in range(20):
        s.send(frame(b"\x33\x33\x00\x00\x00\x16", 143, all_mld))
        s.send(frame(b"\x33\x33\x00\x00\x00\x02", 133, all_routers))
        s.send(frame(b"\x33\x33\x00\x00\x00\x01", 128, all_nodes))
        time.sleep(0.1)
else:
    src = bytes.fromhex(sys.argv[3].replace(":", ""))
    s.settimeout(0.1)
    seen, end = set(), time.time() + float(sys.argv[4])
    while time.time() < end:
        try:
            f = s.recv(2048)
        except socket.timeout:
            continue
        if f[6:12] == src and len(f) > 54:
            kind = {143: "REPORT", 133: "SOLICIT", 128: "ECHO"}.get(f[54])
            if kind:
                seen.add(kind)
    print(" ".join(sorted(seen)))
"#;

/// The LAN stands for a managed switch that snoops MLD: a machine's listener report reaches
/// no other machine (each machine's interfaces report as they come up: flooded, that is ~255
/// deliveries per report at 255 machines), nor does a router solicitation (no IPv6 router
/// listens on the LAN), while other multicast still crosses. Real frames.
#[test]
fn the_lan_keeps_listener_reports_from_other_machines_and_floods_other_multicast() -> TestResult {
    let Some((name, dir, _cleanup)) = root_test(lab_name("mld"))? else {
        return Ok(());
    };
    let mut spec = LabSpec::new(&name, dir.path().join("lab"));
    spec.machines = 2;
    let lab = Lab::up(&spec, |_| Ok::<(), String>(())).map_err(|e| e.to_string())?;
    let machines = lab.machines();
    let (m1, m2) = (&machines[0], &machines[1]);
    let mac = {
        let mut nl = Netlink::open_in(&NetNs::open(&m1.netns)?)?;
        nl.link(&m1.adapter)?
            .and_then(|l| l.mac)
            .ok_or("m1 has no adapter with a MAC")?
    };
    let opts = ExecOptions::default();
    let recv = std::thread::scope(|s| {
        let listener = s.spawn(|| {
            let argv = [
                "python3",
                "-c",
                LAN_MULTICAST_PY,
                "recv",
                &m2.adapter,
                &mac.to_string(),
                "4",
            ];
            output_in(&m2.netns, &argv, &opts)
        });
        std::thread::sleep(Duration::from_millis(400));
        let sent = output_in(
            &m1.netns,
            &["python3", "-c", LAN_MULTICAST_PY, "send", &m1.adapter],
            &opts,
        );
        let recv = listener.join().expect("listener thread");
        sent.map(|_| ()).and(recv)
    })?;
    let seen = String::from_utf8_lossy(&recv.stdout).trim().to_string();
    down_and_check(lab, &name, &Value::Null)?;
    assert_eq!(
        seen,
        "ECHO",
        "from m1: the echo to all nodes crosses the LAN, the listener report and the router solicitation do not (stderr: {})",
        String::from_utf8_lossy(&recv.stderr)
    );
    Ok(())
}
