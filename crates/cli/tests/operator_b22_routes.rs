//! Defects of the black-box operator test B22 about what edgenet must leave alone: routes of
//! other interfaces in the slot of a route edgenet moves or puts back (1), an address another
//! NIC holds now (10), an unmarked link in the deployment's link group (2), an external
//! switch's bridge that carries the host's configuration (3), temp files in the state
//! directory (5), the lost external deployment's advice (7), forwarding after an orphan
//! remove (6). Every namespace is named `f22-…`.

mod support;

use std::process::{Command, Stdio};

use serde_json::json;
use support::*;

const BRIDGE: &str = "aksedgesw-ext";

/// A machine whose adapter `up0` (198.18.0.11/24, default via 198.18.0.1 metric 100) is a veth
/// into a LAN namespace, with a second uplink `vpn0` (10.77.0.2/24) of its own.
struct Site {
    m: Machine,
    lan: String,
    cfg: String,
}

impl Site {
    fn new(tag: &str) -> Option<Site> {
        let m = machine_prefixed("f22", tag)?;
        let lan = format!("f22-{tag}-lan-{}", std::process::id());
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
             ip -n {ns} link add vpn0 type veth peer name vpn0p && ip -n {ns} link set vpn0 up && \
             ip -n {ns} link set vpn0p up && ip -n {ns} addr add 10.77.0.2/24 dev vpn0"
        ));
        std::fs::write(&m.resolv, "nameserver 198.18.0.1\n").unwrap();
        let cfg = m.write_config(
            "c.json",
            &json!({
                "DeploymentType": "ScalableCluster",
                "Init": {"ServiceIPRangeStart": "198.18.0.200", "ServiceIPRangeSize": 10},
                "Network": {"ControlPlaneEndpointIp": "198.18.0.100", "Ip4GatewayAddress": "198.18.0.1",
                            "Ip4PrefixLength": 24, "DnsServers": ["198.18.0.1"], "SkipDnsCheck": true},
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

    /// The routes to `dst` as (type, gateway, device), in the kernel's order.
    fn routes_to(&self, dst: &str) -> Vec<(String, String, String)> {
        self.m
            .ip_json(&format!("route show {dst}"))
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
                (s("type"), s("gateway"), s("dev"))
            })
            .collect()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.lan])
            .status();
    }
}

fn route(kind: &str, gateway: &str, dev: &str) -> (String, String, String) {
    (kind.to_string(), gateway.to_string(), dev.to_string())
}

/// 1 (a): the adapter's routes move to the bridge *beside* a second uplink's routes of the
/// same destination and metric (a VPN's default route, a route of its own); remove moves them
/// back beside them again. The other uplink's routes are never replaced or deleted, and the
/// change list names them.
#[test]
fn routes_of_another_interface_in_the_same_slot_stay_through_deploy_and_remove() {
    let Some(s) = Site::new("r1") else { return };
    s.ip("route add default via 10.77.0.1 dev vpn0 metric 100");
    s.ip("route append default via 198.18.0.1 dev up0 metric 100");
    s.ip("route add 10.50.0.0/16 via 10.77.0.1 dev vpn0");
    s.ip("route append 10.50.0.0/16 via 198.18.0.1 dev up0");
    let out = s.m.ok(&["deploy", "-c", &s.cfg]);
    assert_eq!(
        s.routes_to("default"),
        [
            route("", "10.77.0.1", "vpn0"),
            route("", "198.18.0.1", BRIDGE)
        ],
        "{out}"
    );
    assert_eq!(
        s.routes_to("10.50.0.0/16"),
        [
            route("", "10.77.0.1", "vpn0"),
            route("", "198.18.0.1", BRIDGE)
        ],
        "{out}"
    );
    assert!(
        out.contains("kept default via 10.77.0.1 metric 100 dev vpn0 as it is (not edgenet's)"),
        "{out}"
    );
    let out = s.m.ok(&["remove"]);
    assert_eq!(
        s.routes_to("default"),
        [route("", "10.77.0.1", "vpn0"), route("", "198.18.0.1", "up0")],
        "{out}"
    );
    assert_eq!(
        s.routes_to("10.50.0.0/16"),
        [route("", "10.77.0.1", "vpn0"), route("", "198.18.0.1", "up0")],
        "{out}"
    );
}

/// 1 (b): the recorded default route put back on the bridge goes beside what holds its slot
/// now (a VPN's default route, an administrator's blackhole), which stays.
#[test]
fn a_recorded_route_is_put_back_beside_a_vpn_route_and_a_blackhole() {
    let Some(s) = Site::new("r2") else { return };
    s.ip("route add default via 198.18.0.1 dev up0 metric 100");
    s.m.ok(&["deploy", "-c", &s.cfg, "-q"]);
    // The VPN takes the default route (`ip route replace` takes the bridge's slot).
    s.ip("route replace default via 10.77.0.1 dev vpn0 metric 100");
    s.ip("route append blackhole default metric 100");
    assert_eq!(
        s.routes_to("default"),
        [
            route("", "10.77.0.1", "vpn0"),
            route("blackhole", "", "")
        ]
    );
    let out = s.m.ok(&["deploy"]);
    assert_eq!(
        s.routes_to("default"),
        [
            route("", "10.77.0.1", "vpn0"),
            route("blackhole", "", ""),
            route("", "198.18.0.1", BRIDGE)
        ],
        "{out}"
    );
    assert!(out.contains("put back default via 198.18.0.1 metric 100 (beside "), "{out}");
    assert!(out.contains("blackhole default metric 100"), "{out}");
    s.m.ok(&["remove", "-q"]);
    assert_eq!(
        s.routes_to("default"),
        [
            route("", "10.77.0.1", "vpn0"),
            route("blackhole", "", ""),
            route("", "198.18.0.1", "up0")
        ]
    );
}

/// 1 (c): the kernel's route of the internal switch's address, deleted by hand and replaced by
/// an administrator's route through another interface, is added back beside it, not in its
/// place.
#[test]
fn the_switch_subnet_route_is_added_back_beside_an_administrators_route() {
    let Some(s) = Site::new("r3") else { return };
    let cfg = s.m.write_config(
        "int.json",
        &json!({"Network": {"SkipDnsCheck": true}, "Edgenet": {"SwitchName": "f22sw1", "MachineName": "f22c1"}}),
    );
    s.m.ok(&["deploy", "-c", &cfg, "-q"]);
    let connected = s.m.ip_json("route show dev f22sw1 proto kernel");
    let net = connected[0]["dst"].as_str().unwrap().to_string();
    s.ip(&format!("route del {net} dev f22sw1"));
    s.ip(&format!("route add {net} via 10.77.0.1 dev vpn0"));
    let out = s.m.ok(&["deploy"]);
    assert_eq!(
        s.routes_to(&net),
        [route("", "10.77.0.1", "vpn0"), route("", "", "f22sw1")],
        "{out}"
    );
    assert!(out.contains(&format!("beside {net} via 10.77.0.1 dev vpn0")), "{out}");
    s.m.ok(&["remove", "-q"]);
    assert_eq!(s.routes_to(&net), [route("", "10.77.0.1", "vpn0")]);
}
