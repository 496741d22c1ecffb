//! Plans of the fixtures and of the built-in default: what `edgenet plan` promises.

mod common;

use common::*;
use edgenet_core::config::{builtin_default, load, template, DeploymentType, Distribution};
use edgenet_core::host_facts::HostRoute;
use edgenet_core::plan::{
    self, DnsSource, MacAssignment, NodeKind, NodeRole, Outbound, Plan, PlanError, SubnetSource,
    SwitchKind,
};
use edgenet_core::validate::{check, Context};
use serde_json::{json, Value};

fn plan_on(
    json: &Value,
    facts: &edgenet_core::host_facts::HostFacts,
    machine: Option<usize>,
) -> Result<Plan, PlanError> {
    let loaded = load(json.to_string().as_bytes()).unwrap();
    let mut ctx = Context::live(facts);
    ctx.machine = machine;
    assert_clean(&check(&loaded, &ctx));
    plan::build(&loaded.config, &ctx)
}

fn s<T: ToString>(v: T) -> String {
    v.to_string()
}

#[test]
fn builtin_default_is_192_168_0_with_k3s_ranges() {
    let p = plan_on(&builtin_default(), &host(), None).unwrap();
    assert_eq!(p.deployment_type, DeploymentType::SingleMachineCluster);
    assert_eq!(p.switch.name, "aksedgesw-int");
    assert_eq!(p.switch.kind, SwitchKind::Internal);
    assert_eq!(p.switch.subnet_source, SubnetSource::Automatic);
    assert_eq!(s(p.switch.subnet), "192.168.0.0/24");
    assert_eq!(s(p.switch.host_address.unwrap()), "192.168.0.1/24");
    assert_eq!(p.switch.mtu, Some(1500));
    assert_eq!(p.switch.outbound, Outbound::Nat);
    assert_eq!(p.nodes.len(), 1);
    let n = &p.nodes[0];
    assert_eq!(
        (n.name.as_str(), n.kind, n.role),
        ("edge01-ledge", NodeKind::Linux, NodeRole::ControlPlane)
    );
    assert_eq!(s(n.address), "192.168.0.2/24");
    assert_eq!(s(n.gateway), "192.168.0.1");
    assert_eq!(n.mac, MacAssignment::GeneratedAtDeploy);
    assert_eq!(n.dns_source, DnsSource::Host);
    assert_eq!(
        n.dns_servers,
        vec!["192.168.1.1".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(s(p.control_plane_endpoint), "192.168.0.2");
    let r = p.service_range.unwrap();
    assert_eq!(
        (s(r.start), s(r.end), r.size),
        ("192.168.0.4".into(), "192.168.0.13".into(), 10)
    );
    assert_eq!(s(p.kubernetes.pod_cidr), "10.42.0.0/16");
    assert_eq!(s(p.kubernetes.service_cidr), "10.43.0.0/16");
    assert_eq!(s(p.kubernetes.cluster_dns), "10.43.0.10");
    assert_eq!(
        n.proxy.no_proxy,
        "localhost,127.0.0.0/8,192.168.0.0/24,10.42.0.0/16,10.43.0.0/16,192.168.0.2,.svc,.cluster.local"
    );
}

#[test]
fn builtin_default_moves_to_the_next_free_24_when_taken() {
    let mut h = host();
    h.routes.push(HostRoute {
        destination: "192.168.0.0/24".parse().unwrap(),
        link: Some("docker0".into()),
        gateway: None,
    });
    let p = plan_on(&builtin_default(), &h, None).unwrap();
    assert_eq!(
        s(p.switch.subnet),
        "192.168.2.0/24",
        "192.168.1.0/24 is eth0's"
    );
    assert_eq!(s(p.nodes[0].address), "192.168.2.2/24");
}

#[test]
fn offline_plan_says_what_it_could_not_see() {
    let loaded = load(builtin_default().to_string().as_bytes()).unwrap();
    let p = plan::build(
        &loaded.config,
        &Context::offline("--offline-check", "edge01"),
    )
    .unwrap();
    assert_eq!(p.switch.subnet_source, SubnetSource::AutomaticUnchecked);
    assert_eq!(p.nodes[0].dns_source, DnsSource::HostAtDeploy);
}

#[test]
fn offline_without_dns_servers_gives_the_nodes_none_of_the_hosts() {
    let mut config = builtin_default();
    config["Network"]["InternetDisabled"] = json!(true);
    let p = plan_on(&config, &host(), None).unwrap();
    // The host has 192.168.1.1 upstream, beyond the switch an offline node cannot cross.
    assert_eq!(p.nodes[0].dns_source, DnsSource::Offline);
    assert!(
        p.nodes[0].dns_servers.is_empty(),
        "{:?}",
        p.nodes[0].dns_servers
    );
    // Given ones are kept.
    config["Network"]["DnsServers"] = json!(["192.168.0.1"]);
    let p = plan_on(&config, &host(), None).unwrap();
    assert_eq!(p.nodes[0].dns_source, DnsSource::Configured);
    assert_eq!(s(p.nodes[0].dns_servers[0]), "192.168.0.1");
}

#[test]
fn single_machine_product_sample() {
    let p = plan_on(&fixture("aksee-single-machine.json"), &host(), None).unwrap();
    assert_eq!(p.service_range.unwrap().size, 10);
    assert_eq!(p.kubernetes.network_plugin.as_str(), "flannel");
}

#[test]
fn k8s_calico_with_windows_node_static_mac_and_mtu() {
    let p = plan_on(&fixture("k8s-calico.json"), &host(), None).unwrap();
    assert_eq!(p.distribution, Distribution::K8s);
    assert_eq!(s(p.switch.subnet), "172.30.5.0/24");
    assert_eq!(p.switch.subnet_source, SubnetSource::Configured);
    assert_eq!(p.switch.mtu, Some(1400));
    let names: Vec<_> = p
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), s(n.address), n.mtu))
        .collect();
    assert_eq!(
        names,
        vec![
            ("plant-a-ledge", "172.30.5.2/24".into(), Some(1400)),
            ("plant-a-wedge", "172.30.5.3/24".into(), Some(1400))
        ]
    );
    assert_eq!(
        p.nodes[0].mac,
        MacAssignment::Static {
            address: "02:15:5d:00:00:02".parse().unwrap()
        }
    );
    assert_eq!(p.nodes[1].role, NodeRole::Worker);
    assert_eq!(p.nodes[0].dns_source, DnsSource::Configured);
    let r = p.service_range.unwrap();
    assert_eq!(
        (s(r.start), s(r.end)),
        ("172.30.5.4".into(), "172.30.5.7".into())
    );
    assert_eq!(
        (
            s(p.kubernetes.pod_cidr),
            s(p.kubernetes.service_cidr),
            s(p.kubernetes.cluster_dns)
        ),
        (
            "10.244.0.0/24".into(),
            "10.96.0.0/12".into(),
            "10.96.0.10".into()
        )
    );
    assert_eq!(p.kubernetes.network_plugin.as_str(), "calico");
}

