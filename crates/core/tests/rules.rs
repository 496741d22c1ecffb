//! One passing and one failing case for every rule of SPEC §4 (groups 1–12), asserting the
//! finding's code, JSON path and severity.

mod common;

use common::*;
use edgenet_core::config::load;
use edgenet_core::host_facts::HostLink;
use edgenet_core::validate::{Finding, Severity};
use serde_json::{json, Value};

fn single() -> Value {
    fixture("aksee-single-machine.json")
}
fn scalable() -> Value {
    fixture("aksee-scalable-first.json")
}

/// `good` has no `code` at `path`; `bad` has it with `severity`. Returns the bad finding.
fn case_with(
    good: &Value,
    bad: &Value,
    code: &str,
    path: &str,
    severity: Severity,
    runner: fn(&Value) -> Vec<Finding>,
) -> Finding {
    let ok = runner(good);
    assert!(
        find(&ok, code, path).is_none(),
        "passing case has {code} at {path}: {ok:#?}"
    );
    assert_has(&runner(bad), code, path, severity)
}

fn case(good: &Value, bad: &Value, code: &str, path: &str) -> Finding {
    case_with(good, bad, code, path, Severity::Error, run)
}

fn message_names(f: &Finding, needle: &str) {
    assert!(
        f.message.contains(needle),
        "message {:?} does not name {needle:?}",
        f.message
    );
}

// ---- rule group 1: syntax, types, enums, required and forbidden fields -------------------

#[test]
fn r1_wrong_type_names_path_and_value() {
    let f = case(
        &scalable(),
        &set(scalable(), "Network/InternetDisabled", json!(3)),
        "wrong-type",
        "Network.InternetDisabled",
    );
    message_names(&f, "3");
    case(
        &scalable(),
        &set(scalable(), "Machines/0/LinuxNode/Ip4Address", json!(17)),
        "wrong-type",
        "Machines[0].LinuxNode.Ip4Address",
    );
    case(
        &single(),
        &set(single(), "Machines", json!("node")),
        "wrong-type",
        "Machines",
    );
    case(
        &single(),
        &set(single(), "Machines/0", json!("node")),
        "wrong-type",
        "Machines[0]",
    );
}

