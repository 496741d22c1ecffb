//! The lab against the real kernel and real peers (busybox httpd, dnsmasq, tinyproxy, curl,
//! ping, nft). Needs root; skipped with a message otherwise.
//!
//! The `deploy` used here is a stand-in made of plain `ip`/`nft` commands (the real one is
//! edgenet's): in the machine namespace a bridge `aksedgesw-int` 192.168.0.1/24, node
//! namespaces `enl-<lab>-<machine>-linux|windows` (.2/.3) on it, forwarding, and an nft table
//! that masquerades the subnet and drops new connections coming in to it.

mod common;

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{
    assert_gone, curl_in, delete_namespaces, ip_batch, leftover_namespaces, node_info, plug_node,
    root_test, run, run_with_input, still_running, write_node_resolv_conf, TestResult,
};
use edgenet_core::plan::NodeKind;
use edgenet_host::{netns, sysctl};
use edgenet_lab::topology::{self, HTTP_SERVER, INET_ROUTER, LAN_ROUTER, TEST_NAME};
use edgenet_lab::{
    Expectations, Lab, LabError, LabMachine, LabSpec, NodeInfo, Reach, Row, Undeploy,
};

/// A lab name unique to this test process and test.
fn lab_name(test: &str) -> String {
    common::lab_name("t", test)
}

const SWITCH: &str = "aksedgesw-int";
const RULES: &str = r#"
table ip labtest {
    chain outbound {
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr 192.168.0.0/24 ip daddr != 192.168.0.0/24 masquerade
    }
    chain inbound {
        type filter hook forward priority filter; policy accept;
        ct state established,related accept
        oifname "aksedgesw-int" iifname != "aksedgesw-int" drop
    }
}
"#;

fn node_netns(lab: &str, machine: &LabMachine, kind: NodeKind) -> String {
    common::node_netns(lab, machine, kind.as_str())
}

fn node_address(kind: NodeKind) -> Ipv4Addr {
    match kind {
        NodeKind::Linux => Ipv4Addr::new(192, 168, 0, 2),
        NodeKind::Windows => Ipv4Addr::new(192, 168, 0, 3),
    }
}

/// The stand-in deploy: switch, nodes, forwarding, NAT with inbound drop.
fn fake_deploy(lab: &str, m: &LabMachine, kinds: &[NodeKind]) -> Result<(), String> {
    let mns = m.netns.as_str();
    ip_batch(
        Some(mns),
        &[
            format!("link add {SWITCH} type bridge"),
            format!("addr add 192.168.0.1/24 dev {SWITCH}"),
            format!("link set {SWITCH} up"),
        ],
    )?;
    for &kind in kinds {
        plug_node(
            m,
            SWITCH,
            &node_netns(lab, m, kind),
            &format!("v-{}", kind.as_str()),
            &format!("{}/24", node_address(kind)),
            Ipv4Addr::new(192, 168, 0, 1),
        )?;
    }
    write_node_resolv_conf(m, m.dns)?;
    netns::run_in(mns, || sysctl::write("net.ipv4.ip_forward", "1"))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    nft(m, RULES)
}

fn nft(m: &LabMachine, rules: &str) -> Result<(), String> {
    let mut cmd = m.command("nft").map_err(|e| e.to_string())?;
    run_with_input(cmd.args(["-f", "-"]), rules)
        .map(|_| ())
        .map_err(|e| format!("nft in {}: {e}", m.netns))
}

fn fake_undeploy(lab: &str, m: &LabMachine, kinds: &[NodeKind]) -> Result<(), String> {
    delete_namespaces(kinds.iter().map(|&kind| node_netns(lab, m, kind)))
}

fn nodes_of(lab: &str, m: &LabMachine, kinds: &[NodeKind]) -> Vec<NodeInfo> {
    kinds
        .iter()
        .map(|&kind| {
            node_info(
                m,
                kind,
                node_netns(lab, m, kind),
                node_address(kind),
                Ipv4Addr::new(192, 168, 0, 1),
            )
        })
        .collect()
}

/// The filesystem type mounted at `path`, from the kernel's mount table.
fn mount_type(path: &std::path::Path) -> Option<String> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    table.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let dash = fields.iter().position(|f| *f == "-")?;
        (std::path::Path::new(fields[4]) == path).then(|| fields[dash + 1].to_string())
    })
}

