//! Drift an operator makes by hand that `status` must name as what it is and `deploy` must
//! repair: the host end of a node's veth deleted (the node's link to the switch, not the node,
//! is gone).

mod support;

use serde_json::Value;
use support::*;

/// The gateway of the node's default route, as the kernel has it.
fn node_gateway(netns: &str) -> String {
    Machine::ip_json_in(netns, "route show default")[0]["gateway"]
        .as_str()
        .expect("a default route via a gateway")
        .to_string()
}

/// The Linux node's namespace and the host end of its veth.
fn linux_node(m: &Machine) -> (String, String) {
    let id = m.state_id().unwrap();
    (m.linux_node_namespace(), format!("en{id}l"))
}

#[test]
fn a_deleted_host_veth_is_the_nodes_link_gone_and_deploy_makes_it_again() {
    let Some(m) = machine("x15hv") else { return };
    m.deploy(None);
    let (netns, veth) = linux_node(&m);
    assert!(link(&m.ip_json("link show"), &veth).is_some());
    sh(&format!("ip -n {} link del {veth}", m.ns));
    // The kernel took the node's eth0 with it; the namespace stays.
    assert!(link(&Machine::ip_json_in(&netns, "link show"), "eth0").is_none());

    let (code, st) = m.status();
    assert_eq!(code, Some(1), "{st:#}");
    let drift: Vec<&str> = st["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        drift
            .iter()
            .any(|d| d.contains("link to the switch is gone") && d.contains(&veth)),
        "{drift:#?}"
    );
    assert!(
        !drift.iter().any(|d| d.contains("is missing")),
        "{drift:#?}"
    );

    let changes = m.deploy(None)["changes"].to_string();
    assert!(
        changes.contains(&format!("created veth {veth}")),
        "{changes}"
    );
    let host = link(&m.ip_json("link show"), &veth).cloned().unwrap();
    assert_eq!(host["master"], "aksedgesw-int");
    let addrs = Machine::ip_json_in(&netns, "addr show");
    assert!(!ipv4_of(&addrs, "eth0").is_empty(), "{addrs:#}");
    let (code, st) = m.status();
    assert_eq!(code, Some(0), "{st:#}");
}