/// D9: "false" as a string is read as written, with a warning naming the field, the value and
/// what edgenet took (PowerShell takes any non-empty string as true).
#[test]
fn r1_a_boolean_written_as_a_string_is_read_as_written_and_warned() {
    let f = case_with(
        &scalable(),
        &set(scalable(), "Network/InternetDisabled", json!("false")),
        "powershell-shape",
        "Network.InternetDisabled",
        Severity::Warning,
        run,
    );
    message_names(&f, "\"false\"");
    message_names(&f, "takes it as false");
    message_names(&f, "PowerShell");
    let loaded = load(
        serde_json::to_string(&set(scalable(), "Network/InternetDisabled", json!("false")))
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    assert!(!loaded.config.network.internet_disabled);
    let loaded = load(
        serde_json::to_string(&set(scalable(), "Network/InternetDisabled", json!("TRUE")))
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    assert!(loaded.config.network.internet_disabled);
    // "true" is read as PowerShell reads it: no "but" (B20 D7).
    let f = case_with(
        &scalable(),
        &set(scalable(), "Network/InternetDisabled", json!("true")),
        "powershell-shape",
        "Network.InternetDisabled",
        Severity::Warning,
        run,
    );
    message_names(&f, "as PowerShell does");
    assert!(!f.message.contains(" but "), "{f:#?}");
}

/// D9: a whole number written `10.0`, a fraction, a negative number: each said precisely.
#[test]
fn r1_a_number_that_is_not_a_whole_number_is_said_precisely() {
    let bad = |v: Value| {
        case(
            &scalable(),
            &set(scalable(), "Init/ServiceIPRangeSize", v),
            "wrong-type",
            "Init.ServiceIPRangeSize",
        )
    };
    let f = bad(json!(10.0));
    message_names(&f, "10.0");
    message_names(&f, "decimal point");
    assert!(f.hint.as_deref().unwrap_or("").contains("10"), "{f:#?}");
    message_names(&bad(json!(10.5)), "not a whole number");
    message_names(&bad(json!(-1)), "negative");
    message_names(&bad(json!("10.0")), "decimal point");
    // The refused value is the one finding at its path: not also "not set" (B20 D6).
    for v in [json!(10.0), json!("ten"), json!(-1)] {
        let findings = run(&set(scalable(), "Init/ServiceIPRangeSize", v.clone()));
        let about: Vec<_> = findings
            .iter()
            .filter(|f| f.path.starts_with("Init.ServiceIP"))
            .collect();
        assert_eq!(about.len(), 1, "{v}: {about:#?}");
    }
}

/// D9: `Machines` as one object (Windows PowerShell 5.1's ConvertTo-Json of a one-element
/// array) is that one machine, with a notice; its fields are found at the written paths.
#[test]
fn r1_one_machine_written_as_an_object_is_read_with_a_notice() {
    let mut one = scalable();
    let machine = one["Machines"][0].clone();
    one["Machines"] = machine;
    let f = case_with(
        &scalable(),
        &one,
        "powershell-shape",
        "Machines",
        Severity::Notice,
        run,
    );
    message_names(&f, "array");
    let findings = run(&one);
    assert!(errors(&findings).is_empty(), "{findings:#?}");
    let loaded = load(serde_json::to_string(&one).unwrap().as_bytes()).unwrap();
    assert_eq!(loaded.config.machines.len(), 1);
    let mut moved = one;
    moved["Machines"]["LinuxNode"]["Ip4Address"] = json!("10.0.0.300");
    assert_has(
        &run(&moved),
        "invalid-ipv4",
        "Machines.LinuxNode.Ip4Address",
        Severity::Error,
    );
}

/// D9: a SchemaVersion no release wrote is read, with a warning naming it and the known ones.
#[test]
fn r1_an_unknown_schema_version_is_warned() {
    let f = case_with(
        &scalable(),
        &set(scalable(), "SchemaVersion", json!("2.0")),
        "unknown-schema-version",
        "SchemaVersion",
        Severity::Warning,
        run,
    );
    message_names(&f, "\"2.0\"");
    message_names(&f, "1.16");
    for known in ["1.1", "1.9", "1.16"] {
        let findings = run(&set(scalable(), "SchemaVersion", json!(known)));
        assert!(find(&findings, "unknown-schema-version", "SchemaVersion").is_none());
    }
}

#[test]
fn r1_all_type_errors_reported_at_once() {
    let bad = set(
        set(
            set(scalable(), "Network/InternetDisabled", json!("maybe")),
            "Init/ServiceIPRangeSize",
            json!([1]),
        ),
        "Network/Ip4PrefixLength",
        json!(true),
    );
    let findings = run(&bad);
    for path in [
        "Network.InternetDisabled",
        "Init.ServiceIPRangeSize",
        "Network.Ip4PrefixLength",
    ] {
        assert_has(&findings, "wrong-type", path, Severity::Error);
    }
}

#[test]
fn r1_enum_values() {
    let f = case(
        &single(),
        &set(single(), "DeploymentType", json!("SingleMachine")),
        "unknown-value",
        "DeploymentType",
    );
    assert!(f.hint.unwrap().contains("SingleMachineCluster"));
    case(
        &single(),
        &set(single(), "Network/NetworkPlugin", json!("cilium")),
        "unknown-value",
        "Network.NetworkPlugin",
    );
    case(
        &single(),
        &set(single(), "Edgenet/Distribution", json!("k0s")),
        "unknown-value",
        "Edgenet.Distribution",
    );
    case(
        &single(),
        &set(single(), "Edgenet/NodeRuntime", json!("lxc")),
        "unknown-value",
        "Edgenet.NodeRuntime",
    );
    // Values are matched case-insensitively, as PowerShell does.
    assert_clean(&run(&set(
        single(),
        "DeploymentType",
        json!("singlemachinecluster"),
    )));
}

#[test]
fn r1_misspelt_key_is_a_warning_naming_the_likely_key() {
    let bad = set(
        remove(scalable(), "Network/DnsServers"),
        "Network/DnsServer",
        json!(["192.168.1.1"]),
    );
    let f = case_with(
        &scalable(),
        &bad,
        "misspelt-key",
        "Network.DnsServer",
        Severity::Warning,
        run,
    );
    message_names(&f, "DnsServers");
    // The same key in another case next to the canonical one: PowerShell refuses the file.
    let both = set(single(), "Network/internetDisabled", json!(true));
    message_names(
        &assert_has(
            &run(&both),
            "duplicate-key",
            "Network.internetDisabled",
            Severity::Error,
        ),
        "InternetDisabled",
    );
}

#[test]
fn r1_unknown_keys_far_from_known_ones_are_silent_outside_network_sections() {
    let v = set(single(), "Machines/0/LinuxNode/Hugepages", json!(true));
    assert!(
        run(&v).iter().all(|f| f.severity == Severity::Notice),
        "{:#?}",
        run(&v)
    );
}

#[test]
fn r1_any_unknown_key_of_a_network_section_is_a_warning() {
    for (at, path) in [
        ("Telemetry", "Telemetry"),
        ("Network/Offline", "Network.Offline"),
        ("Edgenet/Bogus", "Edgenet.Bogus"),
        (
            "Machines/0/NetworkConnection/Speed",
            "Machines[0].NetworkConnection.Speed",
        ),
    ] {
        let f = assert_has(
            &run(&set(single(), at, json!(1))),
            "misspelt-key",
            path,
            Severity::Warning,
        );
        message_names(&f, "is ignored");
    }
}

#[test]
fn r1_required_fields_for_scalable() {
    case(
        &scalable(),
        &remove(scalable(), "Network/ControlPlaneEndpointIp"),
        "required-field",
        "Network.ControlPlaneEndpointIp",
    );
    case(
        &scalable(),
        &remove(scalable(), "Network/Ip4GatewayAddress"),
        "required-field",
        "Network.Ip4GatewayAddress",
    );
    case(
        &scalable(),
        &remove(scalable(), "Machines/0/NetworkConnection/AdapterName"),
        "required-field",
        "Machines[0].NetworkConnection.AdapterName",
    );
    case(
        &scalable(),
        &remove(scalable(), "Machines/0/LinuxNode/Ip4Address"),
        "required-field",
        "Machines[0].LinuxNode.Ip4Address",
    );
    case(
        &scalable(),
        &remove(scalable(), "Machines"),
        "required-field",
        "Machines",
    );
}

#[test]
fn r1_bad_value_is_not_also_reported_missing() {
    let findings = run(&set(
        scalable(),
        "Network/ControlPlaneEndpointIp",
        json!("192.168.1.x"),
    ));
    assert_has(
        &findings,
        "invalid-ipv4",
        "Network.ControlPlaneEndpointIp",
        Severity::Error,
    );
    assert!(find(
        &findings,
        "required-field",
        "Network.ControlPlaneEndpointIp"
    )
    .is_none());
}

#[test]
fn r1_forbidden_fields_on_single_machine() {
    case(
        &single(),
        &set(
            single(),
            "Machines/0/LinuxNode/Ip4Address",
            json!("192.168.0.9"),
        ),
        "forbidden-field",
        "Machines[0].LinuxNode.Ip4Address",
    );
    case(
        &single(),
        &set(
            single(),
            "Network/ControlPlaneEndpointIp",
            json!("192.168.0.9"),
        ),
        "forbidden-field",
        "Network.ControlPlaneEndpointIp",
    );
    case(
        &single(),
        &set(single(), "Network/Ip4GatewayAddress", json!("192.168.0.1")),
        "forbidden-field",
        "Network.Ip4GatewayAddress",
    );
    case(
        &single(),
        &set(single(), "Init/ServiceIPRangeStart", json!("192.168.0.20")),
        "forbidden-field",
        "Init.ServiceIPRangeStart",
    );
    case_with(
        &single(),
        &set(
            single(),
            "Machines/0/NetworkConnection",
            json!({"AdapterName": "eth0"}),
        ),
        "ignored-field",
        "Machines[0].NetworkConnection.AdapterName",
        Severity::Warning,
        run,
    );
    case_with(
        &scalable(),
        &set(scalable(), "Network/Ip4AddressPrefix", json!("10.1.0.0/24")),
        "ignored-field",
        "Network.Ip4AddressPrefix",
        Severity::Warning,
        run,
    );
}

#[test]
fn r1_machine_and_node_counts() {
    let two = {
        let mut v = single();
        v["Machines"]
            .as_array_mut()
            .unwrap()
            .push(json!({"LinuxNode": {}}));
        v
    };
    case(&single(), &two, "machine-count", "Machines");
    case(
        &single(),
        &set(single(), "Machines/0", json!({"WindowsNode": {}})),
        "node-missing",
        "Machines[0].LinuxNode",
    );
    case(
        &scalable(),
        &set(scalable(), "Machines/0/LinuxNode", Value::Null),
        "node-missing",
        "Machines[0]",
    );
    case(
        &scalable(),
        &set(
            scalable(),
            "Machines/0/WindowsNode",
            json!({"Ip4Address": "192.168.1.172", "ControlPlane": true}),
        ),
        "windows-control-plane",
        "Machines[0].WindowsNode.ControlPlane",
    );
}

#[test]
fn r1_machine_names() {
    case(
        &single(),
        &set(single(), "Edgenet/MachineName", json!("Edge_01")),
        "invalid-name",
        "Edgenet.MachineName",
    );
    let mut two = scalable();
    two["Machines"].as_array_mut().unwrap().push(json!({"NetworkConnection": {"AdapterName": "eth0"}, "LinuxNode": {"Ip4Address": "192.168.1.172", "ControlPlane": false}}));
    let named = set(
        set(two.clone(), "Machines/0/MachineName", json!("a")),
        "Machines/1/MachineName",
        json!("b"),
    );
    let same = set(
        set(two.clone(), "Machines/0/MachineName", json!("a")),
        "Machines/1/MachineName",
        json!("a"),
    );
    case(&named, &same, "invalid-name", "Machines[1].MachineName");
    // Machines without a name: only the deployed one takes the host name, the others are
    // planned as machine<N>; no error at a MachineName the file does not have.
    assert!(
        run(&two).iter().all(|f| f.code.as_str() != "invalid-name"),
        "{:#?}",
        run(&two)
    );
}

#[test]
fn r1_placeholders_from_config_new_are_reported() {
    case(
        &scalable(),
        &set(
            scalable(),
            "Machines/0/LinuxNode/Ip4Address",
            json!("<Linux node IP>"),
        ),
        "placeholder",
        "Machines[0].LinuxNode.Ip4Address",
    );
}

// ---- rule group 2: IPv4 unicast -------------------------------------------------------------

#[test]
fn r2_address_syntax_and_ipv6() {
    case(
        &scalable(),
        &set(
            scalable(),
            "Network/Ip4GatewayAddress",
            json!("192.168.1.256"),
        ),
        "invalid-ipv4",
        "Network.Ip4GatewayAddress",
    );
    case(
        &scalable(),
        &set(
            scalable(),
            "Network/Ip4GatewayAddress",
            json!("192.168.01.1"),
        ),
        "invalid-ipv4",
        "Network.Ip4GatewayAddress",
    );
    let f = case(
        &scalable(),
        &set(
            scalable(),
            "Machines/0/LinuxNode/Ip4Address",
            json!("fd00::5"),
        ),
        "ipv6-not-supported",
        "Machines[0].LinuxNode.Ip4Address",
    );
    message_names(&f, "IPv4 only");
    case(
        &single(),
        &set(single(), "Network/Ip4AddressPrefix", json!("fd00::/64")),
        "ipv6-not-supported",
        "Network.Ip4AddressPrefix",
    );
    case(
        &scalable(),
        &set(scalable(), "Network/DnsServers", json!(["2001:db8::53"])),
        "ipv6-not-supported",
        "Network.DnsServers[0]",
    );
}

#[test]
fn r2_address_classes() {
    for bad in [
        "0.1.2.3",
        "127.0.0.5",
        "169.254.3.4",
        "224.0.0.5",
        "255.255.255.255",
        "240.0.0.1",
    ] {
        case(
            &scalable(),
            &set(scalable(), "Network/ControlPlaneEndpointIp", json!(bad)),
            "address-not-unicast",
            "Network.ControlPlaneEndpointIp",
        );
    }
    case(
        &scalable(),
        &set(scalable(), "Network/Ip4GatewayAddress", json!("224.1.1.1")),
        "address-not-unicast",
        "Network.Ip4GatewayAddress",
    );
    case(
        &single(),
        &set(single(), "Network/Ip4AddressPrefix", json!("127.0.0.0/24")),
        "address-not-unicast",
        "Network.Ip4AddressPrefix",
    );
}

// ---- rule group 3: subnet sanity ------------------------------------------------------------

#[test]
fn r3_host_bits_and_size() {
    let ok = set(
        single(),
        "Network/Ip4AddressPrefix",
        json!("192.168.50.0/24"),
    );
    let f = case(
        &ok,
        &set(
            single(),
            "Network/Ip4AddressPrefix",
            json!("192.168.50.7/24"),
        ),
        "prefix-host-bits",
        "Network.Ip4AddressPrefix",
    );
    assert!(f.hint.unwrap().contains("192.168.50.0/24"));
    let linux_only = set(
        set(single(), "Init/ServiceIPRangeSize", json!(0)),
        "Network/Ip4AddressPrefix",
        json!("192.168.50.0/30"),
    );
    assert_clean(&run(&linux_only));
    case(
        &linux_only,
        &set(
            linux_only.clone(),
            "Network/Ip4AddressPrefix",
            json!("192.168.50.0/31"),
        ),
        "subnet-too-small",
        "Network.Ip4AddressPrefix",
    );
    case(
        &linux_only,
        &set(linux_only.clone(), "Machines/0/WindowsNode", json!({})),
        "subnet-too-small",
        "Network.Ip4AddressPrefix",
    );
    // Ten service IPs reach .13: a /28 holds them, a /29 does not.
    let ten = set(
        single(),
        "Network/Ip4AddressPrefix",
        json!("192.168.50.0/28"),
    );
    case(
        &ten,
        &set(
            ten.clone(),
            "Network/Ip4AddressPrefix",
            json!("192.168.50.0/29"),
        ),
        "subnet-too-small",
        "Network.Ip4AddressPrefix",
    );
    case(
        &single(),
        &set(single(), "Network/Ip4AddressPrefix", json!("192.168.50.0")),
        "invalid-cidr",
        "Network.Ip4AddressPrefix",
    );
    // AKS EE accepts 1–31; 31 is in range but has no room for the cluster.
    case(
        &scalable(),
        &set(scalable(), "Network/Ip4PrefixLength", json!(32)),
        "invalid-cidr",
        "Network.Ip4PrefixLength",
    );
    let f = case(
        &scalable(),
        &set(scalable(), "Network/Ip4PrefixLength", json!(31)),
        "subnet-too-small",
        "Network.Ip4PrefixLength",
    );
    message_names(&f, "/31");
}

// ---- rule group 4: placement and uniqueness -------------------------------------------------

#[test]
fn r4_inside_the_lan_and_not_reserved() {
    case(
        &scalable(),
        &set(
            scalable(),
            "Machines/0/LinuxNode/Ip4Address",
            json!("192.168.2.171"),
        ),
        "address-outside-subnet",
        "Machines[0].LinuxNode.Ip4Address",
    );
    for reserved in ["192.168.1.0", "192.168.1.255", "192.168.1.1"] {
        case(
            &scalable(),
            &set(
                scalable(),
                "Machines/0/LinuxNode/Ip4Address",
                json!(reserved),
            ),
            "address-reserved",
            "Machines[0].LinuxNode.Ip4Address",
        );
    }
    case(
        &scalable(),
        &set(scalable(), "Init/ServiceIPRangeStart", json!("192.168.1.0")),
        "address-reserved",
        "Init.ServiceIPRangeStart",
    );
}

#[test]
fn r4_distinct_across_machines_and_service_range() {
    let f = case(
        &scalable(),
        &set(
            scalable(),
            "Network/ControlPlaneEndpointIp",
            json!("192.168.1.171"),
        ),
        "address-duplicate",
        "Machines[0].LinuxNode.Ip4Address",
    );
    message_names(&f, "Network.ControlPlaneEndpointIp");
    case(
        &scalable(),
        &set(
            scalable(),
            "Machines/0/LinuxNode/Ip4Address",
            json!("192.168.1.155"),
        ),
        "address-duplicate",
        "Machines[0].LinuxNode.Ip4Address",
    );
    let mut two = scalable();
    two["Machines"].as_array_mut().unwrap().push(json!({"MachineName": "b", "NetworkConnection": {"AdapterName": "eth0"}, "LinuxNode": {"Ip4Address": "192.168.1.172", "ControlPlane": false}}));
    two = set(two, "Machines/0/MachineName", json!("a"));
    case(
        &two,
        &set(
            two.clone(),
            "Machines/1/LinuxNode/Ip4Address",
            json!("192.168.1.171"),
        ),
        "address-duplicate",
        "Machines[1].LinuxNode.Ip4Address",
    );
}

#[test]
fn r4_service_range() {
    case(
        &scalable(),
        &set(scalable(), "Init/ServiceIPRangeSize", json!(128)),
        "service-range-size",
        "Init.ServiceIPRangeSize",
    );
    case(
        &scalable(),
        &set(
            scalable(),
            "Init/ServiceIPRangeStart",
            json!("192.168.1.250"),
        ),
        "service-range-outside-subnet",
        "Init.ServiceIPRangeSize",
    );
    case(
        &scalable(),
        &remove(scalable(), "Init/ServiceIPRangeStart"),
        "required-field",
        "Init.ServiceIPRangeStart",
    );
    case_with(
        &scalable(),
        &set(scalable(), "Init/ServiceIPRangeSize", json!(0)),
        "service-range-size",
        "Init.ServiceIPRangeSize",
        Severity::Warning,
        run,
    );
    case(
        &single(),
        &set(single(), "Init/ServiceIPRangeSize", json!(200)),
        "service-range-size",
        "Init.ServiceIPRangeSize",
    );
}

#[test]
fn r4_port_forwards() {
    let good = set(
        single(),
        "Edgenet/PortForwards",
        json!([{"Protocol": "tcp", "HostPort": 8080, "Node": "linux", "NodePort": 30080}]),
    );
    assert_clean(&run(&good));
    case(
        &good,
        &set(
            good.clone(),
            "Edgenet/PortForwards/0/HostPort",
            json!(70000),
        ),
        "port-forward-invalid",
        "Edgenet.PortForwards[0].HostPort",
    );
    case(
        &good,
        &remove(good.clone(), "Edgenet/PortForwards/0/Protocol"),
        "required-field",
        "Edgenet.PortForwards[0].Protocol",
    );
    // A key a forward does not have (a listen address, say) changes what the operator gets:
    // the forward answers at every host address. Said, not silently dropped.
    let f = case_with(
        &good,
        &set(
            good.clone(),
            "Edgenet/PortForwards/0/ListenAddress",
            json!("10.99.0.2"),
        ),
        "misspelt-key",
        "Edgenet.PortForwards[0].ListenAddress",
        Severity::Warning,
        run,
    );
    message_names(&f, "not a key of Edgenet.PortForwards[0]");
}

// ---- rule group 5: overlaps -----------------------------------------------------------------

#[test]
fn r5_kubernetes_ranges() {
    let f = case(
        &single(),
        &set(single(), "Network/Ip4AddressPrefix", json!("10.42.7.0/24")),
        "overlaps-kubernetes-range",
        "Network.Ip4AddressPrefix",
    );
    message_names(&f, "10.42.0.0/16");
    let k8s = fixture("k8s-calico.json");
    case(
        &k8s,
        &set(
            k8s.clone(),
            "Network/Ip4AddressPrefix",
            json!("10.100.0.0/24"),
        ),
        "overlaps-kubernetes-range",
        "Network.Ip4AddressPrefix",
    );
    let lan10 = set(
        set(
            set(
                set(scalable(), "Network/Ip4GatewayAddress", json!("10.43.0.1")),
                "Network/ControlPlaneEndpointIp",
                json!("10.43.0.191"),
            ),
            "Machines/0/LinuxNode/Ip4Address",
            json!("10.43.0.171"),
        ),
        "Init/ServiceIPRangeStart",
        json!("10.43.0.151"),
    );
    let findings = run(&lan10);
    assert_has(
        &findings,
        "overlaps-kubernetes-range",
        "Network.Ip4PrefixLength",
        Severity::Error,
    );
    assert_has(
        &findings,
        "overlaps-kubernetes-range",
        "Network.ControlPlaneEndpointIp",
        Severity::Error,
    );
    assert_has(
        &findings,
        "overlaps-kubernetes-range",
        "Init.ServiceIPRangeStart",
        Severity::Error,
    );
}

#[test]
fn r5_host_networks_named_with_their_interface() {
    let ok = set(
        single(),
        "Network/Ip4AddressPrefix",
        json!("192.168.7.0/24"),
    );
    let f = case(
        &ok,
        &set(
            single(),
            "Network/Ip4AddressPrefix",
            json!("192.168.1.0/24"),
        ),
        "overlaps-host-network",
        "Network.Ip4AddressPrefix",
    );
    message_names(&f, "192.168.1.0/24 on eth0");
    let mut wlan = host();
    wlan.links.push(HostLink {
        name: "wlan0".into(),
        index: 3,
        mtu: 1500,
        up: true,
        lower_up: true,
        mac: Some("02:00:00:00:00:09".into()),
        kind: None,
        master: None,
        wireless: true,
        alias: None,
    });
    wlan.addresses.push(edgenet_core::host_facts::HostAddress {
        link: "wlan0".into(),
        address: "192.168.7.20/24".parse().unwrap(),
    });
    message_names(
        &assert_has(
            &run_host(&ok, &wlan),
            "overlaps-host-network",
            "Network.Ip4AddressPrefix",
            Severity::Error,
        ),
        "on wlan0",
    );
}

#[test]
fn r5_a_kept_automatic_subnet_another_link_now_uses_is_refused() {
    let mut beside = host();
    beside
        .addresses
        .push(edgenet_core::host_facts::HostAddress {
            link: "othersw".into(),
            address: "192.168.7.1/24".parse().unwrap(),
        });
    let mut ctx = edgenet_core::validate::Context::live(&beside);
    ctx.machine = Some(0);
    ctx.deployed_subnet = Some("192.168.7.0/24".parse().unwrap());
    let f = assert_has(
        &run_with(&single(), &ctx),
        "overlaps-host-network",
        "Network.Ip4AddressPrefix",
        Severity::Error,
    );
    message_names(&f, "192.168.7.1/24 on othersw");
    // The deployment's own bridge under another name (the switch renamed: deploy retires it
    // first) is not another link.
    let mut renamed = beside.clone();
    renamed.links.push(HostLink {
        name: "othersw".into(),
        index: 9,
        mtu: 1500,
        up: true,
        lower_up: true,
        mac: Some("02:00:00:00:00:09".into()),
        kind: Some("bridge".into()),
        master: None,
        wireless: false,
        alias: Some("edgenet:abc123".into()),
    });
    let mut own_ctx = edgenet_core::validate::Context::live(&renamed);
    own_ctx.machine = Some(0);
    own_ctx.deployed_subnet = ctx.deployed_subnet;
    own_ctx.own_mark = Some("edgenet:abc123".into());
    assert!(find(
        &run_with(&single(), &own_ctx),
        "overlaps-host-network",
        "Network.Ip4AddressPrefix"
    )
    .is_none());
    // A lone /32 (on lo) or an address on a link that is down makes no second route for the
    // subnet: nothing to refuse (B18b 5).
    for (link, address, up) in [
        ("lo", "192.168.7.9/32", true),
        ("down0", "192.168.7.20/24", false),
    ] {
        let mut quiet = host();
        quiet.links.push(HostLink {
            name: link.into(),
            index: 11,
            mtu: 1500,
            up,
            lower_up: up,
            mac: None,
            kind: None,
            master: None,
            wireless: false,
            alias: None,
        });
        quiet.addresses.push(edgenet_core::host_facts::HostAddress {
            link: link.into(),
            address: address.parse().unwrap(),
        });
        let mut quiet_ctx = edgenet_core::validate::Context::live(&quiet);
        quiet_ctx.machine = Some(0);
        quiet_ctx.deployed_subnet = ctx.deployed_subnet;
        assert!(
            find(
                &run_with(&single(), &quiet_ctx),
                "overlaps-host-network",
                "Network.Ip4AddressPrefix"
            )
            .is_none(),
            "{address} on {link}"
        );
    }
    // Only its own switch there: nothing to say.
    ctx.deployed_subnet = Some("192.168.8.0/24".parse().unwrap());
    assert!(find(
        &run_with(&single(), &ctx),
        "overlaps-host-network",
        "Network.Ip4AddressPrefix"
    )
    .is_none());
}

#[test]
fn r5_own_switch_routes_do_not_count() {
    let mut deployed = host();
    deployed.routes.push(edgenet_core::host_facts::HostRoute {
        destination: "192.168.7.0/24".parse().unwrap(),
        link: Some("aksedgesw-int".into()),
        gateway: None,
    });
    let ok = set(
        single(),
        "Network/Ip4AddressPrefix",
        json!("192.168.7.0/24"),
    );
    assert_clean(&run_host(&ok, &deployed));
}

#[test]
fn r5_no_free_subnet() {
    let mut full = host();
    for net in ["192.168.0.0/16", "172.16.0.0/12", "10.0.0.0/8"] {
        full.routes.push(edgenet_core::host_facts::HostRoute {
            destination: net.parse().unwrap(),
            link: Some("eth0".into()),
            gateway: None,
        });
    }
    assert_clean(&run(&single()));
    assert_has(
        &run_host(&single(), &full),
        "no-free-subnet",
        "Network.Ip4AddressPrefix",
        Severity::Error,
    );
}

// ---- rule group 6: MACs ---------------------------------------------------------------------

#[test]
fn r6_macs() {
    let good = set(
        single(),
        "Machines/0/LinuxNode/MacAddress",
        json!("02:00:00:aa:bb:cc"),
    );
    assert_clean(&run(&good));
    case(
        &good,
        &set(
            single(),
            "Machines/0/LinuxNode/MacAddress",
            json!("02:00:00:aa:bb"),
        ),
        "invalid-mac",
        "Machines[0].LinuxNode.MacAddress",
    );
    case(
        &good,
        &set(
            single(),
            "Machines/0/LinuxNode/MacAddress",
            json!("01:00:5e:00:00:01"),
        ),
        "mac-not-unicast",
        "Machines[0].LinuxNode.MacAddress",
    );
    case(
        &good,
        &set(
            single(),
            "Machines/0/LinuxNode/MacAddress",
            json!("00:00:00:00:00:00"),
        ),
        "mac-not-unicast",
        "Machines[0].LinuxNode.MacAddress",
    );
    let dup = set(
        good.clone(),
        "Machines/0/WindowsNode",
        json!({"MacAddress": "02-00-00-AA-BB-CC"}),
    );
    case(
        &good,
        &dup,
        "mac-duplicate",
        "Machines[0].WindowsNode.MacAddress",
    );
}

// ---- rule group 7: MTU ----------------------------------------------------------------------

#[test]
fn r7_mtu_range_and_adapter() {
    let ok = set(
        single(),
        "Machines/0/NetworkConnection",
        json!({"Mtu": 9000}),
    );
    case(
        &ok,
        &set(
            single(),
            "Machines/0/NetworkConnection",
            json!({"Mtu": 1000}),
        ),
        "mtu-range",
        "Machines[0].NetworkConnection.Mtu",
    );
    case(
        &ok,
        &set(
            single(),
            "Machines/0/NetworkConnection",
            json!({"Mtu": 9217}),
        ),
        "mtu-range",
        "Machines[0].NetworkConnection.Mtu",
    );
    let ext_ok = set(scalable(), "Machines/0/NetworkConnection/Mtu", json!(1500));
    let f = case(
        &ext_ok,
        &set(scalable(), "Machines/0/NetworkConnection/Mtu", json!(9000)),
        "mtu-above-adapter",
        "Machines[0].NetworkConnection.Mtu",
    );
    message_names(&f, "1500");
}

// ---- rule group 8: DNS ----------------------------------------------------------------------

#[test]
fn r8_dns() {
    let f = case(
        &scalable(),
        &set(scalable(), "Network/DnsServers", json!(["127.0.0.53"])),
        "dns-loopback",
        "Network.DnsServers[0]",
    );
    assert!(f.hint.unwrap().contains("/run/systemd/resolve/resolv.conf"));
    case(
        &scalable(),
        &set(
            scalable(),
            "Network/DnsServers",
            json!(["192.168.1.1", "224.0.0.251"]),
        ),
        "address-not-unicast",
        "Network.DnsServers[1]",
    );
    let mut nodns = host();
    nodns.dns.servers.clear();
    nodns.dns.problem = Some("/etc/resolv.conf names no usable server".into());
    let f = assert_has(
        &run_host(&single(), &nodns),
        "dns-not-found",
        "Network.DnsServers",
        Severity::Error,
    );
    message_names(&f, "/etc/resolv.conf");
    assert!(find(&run(&single()), "dns-not-found", "Network.DnsServers").is_none());
    // Offline clusters need no DNS server; configured servers need no host ones.
    assert_clean(&run_host(
        &set(single(), "Network/InternetDisabled", json!(true)),
        &nodns,
    ));
    assert_clean(&run_host(
        &set(single(), "Network/DnsServers", json!(["9.9.9.9"])),
        &nodns,
    ));
}

#[test]
fn r8_stub_resolver_is_explained() {
    let mut stub = host();
    stub.dns.loopback_skipped = vec!["127.0.0.53".parse().unwrap()];
    stub.dns.source = Some("/run/systemd/resolve/resolv.conf".into());
    let f = assert_has(
        &run_host(&single(), &stub),
        "dns-loopback",
        "Network.DnsServers",
        Severity::Notice,
    );
    message_names(&f, "127.0.0.53");
}

// ---- rule group 9: proxy --------------------------------------------------------------------

#[test]
fn r9_proxy() {
    case(
        &scalable(),
        &set(
            scalable(),
            "Network/Proxy/Http",
            json!("proxy.corp.example:3128"),
        ),
        "proxy-url",
        "Network.Proxy.Http",
    );
    case(
        &scalable(),
        &set(
            scalable(),
            "Network/Proxy/Https",
            json!("http://proxy.corp.example"),
        ),
        "proxy-url",
        "Network.Proxy.Https",
    );
    case(
        &scalable(),
        &set(
            scalable(),
            "Network/Proxy/No",
            json!("localhost,http://bad"),
        ),
        "no-proxy-entry",
        "Network.Proxy.No",
    );
    case_with(
        &scalable(),
        &set(scalable(), "Network/Proxy/No", json!("*.corp.example")),
        "no-proxy-entry",
        "Network.Proxy.No",
        Severity::Warning,
        run,
    );
    case_with(
        &scalable(),
        &set(scalable(), "Network/InternetDisabled", json!(true)),
        "proxy-while-offline",
        "Network.Proxy",
        Severity::Warning,
        run,
    );
}

// ---- rule group 10: distribution and control plane -----------------------------------------

#[test]
fn r10_plugin_matches_distribution() {
    // Without Edgenet.Distribution the plugin decides: calico is K8s, not a mismatch.
    assert_clean(&run(&set(
        single(),
        "Network/NetworkPlugin",
        json!("calico"),
    )));
    let k3s = set(single(), "Edgenet/Distribution", json!("k3s"));
    let f = case(
        &k3s,
        &set(k3s.clone(), "Network/NetworkPlugin", json!("calico")),
        "plugin-mismatch",
        "Network.NetworkPlugin",
    );
    message_names(&f, "k3s");
    assert_clean(&run(&fixture("k8s-calico.json")));
    case(
        &fixture("k8s-calico.json"),
        &set(
            fixture("k8s-calico.json"),
            "Network/NetworkPlugin",
            json!("flannel"),
        ),
        "plugin-mismatch",
        "Network.NetworkPlugin",
    );
}

#[test]
fn r10_odd_control_plane() {
    let mut two = set(scalable(), "Machines/0/MachineName", json!("a"));
    two["Machines"].as_array_mut().unwrap().push(json!({"MachineName": "b", "NetworkConnection": {"AdapterName": "eth0"}, "LinuxNode": {"Ip4Address": "192.168.1.172", "ControlPlane": false}}));
    case(
        &two,
        &set(
            two.clone(),
            "Machines/1/LinuxNode/ControlPlane",
            json!(true),
        ),
        "control-plane-count",
        "Machines",
    );
    case(
        &scalable(),
        &set(
            scalable(),
            "Machines/0/LinuxNode/ControlPlane",
            json!(false),
        ),
        "control-plane-count",
        "Machines",
    );
    // A joining config adds to a control plane that lives elsewhere.
    assert_clean(&run(&fixture("aksee-scalable-join.json")));
    case(
        &single(),
        &set(single(), "Machines/0/LinuxNode/ControlPlane", json!(false)),
        "control-plane-count",
        "Machines[0].LinuxNode.ControlPlane",
    );
}

// ---- rule group 11: external switch and adapter --------------------------------------------

fn adapter_host(edit: impl FnOnce(&mut HostLink)) -> Vec<Finding> {
    let mut h = host();
    edit(h.links.iter_mut().find(|l| l.name == "eth0").unwrap());
    run_host(&scalable(), &h)
}

/// B18a D1: a config still naming the adapter by a name the host lost (renamed while
/// deployed, or named anew at boot) means the deployment's adapter, found by its MAC: a
/// warning with the new name, the checks and the plan on the adapter as it is now.
#[test]
fn r11_a_renamed_adapter_the_deployment_took_is_followed_with_a_warning() {
    let path = "Machines[0].NetworkConnection.AdapterName";
    let old_name = set(
        scalable(),
        "Machines/0/NetworkConnection/AdapterName",
        json!("Ethernet"),
    );
    let mut facts = host();
    facts
        .links
        .iter_mut()
        .find(|l| l.name == "eth0")
        .unwrap()
        .mtu = 1400;
    let mut ctx = edgenet_core::validate::Context::live(&facts);
    ctx.machine = Some(0);
    // Without the deployment's records the name is simply missing.
    assert_has(
        &run_with(&old_name, &ctx),
        "adapter-missing",
        path,
        Severity::Error,
    );
    // Recorded under the config's name (the record's, or the recorded config's).
    for recorded in [vec!["Ethernet"], vec!["enp3s0", "Ethernet"]] {
        ctx.deployed_adapters = recorded
            .iter()
            .map(|was| (was.to_string(), "eth0".to_string()))
            .collect();
        let findings = run_with(&old_name, &ctx);
        assert_clean(&findings);
        let f = assert_has(&findings, "adapter-renamed", path, Severity::Warning);
        message_names(&f, "\"eth0\"");
        assert!(f.hint.as_deref().unwrap().contains("\"eth0\""), "{f:?}");
        // The plan takes the adapter as the host calls it, with its MTU.
        let loaded = load(old_name.to_string().as_bytes()).unwrap();
        let plan = edgenet_core::plan::build(&loaded.config, &ctx).unwrap();
        assert_eq!(plan.switch.adapter.as_deref(), Some("eth0"));
        assert_eq!(plan.nodes[0].mtu, Some(1400));
    }
    // A config naming an adapter the host has is never redirected.
    assert!(find(&run_with(&scalable(), &ctx), "adapter-renamed", path).is_none());
    // A name the deployment never knew its adapter by is missing, not the deployment's adapter
    // renamed (B20 D8).
    ctx.deployed_adapters = vec![("enp3s0".to_string(), "eth0".to_string())];
    assert!(find(&run_with(&old_name, &ctx), "adapter-renamed", path).is_none());
    assert_has(
        &run_with(&old_name, &ctx),
        "adapter-missing",
        path,
        Severity::Error,
    );
    // The name now another NIC's while the deployment's adapter has a new name (names swapped
    // at boot): refused, naming both (B18b 3).
    ctx.deployed_adapters = vec![("eth0".to_string(), "eth1".to_string())];
    let f = assert_has(
        &run_with(&scalable(), &ctx),
        "adapter-renamed",
        path,
        Severity::Error,
    );
    message_names(&f, "\"eth1\"");
    // The recorded MAC on two interfaces now: no guess, but both named (B18b 6).
    ctx.deployed_adapters = Vec::new();
    ctx.ambiguous_adapters = vec![(
        "Ethernet".to_string(),
        vec!["enp3s0".to_string(), "eth9".to_string()],
    )];
    let f = assert_has(
        &run_with(&old_name, &ctx),
        "adapter-missing",
        path,
        Severity::Error,
    );
    message_names(&f, "enp3s0, eth9");
    ctx.ambiguous_adapters = Vec::new();
    // Two recorded adapters, neither recorded under the config's name: no guess.
    ctx.deployed_adapters = vec![
        ("enp3s0".to_string(), "eth0".to_string()),
        ("enp4s0".to_string(), "eth1".to_string()),
    ];
    assert_has(
        &run_with(&old_name, &ctx),
        "adapter-missing",
        path,
        Severity::Error,
    );
}

/// N3: two deployments' adapters swapped: the adapter is a port of the other deployment's
/// switch. The refusal says whose it is and which deployment this state directory holds, and
/// never advises taking the other deployment's bridge as this one's switch.
#[test]
fn r11_an_adapter_in_another_deployments_switch_is_named_as_theirs() {
    let path = "Machines[0].NetworkConnection.AdapterName";
    let mut h = host();
    h.links.push(HostLink {
        name: "o19sw-b".into(),
        index: 9,
        mtu: 1500,
        up: true,
        lower_up: true,
        mac: Some("02:00:00:00:00:09".into()),
        kind: Some("bridge".into()),
        master: None,
        wireless: false,
        alias: Some("edgenet:bbb222".into()),
    });
    h.links
        .iter_mut()
        .find(|l| l.name == "eth0")
        .unwrap()
        .master = Some("o19sw-b".into());
    let mut ctx = edgenet_core::validate::Context::live(&h);
    ctx.machine = Some(0);
    ctx.own_mark = Some("edgenet:aaa111".into());
    let f = assert_has(
        &run_with(&scalable(), &ctx),
        "adapter-enslaved",
        path,
        Severity::Error,
    );
    message_names(&f, "another edgenet deployment (bbb222)");
    message_names(&f, "holds deployment aaa111");
    let hint = f.hint.unwrap_or_default();
    assert!(!hint.contains("set Edgenet.SwitchName"), "{hint}");
    assert!(hint.contains("--state-dir"), "{hint}");
}

#[test]
fn r11_adapter() {
    let path = "Machines[0].NetworkConnection.AdapterName";
    assert_clean(&run(&scalable()));
    let f = assert_has(
        &run(&set(
            scalable(),
            "Machines/0/NetworkConnection/AdapterName",
            json!("enp9s0"),
        )),
        "adapter-missing",
        path,
        Severity::Error,
    );
    assert!(f.hint.unwrap().contains("eth0"));
    assert_has(
        &adapter_host(|l| l.up = false),
        "adapter-down",
        path,
        Severity::Error,
    );
    assert_has(
        &adapter_host(|l| l.lower_up = false),
        "adapter-down",
        path,
        Severity::Warning,
    );
    message_names(
        &assert_has(
            &adapter_host(|l| l.master = Some("br-lan".into())),
            "adapter-enslaved",
            path,
            Severity::Error,
        ),
        "br-lan",
    );
    assert!(find(
        &adapter_host(|l| l.master = Some("aksedgesw-ext".into())),
        "adapter-enslaved",
        path
    )
    .is_none());
    let f = assert_has(
        &adapter_host(|l| l.wireless = true),
        "adapter-wireless",
        path,
        Severity::Error,
    );
    assert!(f.hint.unwrap().contains("wired"));
}

#[test]
fn r11_switch_name() {
    let ok = set(single(), "Edgenet/SwitchName", json!("br-edge"));
    for bad in ["a-very-long-bridge-name", "br:0", "br 0", "br/0"] {
        case(
            &ok,
            &set(single(), "Edgenet/SwitchName", json!(bad)),
            "switch-name",
            "Edgenet.SwitchName",
        );
    }
}

// ---- rule group 12 and skipped host rules ---------------------------------------------------

#[test]
fn r12_probe_not_run_is_said_plainly() {
    let f = assert_has(
        &run(&scalable()),
        "probe-not-run",
        "Network",
        Severity::Notice,
    );
    message_names(&f, "did not run");
    assert!(find(&run(&single()), "probe-not-run", "Network").is_none());
}

#[test]
fn host_rules_are_skipped_with_a_notice_never_silently() {
    let findings = run_offline(&set(
        scalable(),
        "Machines/0/NetworkConnection/AdapterName",
        json!("nope0"),
    ));
    assert!(find(
        &findings,
        "adapter-missing",
        "Machines[0].NetworkConnection.AdapterName"
    )
    .is_none());
    message_names(
        &assert_has(&findings, "host-checks-skipped", "", Severity::Notice),
        "--offline-check",
    );
}

#[test]
fn every_finding_has_a_path_message_and_rule() {
    let bad = set(
        set(scalable(), "Network/Ip4GatewayAddress", json!("x")),
        "Machines/0/LinuxNode/MacAddress",
        json!("01:00:00:00:00:01"),
    );
    for f in run(&bad) {
        assert!(!f.message.is_empty());
        assert!(f.rule <= 12);
        if f.severity == Severity::Error {
            assert!(f.hint.is_some(), "error without a hint: {f:#?}");
        }
    }
}

#[test]
fn loader_rejects_what_is_not_a_config() {
    for (bytes, needle) in [
        (&b"{\"DeploymentType\": "[..], "not valid JSON"),
        (&b"[1,2]"[..], "must be a JSON object"),
        (&b"\xff\xfe\x00\xd8"[..], "UTF-16"),
        // Not UTF-8 is read as Windows-1252, except for the bytes that leave undefined.
        (
            &b"{\"a\": \"\x81\x28\"}"[..],
            "neither UTF-8 nor Windows-1252",
        ),
    ] {
        let err = load(bytes).expect_err("must not load");
        assert!(err.to_string().contains(needle), "{err}");
    }
    let big = vec![b' '; edgenet_core::config::MAX_CONFIG_BYTES + 1];
    assert!(load(&big).unwrap_err().to_string().contains("at most"));
}

#[test]
fn loader_reads_utf16_and_bom_files_from_windows() {
    let text = fixture_text("aksee-single-machine.json");
    let mut utf16 = vec![0xff, 0xfe];
    utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    assert_clean(&check_bytes(&utf16));
    let mut bom = vec![0xef, 0xbb, 0xbf];
    bom.extend(text.as_bytes());
    assert_clean(&check_bytes(&bom));
}

fn check_bytes(bytes: &[u8]) -> Vec<Finding> {
    let loaded = load(bytes).expect("loads");
    let facts = host();
    edgenet_core::validate::check(&loaded, &edgenet_core::validate::Context::live(&facts))
}

fn run_probe(json: &Value, answers: &[(&str, &str)], own: &[&str]) -> Vec<Finding> {
    use edgenet_core::validate::{Context, ProbeView};
    let facts = host();
    let mut ctx = Context::live(&facts);
    ctx.machine = Some(0);
    ctx.probe = ProbeView::Ran {
        interface: "eth0".into(),
        answers: answers
            .iter()
            .map(|(ip, mac)| (ip.parse().unwrap(), mac.parse().unwrap()))
            .collect(),
        own_macs: own.iter().map(|m| m.parse().unwrap()).collect(),
        gateway: None,
    };
    run_with(json, &ctx)
}

#[test]
fn r12_an_answered_address_is_in_use_naming_the_mac() {
    let clean = run_probe(&scalable(), &[], &[]);
    assert!(find(&clean, "address-in-use", "Machines[0].LinuxNode.Ip4Address").is_none());
    let f = assert_has(
        &run_probe(&scalable(), &[("192.168.1.171", "52:54:00:aa:bb:cc")], &[]),
        "address-in-use",
        "Machines[0].LinuxNode.Ip4Address",
        Severity::Error,
    );
    message_names(&f, "52:54:00:aa:bb:cc");
    assert_has(
        &run_probe(&scalable(), &[("192.168.1.191", "52:54:00:aa:bb:cc")], &[]),
        "address-in-use",
        "Network.ControlPlaneEndpointIp",
        Severity::Error,
    );
    assert_has(
        &run_probe(&scalable(), &[("192.168.1.155", "52:54:00:aa:bb:cc")], &[]),
        "address-in-use",
        "Init.ServiceIPRangeStart",
        Severity::Error,
    );
    // This machine's own, already deployed node answering is not a conflict.
    assert_clean(&run_probe(
        &scalable(),
        &[("192.168.1.171", "02:00:00:00:00:07")],
        &["02:00:00:00:00:07"],
    ));
    // A joining machine leaves the endpoint and the service range to the running cluster.
    let join = fixture("aksee-scalable-join.json");
    assert_clean(&run_probe(
        &join,
        &[
            ("192.168.1.191", "52:54:00:aa:bb:cc"),
            ("192.168.1.155", "52:54:00:aa:bb:cc"),
        ],
        &[],
    ));
    assert_has(
        &run_probe(&join, &[("192.168.1.173", "52:54:00:aa:bb:cc")], &[]),
        "address-in-use",
        "Machines[0].WindowsNode.Ip4Address",
        Severity::Error,
    );
    // Skipped on request, with a notice.
    let skipped = run_probe(
        &set(scalable(), "Network/SkipAddressFreeCheck", json!(true)),
        &[("192.168.1.171", "52:54:00:aa:bb:cc")],
        &[],
    );
    assert_clean(&skipped);
    message_names(
        &assert_has(
            &skipped,
            "probe-not-run",
            "Network.SkipAddressFreeCheck",
            Severity::Notice,
        ),
        "skipped",
    );
}
