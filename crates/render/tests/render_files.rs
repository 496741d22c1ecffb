//! Renders single-machine and scalable configs (K3s and kubeadm, Linux and Windows nodes, proxy,
//! offline, empty and full service ranges) and reads every file back with its consumer's typed
//! model; K3s keys are checked against K3s's own flag lists.

mod common;

use std::collections::BTreeMap;

use common::*;
use edgenet_core::plan::{NodeRole, Plan};
use edgenet_render::model::kubeadm::KubeadmDocument;
use edgenet_render::{
    render, LbProvider, NodeNamespace, RenderError, RenderOptions, Rendered, PLACEHOLDER,
};

struct Scenario {
    name: &'static str,
    config: serde_json::Value,
    machine: Option<usize>,
    creates_cluster: bool,
    lb: LbProvider,
}

fn scenarios() -> Vec<Scenario> {
    let s = |name, config, machine, creates_cluster, lb| Scenario {
        name,
        config,
        machine,
        creates_cluster,
        lb,
    };
    vec![
        s(
            "single k3s",
            single("k3s", false, 10),
            None,
            true,
            LbProvider::KubeVip,
        ),
        s(
            "single k3s windows proxy no range",
            with_proxy(single("k3s", true, 0)),
            None,
            true,
            LbProvider::KubeVip,
        ),
        s(
            "single k3s offline metallb",
            offline(single("k3s", false, 5)),
            None,
            true,
            LbProvider::Metallb,
        ),
        s(
            "single k8s",
            single("k8s", false, 10),
            None,
            true,
            LbProvider::KubeVip,
        ),
        s(
            "single k8s windows offline proxy",
            offline(with_proxy(single("k8s", true, 3))),
            None,
            true,
            LbProvider::Metallb,
        ),
        s(
            "scalable k3s first server",
            scalable("k3s", 4, 3, false, 10),
            Some(0),
            true,
            LbProvider::KubeVip,
        ),
        s(
            "scalable k3s second server",
            scalable("k3s", 4, 3, false, 10),
            Some(1),
            false,
            LbProvider::KubeVip,
        ),
        s(
            "scalable k3s agent windows proxy",
            with_proxy(scalable("k3s", 3, 1, true, 0)),
            Some(2),
            false,
            LbProvider::KubeVip,
        ),
        s(
            "scalable k3s full range",
            scalable("k3s", 2, 1, false, 127),
            Some(0),
            true,
            LbProvider::KubeVip,
        ),
        s(
            "scalable k8s first",
            with_proxy(scalable("k8s", 4, 3, true, 127)),
            Some(0),
            true,
            LbProvider::KubeVip,
        ),
        s(
            "scalable k8s second control plane",
            scalable("k8s", 4, 3, false, 10),
            Some(1),
            false,
            LbProvider::Metallb,
        ),
        s(
            "scalable k8s worker offline",
            offline(scalable("k8s", 3, 1, true, 0)),
            Some(2),
            false,
            LbProvider::KubeVip,
        ),
    ]
}

fn namespaces(plan: &Plan) -> BTreeMap<String, NodeNamespace> {
    plan.nodes
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                NodeNamespace {
                    netns: format!("{}-0a1b2c", n.name),
                    resolv_conf: format!("/var/lib/edgenet/nodes/{}/resolv.conf", n.name),
                    proxy_env: format!("/var/lib/edgenet/nodes/{}/proxy.env", n.name),
                },
            )
        })
        .collect()
}

fn rendered(sc: &Scenario) -> (Plan, Rendered) {
    let plan = plan_of(&sc.config, sc.machine);
    let opts = RenderOptions {
        lb: sc.lb,
        creates_cluster: sc.creates_cluster,
        namespaces: namespaces(&plan),
        ..Default::default()
    };
    let r = render(&plan, &opts).unwrap_or_else(|e| panic!("{}: {e}", sc.name));
    (plan, r)
}

