//! Defects of the black-box operator test B22 about what `deploy` reports (findings 8, 9, 12).
//! Namespaces are named `g22-…`.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{json, Value};
use support::*;

/// A second deployment in the machine's namespace with its own state directory; removed on
/// drop (declare it after the machine: it is dropped first).
struct Beside<'a> {
    m: &'a Machine,
    state: PathBuf,
}

impl Beside<'_> {
    fn edgenet_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let state = self.state.display().to_string();
        let mut all = vec![("EDGENET_STATE_DIR", state.as_str())];
        all.extend_from_slice(env);
        self.m.edgenet_env(args, &all)
    }
}

impl Drop for Beside<'_> {
    fn drop(&mut self) {
        let _ = self.edgenet_env(&["remove", "--wait", "5"], &[]);
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn internal(m: &Machine, name: &str, switch: &str, machine: &str) -> String {
    m.write_config(
        name,
        &json!({"Network": {"SkipDnsCheck": true}, "Edgenet": {"SwitchName": switch, "MachineName": machine}}),
    )
}

#[test]
fn deploy_reports_another_deployment_as_a_notice_in_its_report() {
    let Some(m) = machine_prefixed("g22", "beside") else {
        return;
    };
    let c1 = internal(&m, "c1.json", "g22sw1", "g22c1");
    let c2 = internal(&m, "c2.json", "g22sw2", "g22c2");
    let first = m.deploy(Some(&c1));
    let first_id = first["deployment_id"].as_str().unwrap().to_string();
    let other = Beside {
        m: &m,
        state: m.dir.path().join("state2"),
    };
    // EDGENET_LOG=error hid the log line the notice was: a finding is not a log record.
    let out = other.edgenet_env(
        &["deploy", "-c", &c2, "-o", "json"],
        &[("EDGENET_LOG", "error")],
    );
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let notices: Vec<&Value> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["code"] == "another-deployment")
        .collect();
    assert_eq!(notices.len(), 1, "{v}");
    assert_eq!(notices[0]["severity"], "notice");
    let message = notices[0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "another edgenet deployment (id {first_id}) beside this one: bridge g22sw1"
        )),
        "{message}"
    );
    // The bridge it names is really there, untouched, with its node link.
    let links = m.ip_json("-d link show master g22sw1");
    assert_eq!(links.as_array().unwrap().len(), 1, "{links}");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "notice[another-deployment] another edgenet deployment (id {first_id})"
        )),
        "{err}"
    );
    assert!(!err.contains("WARN"), "{err}");
    // Said once: the next deploy of that state directory does not repeat it.
    let again = other.edgenet_env(&["deploy", "-c", &c2, "-o", "json"], &[]);
    let v: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(
        !v["warnings"].to_string().contains("another-deployment"),
        "{v}"
    );
}

fn has_iptables_nft() -> bool {
    let found = Command::new("iptables-nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: needs iptables-nft");
    }
    found
}

/// B22 finding 9: a user's rule in DOCKER-USER that names the switch and drops its traffic,
/// inserted above edgenet's accepts after a deploy. edgenet leaves such a rule above its own
/// (a decision about the switch it does not override), so `check` says it is an error and
/// `deploy` refuses it with exit 1 before changing anything (it used to change the host, fail
/// with exit 3 and roll back, while check said "passes").
#[test]
fn a_docker_user_rule_naming_the_switch_is_refused_by_check_and_deploy_alike() {
    if !is_root() || !has_iptables_nft() {
        return;
    }
    let Some(m) = machine_prefixed("g22", "dockeruser") else {
        return;
    };
    let ns = m.ns.clone();
    sh(&format!(
        "ip netns exec {ns} sh -c 'iptables-nft -N DOCKER-USER && iptables-nft -P FORWARD DROP && \
         iptables-nft -A FORWARD -j DOCKER-USER && iptables-nft -A DOCKER-USER -j RETURN'"
    ));
    let c1 = internal(&m, "c1.json", "g22sw9", "g22c9");
    m.deploy(Some(&c1));
    sh(&format!(
        "ip netns exec {ns} iptables-nft -I DOCKER-USER -i g22sw9 ! -s 10.0.0.0/8 -j DROP"
    ));
    let rules = || sh_out(&format!("ip netns exec {ns} iptables-nft -S DOCKER-USER"));
    let snapshot = || {
        (
            m.nft_json(),
            m.ip_json("link"),
            m.ip_json("addr"),
            m.ip_json("route"),
        )
    };
    let (rules_before, before) = (rules(), snapshot());

    let check = m.edgenet(&["check", "-c", &c1, "-o", "json"]);
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    let v: Value = serde_json::from_slice(&check.stdout).unwrap();
    let errors: Vec<&Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "host-firewall-drops" && f["severity"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{v}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "below `-A DOCKER-USER ! -s 10.0.0.0/8 -i g22sw9 -j DROP` (rule 1 of the chain)"
        ),
        "{message}"
    );

    let deploy = m.edgenet(&["deploy", "-c", &c1]);
    assert_eq!(deploy.status.code(), Some(1), "{deploy:?}");
    let err = stderr(&deploy);
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(
        err.contains(message),
        "deploy and check say the same:\n{err}"
    );
    // Nothing changed: the chain (the user's rule still first), the ruleset, links, addresses.
    let rules_after = rules();
    assert_eq!(rules_before, rules_after);
    assert!(before == snapshot(), "deploy changed the namespace");
    assert_eq!(
        rules_after.lines().nth(1),
        Some("-A DOCKER-USER ! -s 10.0.0.0/8 -i g22sw9 -j DROP"),
        "{rules_after}"
    );

    // Deleted, deploy goes through and says nothing about it.
    sh(&format!(
        "ip netns exec {ns} iptables-nft -D DOCKER-USER -i g22sw9 ! -s 10.0.0.0/8 -j DROP"
    ));
    m.ok(&["deploy", "-c", &c1]);
}

