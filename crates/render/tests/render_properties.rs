//! Property: for generated configs, every address, CIDR, DNS server and no_proxy entry of the
//! plan is what the rendered files say, read back with their typed models.

mod common;

use common::*;
use edgenet_core::plan::{NodeKind, NodeRole};
use edgenet_render::model::kubeadm::KubeadmDocument;
use edgenet_render::{render, LbProvider, RenderOptions};
use proptest::prelude::*;
use serde_json::json;

#[derive(Debug, Clone)]
struct Gen {
    k8s: bool,
    scalable: bool,
    machines: usize,
    machine: usize,
    windows: bool,
    range: u32,
    dns: Vec<(u8, u8)>,
    proxy: Option<(u8, u16)>,
    mtu: u32,
    metallb: bool,
}

fn gen() -> impl Strategy<Value = Gen> {
    (
        any::<bool>(),
        any::<bool>(),
        1usize..=3,
        0usize..3,
        any::<bool>(),
        0u32..=40,
        prop::collection::vec((0u8..2, 1u8..=254), 1..=3),
        prop::option::of((1u8..=254, 1024u16..=65000)),
        1280u32..=9000,
        any::<bool>(),
    )
        .prop_map(
            |(k8s, scalable, machines, machine, windows, range, dns, proxy, mtu, metallb)| Gen {
                k8s,
                scalable,
                machines,
                machine: machine % machines,
                windows,
                range,
                dns,
                proxy,
                mtu,
                metallb,
            },
        )
}

