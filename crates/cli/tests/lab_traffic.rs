//! Real traffic through a deployed machine in the lab: NAT egress seen by the HTTP server,
//! offline, inbound, DNS through the upstream dnsmasq, the proxy, and the lab command itself.
//! Everything lives in namespaces the lab and the deploys create; packets only go between them.

mod support;

use std::path::Path;
use std::process::Output;

use edgenet_lab::{Expectations, Lab, LabMachine, Row};
use serde_json::{json, Value};
use support::{edgenet_on, is_root, lab_name, test_lab, TestLab};

fn lab(tag: &str, config: Option<Value>) -> Option<TestLab> {
    lab_with(tag, config, |_| {})
}

/// `prepare` runs on the machine before deploy (e.g. to change its resolv.conf).
fn lab_with(tag: &str, config: Option<Value>, prepare: impl Fn(&LabMachine)) -> Option<TestLab> {
    test_lab(&lab_name(&format!("t{tag}")), config, prepare)
}

impl TestLab {
    fn lab(&self) -> &Lab {
        self.lab.as_ref().unwrap()
    }

    /// `edgenet node exec -- ARGS` on the machine.
    fn node_exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["node", "exec", "--"];
        all.extend(args);
        edgenet_on(&self.machine, &all, &[])
    }

    fn node_resolv_conf(&self) -> Vec<String> {
        let out = self.node_exec(&["cat", "/etc/resolv.conf"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("nameserver "))
            .map(String::from)
            .collect()
    }

    fn log(&self, service: &str) -> String {
        std::fs::read_to_string(self.lab().log(service)).unwrap_or_default()
    }

    fn matrix(&self, expect: &Expectations) -> edgenet_lab::Matrix {
        let status: Value = serde_json::from_slice(
            &edgenet_on(&self.machine, &["status", "--output", "json"], &[]).stdout,
        )
        .unwrap();
        let nodes: Vec<edgenet_lab::NodeInfo> = status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| edgenet_lab::NodeInfo {
                name: n["name"].as_str().unwrap().into(),
                machine: self.machine.name.clone(),
                netns: n["netns"].as_str().unwrap().into(),
                address: n["addresses"][0]
                    .as_str()
                    .unwrap()
                    .split('/')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap(),
                host: status["plan"]["switch"]["gateway"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap(),
                kind: if n["name"].as_str().unwrap().ends_with("-ledge") {
                    edgenet_core::plan::NodeKind::Linux
                } else {
                    edgenet_core::plan::NodeKind::Windows
                },
                resolv_conf: Some(
                    self.machine
                        .state_dir
                        .join("nodes")
                        .join(n["name"].as_str().unwrap())
                        .join("resolv.conf"),
                ),
                guest_agent: None,
            })
            .collect();
        self.lab().status(&nodes, expect).unwrap()
    }
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nat_egress_is_seen_from_the_machines_lan_address_and_inbound_is_closed() {
    let Some(t) = lab("nat", None) else { return };
    let page = ok(&t.node_exec(&[
        "curl",
        "-sS",
        "--noproxy",
        "*",
        "-m",
        "5",
        "http://203.0.113.80/",
    ]));
    assert_eq!(page, t.lab().http_page());
    let log = t.log("http");
    let machine_ip = t.machine.address.addr().to_string();
    assert!(
        log.lines()
            .any(|l| l.starts_with(&format!("{machine_ip}:"))),
        "the server saw {machine_ip}: {log}"
    );
    assert!(
        !log.contains("192.168.0.2"),
        "the node's own address never left the machine"
    );

    let m = t.matrix(&Expectations::NAT);
    assert!(m.all_ok(), "{}", m.render_table());
    let inbound: Vec<_> = m.row(Row::LanToNode).collect();
    assert!(
        !inbound.is_empty()
            && inbound
                .iter()
                .all(|c| c.actual == edgenet_lab::Reach::Unreachable)
    );
}

#[test]
fn offline_blocks_the_internet_but_not_the_host() {
    let Some(t) = lab("off", Some(json!({"Network": {"InternetDisabled": true}}))) else {
        return;
    };
    let out = t.node_exec(&[
        "curl",
        "-sS",
        "--noproxy",
        "*",
        "-m",
        "3",
        "http://203.0.113.80/",
    ]);
    assert!(!out.status.success(), "fetch must fail offline");
    ok(&t.node_exec(&["ping", "-c1", "-W2", "192.168.0.1"]));
    let m = t.matrix(&Expectations::OFFLINE);
    assert!(m.all_ok(), "{}", m.render_table());
}

#[test]
fn nodes_resolve_through_the_hosts_upstream_dns() {
    let Some(t) = lab("dns", None) else { return };
    assert_eq!(
        t.node_resolv_conf(),
        vec!["198.18.0.1"],
        "the machine's resolver, the LAN DNS"
    );
    let out = ok(&t.node_exec(&["getent", "hosts", "www.edgenet.test"]));
    assert!(out.starts_with("203.0.113.80"), "{out}");
    assert!(
        t.log("dns-upstream").contains("www.edgenet.test"),
        "the upstream dnsmasq answered"
    );
}

#[test]
fn explicit_dns_servers_are_exactly_what_the_node_gets() {
    let Some(t) = lab(
        "dnsx",
        Some(json!({"Network": {"DnsServers": ["203.0.113.53"]}})),
    ) else {
        return;
    };
    assert_eq!(t.node_resolv_conf(), vec!["203.0.113.53"]);
    let out = ok(&t.node_exec(&["getent", "hosts", "www.edgenet.test"]));
    assert!(out.starts_with("203.0.113.80"), "{out}");
}

#[test]
fn a_stub_resolver_on_the_host_yields_its_upstream_servers() {
    let stub = |m: &LabMachine| {
        std::fs::write(
            &m.resolv_conf,
            "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n",
        )
        .unwrap();
        std::fs::write(
            m.dir.join("upstream-resolv.conf"),
            "nameserver 198.18.0.1\n",
        )
        .unwrap();
    };
    let Some(t) = lab_with("stub", None, stub) else {
        return;
    };
    assert_eq!(
        t.node_resolv_conf(),
        vec!["198.18.0.1"],
        "never the loopback stub"
    );
    let out = ok(&t.node_exec(&["getent", "hosts", "www.edgenet.test"]));
    assert!(out.starts_with("203.0.113.80"), "{out}");
}

#[test]
fn the_proxy_carries_node_traffic_and_no_proxy_goes_direct() {
    let config = json!({"Network": {"Proxy": {"Http": "http://198.18.0.1:3128", "Https": "http://198.18.0.1:3128", "No": "203.0.113.80"}}});
    let Some(t) = lab("proxy", Some(config)) else {
        return;
    };
    let page = ok(&t.node_exec(&["curl", "-sS", "-m", "5", "http://www.edgenet.test/"]));
    assert_eq!(page, t.lab().http_page());
    let proxy_log = t.log("proxy");
    assert!(
        proxy_log.contains("www.edgenet.test"),
        "tinyproxy logged the request: {proxy_log}"
    );

    let http_before = t.log("http").lines().count();
    let proxied_before = proxy_log.lines().count();
    ok(&t.node_exec(&["curl", "-sS", "-m", "5", "http://203.0.113.80/"]));
    let http = t.log("http");
    let last = http
        .lines()
        .nth(http_before)
        .unwrap_or_default()
        .to_string();
    assert!(
        last.starts_with(&format!("{}:", t.machine.address.addr())),
        "direct, from the machine: {last}"
    );
    assert_eq!(
        t.log("proxy").lines().count(),
        proxied_before,
        "no_proxy bypassed the proxy"
    );
}

/// `edgenet lab …` as a user runs it, with a lab of the test's own; brought down on drop.
struct CliLab {
    dir: tempfile::TempDir,
    name: String,
}

impl CliLab {
    fn new(name: String) -> CliLab {
        CliLab {
            dir: tempfile::tempdir().unwrap(),
            name,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_edgenet"));
        cmd.args(args)
            .args([
                "--name",
                &self.name,
                "--lab-dir",
                self.dir.path().to_str().unwrap(),
            ])
            .env("NO_COLOR", "1")
            .env_remove("EDGENET_CONFIG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

impl CliLab {
    /// The deployment id of lab machine `m<index>`, from its state directory.
    fn deployment_id(&self, index: u8) -> String {
        let path = self
            .dir
            .path()
            .join(&self.name)
            .join(format!("machines/m{index}/state/state.json"));
        let state: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        state["deployment_id"].as_str().unwrap().to_string()
    }

    /// The named namespaces (`ip netns list`) of deployment `id`: `…-<id>`.
    fn namespaces_of(&self, id: &str) -> Vec<String> {
        support::sh_out("ip netns list")
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.ends_with(&format!("-{id}")))
            .map(str::to_string)
            .collect()
    }

    /// `lab down` succeeds and leaves no namespace of the lab, of these node namespace
    /// suffixes (`-<deployment id>`), and none of the lab's files. `remove_each`: with
    /// `--remove-each`, a real `edgenet remove` ran on every machine; without, none did (the
    /// deployments of netns nodes went with their machines' namespaces).
    fn down_leaves_nothing(&self, deployment_ids: &[String], remove_each: bool) {
        let mut args = vec!["lab", "down", "--output", "json"];
        if remove_each {
            args.push("--remove-each");
        }
        let down = self.run(&args);
        assert!(
            down.status.success(),
            "status {:?} stderr {} stdout {}",
            down.status,
            String::from_utf8_lossy(&down.stderr),
            String::from_utf8_lossy(&down.stdout)
        );
        let report: Value = serde_json::from_slice(&down.stdout).unwrap();
        assert_eq!(report["removed"], true, "{report}");
        let runs = if remove_each { deployment_ids.len() } else { 0 };
        assert_eq!(report["remove_runs"], runs, "{report}");
        let left = support::sh_out("ip netns list");
        assert!(!left.contains(&format!("enl-{}-", self.name)), "{left}");
        for id in deployment_ids {
            assert!(
                !left.contains(&format!("-{id}")),
                "node namespace of {id} left: {left}"
            );
        }
        let dir = self.dir.path();
        assert!(
            !dir.exists() || std::fs::read_dir(dir).unwrap().count() == 0,
            "nothing is left of the lab's files"
        );
    }
}

impl Drop for CliLab {
    fn drop(&mut self) {
        let _ = self.run(&["lab", "down"]);
    }
}

#[test]
fn lab_command_up_status_down_leaves_nothing() {
    if !is_root() {
        eprintln!("skipped: needs root to build a lab");
        return;
    }
    let lab = CliLab::new(format!("tcmd{}", std::process::id()));
    let run = |args: &[&str]| lab.run(args);
    let up = run(&["lab", "up", "--output", "json"]);
    let matrix: Value = serde_json::from_slice(&up.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&up.stderr)));
    assert!(up.status.success(), "{matrix:#}");
    assert!(matrix["cells"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["ok"] == true));
    let id = lab.deployment_id(1);
    // The machine the config does not name is named by the lab: its node's namespace
    // carries the lab's name.
    assert_eq!(
        lab.namespaces_of(&id),
        [format!("{}-m1-ledge-{id}", lab.name)]
    );
    let status = run(&["lab", "status"]);
    assert!(status.status.success());
    assert!(String::from_utf8_lossy(&status.stdout).contains("LAN→node"));
    lab.down_leaves_nothing(&[id], false);
}

/// `remove_each`: `lab down --remove-each` (a real `edgenet remove` on every machine).
fn scalable_lab(machines: u8, config: Option<&Path>, remove_each: bool) {
    if !is_root() {
        eprintln!("skipped: needs root to build a lab");
        return;
    }
    let lab = CliLab::new(format!("tsc{machines}{}", std::process::id()));
    let run = |args: &[&str]| lab.run(args);
    let count = machines.to_string();
    let mut up_args = vec!["lab", "up", "--output", "json"];
    let c;
    match config {
        Some(p) => {
            c = p.display().to_string();
            up_args.push(&c);
        }
        None => up_args.extend(["--scalable", &count]),
    }
    let up = run(&up_args);
    let matrix: Value = serde_json::from_slice(&up.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&up.stderr)));
    let cells = matrix["cells"].as_array().unwrap();
    let bad: Vec<&Value> = cells.iter().filter(|c| c["ok"] != true).collect();
    assert!(up.status.success() && bad.is_empty(), "{bad:#?}");
    let rows = |row: &str| cells.iter().filter(|c| c["row"] == row).count();
    let nodes = usize::from(machines);
    assert_eq!(
        rows("node-to-node"),
        nodes * (nodes - 1),
        "every pair of nodes across machines"
    );
    assert_eq!(rows("lan-to-node"), nodes);
    assert_eq!(rows("node-to-internet-by-name"), nodes);
    assert!(cells
        .iter()
        .filter(|c| c["row"] == "lan-to-node")
        .all(|c| c["actual"] == "reachable"));
    // A lab machine's adapter is settled (its link-local address not tentative), so each
    // deploy's switch took that address over (`nodad`: not made and checked a second time)
    // instead of making its own, and has it, usable at once.
    for i in 1..=machines {
        let ns = format!("enl-{}-m{i}", lab.name);
        let addrs: Value = serde_json::from_str(&support::sh_out(&format!(
            "ip -n {ns} -j -6 addr show dev aksedgesw-ext scope link"
        )))
        .unwrap();
        let local = addrs[0]["addr_info"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(local.len(), 1, "machine {i}: {local:?}");
        assert_eq!(local[0]["nodad"], true, "machine {i}: {local:?}");
        assert!(
            local[0].get("tentative").is_none(),
            "machine {i}: {local:?}"
        );
    }
    let ids: Vec<String> = (1..=machines).map(|i| lab.deployment_id(i)).collect();
    if config.is_none() {
        // `--scalable`: the lab names the machines of the config it writes, and every node
        // namespace carries the lab's name.
        for (i, id) in (1..=machines).zip(&ids) {
            assert_eq!(
                lab.namespaces_of(id),
                [format!("{}-m{i}-ledge-{id}", lab.name)]
            );
        }
    }
    lab.down_leaves_nothing(&ids, remove_each);
}

#[test]
fn a_scalable_lab_of_three_machines_from_the_example() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/lab-scalable-3.json");
    scalable_lab(3, Some(&example), true);
}

