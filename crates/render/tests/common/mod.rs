//! Shared by the render tests: configs → plans, and reading every rendered file back with the
//! typed model of its consumer.
#![allow(dead_code)]

use std::collections::BTreeSet;

use edgenet_core::config::load;
use edgenet_core::plan::{self, Plan};
use edgenet_core::validate::{check, Context, Severity};
use edgenet_render::model::calico::Installation;
use edgenet_render::model::k3s::K3sConfig;
use edgenet_render::model::kubeadm::KubeadmDocument;
use edgenet_render::model::metallb::{IpAddressPool, L2Advertisement};
use edgenet_render::yaml::{documents, from_yaml, from_yaml_documents};
use edgenet_render::RenderedFile;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde_json::{json, Value};

/// The plan of `machine` of `config`, checked like `edgenet plan --offline-check` does.
pub fn plan_of(config: &Value, machine: Option<usize>) -> Plan {
    let loaded = load(config.to_string().as_bytes()).expect("config loads");
    let mut ctx = Context::offline("test", "edge01");
    ctx.machine = machine;
    let errors: Vec<_> = check(&loaded, &ctx)
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "config has errors: {errors:#?}");
    plan::build(&loaded.config, &ctx).expect("plan")
}

pub fn single(distribution: &str, windows: bool, range: u32) -> Value {
    let mut machine = json!({"LinuxNode": {"CpuCount": 4}});
    if windows {
        machine["WindowsNode"] = json!({"CpuCount": 2});
    }
    json!({
        "SchemaVersion": "1.14",
        "DeploymentType": "SingleMachineCluster",
        "Init": {"ServiceIPRangeSize": range},
        "Network": {
            "NetworkPlugin": if distribution == "k8s" { "calico" } else { "flannel" },
            "DnsServers": ["192.0.2.53", "198.51.100.53"],
            "Ip4AddressPrefix": "192.168.77.0/24"
        },
        "Machines": [machine],
        "Edgenet": {"Distribution": distribution, "MachineName": "edge01"}
    })
}

/// A LAN 10.20.30.0/24, endpoint .5, service range from .100, machine i's Linux node .(11+i),
/// Windows node .(51+i); the first `control_planes` Linux nodes are control planes.
pub fn scalable(
    distribution: &str,
    machines: usize,
    control_planes: usize,
    windows: bool,
    range: u32,
) -> Value {
    let list: Vec<Value> = (0..machines)
        .map(|i| {
            let mut m = json!({
                "MachineName": format!("m{i}"),
                "NetworkConnection": {"AdapterName": "eth0", "Mtu": 1450},
                "LinuxNode": {"ControlPlane": i < control_planes, "Ip4Address": format!("10.20.30.{}", 11 + i)}
            });
            if windows {
                m["WindowsNode"] = json!({"Ip4Address": format!("10.20.30.{}", 51 + i)});
            }
            m
        })
        .collect();
    let mut init = json!({"ServiceIPRangeSize": range});
    if range > 0 {
        init["ServiceIPRangeStart"] = json!("10.20.30.100");
    }
    json!({
        "SchemaVersion": "1.14",
        "DeploymentType": "ScalableCluster",
        "Init": init,
        "Network": {
            "NetworkPlugin": if distribution == "k8s" { "calico" } else { "flannel" },
            "ControlPlaneEndpointIp": "10.20.30.5",
            "Ip4GatewayAddress": "10.20.30.1",
            "Ip4PrefixLength": 24,
            "DnsServers": ["10.20.30.1"],
            "SkipAddressFreeCheck": true
        },
        "Machines": list,
        "Edgenet": {"Distribution": distribution}
    })
}

pub fn with_proxy(mut config: Value) -> Value {
    config["Network"]["Proxy"] = json!({
        "Http": "http://proxy.corp.example:3128",
        "Https": "http://proxy.corp.example:3128",
        "No": "corp.example,10.0.0.0/8"
    });
    config
}

pub fn offline(mut config: Value) -> Value {
    config["Network"]["InternetDisabled"] = json!(true);
    config
}

