//! The rendered host firewall file (`host/etc/nftables.d/edgenet-kubernetes-ports.nft`) really
//! opens the Kubernetes ports for traffic to the nodes: loaded with the real `nft -f` into a
//! host whose forward chain drops everything else, a TCP connection from a client through the
//! host to a node behind the switch's bridge gets through. Everything runs in namespaces of the
//! test's own: a "host" with the bridge, a "node" on it and a "client" routed through the host.

mod support;

use std::os::unix::process::CommandExt;
use std::process::Command;

use serde_json::json;
use support::{is_root, sh, sh_out};

fn render_nftables(dir: &std::path::Path) -> String {
    let config = json!({
        "DeploymentType": "SingleMachineCluster",
        "Init": {"ServiceIPRangeSize": 4},
        "Network": {"DnsServers": ["192.0.2.53"], "Ip4AddressPrefix": "192.168.77.0/24"},
        "Machines": [{"LinuxNode": {}}],
        "Edgenet": {"MachineName": "edge01"}
    });
    let out = support::run_with_config(dir, &config, &["render", "--from-config", "nftables"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whether `client` reaches `addr:port` with a real TCP connection (busybox nc, 3 s).
fn connects(client: &str, addr: &str, port: u16) -> bool {
    Command::new("ip")
        .args(["netns", "exec", client, "busybox", "timeout", "3"])
        .args(["busybox", "nc", addr, &port.to_string()])
        .stdin(std::process::Stdio::null())
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("hello"))
        .unwrap_or(false)
}

#[test]
fn rendered_ports_file_lets_a_tcp_connection_through_a_dropping_forward_chain() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = render_nftables(dir.path());
    assert!(file.contains("oifname \"aksedgesw-int\""), "{file}");
    let path = dir.path().join("edgenet-kubernetes-ports.nft");
    std::fs::write(&path, &file).unwrap();

    let (host, node, client) = (
        support::run_name("r18", "fwh"),
        support::run_name("r18", "fwn"),
        support::run_name("r18", "fwc"),
    );
    let _guard = [&host, &node, &client].map(|ns| support::NsGuard::create(ns));
    // host: the switch's bridge with the node's veth on it, and a routed link to the client.
    sh(&format!(
        "ip -n {host} link add aksedgesw-int type bridge && ip -n {host} addr add 192.168.77.1/24 dev aksedgesw-int && ip -n {host} link set aksedgesw-int up \
         && ip -n {host} link add veth-n type veth peer name eth0 netns {node} && ip -n {host} link set veth-n master aksedgesw-int up \
         && ip -n {node} addr add 192.168.77.2/24 dev eth0 && ip -n {node} link set eth0 up && ip -n {node} route add default via 192.168.77.1 \
         && ip -n {host} link add veth-c type veth peer name eth0 netns {client} && ip -n {host} addr add 198.51.100.1/24 dev veth-c && ip -n {host} link set veth-c up \
         && ip -n {client} addr add 198.51.100.2/24 dev eth0 && ip -n {client} link set eth0 up && ip -n {client} route add default via 198.51.100.1 \
         && ip netns exec {host} sysctl -qw net.ipv4.ip_forward=1"
    ));
    // Debian's /etc/nftables.conf table, with a forward chain that drops everything else.
    sh(&format!(
        "ip netns exec {host} nft -f - <<'X'\n\
         table inet filter {{\n\
           chain input {{ type filter hook input priority 0; policy accept; }}\n\
           chain forward {{ type filter hook forward priority 0; policy drop; }}\n\
           chain output {{ type filter hook output priority 0; policy accept; }}\n\
         }}\nX"
    ));
    // A listener on the node for the API port (6443) and one on a port the file does not open.
    let mut listeners = Vec::new();
    for port in [6443u16, 6444] {
        listeners.push(
            Command::new("ip")
                .args(["netns", "exec", &node, "busybox", "sh", "-c"])
                .arg(format!(
                    "while true; do echo hello | busybox nc -l -p {port}; done"
                ))
                .process_group(0)
                .spawn()
                .unwrap(),
        );
    }
    let _kill = KillOnDrop(listeners);
    // Before the file: the drop policy stops it (the setup really drops).
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !connects(&client, "192.168.77.2", 6443),
        "forward drop did not drop"
    );

    sh_out(&format!("ip netns exec {host} nft -f {}", path.display()));
    let mut ok = false;
    for _ in 0..10 {
        if connects(&client, "192.168.77.2", 6443) {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        ok,
        "no TCP connection to the node's 6443 after loading:\n{file}\n{}",
        sh_out(&format!("ip netns exec {host} nft list ruleset"))
    );
    // Only the listed ports: another one still drops.
    assert!(!connects(&client, "192.168.77.2", 6444), "6444 passed too");
}

struct KillOnDrop(Vec<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // The whole group: the loop's shell and its `nc` (our own children only).
        for c in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", c.id())])
                .status();
            let _ = c.wait();
        }
    }
}