#[test]
fn a_scalable_lab_of_ten_machines() {
    scalable_lab(10, None, false);
}

/// `lab up -c FILE` and `EDGENET_CONFIG=FILE lab up` deploy that config, not the built-in one:
/// the lab machine's node has the address of the config's subnet.
#[test]
fn lab_up_deploys_the_config_of_c_and_edgenet_config() {
    if !is_root() {
        eprintln!("skipped: needs root to build a lab");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("site.json");
    let mut v: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures/corpus/v1.13-single-offline.json"),
        )
        .unwrap(),
    )
    .unwrap();
    v["Network"]["InternetDisabled"] = false.into();
    v["Network"]["Ip4AddressPrefix"] = "172.31.77.0/24".into();
    std::fs::write(&config, v.to_string()).unwrap();
    let c = config.to_str().unwrap();
    for (i, how) in ["-c", "EDGENET_CONFIG"].into_iter().enumerate() {
        let lab = CliLab::new(format!("h7c{i}{}", std::process::id()));
        let up = if how == "-c" {
            lab.run(&["lab", "up", "--no-status", "-c", c])
        } else {
            lab.run_env(&["lab", "up", "--no-status"], &[("EDGENET_CONFIG", c)])
        };
        assert!(
            up.status.success(),
            "{how}: {}",
            String::from_utf8_lossy(&up.stderr)
        );
        let id = lab.deployment_id(1);
        let addrs = support::sh_out(&format!(
            "ip -n {}-m1-ledge-{id} -j -4 addr show dev eth0",
            lab.name
        ));
        assert!(addrs.contains("172.31.77.2"), "{how}: {addrs}");
        // `-c`: every machine runs `edgenet remove`; EDGENET_CONFIG: none does.
        lab.down_leaves_nothing(&[id], how == "-c");
    }
}
