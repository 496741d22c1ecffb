//! Property tests: the address math never hands out an address twice or outside its subnet,
//! the automatic subnet avoids every host route, and no input makes the core panic.

mod common;

use std::collections::HashSet;
use std::net::Ipv4Addr;

use common::*;
use edgenet_core::addressing::{
    choose_automatic_subnet, is_host_address, overlaps, AUTOMATIC_SEARCH,
};
use edgenet_core::config::load;
use edgenet_core::host_facts::HostRoute;
use edgenet_core::plan::{self, Plan};
use edgenet_core::validate::{check, Context, Severity};
use ipnet::Ipv4Net;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Invariants every plan keeps, whatever config produced it.
fn assert_plan_invariants(p: &Plan) {
    let subnet = p.switch.subnet;
    let mut seen = HashSet::new();
    let gateway = p.switch.gateway;
    for n in &p.nodes {
        let ip = n.address.addr();
        assert!(
            is_host_address(subnet, ip),
            "{ip} not a host address of {subnet}"
        );
        assert_ne!(ip, gateway, "node on the gateway");
        assert!(seen.insert(ip), "{ip} handed out twice");
        assert_eq!(n.address.prefix_len(), subnet.prefix_len());
    }
    if let Some(h) = p.switch.host_address {
        assert!(is_host_address(subnet, h.addr()));
        assert!(seen.insert(h.addr()), "host address reused");
    }
    if let Some(r) = p.service_range {
        for ip in r.addresses() {
            assert!(is_host_address(subnet, ip), "service {ip} outside {subnet}");
            assert_ne!(ip, gateway);
            assert!(
                !seen.contains(&ip),
                "service {ip} collides with a node or the host"
            );
        }
        assert!(
            !r.contains(p.control_plane_endpoint),
            "endpoint inside the service range"
        );
    }
    for reserved in [p.kubernetes.pod_cidr, p.kubernetes.service_cidr] {
        assert!(!overlaps(subnet, reserved), "{subnet} overlaps {reserved}");
    }
}

fn plan_if_clean(v: &Value, ctx: &Context<'_>) -> Option<Plan> {
    let loaded = load(v.to_string().as_bytes()).ok()?;
    let findings = check(&loaded, ctx);
    if findings.iter().any(|f| f.severity == Severity::Error) {
        return None;
    }
    Some(plan::build(&loaded.config, ctx).expect("a config without errors always plans"))
}

fn private_prefix() -> impl Strategy<Value = Ipv4Net> {
    (0usize..3, any::<u32>(), 16u8..=30).prop_map(|(range, bits, len)| {
        let (base, plen) = AUTOMATIC_SEARCH[range];
        let base = u32::from(base);
        let host_mask = if plen == 0 {
            u32::MAX
        } else {
            u32::MAX >> plen
        };
        Ipv4Net::new(Ipv4Addr::from(base | (bits & host_mask)), len.max(plen))
            .unwrap()
            .trunc()
    })
}

