//! The nftables firewall against the real kernel, only ever inside network namespaces these tests
//! create (`enf-<name>-<pid>`, deleted on drop, even after a panic). The machine's own ruleset is
//! never touched and no packet leaves the test namespaces. Needs root; skipped otherwise.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};

use edgenet_core::config::Protocol;
use edgenet_deploy::firewall::{
    nft_rules, ApplyOutcome, FirewallDriver, FirewallError, FirewallMode, FirewallPlan,
    NftablesDriver, PortForwardRule,
};
use serde_json::Value;

const TABLE: &str = "edgenet_0a1b2c";
const BRIDGE: &str = "aksedgesw-int";

/// A throwaway network namespace.
struct Netns {
    name: String,
}

impl Netns {
    /// `None` (after saying why) when the test cannot run here.
    fn new(tag: &str) -> Option<Netns> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: needs root to create network namespaces");
            return None;
        }
        for tool in ["ip", "nft"] {
            if Command::new(tool).arg("-V").output().is_err() {
                eprintln!("SKIP: `{tool}` is not installed");
                return None;
            }
        }
        let name = format!("enf-{tag}-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip netns add {name} failed");
        let ns = Netns { name };
        ns.sh("ip link set lo up");
        Some(ns)
    }

    fn cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs a shell script inside; panics with its stderr on failure.
    fn sh(&self, script: &str) -> String {
        let out = self.cmd("sh").args(["-ec", script]).output().unwrap();
        assert!(
            out.status.success(),
            "in {}: {script}\n{}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `nft -j ARGS` inside, parsed.
    fn nft_json(&self, args: &str) -> Value {
        serde_json::from_str(&self.sh(&format!("nft -j {args}"))).unwrap()
    }

    /// Runs `f` on a fresh thread switched into this namespace, as edgenet's callers do.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = File::open(&path).unwrap();
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn fw_plan(mode: FirewallMode, subnet: &str, forwards: Vec<PortForwardRule>) -> FirewallPlan {
    FirewallPlan {
        table: TABLE.into(),
        bridge: BRIDGE.into(),
        subnet: subnet.parse().unwrap(),
        host: host_of(subnet),
        mode,
        port_forwards: forwards,
    }
}

/// The host's address on the switch: the subnet's first.
fn host_of(subnet: &str) -> Ipv4Addr {
    let net: ipnet::Ipv4Net = subnet.parse().unwrap();
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

fn tcp_forward(host_port: u16, node: &str, node_port: u16) -> PortForwardRule {
    PortForwardRule {
        protocol: Protocol::Tcp,
        host_port,
        node_address: node.parse::<Ipv4Addr>().unwrap(),
        node_port,
    }
}

/// All rules of `table`/`chain` in a `nft -j list ruleset` listing.
fn rules<'a>(ruleset: &'a Value, table: &'a str, chain: &'a str) -> Vec<&'a Value> {
    ruleset["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| item.get("rule"))
        .filter(|r| r["table"] == table && r["chain"] == chain)
        .collect()
}

fn tables(ruleset: &Value) -> Vec<(String, String)> {
    ruleset["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| item.get("table"))
        .map(|t| {
            (
                t["family"].as_str().unwrap().into(),
                t["name"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn has_stmt(rule: &Value, stmt: &str) -> bool {
    rule["expr"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e.get(stmt).is_some())
}

/// `ip saddr|daddr == prefix` in a listed rule.
fn matches_prefix(rule: &Value, field: &str, op: &str, addr: &str, len: u64) -> bool {
    rule["expr"].as_array().unwrap().iter().any(|e| {
        let m = &e["match"];
        m["op"] == op
            && m["left"]["payload"]["field"] == field
            && m["right"]["prefix"]["addr"] == addr
            && m["right"]["prefix"]["len"] == len
    })
}

#[test]
fn nat_table_masquerades_and_guards_the_switch() {
    let Some(ns) = Netns::new("nat") else { return };
    let driver = NftablesDriver::default();
    let plan = fw_plan(
        FirewallMode::Nat,
        "192.168.77.0/24",
        vec![tcp_forward(8080, "192.168.77.2", 80)],
    );
    ns.run(|| driver.validate()).unwrap();
    assert_eq!(
        ns.run(|| driver.apply(&plan)).unwrap(),
        ApplyOutcome::Replaced
    );

    let ruleset = ns.nft_json("list ruleset");
    assert_eq!(tables(&ruleset), [("ip".to_string(), TABLE.to_string())]);

    let post = rules(&ruleset, TABLE, "postrouting");
    let text = |r: &Value| r.to_string();
    let masq: Vec<_> = post.iter().filter(|r| has_stmt(r, "masquerade")).collect();
    // The hairpin masquerade (node-to-node DNATed flows, with a port forward), then outbound.
    assert_eq!(masq.len(), 2, "{post:#?}");
    assert!(matches_prefix(masq[0], "saddr", "==", "192.168.77.0", 24));
    assert!(matches_prefix(masq[0], "daddr", "==", "192.168.77.0", 24));
    assert!(text(masq[0]).contains("dnat"), "{}", text(masq[0]));
    assert!(matches_prefix(masq[1], "saddr", "==", "192.168.77.0", 24));
    assert!(matches_prefix(masq[1], "daddr", "!=", "192.168.77.0", 24));
    // The multicast/broadcast returns come before the masquerade.
    assert!(has_stmt(post[0], "return") && has_stmt(post[1], "return"));

    let fwd = rules(&ruleset, TABLE, "forward");
    assert!(fwd
        .iter()
        .any(|r| text(r).contains("established") && has_stmt(r, "accept")));
    assert_eq!(fwd.iter().filter(|r| has_stmt(r, "drop")).count(), 2);
    assert!(
        fwd.iter().all(|r| text(r).contains(BRIDGE)),
        "every forward rule names the switch"
    );
    let pre = rules(&ruleset, TABLE, "prerouting");
    assert!(pre.len() == 1 && has_stmt(pre[0], "dnat"), "{pre:#?}");
    // Frames between nodes skip conntrack: unicast between two switch addresses, not to the
    // host's, before conntrack's priority.
    let raw = rules(&ruleset, TABLE, "intra_switch");
    assert_eq!(raw.len(), 1, "{raw:#?}");
    assert!(has_stmt(raw[0], "notrack"));
    assert!(matches_prefix(raw[0], "saddr", "==", "192.168.77.0", 24));
    assert!(matches_prefix(raw[0], "daddr", "==", "192.168.77.0", 24));
    let exprs = raw[0]["expr"].as_array().unwrap();
    for part in [
        serde_json::json!({"match": {"op": "!=", "left": {"payload": {"protocol": "ip",
            "field": "daddr"}}, "right": "192.168.77.1"}}),
        serde_json::json!({"match": {"op": "==", "left": {"meta": {"key": "pkttype"}},
            "right": "host"}}),
    ] {
        assert!(exprs.contains(&part), "{part} in {}", text(raw[0]));
    }
    let chain = ruleset["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.get("chain"))
        .find(|c| c["name"] == "intra_switch")
        .unwrap();
    assert_eq!(
        (chain["hook"].as_str(), chain["prio"].as_i64()),
        (Some("prerouting"), Some(-300))
    );
    assert_eq!(rules(&ruleset, TABLE, "output").len(), 1);

    // What the driver reads back is exactly what the builder made.
    assert_eq!(
        ns.run(|| driver.live(TABLE)).unwrap(),
        Some(nft_rules::build(&plan))
    );
}

#[test]
fn offline_table_has_no_nat() {
    let Some(ns) = Netns::new("off") else { return };
    let driver = NftablesDriver::default();
    let plan = fw_plan(FirewallMode::Offline, "192.168.77.0/24", vec![]);
    ns.run(|| driver.apply(&plan)).unwrap();
    let ruleset = ns.nft_json("list ruleset");
    let listing = ruleset.to_string();
    assert!(
        !listing.contains("masquerade") && !listing.contains("\"nat\""),
        "{listing}"
    );
    let chains: Vec<_> = ruleset["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.get("chain"))
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(chains, ["intra_switch", "forward"]);
    let raw = rules(&ruleset, TABLE, "intra_switch");
    assert!(raw.len() == 1 && has_stmt(raw[0], "notrack"), "{raw:#?}");
    let fwd = rules(&ruleset, TABLE, "forward");
    assert_eq!(fwd.len(), 3);
    assert!(has_stmt(fwd[0], "accept"), "intra-switch accept first");
    assert!(has_stmt(fwd[1], "drop") && has_stmt(fwd[2], "drop"));
}

#[test]
fn apply_is_idempotent_and_repairs_drift() {
    let Some(ns) = Netns::new("idem") else { return };
    let driver = NftablesDriver::default();
    let nat = fw_plan(
        FirewallMode::Nat,
        "192.168.77.0/24",
        vec![tcp_forward(8080, "192.168.77.2", 80)],
    );
    assert_eq!(
        ns.run(|| driver.apply(&nat)).unwrap(),
        ApplyOutcome::Replaced
    );
    let first = ns.sh(&format!("nft -j list table ip {TABLE}"));
    assert_eq!(
        ns.run(|| driver.apply(&nat)).unwrap(),
        ApplyOutcome::Unchanged
    );
    let second = ns.sh(&format!("nft -j list table ip {TABLE}"));
    assert_eq!(
        first, second,
        "a second apply must not change anything, not even handles"
    );

    // Someone adds a rule to our table: the next apply puts it back as planned.
    ns.sh(&format!(
        "nft add rule ip {TABLE} forward ip saddr 10.9.9.9 accept"
    ));
    assert_ne!(
        ns.run(|| driver.live(TABLE)).unwrap(),
        Some(nft_rules::build(&nat))
    );
    assert_eq!(
        ns.run(|| driver.apply(&nat)).unwrap(),
        ApplyOutcome::Replaced
    );
    assert_eq!(
        ns.run(|| driver.live(TABLE)).unwrap(),
        Some(nft_rules::build(&nat))
    );
    assert!(!ns.sh("nft list ruleset").contains("10.9.9.9"));

    // A changed plan (NAT → offline, port forward dropped) replaces the table in place.
    let offline = fw_plan(FirewallMode::Offline, "192.168.77.0/24", vec![]);
    assert_eq!(
        ns.run(|| driver.apply(&offline)).unwrap(),
        ApplyOutcome::Replaced
    );
    let listing = ns.sh("nft list ruleset");
    assert!(
        !listing.contains("masquerade") && !listing.contains("dnat"),
        "{listing}"
    );
}

#[test]
fn remove_leaves_no_table_and_is_idempotent() {
    let Some(ns) = Netns::new("rm") else { return };
    let driver = NftablesDriver::default();
    let plan = fw_plan(FirewallMode::Nat, "192.168.77.0/24", vec![]);
    ns.run(|| driver.apply(&plan)).unwrap();
    assert!(ns.run(|| driver.remove(TABLE)).unwrap());
    assert!(tables(&ns.nft_json("list ruleset")).is_empty());
    assert!(
        !ns.run(|| driver.remove(TABLE)).unwrap(),
        "missing table is fine"
    );
    assert_eq!(ns.run(|| driver.live(TABLE)).unwrap(), None);
}

#[test]
fn foreign_tables_are_never_touched() {
    let Some(ns) = Netns::new("foreign") else {
        return;
    };
    // A foreign `ip foreign` table, and a table with our very name in another family.
    ns.sh("nft add table ip foreign
         nft add chain ip foreign screen '{ type filter hook forward priority 0; policy accept; }'
         nft add rule ip foreign screen ip saddr 10.9.9.9 drop
         nft add table inet edgenet_0a1b2c
         nft add chain inet edgenet_0a1b2c c
         nft add rule inet edgenet_0a1b2c c ip daddr 10.8.8.8 accept");
    let foreign_before = ns.sh("nft -j list table ip foreign");
    let inet_before = ns.sh("nft -j list table inet edgenet_0a1b2c");

    let driver = NftablesDriver::default();
    let plan = fw_plan(
        FirewallMode::Nat,
        "192.168.77.0/24",
        vec![tcp_forward(8080, "192.168.77.2", 80)],
    );
    ns.run(|| driver.apply(&plan)).unwrap();
    ns.run(|| driver.apply(&fw_plan(FirewallMode::Offline, "192.168.77.0/24", vec![])))
        .unwrap();
    assert!(ns.run(|| driver.remove(TABLE)).unwrap());
    // The driver refuses names that are not edgenet's.
    let refused = ns.run(|| driver.remove("foreign"));
    assert!(
        matches!(refused, Err(FirewallError::NotOurs(_))),
        "{refused:?}"
    );

    assert_eq!(ns.sh("nft -j list table ip foreign"), foreign_before);
    assert_eq!(ns.sh("nft -j list table inet edgenet_0a1b2c"), inet_before);
    let mut left = tables(&ns.nft_json("list ruleset"));
    left.sort();
    assert_eq!(
        left,
        [
            ("inet".to_string(), "edgenet_0a1b2c".to_string()),
            ("ip".to_string(), "foreign".to_string())
        ]
    );
}

/// TCP server (python) that answers every connection with the client's address as it sees it.
const SERVER: &str = "import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind((sys.argv[1],int(sys.argv[2]))); s.listen(16); print('ready',flush=True)
while True:
    c,a=s.accept(); c.sendall(a[0].encode()); c.close()";

/// TCP client: prints what the server saw as our address, or fails.
const CLIENT: &str = "import socket,sys
try:
    c=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=float(sys.argv[3]))
    print(c.recv(64).decode())
except OSError as e:
    print(e); sys.exit(1)";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(ns: &Netns, addr: &str, port: u16) -> Server {
    let mut child = ns
        .cmd("python3")
        .args(["-c", SERVER, addr, &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "server in {} did not start", ns.name);
    Server(child)
}

/// Connects from `ns`; `Ok(source address the server saw)` or `Err(reason)`.
fn connect(ns: &Netns, addr: &str, port: u16, timeout: f32) -> Result<String, String> {
    let out = ns
        .cmd("python3")
        .args(["-c", CLIENT, addr, &port.to_string(), &timeout.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// Real packets: two nodes on a bridge in a machine namespace, a peer on the machine's "LAN".
///
/// ```text
///  [node1 192.168.77.2]  [node2 192.168.77.3]
///          \                 /
///   [machine: aksedgesw-int 192.168.77.1 | lan0 198.18.5.1] —— [peer: lan0 198.18.5.2]
/// ```
/// In `machine`: the switch (192.168.77.1/24) with two node namespaces on it (.2 and .3,
/// default route via the switch) and a LAN peer (198.18.5.2) on `lan0`, forwarding on.
fn switch_with_two_nodes_and_a_peer(machine: &Netns, tag: &str) -> (Netns, Netns, Netns) {
    let node1 = Netns::new(&format!("{tag}node1")).unwrap();
    let node2 = Netns::new(&format!("{tag}node2")).unwrap();
    let peer = Netns::new(&format!("{tag}peer")).unwrap();
    machine.sh(&format!(
        "ip link add {BRIDGE} type bridge
         ip addr add 192.168.77.1/24 dev {BRIDGE}
         ip link set {BRIDGE} up
         ip link add vn1 type veth peer name eth0 netns {node1}
         ip link add vn2 type veth peer name eth0 netns {node2}
         ip link set vn1 master {BRIDGE} up
         ip link set vn2 master {BRIDGE} up
         ip link add lan0 type veth peer name lan0 netns {peer}
         ip addr add 198.18.5.1/24 dev lan0
         ip link set lan0 up
         sysctl -qw net.ipv4.ip_forward=1",
        node1 = node1.name,
        node2 = node2.name,
        peer = peer.name,
    ));
    for (node, ip) in [(&node1, "192.168.77.2"), (&node2, "192.168.77.3")] {
        node.sh(&format!(
            "ip addr add {ip}/24 dev eth0; ip link set eth0 up; ip route add default via 192.168.77.1"
        ));
    }
    peer.sh("ip addr add 198.18.5.2/24 dev lan0; ip link set lan0 up");
    (node1, node2, peer)
}

#[test]
fn traffic_nat_port_forward_and_offline() {
    let Some(machine) = Netns::new("tmach") else {
        return;
    };
    if Command::new("python3").arg("-V").output().is_err() {
        eprintln!("SKIP: python3 is needed for the TCP endpoints");
        return;
    }
    let (node1, node2, peer) = switch_with_two_nodes_and_a_peer(&machine, "t");

    let _on_node1 = serve(&node1, "0.0.0.0", 80);
    let _on_peer = serve(&peer, "0.0.0.0", 9000);
    let _on_machine = serve(&machine, "192.168.77.1", 9001);

    // Control, before any firewall: node2 reaches node1; node1 cannot reach the peer (the peer
    // has no route back to the switch subnet).
    assert_eq!(
        connect(&node2, "192.168.77.2", 80, 2.0),
        Ok("192.168.77.3".into())
    );
    assert!(connect(&node1, "198.18.5.2", 9000, 0.5).is_err());

    let driver = NftablesDriver::default();
    let nat = fw_plan(
        FirewallMode::Nat,
        "192.168.77.0/24",
        vec![tcp_forward(8080, "192.168.77.2", 80)],
    );
    machine.run(|| driver.apply(&nat)).unwrap();

    // Outbound is masqueraded to the machine's LAN address.
    assert_eq!(
        connect(&node1, "198.18.5.2", 9000, 2.0),
        Ok("198.18.5.1".into())
    );
    // Nodes still reach each other (bridged frames cross the forward hook) and the host.
    assert_eq!(
        connect(&node2, "192.168.77.2", 80, 2.0),
        Ok("192.168.77.3".into())
    );
    assert_eq!(
        connect(&node1, "192.168.77.1", 9001, 2.0),
        Ok("192.168.77.2".into())
    );
    // Port forward from the LAN: DNAT to node1, the client's address preserved.
    assert_eq!(
        connect(&peer, "198.18.5.1", 8080, 2.0),
        Ok("198.18.5.2".into())
    );
    // Port forward from the machine itself (output chain) to one of its own addresses.
    assert_eq!(
        connect(&machine, "198.18.5.1", 8080, 2.0),
        Ok("198.18.5.1".into())
    );

    // Inbound towards the subnet that is neither a reply nor a port forward is dropped:
    // with a route to the subnet the peer could reach node1 directly without our table.
    peer.sh("ip route add 192.168.77.0/24 via 198.18.5.1");
    assert!(connect(&peer, "192.168.77.2", 80, 0.5).is_err());
    machine.run(|| driver.remove(TABLE)).unwrap();
    assert_eq!(
        connect(&peer, "192.168.77.2", 80, 2.0),
        Ok("198.18.5.2".into()),
        "control"
    );

    // Offline: nothing leaves the switch; nodes still reach each other and the host.
    let offline = fw_plan(FirewallMode::Offline, "192.168.77.0/24", vec![]);
    machine.run(|| driver.apply(&offline)).unwrap();
    assert!(connect(&node1, "198.18.5.2", 9000, 0.5).is_err());
    assert!(connect(&peer, "192.168.77.2", 80, 0.5).is_err());
    assert_eq!(
        connect(&node2, "192.168.77.2", 80, 2.0),
        Ok("192.168.77.3".into())
    );
    assert_eq!(
        connect(&node1, "192.168.77.1", 9001, 2.0),
        Ok("192.168.77.2".into())
    );

    // Offline with a port forward: that one inbound path works, and still nothing else.
    let offline_fwd = fw_plan(
        FirewallMode::Offline,
        "192.168.77.0/24",
        vec![tcp_forward(8080, "192.168.77.2", 80)],
    );
    machine.run(|| driver.apply(&offline_fwd)).unwrap();
    assert_eq!(
        connect(&peer, "198.18.5.1", 8080, 2.0),
        Ok("198.18.5.2".into())
    );
    assert!(connect(&node1, "198.18.5.2", 9000, 0.5).is_err());
    assert!(connect(&peer, "192.168.77.2", 80, 0.5).is_err());
}

/// UDP receiver: prints the sender's address of the first datagram, or fails on timeout.
const UDP_RECV: &str = "import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(('0.0.0.0',int(sys.argv[1]))); s.settimeout(float(sys.argv[2]))
if len(sys.argv)>3: s.setsockopt(socket.IPPROTO_IP,socket.IP_ADD_MEMBERSHIP,socket.inet_aton(sys.argv[3])+socket.inet_aton('0.0.0.0'))
print('ready',flush=True)
try:
    d,a=s.recvfrom(100); print(a[0])
except OSError as e:
    print(e); sys.exit(1)";

const UDP_SEND: &str = "import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET,socket.SO_BROADCAST,1)
s.sendto(b'hi',(sys.argv[1],int(sys.argv[2])))";

/// Sends one datagram from `from` to `addr`:9999; the source `to` saw, or `Err`.
fn datagram(from: &Netns, to: &Netns, addr: &str) -> Result<String, String> {
    let group = addr
        .parse::<std::net::Ipv4Addr>()
        .is_ok_and(|a| a.is_multicast())
        .then_some(addr);
    let mut rx = to
        .cmd("python3")
        .args(["-c", UDP_RECV, "9999", "2"])
        .args(group)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(rx.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    from.sh(&format!("python3 -c \"{UDP_SEND}\" {addr} 9999"));
    line.clear();
    out.read_line(&mut line).unwrap();
    let ok = rx.wait().unwrap().success();
    if ok {
        Ok(line.trim().to_string())
    } else {
        Err(line.trim().to_string())
    }
}

/// The machine's conntrack table, one entry a line (`/proc/net/nf_conntrack`, else the
/// `conntrack` tool).
fn conntrack(machine: &Netns) -> String {
    let proc = machine
        .cmd("cat")
        .arg("/proc/net/nf_conntrack")
        .output()
        .unwrap();
    if proc.status.success() {
        return String::from_utf8(proc.stdout).unwrap();
    }
    machine.sh("conntrack -L 2>/dev/null")
}

/// Whether a connection `src` → `dst` (its original direction, to `dport` if given) is tracked.
fn tracked(machine: &Netns, src: &str, dst: &str, dport: Option<u16>) -> bool {
    let head = format!("src={src} dst={dst} ");
    conntrack(machine).lines().any(|l| {
        // The original tuple: from the first `src=` up to the reply's.
        let Some(start) = l.find("src=") else {
            return false;
        };
        let original = &l[start..];
        let original = original[4..]
            .find("src=")
            .map_or(original, |end| &original[..end + 4]);
        original.starts_with(&head)
            && dport.is_none_or(|p| original.contains(&format!("dport={p} ")))
    })
}

/// `bridge-nf-call-iptables=1` in the machine (as on Docker and Kubernetes hosts): frames bridged
/// between two nodes skip conntrack (edgenet's `intra_switch` chain), and nothing else does —
/// masquerade and its replies, port forwards from the LAN and from the host (whose replies
/// must be un-NATed), node↔host both ways through a host input filter that accepts by
/// conntrack state, broadcast and multicast, the offline switch, and a Docker-shaped FORWARD
/// policy drop with edgenet's DOCKER-USER accepts (which match by interface, not state).
#[test]
fn intra_switch_frames_skip_conntrack_and_nothing_else_does() {
    let Some(machine) = Netns::new("umach") else {
        return;
    };
    for tool in ["python3", "iptables"] {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("SKIP: `{tool}` is needed (scripts/deps.sh)");
            return;
        }
    }
    if machine
        .cmd("sysctl")
        .args(["-qw", "net.bridge.bridge-nf-call-iptables=1"])
        .status()
        .map_or(true, |s| !s.success())
    {
        eprintln!("SKIP: no net.bridge.bridge-nf-call-iptables here (br_netfilter)");
        return;
    }
    let (node1, node2, peer) = switch_with_two_nodes_and_a_peer(&machine, "u");
    // A stateful host: input accepts new connections to its services only, and the replies
    // of its own connections by conntrack state. Docker's FORWARD: policy drop, DOCKER-USER
    // first with edgenet's accepts (host_rules::docker_rules for a NAT switch), then Docker's
    // own state accept.
    machine.sh(&format!(
        "nft add table inet hostfw
         nft add chain inet hostfw input '{{ type filter hook input priority 0; policy drop; }}'
         nft add rule inet hostfw input ct state established,related accept
         nft add rule inet hostfw input iifname lo accept
         nft add rule inet hostfw input tcp dport 9001 accept
         nft add rule inet hostfw input udp dport 9999 accept
         iptables -P FORWARD DROP
         iptables -N DOCKER-USER
         iptables -A FORWARD -j DOCKER-USER
         iptables -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
         iptables -A DOCKER-USER -i {BRIDGE} -s 192.168.77.0/24 -j ACCEPT
         iptables -A DOCKER-USER -o {BRIDGE} -d 192.168.77.0/24 -j ACCEPT
         iptables -A DOCKER-USER -j RETURN"
    ));

    let _on_node1 = serve(&node1, "0.0.0.0", 80);
    let _on_peer = serve(&peer, "0.0.0.0", 9000);
    let _on_machine = serve(&machine, "192.168.77.1", 9001);

    let driver = NftablesDriver::default();
    let nat = fw_plan(
        FirewallMode::Nat,
        "192.168.77.0/24",
        vec![tcp_forward(8080, "192.168.77.2", 80)],
    );
    let want = nft_rules::build(&nat);

    // Control: without the intra_switch chain, node↔node is tracked.
    machine.run(|| driver.apply(&nat)).unwrap();
    machine.sh(&format!(
        "nft flush chain ip {TABLE} intra_switch; nft delete chain ip {TABLE} intra_switch"
    ));
    let live = machine.run(|| driver.live(TABLE)).unwrap().unwrap();
    assert_eq!(
        live.differences(&want),
        ["chain intra_switch is missing"],
        "status/doctor see the missing chain as drift"
    );
    assert_eq!(
        connect(&node2, "192.168.77.2", 80, 2.0),
        Ok("192.168.77.3".into())
    );
    assert!(
        tracked(&machine, "192.168.77.3", "192.168.77.2", Some(80)),
        "control: bridged frames pass conntrack\n{}",
        conntrack(&machine)
    );
    assert_eq!(
        machine.run(|| driver.apply(&nat)).unwrap(),
        ApplyOutcome::Replaced
    );
    let live = machine.run(|| driver.live(TABLE)).unwrap().unwrap();
    assert_eq!(live.differences(&want), Vec::<String>::new());
    assert_eq!(live, want);

    // Node → node, both ways, through Docker's policy drop: untracked (other ports than the
    // control's, whose entry lingers).
    let _on_node2 = serve(&node2, "0.0.0.0", 81);
    let _on_node1_too = serve(&node1, "0.0.0.0", 82);
    assert_eq!(
        connect(&node1, "192.168.77.3", 81, 2.0),
        Ok("192.168.77.2".into())
    );
    assert_eq!(
        connect(&node2, "192.168.77.2", 82, 2.0),
        Ok("192.168.77.3".into())
    );
    for (src, dst, port) in [
        ("192.168.77.2", "192.168.77.3", 81),
        ("192.168.77.3", "192.168.77.2", 82),
    ] {
        assert!(
            !tracked(&machine, src, dst, Some(port)),
            "{src} → {dst}:{port} was tracked\n{}",
            conntrack(&machine)
        );
    }

    // Node → host and host → node: tracked, through the stateful input filter.
    assert_eq!(
        connect(&node1, "192.168.77.1", 9001, 2.0),
        Ok("192.168.77.2".into())
    );
    assert!(tracked(
        &machine,
        "192.168.77.2",
        "192.168.77.1",
        Some(9001)
    ));
    assert_eq!(
        connect(&machine, "192.168.77.2", 80, 2.0),
        Ok("192.168.77.1".into()),
        "the node's answers to the host must be seen as established"
    );
    assert!(tracked(&machine, "192.168.77.1", "192.168.77.2", Some(80)));

    // Node → LAN, masqueraded, and its replies.
    assert_eq!(
        connect(&node1, "198.18.5.2", 9000, 2.0),
        Ok("198.18.5.1".into())
    );
    assert!(tracked(&machine, "192.168.77.2", "198.18.5.2", Some(9000)));

    // Port forwards: from the LAN, and from the host to its switch address (DNAT in output:
    // node1's reply to 192.168.77.1 is a unicast between two switch addresses, and must be
    // tracked to be un-NATed).
    assert_eq!(
        connect(&peer, "198.18.5.1", 8080, 2.0),
        Ok("198.18.5.2".into())
    );
    assert_eq!(
        connect(&machine, "192.168.77.1", 8080, 2.0),
        Ok("192.168.77.1".into())
    );
    assert_eq!(
        connect(&machine, "198.18.5.1", 8080, 2.0),
        Ok("198.18.5.1".into())
    );

    // Broadcast and multicast still reach the other node (and the host), tracked as before
    // (edgenet's masquerade leaves their source alone).
    assert_eq!(
        datagram(&node1, &node2, "192.168.77.255"),
        Ok("192.168.77.2".into())
    );
    assert!(tracked(
        &machine,
        "192.168.77.2",
        "192.168.77.255",
        Some(9999)
    ));
    assert_eq!(
        datagram(&node1, &node2, "224.0.0.1"),
        Ok("192.168.77.2".into())
    );
    // Beyond link-local too (SSDP, B17b D4: its source became the host's).
    assert_eq!(
        datagram(&node1, &node2, "239.255.255.250"),
        Ok("192.168.77.2".into())
    );
    assert_eq!(
        datagram(&node1, &machine, "255.255.255.255"),
        Ok("192.168.77.2".into())
    );
    // Unicast datagrams between the nodes: untracked.
    assert_eq!(
        datagram(&node1, &node2, "192.168.77.3"),
        Ok("192.168.77.2".into())
    );
    assert!(!tracked(
        &machine,
        "192.168.77.2",
        "192.168.77.3",
        Some(9999)
    ));

    // Offline: nothing leaves, nothing enters, the nodes still talk (untracked) and reach
    // the host.
    let offline = fw_plan(FirewallMode::Offline, "192.168.77.0/24", vec![]);
    machine.run(|| driver.apply(&offline)).unwrap();
    // Docker's accepts for an offline switch: frames in and out on it.
    machine.sh(&format!(
        "iptables -F DOCKER-USER
         iptables -A DOCKER-USER -i {BRIDGE} -o {BRIDGE} -j ACCEPT
         iptables -A DOCKER-USER -j RETURN"
    ));
    assert!(connect(&node1, "198.18.5.2", 9000, 0.5).is_err());
    assert_eq!(
        connect(&node2, "192.168.77.2", 82, 2.0),
        Ok("192.168.77.3".into())
    );
    assert!(!tracked(&machine, "192.168.77.3", "192.168.77.2", Some(82)));
    assert_eq!(
        connect(&node1, "192.168.77.1", 9001, 2.0),
        Ok("192.168.77.2".into())
    );
    assert_eq!(
        connect(&machine, "192.168.77.2", 80, 2.0),
        Ok("192.168.77.1".into())
    );
    machine.run(|| driver.remove(TABLE)).unwrap();
}

/// HTTP server (python's http.server): answers `GET /` with the client's address as it sees it.
const HTTP_SERVER: &str = "import http.server,sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b=self.client_address[0].encode(); self.send_response(200)
        self.send_header('Content-Length',str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self,*a): pass
s=http.server.ThreadingHTTPServer((sys.argv[1],int(sys.argv[2])),H); print('ready',flush=True)
s.serve_forever()";

/// HTTP client: prints the body of `GET http://ADDR:PORT/`, or fails.
const HTTP_GET: &str = "import urllib.request,sys
try:
    print(urllib.request.urlopen('http://%s:%s/' % (sys.argv[1],sys.argv[2]),timeout=float(sys.argv[3])).read().decode())
except Exception as e:
    print(e); sys.exit(1)";

fn serve_http(ns: &Netns, port: u16) -> Server {
    let mut child = ns
        .cmd("python3")
        .args(["-c", HTTP_SERVER, "0.0.0.0", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        "ready",
        "HTTP server in {} did not start",
        ns.name
    );
    Server(child)
}

/// `GET http://addr:port/` from `ns`: `Ok(the client address the server saw)`.
fn http_get(ns: &Netns, addr: &str, port: u16, timeout: f32) -> Result<String, String> {
    let out = ns
        .cmd("python3")
        .args([
            "-c",
            HTTP_GET,
            addr,
            &port.to_string(),
            &timeout.to_string(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// Hairpin: a node reaches a port forward at the host's addresses (the switch gateway and the
/// LAN address), to another node and to itself, with `bridge-nf-call-iptables` at 1 (Docker and
/// Kubernetes hosts) and at 0; the server sees the host's switch address (masqueraded, so its
/// answers go back through the host). The LAN and the host still reach the forward with their
/// own addresses, node↔node stays direct and untracked, an offline switch keeps its nodes out.
#[test]
fn port_forwards_hairpin_from_the_nodes() {
    let Some(machine) = Netns::new("hmach") else {
        return;
    };
    if Command::new("python3").arg("-V").output().is_err() {
        eprintln!("SKIP: python3 is needed for the HTTP endpoints");
        return;
    }
    let (node1, node2, peer) = switch_with_two_nodes_and_a_peer(&machine, "h");
    // As edgenet attaches node ports (node::join_switch; crates/cli/tests/hairpin.rs): a node
    // reaching itself through a forward leaves by its own port when the DNAT is bridged.
    machine.sh("bridge link set dev vn1 hairpin on; bridge link set dev vn2 hairpin on");
    let _web = serve_http(&node1, 80);
    let driver = NftablesDriver::default();
    let nat = fw_plan(
        FirewallMode::Nat,
        "192.168.77.0/24",
        vec![tcp_forward(8080, "192.168.77.2", 80)],
    );
    machine.run(|| driver.apply(&nat)).unwrap();
    let br_nf = machine
        .cmd("sysctl")
        .args(["-qw", "net.bridge.bridge-nf-call-iptables=1"])
        .status()
        .is_ok_and(|s| s.success());
    if !br_nf {
        eprintln!("note: no bridge-nf-call-iptables here (br_netfilter): only the routed path");
    }
    for sysctl in if br_nf { vec![0, 1] } else { vec![0] } {
        if br_nf {
            machine.sh(&format!(
                "sysctl -qw net.bridge.bridge-nf-call-iptables={sysctl}"
            ));
        }
        let how = format!("bridge-nf-call-iptables={sysctl}");
        for host in ["192.168.77.1", "198.18.5.1"] {
            assert_eq!(
                http_get(&node2, host, 8080, 2.0),
                Ok("192.168.77.1".into()),
                "{how}: node2 → {host}:8080 → node1"
            );
            assert_eq!(
                http_get(&node1, host, 8080, 2.0),
                Ok("192.168.77.1".into()),
                "{how}: node1 → {host}:8080 → node1 itself"
            );
        }
        // The LAN keeps its own address; the host reaches it too.
        assert_eq!(
            http_get(&peer, "198.18.5.1", 8080, 2.0),
            Ok("198.18.5.2".into()),
            "{how}"
        );
        assert_eq!(
            http_get(&machine, "198.18.5.1", 8080, 2.0),
            Ok("198.18.5.1".into()),
            "{how}"
        );
        // Node to node directly: the node's own address, not translated, not tracked.
        assert_eq!(
            http_get(&node2, "192.168.77.2", 80, 2.0),
            Ok("192.168.77.3".into()),
            "{how}"
        );
        if sysctl == 1 {
            assert!(
                !tracked(&machine, "192.168.77.3", "192.168.77.2", Some(80)),
                "{how}: direct node↔node was tracked\n{}",
                conntrack(&machine)
            );
            assert!(
                tracked(&machine, "192.168.77.3", "192.168.77.1", Some(8080)),
                "{how}: the hairpinned connection was not tracked\n{}",
                conntrack(&machine)
            );
        }
    }

    // Offline: unchanged, the nodes do not reach the forward (only the LAN does).
    let offline = fw_plan(
        FirewallMode::Offline,
        "192.168.77.0/24",
        vec![tcp_forward(8080, "192.168.77.2", 80)],
    );
    machine.run(|| driver.apply(&offline)).unwrap();
    assert!(http_get(&node2, "192.168.77.1", 8080, 0.5).is_err());
    assert_eq!(
        http_get(&peer, "198.18.5.1", 8080, 2.0),
        Ok("198.18.5.2".into())
    );
}
