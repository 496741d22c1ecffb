//! Findings for what an operator tester met (B19): a config whose LAN is not the adapter's, a
//! silent gateway, a gateway that is the network or broadcast address, Microsoft's all-null
//! `SecondaryNetworks`, Windows-style `Proxy.No`, a Windows adapter name, and follow-on
//! findings after a refused `DeploymentType` or a ConvertTo-Json depth cut.

mod common;

use common::*;
use edgenet_core::host_facts::{HostAddress, HostFacts};
use edgenet_core::validate::{Context, Finding, ProbeView, Severity};
use serde_json::{json, Value};

fn scalable() -> Value {
    fixture("aksee-scalable-first.json")
}

fn codes(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.code.as_str()).collect()
}

/// The typical host with eth0's address replaced by `addresses` (link, CIDR).
fn host_with(addresses: &[(&str, &str)]) -> HostFacts {
    let mut facts = host();
    facts.addresses = addresses
        .iter()
        .map(|(link, a)| HostAddress {
            link: link.to_string(),
            address: a.parse().unwrap(),
        })
        .collect();
    facts
}

#[test]
fn an_adapter_on_another_subnet_is_warned_naming_both_subnets_and_the_fix() {
    // The fixture's LAN is 192.168.1.0/24; the host is on it.
    assert!(find(
        &run(&scalable()),
        "lan-mismatch",
        "Network.Ip4GatewayAddress"
    )
    .is_none());
    // Renumbered by DHCP (or a docs example copied onto another site).
    let facts = host_with(&[("eth0", "10.20.0.5/24")]);
    let f = assert_has(
        &run_host(&scalable(), &facts),
        "lan-mismatch",
        "Network.Ip4GatewayAddress",
        Severity::Warning,
    );
    for needle in ["eth0", "10.20.0.5/24", "10.20.0.0/24", "192.168.1.0/24"] {
        assert!(f.message.contains(needle), "{needle}: {}", f.message);
    }
    let hint = f.hint.unwrap();
    assert!(
        hint.contains("10.20.0.0/24") && hint.contains("AdapterName"),
        "{hint}"
    );
    // Deployed: the addresses are on the switch the adapter is a port of.
    let mut deployed = host_with(&[("aksedgesw-ext", "10.20.0.5/24")]);
    deployed.links[1].master = Some("aksedgesw-ext".into());
    assert_has(
        &run_host(&scalable(), &deployed),
        "lan-mismatch",
        "Network.Ip4GatewayAddress",
        Severity::Warning,
    );
    // An address on the LAN among others (two subnets on one wire), or none at all (DHCP not
    // done yet at boot): nothing to say.
    for quiet in [
        host_with(&[("eth0", "10.20.0.5/24"), ("eth0", "192.168.1.50/24")]),
        host_with(&[]),
        host_with(&[("eth1", "10.20.0.5/24")]),
    ] {
        let found = run_host(&scalable(), &quiet);
        assert!(find(&found, "lan-mismatch", "Network.Ip4GatewayAddress").is_none());
    }
}

fn run_probe_gateway(answers: &[(&str, &str)], gateway: Option<&str>) -> Vec<Finding> {
    let facts = host();
    let mut ctx = Context::live(&facts);
    ctx.machine = Some(0);
    ctx.probe = ProbeView::Ran {
        interface: "eth0".into(),
        answers: answers
            .iter()
            .map(|(ip, mac)| (ip.parse().unwrap(), mac.parse().unwrap()))
            .collect(),
        own_macs: Vec::new(),
        gateway: gateway.map(|g| g.parse().unwrap()),
    };
    run_with(&scalable(), &ctx)
}

#[test]
fn a_gateway_that_does_not_answer_arp_is_warned() {
    let f = assert_has(
        &run_probe_gateway(&[], Some("192.168.1.1")),
        "gateway-silent",
        "Network.Ip4GatewayAddress",
        Severity::Warning,
    );
    assert!(f.message.contains("192.168.1.1") && f.message.contains("eth0"));
    let answered = run_probe_gateway(&[("192.168.1.1", "52:54:00:aa:bb:01")], Some("192.168.1.1"));
    assert!(find(&answered, "gateway-silent", "Network.Ip4GatewayAddress").is_none());
    // The gateway answering is not an address conflict.
    assert_clean(&answered);
    let not_asked = run_probe_gateway(&[], None);
    assert!(find(&not_asked, "gateway-silent", "Network.Ip4GatewayAddress").is_none());
}

