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
        [
            route("", "10.77.0.1", "vpn0"),
            route("", "198.18.0.1", "up0")
        ],
        "{out}"
    );
    assert_eq!(
        s.routes_to("10.50.0.0/16"),
        [
            route("", "10.77.0.1", "vpn0"),
            route("", "198.18.0.1", "up0")
        ],
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
        [route("", "10.77.0.1", "vpn0"), route("blackhole", "", "")]
    );
    // status names what holds the slot of the missing recorded route (deploy leaves them).
    let status = output_text(&s.m.edgenet(&["status"]));
    assert!(
        status.contains(
            "default via 198.18.0.1 metric 100 (beside default via 10.77.0.1 metric 100 dev vpn0; blackhole default metric 100, not edgenet's)"
        ),
        "{status}"
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
    assert!(
        out.contains("put back default via 198.18.0.1 metric 100 (beside "),
        "{out}"
    );
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
    let status = output_text(&s.m.edgenet(&["status"]));
    assert!(
        status.contains(&format!(
            "(beside {net} via 10.77.0.1 dev vpn0, not edgenet's"
        )),
        "{status}"
    );
    let out = s.m.ok(&["deploy"]);
    assert_eq!(
        s.routes_to(&net),
        [route("", "10.77.0.1", "vpn0"), route("", "", "f22sw1")],
        "{out}"
    );
    assert!(
        out.contains(&format!("beside {net} via 10.77.0.1 dev vpn0")),
        "{out}"
    );
    s.m.ok(&["remove", "-q"]);
    assert_eq!(s.routes_to(&net), [route("", "10.77.0.1", "vpn0")]);
}

/// The IPv4 addresses on `dev` in the machine's namespace.
fn addresses_of(s: &Site, dev: &str) -> Vec<String> {
    ipv4_of(&s.m.ip_json("addr"), dev)
}

