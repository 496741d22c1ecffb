//! The external switch over a real host's life (issue 8): a machine `M` whose adapter `up0`
//! (198.18.0.11/24, default via 198.18.0.1) is a veth into a LAN namespace, with a
//! ScalableCluster config on `up0`. Reboots, killed runs, a new address after a reboot and
//! every kind of adapter attribute: the adapter must come back exactly, and the machine must
//! never lose its own address.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

const BRIDGE: &str = "aksedgesw-ext";

/// A machine whose adapter `up0` is 198.18.0.11/24 with a default route via .1 on a LAN
/// with a LAN host (198.18.0.254): see [`adapter_lan`].
pub struct Site {
    pub m: Machine,
    pub lan: String,
    pub peer: String,
    pub cfg: String,
    _lan: AdapterLan,
}

impl Site {
    pub fn new(tag: &str) -> Option<Site> {
        let m = machine(&format!("h8a{tag}"))?;
        let net = adapter_lan(&m, true);
        let (lan, peer) = (net.lan.0.clone(), net.peer.as_ref().unwrap().0.clone());
        let cfg = m.write_config("c.json", &config("m0"));
        Some(Site {
            m,
            lan,
            peer,
            cfg,
            _lan: net,
        })
    }

    pub fn deploy(&self) -> Value {
        self.deploy_args(&[])
    }

    pub fn deploy_args(&self, extra: &[&str]) -> Value {
        let mut args = vec!["deploy", "-c", &self.cfg, "--output", "json"];
        args.extend(extra);
        serde_json::from_str(&self.m.ok(&args)).unwrap()
    }

    pub fn ip(&self, args: &str) {
        sh(&format!("ip -n {} {args}", self.m.ns));
    }

    /// The host reachable on `ip` from the LAN.
    pub fn reachable(&self, ip: &str) -> bool {
        let ping = |args: &str| {
            Command::new("sh")
                .arg("-c")
                .arg(format!("ip netns exec {} ping {args} {ip}", self.peer))
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success()
        };
        ping("-c1 -W1") || ping("-c3 -i0.2 -W1")
    }

    /// What a reboot does to the machine: every kernel object of the run goes (the bridge,
    /// the node namespaces, the firewall), and the host's network config puts the adapter back
    /// as its files say. The state directory stays.
    pub fn reboot(&self, address: &str) {
        for ns in self.m.node_namespaces() {
            sh(&format!("ip netns del {ns}"));
        }
        let ns = &self.m.ns;
        sh(&format!(
            "ip -n {ns} link del {BRIDGE} 2>/dev/null; ip netns exec {ns} nft flush ruleset; \
             ip -n {ns} addr flush dev up0 scope global; \
             ip -n {ns} addr add {address} dev up0 && ip -n {ns} route replace default via 198.18.0.1 dev up0 && \
             ip netns exec {ns} sysctl -qw net.ipv4.ip_forward=0"
        ));
    }
}

pub fn config(name: &str) -> Value {
    let mut c = site_config("up0");
    c["Machines"][0]["MachineName"] = json!(name);
    c["Machines"][0]["WindowsNode"] = json!({"Ip4Address": "198.18.0.151"});
    c
}

/// The finite lifetimes (seconds) of `dev`'s addresses.
fn lifetimes(ns: &str, dev: &str) -> Vec<u64> {
    let addrs = json_of(&format!("ip -n {ns} -j addr show dev {dev}"));
    link(&addrs, dev).unwrap()["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| {
            [
                a["valid_life_time"].as_u64(),
                a["preferred_life_time"].as_u64(),
            ]
        })
        .flatten()
        .filter(|l| *l != 4294967295)
        .collect()
}

/// Everything the host has on (or naming) link `dev`, with the link's name replaced by `DEV`
/// and what moves on its own taken out (lifetimes count down; a dynamic address is recognised
/// by `dynamic`), so that two links, or one link at two times, compare equal when they carry
/// the same configuration. IPv6 link-local addresses and their routes belong to the link.
pub fn l3(ns: &str, dev: &str) -> Value {
    let norm = |v: Value| -> Value {
        serde_json::from_str(&v.to_string().replace(&format!("\"{dev}"), "\"DEV")).unwrap()
    };
    let mut addrs = Vec::new();
    if let Some(l) = link(
        &json_of(&format!("ip -n {ns} -j -d addr show dev {dev}")),
        dev,
    ) {
        for a in l["addr_info"].as_array().unwrap() {
            if a["scope"] == "link" && a["family"] == "inet6" {
                continue;
            }
            let mut a = a.clone();
            let m = a.as_object_mut().unwrap();
            for k in ["valid_life_time", "preferred_life_time"] {
                m.remove(k);
            }
            addrs.push(a);
        }
    }
    let mut routes = Vec::new();
    for fam in ["-4", "-6"] {
        for r in json_of(&format!(
            "ip -n {ns} {fam} -j -d route show table all dev {dev} 2>/dev/null || echo []"
        ))
        .as_array()
        .unwrap()
        {
            let dst = r["dst"].as_str().unwrap_or("");
            if dst.starts_with("fe80") || dst.starts_with("ff00") {
                continue;
            }
            let mut r = r.clone();
            let m = r.as_object_mut().unwrap();
            m.remove("expires");
            // "linkdown" while a link is a bridge port without carrier of its own is the
            // kernel's view, not configuration.
            if let Some(Value::Array(flags)) = m.get_mut("flags") {
                flags.retain(|f| f != "linkdown");
            }
            routes.push(r);
        }
    }
    let mut rules = Vec::new();
    for fam in ["-4", "-6"] {
        for r in json_of(&format!("ip -n {ns} {fam} -j rule show"))
            .as_array()
            .unwrap()
        {
            if r["iif"] == dev || r["oif"] == dev {
                rules.push(r.clone());
            }
        }
    }
    norm(json!({"addresses": addrs, "routes": routes, "rules": rules}))
}

fn has_default_via_gateway(s: &Site, dev: &str) -> bool {
    s.m.ip_json("route show default")
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["gateway"] == "198.18.0.1" && r["dev"] == dev)
}