pub fn flag_list(name: &str) -> BTreeSet<String> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// One rendered file read back with its consumer's typed model.
#[derive(Debug)]
pub enum Parsed {
    K3s(K3sConfig),
    Kubeadm(Vec<KubeadmDocument>),
    /// Kubernetes objects (k8s-openapi types checked), as JSON for schema validation.
    Objects(Vec<Value>),
    Calico(Installation),
    MetalLb(IpAddressPool, L2Advertisement),
    Resolv(Vec<String>),
    Env(Vec<(String, String)>),
    Token(String),
    Unit(String),
    Other(String),
}

fn kube_object(doc: &Value) -> Value {
    let text = doc.to_string();
    let kind = doc["kind"].as_str().unwrap_or_default();
    let ok = match kind {
        "ServiceAccount" => serde_json::from_str::<ServiceAccount>(&text).map(drop),
        "ClusterRole" => serde_json::from_str::<ClusterRole>(&text).map(drop),
        "ClusterRoleBinding" => serde_json::from_str::<ClusterRoleBinding>(&text).map(drop),
        "DaemonSet" => serde_json::from_str::<DaemonSet>(&text).map(drop),
        "Deployment" => serde_json::from_str::<Deployment>(&text).map(drop),
        "Pod" => serde_json::from_str::<Pod>(&text).map(drop),
        "ConfigMap" => serde_json::from_str::<ConfigMap>(&text).map(drop),
        other => panic!("unexpected Kubernetes kind {other}"),
    };
    ok.unwrap_or_else(|e| panic!("{kind} does not parse as k8s-openapi's model: {e}\n{text}"));
    doc.clone()
}

/// Reads `file` back; panics (naming the file) when it does not parse.
pub fn parse(file: &RenderedFile) -> Parsed {
    let c = &file.contents;
    let ctx = |e: String| format!("{} ({}): {e}\n{c}", file.path, file.target);
    match file.target.as_str() {
        "k3s-config" => Parsed::K3s(from_yaml(c).unwrap_or_else(|e| panic!("{}", ctx(e)))),
        "kubeadm" => {
            Parsed::Kubeadm(from_yaml_documents(c).unwrap_or_else(|e| panic!("{}", ctx(e))))
        }
        "calico" => Parsed::Calico(from_yaml(c).unwrap_or_else(|e| panic!("{}", ctx(e)))),
        "kube-vip" | "lb" => {
            let docs = documents(c).unwrap_or_else(|e| panic!("{}", ctx(e)));
            if docs.iter().any(|d| d["apiVersion"] == "metallb.io/v1beta1") {
                let yaml_docs: Vec<&str> = c.split("\n---\n").collect();
                assert_eq!(
                    yaml_docs.len(),
                    2,
                    "{}",
                    ctx("two MetalLB documents".into())
                );
                return Parsed::MetalLb(
                    from_yaml(yaml_docs[0]).unwrap_or_else(|e| panic!("{}", ctx(e))),
                    from_yaml(yaml_docs[1]).unwrap_or_else(|e| panic!("{}", ctx(e))),
                );
            }
            Parsed::Objects(docs.iter().map(kube_object).collect())
        }
        "resolv" => Parsed::Resolv(
            c.lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| {
                    l.strip_prefix("nameserver ")
                        .unwrap_or_else(|| panic!("{}", ctx(format!("bad line {l:?}"))))
                        .to_string()
                })
                .collect(),
        ),
        "proxy-env" => Parsed::Env(
            c.lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty() && *l != "[Service]")
                .map(|l| {
                    let l = l
                        .strip_prefix("Environment=\"")
                        .and_then(|l| l.strip_suffix('"'))
                        .unwrap_or(l);
                    let (k, v) = l
                        .split_once('=')
                        .unwrap_or_else(|| panic!("{}", ctx(format!("bad line {l:?}"))));
                    (k.to_string(), v.to_string())
                })
                .collect(),
        ),
        "k3s-token" => Parsed::Token(c.trim().to_string()),
        "unit" => Parsed::Unit(c.clone()),
        "node-network" | "powershell" | "nftables" | "node-exec" => Parsed::Other(c.clone()),
        other => panic!("no parser for target {other} ({})", file.path),
    }
}
