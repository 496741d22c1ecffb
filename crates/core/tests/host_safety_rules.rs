//! Issue 8 (host safety): `check` predicts what `deploy` would refuse or break on this host.

mod common;

use common::*;
use edgenet_core::host_facts::{HostAddress, HostLink};
use edgenet_core::validate::Severity;
use serde_json::json;

fn scalable() -> serde_json::Value {
    fixture("aksee-scalable-first.json")
}
fn single() -> serde_json::Value {
    fixture("aksee-single-machine.json")
}

#[test]
fn a_node_the_endpoint_or_a_service_ip_equal_to_a_host_address_is_refused() {
    // The fixture host has 192.168.1.50 on eth0; the fixture itself is clean.
    assert!(find(
        &run(&scalable()),
        "address-is-host",
        "Machines[0].LinuxNode.Ip4Address"
    )
    .is_none());
    let f = assert_has(
        &run(&set(
            scalable(),
            "Machines/0/LinuxNode/Ip4Address",
            json!("192.168.1.50"),
        )),
        "address-is-host",
        "Machines[0].LinuxNode.Ip4Address",
        Severity::Error,
    );
    assert!(
        f.message.contains("192.168.1.50") && f.message.contains("eth0"),
        "{f:?}"
    );
    let f = assert_has(
        &run(&set(
            scalable(),
            "Network/ControlPlaneEndpointIp",
            json!("192.168.1.50"),
        )),
        "address-is-host",
        "Network.ControlPlaneEndpointIp",
        Severity::Error,
    );
    assert!(f.message.contains("eth0"), "{f:?}");
    // .45 + 10 covers .50.
    let f = assert_has(
        &run(&set(
            scalable(),
            "Init/ServiceIPRangeStart",
            json!("192.168.1.45"),
        )),
        "address-is-host",
        "Init.ServiceIPRangeStart",
        Severity::Error,
    );
    assert!(
        f.message.contains("192.168.1.50") && f.message.contains("eth0"),
        "{f:?}"
    );
    // An address on any of the host's interfaces counts, not only the adapter's.
    let mut facts = host();
    facts.addresses.push(HostAddress {
        link: "docker0".into(),
        address: "192.168.1.171/32".parse().unwrap(),
    });
    let f = assert_has(
        &run_host(&scalable(), &facts),
        "address-is-host",
        "Machines[0].LinuxNode.Ip4Address",
        Severity::Error,
    );
    assert!(f.message.contains("docker0"), "{f:?}");
}

#[test]
fn more_than_three_dns_servers_warn() {
    let three = set(
        scalable(),
        "Network/DnsServers",
        json!(["192.168.1.1", "1.1.1.1", "9.9.9.9"]),
    );
    assert!(find(&run(&three), "dns-too-many", "Network.DnsServers").is_none());
    let four = set(
        scalable(),
        "Network/DnsServers",
        json!(["192.168.1.1", "1.1.1.1", "9.9.9.9", "8.8.8.8"]),
    );
    let f = assert_has(
        &run(&four),
        "dns-too-many",
        "Network.DnsServers",
        Severity::Warning,
    );
    assert!(f.message.contains('4') && f.message.contains('3'), "{f:?}");
    assert_clean(&run(&four));
}

#[test]
fn ipv4_with_leading_zeros_is_refused_as_ambiguous() {
    let f = assert_has(
        &run(&set(
            single(),
            "Network/Ip4AddressPrefix",
            json!("192.168.050.000/24"),
        )),
        "invalid-cidr",
        "Network.Ip4AddressPrefix",
        Severity::Error,
    );
    assert!(f.message.contains("ambiguous"), "{f:?}");
    let f = assert_has(
        &run(&set(
            scalable(),
            "Network/Ip4GatewayAddress",
            json!("192.168.001.1"),
        )),
        "invalid-ipv4",
        "Network.Ip4GatewayAddress",
        Severity::Error,
    );
    assert!(f.message.contains("ambiguous"), "{f:?}");
    assert!(find(
        &run(&set(
            single(),
            "Network/Ip4AddressPrefix",
            json!("192.168.50.0/24")
        )),
        "invalid-cidr",
        "Network.Ip4AddressPrefix"
    )
    .is_none());
}

fn with_link(
    name: &str,
    kind: Option<&str>,
    alias: Option<&str>,
) -> edgenet_core::host_facts::HostFacts {
    let mut facts = host();
    facts.links.push(HostLink {
        name: name.into(),
        index: 9,
        mtu: 1500,
        up: true,
        lower_up: true,
        mac: Some("02:00:00:00:00:99".into()),
        kind: kind.map(String::from),
        master: None,
        wireless: false,
        alias: alias.map(String::from),
    });
    facts
}