#[test]
fn the_gateway_is_probed_unless_this_host_holds_it_or_it_cannot_answer() {
    use edgenet_core::validate::gateway_probe_target;
    let config = |v: &Value| {
        edgenet_core::config::load(v.to_string().as_bytes())
            .unwrap()
            .config
    };
    assert_eq!(
        gateway_probe_target(&config(&scalable()), &host()),
        Some("192.168.1.1".parse().unwrap())
    );
    let router = host_with(&[("eth0", "192.168.1.1/24")]);
    assert_eq!(gateway_probe_target(&config(&scalable()), &router), None);
    let broadcast = set(
        scalable(),
        "Network/Ip4GatewayAddress",
        json!("192.168.1.255"),
    );
    assert_eq!(gateway_probe_target(&config(&broadcast), &host()), None);
    let single = fixture("aksee-single-machine.json");
    assert_eq!(gateway_probe_target(&config(&single), &host()), None);
}

#[test]
fn a_gateway_that_is_the_network_or_broadcast_address_is_refused() {
    for (gw, what) in [("192.168.1.0", "network"), ("192.168.1.255", "broadcast")] {
        let bad = set(scalable(), "Network/Ip4GatewayAddress", json!(gw));
        let f = assert_has(
            &run_offline(&bad),
            "address-reserved",
            "Network.Ip4GatewayAddress",
            Severity::Error,
        );
        assert!(
            f.message.contains(gw)
                && f.message.contains(what)
                && f.message.contains("192.168.1.0/24"),
            "{}",
            f.message
        );
        assert!(f.hint.unwrap().contains("192.168.1.1"));
    }
    // A /16 gateway on .255 of a /24-looking address is a host of its LAN.
    let wide = set(
        set(scalable(), "Network/Ip4PrefixLength", json!(16)),
        "Network/Ip4GatewayAddress",
        json!("192.168.0.255"),
    );
    assert!(find(
        &run_offline(&wide),
        "address-reserved",
        "Network.Ip4GatewayAddress"
    )
    .is_none());
}

#[test]
fn microsofts_all_null_secondary_networks_template_is_not_set() {
    let template = json!([{
        "VMSwitchName": null, "Ip4Address": null, "Ip4GatewayAddress": null, "Ip4PrefixLength": null
    }]);
    let v = set(
        scalable(),
        "Machines/0/LinuxNode/SecondaryNetworks",
        template,
    );
    assert!(
        !codes(&run_offline(&v)).contains(&"not-applied"),
        "{:#?}",
        run_offline(&v)
    );
    let empty = set(
        scalable(),
        "Machines/0/LinuxNode/SecondaryNetworks",
        json!([{"VMSwitchName": ""}]),
    );
    assert!(!codes(&run_offline(&empty)).contains(&"not-applied"));
    // One value set: still said.
    let used = json!([{"VMSwitchName": "sw2", "Ip4Address": null}]);
    let v = set(scalable(), "Machines/0/LinuxNode/SecondaryNetworks", used);
    assert_has(
        &run_offline(&v),
        "not-applied",
        "Machines[0].LinuxNode.SecondaryNetworks",
        Severity::Warning,
    );
}

#[test]
fn windows_bypass_lists_get_windows_specific_messages() {
    let local = set(scalable(), "Network/Proxy/No", json!("<local>"));
    let found = run_offline(&local);
    assert!(!codes(&found).contains(&"placeholder"), "{found:#?}");
    let f = assert_has(
        &found,
        "no-proxy-entry",
        "Network.Proxy.No",
        Severity::Error,
    );
    assert!(
        f.message.contains("<local>") && f.message.contains("Windows"),
        "{}",
        f.message
    );
    assert!(f.hint.unwrap().contains(".domain"));

    let semi = set(
        scalable(),
        "Network/Proxy/No",
        json!("localhost;127.0.0.1;*.corp.local"),
    );
    let found = run_offline(&semi);
    let f = found
        .iter()
        .find(|f| f.code.as_str() == "no-proxy-entry" && f.severity == Severity::Error)
        .unwrap_or_else(|| panic!("{found:#?}"));
    assert!(
        f.message.contains("';'") && f.message.contains("commas"),
        "{}",
        f.message
    );
    assert!(
        f.hint
            .as_deref()
            .unwrap()
            .contains("\"localhost,127.0.0.1,.corp.local\""),
        "{:?}",
        f.hint
    );
    // Not the whole string judged as one bad entry.
    assert!(
        !found
            .iter()
            .any(|f| f.message.contains("is not a host name")),
        "{found:#?}"
    );
}