#[test]
fn every_file_of_every_scenario_parses_back_with_its_model() {
    let server_flags = flag_list("k3s-server-flags.txt");
    let agent_flags = flag_list("k3s-agent-flags.txt");
    for sc in scenarios() {
        let (plan, r) = rendered(&sc);
        assert!(!r.files.is_empty(), "{}", sc.name);
        for f in &r.files {
            let parsed = parse(f);
            if let Parsed::K3s(c) = &parsed {
                let node = plan.nodes.iter().find(|n| n.name == f.node).unwrap();
                let allowed = if node.role == NodeRole::ControlPlane
                    && node.kind == edgenet_core::plan::NodeKind::Linux
                {
                    &server_flags
                } else {
                    &agent_flags
                };
                for key in c.keys() {
                    assert!(
                        allowed.contains(&key),
                        "{}: {} key {key} is not a K3s flag of this role",
                        sc.name,
                        f.path
                    );
                }
            }
        }
        // Distinct paths per node.
        let mut seen = std::collections::BTreeSet::new();
        for f in &r.files {
            assert!(
                seen.insert((f.node.clone(), f.path.clone())),
                "{}: {} twice",
                sc.name,
                f.path
            );
        }
        assert!(r.readme.contains(&plan.control_plane_endpoint.to_string()));
    }
}

fn file<'a>(r: &'a Rendered, node: &str, target: &str) -> Option<&'a edgenet_render::RenderedFile> {
    r.files
        .iter()
        .find(|f| f.node == node && f.target == target)
}

fn k3s(r: &Rendered, node: &str) -> edgenet_render::model::k3s::K3sConfig {
    match parse(file(r, node, "k3s-config").expect("k3s config")) {
        Parsed::K3s(c) => c,
        _ => unreachable!(),
    }
}

#[test]
fn k3s_first_server_joining_server_and_agent() {
    let config = scalable("k3s", 4, 3, false, 10);
    let first_plan = plan_of(&config, Some(0));
    let first = render(&first_plan, &RenderOptions::default()).unwrap();
    let c = k3s(&first, "m0-ledge");
    assert_eq!(c.cluster_init, Some(true));
    assert_eq!(c.server, None);
    assert_eq!(c.token_file, None, "the first server generates its token");
    assert_eq!(c.tls_san, vec!["10.20.30.5"]);
    assert_eq!(c.node_ip, vec!["10.20.30.11"]);
    assert_eq!(c.advertise_address.as_deref(), Some("10.20.30.11"));
    assert_eq!(c.flannel_iface.as_deref(), Some("eth0"));
    assert_eq!(c.cluster_cidr.as_deref(), Some("10.42.0.0/16"));
    assert_eq!(c.cluster_dns.as_deref(), Some("10.43.0.10"));
    assert_eq!(c.disable, vec!["servicelb"]);
    assert_eq!(
        c.resolv_conf.as_deref(),
        Some("/etc/rancher/k3s/resolv.conf")
    );
    assert!(file(&first, "m0-ledge", "kube-vip")
        .unwrap()
        .path
        .starts_with("/var/lib/rancher/k3s/server/manifests/"));

    let opts = RenderOptions {
        creates_cluster: false,
        ..Default::default()
    };
    let second = render(&plan_of(&config, Some(1)), &opts).unwrap();
    let c = k3s(&second, "m1-ledge");
    assert_eq!(c.cluster_init, None);
    assert_eq!(c.server.as_deref(), Some("https://10.20.30.5:6443"));
    assert_eq!(
        c.token_file.as_deref(),
        Some("/etc/rancher/k3s/edgenet-token")
    );
    let token = file(&second, "m1-ledge", "k3s-token").unwrap();
    assert!(token.secret && token.mode == 0o600 && token.contents.contains(PLACEHOLDER));

    let agent = render(&plan_of(&config, Some(3)), &opts).unwrap();
    let c = k3s(&agent, "m3-ledge");
    for key in c.keys() {
        assert!(
            !edgenet_render::model::k3s::K3sConfig::server_only_keys().contains(&key.as_str()),
            "agent has server-only key {key}"
        );
    }
    assert_eq!(c.server.as_deref(), Some("https://10.20.30.5:6443"));
    assert!(
        file(&agent, "m3-ledge", "kube-vip").is_none(),
        "no manifests on agents"
    );
    let env = file(&agent, "m3-ledge", "proxy-env").unwrap();
    assert_eq!(env.path, "/etc/systemd/system/k3s-agent.service.env");
}