fn log_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn up_serves_measures_and_down_leaves_nothing() -> TestResult {
    let Some((name, dir, _cleanup)) = root_test(lab_name("a"))? else {
        return Ok(());
    };
    let kinds = [NodeKind::Linux, NodeKind::Windows];
    let mut spec = LabSpec::new(&name, dir.path().join("lab"));
    spec.machines = 2;
    let started = Instant::now();
    let lab = Lab::up(&spec, |m| fake_deploy(&name, m, &kinds)).map_err(|e| e.to_string())?;
    eprintln!("lab up with 2 machines in {:?}", started.elapsed());

    let machines = lab.machines();
    assert_eq!(machines.len(), 2);
    let m1 = &machines[0];
    assert_eq!(m1.address.addr(), topology::machine_address(1));
    assert_eq!(m1.netns, format!("enl-{name}-m1"));
    assert!(m1.netns_path.exists());
    // The machines' files are on the lab's own tmpfs, which `down` unmounts.
    let machines_dir = m1.dir.parent().unwrap().to_path_buf();
    assert_eq!(mount_type(&machines_dir).as_deref(), Some("tmpfs"));
    // A deployment's state directory (its id, generated MACs) is root's alone.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&m1.state_dir)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", m1.state_dir.display());
    }
    assert_eq!(
        std::fs::read_to_string(&m1.resolv_conf)?.lines().last(),
        Some(format!("nameserver {LAN_ROUTER}").as_str())
    );
    // The LAN (router and switch) does no IPv6 of its own; the machines do, and their
    // link-local traffic crosses the switch.
    let lan_v6 =
        run(Command::new("ip").args(["-n", &lab.lan_netns(), "-6", "-o", "addr", "show"]))?;
    assert_eq!(
        String::from_utf8(lan_v6.stdout)?.trim(),
        "",
        "IPv6 on the LAN"
    );
    let m2_v6 = run(Command::new("ip").args([
        "-n",
        &machines[1].netns,
        "-6",
        "-o",
        "addr",
        "show",
        "dev",
        "eth0",
        "scope",
        "link",
    ]))?;
    let m2_link_local = String::from_utf8(m2_v6.stdout)?
        .split_whitespace()
        .nth(3)
        .and_then(|a| a.split('/').next())
        .map(str::to_string)
        .ok_or("machine m2 has no IPv6 link-local address")?;
    // (m2's address may still be in duplicate address detection.)
    let ping6 = format!(
        "for i in $(seq 25); do ping -6 -c1 -W1 {m2_link_local}%eth0 && exit 0; sleep 0.2; done; exit 1"
    );
    run(Command::new("ip").args(["netns", "exec", &m1.netns, "sh", "-c", &ping6]))?;
    let mut names: Vec<&str> = lab.services().iter().map(|s| s.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["dns-lan", "dns-upstream", "http", "proxy"]);
    for s in lab.services() {
        assert!(still_running(s), "{} not running", s.name);
        let pid_file = lab.dir().join("run").join(format!("{}.pid", s.name));
        assert_eq!(std::fs::read_to_string(pid_file)?.trim(), s.pid.to_string());
    }

    // NAT egress: a node fetches the page; the server saw the machine's LAN address.
    let linux = node_netns(&name, m1, NodeKind::Linux);
    let http_log = lab.log("http");
    let before = log_lines(&http_log).len();
    let out = curl_in(
        &linux,
        &["--noproxy", "*", &topology::http_url_by_address()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout)?, lab.http_page());
    let new_lines = log_lines(&http_log)[before..].to_vec();
    assert_eq!(new_lines.len(), 1, "{new_lines:?}");
    assert!(
        new_lines[0].starts_with(&format!("{}:", m1.address.addr())),
        "server did not see the machine's LAN address: {new_lines:?}"
    );

    // DNS from the machine, through its resolv.conf (the LAN DNS) by glibc's resolver.
    let mut getent = m1.resolving_command("getent")?;
    let out = run(getent.args(["ahostsv4", TEST_NAME]))?;
    let first = String::from_utf8(out.stdout)?;
    assert_eq!(
        first.split_whitespace().next(),
        Some(HTTP_SERVER.to_string().as_str()),
        "{first}"
    );
    let lan_dns = log_lines(&lab.log("dns-lan"));
    let query = format!("query[A] {TEST_NAME} from {}", m1.address.addr());
    assert!(lan_dns.iter().any(|l| l.contains(&query)), "{lan_dns:#?}");
    let upstream = log_lines(&lab.log("dns-upstream"));
    // Forwarded by the LAN DNS from the router's uplink address.
    let forwarded = format!("query[A] {TEST_NAME} from {INET_ROUTER}");
    assert!(
        upstream.iter().any(|l| l.contains(&forwarded)),
        "{upstream:#?}"
    );

    // The proxy: a node's request through it arrives from the machine and is logged.
    let proxy = m1.proxy.clone().expect("lab runs a proxy");
    let out = curl_in(
        &linux,
        &["--proxy", &proxy, &topology::http_url_by_address()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout)?, lab.http_page());
    let proxy_log = log_lines(&lab.log("proxy"));
    let via = "Connect (file descriptor";
    assert!(
        proxy_log
            .iter()
            .any(|l| l.contains(via) && l.ends_with(&m1.address.addr().to_string())),
        "{proxy_log:#?}"
    );

    // The matrix, for both machines' nodes, as a NAT deployment promises.
    let mut nodes = Vec::new();
    for m in &machines {
        nodes.extend(nodes_of(&name, m, &kinds));
    }
    let matrix = lab.status(&nodes, &Expectations::NAT)?;
    let table = matrix.render_table();
    eprintln!("{table}");
    assert!(matrix.all_ok(), "{table}");
    let count = |row| matrix.row(row).count();
    assert_eq!(count(Row::MachineToInternet), 2);
    assert_eq!(count(Row::NodeToHost), 4);
    assert_eq!(count(Row::NodeToNode), 4, "linux↔windows on each machine");
    assert_eq!(count(Row::NodeToInternetByAddress), 4);
    assert_eq!(count(Row::NodeToInternetByName), 4);
    assert_eq!(count(Row::LanToNode), 4);
    let json = serde_json::to_string(&matrix)?;
    assert!(json.contains("\"row\":\"lan-to-node\""), "{json}");
    assert_eq!(serde_json::from_str::<edgenet_lab::Matrix>(&json)?, matrix);

    // The probes measure, not assume: open the inbound path and cut NAT on m1 → those
    // cells flip, the rest stay.
    nft(
        m1,
        "flush chain ip labtest inbound\nflush chain ip labtest outbound\n",
    )?;
    let m1_nodes = nodes_of(&name, m1, &kinds);
    let changed = lab.status(&m1_nodes, &Expectations::NAT)?;
    eprintln!("{}", changed.render_table());
    assert!(!changed.all_ok());
    for c in &changed.cells {
        let want = match c.row {
            Row::LanToNode => Reach::Reachable,
            Row::NodeToInternetByAddress | Row::NodeToInternetByName => Reach::Unreachable,
            _ => Reach::Reachable,
        };
        assert_eq!(c.actual, want, "{c:?}");
    }

    let services = lab.services().to_vec();
    let lab_dir = lab.dir().to_path_buf();
    let mut undeployed = Vec::new();
    lab.down(|m| {
        undeployed.push(m.name.clone());
        fake_undeploy(&name, m, &kinds)
    })
    .map_err(|e| e.to_string())?;
    assert_eq!(undeployed, ["m2", "m1"]);
    assert_gone(&name, &services);
    assert_eq!(mount_type(&machines_dir), None, "the tmpfs is unmounted");
    assert!(!machines_dir.exists());
    assert!(!lab_dir.join("lab.json").exists());
    assert!(
        lab_dir.join("logs").join("http.log").exists(),
        "logs are kept"
    );
    Ok(())
}

