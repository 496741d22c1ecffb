//! Breaker report B10 follow-ups: two deployments side by side in one network namespace
//! (forwarding, the automatic subnet), a first deploy failing at its last step, a remove that
//! cannot finish, a foreign namespace under a node's name, status while a run holds the lock,
//! extra addresses. Every assertion reads the kernel or the filesystem.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::*;

/// A second deployment in the machine's namespace, with its own state directory; removed on
/// drop.
struct Beside<'a> {
    m: &'a Machine,
    state: PathBuf,
}

impl<'a> Beside<'a> {
    fn new(m: &'a Machine) -> Self {
        Beside {
            m,
            state: m.dir.path().join("state-b"),
        }
    }

    fn edgenet(&self, args: &[&str]) -> Output {
        self.m
            .edgenet_env(args, &[("EDGENET_STATE_DIR", self.state.to_str().unwrap())])
    }

    fn id(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.state.join("state.json")).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v["deployment_id"].as_str().map(String::from)
    }
}

impl Drop for Beside<'_> {
    fn drop(&mut self) {
        let id = self.id();
        let _ = self.edgenet(&["remove", "--wait", "5"]);
        if let Some(id) = id {
            for ns in sh_out("ip netns list").lines() {
                let name = ns.split_whitespace().next().unwrap_or("");
                if name.ends_with(&format!("-{id}")) {
                    let _ = Command::new("ip").args(["netns", "del", name]).status();
                }
            }
        }
    }
}

fn config_b(m: &Machine) -> String {
    m.write_config(
        "b.json",
        &serde_json::json!({"Edgenet": {"SwitchName": "f10bsw-b"}}),
    )
}

/// The IPv4 addresses (CIDR) of `link` in the machine namespace.
fn addresses(m: &Machine, link: &str) -> Vec<String> {
    ipv4_of(&m.ip_json("addr show"), link)
}