fn config(g: &Gen) -> serde_json::Value {
    let distro = if g.k8s { "k8s" } else { "k3s" };
    let mut c = if g.scalable {
        // One control plane (an odd number keeps etcd's quorum).
        scalable(distro, g.machines, 1, g.windows, g.range)
    } else {
        single(distro, g.windows, g.range)
    };
    let dns: Vec<String> = g
        .dns
        .iter()
        .map(|(net, host)| {
            if *net == 0 {
                format!("192.0.2.{host}")
            } else {
                format!("198.51.100.{host}")
            }
        })
        .collect();
    c["Network"]["DnsServers"] = json!(dns);
    if let Some((host, port)) = g.proxy {
        c["Network"]["Proxy"] =
            json!({"Http": format!("http://203.0.113.{host}:{port}"), "No": "corp.example"});
    }
    if g.scalable {
        for m in c["Machines"].as_array_mut().unwrap() {
            m["NetworkConnection"]["Mtu"] = json!(g.mtu);
        }
    } else {
        c["Machines"][0]["NetworkConnection"] = json!({"Mtu": g.mtu});
    }
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn render_agrees_with_the_plan(g in gen()) {
        let machine = g.scalable.then_some(g.machine);
        let plan = plan_of(&config(&g), machine);
        let creates = !g.scalable || g.machine == 0;
        let opts = RenderOptions {
            lb: if g.metallb { LbProvider::Metallb } else { LbProvider::KubeVip },
            creates_cluster: creates,
            ..Default::default()
        };
        let r = render(&plan, &opts).unwrap();
        let k = &plan.kubernetes;
        let endpoint = plan.control_plane_endpoint.to_string();
        let range = plan.service_range.map(|s| format!("{}-{}", s.start, s.end));
        for node in plan.nodes.iter().filter(|n| n.kind == NodeKind::Linux) {
            let addr = node.address.addr().to_string();
            let files: Vec<_> = r.files.iter().filter(|f| f.node == node.name).collect();
            let dns: Vec<String> = node.dns_servers.iter().map(|d| d.to_string()).collect();
            let mut saw_resolv = false;
            for f in &files {
                match parse(f) {
                    Parsed::K3s(c) => {
                        prop_assert_eq!(c.node_ip.clone(), vec![addr.clone()]);
                        prop_assert_eq!(c.node_name.clone(), Some(node.name.clone()));
                        if let Some(server) = &c.server {
                            prop_assert_eq!(server.clone(), format!("https://{endpoint}:6443"));
                        }
                        if node.role == NodeRole::ControlPlane {
                            prop_assert_eq!(c.cluster_cidr.clone(), Some(k.pod_cidr.to_string()));
                            prop_assert_eq!(c.service_cidr.clone(), Some(k.service_cidr.to_string()));
                            prop_assert_eq!(c.cluster_dns.clone(), Some(k.cluster_dns.to_string()));
                            prop_assert!(c.tls_san.contains(&endpoint));
                            prop_assert_eq!(c.disable.contains(&"servicelb".to_string()), range.is_some());
                        }
                    }
                    Parsed::Kubeadm(docs) => {
                        for d in docs {
                            match d {
                                KubeadmDocument::Init(i) => {
                                    prop_assert_eq!(&i.local_api_endpoint.advertise_address, &addr);
                                    prop_assert_eq!(&i.node_registration.kubelet_extra_args[0].value, &addr);
                                }
                                KubeadmDocument::Cluster(c) => {
                                    prop_assert_eq!(c.control_plane_endpoint, format!("{endpoint}:6443"));
                                    prop_assert_eq!(c.networking.pod_subnet, k.pod_cidr.to_string());
                                    prop_assert_eq!(c.networking.service_subnet, k.service_cidr.to_string());
                                    prop_assert!(c.api_server.cert_sans.contains(&endpoint));
                                }
                                KubeadmDocument::Join(j) => {
                                    prop_assert_eq!(j.discovery.bootstrap_token.api_server_endpoint, format!("{endpoint}:6443"));
                                    prop_assert_eq!(&j.node_registration.kubelet_extra_args[0].value, &addr);
                                }
                                KubeadmDocument::Kubelet(kc) => {
                                    prop_assert_eq!(kc.cluster_dns, vec![k.cluster_dns.to_string()]);
                                }
                            }
                        }
                    }
                    Parsed::Calico(i) => {
                        prop_assert_eq!(&i.spec.calico_network.ip_pools[0].cidr, &k.pod_cidr.to_string());
                        prop_assert_eq!(i.spec.calico_network.mtu, Some(g.mtu - 50));
                    }
                    Parsed::Resolv(servers) => {
                        saw_resolv = true;
                        prop_assert_eq!(&servers, &dns);
                    }
                    Parsed::Env(vars) => {
                        let get = |key: &str| vars.iter().find(|(n, _)| n == key).map(|(_, v)| v.clone());
                        if node.proxy.http_proxy.is_some() {
                            let no_proxy = get("NO_PROXY").unwrap();
                            prop_assert_eq!(&no_proxy, &node.proxy.no_proxy);
                            for entry in [k.pod_cidr.to_string(), k.service_cidr.to_string(), endpoint.clone(), plan.switch.subnet.trunc().to_string()] {
                                prop_assert!(no_proxy.split(',').any(|e| e == entry), "{} not in NO_PROXY", entry);
                            }
                            prop_assert_eq!(get("HTTP_PROXY"), node.proxy.http_proxy.clone());
                        } else {
                            prop_assert!(vars.is_empty());
                        }
                    }
                    Parsed::Objects(objs) => {
                        for o in objs {
                            if o["kind"] == "ConfigMap" {
                                prop_assert_eq!(o["data"]["range-global"].as_str(), range.as_deref());
                            }
                            let env = &o["spec"]["template"]["spec"]["containers"][0]["env"];
                            let env = if env.is_null() { &o["spec"]["containers"][0]["env"] } else { env };
                            if let Some(list) = env.as_array() {
                                let cp = list.iter().any(|e| e["name"] == "cp_enable" && e["value"] == "true");
                                let address = list.iter().find(|e| e["name"] == "address").map(|e| e["value"].as_str().unwrap().to_string());
                                prop_assert_eq!(cp, address.is_some());
                                if let Some(a) = address {
                                    prop_assert_eq!(a, endpoint.clone());
                                }
                            }
                        }
                    }
                    Parsed::MetalLb(pool, _) => {
                        prop_assert_eq!(pool.spec.addresses, vec![range.clone().unwrap()]);
                    }
                    Parsed::Token(_) | Parsed::Unit(_) | Parsed::Other(_) => {}
                }
            }
            prop_assert!(saw_resolv);
            prop_assert_eq!(files.iter().any(|f| f.target == "lb"), range.is_some() && node.role == NodeRole::ControlPlane && (plan.distribution == edgenet_core::config::Distribution::K3s || creates));
        }
    }
}