#[test]
fn a_failed_up_can_be_detached_reopened_and_brought_down() -> TestResult {
    let Some((name, dir, _cleanup)) = root_test(lab_name("b"))? else {
        return Ok(());
    };
    let mut spec = LabSpec::new(&name, dir.path().join("lab"));
    spec.machines = 2;
    spec.proxy = false;
    let kinds = [NodeKind::Linux];
    let err = match Lab::up(&spec, |m| {
        fake_deploy(&name, m, &kinds)?;
        if m.index == 2 {
            return Err(format!("injected failure on {}", m.name));
        }
        Ok(())
    }) {
        Ok(_) => panic!("up must fail when a deploy fails"),
        Err(e) => e,
    };
    assert!(
        matches!(&err.error, LabError::Deploy { machine, .. } if machine == "m2"),
        "{err}"
    );
    let lab = err.lab.expect("the partial lab is handed back");
    let services = lab.services().to_vec();
    assert_eq!(services.len(), 3);
    let lab_dir = lab.detach();
    // Everything is still there, for inspection.
    assert_eq!(
        leftover_namespaces(&name).len(),
        7,
        "inet, lan, peer, m1, m2 and two nodes"
    );
    assert!(services.iter().all(still_running));

    // A re-opened lab (`lab status` in another process) is left running when dropped.
    drop(Lab::open(&lab_dir)?);
    assert!(services.iter().all(still_running));
    assert_eq!(leftover_namespaces(&name).len(), 7);

    let lab = Lab::open(&lab_dir)?;
    // While open, a second holder is refused.
    assert!(matches!(Lab::open(&lab_dir), Err(LabError::Locked { .. })));
    let mut undeployed = Vec::new();
    lab.down(|m| {
        undeployed.push(m.name.clone());
        fake_undeploy(&name, m, &kinds)
    })
    .map_err(|e| e.to_string())?;
    assert_eq!(undeployed, ["m2", "m1"], "both deploys had started");
    assert_gone(&name, &services);
    assert!(matches!(
        Lab::open(&lab_dir),
        Err(LabError::NotFound { .. })
    ));
    Ok(())
}