#[test]
fn scalable_first_machine() {
    let p = plan_on(&fixture("aksee-scalable-first.json"), &host(), None).unwrap();
    assert_eq!(p.switch.kind, SwitchKind::External);
    assert_eq!(p.switch.name, "aksedgesw-ext");
    assert_eq!(p.switch.adapter.as_deref(), Some("eth0"));
    assert_eq!(p.switch.host_address, None);
    assert_eq!(p.switch.mtu, Some(1500), "the adapter's MTU");
    assert_eq!(p.switch.outbound, Outbound::Direct);
    assert_eq!(s(p.nodes[0].address), "192.168.1.171/24");
    assert_eq!(s(p.nodes[0].gateway), "192.168.1.1");
    assert_eq!(p.nodes[0].role, NodeRole::ControlPlane);
    assert_eq!(s(p.control_plane_endpoint), "192.168.1.191");
    let r = p.service_range.unwrap();
    assert_eq!(
        (s(r.start), s(r.end)),
        ("192.168.1.151".into(), "192.168.1.160".into())
    );
    assert_eq!(
        p.nodes[0].proxy.http_proxy.as_deref(),
        Some("http://proxy.corp.example:3128")
    );
    assert!(p.nodes[0]
        .proxy
        .no_proxy
        .starts_with("localhost,.corp.example,192.168.1.0/24,127.0.0.0/8,"));
    assert!(!p.joining);
}