#[test]
fn proxy_environment_on_servers_and_agents_with_containerd_copies() {
    let config = with_proxy(scalable("k3s", 2, 1, false, 0));
    for (machine, path) in [
        (0, "/etc/systemd/system/k3s.service.env"),
        (1, "/etc/systemd/system/k3s-agent.service.env"),
    ] {
        let plan = plan_of(&config, Some(machine));
        let opts = RenderOptions {
            creates_cluster: machine == 0,
            ..Default::default()
        };
        let r = render(&plan, &opts).unwrap();
        let node = &plan.nodes[0];
        let f = file(&r, &node.name, "proxy-env").unwrap();
        assert_eq!(f.path, path);
        let Parsed::Env(vars) = parse(f) else {
            unreachable!()
        };
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(
            get("NO_PROXY").as_deref(),
            Some(node.proxy.no_proxy.as_str())
        );
        assert_eq!(get("CONTAINERD_NO_PROXY"), get("NO_PROXY"));
        assert_eq!(
            get("CONTAINERD_HTTP_PROXY").as_deref(),
            Some("http://proxy.corp.example:3128")
        );
        for needed in [
            "10.20.30.0/24",
            "10.20.30.5",
            "10.42.0.0/16",
            "10.43.0.0/16",
            ".svc",
            ".cluster.local",
            "corp.example",
        ] {
            assert!(
                get("NO_PROXY").unwrap().split(',').any(|e| e == needed),
                "{needed} missing"
            );
        }
    }
}

#[test]
fn kubeadm_v1beta4_calico_and_no_proxy_agree_on_the_pod_network() {
    let config = with_proxy(scalable("k8s", 4, 3, false, 10));
    let plan = plan_of(&config, Some(0));
    let r = render(&plan, &RenderOptions::default()).unwrap();
    let Parsed::Kubeadm(docs) = parse(file(&r, "m0-ledge", "kubeadm").unwrap()) else {
        unreachable!()
    };
    let pod = plan.kubernetes.pod_cidr.to_string();
    assert_eq!(pod, "10.244.0.0/24", "the seed's K8s pod network");
    let mut kinds = Vec::new();
    for d in &docs {
        match d {
            KubeadmDocument::Init(i) => {
                kinds.push("init");
                assert_eq!(i.api_version, "kubeadm.k8s.io/v1beta4");
                assert_eq!(i.local_api_endpoint.advertise_address, "10.20.30.11");
                let arg = &i.node_registration.kubelet_extra_args[0];
                assert_eq!(
                    (arg.name.as_str(), arg.value.as_str()),
                    ("node-ip", "10.20.30.11")
                );
                assert!(i.bootstrap_tokens.is_empty(), "no token invented");
            }
            KubeadmDocument::Cluster(c) => {
                kinds.push("cluster");
                assert_eq!(c.control_plane_endpoint, "10.20.30.5:6443");
                assert_eq!(c.networking.pod_subnet, pod);
                assert_eq!(c.networking.service_subnet, "10.96.0.0/12");
                assert_eq!(c.api_server.cert_sans, vec!["10.20.30.5"]);
                let cm = c.controller_manager.as_ref().unwrap();
                assert!(cm
                    .extra_args
                    .iter()
                    .any(|a| a.name == "allocate-node-cidrs" && a.value == "false"));
            }
            KubeadmDocument::Kubelet(k) => {
                kinds.push("kubelet");
                assert_eq!(k.cluster_dns, vec!["10.96.0.10"]);
                assert_eq!(
                    k.resolv_conf.as_deref(),
                    Some("/etc/kubernetes/edgenet/resolv.conf")
                );
            }
            KubeadmDocument::Join(_) => panic!("the first node inits"),
        }
    }
    assert_eq!(kinds, ["init", "cluster", "kubelet"]);
    let Parsed::Calico(inst) = parse(file(&r, "m0-ledge", "calico").unwrap()) else {
        unreachable!()
    };
    let pool = &inst.spec.calico_network.ip_pools[0];
    assert_eq!(pool.cidr, pod);
    assert_eq!(
        pool.block_size, 28,
        "16 blocks in a /24: one per node and more"
    );
    assert_eq!(
        inst.spec.calico_network.mtu,
        Some(1400),
        "switch MTU 1450 minus VXLAN's 50"
    );
    assert_eq!(
        inst.spec
            .calico_network
            .node_address_autodetection_v4
            .interface
            .as_deref(),
        Some("eth0")
    );
    assert!(plan.nodes[0].proxy.no_proxy.split(',').any(|e| e == pod));
    assert_eq!(
        file(&r, "m0-ledge", "kube-vip").unwrap().path,
        "/etc/kubernetes/manifests/kube-vip.yaml"
    );
    let dropin = file(&r, "m0-ledge", "proxy-env").unwrap();
    assert_eq!(
        dropin.path,
        "/etc/systemd/system/containerd.service.d/http-proxy.conf"
    );
    assert!(dropin
        .contents
        .contains("[Service]\nEnvironment=\"HTTP_PROXY=http://proxy.corp.example:3128\""));

    // Joining control plane and worker.
    let opts = RenderOptions {
        creates_cluster: false,
        ..Default::default()
    };
    for (machine, control_plane) in [(1, true), (3, false)] {
        let plan = plan_of(&config, Some(machine));
        let r = render(&plan, &opts).unwrap();
        let Parsed::Kubeadm(docs) = parse(file(&r, &plan.nodes[0].name, "kubeadm").unwrap()) else {
            unreachable!()
        };
        let [KubeadmDocument::Join(j)] = docs.as_slice() else {
            panic!("one JoinConfiguration: {docs:?}")
        };
        assert_eq!(
            j.discovery.bootstrap_token.api_server_endpoint,
            "10.20.30.5:6443"
        );
        assert!(j.discovery.bootstrap_token.token.contains(PLACEHOLDER));
        assert_eq!(j.control_plane.is_some(), control_plane);
        assert_eq!(
            file(&r, &plan.nodes[0].name, "kube-vip").is_some(),
            control_plane
        );
        assert!(file(&r, &plan.nodes[0].name, "calico").is_none());
    }
}

