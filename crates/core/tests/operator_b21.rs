//! B21 N6: no rule runs on a value another rule refused (as after a refused
//! `DeploymentType`): one error per mistake, and no hint built on the refused value.

mod common;

use common::*;
use edgenet_core::validate::{Context, ProbeView, Severity};
use serde_json::json;

#[test]
fn a_refused_prefix_length_places_no_address_in_its_lan() {
    for (prefix, code) in [(32, "invalid-cidr"), (31, "subnet-too-small")] {
        let config = set(
            fixture("aksee-scalable-first.json"),
            "Network/Ip4PrefixLength",
            json!(prefix),
        );
        let found = run(&config);
        assert_has(&found, code, "Network.Ip4PrefixLength", Severity::Error);
        assert_eq!(errors(&found).len(), 1, "/{prefix}: {found:#?}");
    }
}

#[test]
fn a_refused_switch_subnet_is_in_no_firewall_hint() {
    let config = set(
        fixture("aksee-single-machine.json"),
        "Network/Ip4AddressPrefix",
        json!("192.168.1.0/24"),
    );
    let mut facts = host();
    // A forward chain that drops everything: a host-firewall-drops finding with a fix naming
    // the switch's subnet, when the subnet is acceptable.
    facts.firewall.ruleset = Some(std::sync::Arc::new(json!({"nftables": [
        {"table": {"family": "ip", "name": "filter"}},
        {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
    ]})));
    let found = run_host(&config, &facts);
    assert_has(
        &found,
        "overlaps-host-network",
        "Network.Ip4AddressPrefix",
        Severity::Error,
    );
    assert!(
        !found
            .iter()
            .any(|f| f.code.as_str() == "host-firewall-drops"),
        "{found:#?}"
    );
    // The same host with a free subnet: the firewall is found (the test can fail).
    let free = set(
        fixture("aksee-single-machine.json"),
        "Network/Ip4AddressPrefix",
        json!("192.168.7.0/24"),
    );
    let found = run_host(&free, &facts);
    assert!(
        found
            .iter()
            .any(|f| f.code.as_str() == "host-firewall-drops"),
        "{found:#?}"
    );
}

#[test]
fn a_missing_adapter_gets_no_probe_notice() {
    let config = set(
        fixture("aksee-scalable-first.json"),
        "Machines/0/NetworkConnection/AdapterName",
        json!("Ethernet"),
    );
    let facts = host();
    let mut ctx = Context::live(&facts);
    ctx.machine = Some(0);
    ctx.probe = ProbeView::NotRun("ARP probe on Ethernet: No such device (os error 19)".into());
    let found = run_with(&config, &ctx);
    assert_has(
        &found,
        "adapter-missing",
        "Machines[0].NetworkConnection.AdapterName",
        Severity::Error,
    );
    assert!(
        !found.iter().any(|f| f.code.as_str() == "probe-not-run"),
        "{found:#?}"
    );
    // With the adapter there, a probe that did not run is said.
    let found = run_with(&fixture("aksee-scalable-first.json"), &ctx);
    assert!(
        found.iter().any(|f| f.code.as_str() == "probe-not-run"),
        "{found:#?}"
    );
}