/// `up_with`: deploys side by side, every machine tried past a failure, the first failing
/// machine reported; `down_with`: undeploys side by side, and deployments left to go with
/// their machines take their node namespaces along (the bridges, nft tables and sysctls in
/// the machine namespaces go with those).
#[test]
fn side_by_side_deploys_and_a_down_that_discards_them() -> TestResult {
    let Some((name, dir, _cleanup)) = root_test(lab_name("p"))? else {
        return Ok(());
    };
    let mut spec = LabSpec::new(&name, dir.path().join("lab"));
    spec.machines = 3;
    spec.proxy = false;
    let kinds = [NodeKind::Linux];
    let deployed = Mutex::new(Vec::new());
    let err = match Lab::up_with(&spec, 2, |m| {
        fake_deploy(&name, m, &kinds)?;
        deployed.lock().unwrap().push(m.index);
        if m.index == 2 {
            return Err(format!("injected failure on {}", m.name));
        }
        Ok(())
    }) {
        Ok(_) => panic!("up must fail when a deploy fails"),
        Err(e) => e,
    };
    assert!(
        matches!(&err.error, LabError::Deploy { machine, .. } if machine == "m2"),
        "{err}"
    );
    let mut deployed = deployed.into_inner().unwrap();
    deployed.sort_unstable();
    assert_eq!(deployed, [1, 2, 3], "one failure does not stop the others");
    let lab = err.lab.expect("the partial lab is handed back");
    let services = lab.services().to_vec();
    assert_eq!(
        leftover_namespaces(&name).len(),
        9,
        "inet, lan, peer, three machines and their nodes"
    );
    let links = run(Command::new("ip").args(["-n", &lab.machines()[0].netns, "-o", "link"]))?;
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(
        links.contains(SWITCH),
        "the deploy made its switch: {links}"
    );

    let undeployed = Mutex::new(Vec::new());
    lab.down_with(|m| {
        undeployed.lock().unwrap().push(m.index);
        Ok::<_, String>(Undeploy::Discarded {
            namespaces: vec![node_netns(&name, m, NodeKind::Linux)],
        })
    })
    .map_err(|e| e.to_string())?;
    let mut undeployed = undeployed.into_inner().unwrap();
    undeployed.sort_unstable();
    assert_eq!(undeployed, [1, 2, 3], "every started deploy is undeployed");
    assert_gone(&name, &services);
    Ok(())
}