#[test]
fn load_balancer_objects_follow_the_service_range() {
    // Empty range, single machine: no kube-vip at all, no LB objects, servicelb kept.
    let plan = plan_of(&single("k3s", false, 0), None);
    let r = render(&plan, &RenderOptions::default()).unwrap();
    assert!(r
        .files
        .iter()
        .all(|f| f.target != "lb" && f.target != "kube-vip"));
    assert!(k3s(&r, "edge01-ledge").disable.is_empty());

    // Empty range, scalable: kube-vip holds only the VIP.
    let plan = plan_of(&scalable("k3s", 1, 1, false, 0), Some(0));
    let r = render(&plan, &RenderOptions::default()).unwrap();
    assert!(r.files.iter().all(|f| f.target != "lb"));
    let Parsed::Objects(objs) = parse(file(&r, "m0-ledge", "kube-vip").unwrap()) else {
        unreachable!()
    };
    let env = &objs[3]["spec"]["template"]["spec"]["containers"][0]["env"];
    let get = |name: &str| {
        env.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
    };
    assert_eq!(get("cp_enable"), Some("true".into()));
    assert_eq!(get("svc_enable"), Some("false".into()));
    assert_eq!(get("address"), Some("10.20.30.5".into()));
    assert_eq!(get("vip_subnet"), Some("32".into()));
    assert_eq!(get("vip_cidr"), None, "vip_cidr is gone from kube-vip");

    // Full range with kube-vip: the ConfigMap.
    let plan = plan_of(&scalable("k3s", 1, 1, false, 127), Some(0));
    let r = render(&plan, &RenderOptions::default()).unwrap();
    let Parsed::Objects(objs) = parse(file(&r, "m0-ledge", "lb").unwrap()) else {
        unreachable!()
    };
    assert_eq!(objs[0]["kind"], "ConfigMap");
    assert_eq!(objs[0]["metadata"]["name"], "kubevip");
    assert_eq!(objs[0]["data"]["range-global"], "10.20.30.100-10.20.30.226");
    assert!(
        objs.iter().any(
            |o| o["kind"] == "Deployment" && o["metadata"]["name"] == "kube-vip-cloud-provider"
        ),
        "the cloud provider that reads the ConfigMap"
    );

    // MetalLB.
    let opts = RenderOptions {
        lb: LbProvider::Metallb,
        ..Default::default()
    };
    let r = render(&plan, &opts).unwrap();
    let Parsed::MetalLb(pool, l2) = parse(file(&r, "m0-ledge", "lb").unwrap()) else {
        panic!("MetalLB objects")
    };
    assert_eq!(pool.spec.addresses, vec!["10.20.30.100-10.20.30.226"]);
    assert_eq!(pool.metadata.namespace, "metallb-system");
    assert_eq!(l2.spec.ip_address_pools, vec![pool.metadata.name.clone()]);
    assert_eq!(l2.spec.interfaces, vec!["eth0"]);
    assert_eq!(k3s(&r, "m0-ledge").disable, vec!["servicelb"]);
}

