//! Defects of the black-box operator test B21 on a scalable site: a machine whose adapter `up0`
//! (198.18.0.11/24, default via 198.18.0.1) is a veth into a LAN namespace. Namespaces are
//! named `p21-…`.

mod support;

use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::*;

const BRIDGE: &str = "aksedgesw-ext";

struct Site {
    m: Machine,
    lan: String,
    cfg: String,
}

impl Site {
    fn new(tag: &str) -> Option<Site> {
        let m = machine_prefixed("p21", tag)?;
        let lan = format!("p21-{tag}-lan-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &lan])
            .stderr(Stdio::null())
            .status();
        let ns = &m.ns;
        sh(&format!(
            "ip netns add {lan} && ip -n {lan} link set lo up && ip -n {lan} link add lan0 type bridge && \
             ip -n {lan} addr add 198.18.0.1/24 dev lan0 && ip -n {lan} link set lan0 up && \
             ip -n {lan} link add m0 type veth peer name up0 netns {ns} && ip -n {lan} link set m0 master lan0 up && \
             ip -n {ns} link set up0 up && ip -n {ns} addr add 198.18.0.11/24 dev up0 && \
             ip -n {ns} route add default via 198.18.0.1 dev up0"
        ));
        std::fs::write(&m.resolv, "nameserver 198.18.0.1\n").unwrap();
        let cfg = m.write_config(
            "c.json",
            &json!({
                "DeploymentType": "ScalableCluster",
                "Init": {"ServiceIPRangeStart": "198.18.0.200", "ServiceIPRangeSize": 10},
                "Network": {"ControlPlaneEndpointIp": "198.18.0.100", "Ip4GatewayAddress": "198.18.0.1", "Ip4PrefixLength": 24, "DnsServers": ["198.18.0.1"]},
                "Machines": [{
                    "MachineName": "m0",
                    "NetworkConnection": {"AdapterName": "up0", "Mtu": 0},
                    "LinuxNode": {"Ip4Address": "198.18.0.101", "ControlPlane": true},
                }],
            }),
        );
        Some(Site { m, lan, cfg })
    }

    fn ip(&self, args: &str) {
        sh(&format!("ip -n {} {args}", self.m.ns));
    }

    fn default_routes(&self) -> Vec<Value> {
        self.m
            .ip_json("route show default")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.lan])
            .status();
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// N1: the unit written without `-c` over a recorded scalable deployment waits for its
/// adapter as the unit written with `-c` does; and the boot deploy of a deployment whose
/// adapter is not there yet exits 3, which the unit retries (exit 1 it does not).
#[test]
fn the_boot_unit_without_c_waits_for_the_adapter_and_a_late_adapter_is_retried() {
    let Some(s) = Site::new("n1") else { return };
    s.m.ok(&["deploy", "-c", &s.cfg, "-q"]);
    let with_c = s.m.ok(&["install-unit", "--print", "-c", &s.cfg]);
    let without_c = s.m.ok(&["install-unit", "--print"]);
    let wait = |unit: &str| {
        unit.lines()
            .find(|l| l.starts_with("ExecStartPre="))
            .map(String::from)
    };
    assert!(
        wait(&with_c).is_some_and(|l| l.contains(" edgenet-adapter-wait up0 ")),
        "{with_c}"
    );
    assert_eq!(wait(&without_c), wait(&with_c), "{without_c}");
    assert!(without_c.contains("\nRestartPreventExitStatus=1 2\n"));

    // A reboot with the adapter not there yet: the switch and nodes gone, up0 elsewhere.
    for ns in s.m.node_namespaces() {
        sh(&format!("ip netns del {ns}"));
    }
    s.ip(&format!("link del {BRIDGE}"));
    sh(&format!("ip netns exec {} nft flush ruleset", s.m.ns));
    s.ip(&format!("link set up0 netns {}", s.lan));
    let out = s.m.edgenet(&["deploy", "--wait", "5"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("adapter-missing"), "{err}");
    let json = s.m.edgenet(&["deploy", "-o", "json"]);
    assert_eq!(json.status.code(), Some(3), "{}", text(&json));
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["error"]["code"], "adapter-not-there", "{v}");
    // The adapter comes: the retry deploys.
    sh(&format!(
        "ip -n {} link set up0 netns {} && ip -n {} link set up0 up",
        s.lan, s.m.ns, s.m.ns
    ));
    s.m.ok(&["deploy", "-q"]);
    // A config naming an adapter this deployment never had is the config's mistake: exit 1.
    let mut other: Value = serde_json::from_str(&std::fs::read_to_string(&s.cfg).unwrap()).unwrap();
    other["Machines"][0]["NetworkConnection"]["AdapterName"] = json!("Ethernet");
    let other = s.m.write_config("other.json", &other);
    let out = s.m.edgenet(&["deploy", "-c", &other]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    s.m.ok(&["remove"]);
}

/// N2: a default route on the bridge with another metric (a new router, a DHCP client's
/// `metric 100`) is the newer one: no drift, and deploy adds no second default route.
#[test]
fn a_default_route_of_another_metric_on_the_bridge_is_not_drift_nor_put_back() {
    let Some(s) = Site::new("n2") else { return };
    s.m.ok(&["deploy", "-c", &s.cfg, "-q"]);
    assert_eq!(s.default_routes().len(), 1, "{:?}", s.default_routes());
    s.ip("route del default");
    s.ip(&format!(
        "route add default via 198.18.0.254 dev {BRIDGE} metric 100"
    ));
    let out = s.m.edgenet(&["status"]);
    assert!(out.status.success(), "no drift: {}", text(&out));
    s.m.ok(&["deploy", "-q"]);
    let routes = s.default_routes();
    assert_eq!(routes.len(), 1, "no second default route: {routes:?}");
    assert_eq!(routes[0]["gateway"], "198.18.0.254", "{routes:?}");
    // A DHCP client's route via the same gateway, metric 100.
    s.ip("route del default");
    s.ip(&format!(
        "route add default via 198.18.0.1 dev {BRIDGE} proto dhcp metric 100"
    ));
    let out = s.m.edgenet(&["status"]);
    assert!(out.status.success(), "no drift: {}", text(&out));
    s.m.ok(&["deploy", "-q"]);
    assert_eq!(s.default_routes().len(), 1, "{:?}", s.default_routes());
    // No default route left on the bridge at all: that is drift, and deploy puts it back.
    s.ip("route del default");
    let out = s.m.edgenet(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    s.m.ok(&["deploy", "-q"]);
    let routes = s.default_routes();
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0]["gateway"], "198.18.0.1", "{routes:?}");
    s.m.ok(&["remove"]);
}
