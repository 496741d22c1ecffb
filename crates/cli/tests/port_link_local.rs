//! A node's port on the switch (the host's end of its veth) has no IPv6 link-local address:
//! a bridge port carries no address, and the link-local one would only send duplicate address
//! detection, MLD reports and router solicitations down the port.

mod support;

use support::*;

#[test]
fn a_nodes_port_on_the_switch_has_no_ipv6_address() {
    let Some(m) = machine_prefixed("n3", "ll") else {
        return;
    };
    m.deploy(None);
    let links = m.ip_json("-d link show");
    let ports: Vec<String> = links
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["master"].is_string() && l["linkinfo"]["info_kind"] == "veth")
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect();
    assert!(!ports.is_empty(), "no node port in {links}");
    for port in &ports {
        let addrs = m.ip_json(&format!("addr show dev {port}"));
        let info = addrs[0]["addr_info"].as_array().unwrap();
        assert!(info.is_empty(), "{port} has addresses: {info:?}");
        let up = m.ip_json(&format!("link show dev {port}"));
        assert!(
            up[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
            "{port} is up"
        );
    }
    // The switch itself keeps its link-local address (the host's IPv6 on it is untouched).
    m.ok(&["remove"]);
}