#[test]
fn dns_is_never_a_loopback_address() {
    // The config refuses loopback servers (rule 8); a plan can still carry one from a host
    // whose resolver is a stub, and render must not pass it on (K3s would fall back to 8.8.8.8).
    let mut plan = plan_of(&single("k3s", false, 0), None);
    plan.nodes[0].dns_servers = vec!["127.0.0.53".parse().unwrap(), "192.0.2.53".parse().unwrap()];
    let r = render(&plan, &RenderOptions::default()).unwrap();
    let Parsed::Resolv(servers) = parse(file(&r, "edge01-ledge", "resolv").unwrap()) else {
        unreachable!()
    };
    assert_eq!(servers, vec!["192.0.2.53"]);
    plan.nodes[0].dns_servers = vec!["127.0.0.53".parse().unwrap()];
    let err = render(&plan, &RenderOptions::default()).unwrap_err();
    assert!(matches!(err, RenderError::NoDnsServer { .. }), "{err}");
    assert!(err.to_string().contains("Network.DnsServers"));
}

#[test]
fn tokens_are_checked_and_kept_out_of_non_secret_files() {
    let plan = plan_of(&scalable("k8s", 2, 1, false, 0), Some(1));
    let bad = RenderOptions {
        token: Some("not-a-token".into()),
        creates_cluster: false,
        ..Default::default()
    };
    let err = render(&plan, &bad).unwrap_err();
    assert!(
        err.to_string().contains("[a-z0-9]{6}.[a-z0-9]{16}"),
        "{err}"
    );
    let good = RenderOptions {
        token: Some("abcdef.0123456789abcdef".into()),
        creates_cluster: false,
        ..Default::default()
    };
    let r = render(&plan, &good).unwrap();
    for f in &r.files {
        assert_eq!(
            f.contents.contains("abcdef.0123456789abcdef"),
            f.secret,
            "{}",
            f.path
        );
        if f.secret {
            assert_eq!(f.mode, 0o600);
        }
    }
    assert!(!r.readme.contains("abcdef.0123456789abcdef"));
}

#[test]
fn windows_nodes_get_their_join_config_and_network_script() {
    let plan = plan_of(&with_proxy(scalable("k8s", 2, 1, true, 0)), Some(1));
    let r = render(
        &plan,
        &RenderOptions {
            creates_cluster: false,
            ..Default::default()
        },
    )
    .unwrap();
    let f = file(&r, "m1-wedge", "kubeadm").unwrap();
    assert_eq!(
        f.relative_out_path(),
        "m1-wedge/C/etc/kubernetes/edgenet/kubeadm.yaml"
    );
    let Parsed::Kubeadm(docs) = parse(f) else {
        unreachable!()
    };
    let [KubeadmDocument::Join(j)] = docs.as_slice() else {
        panic!()
    };
    assert_eq!(
        j.node_registration.cri_socket.as_deref(),
        Some("npipe:////./pipe/containerd-containerd")
    );
    let ps = &file(&r, "m1-wedge", "node-network").unwrap().contents;
    assert!(ps.contains("-IPAddress 10.20.30.52 -PrefixLength 24 -DefaultGateway 10.20.30.1"));
    assert!(ps.contains("[Environment]::SetEnvironmentVariable('NO_PROXY'"));
    assert!(
        r.files
            .iter()
            .all(|f| !(f.node == "m1-wedge" && f.target == "unit")),
        "a Windows netns node runs no Kubernetes"
    );
}

#[test]
fn powershell_builds_the_same_switch() {
    let plan = plan_of(&single("k3s", true, 0), None);
    let ps = edgenet_render::powershell::script(&plan);
    assert!(ps.contains("New-VMSwitch -Name 'aksedgesw-int' -SwitchType Internal"));
    assert!(ps.contains("New-NetIPAddress -InterfaceAlias 'vEthernet (aksedgesw-int)' -IPAddress 192.168.77.1 -PrefixLength 24"));
    assert!(ps.contains(
        "New-NetNat -Name 'aksedgesw-int-nat' -InternalIPInterfaceAddressPrefix 192.168.77.0/24"
    ));
    let offline_ps =
        edgenet_render::powershell::script(&plan_of(&offline(single("k3s", false, 0)), None));
    assert!(!offline_ps.contains("New-NetNat"));
    let ext =
        edgenet_render::powershell::script(&plan_of(&scalable("k3s", 1, 1, false, 0), Some(0)));
    assert!(ext.contains(
        "New-VMSwitch -Name 'aksedgesw-ext' -NetAdapterName 'eth0' -AllowManagementOS $true"
    ));
}