fn route(net: Ipv4Net) -> HostRoute {
    HostRoute {
        destination: net,
        link: Some("eth9".into()),
        gateway: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn single_machine_plans_keep_invariants(prefix in private_prefix(), windows in any::<bool>(), size in 0u32..=127) {
        let mut v = set(set(fixture("aksee-single-machine.json"), "Network/Ip4AddressPrefix", json!(prefix.to_string())), "Init/ServiceIPRangeSize", json!(size));
        if windows {
            v = set(v, "Machines/0/WindowsNode", json!({}));
        }
        let facts = host();
        if let Some(p) = plan_if_clean(&v, &Context::live(&facts)) {
            assert_plan_invariants(&p);
            prop_assert_eq!(p.nodes.len(), 1 + usize::from(windows));
            prop_assert_eq!(p.service_range.map_or(0, |r| r.size), size);
        }
    }

    #[test]
    fn scalable_plans_keep_invariants(
        gw_bits in any::<u32>(), len in 20u8..=28, offsets in proptest::collection::vec(0u32..300, 4..12), size in 0u32..20, machines in 1usize..5
    ) {
        let lan = Ipv4Net::new(Ipv4Addr::from(0xc0a8_0000 | (gw_bits & 0xffff)), len).unwrap().trunc();
        let at = |i: u32| Ipv4Addr::from(u32::from(lan.network()) + i);
        let gateway = at(1);
        let mut machine_list = Vec::new();
        for m in 0..machines {
            machine_list.push(json!({
                "MachineName": format!("m{m}"),
                "NetworkConnection": {"AdapterName": "eth0"},
                "LinuxNode": {"Ip4Address": at(offsets[m % offsets.len()] + m as u32).to_string(), "ControlPlane": m == 0},
            }));
        }
        let v = json!({
            "DeploymentType": "ScalableCluster",
            "Init": {"ServiceIPRangeStart": at(offsets[0] + 7).to_string(), "ServiceIPRangeSize": size},
            "Network": {"ControlPlaneEndpointIp": at(offsets[1]).to_string(), "Ip4GatewayAddress": gateway.to_string(), "Ip4PrefixLength": len, "DnsServers": ["192.168.1.1"]},
            "Machines": machine_list,
        });
        let facts = host();
        let mut all_nodes = HashSet::new();
        for m in 0..machines {
            let mut ctx = Context::live(&facts);
            ctx.machine = Some(m);
            let Some(p) = plan_if_clean(&v, &ctx) else { break };
            assert_plan_invariants(&p);
            for n in &p.nodes {
                prop_assert!(all_nodes.insert(n.address.addr()), "{} used by two machines", n.address);
                prop_assert_ne!(n.address.addr(), p.control_plane_endpoint);
            }
        }
    }

    #[test]
    fn automatic_subnet_avoids_every_route(routes in proptest::collection::vec(private_prefix(), 0..40)) {
        let mut facts = host();
        facts.routes.extend(routes.iter().copied().map(route));
        let v = fixture("aksee-single-machine.json");
        if let Some(p) = plan_if_clean(&v, &Context::live(&facts)) {
            for r in &routes {
                prop_assert!(!overlaps(p.switch.subnet, *r), "{} overlaps host route {}", p.switch.subnet, r);
            }
            prop_assert!(!overlaps(p.switch.subnet, "192.168.1.0/24".parse().unwrap()));
            assert_plan_invariants(&p);
        }
    }

    #[test]
    fn automatic_subnet_is_the_first_free_one(routes in proptest::collection::vec(private_prefix(), 0..12)) {
        let chosen = choose_automatic_subnet(&routes);
        // Brute force over the search order.
        let expected = AUTOMATIC_SEARCH.iter().flat_map(|(base, len)| {
            Ipv4Net::new(*base, *len).unwrap().subnets(24).unwrap()
        }).find(|c| routes.iter().all(|r| !overlaps(*c, *r)));
        prop_assert_eq!(chosen, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(loaded) = load(&bytes) {
            let ctx = Context::offline("test", "h");
            let _ = check(&loaded, &ctx);
            let _ = plan::build(&loaded.config, &ctx);
        }
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let wrapped = json!({"DeploymentType": "ScalableCluster", "Network": v.clone(), "Machines": [v.clone()], "Init": v.clone(), "Edgenet": v});
        let loaded = load(wrapped.to_string().as_bytes()).expect("an object always loads");
        let facts = host();
        let mut ctx = Context::live(&facts);
        ctx.machine = Some(0);
        let findings = check(&loaded, &ctx);
        if !findings.iter().any(|f| f.severity == Severity::Error) {
            prop_assert!(plan::build(&loaded.config, &ctx).is_ok());
        }
    }

    #[test]
    fn mutated_fixtures_give_findings_not_panics(which in 0usize..5, path_pick in any::<prop::sample::Index>(), replacement in arb_json()) {
        let names = ["aksee-single-machine.json", "aksee-scalable-first.json", "aksee-scalable-join.json", "aksee-preview-vswitch.json", "k8s-calico.json"];
        let mut v = fixture(names[which]);
        let mut paths = Vec::new();
        collect_paths(&v, String::new(), &mut paths);
        let target = path_pick.get(&paths).clone();
        if let Some(slot) = v.pointer_mut(&target) { *slot = replacement; }
        if let Ok(loaded) = load(v.to_string().as_bytes()) {
            let facts = host();
            for machine in [None, Some(0)] {
                let mut ctx = Context::live(&facts);
                ctx.machine = machine;
                let findings = check(&loaded, &ctx);
                if !findings.iter().any(|f| f.severity == Severity::Error) {
                    if let Ok(p) = plan::build(&loaded.config, &ctx) { assert_plan_invariants(&p); }
                }
            }
        }
    }
}

fn collect_paths(v: &Value, here: String, out: &mut Vec<String>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, c)| collect_paths(c, format!("{here}/{k}"), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, c)| collect_paths(c, format!("{here}/{i}"), out)),
        _ => {}
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "Ip4Address",
        "MacAddress",
        "ControlPlane",
        "AdapterName",
        "Mtu",
        "LinuxNode",
        "WindowsNode",
        "Proxy",
        "Http",
        "No",
        "DnsServers",
        "Ip4AddressPrefix",
        "Ip4GatewayAddress",
        "Ip4PrefixLength",
        "ControlPlaneEndpointIp",
        "ServiceIPRangeStart",
        "ServiceIPRangeSize",
        "PortForwards",
        "SwitchName",
        "NetworkConnection",
        "VSwitch",
        "Name",
        "Distribution",
        "x",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0u32..70000).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "192.168.0.1",
            "10.42.0.5",
            "fd00::1",
            "0.0.0.0",
            "192.168.0.0/24",
            "02:00:00:00:00:01",
            "http://p:3128",
            "<x>",
            "k8s",
            "calico",
            "tcp",
            ""
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((keys.clone(), inner), 0..5).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}