/// The kernel's route for the host's address on the external bridge
/// (`198.18.0.0/24 dev aksedgesw-ext proto kernel scope link src 198.18.0.11`), deleted by
/// hand: the kernel never makes it again while the address stays, and the host has lost its
/// LAN. Status and doctor say so; deploy adds it back as the kernel makes it.
#[test]
fn a_deleted_connected_route_of_the_external_bridge_is_drift_and_deploy_adds_it_back() {
    let Some(lan) = lan("x15cr", 1) else { return };
    let m = &lan.machines[0];
    let cfg = m.write_config("c.json", &site_config("eth0"));
    m.deploy(Some(&cfg));
    let bridge = "aksedgesw-ext";
    let connected = || {
        m.ip_json(&format!("route show dev {bridge}"))
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["dst"] == "198.18.0.0/24")
            .cloned()
    };
    let was = connected().expect("the kernel's route after deploy");
    assert_eq!(was["protocol"], "kernel", "{was}");
    assert_eq!(was["prefsrc"], Lan::machine_address(0), "{was}");
    sh(&format!(
        "ip -n {} route del 198.18.0.0/24 dev {bridge}",
        m.ns
    ));
    assert!(connected().is_none());

    let out = m.edgenet(&["status", "--output", "json"]);
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{st:#}");
    let drift = st["drift"].to_string();
    assert!(
        drift.contains(&format!(
            "bridge {bridge} lacks the kernel's route to 198.18.0.0/24 for its address {}",
            Lan::machine_address(0)
        )),
        "{drift}"
    );
    let out = m.edgenet(&["--output", "json", "doctor", "--timeout", "1"]);
    let doctor: Value = serde_json::from_slice(&out.stdout).unwrap();
    let uplink = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "uplink")
        .cloned()
        .unwrap_or_else(|| panic!("no uplink check: {doctor:#}"));
    assert_eq!(uplink["status"], "FAIL", "{uplink}");
    assert!(uplink.to_string().contains("198.18.0.0/24"), "{uplink}");

    let changes = m.deploy(Some(&cfg))["changes"].to_string();
    assert!(
        changes.contains("added back the route 198.18.0.0/24"),
        "{changes}"
    );
    let now = connected().expect("the route back");
    assert_eq!(now, was, "as the kernel made it");
    // The LAN answers again.
    sh(&format!(
        "ip netns exec {} ping -c1 -W2 198.18.0.254 >/dev/null",
        m.ns
    ));
    assert_eq!(m.deploy(Some(&cfg))["changes"], serde_json::json!([]));
    let out = m.edgenet(&["status"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A node's file edited (resolv.conf) or deleted (hosts) by hand: status names each as drift
/// and deploy writes them again. A route added through the node's eth0 (`proto boot`, as
/// `ip route add` and flannel's host-gw backend make them) is a notice that deploy leaves
/// alone; a route a routing agent made (`proto bird`) is not named at all.
#[test]
fn hand_edited_node_files_are_drift_and_stray_node_routes_a_notice() {
    let Some(m) = machine("x15nf") else { return };
    m.deploy(None);
    let (netns, _) = linux_node(&m);
    let dir = std::fs::read_dir(m.state.join("nodes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.display().to_string().ends_with("-ledge"))
        .expect("the Linux node's files");
    let (resolv, hosts) = (dir.join("resolv.conf"), dir.join("hosts"));
    let (resolv_was, hosts_was) = (
        std::fs::read_to_string(&resolv).unwrap(),
        std::fs::read_to_string(&hosts).unwrap(),
    );
    let routes = || Machine::ip_json_in(&netns, "route show");
    let has = |dst: &str| routes().as_array().unwrap().iter().any(|r| r["dst"] == dst);
    std::fs::write(&resolv, format!("{resolv_was}nameserver 203.0.113.9\n")).unwrap();
    std::fs::remove_file(&hosts).unwrap();
    sh(&format!(
        "ip -n {netns} route add 10.9.0.0/16 via 192.168.0.1 dev eth0 && \
         ip -n {netns} route add 10.42.0.0/16 via 192.168.0.1 dev eth0 proto bird"
    ));

    let (code, st) = m.status();
    assert_eq!(code, Some(1), "{st:#}");
    let drift: Vec<String> = st["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    let said = |words: &[&str]| drift.iter().any(|d| words.iter().all(|w| d.contains(w)));
    assert!(
        said(&[&resolv.display().to_string(), "differs"]),
        "{drift:#?}"
    );
    assert!(
        said(&[&hosts.display().to_string(), "missing"]),
        "{drift:#?}"
    );
    assert!(!said(&["10.9.0.0/16"]), "{drift:#?}");
    assert_eq!(drift.len(), 2, "{drift:#?}");
    let notices = |st: &serde_json::Value| st["notices"].to_string();
    let stray = "route 10.9.0.0/16 via 192.168.0.1 dev eth0";
    assert!(notices(&st).contains(stray), "{st:#}");
    assert!(!notices(&st).contains("10.42.0.0/16"), "{st:#}");

    let changes = m.deploy(None)["changes"].to_string();
    assert!(changes.contains("resolv.conf"), "{changes}");
    assert!(changes.contains("hosts"), "{changes}");
    assert!(!changes.contains("10.9.0.0/16"), "{changes}");
    assert_eq!(std::fs::read_to_string(&resolv).unwrap(), resolv_was);
    assert_eq!(std::fs::read_to_string(&hosts).unwrap(), hosts_was);
    assert!(has("10.9.0.0/16"), "{:#}", routes());
    assert!(has("10.42.0.0/16"), "{:#}", routes());
    assert!(has("default"), "{:#}", routes());
    assert_eq!(m.deploy(None)["changes"], serde_json::json!([]));
    let (code, st) = m.status();
    assert_eq!(code, Some(0), "{st:#}");
    assert!(notices(&st).contains(stray), "{st:#}");
}

/// The node's name and namespace as status shows them (the Linux node: the first).
fn linux_node_name(st: &Value, netns: &str) -> String {
    st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["netns"] == netns)
        .and_then(|n| n["name"].as_str())
        .unwrap_or_else(|| panic!("no node in {netns}: {st:#}"))
        .to_string()
}

/// The kernel's route for the node's address inside its namespace (`192.168.0.0/24 dev eth0
/// proto kernel scope link src 192.168.0.x`), deleted by hand: the kernel never makes it again
/// while the address stays, and the node reaches neither its gateway nor the other nodes
/// (its default route still shows). Status names the node and the route; deploy adds it back
/// as the kernel makes it, and the gateway answers again.
#[test]
fn a_deleted_connected_route_of_a_node_is_drift_and_deploy_adds_it_back() {
    let Some(m) = machine("x16nc") else { return };
    m.deploy(None);
    let (netns, _) = linux_node(&m);
    let connected = || {
        Machine::ip_json_in(&netns, "route show dev eth0")
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["protocol"] == "kernel")
            .cloned()
    };
    let was = connected().expect("the kernel's route after deploy");
    assert_eq!(was["scope"], "link", "{was}");
    let (dst, src) = (
        was["dst"].as_str().unwrap().to_string(),
        was["prefsrc"].as_str().unwrap().to_string(),
    );
    let gateway = node_gateway(&netns);
    sh(&format!("ip -n {netns} route del {dst} dev eth0"));
    assert!(connected().is_none());

    let (code, st) = m.status();
    assert_eq!(code, Some(1), "{st:#}");
    let name = linux_node_name(&st, &netns);
    let drift: Vec<&str> = st["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    let route = format!("{dst} dev eth0 proto kernel scope link src {src}");
    assert!(
        drift.iter().any(|d| d.starts_with(&format!("node {name}:"))
            && d.contains(&route)
            && d.contains("run edgenet deploy")),
        "{drift:#?}"
    );
    assert_eq!(drift.len(), 1, "{drift:#?}");

    let changes = m.deploy(None)["changes"].to_string();
    assert!(
        changes.contains(&format!("added back {name}'s route {route}")),
        "{changes}"
    );
    assert_eq!(
        connected().expect("the route back"),
        was,
        "as the kernel made it"
    );
    sh(&format!(
        "ip netns exec {netns} ping -c1 -W2 {gateway} >/dev/null"
    ));
    assert_eq!(m.deploy(None)["changes"], serde_json::json!([]));
    let (code, st) = m.status();
    assert_eq!(code, Some(0), "{st:#}");
}

/// The node's address put back by hand with `noprefixroute` (the kernel then makes no route
/// for it): the node reaches nothing on its network all the same, so it is the same drift,
/// and deploy adds the route (it used to fail on every run: "Nexthop has invalid gateway").
#[test]
fn a_node_address_without_its_route_by_noprefixroute_is_drift_and_deploy_repairs_it() {
    let Some(m) = machine("x16np") else { return };
    m.deploy(None);
    let (netns, _) = linux_node(&m);
    let address = ipv4_of(&Machine::ip_json_in(&netns, "addr show dev eth0"), "eth0")
        .pop()
        .expect("the node's address");
    let gateway = node_gateway(&netns);
    sh(&format!(
        "ip -n {netns} addr del {address} dev eth0 && \
         ip -n {netns} addr add {address} dev eth0 noprefixroute && \
         ip -n {netns} route replace default via {gateway} dev eth0 onlink"
    ));
    let kernel_routes = || {
        Machine::ip_json_in(&netns, "route show dev eth0")
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["dst"] != "default")
            .count()
    };
    assert_eq!(kernel_routes(), 0, "no route for the address");

    let (code, st) = m.status();
    assert_eq!(code, Some(1), "{st:#}");
    assert!(
        st["drift"].to_string().contains("proto kernel scope link"),
        "{st:#}"
    );
    m.ok(&["deploy"]);
    assert_eq!(kernel_routes(), 1, "the route for the address is back");
    sh(&format!(
        "ip netns exec {netns} ping -c1 -W2 {gateway} >/dev/null"
    ));
    let (code, st) = m.status();
    assert_eq!(code, Some(0), "{st:#}");
}

/// A second default route in a node (another metric) and a route of another routing table
/// (`table 100`, used by an `ip rule`) change where the node's packets go without deploy
/// knowing: status names each as a notice (exit 0), with its type when it is not an ordinary
/// route (`blackhole default`, `prohibit …`) and the `ip route del` that deletes it; deploy
/// leaves them.
#[test]
fn a_second_default_route_or_another_table_in_a_node_is_a_notice_deploy_leaves() {
    let Some(m) = machine("x16nt") else { return };
    m.deploy(None);
    let (netns, _) = linux_node(&m);
    let gateway = node_gateway(&netns);
    sh(&format!(
        "ip -n {netns} route add default via {gateway} dev eth0 metric 100 && \
         ip -n {netns} route add default via {gateway} dev eth0 table 100 && \
         ip -n {netns} route add 10.7.0.0/16 via {gateway} dev eth0 table 100 proto bird && \
         ip -n {netns} route add blackhole default metric 200 && \
         ip -n {netns} route add prohibit 10.6.0.0/16 table 100"
    ));
    let second = format!("default via {gateway} dev eth0 metric 100");
    let tabled = format!("default via {gateway} dev eth0 table 100");
    let blackhole = "blackhole default metric 200".to_string();
    let prohibit = "prohibit 10.6.0.0/16 table 100".to_string();

    let (code, st) = m.status();
    assert_eq!(code, Some(0), "{st:#}");
    let name = linux_node_name(&st, &netns);
    let notices: Vec<String> = st["notices"]
        .as_array()
        .map(|a| a.iter().map(|n| n.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    let said = |route: &str| {
        notices.iter().any(|n| {
            n.starts_with(&format!("node {name}:"))
                && n.contains(route)
                && n.contains(&format!("ip -n {netns} route del {route}"))
        })
    };
    assert!(said(&second), "{notices:#?}");
    assert!(said(&tabled), "{notices:#?}");
    assert!(said(&blackhole), "{notices:#?}");
    assert!(said(&prohibit), "{notices:#?}");
    // A routing agent's (proto bird) is theirs: not named; deploy's own default neither.
    assert!(
        !notices.iter().any(|n| n.contains("10.7.0.0/16")),
        "{notices:#?}"
    );
    assert_eq!(notices.len(), 4, "{notices:#?}");

    assert_eq!(m.deploy(None)["changes"], serde_json::json!([]));
    let defaults = Machine::ip_json_in(&netns, "route show default");
    assert_eq!(defaults.as_array().unwrap().len(), 3, "{defaults:#}");
    let table = Machine::ip_json_in(&netns, "route show table 100");
    assert_eq!(table.as_array().unwrap().len(), 3, "{table:#}");
    let (code, st) = m.status();
    assert_eq!(code, Some(0), "{st:#}");

    // The typed routes' commands delete exactly them.
    for route in [&blackhole, &prohibit] {
        sh(&format!("ip -n {netns} route del {route}"));
    }
    let defaults = Machine::ip_json_in(&netns, "route show default");
    assert_eq!(defaults.as_array().unwrap().len(), 2, "{defaults:#}");
    assert!(!defaults.to_string().contains("blackhole"), "{defaults:#}");
    let table = Machine::ip_json_in(&netns, "route show table 100");
    assert_eq!(table.as_array().unwrap().len(), 2, "{table:#}");
    assert!(!table.to_string().contains("prohibit"), "{table:#}");
}

/// The `check` entry of a doctor run for the Linux node's default route.
fn doctor_default_route(m: &Machine) -> Value {
    let out = m.edgenet(&["--output", "json", "doctor", "--timeout", "1"]);
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    all["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "default-route")
        .cloned()
        .expect("a default-route check")
}

/// Dropping routes made by hand in a node's main table (B17a 4): one the kernel picks for
/// the gateway (`prohibit GW/32`) or a pair of halves (`blackhole 0.0.0.0/1` + `unreachable
/// 128.0.0.0/1`) cut the node off: drift naming each with its type and the `ip route del`
/// that deletes it, a doctor FAIL, and deploy deletes them. Narrower ones (a range blocked on
/// purpose) are notices deploy leaves.
#[test]
fn a_dropping_route_that_cuts_a_node_off_is_drift_deploy_deletes_a_narrower_one_a_notice() {
    let Some(m) = machine("o18cut") else { return };
    m.deploy(None);
    let (netns, _) = linux_node(&m);
    let gateway = node_gateway(&netns);
    sh(&format!(
        "ip -n {netns} route add prohibit {gateway}/32 && \
         ip -n {netns} route add blackhole 0.0.0.0/1 && \
         ip -n {netns} route add unreachable 128.0.0.0/1 && \
         ip -n {netns} route add prohibit 10.9.0.0/16 && \
         ip -n {netns} route add blackhole 10.8.0.0/16 proto static"
    ));
    let cutting = [
        format!("prohibit {gateway}/32"),
        "blackhole 0.0.0.0/1".to_string(),
        "unreachable 128.0.0.0/1".to_string(),
    ];
    let narrow = ["prohibit 10.9.0.0/16", "blackhole 10.8.0.0/16"];
    let (code, st) = m.status();
    assert_eq!(code, Some(1), "{st:#}");
    let name = linux_node_name(&st, &netns);
    let list = |key: &str| -> Vec<String> {
        st[key]
            .as_array()
            .map(|a| a.iter().map(|n| n.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let (drift, notices) = (list("drift"), list("notices"));
    let names = |l: &[String], route: &str| {
        l.iter().any(|n| {
            n.starts_with(&format!("node {name}: route {route} "))
                && n.contains(&format!("`ip -n {netns} route del {route}`"))
        })
    };
    for route in &cutting {
        assert!(names(&drift, route), "{route}: {drift:#?}");
    }
    assert_eq!(drift.len(), 3, "{drift:#?}");
    for route in narrow {
        assert!(names(&notices, route), "{route}: {notices:#?}");
    }
    assert_eq!(notices.len(), 2, "{notices:#?}");
    let check = doctor_default_route(&m);
    assert_eq!(check["status"], "FAIL", "{check:#}");
    // One cause, one FAIL: the gateway's silence is that route's.
    let out = m.edgenet(&["--output", "json", "doctor", "--timeout", "1"]);
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ping = all["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "gateway")
        .unwrap();
    assert_eq!(ping["status"], "SKIP", "{ping:#}");
    assert!(
        check["detail"]
            .to_string()
            .contains(&format!("prohibit {gateway}/32")),
        "{check:#}"
    );

    let report = m.deploy(None);
    let changes = report["changes"].to_string();
    for route in &cutting {
        assert!(changes.contains(route.as_str()), "{changes}");
    }
    // What the kernel has: the cutting routes gone, the narrow ones kept.
    let typed = |kind: &str| -> Vec<String> {
        Machine::ip_json_in(&netns, &format!("route show type {kind}"))
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["dst"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(typed("prohibit"), ["10.9.0.0/16"]);
    assert_eq!(typed("blackhole"), ["10.8.0.0/16"]);
    assert!(typed("unreachable").is_empty());
    let picked = Machine::ip_json_in(&netns, "route get 203.0.113.80");
    assert_eq!(
        picked[0]["gateway"].as_str(),
        Some(gateway.as_str()),
        "{picked:#}"
    );
    let (code, st) = m.status();
    assert_eq!(code, Some(0), "{st:#}");
    assert_eq!(doctor_default_route(&m)["status"], "PASS");
}

/// Deploy's default route replaced by a `blackhole default` (same destination and metric;
/// B17a 9): status says deploy replaces it (drift: the default route is gone), not that deploy
/// leaves it; deploy does replace it.
#[test]
fn a_blackhole_default_in_place_of_deploys_is_said_to_be_replaced_and_is() {
    let Some(m) = machine("o18bhd") else { return };
    m.deploy(None);
    let (netns, _) = linux_node(&m);
    let gateway = node_gateway(&netns);
    sh(&format!(
        "ip -n {netns} route del default && ip -n {netns} route add blackhole default"
    ));
    let (code, st) = m.status();
    assert_eq!(code, Some(1), "{st:#}");
    let notices: Vec<String> = st["notices"]
        .as_array()
        .map(|a| a.iter().map(|n| n.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    let about: Vec<&String> = notices
        .iter()
        .filter(|n| n.contains("blackhole default"))
        .collect();
    assert_eq!(about.len(), 1, "{notices:#?}");
    assert!(about[0].contains("deploy replaces it"), "{}", about[0]);
    assert!(!about[0].contains("deploy leaves it"), "{}", about[0]);
    m.deploy(None);
    let defaults = Machine::ip_json_in(&netns, "route show default");
    assert_eq!(defaults.as_array().unwrap().len(), 1, "{defaults:#}");
    assert_eq!(
        defaults[0]["gateway"].as_str(),
        Some(gateway.as_str()),
        "{defaults:#}"
    );
}

/// A bridge under the switch's name made by someone else (as after a reboot; B17a 9): status
/// says it is not this deployment's bridge, as deploy and remove treat it, not that "our"
/// bridge is down or lacks its address.
#[test]
fn a_foreign_bridge_under_the_switchs_name_is_said_foreign_not_our_bridge_down() {
    let Some(m) = machine("o18fbr") else { return };
    m.deploy(None);
    let (_, st) = m.status();
    let bridge = st["plan"]["switch"]["name"].as_str().unwrap().to_string();
    sh(&format!(
        "ip -n {0} link del {bridge} && ip -n {0} link add {bridge} type bridge",
        m.ns
    ));
    let (code, st) = m.status();
    assert_eq!(code, Some(1), "{st:#}");
    let drift: Vec<String> = st["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .filter(|d| d.contains(&bridge))
        .collect();
    assert!(
        drift
            .iter()
            .any(|d| d.contains("not this deployment's bridge")
                && d.contains(&format!("`ip link del {bridge}`"))),
        "{drift:#?}"
    );
    assert!(
        !drift
            .iter()
            .any(|d| d.contains("is down") || d.contains("lacks its address")),
        "{drift:#?}"
    );
    // As deploy and remove treat it: left (remove's `left`), never deleted.
    let out = m.edgenet(&["remove", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.to_string().contains(&bridge), "{v:#}");
    let links = m.ip_json("link show");
    assert!(link(&links, &bridge).is_some(), "the foreign bridge stays");
    sh(&format!("ip -n {} link del {bridge}", m.ns));
}

/// A node's file replaced by a link to an endless device or by a FIFO: status and deploy used
/// to read it for ever (or hang); now it is drift naming the file, and deploy writes the file
/// again in its place (the link's target is not written through).
#[test]
fn a_node_file_that_is_a_fifo_or_a_link_to_a_device_is_drift_and_deploy_replaces_it() {
    let Some(m) = machine("x16nff") else { return };
    m.deploy(None);
    let dir = std::fs::read_dir(m.state.join("nodes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.display().to_string().ends_with("-ledge"))
        .expect("the Linux node's files");
    let (resolv, hosts) = (dir.join("resolv.conf"), dir.join("hosts"));
    let (resolv_was, hosts_was) = (
        std::fs::read_to_string(&resolv).unwrap(),
        std::fs::read_to_string(&hosts).unwrap(),
    );
    std::fs::remove_file(&resolv).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &resolv).unwrap();
    std::fs::remove_file(&hosts).unwrap();
    sh(&format!("mkfifo {}", hosts.display()));
    // Bounded: the defect was a read that never ends.
    let bounded = |args: &[&str]| {
        std::process::Command::new("timeout")
            .arg("60")
            .arg("nsenter")
            .arg(format!("--net=/run/netns/{}", m.ns))
            .arg(env!("CARGO_BIN_EXE_edgenet"))
            .args(args)
            .env("EDGENET_STATE_DIR", &m.state)
            .env("EDGENET_RESOLV_CONF", &m.resolv)
            .env_remove("EDGENET_CONFIG")
            .output()
            .unwrap()
    };
    let out = bounded(&["status", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    for file in [&resolv, &hosts] {
        assert!(
            st["drift"].as_array().unwrap().iter().any(|d| {
                let d = d.as_str().unwrap();
                d.contains(&file.display().to_string()) && d.contains("not a file deploy wrote")
            }),
            "{st:#}"
        );
    }
    let out = bounded(&["deploy"]);
    assert!(out.status.success(), "{out:?}");
    for (file, was) in [(&resolv, &resolv_was), (&hosts, &hosts_was)] {
        let meta = std::fs::symlink_metadata(file).unwrap();
        assert!(meta.file_type().is_file(), "{}", file.display());
        assert_eq!(&std::fs::read_to_string(file).unwrap(), was);
    }
    assert_eq!(bounded(&["status"]).status.code(), Some(0));
}

/// The internal switch's address put back by hand with `noprefixroute`: the host has no route
/// to its nodes, as if the route had been deleted; that is drift, and deploy adds the route.
#[test]
fn the_switch_address_without_its_route_by_noprefixroute_is_drift_and_deploy_repairs_it() {
    let Some(m) = machine("x16bnp") else { return };
    m.deploy(None);
    let (netns, _) = linux_node(&m);
    let bridge = "aksedgesw-int";
    let address = ipv4_of(&m.ip_json(&format!("addr show dev {bridge}")), bridge)
        .pop()
        .expect("the switch's address");
    sh(&format!(
        "ip -n {ns} addr del {address} dev {bridge} && ip -n {ns} addr add {address} dev {bridge} noprefixroute",
        ns = m.ns
    ));
    let routes_on_bridge = || {
        m.ip_json(&format!("route show dev {bridge}"))
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(routes_on_bridge(), 0);
    let (code, st) = m.status();
    assert_eq!(code, Some(1), "{st:#}");
    assert!(
        st["drift"].to_string().contains("lacks the kernel's route"),
        "{st:#}"
    );
    m.ok(&["deploy"]);
    assert_eq!(routes_on_bridge(), 1, "the route is back");
    let gateway = address.split('/').next().unwrap().to_string();
    sh(&format!(
        "ip netns exec {netns} ping -c1 -W2 {gateway} >/dev/null"
    ));
    assert_eq!(m.status().0, Some(0));
}

/// `ip_forward` already back at the value edgenet found (a rollback that put it back but could
/// not record it on a full disk, or by hand; B17a 9): remove says so, not "changed since
/// edgenet set it to 1" as if someone else had changed it.
#[test]
fn forwarding_already_back_to_its_old_value_is_said_so_not_blamed_on_someone() {
    let Some(m) = machine("o18fwd") else { return };
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "0");
    m.deploy(None);
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1");
    sh(&format!(
        "ip netns exec {} sh -c 'echo 0 > /proc/sys/net/ipv4/ip_forward'",
        m.ns
    ));
    let report: Value = serde_json::from_str(&m.ok(&["remove", "-o", "json"])).unwrap();
    let left = report["left"].to_string();
    assert!(
        left.contains("net.ipv4.ip_forward at 0: already back to the value edgenet found"),
        "{report:#}"
    );
    assert!(!left.contains("changed since"), "{report:#}");
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "0");
}