/// `Kind[.path]` → the field names the upstream Go types accept there.
fn upstream_fields() -> BTreeMap<String, std::collections::BTreeSet<String>> {
    let path = format!(
        "{}/tests/data/upstream-json-fields.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (at, fields) = l.split_once(':').expect("`path: fields`");
            (
                at.trim().to_string(),
                fields.split_whitespace().map(str::to_string).collect(),
            )
        })
        .collect()
}

/// Every key of `value` at `at` (arrays transparent), checked against `fields`.
fn check_keys(
    value: &serde_json::Value,
    at: &str,
    fields: &BTreeMap<String, std::collections::BTreeSet<String>>,
    bad: &mut Vec<String>,
) {
    match value {
        serde_json::Value::Array(items) => {
            for item in items {
                check_keys(item, at, fields, bad);
            }
        }
        serde_json::Value::Object(map) => {
            let Some(allowed) = fields.get(at) else {
                bad.push(format!("{at}: no upstream field list for this object"));
                return;
            };
            for (key, v) in map {
                if !allowed.contains(key) {
                    bad.push(format!("{at}.{key} is not a field of the upstream type"));
                } else if v.is_object()
                    || v.as_array()
                        .is_some_and(|a| a.iter().any(|i| i.is_object()))
                {
                    check_keys(v, &format!("{at}.{key}"), fields, bad);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn every_key_we_emit_is_a_json_field_of_the_real_upstream_types() {
    let fields = upstream_fields();
    let mut checked = std::collections::BTreeSet::new();
    for sc in scenarios() {
        let (_, r) = rendered(&sc);
        for f in &r.files {
            if !matches!(f.target.as_str(), "kubeadm" | "calico" | "lb") {
                continue;
            }
            let docs = edgenet_render::yaml::documents(&f.contents)
                .unwrap_or_else(|e| panic!("{}: {e}", f.path));
            for doc in docs {
                let kind = doc["kind"].as_str().unwrap_or_default().to_string();
                let api = doc["apiVersion"].as_str().unwrap_or_default();
                if api == "v1" || api.starts_with("apps/") || api.starts_with("rbac.") {
                    continue; // built from k8s-openapi's own types
                }
                let mut bad = Vec::new();
                check_keys(&doc, &kind, &fields, &mut bad);
                assert!(bad.is_empty(), "{}: {}: {bad:#?}", sc.name, f.path);
                checked.insert(kind);
            }
        }
    }
    for kind in [
        "InitConfiguration",
        "ClusterConfiguration",
        "JoinConfiguration",
        "KubeletConfiguration",
        "Installation",
        "IPAddressPool",
        "L2Advertisement",
    ] {
        assert!(checked.contains(kind), "no scenario rendered a {kind}");
    }
}

#[test]
fn every_file_holding_proxy_credentials_is_a_secret() {
    for distribution in ["k3s", "k8s"] {
        let mut config = single(distribution, true, 5);
        config["Network"]["Proxy"] = serde_json::json!({
            "Http": "http://bob:s3cret@proxy.corp.example:3128",
            "Https": "http://bob:s3cret@proxy.corp.example:3128",
            "No": "corp.example"
        });
        let plan = plan_of(&config, None);
        let opts = RenderOptions {
            namespaces: namespaces(&plan),
            ..Default::default()
        };
        let r = render(&plan, &opts).unwrap();
        let holding: Vec<_> = r
            .files
            .iter()
            .filter(|f| f.contents.contains("s3cret"))
            .collect();
        assert!(
            holding.iter().any(|f| f.target == "proxy-env")
                && holding.iter().any(|f| f.target == "node-network"),
            "{distribution}: the proxy env and the Windows script carry the proxy"
        );
        for f in holding {
            assert!(
                f.secret && f.mode == 0o600,
                "{distribution}: {} holds the proxy password but is {:o}, secret {}",
                f.path,
                f.mode,
                f.secret
            );
        }
    }
}

#[test]
fn readme_runs_kubernetes_commands_inside_the_node_namespace_and_installs_with_modes() {
    for (distribution, machine, command) in [
        (
            "k8s",
            0,
            "kubeadm init --config /etc/kubernetes/edgenet/kubeadm.yaml",
        ),
        (
            "k8s",
            1,
            "kubeadm join --config /etc/kubernetes/edgenet/kubeadm.yaml",
        ),
        ("k3s", 0, "k3s kubectl get nodes"),
    ] {
        let config = with_proxy(scalable(distribution, 2, 1, false, 0));
        let plan = plan_of(&config, Some(machine));
        let ns = namespaces(&plan);
        let opts = RenderOptions {
            creates_cluster: machine == 0,
            namespaces: ns.clone(),
            ..Default::default()
        };
        let r = render(&plan, &opts).unwrap();
        let node = &plan.nodes[0];
        let netns = &ns[&node.name].netns;
        let want = format!("sudo ip netns exec {netns} {command}");
        assert!(
            r.readme.contains(&want),
            "{distribution}: no {want:?} in\n{}",
            r.readme
        );
        assert!(
            !r.readme.contains("cp -r"),
            "{distribution}: cp -r loses the modes"
        );
        for f in r.files.iter().filter(|f| f.node == node.name) {
            let line = format!(
                "sudo install -D -m {:04o} DIR/{} {}",
                f.mode,
                f.relative_out_path(),
                f.path
            );
            assert!(r.readme.contains(&line), "{distribution}: no {line:?}");
        }
    }
}

#[test]
fn offline_without_dns_renders_without_a_resolv_file() {
    for distribution in ["k3s", "k8s"] {
        let mut plan = plan_of(&offline(single(distribution, false, 0)), None);
        plan.nodes[0].dns_servers.clear();
        let r = render(&plan, &RenderOptions::default())
            .unwrap_or_else(|e| panic!("{distribution}: offline without DNS is refused: {e}"));
        assert!(
            file(&r, "edge01-ledge", "resolv").is_none(),
            "{distribution}"
        );
        let cfg = if distribution == "k3s" {
            "k3s-config"
        } else {
            "kubeadm"
        };
        let text = &file(&r, "edge01-ledge", cfg).unwrap().contents;
        assert!(
            !text.contains("resolv-conf") && !text.contains("resolvConf"),
            "{distribution}: no resolver file to point at:\n{text}"
        );
        parse(file(&r, "edge01-ledge", cfg).unwrap());
        // Online, the same plan is still refused (K3s would fall back to 8.8.8.8).
        let mut online = plan_of(&single(distribution, false, 0), None);
        online.nodes[0].dns_servers.clear();
        assert!(matches!(
            render(&online, &RenderOptions::default()),
            Err(RenderError::NoDnsServer { .. })
        ));
    }
}

#[test]
fn placeholders_are_one_string_and_each_notice_names_what_is_missing() {
    // A joining kubeadm machine with a valid token but no CA hash.
    let plan = plan_of(&scalable("k8s", 2, 1, true, 0), Some(1));
    let opts = RenderOptions {
        creates_cluster: false,
        token: Some("abcdef.0123456789abcdef".into()),
        ..Default::default()
    };
    let r = render(&plan, &opts).unwrap();
    assert!(
        !r.notices
            .iter()
            .any(|n| n.contains("join token is a placeholder")),
        "{:?}",
        r.notices
    );
    assert!(
        r.notices
            .iter()
            .any(|n| n.contains("CA certificate hash") && n.contains("--ca-cert-hash")),
        "{:?}",
        r.notices
    );
    // Without a token, Linux and Windows files carry the same placeholder.
    let r = render(
        &plan,
        &RenderOptions {
            creates_cluster: false,
            ..Default::default()
        },
    )
    .unwrap();
    let marker = edgenet_render::token_placeholder();
    let kinds: std::collections::BTreeSet<_> = r
        .files
        .iter()
        .filter(|f| f.contents.contains(&marker))
        .map(|f| f.node_kind.clone())
        .collect();
    assert!(
        kinds.contains("linux") && kinds.contains("windows"),
        "{kinds:?}"
    );
    assert!(!r
        .files
        .iter()
        .any(|f| f.contents.contains("PLACEHOLDER-bootstrap-token")));
}

#[test]
fn metallb_opens_memberlist_and_the_cloud_provider_stays_on_linux() {
    let plan = plan_of(&single("k3s", true, 5), None);
    let r = render(
        &plan,
        &RenderOptions {
            lb: LbProvider::Metallb,
            ..Default::default()
        },
    )
    .unwrap();
    let nft = &file(&r, "host", "nftables").unwrap().contents;
    assert!(
        nft.contains("tcp dport 7946") && nft.contains("udp dport 7946"),
        "{nft}"
    );
    let table = edgenet_render::firewall_ports::table(plan.distribution, LbProvider::Metallb);
    assert!(table.contains("7946"), "{table}");

    let r = render(&plan, &RenderOptions::default()).unwrap();
    let lb = file(&r, "edge01-ledge", "lb").unwrap();
    let docs = edgenet_render::yaml::documents(&lb.contents).unwrap();
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("the cloud provider");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/os"],
        "linux"
    );
}

#[test]
fn calico_installation_enables_windows_only_with_a_windows_node() {
    for windows in [false, true] {
        let plan = plan_of(&single("k8s", windows, 4), None);
        let r = render(&plan, &RenderOptions::default()).unwrap();
        let linux = &plan.nodes[0].name;
        let calico = file(&r, linux, "calico").unwrap();
        let Parsed::Calico(inst) = parse(calico) else {
            unreachable!()
        };
        // The raw keys too: the operator reads `serviceCIDRs`, not serde's camelCase guess.
        let doc = &edgenet_render::yaml::documents(&calico.contents).unwrap()[0];
        if windows {
            assert_eq!(
                inst.spec.calico_network.windows_dataplane.as_deref(),
                Some("HNS")
            );
            let service = plan.kubernetes.service_cidr.to_string();
            assert_eq!(inst.spec.service_cidrs, Some(vec![service.clone()]));
            assert_eq!(doc["spec"]["serviceCIDRs"][0], service.as_str());
            assert_eq!(doc["spec"]["calicoNetwork"]["windowsDataplane"], "HNS");
            // Autodetection valid on the Windows node too: the switch's subnet, no
            // Linux interface name (B21 N8).
            let subnet = plan.switch.subnet.trunc().to_string();
            let detect = &doc["spec"]["calicoNetwork"]["nodeAddressAutodetectionV4"];
            assert_eq!(detect["cidrs"][0], subnet.as_str(), "{doc}");
            assert!(detect.get("interface").is_none(), "{doc}");
            assert!(plan
                .nodes
                .iter()
                .all(|n| plan.switch.subnet.contains(&n.address.addr())));
        } else {
            assert_eq!(inst.spec.calico_network.windows_dataplane, None);
            assert_eq!(inst.spec.service_cidrs, None);
            assert!(doc["spec"].get("serviceCIDRs").is_none(), "{doc}");
        }
    }
}

/// B26 F3: a VM node's files go into its guest through the NoCloud seed; render neither sends
/// the operator to deploy again nor promises a host unit that it does not render.
#[test]
fn a_vm_node_is_told_its_files_are_in_the_guest_s_seed_with_no_host_unit() {
    for distribution in ["k3s", "k8s"] {
        let mut config = single(distribution, false, 0);
        config["Edgenet"]["NodeRuntime"] = serde_json::json!("vm");
        config["Edgenet"]["VmImage"] = serde_json::json!("/images/guest.qcow2");
        let plan = plan_of(&config, None);
        assert_eq!(
            plan.node_runtime,
            edgenet_core::config::NodeRuntime::Vm,
            "{distribution}"
        );
        let r = render(&plan, &RenderOptions::default()).unwrap();
        let notices = r.notices.join("\n");
        assert!(
            !notices.contains("run `edgenet deploy`, then render again"),
            "{distribution}: {notices}"
        );
        assert!(
            notices.contains("is a VM node")
                && notices.contains("NoCloud seed")
                && notices.contains("no systemd unit on the host"),
            "{distribution}: {notices}"
        );
        assert!(
            !r.files
                .iter()
                .any(|f| f.target == "unit" || f.target == "node-exec"),
            "{distribution}: a unit for a VM node"
        );
        assert!(
            !r.readme.contains("replaced by ours below") && !r.readme.contains("netns node here"),
            "{distribution}: {}",
            r.readme
        );
        assert!(
            r.readme.contains("sudo edgenet node exec -- "),
            "{distribution}: {}",
            r.readme
        );
        for f in r.files.iter().filter(|f| f.node == plan.nodes[0].name) {
            assert!(
                r.readme.contains(&format!("# in the guest: {}", f.path)),
                "{distribution}: {}",
                f.path
            );
        }
    }
    // A netns node that is not deployed: no unit either, and the readme does not promise one.
    let plan = plan_of(&single("k3s", false, 0), None);
    let r = render(&plan, &RenderOptions::default()).unwrap();
    assert!(!r.readme.contains("replaced by ours below"), "{}", r.readme);
}
