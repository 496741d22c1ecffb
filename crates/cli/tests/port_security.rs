//! Issue 8: a node cannot take another node's address or MAC (bridge-family rules on its
//! switch port), and an offline network is offline for every family, on internal and
//! external switches. Real frames: gratuitous ARP from busybox `arping -U`, pings with a
//! spoofed source address or MAC, IPv6 through a forwarding host.

mod support;

use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::*;

fn two_nodes(offline: bool) -> Value {
    json!({
        "DeploymentType": "SingleMachineCluster",
        "Network": {"DnsServers": ["198.51.100.7"], "InternetDisabled": offline},
        "Machines": [{"LinuxNode": {"ControlPlane": true}, "WindowsNode": {}}],
    })
}

fn in_ns(ns: &str, cmd: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", cmd])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn ping(ns: &str, args: &str) -> bool {
    in_ns(ns, &format!("ping -c1 -W1 {args}")) || in_ns(ns, &format!("ping -c3 -i0.2 -W1 {args}"))
}

fn nodes(m: &Machine) -> (String, String, String, String) {
    let out = m.edgenet(&["status", "--output", "json"]);
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = s["nodes"].as_array().unwrap();
    let get = |i: usize, k: &str| {
        n.get(i)
            .and_then(|n| n[k].as_str())
            .unwrap_or("")
            .to_string()
    };
    (
        get(0, "netns"),
        get(0, "mac"),
        get(1, "netns"),
        get(1, "mac"),
    )
}

fn host_neigh(m: &Machine, ip: &str) -> String {
    let v = m.ip_json(&format!("neigh show {ip} dev aksedgesw-int"));
    v[0]["lladdr"].as_str().unwrap_or("").to_string()
}

