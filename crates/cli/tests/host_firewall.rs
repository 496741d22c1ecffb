//! Host firewalls (issue 8): Docker's `FORWARD` policy drop and ufw's default forward drop, as
//! real iptables-nft rulesets loaded into the test machine's namespace, against real traffic
//! from a node. `check` names the conflict, `deploy` opens Docker's `DOCKER-USER` for the switch
//! (and refuses ufw with the exact command), `status` reports a drop as drift, and `remove`
//! leaves the other tool's rules exactly as they were.

mod support;

use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::*;

/// Docker 24's filter and nat tables, as `iptables-save` prints them after `dockerd` starts.
const DOCKER: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
";

/// ufw's forward path with `DEFAULT_FORWARD_POLICY="DROP"` (its default), trimmed to the
/// chains a forwarded packet walks (and without its ICMP accepts, so that ping is the probe).
const UFW: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:ufw-before-forward - [0:0]
:ufw-user-forward - [0:0]
:ufw-after-forward - [0:0]
:ufw-reject-forward - [0:0]
-A FORWARD -j ufw-before-forward
-A FORWARD -j ufw-after-forward
-A FORWARD -j ufw-reject-forward
-A ufw-before-forward -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ufw-before-forward -j ufw-user-forward
COMMIT
";

fn load_ruleset(m: &Machine, rules: &str) {
    let path = m.dir.path().join("rules.v4");
    std::fs::write(&path, rules).unwrap();
    sh(&format!(
        "ip netns exec {} iptables-nft-restore < {}",
        m.ns,
        path.display()
    ));
}

/// `iptables-nft -S` of the filter table, for before/after comparisons.
fn iptables_s(m: &Machine) -> String {
    sh_out(&format!("ip netns exec {} iptables-nft -S", m.ns))
}

fn status(m: &Machine) -> (bool, Value) {
    let (code, report) = m.status();
    (code == Some(0), report)
}

fn linux_node_ns(m: &Machine) -> String {
    let (_, s) = status(m);
    s["nodes"][0]["netns"].as_str().unwrap().to_string()
}