fn status_drift(out: &Output) -> Vec<String> {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["drift"]
        .as_array()
        .map(|a| a.iter().map(|d| d.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn removing_one_deployment_leaves_forwarding_on_for_the_one_beside_it() {
    let Some(m) = machine("f10bfw") else { return };
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "0");
    m.deploy(None);
    let b = Beside::new(&m);
    let cb = config_b(&m);
    let out = b.edgenet(&["-c", &cb, "deploy"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1");
    // Side by side, each is neither drift nor a change for the other.
    for _ in 0..2 {
        let out = m.ok(&["deploy"]);
        assert!(out.contains("No changes"), "{out}");
    }
    let out = m.edgenet(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    // B's switch, seen from A: said to be possibly a live neighbour's, whose own remove
    // deletes it, not only a leftover to delete (B17a 9).
    let out = m.edgenet(&["status", "--output", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let about_b: Vec<&str> = v["notices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|n| n.contains("f10bsw-b"))
        .collect();
    assert!(!about_b.is_empty(), "{v:#}");
    for n in about_b {
        assert!(
            n.contains("beside this one") && n.contains("its own `edgenet remove`"),
            "{n}"
        );
    }

    let out = m.edgenet(&["remove"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert_eq!(
        m.sysctl("net.ipv4.ip_forward"),
        "1",
        "B still routes through the host: {t}"
    );
    assert!(t.contains("another edgenet deployment"), "{t}");
    let out = b.edgenet(&["status", "--output", "json"]);
    let drift = status_drift(&out);
    assert!(!drift.iter().any(|d| d.contains("ip_forward")), "{drift:?}");
    // The last one puts back what was there before either.
    let out = b.edgenet(&["remove"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "0", "{}", text(&out));
    assert!(
        text(&out).contains("restored net.ipv4.ip_forward to 0"),
        "{}",
        text(&out)
    );
}

#[test]
fn two_deploys_at_once_choose_different_automatic_subnets() {
    let Some(m) = machine("f10bsub") else { return };
    let b = Beside::new(&m);
    let cb = config_b(&m);
    let spawn = |state: &Path, extra: &[&str]| {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", m.ns))
            .arg(env!("CARGO_BIN_EXE_edgenet"))
            .args(extra)
            .arg("deploy")
            .env("EDGENET_STATE_DIR", state)
            .env("EDGENET_RESOLV_CONF", &m.resolv)
            .env_remove("EDGENET_FAILPOINT")
            .env_remove("EDGENET_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn(&m.state, &[]);
    let bb = spawn(&b.state, &["-c", &cb]);
    let (oa, ob) = (
        a.wait_with_output().unwrap(),
        bb.wait_with_output().unwrap(),
    );
    assert!(oa.status.success(), "{}", text(&oa));
    assert!(ob.status.success(), "{}", text(&ob));
    let (sa, sb) = (addresses(&m, "aksedgesw-int"), addresses(&m, "f10bsw-b"));
    assert_eq!(sa.len(), 1, "{sa:?}");
    assert_eq!(sb.len(), 1, "{sb:?}");
    let net = |cidr: &str| {
        let (ip, _) = cidr.split_once('/').unwrap();
        ip.rsplit_once('.').unwrap().0.to_string()
    };
    assert_ne!(
        net(&sa[0]),
        net(&sb[0]),
        "both bridges in one /24: {sa:?} {sb:?}"
    );
    for out in [
        m.edgenet(&["status", "--output", "json"]),
        b.edgenet(&["status", "--output", "json"]),
    ] {
        assert!(out.status.success(), "{}", text(&out));
    }

    // A link that takes an address in A's subnet by hand: status says so.
    let (ip, _) = sa[0].split_once('/').unwrap();
    let clash = format!("{}.200/24", ip.rsplit_once('.').unwrap().0);
    sh(&format!(
        "ip -n {ns} link add f10bdum type bridge && ip -n {ns} addr add {clash} dev f10bdum && ip -n {ns} link set f10bdum up",
        ns = m.ns
    ));
    let out = m.edgenet(&["status", "--output", "json"]);
    let drift = status_drift(&out);
    assert!(
        drift
            .iter()
            .any(|d| d.contains("f10bdum") && d.contains("in the subnet")),
        "{drift:?}"
    );
    let out = m.edgenet(&["check"]);
    assert!(
        text(&out).contains("also used by") && text(&out).contains("f10bdum"),
        "{}",
        text(&out)
    );
    // Deploy refuses it, changing nothing (B18a D2: it said "No changes" while the host
    // reached the nodes through f10bdum).
    let before = m.dump();
    let out = m.edgenet(&["deploy"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("overlaps-host-network") && text(&out).contains("f10bdum"),
        "{}",
        text(&out)
    );
    assert_eq!(m.dump(), before);
    sh(&format!("ip -n {} link del f10bdum", m.ns));
}

#[test]
fn a_first_deploy_failing_at_finish_leaves_nothing_deployed() {
    let Some(m) = machine("f10bfin") else { return };
    if !failpoints() {
        return;
    }
    let before = m.dump();
    let out = m.edgenet_env(
        &["deploy", "--output", "json"],
        &[("EDGENET_FAILPOINT", "finish")],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["deployment_id"].is_string(), "{v}");
    assert_eq!(v["state_dir"].as_str(), m.state.to_str(), "{v}");
    let rolled: Vec<&str> = v["rolled_back"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        rolled.iter().any(|r| r.starts_with("deleted bridge ")),
        "{rolled:?}"
    );
    assert!(
        rolled.iter().all(|r| !r.starts_with("warning")),
        "{rolled:?}"
    );
    assert!(!m.state.join("state.json").exists());
    assert!(!m.state.join("nodes").exists(), "node files stay");
    let mut after = m.dump();
    // The lock file of the (empty) state directory is all that may differ.
    after["state_files"] = before["state_files"].clone();
    assert_eq!(before, after);
    let out = m.edgenet(&["status"]);
    assert!(text(&out).contains("Nothing deployed"), "{}", text(&out));
    let out = m.edgenet(&["remove", "--output", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["found"], false, "{v}");
}

#[test]
fn a_bad_machine_index_or_failpoint_exits_2_and_creates_nothing() {
    let Some(m) = machine("f10bargs") else { return };
    let out = m.edgenet(&["deploy", "--machine", "3"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    if failpoints() {
        let out = m.edgenet_env(&["deploy"], &[("EDGENET_FAILPOINT", "bogus")]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains("EDGENET_FAILPOINT"), "{}", text(&out));
    }
    assert!(!m.state.exists(), "a state directory was made");
    assert!(bridges(&m.ns).is_empty());
}

struct Immutable(PathBuf);
impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn a_remove_that_cannot_delete_a_file_keeps_the_state_and_a_rerun_finishes() {
    let Some(m) = machine("f10brm") else { return };
    m.deploy(None);
    let file = std::fs::read_dir(m.state.join("nodes"))
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|f| f.path())
        .find(|p| p.is_file())
        .expect("a node file");
    if !Command::new("chattr")
        .arg("+i")
        .arg(&file)
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("skipped: chattr +i does not work here");
        return;
    }
    let guard = Immutable(file.clone());
    let out = m.edgenet(&["remove", "--output", "json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "remove-incomplete", "{v}");
    assert!(
        m.state.join("state.json").exists(),
        "the hint says a rerun retries: the state must be there"
    );
    assert!(bridges(&m.ns).is_empty(), "the kernel objects went anyway");
    drop(guard);
    let out = m.edgenet(&["remove", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["found"], true, "{v}");
    assert!(!m.state.exists(), "state directory left: {}", text(&out));
}

#[test]
fn an_empty_foreign_namespace_under_a_nodes_name_is_reported_refused_and_left() {
    let Some(m) = machine("f10bns") else { return };
    m.deploy(None);
    let node = m.node_namespaces().into_iter().next().unwrap();
    sh(&format!("ip netns del {node} && ip netns add {node}"));
    let _guard = NsGuard(node.clone());
    let out = m.edgenet(&["status", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let drift = status_drift(&out);
    assert!(
        drift
            .iter()
            .any(|d| d.contains(&node) && d.contains("does not carry this deployment's mark")),
        "{drift:?}"
    );
    let out = m.edgenet(&["deploy"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains(&node), "{}", text(&out));
    // Still empty: nothing was put into it.
    let links = Machine::ip_json_in(&node, "link show");
    assert_eq!(links.as_array().unwrap().len(), 1, "{links}");
    let out = m.edgenet(&["remove"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        Path::new(&format!("/run/netns/{node}")).exists(),
        "remove deleted a namespace it did not make: {}",
        text(&out)
    );
}

#[test]
fn status_while_a_remove_holds_the_lock_says_it_is_running() {
    let Some(m) = machine("f10block") else { return };
    if Command::new("flock").arg("--version").output().is_err() {
        eprintln!("skipped: flock(1) (util-linux) not installed");
        return;
    }
    m.deploy(None);
    // A remove that is half-way: its phase recorded, the state directory locked by it.
    let file = m.state.join("state.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    v["phase"] = "removing".into();
    std::fs::write(&file, v.to_string()).unwrap();
    let lock_file = m.state.join("lock");
    let mut holder = Command::new("flock")
        .args(["--no-fork", "--exclusive"])
        .arg(&m.state)
        .args([
            "sh",
            "-c",
            "echo \"$$ edgenet remove\" > \"$1\"; exec sleep 30",
            "sh",
        ])
        .arg(&lock_file)
        .spawn()
        .unwrap();
    let pid = holder.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(&lock_file)
        .unwrap_or_default()
        .starts_with(&pid.to_string())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = m.edgenet(&["status", "--output", "json"]);
    let _ = holder.kill();
    let _ = holder.wait();
    let drift = status_drift(&out);
    assert!(
        drift
            .iter()
            .any(|d| d.starts_with("a remove is running") && d.contains(&format!("pid {pid}"))),
        "{drift:?}"
    );
    assert!(
        !drift.iter().any(|d| d.contains("the last run stopped")),
        "{drift:?}"
    );
    // Released: the remove stopped half-way, and status says that.
    let out = m.edgenet(&["status", "--output", "json"]);
    let drift = status_drift(&out);
    assert!(
        drift
            .iter()
            .any(|d| d.contains("the last run stopped while Removing")),
        "{drift:?}"
    );
}

#[test]
fn extra_addresses_on_the_bridge_or_in_a_node_are_drift_that_deploy_removes() {
    let Some(m) = machine("f10bxa") else { return };
    m.deploy(None);
    let node = m.node_namespaces().into_iter().next().unwrap();
    let out = m.edgenet(&["status", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Tables named with their family, both of them.
    assert!(
        v["firewall_table"]
            .as_str()
            .unwrap()
            .starts_with("ip edgenet_"),
        "{v}"
    );
    assert!(
        v["bridge_table"]
            .as_str()
            .unwrap()
            .starts_with("bridge edgenet_"),
        "{v}"
    );
    sh(&format!(
        "ip -n {} addr add 172.31.9.1/24 dev aksedgesw-int && ip -n {node} addr add 192.168.0.77/24 dev eth0",
        m.ns
    ));
    let out = m.edgenet(&["status", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let drift = status_drift(&out);
    assert!(
        drift
            .iter()
            .any(|d| d.contains("aksedgesw-int") && d.contains("172.31.9.1/24")),
        "{drift:?}"
    );
    assert!(
        drift.iter().any(|d| d.contains("192.168.0.77/24")),
        "{drift:?}"
    );
    m.ok(&["deploy"]);
    assert_eq!(addresses(&m, "aksedgesw-int").len(), 1);
    let inside = ipv4_of(&Machine::ip_json_in(&node, "addr show"), "eth0");
    assert_eq!(inside.len(), 1, "{inside:?}");
    let out = m.edgenet(&["status", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// `edgenet ARGS` in the machine's namespace as a child process, not waited for (two runs at
/// once).
fn start(m: &Machine, state: &Path, args: &[&str]) -> std::process::Child {
    Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", m.ns))
        .arg(env!("CARGO_BIN_EXE_edgenet"))
        .args(args)
        .env("EDGENET_STATE_DIR", state)
        .env("EDGENET_RESOLV_CONF", &m.resolv)
        .env("NO_COLOR", "1")
        .env_remove("EDGENET_FAILPOINT")
        .env_remove("EDGENET_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs nsenter")
}

/// Operator test of round 13: a remove that decided "nobody else forwards" while a deploy
/// beside it was half-way (it had seen forwarding on and so recorded nothing) turned forwarding
/// off under the new deployment, which reported success. The namespace's lock now serialises
/// them, so whichever order they run in, forwarding ends on for the deployment left.
#[test]
fn a_remove_racing_a_deploy_beside_it_never_turns_forwarding_off_under_it() {
    let Some(m) = machine("f13race") else { return };
    let b = Beside::new(&m);
    let cb = config_b(&m);
    for round in 0..6 {
        m.deploy(None);
        let remove_a = start(&m, &m.state, &["remove"]);
        if round % 2 == 1 {
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        let deploy_b = start(&m, &b.state, &["-c", &cb, "deploy"]);
        let (ra, db) = (
            remove_a.wait_with_output().unwrap(),
            deploy_b.wait_with_output().unwrap(),
        );
        assert!(ra.status.success(), "round {round}: {}", text(&ra));
        assert!(db.status.success(), "round {round}: {}", text(&db));
        assert_eq!(
            m.sysctl("net.ipv4.ip_forward"),
            "1",
            "round {round}: B's NAT needs forwarding\nremove A: {}\ndeploy B: {}",
            text(&ra),
            text(&db)
        );
        let out = b.edgenet(&["status", "--output", "json"]);
        assert!(out.status.success(), "round {round}: {}", text(&out));
        let out = b.edgenet(&["remove"]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(m.sysctl("net.ipv4.ip_forward"), "0", "{}", text(&out));
    }
}

/// Operator test of round 13: a deploy started while a remove of the same state directory was
/// finishing read the host (the bridge still there, the state already gone) and refused its
/// own bridge as another deployment's, exit 1 ("the config has errors"). It now waits for the
/// remove (the namespace's lock) or looks again, and deploys.
#[test]
fn a_deploy_right_behind_a_remove_of_its_state_directory_deploys() {
    let Some(m) = machine("f13again") else { return };
    for round in 0..8 {
        m.deploy(None);
        let remove = start(&m, &m.state, &["remove"]);
        std::thread::sleep(std::time::Duration::from_millis(round % 4));
        let out = m.edgenet(&["deploy"]);
        let removed = remove.wait_with_output().unwrap();
        assert!(removed.status.success(), "{}", text(&removed));
        assert!(
            out.status.success(),
            "round {round}: {}\nremove: {}",
            text(&out),
            text(&removed)
        );
        let out = m.edgenet(&["status"]);
        assert!(out.status.success(), "round {round}: {}", text(&out));
        let out = m.edgenet(&["remove"]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            !m.state.exists(),
            "round {round}: the state directory stays"
        );
    }
}

/// A state directory used from another network namespace than its deployment's (a mistyped
/// `nsenter`, a shell in the wrong namespace): remove, status and deploy refuse with the
/// namespace it lives in and change nothing, instead of taking its objects for gone (remove
/// would delete its node namespaces, which are the host's, and forget the rest).
#[test]
fn a_deployment_used_from_another_network_namespace_is_refused() {
    let Some(home) = machine("x16home") else {
        return;
    };
    let Some(other) = machine("x16away") else {
        return;
    };
    home.deploy(None);
    let node = home.linux_node_namespace();
    let before = home.dump();
    let away = |args: &[&str]| {
        std::process::Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", other.ns))
            .arg(env!("CARGO_BIN_EXE_edgenet"))
            .args(args)
            .env("EDGENET_STATE_DIR", &home.state)
            .env("EDGENET_RESOLV_CONF", &home.resolv)
            .env("NO_COLOR", "1")
            .env_remove("EDGENET_CONFIG")
            .output()
            .unwrap()
    };
    for command in ["remove", "status", "deploy"] {
        let out = away(&[command, "--output", "json"]);
        assert_eq!(out.status.code(), Some(3), "{command}: {out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["error"]["code"], "other-namespace", "{command}: {v:#}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(&home.ns), "{command}: {message}");
        assert!(
            v["error"]["hint"]
                .as_str()
                .unwrap()
                .contains("nsenter --net="),
            "{command}: {v:#}"
        );
    }
    assert_eq!(home.dump(), before, "the deployment changed");
    assert!(Machine::ip_json_in(&node, "link show")
        .as_array()
        .is_some_and(|l| l.len() == 2));
    assert!(
        bridges(&other.ns).is_empty(),
        "deploy made a switch in the other namespace"
    );
    assert_eq!(other.sysctl("net.ipv4.ip_forward"), "0");
    // At home everything still works.
    assert_eq!(home.edgenet(&["status"]).status.code(), Some(0));
    home.ok(&["remove"]);
}