/// The check before each machine's deploy proves that machine's own wiring: a machine
/// whose default route is gone (its DNS on the LAN still answers) or whose address is gone
/// is not deployed, and the lab says which machine and what is missing.
#[test]
fn a_machine_whose_own_network_is_broken_is_not_deployed() -> TestResult {
    let Some((name, dir, _cleanup)) = root_test(lab_name("w"))? else {
        return Ok(());
    };
    let mut spec = LabSpec::new(&name, dir.path().join("lab"));
    spec.machines = 3;
    spec.proxy = false;
    spec.timeout = Duration::from_secs(2);
    let deployed = Mutex::new(Vec::new());
    // One worker: m1's check and deploy, then m2's, then m3's. m1's "deploy" breaks the
    // others before their checks.
    let err = match Lab::up_with(&spec, 1, |m| {
        deployed.lock().unwrap().push(m.index);
        if m.index == 1 {
            let m2 = format!("{}m2", topology::prefix(&name));
            let m3 = format!("{}m3", topology::prefix(&name));
            run(Command::new("ip").args(["-n", &m2, "route", "del", "default"]))?;
            let address = format!(
                "{}/{}",
                topology::machine_address(3),
                topology::LAN_SUBNET.prefix_len()
            );
            run(Command::new("ip").args(["-n", &m3, "addr", "del", &address, "dev", "eth0"]))?;
        }
        Ok::<_, String>(())
    }) {
        Ok(_) => panic!("up must fail when a machine's network is broken"),
        Err(e) => e,
    };
    assert_eq!(
        deployed.into_inner().unwrap(),
        [1],
        "m2 and m3 are not deployed"
    );
    match &err.error {
        LabError::NotReady {
            service, last, log, ..
        } => {
            assert_eq!(service, "the network of machine m2");
            // The LAN DNS's log says nothing about an ICMP echo: not pointed to.
            assert_eq!(log, &None, "{}", err.error);
            assert!(!err.error.to_string().contains("dns-lan"), "{}", err.error);
            assert!(
                last.contains(&format!("no way out through the router {LAN_ROUTER}"))
                    && last.contains(&HTTP_SERVER.to_string()),
                "{last}"
            );
        }
        other => panic!("{other}"),
    }
    let lab = err.lab.expect("the partial lab is handed back");
    let services = lab.services().to_vec();
    lab.down(|_| Ok::<_, String>(()))
        .map_err(|e| e.to_string())?;
    assert_gone(&name, &services);
    Ok(())
}

#[test]
fn dropping_a_lab_tears_it_down() -> TestResult {
    let Some((name, dir, _cleanup)) = root_test(lab_name("c"))? else {
        return Ok(());
    };
    let lab = Lab::up(&LabSpec::new(&name, dir.path()), |_| Ok::<(), String>(()))
        .map_err(|e| e.to_string())?;
    let services = lab.services().to_vec();
    assert_eq!(leftover_namespaces(&name).len(), 4);
    drop(lab);
    assert_gone(&name, &services);
    Ok(())
}

const CRASH_ENV: &str = "EDGENET_LAB_CRASH_DIR";

/// Run by `down_after_a_crash_cleans_up` in a child process: builds a lab and aborts the
/// process in the middle of the second machine's deploy (no destructor runs).
#[test]
#[ignore = "helper: run in a child process by down_after_a_crash_cleans_up"]
fn crash_helper() {
    let Ok(dir) = std::env::var(CRASH_ENV) else {
        eprintln!("crash_helper only runs as the child of down_after_a_crash_cleans_up");
        return;
    };
    let name = std::env::var("EDGENET_LAB_CRASH_NAME").unwrap();
    let mut spec = LabSpec::new(&name, dir);
    spec.machines = 2;
    let _lab = Lab::up(&spec, |m| {
        fake_deploy(&name, m, &[NodeKind::Linux])?;
        if m.index == 2 {
            std::process::abort();
        }
        Ok::<(), String>(())
    });
    unreachable!("the deploy of m2 aborts the process");
}