fn findings(m: &Machine, config: Option<&str>) -> Vec<Value> {
    let mut args = vec!["check", "--output", "json"];
    if let Some(c) = config {
        args.extend(["-c", c]);
    }
    let out = m.edgenet(&args);
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["findings"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn docker_installed_after_deploy_cuts_the_nodes_off_until_deploy_opens_docker_user() {
    let Some(m) = machine("h8bdock") else { return };
    if !has_iptables() {
        eprintln!("skipped: needs iptables-nft (scripts/deps.sh installs it)");
        return;
    }
    let _wan = uplink(&m, "wan");
    m.deploy(None);
    let node = linux_node_ns(&m);
    assert!(
        ping_from(&node, "203.0.113.1"),
        "no outbound traffic before Docker"
    );
    assert!(status(&m).0);

    // Docker starts: its FORWARD policy drop now drops every packet the switch forwards.
    load_ruleset(&m, DOCKER);
    let docker_rules = iptables_s(&m);
    assert!(
        !ping_from(&node, "203.0.113.1"),
        "Docker's policy drop did not bite"
    );
    let (ok, s) = status(&m);
    assert!(!ok, "status must fail while the nodes are cut off: {s:#}");
    let drift = s["drift"].to_string();
    assert!(
        drift.contains("Docker") && drift.contains("FORWARD") && drift.contains("policy drop"),
        "{drift}"
    );
    let f = findings(&m, None);
    let docker = f
        .iter()
        .find(|f| f["code"] == "host-firewall-drops")
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert_eq!(docker["severity"], "warning", "{docker:#}");
    assert!(docker["hint"]
        .as_str()
        .unwrap()
        .contains("DOCKER-USER -i aksedgesw-int"));

    // deploy opens DOCKER-USER for the switch: traffic flows, status is clean.
    let report = m.deploy(None);
    assert!(
        report["changes"].to_string().contains("DOCKER-USER"),
        "{report:#}"
    );
    assert!(
        ping_from(&node, "203.0.113.1"),
        "deploy did not let the nodes out"
    );
    let (ok, s) = status(&m);
    assert!(ok, "{s:#}");
    let id = m.state_id().unwrap();
    let with_ours = iptables_s(&m);
    assert!(
        with_ours.contains(&format!(
            "-A DOCKER-USER -s 192.168.0.0/24 -i aksedgesw-int -m comment --comment \"edgenet:{id}\" -j ACCEPT"
        )),
        "{with_ours}"
    );
    assert!(
        with_ours.contains(&format!(
            "-A DOCKER-USER -d 192.168.0.0/24 -o aksedgesw-int -m comment --comment \"edgenet:{id}\" -j ACCEPT"
        )),
        "{with_ours}"
    );
    // A second deploy adds nothing.
    assert_eq!(m.deploy(None)["changes"], json!([]));
    assert_eq!(iptables_s(&m), with_ours);

    // remove takes out exactly its two rules; Docker's stay as Docker made them.
    m.ok(&["remove"]);
    assert_eq!(iptables_s(&m), docker_rules);
}

#[test]
fn docker_drop_of_bridged_frames_on_an_external_switch_is_opened_by_deploy() {
    let Some(lan) = lan("h8bdx", 1) else { return };
    if !has_iptables() {
        eprintln!("skipped: needs iptables-nft (scripts/deps.sh installs it)");
        return;
    }
    let m = &lan.machines[0];
    assert_eq!(m.sysctl("net.bridge.bridge-nf-call-iptables"), "1");
    load_ruleset(m, DOCKER);
    let cfg = m.write_config("c.json", &lan_config());
    let f = findings(m, Some(&cfg));
    assert!(
        f.iter().any(|f| f["code"] == "host-firewall-drops"
            && f["message"]
                .as_str()
                .unwrap()
                .contains("frames within the switch")),
        "{f:#?}"
    );
    m.ok(&["deploy", "-c", &cfg]);
    let node = linux_node_ns(m);
    assert!(
        ping_from(&node, "198.18.0.254"),
        "node cannot reach the LAN through Docker's drop"
    );
    // Without edgenet's DOCKER-USER rules (Docker reinstalled, chain flushed) the node is cut
    // off, and status says so.
    sh(&format!("ip netns exec {} iptables-nft -F DOCKER-USER && ip netns exec {} iptables-nft -A DOCKER-USER -j RETURN", m.ns, m.ns));
    assert!(!ping_from(&node, "198.18.0.254"));
    let (ok, s) = status(m);
    assert!(!ok && s["drift"].to_string().contains("Docker"), "{s:#}");
    m.ok(&["deploy", "-c", &cfg]);
    assert!(ping_from(&node, "198.18.0.254"));
    assert!(status(m).0);
}

#[test]
fn ufw_forward_drop_is_refused_with_the_exact_command_until_routes_are_allowed() {
    let Some(m) = machine("h8bufw") else { return };
    if !has_iptables() {
        eprintln!("skipped: needs iptables-nft (scripts/deps.sh installs it)");
        return;
    }
    let _wan = uplink(&m, "wan");
    load_ruleset(&m, UFW);
    let host = |m: &Machine| {
        let d = m.dump();
        let v4 = json_of(&format!("ip -n {} -4 -j route show table all", m.ns));
        json!([d["nft"], d["netns"], d["ip_forward"], d["state_files"], v4])
    };
    let before = host(&m);
    let f = findings(&m, None);
    let ufw = f
        .iter()
        .find(|f| f["code"] == "host-firewall-drops")
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert_eq!(ufw["severity"], "error");
    let hint = ufw["hint"].as_str().unwrap();
    assert!(
        hint.contains("ufw route allow in on aksedgesw-int"),
        "{hint}"
    );

    let out = m.edgenet(&["deploy"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("ufw route allow"));
    assert_eq!(host(&m), before, "a refused deploy changed the host");

    // What `ufw route allow in on aksedgesw-int` and `… out on …` add.
    sh(&format!(
        "ip netns exec {0} iptables-nft -A ufw-user-forward -i aksedgesw-int -j ACCEPT && \
         ip netns exec {0} iptables-nft -A ufw-user-forward -o aksedgesw-int -j ACCEPT",
        m.ns
    ));
    assert!(!findings(&m, None)
        .iter()
        .any(|f| f["code"] == "host-firewall-drops"));
    m.deploy(None);
    let node = linux_node_ns(&m);
    assert!(ping_from(&node, "203.0.113.1"));
    assert!(status(&m).0);
}

/// firewalld's nftables shape: policy accept, but the forward chain ends in a reject for every
/// interface in no zone (trimmed to what a forwarded packet walks).
const FIREWALLD: &str = r#"table inet firewalld {
  chain filter_FORWARD {
    type filter hook forward priority filter + 10; policy accept;
    ct state { established, related } accept
    ct status dnat accept
    iifname "lo" accept
    ct state invalid drop
    reject with icmpx admin-prohibited
  }
}
"#;

#[test]
fn firewalld_reject_is_refused_until_the_switch_is_trusted() {
    let Some(m) = machine("h8bfwd") else { return };
    let _wan = uplink(&m, "wan");
    let path = m.dir.path().join("firewalld.nft");
    std::fs::write(&path, FIREWALLD).unwrap();
    sh(&format!("ip netns exec {} nft -f {}", m.ns, path.display()));
    let f = findings(&m, None);
    let fwd = f
        .iter()
        .find(|f| f["code"] == "host-firewall-drops")
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert_eq!(fwd["severity"], "error");
    assert!(
        fwd["hint"]
            .as_str()
            .unwrap()
            .contains("firewall-cmd --permanent --zone=trusted --add-interface=aksedgesw-int"),
        "{fwd:#}"
    );
    let out = m.edgenet(&["deploy"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(m.node_namespaces().is_empty());
    // What putting the switch in the trusted zone amounts to for forwarded packets.
    sh(&format!(
        "ip netns exec {0} nft insert rule inet firewalld filter_FORWARD iifname aksedgesw-int accept && \
         ip netns exec {0} nft insert rule inet firewalld filter_FORWARD oifname aksedgesw-int accept",
        m.ns
    ));
    m.deploy(None);
    assert!(ping_from(&linux_node_ns(&m), "203.0.113.1"));
    assert!(status(&m).0);
    // And without it (firewalld reloaded), the nodes are cut off and status says so.
    sh(&format!(
        "ip netns exec {0} nft delete table inet firewalld && ip netns exec {0} nft -f {1}",
        m.ns,
        path.display()
    ));
    assert!(!ping_from(&linux_node_ns(&m), "203.0.113.1"));
    let (ok, s) = status(&m);
    assert!(
        !ok && s["drift"].to_string().contains("firewall-cmd"),
        "{s:#}"
    );
}

fn curl_ok(ns: &str, url: &str) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "2",
            url,
        ])
        .status()
        .unwrap()
        .success()
}

/// A container on Docker's bridge: `docker0` 172.17.0.1/16 in the machine, a namespace at
/// 172.17.0.2 serving HTTP on 8080 (a port no one published).
struct Container {
    _ns: NsGuard,
    server: std::process::Child,
}

impl Container {
    fn new(m: &Machine) -> Container {
        let guard = NsGuard::create(&run_name("f8b", "ctr"));
        let ns = guard.name();
        sh(&format!(
            "ip -n {m} link add docker0 type bridge && ip -n {m} addr add 172.17.0.1/16 dev docker0 && \
             ip -n {m} link set docker0 up && \
             ip -n {m} link add vethc type veth peer name eth0 netns {ns} && \
             ip -n {m} link set vethc master docker0 up && \
             ip -n {ns} addr add 172.17.0.2/16 dev eth0 && ip -n {ns} link set eth0 up && \
             ip -n {ns} route add default via 172.17.0.1 && \
             ip netns exec {m} sysctl -qw net.ipv4.ip_forward=1",
            m = m.ns
        ));
        let server = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-m", "http.server", "8080"])
            .args(["--bind", "172.17.0.2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..150 {
            if curl_ok(&m.ns, "http://172.17.0.2:8080/") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(
            curl_ok(&m.ns, "http://172.17.0.2:8080/"),
            "the container's server did not come up"
        );
        Container { _ns: guard, server }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// Issue 8 retest: on a scalable cluster edgenet's DOCKER-USER accepts must let the switch's
/// bridged frames through Docker's policy drop, but not the LAN routed through the host to a
/// container's unpublished port.
#[test]
fn docker_user_rules_let_the_switch_through_but_not_the_lan_to_containers() {
    let Some(lan) = lan("f8bdl", 1) else { return };
    if !has_iptables() {
        eprintln!("skipped: needs iptables-nft (scripts/deps.sh installs it)");
        return;
    }
    let m = &lan.machines[0];
    load_ruleset(m, DOCKER);
    let ctr = Container::new(m);
    let _ = &ctr;
    let cfg = m.write_config("c.json", &lan_config());
    m.ok(&["deploy", "-c", &cfg]);
    let node = linux_node_ns(m);
    assert!(ping_from(&node, "198.18.0.254"), "the node is cut off");
    assert!(status(m).0);
    let peer = lan.peer_ns();
    sh(&format!(
        "ip -n {peer} route add 172.17.0.0/16 via {}",
        Lan::machine_address(0)
    ));
    assert!(
        !curl_ok(&peer, "http://172.17.0.2:8080/"),
        "a LAN peer reached an unpublished container port through edgenet's DOCKER-USER rules: {}",
        iptables_s(m)
    );
    // The probe can succeed: with the old blanket accept the peer gets in.
    sh(&format!(
        "ip netns exec {} iptables-nft -I DOCKER-USER -i aksedgesw-ext -j ACCEPT",
        m.ns
    ));
    assert!(
        curl_ok(&peer, "http://172.17.0.2:8080/"),
        "{}\n{}",
        sh_out(&format!("ip netns exec {} iptables-nft -L -v -n", m.ns)),
        sh_out(&format!("ip -n {} addr; ip -n {} route; ip netns exec {} sysctl net.ipv4.ip_forward net.ipv4.conf.all.rp_filter", m.ns, m.ns, m.ns))
    );
}

/// Issue 8 retest: at boot edgenet deploys before Docker starts (ip filter is empty then).
/// With Docker installed, deploy prepares DOCKER-USER; Docker, starting later, keeps it, so
/// the nodes are not cut off.
#[test]
fn docker_starting_after_deploy_at_boot_finds_edgenets_accepts() {
    let Some(m) = machine("f8bboot") else { return };
    if !has_iptables() {
        eprintln!("skipped: needs iptables-nft (scripts/deps.sh installs it)");
        return;
    }
    let _wan = uplink(&m, "wan");
    let dockerd = m.dir.path().join("dockerd");
    std::fs::write(&dockerd, "").unwrap();
    let dockerd = dockerd.display().to_string();
    let out = m.edgenet_env(&["deploy"], &[("EDGENET_DOCKER_PATHS", &dockerd)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let node = linux_node_ns(&m);
    assert!(ping_from(&node, "203.0.113.1"));
    // Docker starts: it creates its chains one by one (keeping DOCKER-USER as it is) and sets
    // the FORWARD policy to drop.
    for rule in [
        "-N DOCKER-USER",
        "-N DOCKER",
        "-P FORWARD DROP",
        "-A FORWARD -j DOCKER-USER",
        "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -o docker0 -j DOCKER",
        "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
    ] {
        // `-N` of a chain that exists fails, as Docker's does; Docker goes on.
        let _ = Command::new("ip")
            .args(["netns", "exec", &m.ns, "iptables-nft"])
            .args(rule.split(' '))
            .stderr(Stdio::null())
            .status();
    }
    assert!(
        iptables_s(&m).contains("-P FORWARD DROP"),
        "{}",
        iptables_s(&m)
    );
    assert!(
        ping_from(&node, "203.0.113.1"),
        "Docker starting after edgenet cut the nodes off: {}",
        iptables_s(&m)
    );
    let (ok, s) = status(&m);
    assert!(ok, "{s:#}");
    // Without edgenet's accepts status reports it.
    sh(&format!(
        "ip netns exec {} iptables-nft -F DOCKER-USER",
        m.ns
    ));
    assert!(!ping_from(&node, "203.0.113.1"));
    let (ok, s) = status(&m);
    assert!(!ok && s["drift"].to_string().contains("Docker"), "{s:#}");
}

/// Issue 8 retest: drops the walker missed. Each ruleset really cuts the node off (ping), and
/// `check` and `status` say so.
#[test]
fn address_uplink_vmap_icmp_and_input_drops_are_reported() {
    let Some(m) = machine("f8bwalk") else { return };
    let _wan = uplink(&m, "wan");
    m.deploy(None);
    let node = linux_node_ns(&m);
    assert!(ping_from(&node, "203.0.113.1"));
    let t = |family: &str, hook: &str, rule: &str| {
        format!("table {family} f8b {{\n chain c {{\n  type filter hook {hook} priority 0\n  {rule}\n }}\n}}\n")
    };
    for (what, table, target) in [
        (
            "saddr",
            t("ip", "forward", "ip saddr 192.168.0.0/16 drop"),
            "203.0.113.1",
        ),
        (
            "daddr !=",
            t("ip", "forward", "ip daddr != 192.168.0.0/16 drop"),
            "203.0.113.1",
        ),
        (
            "uplink",
            t("ip", "forward", "oifname \"up0\" drop"),
            "203.0.113.1",
        ),
        (
            "vmap",
            t("ip", "forward", "iifname vmap { \"aksedgesw-int\" : drop }"),
            "203.0.113.1",
        ),
        (
            "icmp",
            t("inet", "forward", "meta l4proto icmp drop"),
            "203.0.113.1",
        ),
        (
            "input",
            t("inet", "input", "iifname \"aksedgesw-int\" drop"),
            "192.168.0.1",
        ),
    ] {
        let path = m.dir.path().join("f8b.nft");
        std::fs::write(&path, &table).unwrap();
        sh(&format!("ip netns exec {} nft -f {}", m.ns, path.display()));
        assert!(
            !ping_from(&node, target),
            "{what}: the ruleset does not drop"
        );
        let f = findings(&m, None);
        assert!(
            f.iter()
                .any(|f| f["code"] == "host-firewall-drops" && f["severity"] == "error"),
            "{what}: check is silent: {f:#?}"
        );
        let (ok, s) = status(&m);
        assert!(
            !ok && s["drift"].to_string().contains("f8b"),
            "{what}: {s:#}"
        );
        // One chain, one fix: said once however many kinds of traffic it drops (B18b 8).
        let fixes: Vec<&str> = s["drift"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d.as_str()?.split_once("; fix: ").map(|(_, fix)| fix))
            .filter(|fix| *fix != "the same as above")
            .collect();
        assert_eq!(fixes.len(), 1, "{what}: {s:#}");
        let family = if table.starts_with("table ip ") {
            "ip"
        } else {
            "inet"
        };
        sh(&format!(
            "ip netns exec {} nft delete table {family} f8b",
            m.ns
        ));
        assert!(ping_from(&node, target), "{what}: not restored");
    }
    assert!(status(&m).0);
}

/// `iptables-nft -S` of one chain in the machine: `Err` with iptables' message when it cannot
/// read the chain (an nft rule in it).
fn iptables_chain(m: &Machine, chain: &str) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &m.ns, "iptables-nft", "-S", chain])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// How many of `count` quick pings from `ns` to `target` are answered.
fn pings_answered(ns: &str, target: &str, count: u32) -> u32 {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-q", "-i", "0.01", "-W", "1", "-c",
        ])
        .arg(count.to_string())
        .arg(target)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(',')
        .find_map(|p| p.trim().strip_suffix(" received"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// B17b D3 and D8: rulesets that really cut the node off and that edgenet did not report (a
/// negated port, the output hook, a nat chain's drop, a netdev ingress chain on the uplink):
/// each one drops real packets, and `check` (an error naming the rule in nft's syntax) and
/// `status` (drift) say so. A rate limit on the accept is a warning, not a pass: it loses
/// real packets, and edgenet cannot know how many.
#[test]
fn negated_port_output_nat_and_netdev_drops_are_reported_and_a_rate_limit_is_a_warning() {
    let Some(m) = machine("f18walk") else { return };
    let wan = uplink(&m, "wan");
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            wan.name(),
            "python3",
            "-m",
            "http.server",
            "8080",
        ])
        .args(["--bind", "203.0.113.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(&mut server);
    m.deploy(None);
    let node = linux_node_ns(&m);
    let web = "http://203.0.113.1:8080/";
    let mut up = false;
    for _ in 0..100 {
        up = curl_ok(&node, web);
        if up {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(up, "the node does not reach the server on the wan side");
    assert!(ping_from(&node, "192.168.0.1"));
    let table = |family: &str, chain: &str| {
        format!("table {family} f18 {{\n chain c {{\n  {chain}\n }}\n}}\n")
    };
    let tcp_to_wan = |node: &str| curl_ok(node, web);
    let ping_wan = |node: &str| ping_from(node, "203.0.113.1");
    let ping_host = |node: &str| ping_from(node, "192.168.0.1");
    type Probe<'a> = &'a dyn Fn(&str) -> bool;
    let cases: [(&str, String, Probe, &str); 4] = [
        (
            "tcp dport != 22",
            table("ip", "type filter hook forward priority 0\n  tcp dport != 22 drop"),
            &tcp_to_wan,
            "tcp dport != 22 drop",
        ),
        (
            "output policy drop",
            table("inet", "type filter hook output priority 0; policy drop\n  oif \"lo\" accept"),
            &ping_host,
            "policy drop",
        ),
        (
            "nat prerouting drop",
            table(
                "ip",
                "type nat hook prerouting priority -100\n  iifname \"aksedgesw-int\" ip daddr != 192.168.0.0/16 drop",
            ),
            &ping_wan,
            "iifname \"aksedgesw-int\" ip daddr != 192.168.0.0/16 drop",
        ),
        (
            "netdev ingress on the uplink",
            table(
                "netdev",
                "type filter hook ingress device \"up0\" priority 0; policy drop",
            ),
            &ping_wan,
            "policy drop",
        ),
    ];
    let path = m.dir.path().join("f18.nft");
    for (what, rules, probe, shown) in cases {
        std::fs::write(&path, &rules).unwrap();
        sh(&format!("ip netns exec {} nft -f {}", m.ns, path.display()));
        assert!(!probe(&node), "{what}: the ruleset does not drop");
        let f = findings(&m, None);
        let found = f
            .iter()
            .find(|f| f["code"] == "host-firewall-drops" && f["severity"] == "error")
            .unwrap_or_else(|| panic!("{what}: check is silent: {f:#?}"));
        let message = found["message"].as_str().unwrap();
        assert!(
            message.contains(shown) && message.contains("f18"),
            "{what}: {message}"
        );
        let (ok, s) = status(&m);
        assert!(
            !ok && s["drift"].to_string().contains("f18"),
            "{what}: {s:#}"
        );
        let family = rules.split_whitespace().nth(1).unwrap();
        sh(&format!(
            "ip netns exec {} nft delete table {family} f18",
            m.ns
        ));
        assert!(probe(&node), "{what}: not restored");
    }

    // A rate limit on the accept: real packets are lost; check warns (deploy and status go
    // on), naming the limit.
    std::fs::write(
        &path,
        table(
            "ip",
            "type filter hook forward priority 0; policy drop\n  iifname \"aksedgesw-int\" limit rate 1/second accept\n  oifname \"aksedgesw-int\" accept",
        ),
    )
    .unwrap();
    sh(&format!("ip netns exec {} nft -f {}", m.ns, path.display()));
    let answered = pings_answered(&node, "203.0.113.1", 30);
    assert!(answered < 30, "the limit lost no packet ({answered} of 30)");
    let f = findings(&m, None);
    let ours: Vec<_> = f
        .iter()
        .filter(|f| f["code"] == "host-firewall-drops")
        .collect();
    assert!(!ours.is_empty(), "check is silent on a limit: {f:#?}");
    assert!(ours.iter().all(|f| f["severity"] == "warning"), "{ours:#?}");
    assert!(
        ours[0]["message"]
            .as_str()
            .unwrap()
            .contains("limit rate 1/second accept"),
        "{ours:#?}"
    );
    assert!(status(&m).0, "a possible drop is not drift");
    sh(&format!("ip netns exec {} nft delete table ip f18", m.ns));
}

/// B17b D6: a plain iptables-nft firewall (not Docker's, not ufw's) gets its fix in iptables'
/// syntax: run as printed, it lets the switch through and iptables can still read the chain
/// (the nft fix made it "incompatible, use 'nft' tool").
#[test]
fn a_plain_iptables_nft_firewall_gets_a_fix_iptables_can_still_read() {
    let Some(m) = machine("f18ipt") else { return };
    if !has_iptables() {
        eprintln!("skipped: needs iptables-nft (scripts/deps.sh installs it)");
        return;
    }
    let _wan = uplink(&m, "wan");
    load_ruleset(
        &m,
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -i up0 -o up0 -j ACCEPT\nCOMMIT\n",
    );
    let f = findings(&m, None);
    let found = f
        .iter()
        .find(|f| f["code"] == "host-firewall-drops" && f["severity"] == "error")
        .unwrap_or_else(|| panic!("{f:#?}"));
    let hint = found["hint"].as_str().unwrap();
    let commands = hint
        .split_once(": ")
        .map(|(_, c)| c)
        .and_then(|c| c.split(" (").next())
        .unwrap();
    assert!(
        commands.starts_with("iptables -I FORWARD -i aksedgesw-int -s 192.168.0.0/24 -j ACCEPT"),
        "{hint}"
    );
    assert!(!hint.contains("nft insert"), "{hint}");
    for cmd in commands.split(" && ") {
        sh(&format!("ip netns exec {} {cmd}", m.ns));
    }
    let chain = iptables_chain(&m, "FORWARD");
    assert!(
        chain.as_ref().is_ok_and(|c| c.contains("aksedgesw-int")),
        "iptables cannot read FORWARD after the fix: {chain:?}"
    );
    assert!(!findings(&m, None)
        .iter()
        .any(|f| f["code"] == "host-firewall-drops"));
    m.deploy(None);
    let node = linux_node_ns(&m);
    assert!(ping_from(&node, "203.0.113.1"));
    assert!(status(&m).0);

    // B20 D9: one of the two rules deleted by hand: the hint gives that one only (the other
    // is still there, and following the hint must not add it twice).
    let cmds: Vec<&str> = commands.split(" && ").collect();
    sh(&format!(
        "ip netns exec {} {}",
        m.ns,
        cmds[1].replacen("-I FORWARD", "-D FORWARD", 1)
    ));
    let (ok, s) = status(&m);
    assert!(!ok, "{s:#}");
    let drift = s["drift"].to_string();
    assert!(drift.contains(cmds[1]), "{drift}");
    assert!(!drift.contains(cmds[0]), "{drift}");
    sh(&format!("ip netns exec {} {}", m.ns, cmds[1]));
    assert!(status(&m).0);
    let chain = iptables_chain(&m, "FORWARD").unwrap();
    for dev in ["-i aksedgesw-int", "-o aksedgesw-int"] {
        assert_eq!(
            chain.lines().filter(|l| l.contains(dev)).count(),
            1,
            "{chain}"
        );
    }
}

/// B19 D3: Docker's documented `iptables -I DOCKER-USER -i ext ! -s net -j DROP`, inserted
/// after a deploy, sits above edgenet's accepts and drops the replies to the nodes. `status`
/// names that rule and says edgenet's rules are below it; `deploy` moves its own rules back
/// above it (the user's rule stays, below them) and the nodes reach the far host again.
#[test]
fn user_drop_inserted_above_edgenets_docker_user_rules_is_passed_by_deploy() {
    let Some(m) = machine("q19dusr") else { return };
    if !has_iptables() {
        eprintln!("skipped: needs iptables-nft (scripts/deps.sh installs it)");
        return;
    }
    let wan = uplink(&m, "wan");
    // A host beyond the uplink's subnet, which the user's rule is about.
    sh(&format!(
        "ip -n {} addr add 198.51.100.1/32 dev lo",
        wan.name()
    ));
    load_ruleset(&m, DOCKER);
    m.deploy(None);
    let node = linux_node_ns(&m);
    assert!(ping_from(&node, "198.51.100.1"), "no traffic after deploy");

    let user_rule = "-A DOCKER-USER ! -s 203.0.113.0/24 -i up0 -j DROP";
    sh(&format!(
        "ip netns exec {} iptables-nft -I DOCKER-USER -i up0 ! -s 203.0.113.0/24 -j DROP",
        m.ns
    ));
    assert!(
        !ping_from(&node, "198.51.100.1"),
        "the user's drop did not bite"
    );
    let (ok, s) = status(&m);
    assert!(!ok, "{s:#}");
    let drift = s["drift"].to_string();
    assert!(
        drift.contains("are present in DOCKER-USER but below")
            && drift.contains(user_rule)
            && drift.contains("rule 1 of the chain"),
        "{drift}"
    );
    // check and doctor agree with status: edgenet's accepts are there, below the user's rule
    // (they hinted adding them again).
    let hint = findings(&m, None)
        .into_iter()
        .find(|f| f["code"] == "host-firewall-drops")
        .map(|f| f.to_string())
        .unwrap_or_default();
    assert!(
        hint.contains("are present in DOCKER-USER but below")
            && hint.contains("moves its own rules back above it")
            && !hint.contains("iptables -I DOCKER-USER"),
        "check: {hint}"
    );
    let out = m.edgenet(&["--output", "json", "doctor", "--timeout", "1"]);
    let doctor: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fw = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "host-firewall")
        .map(|c| c.to_string())
        .unwrap_or_default();
    assert!(
        fw.contains("are present in DOCKER-USER but below")
            && fw.contains(user_rule)
            && !fw.contains("iptables -I DOCKER-USER"),
        "doctor: {fw}"
    );

    let report = m.deploy(None);
    assert!(
        report["changes"].to_string().contains("back above"),
        "{report:#}"
    );
    assert!(
        ping_from(&node, "198.51.100.1"),
        "deploy did not let the replies through"
    );
    let chain = sh_out(&format!(
        "ip netns exec {} iptables-nft -S DOCKER-USER",
        m.ns
    ));
    let lines: Vec<&str> = chain.lines().collect();
    let id = m.state_id().unwrap();
    let mark = format!("\"edgenet:{id}\"");
    assert!(
        lines[1].contains(&mark) && lines[2].contains(&mark) && lines[3] == user_rule,
        "{chain}"
    );
    assert!(status(&m).0);
    // Nothing to move any more.
    assert_eq!(m.deploy(None)["changes"], json!([]));
    m.ok(&["remove"]);
    assert!(iptables_s(&m).contains(user_rule));
}

fn ip_forward(m: &Machine) -> String {
    sh_out(&format!(
        "ip netns exec {} sysctl -n net.ipv4.ip_forward",
        m.ns
    ))
    .trim()
    .to_string()
}

/// B19 D11: Docker started with forwarding off was not forwarding (it turns forwarding on
/// itself when it needs it): remove puts back 0. A Docker that starts after the deploy found
/// forwarding on, and remove leaves it on for Docker.
#[test]
fn remove_restores_forwarding_off_that_a_started_docker_had_but_not_for_a_later_docker() {
    let Some(m) = machine("q19fwd") else { return };
    if !has_iptables() {
        eprintln!("skipped: needs iptables-nft (scripts/deps.sh installs it)");
        return;
    }
    let _wan = uplink(&m, "wan");
    load_ruleset(&m, DOCKER);
    sh(&format!(
        "ip netns exec {} sysctl -qw net.ipv4.ip_forward=0",
        m.ns
    ));
    m.deploy(None);
    assert_eq!(ip_forward(&m), "1");
    let out = m.ok(&["remove"]);
    assert_eq!(ip_forward(&m), "0", "{out}");

    // Docker starts after the deploy: forwarding stays on for it.
    sh(&format!("ip netns exec {} nft flush ruleset", m.ns));
    m.deploy(None);
    assert_eq!(ip_forward(&m), "1");
    load_ruleset(&m, DOCKER);
    let out = m.ok(&["remove"]);
    assert_eq!(ip_forward(&m), "1", "{out}");
    assert!(out.contains("Docker"), "{out}");
}