#[test]
fn joining_machine_with_windows_worker() {
    let p = plan_on(&fixture("aksee-scalable-join.json"), &host(), None).unwrap();
    assert!(p.joining);
    let roles: Vec<_> = p
        .nodes
        .iter()
        .map(|n| (n.kind, n.role, s(n.address)))
        .collect();
    assert_eq!(
        roles,
        vec![
            (NodeKind::Linux, NodeRole::Worker, "192.168.1.172/24".into()),
            (
                NodeKind::Windows,
                NodeRole::Worker,
                "192.168.1.173/24".into()
            )
        ]
    );
    assert_eq!(p.nodes[0].proxy.http_proxy, None, "\"\" means not set");
}

#[test]
fn preview_vswitch_form_is_mapped() {
    let v = fixture("aksee-preview-vswitch.json");
    let loaded = load(v.to_string().as_bytes()).unwrap();
    assert!(loaded
        .findings
        .iter()
        .any(|f| f.code.as_str() == "legacy-field" && f.path == "Network.VSwitch"));
    let p = plan_on(&v, &host(), None).unwrap();
    assert_eq!(p.switch.name, "aksedgesw-ext");
    assert_eq!(p.switch.adapter.as_deref(), Some("eth0"));
    assert_eq!(s(p.switch.subnet), "192.168.1.0/24");
}

#[test]
fn several_machines_need_a_choice() {
    let mut v = set(
        fixture("aksee-scalable-first.json"),
        "Machines/0/MachineName",
        json!("m0"),
    );
    v["Machines"].as_array_mut().unwrap().push(json!({"MachineName": "m1", "NetworkConnection": {"AdapterName": "eth0"}, "LinuxNode": {"Ip4Address": "192.168.1.172", "ControlPlane": false}}));
    assert_eq!(
        plan_on(&v, &host(), None).unwrap_err(),
        PlanError::MachineNotChosen { count: 2 }
    );
    let p = plan_on(&v, &host(), Some(1)).unwrap();
    assert_eq!(
        (
            p.machine.name.as_str(),
            p.nodes[0].name.as_str(),
            p.nodes[0].role
        ),
        ("m1", "m1-ledge", NodeRole::Worker)
    );
    assert!(matches!(
        plan_on(&v, &host(), Some(5)),
        Err(PlanError::MachineOutOfRange { index: 5, count: 2 })
    ));
}

#[test]
fn config_new_output_passes_check_as_written() {
    use template::NodeSelection::*;
    for distro in [Distribution::K3s, Distribution::K8s] {
        for nodes in [Linux, LinuxAndWindows] {
            let single = template::new_config(DeploymentType::SingleMachineCluster, nodes, distro);
            assert_clean(&run(&single));
            let scalable = template::new_config(DeploymentType::ScalableCluster, nodes, distro);
            let findings = run(&scalable);
            let placeholders: Vec<_> = findings
                .iter()
                .filter(|f| f.code.as_str() == "placeholder")
                .map(|f| f.path.as_str())
                .collect();
            assert!(
                placeholders.contains(&"Network.ControlPlaneEndpointIp")
                    && placeholders.contains(&"Machines[0].LinuxNode.Ip4Address"),
                "{placeholders:?}"
            );
            assert!(
                findings
                    .iter()
                    .filter(|f| f.severity == edgenet_core::validate::Severity::Error)
                    .all(|f| f.code.as_str() == "placeholder"),
                "{findings:#?}"
            );
        }
    }
    assert!(template::template_problem(Windows).is_some());
}

#[test]
fn plan_json_carries_the_schema_version() {
    let p = plan_on(&builtin_default(), &host(), None).unwrap();
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["schema"], "edgenet.plan/v1");
    assert_eq!(v["switch"]["subnet"], "192.168.0.0/24");
    assert_eq!(v["nodes"][0]["mac"]["mode"], "generated-at-deploy");
    let back: Plan = serde_json::from_value(v).unwrap();
    assert_eq!(back, p);
}
