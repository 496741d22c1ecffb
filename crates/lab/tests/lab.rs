//! The lab against the real kernel and real peers (busybox httpd, dnsmasq, tinyproxy, curl,
//! ping, nft). Needs root; skipped with a message otherwise.
//!
//! The `deploy` used here is a stand-in made of plain `ip`/`nft` commands (the real one is
//! edgenet's): in the machine namespace a bridge `aksedgesw-int` 192.168.0.1/24, node
//! namespaces `enl-<lab>-<machine>-linux|windows` (.2/.3) on it, forwarding, and an nft table
//! that masquerades the subnet and drops new connections coming in to it.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use edgenet_core::plan::NodeKind;
use edgenet_host::exec::{output_in, ExecOptions};
use edgenet_host::{netns, sysctl};
use edgenet_lab::topology::{self, HTTP_SERVER, INET_ROUTER, LAN_ROUTER, TEST_NAME};
use edgenet_lab::{
    Expectations, Lab, LabError, LabMachine, LabSpec, NodeInfo, Reach, Row, ServiceRecord,
};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        eprintln!("SKIP: edgenet-lab tests need root (they create network namespaces)");
        false
    }
}

/// A lab name unique to this test process and test.
fn lab_name(test: &str) -> String {
    format!("t{}{test}", std::process::id())
}

fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
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

fn ip(args: &[&str]) -> Result<(), String> {
    run(Command::new("ip").args(args)).map(|_| ())
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
    format!(
        "{}{}-{}",
        topology::prefix(lab),
        machine.name,
        kind.as_str()
    )
}

fn node_address(kind: NodeKind) -> Ipv4Addr {
    match kind {
        NodeKind::Linux => Ipv4Addr::new(192, 168, 0, 2),
        NodeKind::Windows => Ipv4Addr::new(192, 168, 0, 3),
    }
}

fn node_resolv_conf(machine: &LabMachine) -> PathBuf {
    machine.state_dir.join("node-resolv.conf")
}

/// The stand-in deploy: switch, nodes, forwarding, NAT with inbound drop.
fn fake_deploy(lab: &str, m: &LabMachine, kinds: &[NodeKind]) -> Result<(), String> {
    let mns = m.netns.as_str();
    ip(&["-n", mns, "link", "add", SWITCH, "type", "bridge"])?;
    ip(&["-n", mns, "addr", "add", "192.168.0.1/24", "dev", SWITCH])?;
    ip(&["-n", mns, "link", "set", SWITCH, "up"])?;
    for &kind in kinds {
        let node = node_netns(lab, m, kind);
        let port = format!("v-{}", kind.as_str());
        let address = format!("{}/24", node_address(kind));
        ip(&["netns", "add", &node])?;
        ip(&[
            "-n", mns, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &node,
        ])?;
        ip(&["-n", mns, "link", "set", &port, "master", SWITCH, "up"])?;
        ip(&["-n", &node, "link", "set", "lo", "up"])?;
        ip(&["-n", &node, "addr", "add", &address, "dev", "eth0"])?;
        ip(&["-n", &node, "link", "set", "eth0", "up"])?;
        ip(&["-n", &node, "route", "add", "default", "via", "192.168.0.1"])?;
    }
    std::fs::write(node_resolv_conf(m), format!("nameserver {}\n", m.dns))
        .map_err(|e| e.to_string())?;
    netns::run_in(mns, || sysctl::write("net.ipv4.ip_forward", "1"))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    nft(m, RULES)
}

fn nft(m: &LabMachine, rules: &str) -> Result<(), String> {
    let mut cmd = m.command("nft").map_err(|e| e.to_string())?;
    let mut child = cmd
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(rules.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft in {}: {}",
            m.netns,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn fake_undeploy(lab: &str, m: &LabMachine, kinds: &[NodeKind]) -> Result<(), String> {
    for &kind in kinds {
        netns::delete(&node_netns(lab, m, kind)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn nodes_of(lab: &str, m: &LabMachine, kinds: &[NodeKind]) -> Vec<NodeInfo> {
    kinds
        .iter()
        .map(|&kind| NodeInfo {
            name: format!("{}-{}", m.name, kind.suffix()),
            machine: m.name.clone(),
            netns: node_netns(lab, m, kind),
            address: node_address(kind),
            host: Ipv4Addr::new(192, 168, 0, 1),
            kind,
            resolv_conf: Some(node_resolv_conf(m)),
        })
        .collect()
}

/// Namespaces on the host whose name starts with the lab's prefix.
fn leftover_namespaces(lab: &str) -> Vec<String> {
    let prefix = topology::prefix(lab);
    netns::list()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Deletes the namespaces the stand-in deploy made when a test fails half-way (the lab's
/// own `Drop` removes only what the lab made). Assertions about leftovers run before it.
struct NodeCleanup(String);

impl Drop for NodeCleanup {
    fn drop(&mut self) {
        for ns in leftover_namespaces(&self.0) {
            let _ = netns::delete(&ns);
        }
    }
}

/// A recorded service still runs: the PID exists with the recorded start time and is not
/// a zombie.
fn still_running(s: &ServiceRecord) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", s.pid)) else {
        return false;
    };
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[0] != "Z" && fields[19] == s.start_time.to_string()
}

fn assert_gone(lab: &str, services: &[ServiceRecord]) {
    assert_eq!(
        leftover_namespaces(lab),
        Vec::<String>::new(),
        "namespaces left"
    );
    for s in services {
        assert!(!still_running(s), "{} (pid {}) still runs", s.name, s.pid);
    }
}

fn curl_in(netns: &str, args: &[&str]) -> Output {
    let mut argv = vec!["curl", "-sS", "--max-time", "5"];
    argv.extend_from_slice(args);
    output_in(netns, &argv, &ExecOptions::default()).unwrap()
}

fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn up_serves_measures_and_down_leaves_nothing() -> TestResult {
    if !is_root() {
        return Ok(());
    }
    let name = lab_name("a");
    let _cleanup = NodeCleanup(name.clone());
    let dir = tempfile::tempdir()?;
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
    assert_eq!(
        std::fs::read_to_string(&m1.resolv_conf)?.lines().last(),
        Some(format!("nameserver {LAN_ROUTER}").as_str())
    );
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
    assert!(!lab_dir.join("lab.json").exists());
    assert!(
        lab_dir.join("logs").join("http.log").exists(),
        "logs are kept"
    );
    Ok(())
}

#[test]
fn a_failed_up_can_be_detached_reopened_and_brought_down() -> TestResult {
    if !is_root() {
        return Ok(());
    }
    let name = lab_name("b");
    let _cleanup = NodeCleanup(name.clone());
    let dir = tempfile::tempdir()?;
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

#[test]
fn dropping_a_lab_tears_it_down() -> TestResult {
    if !is_root() {
        return Ok(());
    }
    let name = lab_name("c");
    let _cleanup = NodeCleanup(name.clone());
    let dir = tempfile::tempdir()?;
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
    if !is_root() {
        return Ok(());
    }
    let name = lab_name("d");
    let _cleanup = NodeCleanup(name.clone());
    let dir = tempfile::tempdir()?;
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
    let mut undeployed = Vec::new();
    lab.down(|m| {
        undeployed.push(m.name.clone());
        fake_undeploy(&name, m, &[NodeKind::Linux])
    })
    .map_err(|e| e.to_string())?;
    assert_eq!(undeployed, ["m2", "m1"]);
    assert_gone(&name, &services);
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