/// 10: the host's address gone from the bridge to another up NIC is not put back on the bridge
/// too (the same address on two NICs); deploy says so and status names the NIC.
#[test]
fn an_address_another_nic_has_now_is_not_put_back_on_the_bridge() {
    let Some(s) = Site::new("a10") else { return };
    s.ip("route add default via 198.18.0.1 dev up0 metric 100");
    s.m.ok(&["deploy", "-c", &s.cfg, "-q"]);
    s.ip(&format!("addr del 198.18.0.11/24 dev {BRIDGE}"));
    s.ip("addr add 198.18.0.11/24 dev vpn0");
    let status = s.m.edgenet(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(
        status.contains("another NIC has them now: deploy leaves address 198.18.0.11/24 on vpn0"),
        "{status}"
    );
    let out = s.m.edgenet(&["deploy"]);
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(addresses_of(&s, BRIDGE).is_empty(), "{text}");
    assert_eq!(
        addresses_of(&s, "vpn0"),
        ["10.77.0.2/24", "198.18.0.11/24"],
        "{text}"
    );
    assert!(
        text.contains(
            "left address 198.18.0.11/24 on vpn0, which has it now: not put on aksedgesw-ext too"
        ),
        "{text}"
    );
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn link_names(s: &Site) -> Vec<String> {
    s.m.ip_json("link")
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

/// 2: a link someone put in the deployment's link group without its mark is left by remove
/// and by remove --orphan (which delete the deployment's own links one by one then), and
/// reported.
#[test]
fn a_foreign_link_in_the_deployments_link_group_is_never_deleted() {
    let Some(s) = Site::new("g2") else { return };
    let cfg = s.m.write_config(
        "int.json",
        &json!({"Network": {"SkipDnsCheck": true}, "Edgenet": {"SwitchName": "f22sw2", "MachineName": "f22c2"}}),
    );
    for orphan in [false, true] {
        s.m.ok(&["deploy", "-c", &cfg, "-q"]);
        let group = s.m.ip_json("-d link show f22sw2")[0]["group"]
            .as_str()
            .unwrap()
            .to_string();
        let _ = Command::new("ip")
            .args(["-n", &s.m.ns, "link", "del", "f22f0"])
            .stderr(Stdio::null())
            .status();
        s.ip("link add f22f0 type veth peer name f22f1");
        s.ip(&format!("link set f22f0 group {group}"));
        s.ip(&format!("link set f22f1 group {group}"));
        if !orphan {
            let status = s.m.edgenet(&["status"]);
            let status = output_text(&status);
            assert!(
                status.contains("interface f22f0: it is in this deployment's link group"),
                "{status}"
            );
        }
        let out = if orphan {
            let id = s.m.state_id().unwrap();
            std::fs::remove_dir_all(&s.m.state).unwrap();
            s.m.edgenet(&["remove", "--orphan", &id])
        } else {
            s.m.edgenet(&["remove"])
        };
        let text = output_text(&out);
        assert!(out.status.success(), "{text}");
        let links = link_names(&s);
        assert!(
            links.contains(&"f22f0".to_string()),
            "orphan {orphan}: {links:?}\n{text}"
        );
        assert!(
            links.contains(&"f22f1".to_string()),
            "orphan {orphan}: {links:?}\n{text}"
        );
        assert!(
            !links.contains(&"f22sw2".to_string()),
            "orphan {orphan}: {links:?}\n{text}"
        );
        assert!(
            text.contains("interface f22f0: it is in this deployment's link group"),
            "{text}"
        );
    }
}

/// 3: remove --orphan of a lost external deployment whose adapter is gone leaves the bridge
/// that carries the host's address and default route (as plain remove does), and says so.
#[test]
fn an_orphan_remove_leaves_a_bridge_with_the_hosts_network_when_the_adapter_is_gone() {
    let Some(s) = Site::new("o3") else { return };
    s.ip("route add default via 198.18.0.1 dev up0 metric 100");
    s.m.ok(&["deploy", "-c", &s.cfg, "-q"]);
    let id = s.m.state_id().unwrap();
    s.ip(&format!("link set up0 netns {}", s.lan));
    std::fs::remove_dir_all(&s.m.state).unwrap();
    let out = s.m.edgenet(&["remove", "--orphan", &id]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(addresses_of(&s, BRIDGE), ["198.18.0.11/24"], "{text}");
    assert_eq!(
        s.routes_to("default"),
        [route("", "198.18.0.1", BRIDGE)],
        "{text}"
    );
    assert!(
        text.contains(&format!("bridge {BRIDGE}: it carries the host's network")),
        "{text}"
    );
    // The node's veth and namespace went.
    assert!(s.m.node_namespaces().is_empty(), "{text}");
}

/// 5: the temp files of killed runs in the state directory (the ruleset cache's
/// `ruleset-cache.json.tmp-PID`, a state file's `.state.json.….tmp`) are deleted by remove,
/// listed in `leftover_files`, and the state directory goes.
#[test]
fn remove_deletes_the_temp_files_of_killed_runs_and_the_state_directory() {
    let Some(s) = Site::new("t5") else { return };
    let cfg = s.m.write_config(
        "int.json",
        &json!({"Network": {"SkipDnsCheck": true}, "Edgenet": {"SwitchName": "f22sw5", "MachineName": "f22c5"}}),
    );
    s.m.ok(&["deploy", "-c", &cfg, "-q"]);
    // PIDs no process has (above the kernel's pid_max limit of 2^22).
    let cache_tmp = s.m.state.join("ruleset-cache.json.tmp-4194399");
    let state_tmp = s.m.state.join(".state.json.Ab12Z.tmp");
    std::fs::write(&cache_tmp, "{}").unwrap();
    std::fs::write(&state_tmp, "").unwrap();
    let out = s.m.edgenet(&["remove", "-o", "json"]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed: Vec<&str> = v["leftover_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(listed.contains(&cache_tmp.to_str().unwrap()), "{text}");
    assert!(listed.contains(&state_tmp.to_str().unwrap()), "{text}");
    assert!(!s.m.state.exists(), "{text}");
    // With nothing recorded, the same.
    std::fs::create_dir_all(&s.m.state).unwrap();
    std::fs::write(&cache_tmp, "{}").unwrap();
    let out = s.m.edgenet(&["remove", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["leftover_files"],
        json!([cache_tmp.to_str().unwrap()]),
        "{}",
        output_text(&out)
    );
    assert!(!s.m.state.exists());
}

/// 7: deploy over a lost external deployment whose bridge still holds the adapter gives the
/// advice that works (by hand: addresses and routes back, IPv6 back on the adapter, the
/// bridge deleted), not only `remove --orphan`, which leaves that bridge; --orphan's line
/// names the adapter's IPv6 too.
#[test]
fn the_hint_for_a_lost_external_deployment_gives_the_way_out_that_works() {
    let Some(s) = Site::new("h7") else { return };
    s.ip("route add default via 198.18.0.1 dev up0 metric 100");
    s.m.ok(&["deploy", "-c", &s.cfg, "-q"]);
    let id = s.m.state_id().unwrap();
    std::fs::remove_dir_all(&s.m.state).unwrap();
    let out = s.m.edgenet(&["deploy", "-c", &s.cfg]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("move the addresses and routes back to up0"),
        "{text}"
    );
    assert!(
        text.contains("net.ipv6.conf.up0.disable_ipv6` back to 0"),
        "{text}"
    );
    assert!(text.contains(&format!("`ip link del {BRIDGE}`")), "{text}");
    let out = s.m.edgenet(&["remove", "--orphan", &id]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("net.ipv6.conf.up0.disable_ipv6` back to 0"),
        "{text}"
    );
    // The bridge and the host's network on it stay.
    assert_eq!(addresses_of(&s, BRIDGE), ["198.18.0.11/24"], "{text}");
}

/// 6: remove --orphan leaves IPv4 forwarding on when the host forwarded before the deployment
/// came (nothing says it turned it on), and sets it back when its deploy noted that it did.
#[test]
fn an_orphan_remove_sets_forwarding_back_only_with_evidence() {
    let Some(s) = Site::new("f6") else { return };
    let cfg = s.m.write_config(
        "int.json",
        &json!({"Network": {"SkipDnsCheck": true}, "Edgenet": {"SwitchName": "f22sw6", "MachineName": "f22c6"}}),
    );
    for before in ["1", "0"] {
        sh(&format!(
            "ip netns exec {} sysctl -qw net.ipv4.ip_forward={before}",
            s.m.ns
        ));
        s.m.ok(&["deploy", "-c", &cfg, "-q"]);
        assert_eq!(s.m.sysctl("net.ipv4.ip_forward").trim(), "1");
        let id = s.m.state_id().unwrap();
        std::fs::remove_dir_all(&s.m.state).unwrap();
        let out = s.m.edgenet(&["remove", "--orphan", &id]);
        let text = output_text(&out);
        assert!(out.status.success(), "{text}");
        assert_eq!(s.m.sysctl("net.ipv4.ip_forward").trim(), before, "{text}");
        if before == "1" {
            assert!(
                text.contains("nothing says this deployment turned it on"),
                "{text}"
            );
        }
    }
}

/// 1, IPv6: a VPN's IPv6 default route of the same metric is a sibling hop of the adapter's
/// (the kernel makes one multipath route of them): only the adapter's hop moves to the bridge
/// and back, the VPN's stays.
#[test]
fn an_ipv6_sibling_hop_of_another_interface_stays_through_deploy_and_remove() {
    let Some(s) = Site::new("r6") else { return };
    s.ip("route add default via 198.18.0.1 dev up0 metric 100");
    s.ip("addr add fd00:2::11/64 dev up0 nodad");
    s.ip("addr add fd00:7::2/64 dev vpn0 nodad");
    s.ip("-6 route add default via fd00:2::1 dev up0 metric 1024");
    s.ip("-6 route append default via fd00:7::1 dev vpn0 metric 1024");
    let hops = || -> Vec<(String, String)> {
        let mut out = Vec::new();
        for r in s.m.ip_json("-6 route show default").as_array().unwrap() {
            let hop = |h: &serde_json::Value| {
                (
                    h["gateway"].as_str().unwrap_or("").to_string(),
                    h["dev"].as_str().unwrap_or("").to_string(),
                )
            };
            match r["nexthops"].as_array() {
                Some(hs) => out.extend(hs.iter().map(hop)),
                None => out.push(hop(r)),
            }
        }
        out.sort();
        out
    };
    let pair = |g: &str, d: &str| (g.to_string(), d.to_string());
    assert_eq!(
        hops(),
        [pair("fd00:2::1", "up0"), pair("fd00:7::1", "vpn0")]
    );
    let out = s.m.ok(&["deploy", "-c", &s.cfg]);
    assert_eq!(
        hops(),
        [pair("fd00:2::1", BRIDGE), pair("fd00:7::1", "vpn0")],
        "{out}"
    );
    // The change list names the hop it left, as it names a route of another interface.
    let kept =
        "kept the hop default (IPv6) via fd00:7::1 metric 1024 dev vpn0 as it is (not edgenet's)";
    assert!(out.contains(kept), "{out}");
    let out = s.m.ok(&["remove"]);
    assert_eq!(
        hops(),
        [pair("fd00:2::1", "up0"), pair("fd00:7::1", "vpn0")],
        "{out}"
    );
    assert!(out.contains(kept), "{out}");
}