/// Defect 1: the bridge is gone (reboot, or a killed run) and the boot has put the address
/// back on the adapter; remove must keep it there, on every rerun.
#[test]
fn remove_after_the_bridge_vanished_leaves_the_adapter_its_address() {
    let Some(s) = Site::new("gone") else { return };
    s.deploy();
    s.ip(&format!("link del {BRIDGE}"));
    s.ip("addr add 198.18.0.11/24 dev up0");
    s.ip("route add default via 198.18.0.1 dev up0");
    let before = l3(&s.m.ns, "up0");
    for run in 0..2 {
        let out = s.m.edgenet(&["remove"]);
        assert!(
            out.status.success(),
            "remove #{run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(l3(&s.m.ns, "up0"), before, "remove #{run}");
        assert_eq!(
            ipv4_of(&s.m.ip_json("addr show"), "up0"),
            ["198.18.0.11/24"]
        );
        assert!(has_default_via_gateway(&s, "up0"), "remove #{run}");
        assert!(s.reachable("198.18.0.11"), "remove #{run}");
    }
}

/// Defect 1, the other way in: `remove` killed at any moment, then run again, always ends
/// with the address and the default route on the adapter.
#[test]
fn a_remove_killed_at_any_moment_then_rerun_restores_the_adapter() {
    let Some(s) = Site::new("kill") else { return };
    let before = l3(&s.m.ns, "up0");
    for delay_ms in [0u64, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48] {
        s.deploy();
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", s.m.ns))
            .arg(env!("CARGO_BIN_EXE_edgenet"))
            .arg("remove")
            .env("EDGENET_STATE_DIR", &s.m.state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        // Only the child we started, by its pid.
        let _ = child.kill();
        let _ = child.wait();
        let out = s.m.edgenet(&["remove"]);
        assert!(
            out.status.success(),
            "rerun after a kill at {delay_ms} ms: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(l3(&s.m.ns, "up0"), before, "after a kill at {delay_ms} ms");
        assert!(bridges(&s.m.ns).is_empty());
    }
}

/// A deploy killed at any moment: the next remove gives the adapter back exactly, and so
/// does a deploy that finishes the job followed by a remove.
#[test]
fn a_deploy_killed_at_any_moment_leaves_an_adapter_remove_restores() {
    let Some(s) = Site::new("kdep") else { return };
    let before = l3(&s.m.ns, "up0");
    for (i, delay_ms) in [0u64, 2, 4, 8, 12, 16, 24, 32, 48].into_iter().enumerate() {
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", s.m.ns))
            .arg(env!("CARGO_BIN_EXE_edgenet"))
            .args(["deploy", "-c", &s.cfg])
            .env("EDGENET_STATE_DIR", &s.m.state)
            .env("EDGENET_RESOLV_CONF", &s.m.resolv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        if i % 2 == 1 {
            s.deploy();
            assert!(s.reachable("198.18.0.11"), "after a kill at {delay_ms} ms");
        }
        let out = s.m.edgenet(&["remove"]);
        assert!(
            out.status.success(),
            "remove after a kill at {delay_ms} ms: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(l3(&s.m.ns, "up0"), before, "after a kill at {delay_ms} ms");
        assert!(bridges(&s.m.ns).is_empty());
    }
}

/// Defect 2: after a reboot the adapter has a new address; deploy takes it as it is now.
#[test]
fn a_reboot_with_a_new_address_moves_the_new_address() {
    let Some(s) = Site::new("newip") else { return };
    s.deploy();
    s.reboot("198.18.0.33/24");
    let before = l3(&s.m.ns, "up0");
    s.deploy();
    let addrs = s.m.ip_json("addr show");
    assert_eq!(ipv4_of(&addrs, BRIDGE), ["198.18.0.33/24"]);
    assert!(ipv4_of(&addrs, "up0").is_empty(), "{addrs:#}");
    assert!(s.reachable("198.18.0.33"));
    assert!(!s.reachable("198.18.0.11"));
    let status: Value = serde_json::from_str(&s.m.ok(&["status", "--output", "json"])).unwrap();
    assert_eq!(status["drift"], json!([]), "{status:#}");
    s.m.ok(&["remove"]);
    assert_eq!(l3(&s.m.ns, "up0"), before);
    assert!(s.reachable("198.18.0.33"));
}

/// Status sees an address put back on the adapter while it is a port (unreachable there),
/// and deploy moves it.
#[test]
fn an_address_on_the_enslaved_adapter_is_drift_that_deploy_repairs() {
    let Some(s) = Site::new("port") else { return };
    s.deploy();
    s.ip("addr add 198.18.0.44/24 dev up0");
    let status: Value =
        serde_json::from_slice(&s.m.edgenet(&["status", "--output", "json"]).stdout).unwrap();
    assert!(
        status["drift"].to_string().contains("198.18.0.44/24"),
        "{status:#}"
    );
    s.deploy();
    let addrs = s.m.ip_json("addr show");
    assert_eq!(
        ipv4_of(&addrs, BRIDGE),
        ["198.18.0.11/24", "198.18.0.44/24"]
    );
    assert!(s.reachable("198.18.0.44"));
}

/// Defect 4: every kind of attribute on the adapter moves to the bridge and comes back
/// exactly; an onlink route does not make deploy or remove fail.
#[test]
fn every_adapter_attribute_moves_to_the_bridge_and_back_exactly() {
    let Some(s) = Site::new("attrs") else { return };
    // The plain default route and address from Site::new are replaced by a richer setup.
    s.ip("route del default");
    s.ip("addr flush dev up0 scope global");
    for cmd in [
        "addr add 198.18.0.11/24 dev up0 noprefixroute label up0:main",
        "addr add 198.18.0.12/24 dev up0 label up0:1 valid_lft 3600 preferred_lft 1800",
        "addr add 2001:db8:18::11/64 dev up0 valid_lft 7200 preferred_lft 3600",
        "addr add 2001:db8:19::11/64 dev up0 noprefixroute",
        "route add 198.18.0.0/24 dev up0 proto static scope link src 198.18.0.11 metric 5",
        "route add default via 198.18.0.1 dev up0 proto dhcp src 198.18.0.11 metric 100",
        "route add 10.9.0.0/16 via 198.18.0.1 dev up0 onlink mtu lock 1400 advmss 1360",
        "route add 10.10.0.0/16 via 203.0.113.1 dev up0 onlink",
        "route add default via 198.18.0.1 dev up0 table 100 metric 7",
        "route add 10.11.0.0/16 dev up0 table 100 scope link",
        "-6 route add 2001:db8:20::/48 via 2001:db8:18::1 dev up0 metric 300",
        "-6 route add 2001:db8:21::/48 dev up0 table 100",
        "rule add iif up0 table 100 pref 1000",
        "rule add oif up0 fwmark 0x7 table 100 pref 1001",
        "-6 rule add iif up0 table 100 pref 1002",
    ] {
        s.ip(cmd);
    }
    let before = l3(&s.m.ns, "up0");
    s.deploy();
    // `aksedgesw-ext:main` would be longer than a label may be: that label stays as it is.
    let on_bridge = || -> Value {
        serde_json::from_str(
            &l3(&s.m.ns, BRIDGE)
                .to_string()
                .replace("\"up0:main\"", "\"DEV:main\""),
        )
        .unwrap()
    };
    assert_eq!(
        on_bridge(),
        before,
        "the bridge carries the adapter's configuration"
    );
    let routes = sh_out(&format!("ip -n {} route show dev {BRIDGE}", s.m.ns));
    assert!(routes.contains("mtu lock 1400"), "{routes}");
    assert_eq!(
        l3(&s.m.ns, "up0")["addresses"],
        json!([]),
        "nothing left on the port"
    );
    assert!(s.reachable("198.18.0.11"));
    assert!(s.reachable("198.18.0.12"));
    let lives = lifetimes(&s.m.ns, BRIDGE);
    assert_eq!(lives.len(), 4, "{lives:?}");
    assert!(lives.iter().all(|l| *l > 1000), "lifetimes kept: {lives:?}");
    // A second deploy is a no-op on all of it.
    s.deploy();
    assert_eq!(on_bridge(), before);
    let out = s.m.edgenet(&["remove"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(l3(&s.m.ns, "up0"), before, "the adapter is back exactly");
    let lives = lifetimes(&s.m.ns, "up0");
    assert!(
        lives.len() == 4 && lives.iter().all(|l| *l > 1000),
        "{lives:?}"
    );
    let routes = sh_out(&format!("ip -n {} route show dev up0", s.m.ns));
    assert!(routes.contains("mtu lock 1400"), "{routes}");
    assert!(s.reachable("198.18.0.11"));
}

/// Defect 5 on the external switch: a new machine name renames the nodes in place; the
/// machine, its nodes and the LAN keep talking.
#[test]
fn a_renamed_machine_keeps_its_deployment() {
    let Some(s) = Site::new("rename") else { return };
    s.deploy();
    s.deploy_args(&["--machine-name", "m9"]);
    let id = s.m.state_id().unwrap();
    assert_eq!(
        s.m.node_namespaces(),
        vec![format!("m9-ledge-{id}"), format!("m9-wedge-{id}")]
    );
    let status: Value = serde_json::from_str(&s.m.ok(&["status", "--output", "json"])).unwrap();
    assert_eq!(status["drift"], json!([]), "{status:#}");
    assert!(s.reachable("198.18.0.101"));
    assert!(s.reachable("198.18.0.11"));
}

/// Issue 8, defect 1: a rename onto a network namespace that exists and is not this
/// deployment's is refused before anything changes; the foreign namespace keeps its link as it
/// was and the real node namespace stays.
#[test]
fn a_rename_onto_a_foreign_namespace_is_refused() {
    let Some(s) = Site::new("renfor") else { return };
    s.deploy();
    let id = s.m.state_id().unwrap();
    let foreign = format!("y-ledge-{id}");
    sh(&format!(
        "ip netns add {foreign} && ip netns exec {foreign} ip link add eth0 type veth peer name p1"
    ));
    let eth0 = |ns: &str| Machine::ip_json_in(ns, "addr show dev eth0")[0].clone();
    let before_foreign = eth0(&foreign);
    let before = s.m.dump();
    let out =
        s.m.edgenet(&["deploy", "-c", &s.cfg, "--machine-name", "y"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let (after, after_foreign) = (s.m.dump(), eth0(&foreign));
    let _ = Command::new("ip").args(["netns", "del", &foreign]).status();
    assert!(!out.status.success(), "the rename went through: {err}");
    assert!(err.contains(&foreign), "{err}");
    assert_eq!(after_foreign, before_foreign, "{err}");
    assert_eq!(after, before, "{err}");
    assert!(s.reachable("198.18.0.101"));
}

/// Issue 8, defect 8: on a bridge the host's manager made (the README's recommended way, with
/// the adapter as its port), deploy uses it as it is; status then reports no drift and exits 0.
#[test]
fn status_on_a_manager_owned_bridge_reports_no_drift() {
    let Some(s) = Site::new("mgrbr") else { return };
    let mac = link(&s.m.ip_json("link show"), "up0").unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    s.ip(&format!("link add {BRIDGE} address {mac} type bridge"));
    s.ip(&format!("link set up0 master {BRIDGE}"));
    s.ip("addr flush dev up0 scope global");
    s.ip(&format!("addr add 198.18.0.11/24 dev {BRIDGE}"));
    s.ip(&format!("link set {BRIDGE} up"));
    s.ip(&format!(
        "route replace default via 198.18.0.1 dev {BRIDGE}"
    ));
    s.deploy();
    let out = s.m.edgenet(&["status", "--output", "json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["drift"], json!([]), "{status:#}");
    assert_eq!(out.status.code(), Some(0));
    assert!(s.reachable("198.18.0.101"));
    // Releasing the adapter from it is drift again.
    s.ip("link set up0 nomaster");
    let status: Value =
        serde_json::from_slice(&s.m.edgenet(&["status", "--output", "json"]).stdout).unwrap();
    assert!(
        status["drift"].to_string().contains("not a port"),
        "{status:#}"
    );
    s.ip(&format!("link del {BRIDGE}"));
}

/// What a boot must bring back: the whole deployment (names, MTUs, addresses, routes,
/// firewall, nodes), the switch's and nodes' MACs, and the host's configuration on the bridge.
fn boot_view(s: &Site) -> Value {
    let links = s.m.ip_json("link show");
    let node_macs: Vec<Value> = s
        .m
        .node_namespaces()
        .iter()
        .map(|ns| link(&Machine::ip_json_in(ns, "link show"), "eth0").unwrap()["address"].clone())
        .collect();
    // The host ends of the nodes' veths (ports of the bridge besides the adapter): the same
    // MACs after a reboot, so kernel dumps match.
    let mut veth_macs: Vec<Value> = links
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["master"] == BRIDGE && l["ifname"] != "up0")
        .map(|l| l["address"].clone())
        .collect();
    veth_macs.sort_by_key(|v| v.to_string());
    json!({
        "shape": s.m.shape(),
        "veth_macs": veth_macs,
        "bridge_mac": link(&links, BRIDGE).map(|l| l["address"].clone()),
        "adapter_mac": link(&links, "up0").map(|l| l["address"].clone()),
        "node_macs": node_macs,
        "bridge": l3(&s.m.ns, BRIDGE),
        "adapter": l3(&s.m.ns, "up0"),
        "id": s.m.state_id(),
    })
}

/// `KEY=VALUE` of every `Environment=` line and the words of `ExecStart=` (as systemd splits
/// them: the unit quotes words with spaces in double quotes).
fn exec_start(unit: &str) -> (Vec<(String, String)>, Vec<String>) {
    let words = |line: &str| -> Vec<String> {
        let mut out = Vec::new();
        let (mut cur, mut quoted, mut esc) = (String::new(), false, false);
        for c in line.chars() {
            match c {
                _ if esc => {
                    cur.push(c);
                    esc = false;
                }
                '\\' if quoted => esc = true,
                '"' => quoted = !quoted,
                ' ' if !quoted => {
                    if !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                }
                _ => cur.push(c),
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    };
    // systemd expands `%` in both, `$` only on the command line (systemd.exec(5)).
    let unescape = |w: String, dollar: bool| {
        let w = w.replace("%%", "%");
        if dollar {
            w.replace("$$", "$")
        } else {
            w
        }
    };
    let mut env = Vec::new();
    let mut cmd = Vec::new();
    for line in unit.lines() {
        if let Some(v) = line.strip_prefix("Environment=") {
            for w in words(v) {
                let w = unescape(w, false);
                let (k, v) = w.split_once('=').unwrap();
                env.push((k.to_string(), v.to_string()));
            }
        } else if let Some(v) = line.strip_prefix("ExecStart=") {
            cmd = words(v).into_iter().map(|w| unescape(w, true)).collect();
        }
    }
    (env, cmd)
}

/// A reboot: everything in the machine namespace goes but the state directory; the boot
/// puts the adapter back as the host's network config says and runs the unit edgenet
/// installed; the same deployment comes back.
#[test]
fn the_boot_unit_brings_back_the_same_deployment_after_a_reboot() {
    let Some(s) = Site::new("boot") else { return };
    s.deploy();
    let before = boot_view(&s);
    let units = s.m.dir.path().join("units");
    s.m.ok(&[
        "install-unit",
        "-c",
        &s.cfg,
        "--unit-dir",
        units.to_str().unwrap(),
    ]);
    let unit = std::fs::read_to_string(units.join("edgenet.service")).unwrap();
    assert!(
        unit.contains("\nBefore=k3s.service k3s-agent.service kubelet.service\n"),
        "{unit}"
    );
    assert!(
        unit.contains(" edgenet-adapter-wait up0 "),
        "waits for the adapter: {unit}"
    );
    assert!(unit.contains("\nAfter=network-online.target\n"), "{unit}");

    s.reboot("198.18.0.11/24");
    assert!(bridges(&s.m.ns).is_empty());
    assert!(s.m.node_namespaces().is_empty());

    let (env, cmd) = exec_start(&unit);
    let mut boot = Command::new("nsenter");
    boot.arg(format!("--net=/run/netns/{}", s.m.ns))
        .args(&cmd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap());
    for (k, v) in &env {
        boot.env(k, v);
    }
    let out = boot.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        boot_view(&s),
        before,
        "the same deployment after the reboot"
    );
    assert!(s.reachable("198.18.0.11"));
    assert!(s.reachable("198.18.0.101"));
}

/// Item 7: the adapter renamed at boot (the name gone, or another NIC's): the unit's wait for
/// the adapter finds it by its MAC at once, instead of holding the boot for the device unit
/// of the old name (Wants=/After= on it waited the 90 s device timeout).
#[test]
fn the_boot_units_adapter_wait_follows_a_renamed_adapter_at_once() {
    let Some(s) = Site::new("o19bootw") else {
        return;
    };
    s.deploy();
    let units = s.m.dir.path().join("units");
    s.m.ok(&[
        "install-unit",
        "-c",
        &s.cfg,
        "--unit-dir",
        units.to_str().unwrap(),
    ]);
    let unit = std::fs::read_to_string(units.join("edgenet.service")).unwrap();
    assert!(!unit.contains("sys-subsystem-net-devices"), "{unit}");
    let line = unit
        .lines()
        .find(|l| l.starts_with("ExecStartPre=-"))
        .unwrap_or_else(|| panic!("no wait for the adapter: {unit}"));
    let (_, wait) = exec_start(&line.replacen("ExecStartPre=-", "ExecStart=", 1));
    let mac = link(&s.m.ip_json("link show"), "up0").unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(wait.last(), Some(&mac), "{wait:?}");
    // `ip netns exec` mounts the namespace's /sys, where the script looks.
    let run = || {
        let started = std::time::Instant::now();
        let status = Command::new("ip")
            .args(["netns", "exec", &s.m.ns])
            .args(&wait)
            .status()
            .unwrap();
        (status.success(), started.elapsed())
    };
    let (found, took) = run();
    assert!(found && took < Duration::from_secs(3), "{took:?}");
    s.reboot("198.18.0.11/24");
    s.ip("link set up0 down");
    s.ip("link set up0 name enp7s0");
    let (found, took) = run();
    assert!(
        found && took < Duration::from_secs(3),
        "the renamed adapter, by its MAC: {took:?}"
    );
}

/// The unit passes systemd's own checks.
#[test]
fn the_boot_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-analyze is not installed (scripts/deps.sh installs systemd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.json");
    std::fs::write(&cfg, config("m0").to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edgenet"))
        .args(["install-unit", "--unit-dir"])
        .arg(dir.path())
        .arg("-c")
        .arg(&cfg)
        .env("EDGENET_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No man page is installed by a test build (the package installs it).
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("edgenet.service"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && (err.contains("Failed to") && err.contains("bus")) {
        eprintln!("skipped: systemd-analyze cannot run in this container: {err}");
        return;
    }
    assert!(out.status.success(), "{err}");
    assert!(err.trim().is_empty(), "warnings: {err}");
}

/// Issue 8, defect 12: an edgenet.service edgenet did not write is neither overwritten nor
/// deleted without --force; one it wrote is.
#[test]
fn install_unit_leaves_a_unit_it_did_not_write_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.json");
    std::fs::write(&cfg, config("m0").to_string()).unwrap();
    let unit = dir.path().join("edgenet.service");
    let theirs =
        "[Unit]\nDescription=the admin's own edgenet unit\n\n[Service]\nExecStart=/bin/true\n";
    std::fs::write(&unit, theirs).unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_edgenet"))
            .args(["install-unit", "--unit-dir"])
            .arg(dir.path())
            .arg("-c")
            .arg(&cfg)
            .args(extra)
            .env("EDGENET_STATE_DIR", dir.path().join("state"))
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    for extra in [&[][..], &["--uninstall"][..]] {
        let out = run(extra);
        let err = String::from_utf8_lossy(&out.stderr);
        // A foreign object in the way: exit 3 (B22 finding 11).
        assert_eq!(out.status.code(), Some(3), "{extra:?}: {err}");
        assert!(
            err.contains("not written by edgenet") && err.contains("--force"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&unit).unwrap(), theirs, "{extra:?}");
    }
    let out = run(&["--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = std::fs::read_to_string(&unit).unwrap();
    assert!(
        ours.starts_with("# written by edgenet install-unit\n"),
        "{ours}"
    );
    // Now ours: rewritten and deleted without --force.
    assert!(run(&[]).status.success());
    assert!(run(&["--uninstall"]).status.success());
    assert!(!unit.exists());
}

/// A child process that is killed (by its pid) when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Child {
    fn signal(&self, sig: &str) {
        sh(&format!("kill -{sig} {}", self.0.id()));
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The LAN's DHCP server (dnsmasq on `lan0`) with a fixed address per MAC, and the host's
/// DHCP client (busybox udhcpc) with a script that configures the interface it runs on.
struct Dhcp {
    dir: std::path::PathBuf,
    server: Child,
}

impl Dhcp {
    fn start(s: &Site, mac: &str, ip: &str) -> Option<Dhcp> {
        for tool in ["dnsmasq", "busybox"] {
            if Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {tool}"))
                .stdout(Stdio::null())
                .status()
                .map(|st| !st.success())
                .unwrap_or(true)
            {
                eprintln!("skipped: {tool} is not installed (scripts/deps.sh installs it)");
                return None;
            }
        }
        let dir = s.m.dir.path().join("dhcp");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hosts"), format!("{mac},{ip}\n")).unwrap();
        let script = dir.join("udhcpc.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n\
                 case \"$1\" in\n\
                 bound|renew)\n\
                 ip -4 -o addr show dev \"$interface\" scope global | while read _ _ _ a _; do\n\
                 [ \"$a\" = \"$ip/$mask\" ] || ip addr del \"$a\" dev \"$interface\"\n\
                 done\n\
                 ip addr replace \"$ip/$mask\" dev \"$interface\" valid_lft \"$lease\" preferred_lft \"$lease\"\n\
                 [ -n \"$router\" ] && ip route replace default via \"${{router%% *}}\" dev \"$interface\"\n\
                 echo \"$1 $interface $ip\" >> {}\n\
                 ;;\n\
                 esac\n",
                dir.join("events").display()
            ),
        )
        .unwrap();
        sh(&format!("chmod 755 {}", script.display()));
        let server = Command::new("ip")
            .args(["netns", "exec", &s.lan, "dnsmasq", "--keep-in-foreground"])
            .args([
                "--user=root",
                "--no-resolv",
                "--no-hosts",
                "--port=0",
                "--interface=lan0",
                "--bind-interfaces",
                "--dhcp-range=198.18.0.50,198.18.0.60,255.255.255.0,2m",
                "--dhcp-option=option:router,198.18.0.1",
                "--dhcp-authoritative",
                "--log-dhcp",
            ])
            .arg(format!("--dhcp-hostsfile={}", dir.join("hosts").display()))
            .arg(format!("--dhcp-leasefile={}", dir.join("leases").display()))
            .arg(format!(
                "--log-facility={}",
                dir.join("dnsmasq.log").display()
            ))
            .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Some(Dhcp {
            dir,
            server: Child(server),
        })
    }

    /// udhcpc on `dev` of the machine, in the foreground (its pid is the child's).
    fn client(&self, s: &Site, dev: &str) -> Child {
        Child(
            Command::new("ip")
                .args([
                    "netns", "exec", &s.m.ns, "busybox", "udhcpc", "-f", "-i", dev,
                ])
                .args(["-t", "20", "-T", "1", "-A", "1", "-s"])
                .arg(self.dir.join("udhcpc.sh"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn events(&self) -> String {
        std::fs::read_to_string(self.dir.join("events")).unwrap_or_default()
    }

    /// Leases the server holds: `(mac, ip)`.
    fn leases(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.dir.join("leases"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                (w.len() >= 3).then(|| (w[1].to_string(), w[2].to_string()))
            })
            .collect()
    }

    fn acks(&self, ip: &str) -> usize {
        std::fs::read_to_string(self.dir.join("dnsmasq.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("DHCPACK") && l.contains(ip))
            .count()
    }

    /// The server now gives `mac` the address `ip` (and refuses the old one).
    fn reassign(&self, mac: &str, ip: &str) {
        std::fs::write(self.dir.join("hosts"), format!("{mac},{ip}\n")).unwrap();
        self.server.signal("HUP");
    }
}

/// The adapter's address comes from DHCP. A DHCP client still running on the adapter is
/// refused with the fix; following the fix, the lease renews on the bridge (the same lease:
/// the bridge has the adapter's MAC), a renewal with a new address moves the bridge to it,
/// and after remove the address is back on the adapter, where the client carries on.
#[test]
fn a_dhcp_lease_keeps_renewing_on_the_bridge_and_comes_back() {
    let Some(s) = Site::new("dhcp") else { return };
    s.ip("route del default");
    s.ip("addr flush dev up0 scope global");
    let mac = link(&s.m.ip_json("link show"), "up0").unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    let Some(dhcp) = Dhcp::start(&s, &mac, "198.18.0.50") else {
        return;
    };
    let v4 = |dev: &str| ipv4_of(&s.m.ip_json("addr show"), dev);
    let client = dhcp.client(&s, "up0");
    wait_for("the first lease on up0", || v4("up0") == ["198.18.0.50/24"]);
    assert!(s.reachable("198.18.0.50"));

    // Two owners would fight: refused, naming the client and the fix; nothing changed.
    let before = l3(&s.m.ns, "up0");
    let out = s.m.edgenet(&["deploy", "-c", &s.cfg]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let pid = client.0.id();
    assert!(err.contains(&format!("udhcpc (pid {pid})")), "{err}");
    assert!(err.contains(&format!("kill {pid}")), "{err}");
    assert!(err.contains(&format!("-i {BRIDGE}")), "{err}");
    assert!(bridges(&s.m.ns).is_empty());
    assert!(!s.m.state.exists(), "not even the state directory was made");
    assert_eq!(l3(&s.m.ns, "up0"), before);

    // The fix: stop the client, deploy, run the client on the bridge.
    drop(client);
    s.deploy();
    assert_eq!(v4(BRIDGE), ["198.18.0.50/24"]);
    let on_bridge = dhcp.client(&s, BRIDGE);
    wait_for("the lease renewed on the bridge", || {
        dhcp.events()
            .contains(&format!("bound {BRIDGE} 198.18.0.50"))
    });
    let acks = dhcp.acks("198.18.0.50");
    on_bridge.signal("USR1");
    wait_for("a renewal acknowledged", || dhcp.acks("198.18.0.50") > acks);
    // dnsmasq rewrites its lease file in place after it logs the ACK: a read in between sees
    // it empty, so wait for the file rather than read it once.
    let one_lease = [(mac.clone(), "198.18.0.50".to_string())];
    wait_for("the lease file written", || !dhcp.leases().is_empty());
    assert_eq!(dhcp.leases(), one_lease, "one lease, the adapter's MAC");
    assert_eq!(v4(BRIDGE), ["198.18.0.50/24"]);
    assert!(v4("up0").is_empty());
    assert!(s.reachable("198.18.0.50"));

    // The server hands out another address at the next renewal.
    dhcp.reassign(&mac, "198.18.0.51");
    on_bridge.signal("USR1");
    // udhcpc ignores a renew request while it is between states (the NAK of the old address,
    // the new discover): ask again every few seconds until the new lease is in place.
    let mut asked = std::time::Instant::now();
    wait_for("the new address on the bridge", || {
        if asked.elapsed() > Duration::from_secs(3) {
            on_bridge.signal("USR1");
            asked = std::time::Instant::now();
        }
        v4(BRIDGE) == ["198.18.0.51/24"]
    });
    assert!(s.reachable("198.18.0.51"));
    let status: Value = serde_json::from_str(&s.m.ok(&["status", "--output", "json"])).unwrap();
    assert_eq!(status["drift"], json!([]), "{status:#}");
    // A second client started on the port by mistake is two owners: status says so.
    {
        let stray = Command::new("ip")
            .args([
                "netns",
                "exec",
                &s.m.ns,
                "busybox",
                "udhcpc",
                "-f",
                "-t",
                "100",
                "-T",
                "3",
                "-i",
                "up0",
                "-s",
                "/bin/true",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stray = Child(stray);
        let pid = stray.0.id();
        wait_for("the stray client to start", || {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"busybox"))
        });
        let status: Value =
            serde_json::from_slice(&s.m.edgenet(&["status", "--output", "json"]).stdout).unwrap();
        assert!(
            status["drift"]
                .to_string()
                .contains(&format!("udhcpc (pid {pid}) configures up0")),
            "{status:#}"
        );
        // Issue 8, defect 11: deploy does not say "No changes" over it; it refuses, naming
        // the client and the fix, and changes nothing.
        let before = s.m.dump();
        let out = s.m.edgenet(&["deploy", "-c", &s.cfg]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(
            err.contains(&format!("udhcpc (pid {pid}) configures up0")),
            "{err}"
        );
        assert!(err.contains(&format!("kill {pid}")), "{err}");
        assert_eq!(s.m.dump(), before);
    }

    // Issue 8, defect 3: remove while the client runs on the bridge it would delete: refused
    // (exit 3), naming the client and the fix, nothing changed.
    let before = s.m.dump();
    let out = s.m.edgenet(&["remove"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let pid = on_bridge.0.id();
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("udhcpc (pid {pid}) configures {BRIDGE}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("kill {pid}")) && err.contains("-i up0"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    assert_eq!(s.m.dump(), before);
    assert_eq!(v4(BRIDGE), ["198.18.0.51/24"]);

    // Remove: the client stops on the bridge, the address goes back to the adapter, and the
    // client carries on there with the same lease.
    drop(on_bridge);
    s.m.ok(&["remove"]);
    assert!(bridges(&s.m.ns).is_empty());
    assert_eq!(v4("up0"), ["198.18.0.51/24"]);
    assert!(
        l3(&s.m.ns, "up0")["addresses"][0]["dynamic"] == json!(true),
        "still a leased address"
    );
    let _again = dhcp.client(&s, "up0");
    wait_for("the lease renewed on up0", || {
        dhcp.events().contains("bound up0 198.18.0.51")
    });
    assert!(s.reachable("198.18.0.51"));
}

/// NetworkManager, systemd-networkd and ifupdown, each faked in a directory of the test's
/// own: deploy refuses with that manager's recipe for the bridge and changes nothing.
#[test]
fn an_adapter_a_network_manager_owns_is_refused_with_its_recipe() {
    let Some(s) = Site::new("mgr") else { return };
    let index = link(&s.m.ip_json("link show"), "up0").unwrap()["ifindex"]
        .as_u64()
        .unwrap();
    let fake = s.m.dir.path().join("managers");
    let (nm, netif, ifaces) = (fake.join("nm"), fake.join("netif"), fake.join("interfaces"));
    std::fs::create_dir_all(nm.join("devices")).unwrap();
    std::fs::create_dir_all(netif.join("links")).unwrap();
    std::fs::write(&ifaces, "auto lo\niface lo inet loopback\n").unwrap();
    let env = [
        ("EDGENET_NM_RUN_DIR", nm.to_str().unwrap()),
        ("EDGENET_NETWORKD_RUN_DIR", netif.to_str().unwrap()),
        ("EDGENET_IFUPDOWN_INTERFACES", ifaces.to_str().unwrap()),
    ];
    let before = l3(&s.m.ns, "up0");
    let refused = |expect: &[&str]| {
        let out = s.m.edgenet_env(&["deploy", "-c", &s.cfg], &env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        for e in expect {
            assert!(err.contains(e), "{e:?} in {err}");
        }
        assert!(bridges(&s.m.ns).is_empty());
        assert!(!s.m.state.exists());
        assert_eq!(l3(&s.m.ns, "up0"), before);
        // Issue 8, defect 7: check reports the same refusal, with the same recipe.
        let out = s.m.edgenet_env(&["check", "-c", &s.cfg], &env);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "check passed: {text}");
        for e in expect {
            assert!(text.contains(e), "check: {e:?} in {text}");
        }
    };
    std::fs::write(
        &ifaces,
        "auto lo\niface lo inet loopback\nallow-hotplug up0\niface up0 inet static\n  address 198.18.0.11/24\n",
    )
    .unwrap();
    refused(&[
        "ifupdown (`iface up0 inet static`",
        "bridge_ports up0",
        "iface aksedgesw-ext inet static",
    ]);
    std::fs::write(
        netif.join(format!("links/{index}")),
        "ADMIN_STATE=configured\nNETWORK_FILE=/etc/systemd/network/10-up0.network\n",
    )
    .unwrap();
    refused(&[
        "systemd-networkd (/etc/systemd/network/10-up0.network)",
        "Kind=bridge",
        "Bridge=aksedgesw-ext",
    ]);
    std::fs::write(
        nm.join(format!("devices/{index}")),
        "[device]\nmanaged=true\n",
    )
    .unwrap();
    refused(&[
        "NetworkManager configures up0",
        "nmcli connection add type bridge ifname aksedgesw-ext",
    ]);

    // Each told to leave the adapter alone: deploy goes ahead.
    std::fs::write(
        nm.join(format!("devices/{index}")),
        "[device]\nmanaged=false\n",
    )
    .unwrap();
    std::fs::write(
        netif.join(format!("links/{index}")),
        "ADMIN_STATE=unmanaged\n",
    )
    .unwrap();
    std::fs::write(&ifaces, "iface up0 inet manual\n").unwrap();
    let out = s.m.edgenet_env(&["deploy", "-c", &s.cfg], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 8, defect 7: check fails where deploy refuses: a foreign bridge with the switch's
/// name that does not have the adapter as its port, and the loopback as the adapter.
#[test]
fn check_fails_on_a_foreign_switch_bridge_and_a_loopback_adapter() {
    let Some(s) = Site::new("chk") else { return };
    let check = |cfg: &str| {
        let out = s.m.edgenet(&["check", "-c", cfg]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    assert_eq!(check(&s.cfg).0, Some(0), "{}", check(&s.cfg).1);
    s.ip(&format!("link add {BRIDGE} type bridge"));
    let (code, text) = check(&s.cfg);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(BRIDGE), "{text}");
    let out = s.m.edgenet(&["deploy", "-c", &s.cfg]);
    assert!(!out.status.success());
    s.ip(&format!("link del {BRIDGE}"));

    let mut lo = config("m0");
    lo["Machines"][0]["NetworkConnection"]["AdapterName"] = json!("lo");
    let lo = s.m.write_config("lo.json", &lo);
    let (code, text) = check(&lo);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("loopback"), "{text}");
    assert!(!s.m.edgenet(&["deploy", "-c", &lo]).status.success());
    assert!(bridges(&s.m.ns).is_empty());
}

/// Issue 8, defect 2: the adapter gets IPv6 by SLAAC from real router advertisements
/// (dnsmasq `--enable-ra`). After deploy the port does no IPv6 of its own (no kernel prefix
/// route left on it to win over the bridge's), the bridge takes the RAs, and IPv6 from the host
/// works; remove gives the adapter its IPv6 back.
#[test]
fn slaac_ipv6_moves_to_the_bridge_and_keeps_working() {
    let Some(s) = Site::new("slaac") else { return };
    if Command::new("sh")
        .arg("-c")
        .arg("command -v dnsmasq")
        .stdout(Stdio::null())
        .status()
        .map(|st| !st.success())
        .unwrap_or(true)
    {
        eprintln!("skipped: dnsmasq is not installed (scripts/deps.sh installs it)");
        return;
    }
    let (lan, peer, ns) = (&s.lan, &s.peer, &s.m.ns);
    sh(&format!(
        "ip -n {lan} addr add 2001:db8:7::1/64 dev lan0 nodad && \
         ip -n {peer} addr add 2001:db8:7::254/64 dev eth0 nodad"
    ));
    let dir = s.m.dir.path().join("ra");
    std::fs::create_dir_all(&dir).unwrap();
    let _ra = Child(
        Command::new("ip")
            .args(["netns", "exec", lan, "dnsmasq", "--keep-in-foreground"])
            .args([
                "--user=root",
                "--no-resolv",
                "--no-hosts",
                "--port=0",
                "--interface=lan0",
                "--bind-interfaces",
                "--enable-ra",
                "--dhcp-range=2001:db8:7::,ra-only",
            ])
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .arg(format!("--dhcp-leasefile={}", dir.join("leases").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let global6 = |dev: &str| -> Vec<String> {
        let addrs = json_of(&format!(
            "ip -n {ns} -6 -j addr show dev {dev} scope global 2>/dev/null || echo []"
        ));
        addrs
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a["local"].as_str().map(String::from))
            .collect()
    };
    let ping6 = || {
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ip netns exec {ns} ping -6 -c1 -W1 2001:db8:7::254"
            ))
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    // A router solicitation now rather than waiting for the next periodic RA.
    s.ip("link set up0 down");
    s.ip("link set up0 up");
    s.ip("route replace default via 198.18.0.1 dev up0");
    wait_for("a SLAAC address on up0", || !global6("up0").is_empty());
    wait_for("IPv6 from the host before deploy", ping6);
    let slaac = global6("up0");

    s.deploy();
    let prefix_on = |dev: &str| {
        sh_out(&format!(
            "ip -n {ns} -6 route show dev {dev} 2>/dev/null || true"
        ))
        .contains("2001:db8:7::/64")
    };
    assert!(!prefix_on("up0"), "the port keeps a prefix route");
    assert_eq!(s.m.sysctl("net.ipv6.conf.up0.disable_ipv6"), "1");
    assert_eq!(
        s.m.sysctl(&format!("net.ipv6.conf.{BRIDGE}.accept_ra")),
        s.m.sysctl("net.ipv6.conf.up0.accept_ra")
    );
    assert_eq!(global6(BRIDGE), slaac);
    assert!(prefix_on(BRIDGE));
    wait_for("IPv6 from the host through the bridge", ping6);
    // The bridge renews the address from the RAs itself.
    s.ip(&format!("link set {BRIDGE} down"));
    s.ip(&format!("link set {BRIDGE} up"));
    wait_for("SLAAC on the bridge", || global6(BRIDGE) == slaac);

    s.m.ok(&["remove"]);
    assert_eq!(s.m.sysctl("net.ipv6.conf.up0.disable_ipv6"), "0");
    wait_for("the SLAAC address back on up0", || global6("up0") == slaac);
    wait_for("IPv6 from the host after remove", ping6);
}

/// Issue 8, defect 10: the bridge deleted by hand with nothing put back on the adapter: status
/// says the host's addresses are on neither link, and the next deploy puts the recorded
/// configuration back on the new bridge, so the host is reachable again.
#[test]
fn a_bridge_deleted_by_hand_gets_the_hosts_configuration_back() {
    let Some(s) = Site::new("brdel") else { return };
    s.deploy();
    let on_bridge = l3(&s.m.ns, BRIDGE);
    s.ip(&format!("link del {BRIDGE}"));
    assert!(!s.reachable("198.18.0.11"));
    let out = s.m.edgenet(&["status", "--output", "json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        status["drift"].to_string().contains(
            "the host's addresses recorded for the adapter (198.18.0.11/24) are on neither"
        ),
        "{status:#}"
    );
    s.deploy();
    assert_eq!(l3(&s.m.ns, BRIDGE), on_bridge);
    assert!(has_default_via_gateway(&s, BRIDGE));
    assert!(s.reachable("198.18.0.11"));
    assert!(s.reachable("198.18.0.101"));
    let status: Value = serde_json::from_str(&s.m.ok(&["status", "--output", "json"])).unwrap();
    assert_eq!(status["drift"], json!([]), "{status:#}");
    // And remove gives it to the adapter.
    s.m.ok(&["remove"]);
    assert_eq!(
        ipv4_of(&s.m.ip_json("addr show"), "up0"),
        ["198.18.0.11/24"]
    );
    assert!(has_default_via_gateway(&s, "up0"));
    // IPv6 was still off on the adapter when the bridge went; it comes back as it was.
    assert_eq!(s.m.sysctl("net.ipv6.conf.up0.disable_ipv6"), "0");
}

/// Issue 8, defect 4: the adapter renamed while deployed (released, down, new name): remove
/// finds it by its MAC and gives it the host's configuration back under its new name.
#[test]
fn remove_finds_a_renamed_adapter_by_its_mac() {
    let Some(s) = Site::new("rnad") else { return };
    s.deploy();
    s.ip("link set up0 nomaster down name enp3s0");
    let out = s.m.edgenet(&["remove"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(bridges(&s.m.ns).is_empty());
    assert_eq!(
        ipv4_of(&s.m.ip_json("addr show"), "enp3s0"),
        ["198.18.0.11/24"]
    );
    assert!(has_default_via_gateway(&s, "enp3s0"));
    assert!(s.reachable("198.18.0.11"));
    assert!(!s.m.state.join("state.json").exists());
}

/// Issue 8, defect 4: the adapter gone while deployed: remove keeps the bridge that carries
/// the host's only address (reported as left, with why), removes the rest, and completes.
#[test]
fn remove_keeps_the_bridge_when_the_adapter_is_gone() {
    let Some(s) = Site::new("gonad") else { return };
    s.deploy();
    s.ip("link del up0");
    let out = s.m.edgenet(&["remove", "--output", "json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("adapter up0 is gone") || text.contains("adapter up0: gone"),
        "{text}"
    );
    assert!(
        text.contains(&format!("bridge {BRIDGE}: it carries the host's addresses")),
        "{text}"
    );
    assert_eq!(
        ipv4_of(&s.m.ip_json("addr show"), BRIDGE),
        ["198.18.0.11/24"]
    );
    assert!(s.m.node_namespaces().is_empty());
    assert!(!s.m.state.join("state.json").exists());
    let again = s.m.edgenet(&["remove"]);
    assert!(again.status.success());
    s.ip(&format!("link del {BRIDGE}"));
}

/// Extra host configuration on the adapter (a rule and a route in another table) so that a
/// give-back is checked on more than the address; returns the adapter's configuration.
fn richer_adapter(s: &Site) -> Value {
    s.ip("rule add iif up0 lookup 100 pref 1000");
    s.ip("route add 10.9.0.0/24 via 198.18.0.1 dev up0 table 100");
    l3(&s.m.ns, "up0")
}

fn changes_of(report: &Value) -> String {
    report["changes"].to_string()
}

fn master_of(s: &Site, dev: &str) -> Option<String> {
    link(&s.m.ip_json("link show"), dev).and_then(|l| l["master"].as_str().map(String::from))
}

/// B10 defect 1 (and 2's internal->external half): changing the switch kind tears the old
/// switch down through its driver: external -> internal gives the adapter back with
/// everything the host had on it; internal -> external removes the internal bridge.
#[test]
fn a_switch_kind_change_gives_the_adapter_back_and_removes_the_old_bridge() {
    let Some(s) = Site::new("f10akind") else {
        return;
    };
    let before = richer_adapter(&s);
    let ipv6 = s.m.sysctl("net.ipv6.conf.up0.disable_ipv6");
    s.m.deploy(None);
    s.deploy();
    assert_eq!(bridges(&s.m.ns), [BRIDGE], "internal -> external");
    assert_eq!(master_of(&s, "up0").as_deref(), Some(BRIDGE));
    // Back to the default by naming it (without -c, deploy applies the recorded one again).
    let back = s.m.deploy(Some(&s.m.default_config()));
    assert!(
        changes_of(&back).contains(&format!("removed switch {BRIDGE} (gave adapter up0 back)")),
        "{back:#}"
    );
    assert_eq!(bridges(&s.m.ns), ["aksedgesw-int"]);
    assert_eq!(master_of(&s, "up0"), None, "up0 is not a port");
    assert_eq!(l3(&s.m.ns, "up0"), before);
    assert_eq!(s.m.sysctl("net.ipv6.conf.up0.disable_ipv6"), ipv6);
    assert!(s.reachable("198.18.0.11"));
    let status: Value = serde_json::from_str(&s.m.ok(&["status", "--output", "json"])).unwrap();
    assert_eq!(status["drift"], json!([]), "{status:#}");
    s.m.ok(&["remove"]);
    assert_eq!(l3(&s.m.ns, "up0"), before);
    assert!(bridges(&s.m.ns).is_empty());
}

/// B10 defect 1B: a deploy of the external switch crashed right after taking the adapter
/// over; the next deploy of another plan gives it back (the records lead it).
#[test]
fn after_a_crash_mid_take_over_the_next_deploy_gives_the_adapter_back() {
    if !failpoints() {
        eprintln!("skipped: needs the failpoints feature");
        return;
    }
    let Some(s) = Site::new("f10acrash") else {
        return;
    };
    let before = richer_adapter(&s);
    s.m.deploy(None);
    let out = s.m.edgenet_env(
        &["deploy", "-c", &s.cfg],
        &[("EDGENET_FAILPOINT", "switch-adapter:crash")],
    );
    assert!(!out.status.success());
    assert_eq!(
        master_of(&s, "up0").as_deref(),
        Some(BRIDGE),
        "crashed as a port"
    );
    let status = s.m.edgenet(&["status", "--output", "json"]);
    assert_eq!(status.status.code(), Some(1), "the leftover is drift");
    let back = s.m.deploy(None);
    assert!(
        changes_of(&back).contains("gave adapter up0 back"),
        "{back:#}"
    );
    assert_eq!(master_of(&s, "up0"), None);
    assert_eq!(bridges(&s.m.ns), ["aksedgesw-int"]);
    assert_eq!(l3(&s.m.ns, "up0"), before);
    assert!(s.reachable("198.18.0.11"));
    s.m.ok(&["remove"]);
    assert_eq!(l3(&s.m.ns, "up0"), before);
}

/// B10 defect 2: a new switch name removes the old bridge (no second holder of the subnet's
/// address; the nodes' route goes through the new one).
#[test]
fn a_new_switch_name_removes_the_old_bridge() {
    let Some(s) = Site::new("f10aname") else {
        return;
    };
    s.m.deploy(None);
    let cfg =
        s.m.write_config("sw.json", &json!({"Edgenet": {"SwitchName": "f10asw-x"}}));
    let report = s.m.deploy(Some(&cfg));
    assert!(
        changes_of(&report).contains("removed switch aksedgesw-int"),
        "{report:#}"
    );
    assert_eq!(bridges(&s.m.ns), ["f10asw-x"]);
    let addrs = s.m.ip_json("addr show");
    assert_eq!(ipv4_of(&addrs, "f10asw-x"), ["192.168.0.1/24"]);
    let route = s.m.ip_json("route get 192.168.0.2");
    assert_eq!(route[0]["dev"], "f10asw-x", "{route:#}");
    let status: Value = serde_json::from_str(&s.m.ok(&["status", "--output", "json"])).unwrap();
    assert_eq!(status["drift"], json!([]), "{status:#}");
    s.m.ok(&["remove"]);
    assert!(bridges(&s.m.ns).is_empty());
}

/// B10 defect 5: another adapter on a deployed external switch: the old one is given back.
#[test]
fn another_adapter_gives_the_old_one_back() {
    let Some(s) = Site::new("f10aad") else { return };
    let before = richer_adapter(&s);
    s.deploy();
    sh(&format!(
        "ip -n {lan} link add m1 type veth peer name up1 netns {ns} && ip -n {lan} link set m1 master lan0 up && ip -n {ns} link set up1 up",
        lan = s.lan,
        ns = s.m.ns
    ));
    let mut c = config("m0");
    c["Machines"][0]["NetworkConnection"]["AdapterName"] = json!("up1");
    let cfg = s.m.write_config("up1.json", &c);
    let report = s.m.deploy(Some(&cfg));
    assert!(
        changes_of(&report).contains("gave adapter up0 back"),
        "{report:#}"
    );
    assert_eq!(master_of(&s, "up0"), None);
    assert_eq!(l3(&s.m.ns, "up0"), before);
    assert_eq!(master_of(&s, "up1").as_deref(), Some(BRIDGE));
    let status: Value = serde_json::from_str(&s.m.ok(&["status", "--output", "json"])).unwrap();
    assert_eq!(status["drift"], json!([]), "{status:#}");
    s.m.ok(&["remove"]);
    assert_eq!(l3(&s.m.ns, "up0"), before);
}

/// B10 defect 3: the bridge deleted by hand, then remove: the recorded configuration goes
/// back on the adapter (not only the rules), and the report says exactly that.
#[test]
fn remove_after_the_bridge_was_deleted_by_hand_puts_the_recorded_configuration_back() {
    let Some(s) = Site::new("f10adel") else {
        return;
    };
    let before = richer_adapter(&s);
    s.deploy();
    s.ip(&format!("link del {BRIDGE}"));
    let out = s.m.ok(&["remove", "--output", "json"]);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert!(
        report["restored"]
            .to_string()
            .contains("put back address 198.18.0.11/24 on up0"),
        "{report:#}"
    );
    assert_eq!(l3(&s.m.ns, "up0"), before);
    assert!(s.reachable("198.18.0.11"));
}

/// B10 defect 4: the adapter renamed while deployed and a deploy naming the new name: the
/// rename is followed, the deployment keeps working, and remove gives everything back.
#[test]
fn a_deploy_naming_a_renamed_adapter_follows_the_rename() {
    let Some(s) = Site::new("f10arn") else { return };
    let before = l3(&s.m.ns, "up0");
    s.deploy();
    s.ip("link set up0 down");
    s.ip("link set up0 name enp7s0");
    s.ip("link set enp7s0 up");
    let status = s.m.edgenet(&["status", "--output", "json"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("adapter up0 is now called enp7s0"), "{text}");
    let mut c = config("m0");
    c["Machines"][0]["NetworkConnection"]["AdapterName"] = json!("enp7s0");
    let cfg = s.m.write_config("rn.json", &c);
    if failpoints() {
        // A deploy naming the new name that fails: its rollback puts the previous deployment
        // back exactly (the renamed adapter stays the bridge's port, the host stays online).
        let out = s.m.edgenet_env(
            &["deploy", "-c", &cfg],
            &[("EDGENET_FAILPOINT", "firewall")],
        );
        assert!(!out.status.success());
        assert!(
            out.stderr.is_empty()
                || !String::from_utf8_lossy(&out.stderr).contains("rollback error"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(master_of(&s, "enp7s0").as_deref(), Some(BRIDGE));
        assert_eq!(
            ipv4_of(&s.m.ip_json("addr show"), BRIDGE),
            ["198.18.0.11/24"]
        );
        assert!(s.reachable("198.18.0.11"));
    }
    let report = s.m.deploy(Some(&cfg));
    // The record followed the rename in the first run naming the new name (the failed one,
    // with failpoints): the kernel did not change back, so neither does the record.
    assert!(
        failpoints() || changes_of(&report).contains("now called enp7s0"),
        "{report:#}"
    );
    assert_eq!(master_of(&s, "enp7s0").as_deref(), Some(BRIDGE));
    assert_eq!(
        ipv4_of(&s.m.ip_json("addr show"), BRIDGE),
        ["198.18.0.11/24"]
    );
    assert!(s.reachable("198.18.0.11"));
    assert!(s.reachable("198.18.0.101"));
    let out = s.m.ok(&["status", "--output", "json"]);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["drift"], json!([]), "{status:#}");
    s.m.ok(&["remove"]);
    assert_eq!(l3(&s.m.ns, "enp7s0"), before);
}

fn drift_of(s: &Site) -> (Option<i32>, Value) {
    let out = s.m.edgenet(&["status", "--output", "json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    (out.status.code(), status["drift"].clone())
}

/// B10 defect 9e: the bridge's MAC changed by hand is drift, and deploy sets the adapter's
/// back.
#[test]
fn a_bridge_mac_changed_by_hand_is_drift_that_deploy_repairs() {
    let Some(s) = Site::new("f10amac") else {
        return;
    };
    let mac = link(&s.m.ip_json("link show"), "up0").unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    s.deploy();
    s.ip(&format!("link set {BRIDGE} address 02:00:00:00:0f:09"));
    let (code, drift) = drift_of(&s);
    assert_eq!(code, Some(1));
    assert!(
        drift.to_string().contains("has MAC 02:00:00:00:0f:09"),
        "{drift:#}"
    );
    let report = s.deploy();
    assert!(changes_of(&report).contains("set MAC"), "{report:#}");
    assert_eq!(
        link(&s.m.ip_json("link show"), BRIDGE).unwrap()["address"],
        json!(mac)
    );
    assert_eq!(drift_of(&s), (Some(0), json!([])));
    s.m.ok(&["remove"]);
}

/// B10 defect 9b: IPv6 turned back on on the port is drift (deploy stops it again).
#[test]
fn ipv6_on_the_port_is_drift_that_deploy_repairs() {
    let Some(s) = Site::new("f10av6") else { return };
    s.deploy();
    assert_eq!(s.m.sysctl("net.ipv6.conf.up0.disable_ipv6"), "1");
    s.ip("link show up0 >/dev/null");
    sh(&format!(
        "ip netns exec {} sysctl -qw net.ipv6.conf.up0.disable_ipv6=0",
        s.m.ns
    ));
    let (code, drift) = drift_of(&s);
    assert_eq!(code, Some(1));
    assert!(drift.to_string().contains("IPv6 is on on up0"), "{drift:#}");
    let report = s.deploy();
    assert!(
        changes_of(&report).contains("stopped IPv6 on up0"),
        "{report:#}"
    );
    assert_eq!(s.m.sysctl("net.ipv6.conf.up0.disable_ipv6"), "1");
    assert_eq!(drift_of(&s), (Some(0), json!([])));
    s.m.ok(&["remove"]);
}

/// B10 defect 9a: a user's bridge with the adapter as its port but the host's addresses still
/// on the adapter: status says deploy moves them, and deploy does.
#[test]
fn a_users_bridge_with_addresses_left_on_its_port_is_repaired_by_deploy() {
    let Some(s) = Site::new("f10aubr") else {
        return;
    };
    let before = l3(&s.m.ns, "up0");
    let mac = link(&s.m.ip_json("link show"), "up0").unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    s.ip(&format!("link add {BRIDGE} address {mac} type bridge"));
    s.ip(&format!("link set up0 master {BRIDGE}"));
    s.ip(&format!("link set {BRIDGE} up"));
    s.deploy();
    // What deploy did the first time is repeated by hand: the addresses back on the port.
    let on_bridge = l3(&s.m.ns, BRIDGE);
    assert_eq!(on_bridge, before, "moved to the bridge");
    s.ip(&format!("addr del 198.18.0.11/24 dev {BRIDGE}"));
    s.ip("addr add 198.18.0.11/24 dev up0");
    let (code, drift) = drift_of(&s);
    assert_eq!(code, Some(1));
    assert!(
        drift.to_string().contains("run deploy to move it"),
        "{drift:#}"
    );
    let report = s.deploy();
    assert!(
        changes_of(&report).contains("moved address 198.18.0.11/24"),
        "{report:#}"
    );
    assert_eq!(
        ipv4_of(&s.m.ip_json("addr show"), BRIDGE),
        ["198.18.0.11/24"]
    );
    assert!(ipv4_of(&s.m.ip_json("addr show"), "up0").is_empty());
    s.m.ok(&["remove"]);
    s.ip(&format!("link del {BRIDGE}"));
}

/// B10 defects 1, 2: a switch-changing redeploy that fails is rolled back to the old switch,
/// in both directions.
#[test]
fn a_failed_switch_change_brings_the_old_switch_back() {
    if !failpoints() {
        eprintln!("skipped: needs the failpoints feature");
        return;
    }
    let Some(s) = Site::new("f10arb") else { return };
    let before = richer_adapter(&s);
    // internal -> external, failing late: the internal switch comes back, up0 as it was.
    s.m.deploy(None);
    // Made again (a new index), with the same MAC and address.
    let view = |s: &Site| {
        let a = s.m.ip_json("addr show aksedgesw-int");
        (a[0]["address"].clone(), ipv4_of(&a, "aksedgesw-int"))
    };
    let internal = view(&s);
    let out = s.m.edgenet_env(
        &["deploy", "-c", &s.cfg],
        &[("EDGENET_FAILPOINT", "firewall")],
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(bridges(&s.m.ns), ["aksedgesw-int"]);
    assert_eq!(view(&s), internal);
    assert_eq!(master_of(&s, "up0"), None);
    assert_eq!(l3(&s.m.ns, "up0"), before);
    assert_eq!(drift_of(&s), (Some(0), json!([])));
    // external -> internal, failing late: the external switch comes back with up0 its port
    // and the host's configuration on the bridge.
    s.deploy();
    let on_bridge = l3(&s.m.ns, BRIDGE);
    let out =
        s.m.edgenet_env(&["deploy"], &[("EDGENET_FAILPOINT", "firewall")]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(bridges(&s.m.ns), [BRIDGE]);
    assert_eq!(master_of(&s, "up0").as_deref(), Some(BRIDGE));
    assert_eq!(l3(&s.m.ns, BRIDGE), on_bridge);
    assert!(s.reachable("198.18.0.11"));
    assert_eq!(drift_of(&s), (Some(0), json!([])));
    s.m.ok(&["remove"]);
    assert_eq!(l3(&s.m.ns, "up0"), before);
}

/// B10 defect 3, partial: the bridge deleted by hand and only the primary address put back on
/// the adapter: remove puts back the rest of the recorded configuration, and says so.
#[test]
fn remove_after_a_partial_put_back_restores_the_rest() {
    let Some(s) = Site::new("f10apart") else {
        return;
    };
    let before = richer_adapter(&s);
    s.deploy();
    s.ip(&format!("link del {BRIDGE}"));
    s.ip("addr add 198.18.0.11/24 dev up0");
    let out = s.m.ok(&["remove", "--output", "json"]);
    let report: Value = serde_json::from_str(&out).unwrap();
    let restored = report["restored"].to_string();
    assert!(!restored.contains("put back address"), "{report:#}");
    assert!(
        restored.contains("put back default via 198.18.0.1 on up0"),
        "{report:#}"
    );
    assert_eq!(report["left"], json!([]), "{report:#}");
    assert_eq!(l3(&s.m.ns, "up0"), before);
}

/// The bridge set down by hand: the kernel flushes every route through it (the default route,
/// a route in another table) and bringing it up gives none back. Status names what is missing
/// as drift; deploy brings the bridge up and puts back everything recorded, saying so; then
/// there is nothing left to do.
#[test]
fn a_bridge_set_down_by_hand_gets_its_routes_back() {
    let Some(s) = Site::new("f2bd") else { return };
    richer_adapter(&s);
    // An IPv6 address goes with the bridge set down (`keep_addr_on_down` is off).
    s.ip("-6 addr add 2001:db8:f2::11/64 dev up0");
    s.deploy();
    let on_bridge = l3(&s.m.ns, BRIDGE);
    assert!(
        on_bridge.to_string().contains("2001:db8:f2::11"),
        "{on_bridge}"
    );
    assert!(has_default_via_gateway(&s, BRIDGE));
    s.ip(&format!("link set {BRIDGE} down"));
    // The kernel's doing, not ours: the default route is gone.
    assert!(!has_default_via_gateway(&s, BRIDGE));
    let out = s.m.edgenet(&["status", "--output", "json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{status:#}");
    let drift = status["drift"].to_string();
    assert!(
        drift.contains(&format!("bridge {BRIDGE} is down")),
        "{drift}"
    );
    assert!(drift.contains("default via 198.18.0.1"), "{drift}");
    assert!(drift.contains("address 2001:db8:f2::11/64"), "{drift}");
    assert!(
        drift.contains("10.9.0.0/24 via 198.18.0.1 table 100"),
        "{drift}"
    );
    let (code, uplink) = doctor_uplink(&s);
    assert_ne!(code, Some(0), "{uplink}");
    assert_eq!(uplink["status"], "FAIL", "{uplink}");
    // One fault, one FAIL: the nodes' gateway and DNS behind the same bridge are not judged.
    let out =
        s.m.edgenet(&["--output", "json", "doctor", "--timeout", "1"]);
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<&Value> = all["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "FAIL")
        .collect();
    assert_eq!(failed.len(), 1, "only uplink fails: {failed:#?}");
    let gateway = all["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "gateway")
        .expect("a node gateway check");
    assert!(
        gateway["detail"].as_str().unwrap().contains("see uplink"),
        "{gateway}"
    );
    assert!(
        uplink["detail"]
            .as_str()
            .unwrap()
            .contains("default via 198.18.0.1"),
        "{uplink}"
    );

    let report = s.deploy();
    let changes = changes_of(&report);
    assert!(
        changes.contains(&format!("brought {BRIDGE} up")),
        "{changes}"
    );
    assert!(
        changes.contains(&format!("put back default via 198.18.0.1 on {BRIDGE}")),
        "{changes}"
    );
    assert!(
        changes.contains("10.9.0.0/24 via 198.18.0.1 table 100"),
        "{changes}"
    );
    let routes = s.m.ip_json("route show default");
    assert!(
        routes
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["gateway"] == "198.18.0.1" && r["dev"] == BRIDGE),
        "{routes:#}"
    );
    assert_eq!(l3(&s.m.ns, BRIDGE), on_bridge);
    assert!(s.reachable("198.18.0.11"));
    assert_eq!(s.deploy()["changes"], json!([]), "then nothing");
    let text = s.m.ok(&["deploy", "-c", &s.cfg]);
    assert!(text.contains("No changes"), "{text}");
    let status: Value = serde_json::from_str(&s.m.ok(&["status", "--output", "json"])).unwrap();
    assert_eq!(status["drift"], json!([]), "{status:#}");
    assert_eq!(doctor_uplink(&s).1["status"], "PASS");
}

/// `edgenet doctor`'s `uplink` check, and doctor's exit code.
fn doctor_uplink(s: &Site) -> (Option<i32>, Value) {
    let out =
        s.m.edgenet(&["--output", "json", "doctor", "--timeout", "1"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "uplink")
        .unwrap_or_else(|| panic!("no uplink check: {v}"))
        .clone();
    (out.status.code(), check)
}

/// What an administrator adds on the bridge after the take-over is theirs: a deploy that
/// changes nothing does not record it (state.json untouched), and once they delete it again
/// neither status calls that drift nor a deploy puts it back. What moved off the adapter is
/// still put back (see `a_bridge_set_down_by_hand_gets_its_routes_back`).
#[test]
fn a_route_the_administrator_adds_and_deletes_on_the_bridge_stays_deleted() {
    let Some(s) = Site::new("f14rt") else { return };
    s.deploy();
    s.ip(&format!(
        "route add 10.77.0.0/16 via 198.18.0.1 dev {BRIDGE}"
    ));
    let state = || std::fs::read(s.m.state.join("state.json")).unwrap();
    let before = state();
    let report = s.deploy();
    assert_eq!(report["changes"], serde_json::json!([]), "{report}");
    assert_eq!(
        state(),
        before,
        "a deploy that changed nothing rewrote state.json"
    );
    s.ip(&format!(
        "route del 10.77.0.0/16 via 198.18.0.1 dev {BRIDGE}"
    ));
    let out = s.m.edgenet(&["status", "--output", "json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !status["drift"].to_string().contains("10.77.0.0/16"),
        "{status:#}"
    );
    let report = s.deploy();
    assert!(!changes_of(&report).contains("10.77.0.0/16"), "{report}");
    let routes = s.m.ip_json("route show 10.77.0.0/16");
    assert_eq!(routes, serde_json::json!([]), "put back: {routes}");
}

/// B18a D1: the adapter renamed while deployed, and again at a reboot (the NIC named anew, the
/// switch, nodes and tables gone), with the recorded config still naming the old name: deploy
/// follows the adapter by its MAC with an `adapter-renamed` warning instead of refusing it as
/// missing (which left a rebooted site without its nodes), and remove gives it back.
#[test]
fn a_deploy_still_naming_the_old_adapter_name_follows_the_rename() {
    let Some(s) = Site::new("f18old") else { return };
    let before = l3(&s.m.ns, "up0");
    s.deploy();
    let deploy_again = |now: &str| {
        let out = s.m.edgenet(&["deploy", "--output", "json"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "{stderr}\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            stderr.contains("adapter-renamed") && stderr.contains(&format!("\"{now}\"")),
            "{stderr}"
        );
        // And in the JSON report, for scripts.
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report["warnings"][0]["code"], "adapter-renamed",
            "{report:#}"
        );
        assert_eq!(master_of(&s, now).as_deref(), Some(BRIDGE));
        assert_eq!(
            ipv4_of(&s.m.ip_json("addr show"), BRIDGE),
            ["198.18.0.11/24"]
        );
        assert!(s.reachable("198.18.0.11"));
        assert!(s.reachable("198.18.0.101"));
    };
    // Renamed while deployed.
    s.ip("link set up0 down");
    s.ip("link set up0 name enp7s0");
    s.ip("link set enp7s0 up");
    deploy_again("enp7s0");
    let status: Value = serde_json::from_str(&s.m.ok(&["status", "--output", "json"])).unwrap();
    assert_eq!(status["drift"], json!([]), "{status:#}");
    // A reboot that names the NIC anew: nothing of the deployment is left in the kernel.
    for ns in s.m.node_namespaces() {
        sh(&format!("ip netns del {ns}"));
    }
    let ns = &s.m.ns;
    sh(&format!(
        "ip -n {ns} link del {BRIDGE}; ip netns exec {ns} nft flush ruleset; \
         ip -n {ns} link set enp7s0 down; ip -n {ns} link set enp7s0 name enp9s0; \
         ip -n {ns} link set enp9s0 up; ip -n {ns} addr flush dev enp9s0 scope global; \
         ip -n {ns} addr add 198.18.0.11/24 dev enp9s0; \
         ip -n {ns} route replace default via 198.18.0.1 dev enp9s0; \
         ip netns exec {ns} sysctl -qw net.ipv4.ip_forward=0"
    ));
    deploy_again("enp9s0");
    s.m.ok(&["remove"]);
    assert_eq!(l3(&s.m.ns, "enp9s0"), before);
}

/// B20 D1: the adapter renamed while deployed (deploy followed it, so its record has the new
/// name), then another NIC takes the old name, which the recorded config still gives: the
/// boot's deploy refuses, naming both, instead of moving the switch (and that NIC's address)
/// to the other NIC; nothing changes.
#[test]
fn a_new_nic_under_the_adapters_old_name_is_refused_after_a_followed_rename() {
    let Some(s) = Site::new("b20new") else { return };
    s.deploy();
    s.ip("link set up0 down");
    s.ip("link set up0 name enp7s0");
    s.ip("link set enp7s0 up");
    s.m.ok(&["deploy"]);
    assert_eq!(master_of(&s, "enp7s0").as_deref(), Some(BRIDGE));
    s.ip("link add up0 type veth peer name b20peer");
    s.ip("addr add 172.31.5.2/24 dev up0");
    s.ip("link set up0 up");
    let before = s.m.ip_json("addr show");
    let out = s.m.edgenet(&["deploy", "--output", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "deploy went through: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report.to_string().contains("adapter-renamed") && report.to_string().contains("enp7s0"),
        "{report:#}"
    );
    assert_eq!(master_of(&s, "up0"), None);
    assert_eq!(master_of(&s, "enp7s0").as_deref(), Some(BRIDGE));
    assert_eq!(s.m.ip_json("addr show"), before, "nothing changed");
    s.ip("link del up0");
    s.m.ok(&["remove"]);
}

/// B18b 3: the adapter's name taken by another NIC while the adapter has a new name (names
/// swapped, as udev can do at boot): deploy refuses, naming both, instead of moving the switch
/// to the other NIC; remove gives the host's configuration back to the deployment's NIC (found
/// by its MAC), not to the NIC that has its old name.
#[test]
fn swapped_adapter_names_are_refused_and_remove_follows_the_mac() {
    let Some(s) = Site::new("f18swap") else {
        return;
    };
    sh(&format!(
        "ip -n {lan} link add m1 type veth peer name up1 netns {ns} && ip -n {lan} link set m1 master lan0 up && ip -n {ns} link set up1 up",
        lan = s.lan,
        ns = s.m.ns
    ));
    let mac_of = |dev: &str| {
        link(&s.m.ip_json("link show"), dev).unwrap()["address"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let adapter_mac = mac_of("up0");
    s.deploy();
    s.ip("link set up0 down");
    s.ip("link set up1 down");
    s.ip("link set up0 name tmpx");
    s.ip("link set up1 name up0");
    s.ip("link set tmpx name up1");
    s.ip("link set up0 up");
    s.ip("link set up1 up");
    assert_eq!(mac_of("up1"), adapter_mac);
    let before = s.m.dump();
    let out = s.m.edgenet(&["deploy"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("adapter-renamed") && stderr.contains("\"up1\""),
        "{stderr}"
    );
    assert_eq!(s.m.dump(), before, "a refused deploy changes nothing");
    // N2: status names the NIC that has the recorded MAC now, not only "not a port".
    let (_, drift) = drift_of(&s);
    let drift = drift.to_string();
    assert!(
        drift.contains("called up1") && drift.contains(&adapter_mac),
        "{drift}"
    );
    assert!(!drift.contains("not a port"), "{drift}");
    s.m.ok(&["remove"]);
    assert_eq!(
        ipv4_of(&s.m.ip_json("addr show"), "up1"),
        ["198.18.0.11/24"],
        "the address goes back to the deployment's NIC"
    );
    assert!(ipv4_of(&s.m.ip_json("addr show"), "up0").is_empty());
}

/// N1: a reboot that swapped the NICs' names (the deployment's adapter, by its MAC, is `up1`
/// now; `up0` is the other NIC) and the boot gave `up0` the host's address and default route:
/// remove gives the deployment's NIC back its state, but never the host's address a second
/// time: it is left on `up0`, said so, naming `up0`.
#[test]
fn remove_after_a_reboot_that_swapped_names_makes_no_duplicate_address() {
    swapped_at_boot("o19swap", "");
}

/// N1, the boot's default route with another metric than the recorded one (a DHCP client's):
/// the recorded route goes through the address `up0` has now, so it is left too.
#[test]
fn remove_after_a_swap_leaves_a_route_through_the_address_held_elsewhere() {
    swapped_at_boot("o19swapm", " metric 100");
}

fn swapped_at_boot(tag: &str, metric: &str) {
    let Some(s) = Site::new(tag) else {
        return;
    };
    sh(&format!(
        "ip -n {lan} link add m1 type veth peer name up1 netns {ns} && ip -n {lan} link set m1 master lan0 up && ip -n {ns} link set up1 up",
        lan = s.lan,
        ns = s.m.ns
    ));
    let mac_of = |dev: &str| {
        link(&s.m.ip_json("link show"), dev).unwrap()["address"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let adapter_mac = mac_of("up0");
    s.deploy();
    // The reboot: the bridge goes, the names swap, the boot configures `up0` by its name.
    s.ip(&format!("link del {BRIDGE}"));
    s.ip("link set up0 down");
    s.ip("link set up1 down");
    s.ip("link set up0 name tmpx");
    s.ip("link set up1 name up0");
    s.ip("link set tmpx name up1");
    s.ip("link set up0 up");
    s.ip("link set up1 up");
    s.ip("addr add 198.18.0.11/24 dev up0");
    s.ip(&format!("route add default via 198.18.0.1 dev up0{metric}"));
    assert_eq!(mac_of("up1"), adapter_mac);
    let out = s.m.ok(&["remove", "--output", "json"]);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert!(
        ipv4_of(&s.m.ip_json("addr show"), "up1").is_empty(),
        "the same address on two NICs: {report:#}"
    );
    assert_eq!(
        ipv4_of(&s.m.ip_json("addr show"), "up0"),
        ["198.18.0.11/24"]
    );
    assert!(has_default_via_gateway(&s, "up0"), "{report:#}");
    assert!(!has_default_via_gateway(&s, "up1"), "{report:#}");
    let left = report["left"].to_string();
    assert!(
        left.contains("198.18.0.11/24") && left.contains("up0"),
        "the address is said left, naming where it is: {report:#}"
    );
    assert!(!report.to_string().contains("neither link"), "{report:#}");
    assert!(left.contains("route default via 198.18.0.1"), "{report:#}");
    assert!(s.reachable("198.18.0.11"));
}

/// B19 D1: a DHCP lease moved to the bridge that then runs out (the kernel deletes it) is the
/// DHCP client's to renew: status says so (not drift that deploy repairs), and deploy does not
/// put the address back with the lifetime it had when recorded.
#[test]
fn an_expired_dhcp_lease_is_not_put_back_on_the_bridge() {
    let Some(s) = Site::new("q19ls") else { return };
    s.ip("addr flush dev up0 scope global");
    s.ip("addr add 198.18.0.11/24 dev up0 valid_lft 6 preferred_lft 6");
    s.ip("route replace default via 198.18.0.1 dev up0 proto dhcp");
    s.deploy();
    assert_eq!(
        ipv4_of(&s.m.ip_json("addr show"), BRIDGE),
        ["198.18.0.11/24"]
    );
    std::thread::sleep(Duration::from_secs(8));
    assert!(ipv4_of(&s.m.ip_json("addr show"), BRIDGE).is_empty());

    let status: Value = serde_json::from_str(&s.m.ok(&["status", "--output", "json"])).unwrap();
    let drift = status["drift"].to_string();
    assert!(!drift.contains("on neither"), "{status:#}");
    assert!(
        status["notices"]
            .to_string()
            .contains("is the DHCP client running on aksedgesw-ext"),
        "{status:#}"
    );
    let out = s.m.edgenet(&["deploy", "-c", &s.cfg]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        ipv4_of(&s.m.ip_json("addr show"), BRIDGE).is_empty(),
        "an expired lease was put back: {text}"
    );
    assert!(text.contains("its DHCP lease expired"), "{text}");
}

/// B19 D7: the adapter without carrier (the LAN's end of the wire down): status says so in
/// text and JSON (`switch.adapter_carrier`), as a notice (deploy cannot repair a cable), and
/// doctor's failing gateway check points at it instead of at the switch.
#[test]
fn an_adapter_without_carrier_is_named_by_status_and_doctor() {
    let Some(s) = Site::new("nocar") else { return };
    s.deploy();
    let status = |s: &Site| {
        let out = s.m.edgenet(&["status", "--output", "json"]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let v = status(&s);
    assert_eq!(v["switch"]["adapter"], "up0", "{v:#}");
    assert_eq!(v["switch"]["adapter_carrier"], true, "{v:#}");

    sh(&format!("ip -n {} link set m0 down", s.lan));
    let v = status(&s);
    assert_eq!(v["switch"]["adapter_carrier"], false, "{v:#}");
    assert_eq!(v["drift"], json!([]), "{v:#}");
    assert!(
        v["notices"]
            .to_string()
            .contains("adapter up0 (the port of aksedgesw-ext to the LAN) has no carrier"),
        "{v:#}"
    );
    let text = s.m.ok(&["status"]);
    assert!(text.contains("adapter up0: NO CARRIER"), "{text}");
    let out =
        s.m.edgenet(&["--output", "json", "doctor", "--timeout", "1"]);
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    let gateway: Vec<&Value> = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "gateway" && c["status"] == "FAIL")
        .collect();
    assert!(!gateway.is_empty(), "{d:#}");
    for g in gateway {
        assert!(
            g["fix"].as_str().unwrap().contains("reconnect up0"),
            "{g:#}"
        );
    }
    sh(&format!("ip -n {} link set m0 up", s.lan));
}

/// B19 D4 on an external switch: `remove --orphan` deletes the lost deployment's nodes and
/// tables but leaves the bridge that holds the host's adapter and addresses (how to give them
/// back went with the state directory), and says so, as status's notice does: the host stays
/// reachable.
#[test]
fn an_orphans_external_switch_keeps_the_hosts_network() {
    let Some(s) = Site::new("orph") else { return };
    let id = s.deploy()["deployment_id"].as_str().unwrap().to_string();
    let node = s.m.linux_node_namespace();
    std::fs::remove_dir_all(&s.m.state).unwrap();
    let out = s.m.edgenet(&["status", "--output", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["notices"].to_string().contains(&format!(
            "bridge {BRIDGE} carries the mark of edgenet deployment {id}"
        )),
        "{v:#}"
    );
    let out =
        s.m.edgenet(&["remove", "--orphan", &id, "--output", "json"]);
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["left"]
            .to_string()
            .contains(&format!("bridge {BRIDGE}: it holds up0")),
        "{report:#}"
    );
    assert!(
        report["removed"]
            .to_string()
            .contains(&format!("network namespace {node}")),
        "{report:#}"
    );
    assert!(!sh_out("ip netns list").contains(&node));
    assert_eq!(bridges(&s.m.ns), vec![BRIDGE.to_string()]);
    assert!(s.reachable("198.18.0.11"));
}
