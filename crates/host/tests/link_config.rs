//! Moving a link's whole configuration to another link and back, against the real kernel in
//! a throwaway namespace; compared with `ip -j` dumps.

mod common;

use common::{root_or_skip, TestNs};
use edgenet_host::netlink::Netlink;
use serde_json::Value;

/// Addresses (without lifetimes), routes of every table and rules naming `dev`, with the
/// name replaced by DEV.
fn config_of(ns: &TestNs, dev: &str) -> Value {
    let mut addrs = ns.ip_json(&["addr", "show", "dev", dev]);
    for l in addrs.as_array_mut().unwrap() {
        // IPv6 link-local addresses are the link's own.
        l["addr_info"]
            .as_array_mut()
            .unwrap()
            .retain(|a| !(a["family"] == "inet6" && a["scope"] == "link"));
        for a in l["addr_info"].as_array_mut().unwrap() {
            let a = a.as_object_mut().unwrap();
            a.remove("valid_life_time");
            a.remove("preferred_life_time");
        }
        let l = l.as_object_mut().unwrap();
        for k in [
            "ifindex",
            "ifname",
            "flags",
            "mtu",
            "qdisc",
            "operstate",
            "group",
            "txqlen",
            "link_type",
            "address",
            "broadcast",
            "master",
            "link",
        ] {
            l.remove(k);
        }
    }
    let mut routes = Vec::new();
    for fam in ["-4", "-6"] {
        for r in ns
            .ip_json(&[fam, "route", "show", "table", "all", "dev", dev])
            .as_array()
            .unwrap()
        {
            let dst = r["dst"].as_str().unwrap_or("");
            if !dst.starts_with("fe80") && !dst.starts_with("ff00") {
                routes.push(r.clone());
            }
        }
    }
    let rules: Vec<Value> = ["-4", "-6"]
        .iter()
        .flat_map(|f| ns.ip_json(&[f, "rule", "show"]).as_array().unwrap().clone())
        .filter(|r| r["iif"] == dev || r["oif"] == dev)
        .collect();
    let text = serde_json::json!({"addrs": addrs, "routes": routes, "rules": rules})
        .to_string()
        .replace(&format!("\"{dev}"), "\"DEV");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_links_configuration_moves_to_another_link_and_back_exactly() {
    if !root_or_skip("a_links_configuration_moves_to_another_link_and_back_exactly") {
        return;
    }
    let ns = TestNs::new("linkcfg");
    ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"]);
    ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
    for cmd in [
        "link add a0 type veth peer name a1",
        "link add b0 type veth peer name b1",
        "link set a1 up",
        "link set b1 up",
        "link set a0 up",
        "link set b0 up",
        "addr add 10.1.0.2/24 dev a0 label a0:x",
        "addr add 10.1.0.3/24 dev a0 valid_lft 900 preferred_lft 600",
        "addr add 10.2.0.2/24 dev a0 noprefixroute",
        "addr add fd00:1::2/64 dev a0",
        "route add default via 10.1.0.1 dev a0 src 10.1.0.2 metric 50",
        "route add 10.9.0.0/16 via 192.0.2.1 dev a0 onlink mtu lock 1300",
        "route add 10.8.0.0/16 via 10.1.0.1 dev a0 table 7 proto static",
        "-6 route add fd00:9::/48 via fd00:1::1 dev a0 metric 77",
        "rule add iif a0 table 7 pref 500",
        "rule add oif a0 table 7 pref 501",
    ] {
        let args: Vec<&str> = cmd.split(' ').collect();
        ns.ip(&args);
    }
    let before = config_of(&ns, "a0");
    let moved = ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        let moved = nl.move_link_config("a0", "b0").unwrap();
        // Moving onto itself is refused, and a second move finds nothing left.
        assert!(nl.move_link_config("b0", "b0").is_err());
        assert!(nl.move_link_config("a0", "b0").unwrap().is_empty());
        moved
    });
    assert_eq!(moved.address_strings().len(), 4);
    assert_eq!(config_of(&ns, "b0"), before, "on b0 as it was on a0");
    assert_eq!(
        config_of(&ns, "a0")["addrs"][0]["addr_info"],
        serde_json::json!([]),
        "nothing left on a0"
    );
    assert!(ns
        .ip(&["route", "show", "dev", "b0"])
        .contains("mtu lock 1300"));

    // Half a move back (an interrupted run), then the whole: a0 as at first; what it had
    // already is kept, never deleted.
    ns.ip(&["addr", "add", "10.1.0.2/24", "dev", "a0", "label", "a0:x"]);
    ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        nl.move_link_config("b0", "a0").unwrap();
        // A source that no longer exists: nothing to move, nothing deleted from the target.
        ns_del_b0();
        nl.move_link_config("b0", "a0").unwrap();
    });
    assert_eq!(config_of(&ns, "a0"), before);
}

