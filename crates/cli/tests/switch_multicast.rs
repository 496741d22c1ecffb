//! The switches edgenet makes do no IGMP/MLD snooping (README, "The switch and multicast"):
//! the switch joins no all-snoopers group (so the machine sends no reports for them onto its
//! LAN), and multicast from the LAN reaches the nodes whether or not the switch saw a report
//! for the group — here after a querier on the LAN made itself known, when a snooping switch
//! sends a group it has no report for only towards the querier. Real frames from a LAN host.

mod support;

use std::process::{Command, Stdio};

use support::*;

/// `query <ifname> <src mac> <src ip>`: an IGMPv2 general query from the LAN's querier, then
/// (past its maximum response time) a UDP datagram to 239.1.2.3, a group no node joined; five
/// times.
/// `recv <ifname> <src mac> <seconds>`: prints MCAST-DATA if that datagram arrived.
const MCAST_PY: &str = r#"
import socket, struct, sys, time
mode, ifname, mac = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3].replace(":", ""))
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return (~s) & 0xffff
def ipv4(src, dst, proto, payload, options=b""):
    ihl = 5 + len(options) // 4
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + len(payload), 0, 0, 1, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst)) + options
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((ifname, 0))
if mode == "query":
    src = sys.argv[4]
    # Maximum response time 0.1 s: a snooping switch trusts the querier once that has passed.
    igmp = struct.pack("!BBH4s", 0x11, 1, 0, b"\0\0\0\0")
    igmp = igmp[:2] + struct.pack("!H", csum(igmp)) + igmp[4:]
    query = b"\x01\x00\x5e\x00\x00\x01" + mac + b"\x08\x00" + ipv4(src, "224.0.0.1", 2, igmp, b"\x94\x04\x00\x00")
    body = b"MCAST-DATA"
    udp = struct.pack("!HHHH", 40000, 40000, 8 + len(body), 0) + body
    data = b"\x01\x00\x5e\x01\x02\x03" + mac + b"\x08\x00" + ipv4(src, "239.1.2.3", 17, udp)
    for _ in range(5):
        s.send(query)
        time.sleep(0.3)
        s.send(data)
        time.sleep(0.1)
else:
    s.settimeout(0.2)
    end = time.time() + float(sys.argv[4])
    seen = False
    while time.time() < end:
        try:
            f = s.recv(4096)
        except socket.timeout:
            continue
        if f[6:12] == mac and b"MCAST-DATA" in f:
            seen = True
    print("MCAST-DATA" if seen else "nothing")
"#;

#[test]
fn the_switch_does_not_snoop_multicast_and_floods_it_to_its_nodes() {
    let Some(lan) = lan("l18mc", 1) else {
        return;
    };
    let m = &lan.machines[0];
    let cfg = m.write_config("c.json", &lan_config());
    m.ok(&["deploy", "-c", &cfg]);
    // The kernel's view of the switch.
    let info = &m.ip_json("-d link show aksedgesw-ext")[0]["linkinfo"]["info_data"];
    assert_eq!(info["mcast_snooping"], 0, "{info:#}");
    // No all-snoopers group joined on the switch (224.0.0.106 is 6A0000E0 in /proc/net/igmp,
    // ff02::6a in /proc/net/igmp6), so no report for them leaves the machine.
    let igmp = sh_out(&format!("ip netns exec {} cat /proc/net/igmp", m.ns));
    assert!(!igmp.contains("6A0000E0"), "{igmp}");
    let igmp6 = sh_out(&format!("ip netns exec {} cat /proc/net/igmp6", m.ns));
    assert!(
        !igmp6.contains("ff02000000000000000000000000006a"),
        "{igmp6}"
    );

    // The test LAN's own bridge floods (it is the fixture, not what is tested).
    sh(&format!(
        "ip -n {} link set lan0 type bridge mcast_snooping 0",
        lan.lan_ns()
    ));
    let node = m.linux_node_namespace();
    let peer = lan.peer_ns();
    let peer_mac = json_of(&format!("ip -n {peer} -j link show dev eth0"))[0]["address"]
        .as_str()
        .unwrap()
        .to_string();
    let script = m.dir.path().join("mcast.py");
    std::fs::write(&script, MCAST_PY).unwrap();
    let script = script.display().to_string();
    let recv = Command::new("ip")
        .args(["netns", "exec", &node, "python3", &script, "recv", "eth0"])
        .args([&peer_mac, "3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    sh(&format!(
        "ip netns exec {peer} python3 {script} query eth0 {peer_mac} 198.18.0.254"
    ));
    let out = recv.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        seen, "MCAST-DATA",
        "the LAN's multicast did not reach the node once a querier was on the LAN"
    );
    m.ok(&["remove"]);
}