#[test]
fn switch_name_taken_by_another_interface_or_a_foreign_bridge_is_refused() {
    let lo = set(single(), "Edgenet/SwitchName", json!("lo"));
    let f = assert_has(
        &run(&lo),
        "switch-name",
        "Edgenet.SwitchName",
        Severity::Error,
    );
    assert!(f.message.contains("loopback"), "{f:?}");
    let f = assert_has(
        &run(&set(single(), "Edgenet/SwitchName", json!("eth0"))),
        "switch-name",
        "Edgenet.SwitchName",
        Severity::Error,
    );
    assert!(f.message.contains("not a bridge"), "{f:?}");

    // A bridge with the default internal switch name that edgenet did not make.
    let foreign = with_link("aksedgesw-int", Some("bridge"), None);
    let f = assert_has(
        &run_host(&single(), &foreign),
        "switch-name",
        "Edgenet.SwitchName",
        Severity::Error,
    );
    assert!(f.message.contains("did not create"), "{f:?}");
    // Another tool's bridge is never to be deleted: the fix is another name.
    assert!(
        !f.hint.as_deref().unwrap_or("").contains("ip link del"),
        "{f:?}"
    );
    // Edgenet's own bridge (a redeploy) is fine.
    let ours = with_link("aksedgesw-int", Some("bridge"), Some("edgenet:0a1b2c"));
    let mut ctx = edgenet_core::validate::Context::live(&ours);
    ctx.machine = Some(0);
    ctx.own_mark = Some("edgenet:0a1b2c".into());
    assert!(find(
        &run_with(&single(), &ctx),
        "switch-name",
        "Edgenet.SwitchName"
    )
    .is_none());
    // The bridge a killed deploy made but did not mark yet (recorded, in its group) is its own.
    let mut ctx = edgenet_core::validate::Context::live(&foreign);
    ctx.machine = Some(0);
    ctx.own_mark = Some("edgenet:0a1b2c".into());
    ctx.own_unmarked_switch = Some("aksedgesw-int".into());
    assert!(find(
        &run_with(&single(), &ctx),
        "switch-name",
        "Edgenet.SwitchName"
    )
    .is_none());
    // Another deployment's bridge (or one whose state directory is gone) is refused, naming it.
    let f = assert_has(
        &run_host(&single(), &ours),
        "switch-name",
        "Edgenet.SwitchName",
        Severity::Error,
    );
    assert!(
        f.message.contains("another edgenet deployment") && f.message.contains("edgenet:0a1b2c"),
        "{f:?}"
    );
    // On an external switch, the user's bridge that already holds the adapter is used as is.
    let mut adopted = with_link("aksedgesw-ext", Some("bridge"), None);
    adopted
        .links
        .iter_mut()
        .find(|l| l.name == "eth0")
        .unwrap()
        .master = Some("aksedgesw-ext".into());
    assert!(find(
        &run_host(&scalable(), &adopted),
        "switch-name",
        "Edgenet.SwitchName"
    )
    .is_none());
    let lone = with_link("aksedgesw-ext", Some("bridge"), None);
    assert_has(
        &run_host(&scalable(), &lone),
        "switch-name",
        "Edgenet.SwitchName",
        Severity::Error,
    );
}

#[test]
fn over_long_values_are_cut_in_messages() {
    let long = "x".repeat(5000);
    let cases = [
        (
            set(single(), "Edgenet/SwitchName", json!(long)),
            "switch-name",
            "Edgenet.SwitchName",
        ),
        (
            set(scalable(), "Network/DnsServers", json!([long])),
            "invalid-ipv4",
            "Network.DnsServers[0]",
        ),
        (
            set(
                scalable(),
                "Network/Proxy/Http",
                json!(format!("http://{long}")),
            ),
            "proxy-url",
            "Network.Proxy.Http",
        ),
        (
            set(single(), "Machines/0/MachineName", json!(long)),
            "invalid-name",
            "Machines[0].MachineName",
        ),
        (
            set(single(), "Network/Ip4AddressPrefix", json!(long)),
            "invalid-cidr",
            "Network.Ip4AddressPrefix",
        ),
    ];
    for (config, code, path) in cases {
        let f = assert_has(&run(&config), code, path, Severity::Error);
        assert!(
            f.message.len() < 300,
            "{code}: {} bytes: {}",
            f.message.len(),
            f.message
        );
        assert!(
            f.message.contains("5000 characters") || f.message.contains("5007 characters"),
            "{f:?}"
        );
    }
}