#[test]
fn down_after_a_crash_cleans_up() -> TestResult {
    let Some((name, dir, _cleanup)) = root_test(lab_name("d"))? else {
        return Ok(());
    };
    let lab_dir = dir.path().join("lab");
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", "crash_helper", "--ignored", "--nocapture"])
        .env(CRASH_ENV, &lab_dir)
        .env("EDGENET_LAB_CRASH_NAME", &name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        assert!(Instant::now() < deadline, "crash helper did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "the helper must have crashed: {status}");

    let lab = Lab::open(&lab_dir)?;
    let services = lab.services().to_vec();
    assert_eq!(services.len(), 4);
    assert!(
        services.iter().all(still_running),
        "services outlive the crashed process"
    );
    assert_eq!(lab.namespaces().len(), 5);
    assert_eq!(
        mount_type(&lab_dir.join("machines")).as_deref(),
        Some("tmpfs")
    );
    let mut undeployed = Vec::new();
    lab.down(|m| {
        undeployed.push(m.name.clone());
        fake_undeploy(&name, m, &[NodeKind::Linux])
    })
    .map_err(|e| e.to_string())?;
    assert_eq!(undeployed, ["m2", "m1"]);
    assert_gone(&name, &services);
    assert_eq!(
        mount_type(&lab_dir.join("machines")),
        None,
        "the crashed lab's tmpfs is unmounted"
    );
    Ok(())
}

#[test]
fn bad_input_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = Lab::up(&LabSpec::new("Bad-Name", dir.path()), |_| {
        Ok::<(), String>(())
    })
    .unwrap_err();
    assert!(matches!(e.error, LabError::InvalidName { .. }), "{e}");
    assert!(e.lab.is_none());
    let mut spec = LabSpec::new("zero", dir.path());
    spec.machines = 0;
    let e = Lab::up(&spec, |_| Ok::<(), String>(())).unwrap_err();
    assert!(e.to_string().contains("machines"), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert!(matches!(
        Lab::open(dir.path()),
        Err(LabError::NotFound { .. })
    ));
}

/// `ip -j neigh show ADDRESS dev LINK` in `netns`: the entry, if the kernel has one.
fn neighbour(netns: &str, link: &str, address: Ipv4Addr) -> Result<serde_json::Value, String> {
    let out = run(Command::new("ip").args([
        "-n",
        netns,
        "-j",
        "neigh",
        "show",
        &address.to_string(),
        "dev",
        link,
    ]))?;
    let entries: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(entries[0].clone())
}

/// `ip -j link show LINK` in `netns`: its MAC.
fn mac_of(netns: &str, link: &str) -> Result<String, String> {
    let out = run(Command::new("ip").args(["-n", netns, "-j", "link", "show", link]))?;
    let links: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    links[0]["address"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{link} in {netns} has no MAC"))
}

/// The lab wires each machine knowing both MACs of its link to the router, and writes them
/// into both ARP caches (stale, `proto static`: used without a broadcast request, confirmed
/// and replaced as learned ones are), so no machine's first packet to its gateway floods
/// the LAN. The entries carry the real MACs: traffic crosses both ways at once.
#[test]
fn the_router_and_each_machine_know_each_others_mac_from_the_wiring() -> TestResult {
    let Some((name, dir, _cleanup)) = root_test(lab_name("n"))? else {
        return Ok(());
    };
    let mut spec = LabSpec::new(&name, dir.path().join("lab"));
    spec.machines = 2;
    spec.proxy = false;
    let lab = Lab::up(&spec, |_| Ok::<(), String>(())).map_err(|e| e.to_string())?;
    let lan = lab.lan_netns();
    let router_mac = mac_of(&lan, "lan0")?;
    for m in lab.machines() {
        let machine_mac = mac_of(&m.netns, &m.adapter)?;
        let at_router = neighbour(&lan, "lan0", m.address.addr())?;
        assert_eq!(at_router["lladdr"], machine_mac.as_str(), "{at_router}");
        assert_eq!(at_router["protocol"], "static", "{at_router}");
        let at_machine = neighbour(&m.netns, &m.adapter, LAN_ROUTER)?;
        assert_eq!(at_machine["lladdr"], router_mac.as_str(), "{at_machine}");
        assert_eq!(at_machine["protocol"], "static", "{at_machine}");
        // The machine's loopback is up, as a host's is.
        let lo = run(Command::new("ip").args(["-n", &m.netns, "-j", "link", "show", "lo"]))?;
        let lo: serde_json::Value = serde_json::from_slice(&lo.stdout)?;
        assert!(
            lo[0]["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f == "UP")),
            "{lo}"
        );
        for (from, to) in [(&m.netns, LAN_ROUTER), (&lan, m.address.addr())] {
            run(Command::new("ip").args([
                "netns",
                "exec",
                from,
                "ping",
                "-c1",
                "-W1",
                &to.to_string(),
            ]))
            .map_err(|e| format!("ping {to} from {from}: {e}"))?;
        }
    }
    lab.down(|_| Ok::<(), String>(()))
        .map_err(|e| e.to_string())?;
    Ok(())
}