/// B21 N3: on a deployed internal switch (a Linux and a Windows node), a host whose
/// `inet filter forward` has policy drop, with the rendered file loaded as the README says,
/// lets a node open a TCP connection to the other node — the frames between the nodes are
/// untracked (edgenet's own table notracks them), so a `ct state` rule for the replies never
/// matched — and `status` then reports no firewall drift (the file is what status proposes).
#[test]
fn rendered_file_lets_node_to_node_connections_through_and_status_has_no_drift() {
    let Some(m) = support::machine_prefixed("s21", "fw") else {
        return;
    };
    let br_nf = Command::new("ip")
        .args(["netns", "exec", &m.ns, "sysctl", "-qw"])
        .arg("net.bridge.bridge-nf-call-iptables=1")
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !br_nf {
        eprintln!("skipped: needs br_netfilter (bridge-nf-call-iptables)");
        return;
    }
    let cfg = m.write_config(
        "c.json",
        &json!({
            "Network": {"DnsServers": ["192.0.2.53"], "SkipDnsCheck": true},
            "Machines": [{"LinuxNode": {}, "WindowsNode": {}}],
            "Edgenet": {"MachineName": "s21fw"}
        }),
    );
    m.ok(&["deploy", "-q", "-c", &cfg]);
    let file = m.ok(&["render", "nftables"]);
    let path = m.dir.path().join("edgenet-kubernetes-ports.nft");
    std::fs::write(&path, &file).unwrap();
    let id = m.state_id().expect("a deployment");
    let linux = m.linux_node_namespace();
    let windows = m
        .node_namespaces()
        .into_iter()
        .find(|n| n.ends_with(&format!("-wedge-{id}")))
        .expect("the Windows node's namespace");
    // The Linux node's address on the switch (its only global IPv4 address).
    let linux_addr = support::Machine::ip_json_in(&linux, "-4 addr show scope global")[0]
        ["addr_info"][0]["local"]
        .as_str()
        .expect("the Linux node's address")
        .to_string();
    sh(&format!(
        "ip netns exec {} nft -f - <<'X'\n\
         table inet filter {{\n\
           chain input {{ type filter hook input priority 0; policy accept; }}\n\
           chain forward {{ type filter hook forward priority 0; policy drop; }}\n\
           chain output {{ type filter hook output priority 0; policy accept; }}\n\
         }}\nX",
        m.ns
    ));
    let listener = Command::new("ip")
        .args(["netns", "exec", &linux, "busybox", "sh", "-c"])
        .arg("while true; do echo hello | busybox nc -l -p 6443; done")
        .process_group(0)
        .spawn()
        .unwrap();
    let _kill = KillOnDrop(vec![listener]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !connects(&windows, &linux_addr, 6443),
        "forward drop did not drop"
    );
    sh_out(&format!("ip netns exec {} nft -f {}", m.ns, path.display()));
    let ok = (0..10).any(|_| {
        let ok = connects(&windows, &linux_addr, 6443);
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        ok
    });
    assert!(
        ok,
        "no TCP connection windows → linux 6443 after loading:\n{file}\n{}",
        sh_out(&format!("ip netns exec {} nft list ruleset", m.ns))
    );
    let out = m.edgenet(&["status", "--output", "json"]);
    let after: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        out.status.success() && !after["drift"].to_string().contains("firewall"),
        "status reports drift after loading the rendered file:\n{:#}\n{file}",
        after["drift"]
    );
}