#[test]
fn a_refused_deployment_type_gives_no_follow_on_findings_that_assume_another_type() {
    let typo = set(scalable(), "DeploymentType", json!("Scalable"));
    let found = run(&typo);
    assert_has(&found, "unknown-value", "DeploymentType", Severity::Error);
    assert!(
        !codes(&found).contains(&"forbidden-field"),
        "a scalable config must not be told to delete its addresses: {found:#?}"
    );
    assert_eq!(errors(&found).len(), 1, "{found:#?}");
    assert_has(&found, "rules-skipped", "DeploymentType", Severity::Notice);
}

#[test]
fn nodes_written_as_text_by_convertto_json_are_not_missing_nodes() {
    let depth = set(
        set(
            scalable(),
            "Machines/0/LinuxNode",
            json!("@{ControlPlane=True; Ip4Address=192.168.1.171}"),
        ),
        "Machines/0/NetworkConnection",
        json!("@{AdapterName=eth0; Mtu=0}"),
    );
    let found = run_offline(&depth);
    let c = codes(&found);
    assert!(c.contains(&"wrong-type"), "{found:#?}");
    for follow_on in ["required-field", "node-missing", "control-plane-count"] {
        assert!(!c.contains(&follow_on), "{follow_on}: {found:#?}");
    }
}

#[test]
fn a_windows_adapter_name_is_not_a_linux_interface_name() {
    let v = set(
        scalable(),
        "Machines/0/NetworkConnection/AdapterName",
        json!("vEthernet (Ethernet)"),
    );
    {
        let found = run(&v);
        let f = assert_has(
            &found,
            "invalid-name",
            "Machines[0].NetworkConnection.AdapterName",
            Severity::Error,
        );
        assert!(f.message.contains("Linux interface name"), "{}", f.message);
        assert!(f.hint.unwrap().contains("ip -br link"));
        assert!(!codes(&found).contains(&"adapter-missing"), "{found:#?}");
    }
    let short = set(
        scalable(),
        "Machines/0/NetworkConnection/AdapterName",
        json!("Ethernet 2"),
    );
    assert_has(
        &run(&short),
        "invalid-name",
        "Machines[0].NetworkConnection.AdapterName",
        Severity::Error,
    );
    // Offline too (B23 F2): whether a name can be a Linux interface name does not depend on
    // the host, and the offline check is the one run before the file goes to the site.
    assert_has(
        &run_offline(&short),
        "invalid-name",
        "Machines[0].NetworkConnection.AdapterName",
        Severity::Error,
    );
}

/// B20 D9: a numeric field of the wrong type says the field's real range, not "≥ 0".
#[test]
fn a_wrong_type_number_says_the_fields_real_range() {
    for (path, value, words) in [
        (
            "Network/Ip4PrefixLength",
            json!(24.5),
            "a whole number from 1 to 31",
        ),
        (
            "Network/Ip4PrefixLength",
            json!(24.0),
            "a whole number from 1 to 31",
        ),
        (
            "Network/Ip4PrefixLength",
            json!("/24"),
            "a whole number from 1 to 31",
        ),
        (
            "Network/Ip4PrefixLength",
            json!(-1),
            "a whole number from 1 to 31",
        ),
        (
            "Init/ServiceIPRangeSize",
            json!(10.5),
            "a whole number from 0 to 127",
        ),
        (
            "Machines/0/NetworkConnection/Mtu",
            json!(1500.5),
            "0 (the default) or a whole number from 1280 to 9216",
        ),
    ] {
        let found = run_offline(&set(scalable(), path, value.clone()));
        let f = found
            .iter()
            .find(|f| f.code.as_str() == "wrong-type")
            .unwrap_or_else(|| panic!("{path} = {value}: {found:#?}"));
        let said = format!("{} {}", f.message, f.hint.as_deref().unwrap_or(""));
        assert!(said.contains(words), "{path} = {value}: {said}");
        assert!(!said.contains("≥ 0"), "{path} = {value}: {said}");
    }
}
