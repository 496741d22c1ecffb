//! An outside tester's findings on the external switch's neighbour entries (B23b): a machine
//! `up0` (198.18.0.11/24) on a LAN with its router (198.18.0.1) and a LAN host; its node gets
//! 198.18.0.101.

mod support;

use support::*;

const BRIDGE: &str = "aksedgesw-ext";

/// B23b F10: the adapter's entry for the node's own address (left by the address's previous
/// owner) is not carried to the bridge: the host resolves the node afresh and reaches it at
/// once after deploy.
#[test]
fn an_entry_for_a_nodes_own_address_is_not_carried_to_the_bridge() {
    let Some(m) = machine_prefixed("z3", "zf") else {
        return;
    };
    let _net = adapter_lan(&m, true);
    let ns = m.ns.clone();
    assert!(ping_from(&ns, "198.18.0.1"));
    sh(&format!(
        "ip -n {ns} neigh replace 198.18.0.101 lladdr 02:b4:de:ad:00:01 dev up0 nud stale"
    ));
    let cfg = m.write_config("c.json", &site_config("up0"));
    m.ok(&["deploy", "-c", &cfg]);
    let stale = json_of(&format!("ip -n {ns} -j neigh show 198.18.0.101"));
    assert!(
        !stale
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["lladdr"] == "02:b4:de:ad:00:01"),
        "the old owner's MAC was carried: {stale}"
    );
    // The router's entry still moved (the filter is for the deployment's own addresses only).
    let router = json_of(&format!("ip -n {ns} -j neigh show 198.18.0.1 dev {BRIDGE}"));
    assert_eq!(router.as_array().unwrap().len(), 1, "{router}");
    assert!(
        ping_from(&ns, "198.18.0.101"),
        "the host reaches its node at once"
    );
    m.ok(&["remove"]);
    let back = json_of(&format!("ip -n {ns} -j neigh show 198.18.0.101 dev up0"));
    assert!(
        !back
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["lladdr"] == "02:b4:de:ad:00:01"),
        "{back}"
    );
}

/// `ip -n NS -j neigh show nud all` (with `proxy`: the proxy entries) as (dst, dev, states, flags).
fn kernel_view(ns: &str, proxy: bool) -> Vec<(String, String, Vec<String>, bool)> {
    let what = if proxy { "show proxy" } else { "show nud all" };
    json_of(&format!("ip -n {ns} -j neigh {what}"))
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let states = n["state"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            (
                n["dst"].as_str().unwrap_or("").to_string(),
                n["dev"].as_str().unwrap_or("").to_string(),
                states,
                n.get("extern_learn").is_some(),
            )
        })
        .collect()
}

/// B23b F7: an administrator's static `noarp` entry on the adapter moves to the bridge as
/// `noarp` and back on remove (the kernel flushes it from the adapter with its addresses). An
/// `extern_learn` entry is another program's and a proxy entry is not carried: README says
/// what the kernel does with them, which this asserts.
#[test]
fn a_noarp_entry_moves_to_the_bridge_and_back() {
    let Some(m) = machine_prefixed("z3", "zs") else {
        return;
    };
    let _net = adapter_lan(&m, true);
    let ns = m.ns.clone();
    sh(&format!(
        "ip -n {ns} neigh add 198.18.0.78 lladdr 02:b4:00:00:00:78 dev up0 nud noarp && \
         ip -n {ns} neigh add 198.18.0.79 lladdr 02:b4:00:00:00:79 dev up0 extern_learn nud stale && \
         ip -n {ns} neigh add proxy 198.18.0.88 dev up0"
    ));
    let cfg = m.write_config("c.json", &site_config("up0"));
    m.ok(&["deploy", "-c", &cfg]);
    let after = kernel_view(&ns, false);
    let find = |v: &[(String, String, Vec<String>, bool)], ip: &str| {
        v.iter()
            .filter(|e| e.0 == ip)
            .map(|e| (e.1.clone(), e.2.clone(), e.3))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        find(&after, "198.18.0.78"),
        [(BRIDGE.to_string(), vec!["NOARP".to_string()], false)],
        "{after:?}"
    );
    // The kernel's view of the others, as README states it.
    eprintln!(
        "extern_learn after deploy: {:?}",
        find(&after, "198.18.0.79")
    );
    eprintln!("proxy after deploy: {:?}", kernel_view(&ns, true));
    assert!(
        find(&after, "198.18.0.79").iter().all(|e| e.0 != BRIDGE),
        "another program's entry is not carried"
    );
    assert!(kernel_view(&ns, true).iter().all(|e| e.1 != BRIDGE));

    m.ok(&["remove"]);
    let back = kernel_view(&ns, false);
    assert_eq!(
        find(&back, "198.18.0.78"),
        [("up0".to_string(), vec!["NOARP".to_string()], false)],
        "{back:?}"
    );
    eprintln!(
        "extern_learn after remove: {:?}",
        find(&back, "198.18.0.79")
    );
    eprintln!("proxy after remove: {:?}", kernel_view(&ns, true));
}