fn ns_del_b0() {
    let mut nl = Netlink::open().unwrap();
    nl.delete_link("b0").unwrap();
}

/// Issue 8, defect 6: routes the kernel accepts on the adapter but not as they are on the
/// bridge. A multipath route with one hop through another device moves with only the hop
/// through the moved link rewritten; a route using a nexthop object, and an IPv6 route whose
/// gateway is not on-link on the destination, are skipped with a warning naming them (and stay
/// where they were) instead of failing the whole move.
#[test]
fn routes_the_destination_refuses_are_skipped_and_multipath_hops_move_alone() {
    if !root_or_skip("routes_the_destination_refuses_are_skipped_and_multipath_hops_move_alone") {
        return;
    }
    let ns = TestNs::new("linkmp");
    ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"]);
    ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
    for cmd in [
        "link add a0 type veth peer name a1",
        "link add b0 type veth peer name b1",
        "link add e0 type veth peer name e1",
        "link set a1 up",
        "link set b1 up",
        "link set e1 up",
        "link set a0 up",
        "link set b0 up",
        "link set e0 up",
        "addr add 198.18.0.11/24 dev a0",
        "addr add 10.5.0.2/24 dev e0",
        "addr add fd00:7::2/64 dev a0",
        "route add 10.20.0.0/16 nexthop via 198.18.0.1 dev a0 nexthop via 10.5.0.1 dev e0",
        "nexthop add id 41 via 198.18.0.1 dev a0",
        "route add 10.30.0.0/16 nhid 41",
        "-6 route add fd00:9::/48 via fd00:8::1 dev a0 onlink",
    ] {
        let args: Vec<&str> = cmd.split(' ').collect();
        ns.ip(&args);
    }
    // The stale one: its gateway was on-link through an address a0 no longer has.
    ns.ip(&[
        "-6",
        "route",
        "add",
        "fd00:a::/48",
        "via",
        "fd00:7::1",
        "dev",
        "a0",
    ]);
    ns.ip(&["addr", "del", "fd00:7::2/64", "dev", "a0"]);
    assert!(!ns.ip(&["-6", "route", "show", "fd00:a::/48"]).is_empty());
    let moved = ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        nl.move_link_config("a0", "b0").unwrap()
    });
    let routes = ns.ip(&["route", "show", "10.20.0.0/16"]);
    assert!(routes.contains("via 198.18.0.1 dev b0"), "{routes}");
    assert!(routes.contains("via 10.5.0.1 dev e0"), "{routes}");
    assert!(
        moved
            .skipped()
            .iter()
            .any(|s| s.contains("10.30.0.0/16") && s.contains("nexthop object")),
        "{:?}",
        moved.skipped()
    );
    assert!(ns
        .ip(&["route", "show", "10.30.0.0/16"])
        .contains("nhid 41"));
    let v6 = ns.ip(&["-6", "route", "show", "fd00:a::/48"]);
    assert!(v6.contains("dev a0"), "the refused route was deleted: {v6}");
    assert!(
        moved.skipped().iter().any(|s| s.contains("fd00:a::/48")),
        "{:?}",
        moved.skipped()
    );
    assert!(ns
        .ip(&["-6", "route", "show", "fd00:9::/48"])
        .contains("dev b0"));
    assert!(
        moved.skipped().iter().all(|s| s.contains("left on a0")),
        "{:?}",
        moved.skipped()
    );
    assert!(ns
        .ip(&["-4", "addr", "show", "dev", "b0"])
        .contains("198.18.0.11/24"));
}
