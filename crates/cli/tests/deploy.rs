//! `deploy`, `remove`, `status`, `node addr`, `node exec` against the real kernel, each test in
//! a machine namespace of its own. Assertions read the kernel (`ip -j`, `nft -j`), not edgenet's
//! report.

mod support;

use serde_json::{json, Value};
use support::*;

fn fixture(name: &str) -> Value {
    let p = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn node_ns(m: &Machine, kind: &str) -> String {
    let status: Value = serde_json::from_str(&m.ok(&["status", "--output", "json"])).unwrap();
    let suffix = if kind == "linux" { "-ledge" } else { "-wedge" };
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"].as_str().unwrap().ends_with(suffix))
        .unwrap()["netns"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Rules of our table as `nft` prints them, one string each.
fn nft_rules(m: &Machine) -> Vec<String> {
    sh_out(&format!("ip netns exec {} nft list ruleset", m.ns))
        .lines()
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn default_deploy_builds_what_the_plan_says() {
    let Some(m) = machine("default") else { return };
    let report = m.deploy(None);
    assert!(!report["changes"].as_array().unwrap().is_empty());

    let links = m.ip_json("-d link show");
    let br = link(&links, "aksedgesw-int").expect("bridge exists");
    assert_eq!(br["linkinfo"]["info_kind"], "bridge");
    assert_eq!(br["mtu"], 1500);
    assert!(br["flags"].as_array().unwrap().contains(&json!("UP")));
    assert!(br["ifalias"].as_str().unwrap().starts_with("edgenet:"));
    assert_eq!(
        ipv4_of(&m.ip_json("addr show"), "aksedgesw-int"),
        vec!["192.168.0.1/24"]
    );

    let ns = node_ns(&m, "linux");
    assert!(
        sh_out("ip netns list").lines().any(|l| l.starts_with(&ns)),
        "{ns} visible to ip netns"
    );
    let node_links = Machine::ip_json_in(&ns, "link show");
    let eth0 = link(&node_links, "eth0").expect("eth0 in the node");
    let mac = eth0["address"].as_str().unwrap().to_string();
    let first = u8::from_str_radix(&mac[..2], 16).unwrap();
    assert_eq!(first & 0x03, 0x02, "locally administered unicast: {mac}");
    assert_eq!(
        ipv4_of(&Machine::ip_json_in(&ns, "addr show"), "eth0"),
        vec!["192.168.0.2/24"]
    );
    let routes = Machine::ip_json_in(&ns, "route show");
    assert!(
        routes
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["dst"] == "default" && r["gateway"] == "192.168.0.1" && r["dev"] == "eth0"),
        "{routes}"
    );
    // The host end of the veth is a port of the bridge.
    let veth = links
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["master"] == "aksedgesw-int")
        .expect("a port on the bridge");
    assert_eq!(veth["linkinfo"]["info_kind"], "veth");

    let rules = nft_rules(&m);
    assert!(rules.iter().any(|r| r.starts_with("ip saddr 192.168.0.0/24 ip daddr != 192.168.0.0/24 masquerade")), "{rules:#?}");
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1");

    // node addr reads the live interface.
    let addr = m.ok(&["node", "addr"]);
    assert_eq!(addr.trim(), format!("192.168.0.2 {mac}"));
    // node exec runs with the node's resolv.conf (from the host's upstream servers) and network.
    let out = m.ok(&[
        "node",
        "exec",
        "--",
        "sh",
        "-c",
        "cat /etc/resolv.conf; ip -4 -o addr show dev eth0",
    ]);
    assert!(out.contains("nameserver 198.51.100.53"), "{out}");
    assert!(out.contains("192.168.0.2/24"), "{out}");
    let ping = m.edgenet(&["node", "exec", "--", "ping", "-c1", "-W2", "192.168.0.1"]);
    assert!(
        ping.status.success(),
        "node reaches the host: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
}

#[test]
fn second_deploy_changes_nothing_and_remove_leaves_zero_residue() {
    let Some(m) = machine("idem") else { return };
    let before = m.dump();
    let cfg = m.write_config("lw.json", &json!({"Machines": [{"LinuxNode": {}, "WindowsNode": {}}], "Init": {"ServiceIPRangeSize": 3}}));
    m.deploy(Some(&cfg));
    let first = m.dump();
    let again = m.deploy(Some(&cfg));
    assert_eq!(
        again["changes"],
        json!([]),
        "second deploy reports no change"
    );
    assert_eq!(
        m.dump(),
        first,
        "kernel and state identical after a second deploy"
    );
    let text = m.ok(&["deploy", "-c", &cfg]);
    assert!(text.contains("No changes"), "{text}");
    let wedge = node_ns(&m, "windows");
    assert_eq!(
        ipv4_of(&Machine::ip_json_in(&wedge, "addr show"), "eth0"),
        vec!["192.168.0.3/24"]
    );
    let status = m.edgenet(&["status"]);
    assert!(status.status.success());
    m.ok(&["remove"]);
    assert_eq!(m.dump(), before, "remove leaves the machine as it was");
    assert!(!m.state.exists());
    // Remove again: nothing to do, still success.
    assert!(m.ok(&["remove"]).contains("Nothing to remove"));
}

#[test]
fn static_mac_is_honoured_and_generated_mac_survives_a_lost_node() {
    let Some(m) = machine("mac") else { return };
    let cfg = m.write_config("mac.json", &json!({"Machines": [{"LinuxNode": {"MacAddress": "02-AA-BB-CC-DD-01"}, "WindowsNode": {}}]}));
    m.deploy(Some(&cfg));
    let ledge = node_ns(&m, "linux");
    let wedge = node_ns(&m, "windows");
    assert_eq!(
        link(&Machine::ip_json_in(&ledge, "link show"), "eth0").unwrap()["address"],
        "02:aa:bb:cc:dd:01"
    );
    let generated =
        link(&Machine::ip_json_in(&wedge, "link show"), "eth0").unwrap()["address"].clone();

    // A crashed or rebooted host: the node namespace is gone.
    sh(&format!("ip netns del {wedge}"));
    assert!(
        !m.edgenet(&["status"]).status.success(),
        "status reports the drift"
    );
    let report = m.deploy(Some(&cfg));
    assert!(!report["changes"].as_array().unwrap().is_empty());
    assert_eq!(
        link(&Machine::ip_json_in(&wedge, "link show"), "eth0").unwrap()["address"],
        generated,
        "same MAC after redeploy"
    );
}

#[test]
fn mtu_reaches_bridge_veth_and_node_and_changes_in_place() {
    let Some(m) = machine("mtu") else { return };
    let cfg = m.write_config(
        "mtu.json",
        &json!({"Machines": [{"NetworkConnection": {"Mtu": 1400}, "LinuxNode": {}}]}),
    );
    m.deploy(Some(&cfg));
    let links = m.ip_json("link show");
    assert_eq!(link(&links, "aksedgesw-int").unwrap()["mtu"], 1400);
    let veth = links
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["master"] == "aksedgesw-int")
        .unwrap();
    assert_eq!(veth["mtu"], 1400);
    let ns = node_ns(&m, "linux");
    assert_eq!(
        link(&Machine::ip_json_in(&ns, "link show"), "eth0").unwrap()["mtu"],
        1400
    );

    // Back to the default (named: without -c the recorded config is applied again):
    // everything at 1500, nothing recreated (same ifindex).
    let index = link(&Machine::ip_json_in(&ns, "link show"), "eth0").unwrap()["ifindex"].clone();
    m.deploy(Some(&m.default_config()));
    let links = m.ip_json("link show");
    assert_eq!(link(&links, "aksedgesw-int").unwrap()["mtu"], 1500);
    let node = Machine::ip_json_in(&ns, "link show");
    assert_eq!(link(&node, "eth0").unwrap()["mtu"], 1500);
    assert_eq!(
        link(&node, "eth0").unwrap()["ifindex"],
        index,
        "updated in place, not recreated"
    );
}

#[test]
fn dns_proxy_and_offline_change_in_place() {
    let Some(m) = machine("reconcile") else {
        return;
    };
    m.deploy(None);
    let ns = node_ns(&m, "linux");
    let links_before = Machine::ip_json_in(&ns, "link show");
    let cfg = m.write_config("r.json", &json!({
        "Network": {"DnsServers": ["198.51.100.7", "198.51.100.8"], "Proxy": {"Http": "http://198.51.100.9:3128", "Https": "http://198.51.100.9:3128", "No": "corp.example"}},
    }));
    let report = m.deploy(Some(&cfg));
    let changes = report["changes"].to_string();
    assert!(
        changes.contains("resolv.conf") && changes.contains("proxy.env"),
        "{changes}"
    );
    let out = m.ok(&[
        "node",
        "exec",
        "--",
        "sh",
        "-c",
        "grep nameserver /etc/resolv.conf; env | grep -i _proxy | sort",
    ]);
    let servers: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .collect();
    assert_eq!(
        servers,
        ["198.51.100.7", "198.51.100.8"],
        "exactly the configured servers"
    );
    assert!(
        out.contains("http_proxy=http://198.51.100.9:3128")
            && out.contains("HTTPS_PROXY=http://198.51.100.9:3128"),
        "{out}"
    );
    assert!(
        out.contains("no_proxy=corp.example,localhost,127.0.0.0/8,192.168.0.0/24,"),
        "{out}"
    );
    assert_eq!(
        Machine::ip_json_in(&ns, "link show"),
        links_before,
        "the node itself was not touched"
    );

    let offline = m.write_config("off.json", &json!({"Network": {"InternetDisabled": true}}));
    m.deploy(Some(&offline));
    let rules = nft_rules(&m);
    assert!(
        !rules.iter().any(|r| r.contains("masquerade")),
        "{rules:#?}"
    );
    assert_eq!(
        m.sysctl("net.ipv4.ip_forward"),
        "0",
        "forwarding back to what it was"
    );
    m.deploy(Some(&m.default_config()));
    assert!(nft_rules(&m).iter().any(|r| r.contains("masquerade")));
}

#[test]
fn a_foreign_bridge_with_our_name_is_refused_and_kept() {
    let Some(m) = machine("foreign") else { return };
    sh(&format!(
        "ip -n {} link add aksedgesw-int type bridge",
        m.ns
    ));
    sh(&format!("ip netns exec {} nft add table ip foreign", m.ns));
    sh(&format!("ip netns exec {} nft add chain ip foreign fw_test '{{ type filter hook forward priority 0; }}'", m.ns));
    let before = m.dump();
    // check sees the bridge too (issue 8), so deploy refuses before it touches anything.
    let out = m.edgenet(&["deploy"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("aksedgesw-int") && err.contains("edgenet did not create"),
        "{err}"
    );
    let mut after = m.dump();
    after["state_files"] = before["state_files"].clone();
    assert_eq!(
        after["links"], before["links"],
        "the foreign bridge is untouched"
    );
    assert_eq!(after["nft"], before["nft"]);
    assert_eq!(after["netns"], before["netns"]);
    m.ok(&["remove"]);
    assert!(
        link(&m.ip_json("link show"), "aksedgesw-int").is_some(),
        "remove never deletes what is not ours"
    );
}

#[test]
fn a_foreign_nft_table_is_never_modified() {
    let Some(m) = machine("nftforeign") else {
        return;
    };
    sh(&format!("ip netns exec {} nft add table ip filter", m.ns));
    sh(&format!("ip netns exec {} nft add chain ip filter fw_test '{{ type filter hook forward priority 0; }}'", m.ns));
    sh(&format!(
        "ip netns exec {} nft add rule ip filter fw_test counter accept",
        m.ns
    ));
    let table = || {
        json_of(&format!(
            "ip netns exec {} nft -j list table ip filter",
            m.ns
        ))
    };
    let before = table();
    m.deploy(None);
    m.ok(&["remove"]);
    assert_eq!(table(), before);
}

#[test]
fn a_table_made_under_the_deployments_name_without_rules_is_not_taken_over() {
    let Some(m) = machine("nftruleless") else {
        return;
    };
    m.deploy(None);
    let id = m.state_id().expect("deployed");
    // Ours deleted, theirs made under the name: a chain and a set edgenet never makes, no rule.
    let table = format!("edgenet_{id}");
    sh(&format!(
        "ip netns exec {} nft delete table ip {table}",
        m.ns
    ));
    sh(&format!("ip netns exec {} nft add table ip {table}", m.ns));
    sh(&format!(
        "ip netns exec {} nft add chain ip {table} myfilter '{{ type filter hook input priority 0; policy accept; }}'",
        m.ns
    ));
    sh(&format!(
        "ip netns exec {} nft add set ip {table} blocked '{{ type ipv4_addr; }}'",
        m.ns
    ));
    let theirs = || {
        json_of(&format!(
            "ip netns exec {} nft -j list table ip {table}",
            m.ns
        ))
    };
    let before = theirs();
    let out = m.edgenet(&["deploy"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "deploy took the table over: {err}");
    assert!(err.contains(&table), "{err}");
    assert_eq!(theirs(), before, "the table was changed");
    let out = m.edgenet(&["remove"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(theirs(), before, "remove deleted or changed their table");
    sh(&format!(
        "ip netns exec {} nft delete table ip {table}",
        m.ns
    ));
}

#[test]
fn bad_config_changes_nothing_on_the_host() {
    let Some(m) = machine("bad") else { return };
    let before = m.dump();
    let mut bad = fixture("aksee-single-machine.json");
    bad["Network"]["Ip4AddressPrefix"] = json!("10.42.0.0/24");
    let cfg = m.write_config("bad.json", &bad);
    let out = m.edgenet(&["deploy", "-c", &cfg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("overlaps-kubernetes-range"));
    assert_eq!(m.dump(), before);
    let out = m.edgenet(&["deploy", "-c", "/nonexistent.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(m.dump(), before);
}

#[test]
fn two_deploys_at_once_never_corrupt_the_state() {
    let Some(m) = machine("concurrent") else {
        return;
    };
    let spawn = || {
        std::process::Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", m.ns))
            .arg(env!("CARGO_BIN_EXE_edgenet"))
            .args(["deploy", "--wait", "20"])
            .env("EDGENET_STATE_DIR", &m.state)
            .env("EDGENET_RESOLV_CONF", &m.resolv)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success(), "{a:?} {b:?}");
    let outputs = format!(
        "{}{}",
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout)
    );
    assert_eq!(
        outputs.matches("No changes").count(),
        1,
        "one deployed, the other waited and found nothing to do: {outputs}"
    );
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(m.state.join("state.json")).unwrap())
            .unwrap();
    assert_eq!(state["phase"], "deployed");

    // With no time to wait, the second one fails clearly and changes nothing.
    let holder = std::process::Command::new("flock")
        .arg(m.state.join("lock"))
        .args(["sleep", "3"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = m.edgenet(&["deploy", "--wait", "0"]);
    let mut holder = holder;
    let _ = holder.wait();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lock"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A deploy that had to wait for the state directory's lock reads the host again once it has
/// it: the resolv.conf changed while it waited is the one its node gets.
#[test]
fn a_deploy_that_waited_for_the_lock_reads_the_host_again() {
    let Some(m) = machine("waited") else { return };
    m.deploy(None);
    let node_file = || {
        let nodes = std::fs::read_dir(m.state.join("nodes")).unwrap();
        let node = nodes.map(|e| e.unwrap().path()).next().expect("a node");
        std::fs::read_to_string(node.join("resolv.conf")).unwrap()
    };
    assert!(node_file().contains("198.51.100.53"), "{}", node_file());

    // Hold the state directory's lock (a directory flock, as edgenet's own).
    let held = std::fs::File::open(&m.state).unwrap();
    held.lock().unwrap();
    let child = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", m.ns))
        .arg(env!("CARGO_BIN_EXE_edgenet"))
        .args(["deploy", "--wait", "30"])
        .env("EDGENET_STATE_DIR", &m.state)
        .env("EDGENET_RESOLV_CONF", &m.resolv)
        .env_remove("EDGENET_FAILPOINT")
        .env_remove("EDGENET_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The deploy has read the host and waits once it holds the directory open (it opens it
    // only to take the lock); nsenter execs edgenet in the same process.
    let fds = format!("/proc/{}/fd", child.id());
    let waiting = || {
        std::fs::read_dir(&fds).into_iter().flatten().any(|e| {
            e.ok()
                .and_then(|e| std::fs::read_link(e.path()).ok())
                .is_some_and(|target| target == m.state)
        })
    };
    let start = std::time::Instant::now();
    while !waiting() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "the deploy never came to wait for the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::fs::write(&m.resolv, "nameserver 198.51.100.99\n").unwrap();
    held.unlock().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        node_file().contains("nameserver 198.51.100.99"),
        "{}",
        node_file()
    );
    assert!(!node_file().contains("198.51.100.53"), "{}", node_file());
    let inside = m.ok(&["node", "exec", "--", "cat", "/etc/resolv.conf"]);
    assert!(inside.contains("nameserver 198.51.100.99"), "{inside}");
}

/// A redeploy enters a node's namespace once when all is in place; every drift inside it (and
/// of its veth on the host side) is still seen and repaired, one at a time and all at once.
#[test]
fn a_redeploy_repairs_every_drift_inside_a_node_namespace() {
    let Some(m) = machine("inside") else { return };
    m.deploy(None);
    let node = node_ns(&m, "linux");
    let veth = {
        let links = m.ip_json("link show");
        links
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["master"] == "aksedgesw-int")
            .unwrap()["ifname"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let inside = || {
        let links = Machine::ip_json_in(&node, "link show");
        let eth0 = link(&links, "eth0").unwrap().clone();
        let lo = link(&links, "lo").unwrap().clone();
        let routes = Machine::ip_json_in(&node, "-4 route show default");
        (
            eth0["address"].clone(),
            eth0["mtu"].clone(),
            eth0["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
            lo["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
            ipv4_of(&Machine::ip_json_in(&node, "addr show"), "eth0"),
            routes[0]["gateway"].clone(),
            eth0["ifalias"].clone(),
        )
    };
    let good = inside();
    assert_eq!(good.4, vec!["192.168.0.2/24"]);
    assert_eq!(good.5, "192.168.0.1");
    let drifts = [
        format!("ip -n {node} link set eth0 down"),
        format!("ip -n {node} link set lo down"),
        format!("ip -n {node} link set eth0 mtu 1400"),
        format!("ip -n {node} link set eth0 address 02:f8:a0:00:00:01"),
        format!("ip -n {node} addr add 192.168.0.77/24 dev eth0"),
        format!("ip -n {node} addr del 192.168.0.2/24 dev eth0"),
        format!("ip -n {node} route del default"),
        format!("ip -n {node} link set eth0 alias other"),
        format!("ip netns exec {} ip link set {veth} nomaster", m.ns),
        format!("ip netns exec {} ip link set {veth} down", m.ns),
    ];
    for drift in &drifts {
        sh(drift);
        m.deploy(None);
        assert_eq!(inside(), good, "{drift}: repaired inside the node");
        let port = m.ip_json(&format!("link show {veth}"));
        assert_eq!(port[0]["master"], "aksedgesw-int", "{drift}");
        assert!(
            port[0]["flags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "UP"),
            "{drift}"
        );
        assert_eq!(
            m.deploy(None)["changes"],
            json!([]),
            "{drift}: then nothing"
        );
    }
    for drift in &drifts {
        // (Deleting the primary address takes the default route with it.)
        sh(&format!("{drift} || true"));
    }
    m.deploy(None);
    assert_eq!(inside(), good, "every drift at once repaired");
}