#[test]
fn a_node_cannot_claim_another_nodes_address_or_mac_but_its_own_traffic_flows() {
    let Some(m) = machine("h8bspoof") else { return };
    let cfg = m.write_config("c.json", &two_nodes(false));
    m.ok(&["deploy", "-c", &cfg]);
    // A second deploy writes nothing: the bridge table is listed back exactly as written.
    let again: Value =
        serde_json::from_str(&m.ok(&["deploy", "-c", &cfg, "--output", "json"])).unwrap();
    assert_eq!(again["changes"], json!([]), "{again:#}");
    let (linux, linux_mac, windows, windows_mac) = nodes(&m);

    // Legitimate traffic: node to node, node to host, host to node.
    assert!(ping(&linux, "192.168.0.3"));
    assert!(ping(&windows, "192.168.0.1"));
    assert!(ping(&m.ns, "192.168.0.2"));
    assert_eq!(host_neigh(&m, "192.168.0.2"), linux_mac);

    // Gratuitous ARP from the Windows node for the Linux node's address: the host keeps the
    // Linux node's MAC. (locktime 0: the kernel would otherwise ignore an ARP update within a
    // second of the last one, and the test would pass for the wrong reason.)
    sh(&format!(
        "ip netns exec {} sysctl -qw net.ipv4.neigh.aksedgesw-int.locktime=0 && \
         ip netns exec {windows} sysctl -qw net.ipv4.ip_nonlocal_bind=1",
        m.ns
    ));
    // (arping -U gets no answer, so its exit status says nothing.)
    in_ns(
        &windows,
        "busybox arping -U -c 3 -w 2 -I eth0 -s 192.168.0.2 192.168.0.2",
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        host_neigh(&m, "192.168.0.2"),
        linux_mac,
        "the host's ARP entry was stolen"
    );
    // The same announcement for its own address is accepted (the rule is not a blanket drop).
    sh(&format!(
        "ip -n {} neigh replace 192.168.0.3 lladdr 02:00:00:00:00:99 dev aksedgesw-int nud stale",
        m.ns
    ));
    in_ns(
        &windows,
        "busybox arping -U -c 3 -w 2 -I eth0 -s 192.168.0.3 192.168.0.3",
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(host_neigh(&m, "192.168.0.3"), windows_mac);

    // A spoofed IPv4 source: the Windows node takes 192.168.0.50 and pings the host from it.
    sh(&format!(
        "ip -n {windows} addr add 192.168.0.50/24 dev eth0"
    ));
    assert!(
        !ping(&windows, "-I 192.168.0.50 192.168.0.1"),
        "spoofed source got through"
    );
    assert!(ping(&windows, "-I 192.168.0.3 192.168.0.1"));
    sh(&format!(
        "ip -n {windows} addr del 192.168.0.50/24 dev eth0"
    ));

    // Another MAC (the Linux node's): nothing gets through until it takes its own back.
    sh(&format!(
        "ip -n {windows} link set eth0 address {linux_mac}"
    ));
    assert!(!ping(&windows, "192.168.0.1"), "a spoofed MAC got through");
    sh(&format!(
        "ip -n {windows} link set eth0 address {windows_mac}"
    ));
    assert!(ping(&windows, "192.168.0.1"));
    // The Linux node was never disturbed.
    assert!(ping(&linux, "192.168.0.1"));
}

#[test]
fn kube_vip_can_move_the_control_plane_vip_and_service_ips_to_a_node() {
    let Some(lan) = lan("h8bvip", 3) else { return };
    let cfg = lan.machines[0].write_config(
        "c.json",
        &json!({
            "DeploymentType": "ScalableCluster",
            "Init": {"ServiceIPRangeStart": "198.18.0.200", "ServiceIPRangeSize": 10},
            "Network": {"ControlPlaneEndpointIp": "198.18.0.100", "Ip4GatewayAddress": "198.18.0.1", "Ip4PrefixLength": 24, "DnsServers": ["198.18.0.1"]},
            "Machines": [
                {"MachineName": "m0", "NetworkConnection": {"AdapterName": "eth0"}, "LinuxNode": {"Ip4Address": "198.18.0.101", "ControlPlane": true}},
                {"MachineName": "m1", "NetworkConnection": {"AdapterName": "eth0"}, "LinuxNode": {"Ip4Address": "198.18.0.102", "ControlPlane": true}},
                {"MachineName": "m2", "NetworkConnection": {"AdapterName": "eth0"}, "LinuxNode": {"Ip4Address": "198.18.0.103", "ControlPlane": true}},
            ],
        }),
    );
    for (i, m) in lan.machines.iter().enumerate() {
        m.ok(&["deploy", "-c", &cfg, "--machine", &i.to_string()]);
        let again: Value = serde_json::from_str(&m.ok(&[
            "deploy",
            "-c",
            &cfg,
            "--machine",
            &i.to_string(),
            "--output",
            "json",
        ]))
        .unwrap();
        assert_eq!(again["changes"], json!([]), "{again:#}");
    }
    let node = |m: &Machine| nodes(m).0;
    let (n0, n1) = (node(&lan.machines[0]), node(&lan.machines[1]));
    let peer = lan.peer_ns();
    // kube-vip on m0 holds the VIP and a service IP: it adds them and announces them.
    for ip in ["198.18.0.100", "198.18.0.205"] {
        sh(&format!("ip -n {n0} addr add {ip}/32 dev eth0"));
        in_ns(
            &n0,
            &format!("busybox arping -U -c 2 -w 2 -I eth0 -s {ip} {ip}"),
        );
        assert!(ping(&peer, ip), "{ip} on m0 unreachable from the LAN");
    }
    // Failover: m1 takes both over, as kube-vip does.
    for ip in ["198.18.0.100", "198.18.0.205"] {
        sh(&format!(
            "ip -n {n0} addr del {ip}/32 dev eth0 && ip -n {n1} addr add {ip}/32 dev eth0"
        ));
        in_ns(
            &n1,
            &format!("busybox arping -U -c 2 -w 2 -I eth0 -s {ip} {ip}"),
        );
        assert!(ping(&peer, ip), "{ip} unreachable after moving to m1");
    }
    // But m1 cannot take m0's node address.
    sh(&format!("ip -n {peer} neigh flush all"));
    sh(&format!(
        "ip netns exec {peer} sysctl -qw net.ipv4.neigh.eth0.locktime=0"
    ));
    assert!(ping(&peer, "198.18.0.101"));
    let owner = |ip: &str| {
        json_of(&format!("ip -n {peer} -j neigh show {ip}"))[0]["lladdr"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let m0_mac = nodes(&lan.machines[0]).1;
    assert_eq!(owner("198.18.0.101"), m0_mac);
    sh(&format!(
        "ip netns exec {n1} sysctl -qw net.ipv4.ip_nonlocal_bind=1"
    ));
    in_ns(
        &n1,
        "busybox arping -U -c 3 -w 2 -I eth0 -s 198.18.0.101 198.18.0.101",
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        owner("198.18.0.101"),
        m0_mac,
        "m1's node stole m0's node address"
    );
}

/// The offline single-machine network on a host that forwards IPv6: before issue 8 a node
/// reached the "internet" over IPv6.
#[test]
fn offline_internal_switch_is_offline_for_ipv6_too() {
    let Some(m) = machine("h8boff6") else { return };
    let wan = run_name("h8b", "w6");
    let _ = Command::new("ip")
        .args(["netns", "del", &wan])
        .stderr(Stdio::null())
        .status();
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _guard = Del(wan.clone());
    sh(&format!(
        "ip netns add {wan} && ip -n {wan} link set lo up && \
         ip -n {wan} link add wan0 type veth peer name up0 netns {m} && \
         ip -n {wan} addr add 2001:db8:1::1/64 dev wan0 nodad && ip -n {wan} link set wan0 up && \
         ip -n {wan} route add 2001:db8:2::/64 via 2001:db8:1::2 && \
         ip -n {m} addr add 2001:db8:1::2/64 dev up0 nodad && ip -n {m} link set up0 up && \
         ip netns exec {m} sysctl -qw net.ipv6.conf.all.forwarding=1",
        m = m.ns
    ));
    let cfg = m.write_config("c.json", &two_nodes(true));
    m.ok(&["deploy", "-c", &cfg]);
    let (linux, _, windows, _) = nodes(&m);
    // The host routes IPv6 onto the switch (as with radvd or a static config).
    sh(&format!(
        "ip -n {m} addr add 2001:db8:2::1/64 dev aksedgesw-int nodad && \
         ip -n {linux} addr add 2001:db8:2::2/64 dev eth0 nodad && \
         ip -n {linux} route add default via 2001:db8:2::1 dev eth0",
        m = m.ns
    ));
    assert!(
        !ping(&linux, "-6 2001:db8:1::1"),
        "an offline node reached the outside over IPv6"
    );
    assert!(
        !ping(&linux, "-6 2001:db8:2::1"),
        "an offline node reached the host over IPv6"
    );
    // IPv4 on the switch still works; IPv4 off it does not.
    assert!(ping(&linux, "192.168.0.3") && ping(&windows, "192.168.0.1"));
}

#[test]
fn offline_scalable_cluster_reaches_the_lan_only() {
    let Some(lan) = lan("h8boffx", 1) else { return };
    let m = &lan.machines[0];
    // Beyond the gateway: an "internet" address the gateway itself answers for.
    sh(&format!(
        "ip -n {} addr add 203.0.113.80/32 dev lo",
        lan.lan_ns()
    ));
    let cfg = m.write_config(
        "c.json",
        &json!({
            "DeploymentType": "ScalableCluster",
            "Network": {"ControlPlaneEndpointIp": "198.18.0.100", "Ip4GatewayAddress": "198.18.0.1", "Ip4PrefixLength": 24, "DnsServers": ["198.18.0.1"], "InternetDisabled": true},
            "Machines": [{"MachineName": "m0", "NetworkConnection": {"AdapterName": "eth0"}, "LinuxNode": {"Ip4Address": "198.18.0.101", "ControlPlane": true}}],
        }),
    );
    m.ok(&["deploy", "-c", &cfg]);
    let node = nodes(m).0;
    assert!(ping(&node, "198.18.0.254"), "the LAN");
    assert!(ping(&node, "198.18.0.1"), "the gateway, on the LAN");
    assert!(ping(&node, &Lan::machine_address(0)), "the host");
    assert!(
        !ping(&node, "203.0.113.80"),
        "an offline node reached past the gateway"
    );
    // IPv6 (link-local, on the LAN itself) does not leave the node either.
    let peer_ll = json_of(&format!(
        "ip -n {} -6 -j addr show dev eth0 scope link",
        lan.peer_ns()
    ))[0]["addr_info"][0]["local"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!ping(&node, &format!("-6 {peer_ll}%eth0")));
    // The host itself is not filtered: it still reaches past the gateway.
    assert!(ping(&m.ns, "203.0.113.80"));
    let again: Value =
        serde_json::from_str(&m.ok(&["deploy", "-c", &cfg, "--output", "json"])).unwrap();
    assert_eq!(again["changes"], json!([]), "{again:#}");
    let s: Value = serde_json::from_str(&m.ok(&["status", "--output", "json"])).unwrap();
    assert_eq!(s["drift"], json!([]), "{s:#}");
    m.ok(&["remove"]);
}

/// Sends (`send`) or collects (`recv`) the frames of the anti-spoofing retest with AF_PACKET:
/// each carries a marker, the receiver prints the markers it saw from the sender's MAC.
const FRAMES_PY: &str = r#"
import socket, struct, sys, time
mode, ifname, mac = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3].replace(":", ""))
def arp(op, ip, marker):
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + mac + socket.inet_aton(ip) + b"\xff" * 6 + socket.inet_aton(ip) + marker
bcast = b"\xff" * 6
frames = [
    # Control: a plain ARP announcement of the node's own address gets through.
    bcast + mac + b"\x08\x06" + arp(2, sys.argv[4], b"F8B-CTRL"),
    # 802.1Q-tagged ARP claiming another node's address.
    bcast + mac + b"\x81\x00" + struct.pack("!H", 5) + b"\x08\x06" + arp(2, sys.argv[5], b"F8B-VLAN"),
    # RARP.
    bcast + mac + b"\x80\x35" + arp(4, sys.argv[5], b"F8B-RARP"),
]
snap = b"\xaa\xaa\x03\x00\x00\x00\x08\x06" + arp(2, sys.argv[5], b"F8B-SNAP")
frames.append(bcast + mac + struct.pack("!H", len(snap)) + snap)
# An IPv6 router advertisement from fe80::1.
ra = struct.pack("!BBHI", 134, 0, 0, 0) + b"F8B-IPV6"
ip6 = struct.pack("!IHBB", 6 << 28, len(ra), 58, 255) + socket.inet_pton(socket.AF_INET6, "fe80::1") + socket.inet_pton(socket.AF_INET6, "ff02::1")
frames.append(b"\x33\x33\x00\x00\x00\x01" + mac + b"\x86\xdd" + ip6 + ra)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((ifname, 0))
if mode == "send":
    for _ in range(3):
        for f in frames:
            s.send(f)
        time.sleep(0.1)
else:
    seen = set()
    s.settimeout(0.2)
    end = time.time() + float(sys.argv[6])
    while time.time() < end:
        try:
            data = s.recv(4096)
        except socket.timeout:
            continue
        if data[6:12] == mac:
            for m in (b"F8B-CTRL", b"F8B-VLAN", b"F8B-RARP", b"F8B-SNAP", b"F8B-IPV6"):
                if m in data:
                    seen.add(m.decode())
    print(" ".join(sorted(seen)))
"#;

#[test]
fn tagged_arp_rarp_snap_and_ipv6_router_advertisements_do_not_leave_a_node_port() {
    let Some(m) = machine("f8bframes") else {
        return;
    };
    let cfg = m.write_config("c.json", &two_nodes(false));
    m.ok(&["deploy", "-c", &cfg]);
    let (linux, _, windows, windows_mac) = nodes(&m);
    let script = m.dir.path().join("frames.py");
    std::fs::write(&script, FRAMES_PY).unwrap();
    let script = script.display().to_string();
    // The Linux node's port is the peer: broadcast and multicast frames are flooded to it.
    let recv = Command::new("ip")
        .args(["netns", "exec", &linux, "python3", &script, "recv", "eth0"])
        .args([&windows_mac, "192.168.0.3", "192.168.0.2", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    sh(&format!(
        "ip netns exec {windows} python3 {script} send eth0 {windows_mac} 192.168.0.3 192.168.0.2"
    ));
    let out = recv.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        seen.contains("F8B-CTRL"),
        "the control frame did not arrive: {seen:?}"
    );
    for blocked in ["F8B-VLAN", "F8B-RARP", "F8B-SNAP", "F8B-IPV6"] {
        assert!(
            !seen.contains(blocked),
            "{blocked} left the node port: {seen:?}"
        );
    }
    // IPv4 between the nodes still flows.
    assert!(ping(&linux, "192.168.0.3"));
}

/// The same port rules towards a node: what a LAN host floods reaches a node of an external
/// switch only as IPv4 and ARP (the node could answer nothing else), while the host itself
/// still talks IPv6 on the LAN.
#[test]
fn only_ipv4_and_arp_from_the_lan_reach_a_node_port() {
    let Some(lan) = lan("f8binward", 1) else {
        return;
    };
    let m = &lan.machines[0];
    let cfg = m.write_config("c.json", &lan_config());
    m.ok(&["deploy", "-c", &cfg]);
    let node = nodes(m).0;
    let peer = lan.peer_ns();
    let peer_mac = json_of(&format!("ip -n {peer} -j link show dev eth0"))[0]["address"]
        .as_str()
        .unwrap()
        .to_string();
    let script = m.dir.path().join("frames.py");
    std::fs::write(&script, FRAMES_PY).unwrap();
    let script = script.display().to_string();
    let recv = Command::new("ip")
        .args(["netns", "exec", &node, "python3", &script, "recv", "eth0"])
        .args([&peer_mac, "198.18.0.254", "198.18.0.101", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    sh(&format!(
        "ip netns exec {peer} python3 {script} send eth0 {peer_mac} 198.18.0.254 198.18.0.101"
    ));
    let out = recv.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        seen.contains("F8B-CTRL"),
        "the control frame did not arrive: {seen:?}"
    );
    for blocked in ["F8B-VLAN", "F8B-RARP", "F8B-SNAP", "F8B-IPV6"] {
        assert!(
            !seen.contains(blocked),
            "{blocked} reached the node port: {seen:?}"
        );
    }
    // The host (the switch's own interface) still has IPv6 on the LAN, and the node IPv4.
    let peer_ll = json_of(&format!("ip -n {peer} -6 -j addr show dev eth0 scope link"))[0]
        ["addr_info"][0]["local"]
        .as_str()
        .unwrap()
        .to_string();
    // (The switch's link-local address may still be in duplicate address detection.)
    assert!(in_ns(
        &m.ns,
        &format!(
            "for i in $(seq 25); do ping -6 -c1 -W1 {peer_ll}%aksedgesw-ext && exit 0; sleep 0.2; done; exit 1"
        )
    ));
    assert!(ping(&node, "198.18.0.254"));
    m.ok(&["remove"]);
}

/// A frame that enters the switch from the LAN (on a big LAN, every machine's broadcasts and
/// multicast, flooded to every switch) leaves the port checks at their first rule, as the
/// kernel lists it; a redeploy finds that table as it wants it (nothing to change), and the
/// port checks still hold (the tests above).
#[test]
fn frames_not_from_a_node_port_leave_the_port_checks_at_the_first_rule() {
    let Some(lan) = lan("l18pre", 1) else {
        return;
    };
    let m = &lan.machines[0];
    let cfg = m.write_config("c.json", &lan_config());
    m.ok(&["deploy", "-c", &cfg]);
    let ruleset = m.nft_json();
    let rules: Vec<&Value> = ruleset["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("rule"))
        .filter(|r| r["family"] == "bridge" && r["chain"] == "prerouting")
        .collect();
    let port = rules
        .iter()
        .find_map(|r| {
            r["expr"][0]["match"]
                .as_object()
                .filter(|m| m["op"] == "==")
                .and_then(|m| m["right"].as_str())
        })
        .unwrap_or_else(|| panic!("no port rule: {rules:#?}"));
    assert_eq!(
        rules[0]["expr"],
        json!([
            {"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": port}},
            {"accept": null}
        ]),
        "{rules:#?}"
    );
    let again: Value =
        serde_json::from_slice(&m.edgenet(&["deploy", "-c", &cfg, "-o", "json"]).stdout).unwrap();
    assert_eq!(again["changes"], json!([]), "{again:#}");
    m.ok(&["remove"]);
}

/// A node's link carries no IPv6 link-local address (`addrgenmode none` before it comes up):
/// its switch port passes only IPv4 and ARP, so the address's duplicate address detection,
/// router solicitations and MLD reports would only be dropped there. IPv6 itself stays on in
/// the node (its loopback keeps `::1`).
#[test]
fn a_node_link_has_no_ipv6_link_local_address() {
    let Some(m) = machine("h8bnoll") else { return };
    let cfg = m.write_config("c.json", &two_nodes(false));
    m.ok(&["deploy", "-c", &cfg]);
    let (linux, _, windows, _) = nodes(&m);
    for node in [&linux, &windows] {
        let link = json_of(&format!("ip -n {node} -j -d link show dev eth0"));
        assert_eq!(link[0]["inet6_addr_gen_mode"], "none", "{node}: {link}");
        assert!(
            link[0]["flags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "UP"),
            "{node}: {link}"
        );
        let v6 = json_of(&format!("ip -n {node} -j -6 addr show dev eth0"));
        let addrs: Vec<&Value> = v6
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|l| l["addr_info"].as_array().unwrap())
            .collect();
        assert!(
            addrs.is_empty(),
            "{node}: eth0 has IPv6 addresses {addrs:?}"
        );
        let lo = json_of(&format!("ip -n {node} -j -6 addr show dev lo"));
        assert_eq!(lo[0]["addr_info"][0]["local"], "::1", "{node}: {lo}");
        // IPv4 works as before.
        assert!(ping(node, "192.168.0.1"));
    }
}