/// A process of our own killed (by its pid) when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `pid` holds a `flock` of some file (its line in /proc/locks).
fn holds_a_flock(pid: u32) -> bool {
    std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.get(1) == Some(&"FLOCK") && w.get(4) == Some(&pid.to_string().as_str())
        })
}

/// B22 finding 12: `locked` names the holder of the namespace lock, as docs/json-output.md
/// says (`flock(1)` holds it here, on the namespace's own file, as edgenet does).
#[test]
fn locked_names_the_holder_of_the_namespace_lock() {
    let Some(m) = machine_prefixed("g22", "holder") else {
        return;
    };
    let holder = Killed(
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", m.ns))
            .args(["flock", "/proc/self/ns/net", "sleep", "120"])
            .spawn()
            .unwrap(),
    );
    let pid = holder.0.id();
    let start = std::time::Instant::now();
    while !holds_a_flock(pid) {
        assert!(start.elapsed().as_secs() < 30, "flock never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let c1 = internal(&m, "c1.json", "g22sw4", "g22c4");
    let out = m.edgenet(&["deploy", "-c", &c1, "--wait", "0", "-o", "json"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "locked", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(": flock (pid {pid}) holds its lock")),
        "{message}"
    );
    // Nothing was made.
    assert!(bridges(&m.ns).is_empty());
    assert!(!m.state.join("state.json").exists());
}

fn silent_and_refusing_servers(m: &Machine) {
    // 10.9.9.9 sits behind a veth whose peer has no address (queries vanish: silent);
    // 10.9.8.1 is this namespace's own address, where nothing listens on port 53 (the kernel
    // refuses at once: ICMP port unreachable).
    sh(&format!(
        "ip -n {ns} link add g22dns type veth peer name g22dnsp && ip -n {ns} link set g22dns up && \
         ip -n {ns} link set g22dnsp up && ip -n {ns} addr add 10.9.9.1/24 dev g22dns && \
         ip -n {ns} neigh add 10.9.9.9 lladdr 02:00:00:00:00:99 dev g22dns nud permanent && \
         ip -n {ns} addr add 10.9.8.1/24 dev g22dns",
        ns = m.ns
    ));
}

/// B22 finding 13: a server that refused the query at once is not said to be silent.
#[test]
fn a_refusing_dns_server_is_called_refusing_not_silent() {
    let Some(m) = machine_prefixed("g22", "dnsref") else {
        return;
    };
    silent_and_refusing_servers(&m);
    let c = m.write_config(
        "c.json",
        &json!({"Network": {"DnsServers": ["10.9.8.1", "10.9.9.9"]}, "Edgenet": {"SwitchName": "g22sw5", "MachineName": "g22c5"}}),
    );
    let out = m.edgenet(&["check", "-c", &c, "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = |i: usize| -> String {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == "dns-silent" && f["path"] == format!("Network.DnsServers[{i}]"))
            .unwrap_or_else(|| panic!("no dns-silent for server {i}: {v}"))["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let refused = message(0);
    assert!(
        refused.starts_with("DNS server 10.9.8.1 refuses a query from this host"),
        "{refused}"
    );
    assert!(!refused.contains("within 1 s"), "{refused}");
    let silent = message(1);
    assert!(
        silent.starts_with("DNS server 10.9.9.9 does not answer a query from this host within 1 s"),
        "{silent}"
    );
}

/// B22 finding 12 (related): the DNS check of a changing deploy (up to 1 s) runs after the
/// namespace and state locks are let go, and after the changes are printed.
#[test]
fn the_dns_check_of_a_deploy_runs_after_its_report_without_the_locks() {
    let Some(m) = machine_prefixed("g22", "dnsafter") else {
        return;
    };
    silent_and_refusing_servers(&m);
    let c = m.write_config(
        "c.json",
        &json!({"Network": {"DnsServers": ["10.9.9.9"]}, "Edgenet": {"SwitchName": "g22sw6", "MachineName": "g22c6"}}),
    );
    use std::io::{BufRead, BufReader};
    // stdout and stderr into one pipe, in the order the process wrote them.
    let (reader, writer) = std::io::pipe().unwrap();
    let mut child = Killed(
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", m.ns))
            .arg(env!("CARGO_BIN_EXE_edgenet"))
            .args(["deploy", "-c", &c])
            .env("EDGENET_STATE_DIR", &m.state)
            .env("EDGENET_RESOLV_CONF", &m.resolv)
            .env("NO_COLOR", "1")
            .env_remove("EDGENET_FAILPOINT")
            .stdout(writer.try_clone().unwrap())
            .stderr(writer)
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    let mut lines = Vec::new();
    let mut held_after_report = None;
    for line in BufReader::new(reader).lines() {
        let line = line.unwrap();
        if line.starts_with("Deployed ") {
            // Still in its DNS check (the silent server takes 1 s): no lock held by then.
            held_after_report = Some(holds_a_flock(pid));
        }
        lines.push(line);
    }
    assert!(child.0.wait().unwrap().success(), "{lines:#?}");
    let deployed = lines
        .iter()
        .position(|l| l.starts_with("Deployed "))
        .unwrap();
    let warned = lines
        .iter()
        .position(|l| l.starts_with("warning[dns-silent]"))
        .unwrap_or_else(|| panic!("no dns-silent warning: {lines:#?}"));
    assert!(deployed < warned, "the report comes first: {lines:#?}");
    assert_eq!(held_after_report, Some(false), "{lines:#?}");
}
