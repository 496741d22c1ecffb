//! The external switch carries the adapter's neighbour entries (ARP and IPv6 neighbour cache)
//! to the bridge with its addresses, and back on remove: a machine `up0` (198.18.0.11/24) on a
//! LAN with its router (198.18.0.1, `lan0`) and a LAN host (198.18.0.254).

mod support;

use serde_json::Value;
use support::*;

const BRIDGE: &str = "aksedgesw-ext";

/// `dev`'s neighbour entries in namespace `ns`: (address, MAC, states, flags).
fn neighbours(ns: &str, dev: &str) -> Vec<(String, String, Vec<String>, Vec<String>)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    json_of(&format!("ip -n {ns} -j neigh show nud all dev {dev}"))
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let mut flags = Vec::new();
            if n.get("router").is_some() {
                flags.push("router".to_string());
            }
            (
                n["dst"].as_str().unwrap().to_string(),
                n["lladdr"].as_str().unwrap_or("").to_string(),
                strings(&n["state"]),
                flags,
            )
        })
        .collect()
}

fn entry(
    list: &[(String, String, Vec<String>, Vec<String>)],
    ip: &str,
) -> Option<(String, Vec<String>, Vec<String>)> {
    list.iter()
        .find(|(d, ..)| d == ip)
        .map(|(_, mac, s, f)| (mac.clone(), s.clone(), f.clone()))
}

fn mac_of(ns: &str, dev: &str) -> String {
    json_of(&format!("ip -n {ns} -j link show dev {dev}"))[0]["address"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Learned entries move as stale (the kernel confirms them by unicast), permanent ones stay
/// permanent, `noarp` ones stay `noarp` (see operator_b23b_neigh.rs); the IPv6 router flag goes along. On remove they go back
/// to the adapter, but those of the nodes (learned behind the bridge's node ports), which go
/// with the bridge.
#[test]
fn the_adapters_neighbour_entries_move_to_the_bridge_and_back() {
    let Some(m) = machine_prefixed("n3", "nb") else {
        return;
    };
    let net = adapter_lan(&m, true);
    let (lan, peer) = (net.lan.name(), net.peer.as_ref().unwrap().name());
    let (router_mac, peer_mac) = (mac_of(lan, "lan0"), mac_of(peer, "eth0"));
    let ns = m.ns.clone();
    // The host has talked to its router and a LAN host, and has entries of its own making.
    assert!(ping_from(&ns, "198.18.0.1"));
    assert!(ping_from(&ns, "198.18.0.254"));
    sh(&format!(
        "ip -n {ns} neigh add 198.18.0.77 lladdr 02:00:00:00:00:77 dev up0 nud permanent && \
         ip -n {ns} neigh add 198.18.0.79 lladdr 02:00:00:00:00:79 dev up0 nud noarp && \
         ip -n {ns} -6 neigh add fe80::1234 lladdr 02:00:00:00:12:34 dev up0 nud stale router"
    ));
    let before = neighbours(&ns, "up0");
    assert_eq!(
        entry(&before, "198.18.0.254").map(|e| e.0),
        Some(peer_mac.clone())
    );

    let cfg = m.write_config("c.json", &site_config("up0"));
    m.ok(&["deploy", "-c", &cfg]);
    let on_bridge = neighbours(&ns, BRIDGE);
    let learned = ["STALE", "DELAY", "PROBE", "REACHABLE"];
    let (mac, state, _) = entry(&on_bridge, "198.18.0.1").expect("the router's entry");
    assert_eq!(mac, router_mac);
    assert!(learned.contains(&state[0].as_str()), "{state:?}");
    // Nothing of the deploy asked for the LAN host: its entry is the adapter's, moved.
    let (mac, state, _) = entry(&on_bridge, "198.18.0.254").expect("the LAN host's entry");
    assert_eq!(mac, peer_mac);
    assert_eq!(state, ["STALE"]);
    let (mac, state, _) = entry(&on_bridge, "198.18.0.77").expect("the permanent entry");
    assert_eq!(
        (mac.as_str(), state),
        ("02:00:00:00:00:77", vec!["PERMANENT".to_string()])
    );
    assert_eq!(
        entry(&on_bridge, "198.18.0.79").map(|e| e.1),
        Some(vec!["NOARP".to_string()]),
        "noarp entries move as noarp"
    );
    let (mac, state, flags) = entry(&on_bridge, "fe80::1234").expect("the IPv6 router's entry");
    assert_eq!(
        (mac.as_str(), state, flags),
        (
            "02:00:00:00:12:34",
            vec!["STALE".to_string()],
            vec!["router".to_string()]
        )
    );

    // The host talks to its node: an entry learned behind the node's port of the bridge.
    let _ = ping_from(&ns, "198.18.0.101");
    let node = entry(&neighbours(&ns, BRIDGE), "198.18.0.101");
    assert!(node.is_some_and(|n| !n.0.is_empty()), "the node's entry");

    m.ok(&["remove"]);
    let back = neighbours(&ns, "up0");
    let (mac, state, _) = entry(&back, "198.18.0.1").expect("the router's entry back");
    assert_eq!(mac, router_mac);
    assert!(learned.contains(&state[0].as_str()), "{state:?}");
    assert_eq!(
        entry(&back, "198.18.0.254").map(|e| e.0),
        Some(peer_mac.clone())
    );
    assert_eq!(
        entry(&back, "198.18.0.77").map(|e| e.1),
        Some(vec!["PERMANENT".to_string()])
    );
    let (_, _, flags) = entry(&back, "fe80::1234").expect("the IPv6 router's entry back");
    assert_eq!(flags, ["router"]);
    assert_eq!(
        entry(&back, "198.18.0.101"),
        None,
        "the node's entry went with the bridge"
    );
    // The noarp entry (which the kernel dropped from the port with its addresses) is back.
    assert_eq!(
        entry(&back, "198.18.0.79").map(|e| e.1),
        Some(vec!["NOARP".to_string()])
    );
}
