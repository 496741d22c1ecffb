//! The corpus of real-shaped AKS Edge Essentials files (tests/fixtures/corpus): each with its
//! verdict, the findings it must give (at paths that exist in the file), and for the valid ones
//! the plan AKS Edge Essentials would deploy from it.

mod common;

use edgenet_core::config::load;
use edgenet_core::plan;
use edgenet_core::validate::{check, Context, Finding, Severity};
use serde_json::{json, Value};

struct Case {
    file: &'static str,
    machine: usize,
    /// Errors expected, as (code, path); a valid file has none.
    errors: &'static [(&'static str, &'static str)],
    /// Warnings and notices that must be there (others may be).
    notes: &'static [(&'static str, &'static str)],
    /// Parts of `plan --output json` (valid files only).
    plan: Option<Value>,
}

fn corpus_dir() -> String {
    format!("{}/../../tests/fixtures/corpus", env!("CARGO_MANIFEST_DIR"))
}

fn single(subnet: &str, nodes: Value, services: Value, distro: &str, plugin: &str) -> Value {
    let prefix = subnet.trim_end_matches(".0/24");
    json!({
        "deployment_type": "SingleMachineCluster",
        "distribution": distro,
        "switch": {"name": "aksedgesw-int", "kind": "internal", "adapter": null, "subnet": subnet,
                   "host_address": format!("{prefix}.1/24"), "gateway": format!("{prefix}.1")},
        "control_plane_endpoint": format!("{prefix}.2"),
        "nodes": nodes,
        "service_range": services,
        "kubernetes": {"network_plugin": plugin},
    })
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            file: "v1.16-single-k3s-repo-sample.json",
            machine: 0,
            errors: &[],
            notes: &[],
            plan: Some(single(
                "192.168.0.0/24",
                json!([{"name": "edge01-ledge", "kind": "linux", "role": "control-plane", "address": "192.168.0.2/24"}]),
                json!({"start": "192.168.0.4", "end": "192.168.0.13", "size": 10}),
                "k3s",
                "flannel",
            )),
        },
        Case {
            file: "v1.5-single-k3s-ga.json",
            machine: 0,
            errors: &[],
            notes: &[],
            plan: Some(single(
                "192.168.0.0/24",
                json!([{"name": "edge01-ledge", "address": "192.168.0.2/24"}]),
                Value::Null,
                "k3s",
                "flannel",
            )),
        },
        Case {
            file: "v1.9-single-k8s-linux-and-windows.json",
            machine: 0,
            errors: &[],
            notes: &[],
            plan: Some(single(
                "192.168.10.0/24",
                json!([
                    {"name": "edge01-ledge", "kind": "linux", "role": "control-plane", "address": "192.168.10.2/24",
                     "mac": {"mode": "static", "address": "00:15:5d:0a:0b:02"}},
                    {"name": "edge01-wedge", "kind": "windows", "role": "worker", "address": "192.168.10.3/24"}
                ]),
                json!({"start": "192.168.10.4", "end": "192.168.10.8", "size": 5}),
                "k8s",
                "calico",
            )),
        },
        Case {
            file: "v1.8-single-prefix-dns-skipdnscheck.json",
            machine: 0,
            errors: &[],
            notes: &[],
            plan: Some(single(
                "10.200.0.0/24",
                json!([{"address": "10.200.0.2/24", "dns_servers": ["10.0.0.53"], "dns_source": "configured"}]),
                json!({"start": "10.200.0.4", "end": "10.200.0.13", "size": 10}),
                "k3s",
                "flannel",
            )),
        },
        Case {
            // A ScalableCluster of one machine with both nodes (to expose services on the LAN).
            file: "v1.6-scalable-linux-and-windows.json",
            machine: 0,
            errors: &[],
            notes: &[],
            plan: Some(json!({
                "deployment_type": "ScalableCluster",
                "switch": {"adapter": "Ethernet", "subnet": "192.168.1.0/24", "gateway": "192.168.1.1"},
                "nodes": [
                    {"kind": "linux", "role": "control-plane", "address": "192.168.1.171/24",
                     "mac": {"mode": "static", "address": "00:15:5d:01:02:71"}},
                    {"kind": "windows", "role": "worker", "address": "192.168.1.172/24",
                     "mac": {"mode": "static", "address": "00:15:5d:01:02:72"}}
                ],
                "control_plane_endpoint": "192.168.1.191",
                "service_range": {"start": "192.168.1.151", "end": "192.168.1.160", "size": 10},
            })),
        },
        Case {
            file: "v1.13-single-offline.json",
            machine: 0,
            errors: &[],
            notes: &[],
            plan: Some({
                let mut p = single(
                    "172.31.250.0/24",
                    json!([{"address": "172.31.250.2/24"}]),
                    json!({"start": "172.31.250.4", "end": "172.31.250.7", "size": 4}),
                    "k3s",
                    "flannel",
                );
                p["switch"]["outbound"] = json!("offline");
                p
            }),
        },
        Case {
            file: "v1.14-single-proxy.json",
            machine: 0,
            errors: &[],
            notes: &[],
            plan: Some(single(
                "192.168.0.0/24",
                json!([{"address": "192.168.0.2/24", "dns_servers": ["10.20.0.10", "10.20.0.11"], "dns_source": "configured",
                        "proxy": {"http_proxy": "http://proxy.contoso.local:3128", "https_proxy": "http://proxy.contoso.local:3128"}}]),
                json!({"start": "192.168.0.4", "end": "192.168.0.13", "size": 10}),
                "k3s",
                "flannel",
            )),
        },
        Case {
            file: "v1.14-single-secondary-networks.json",
            machine: 0,
            errors: &[],
            notes: &[("not-applied", "Machines[0].LinuxNode.SecondaryNetworks")],
            plan: Some(single(
                "192.168.0.0/24",
                json!([{"address": "192.168.0.2/24"}]),
                json!({"start": "192.168.0.4", "end": "192.168.0.5", "size": 2}),
                "k3s",
                "flannel",
            )),
        },
        Case {
            file: "v1.9-single-utf16le-bom-powershell.json",
            machine: 0,
            errors: &[],
            notes: &[],
            plan: Some(single(
                "192.168.137.0/24",
                json!([{"address": "192.168.137.2/24"}]),
                json!({"start": "192.168.137.4", "end": "192.168.137.13", "size": 10}),
                "k3s",
                "flannel",
            )),
        },
        Case {
            file: "v1.15-scalable-first-k3s-jumpstart.json",
            machine: 0,
            errors: &[],
            notes: &[],
            plan: Some(json!({
                "deployment_type": "ScalableCluster", "distribution": "k3s", "joining": false,
                "switch": {"name": "aksedgesw-ext", "kind": "external", "adapter": "Ethernet", "subnet": "172.20.1.0/24", "gateway": "172.20.1.1", "outbound": "direct"},
                "nodes": [{"kind": "linux", "role": "control-plane", "address": "172.20.1.11/24", "gateway": "172.20.1.1", "dns_servers": ["168.63.129.16"]}],
                "control_plane_endpoint": "172.20.1.21",
                "service_range": {"start": "172.20.1.31", "end": "172.20.1.40", "size": 10},
                "kubernetes": {"pod_cidr": "10.42.0.0/16", "service_cidr": "10.43.0.0/16", "network_plugin": "flannel"},
            })),
        },
        Case {
            file: "v1.15-scalable-first-k8s-jumpstart.json",
            machine: 0,
            errors: &[],
            notes: &[],
            plan: Some(json!({
                "deployment_type": "ScalableCluster", "distribution": "k8s",
                "switch": {"adapter": "Ethernet", "subnet": "172.20.1.0/24"},
                "nodes": [{"role": "control-plane", "address": "172.20.1.11/24"}],
                "control_plane_endpoint": "172.20.1.21",
                "kubernetes": {"pod_cidr": "10.244.0.0/24", "service_cidr": "10.96.0.0/12", "cluster_dns": "10.96.0.10", "network_plugin": "calico"},
            })),
        },
        Case {
            file: "v1.15-scalable-join-k3s-jumpstart.json",
            machine: 0,
            errors: &[],
            notes: &[],
            plan: Some(json!({
                "distribution": "k3s", "joining": true,
                "nodes": [{"role": "worker", "address": "172.20.1.51/24"}],
                "control_plane_endpoint": "172.20.1.21",
                "service_range": null,
            })),
        },
        Case {
            file: "v1.13-scalable-join-k8s-controlplane.json",
            machine: 0,
            errors: &[],
            notes: &[],
            plan: Some(json!({
                "distribution": "k8s", "joining": true,
                "switch": {"adapter": "eno1", "subnet": "10.10.0.0/23", "gateway": "10.10.0.1", "mtu": 1500},
                "nodes": [{"role": "control-plane", "address": "10.10.1.12/23", "dns_servers": ["10.10.0.2", "10.10.0.3"]}],
                "control_plane_endpoint": "10.10.0.190",
            })),
        },
        Case {
            file: "v1.13-scalable-three-machines.json",
            machine: 1,
            errors: &[],
            notes: &[],
            plan: Some(json!({
                "machine": {"index": 1, "name": "edge-b"},
                "switch": {"adapter": "enp1s0", "subnet": "10.1.0.0/24"},
                "nodes": [
                    {"name": "edge-b-ledge", "kind": "linux", "role": "worker", "address": "10.1.0.102/24"},
                    {"name": "edge-b-wedge", "kind": "windows", "role": "worker", "address": "10.1.0.112/24"}
                ],
                "control_plane_endpoint": "10.1.0.100",
                "service_range": {"start": "10.1.0.200", "end": "10.1.0.215", "size": 16},
            })),
        },
        Case {
            // Microsoft's multi-machine docs spell it ServiceIpRangeSize.
            file: "v1.9-scalable-docs-servicesipsize-casing.json",
            machine: 0,
            errors: &[],
            notes: &[("key-case", "Init.ServiceIpRangeSize")],
            plan: Some(json!({
                "service_range": {"start": "192.168.1.151", "end": "192.168.1.160", "size": 10},
                "control_plane_endpoint": "192.168.1.191",
                "nodes": [{"address": "192.168.1.171/24"}],
            })),
        },
        Case {
            file: "v1.16-scalable-lowercase-keys.json",
            machine: 0,
            errors: &[],
            // 18 keys in another case: one grouped notice, at the first one.
            notes: &[("key-case", "schemaVersion")],
            plan: Some(json!({
                "deployment_type": "ScalableCluster", "distribution": "k8s",
                "switch": {"adapter": "eth0", "subnet": "192.168.20.0/24"},
                "nodes": [{"address": "192.168.20.231/24", "role": "control-plane"}],
                "service_range": {"start": "192.168.20.240", "end": "192.168.20.247", "size": 8},
            })),
        },
        Case {
            file: "v1.1-preview-single.json",
            machine: 0,
            errors: &[],
            notes: &[
                ("legacy-field", ""),
                ("legacy-field", "Network.ServiceIPRangeSize"),
            ],
            plan: Some(single(
                "192.168.0.0/24",
                json!([{"role": "control-plane", "address": "192.168.0.2/24"}]),
                json!({"start": "192.168.0.4", "end": "192.168.0.13", "size": 10}),
                "k3s",
                "flannel",
            )),
        },
        Case {
            // The multi-machine docs of the preview: VSwitch, the range given by its end.
            file: "v1.1-preview-scalable-vswitch.json",
            machine: 0,
            errors: &[],
            notes: &[
                ("legacy-field", "Network.VSwitch"),
                ("legacy-field", "Network.ServiceIPRangeEnd"),
                ("key-case", "LinuxVm.DataSizeinGB"),
            ],
            plan: Some(json!({
                "deployment_type": "ScalableCluster",
                "switch": {"name": "aksedgesw-ext", "adapter": "Ethernet", "subnet": "192.168.1.0/24", "gateway": "192.168.1.1"},
                "nodes": [{"role": "control-plane", "address": "192.168.1.171/24", "dns_servers": ["192.168.1.1"]}],
                "control_plane_endpoint": "192.168.1.191",
                "service_range": {"start": "192.168.1.151", "end": "192.168.1.170", "size": 20},
            })),
        },
        Case {
            // Schema 1.0 (first preview): KubernetesDistribution, the VMs and their MTU.
            file: "v1.0-preview-k8s-distribution.json",
            machine: 0,
            errors: &[],
            notes: &[
                ("legacy-field", "KubernetesDistribution"),
                ("legacy-field", "LinuxVm.Mtu"),
            ],
            plan: Some({
                let mut p = single(
                    "192.168.0.0/24",
                    json!([
                        {"name": "edge01-ledge", "role": "control-plane", "address": "192.168.0.2/24", "mtu": 1400},
                        {"name": "edge01-wedge", "role": "worker", "address": "192.168.0.3/24", "mtu": 1400}
                    ]),
                    json!({"start": "192.168.0.4", "end": "192.168.0.11", "size": 8}),
                    "k8s",
                    "calico",
                );
                p["switch"]["mtu"] = json!(1400);
                p
            }),
        },
        Case {
            // AksEdgeDeploy's preview user config: the product names the distribution.
            file: "v1.1-aksedgedeploy-preview-k8s.json",
            machine: 0,
            errors: &[],
            notes: &[("legacy-field", "AksEdgeProduct")],
            plan: Some(single(
                "192.168.0.0/24",
                json!([{"role": "control-plane", "address": "192.168.0.2/24"}]),
                Value::Null,
                "k8s",
                "calico",
            )),
        },
        Case {
            file: "invalid-aksedgedeploy-wrapper-file.json",
            machine: 0,
            errors: &[("wrong-file", "AksEdgeConfigFile")],
            notes: &[],
            plan: None,
        },
        Case {
            file: "older-network-service-range.json",
            machine: 0,
            errors: &[],
            notes: &[
                ("legacy-field", "Network.ServiceIPRangeStart"),
                ("legacy-field", "Network.ServiceIPRangeEnd"),
            ],
            plan: Some(json!({
                "service_range": {"start": "192.168.50.200", "end": "192.168.50.219", "size": 20},
            })),
        },
        Case {
            file: "invalid-keys-differing-in-case.json",
            machine: 0,
            errors: &[("duplicate-key", "Init.ServiceIpRangeSize")],
            notes: &[],
            plan: None,
        },
        Case {
            file: "invalid-exact-duplicate-key.json",
            machine: 0,
            errors: &[("duplicate-key", "Network.DnsServers")],
            notes: &[],
            plan: None,
        },
        Case {
            file: "invalid-service-range-two-places.json",
            machine: 0,
            errors: &[("conflicting-fields", "Network.ServiceIPRangeStart")],
            notes: &[],
            plan: None,
        },
        Case {
            file: "invalid-range-end-disagrees-with-size.json",
            machine: 0,
            errors: &[("conflicting-fields", "Network.ServiceIPRangeEnd")],
            notes: &[],
            plan: None,
        },
        Case {
            file: "invalid-distribution-contradicts-plugin.json",
            machine: 0,
            errors: &[("plugin-mismatch", "Network.NetworkPlugin")],
            notes: &[],
            plan: None,
        },
        Case {
            // The finding names the preview path the user wrote, not Machines[0].LinuxNode; the
            // preview upgrade drops a single machine's static address (a warning).
            file: "v1.1-preview-single-with-node-address.json",
            machine: 0,
            errors: &[],
            notes: &[("ignored-field", "LinuxVm.Ip4Address")],
            plan: Some(single(
                "192.168.0.0/24",
                json!([{"role": "control-plane", "address": "192.168.0.2/24"}]),
                json!({"start": "192.168.0.4", "end": "192.168.0.13", "size": 10}),
                "k3s",
                "flannel",
            )),
        },
        Case {
            // Microsoft's schema 1.1 template, single machine with its static LAN fields: they
            // are ignored (warnings), Size 0 is kept (no service IPs), as UpgradeJsonFormat does.
            file: "v1.1-preview-single-static-template.json",
            machine: 0,
            errors: &[],
            notes: &[
                ("ignored-field", "Network.ControlPlaneEndpointIp"),
                ("ignored-field", "Network.Ip4GatewayAddress"),
                ("ignored-field", "Network.ServiceIPRangeStart"),
                ("ignored-field", "Network.ServiceIPRangeEnd"),
                ("ignored-field", "LinuxVm.Ip4Address"),
            ],
            plan: Some(single(
                "192.168.0.0/24",
                json!([{"role": "control-plane", "address": "192.168.0.2/24"}]),
                Value::Null,
                "k3s",
                "flannel",
            )),
        },
        Case {
            // The same template for several machines: Size 0 is "not set", End gives the size
            // (inclusive: .151 to .160 is 10).
            file: "v1.1-preview-scalable-size-zero.json",
            machine: 0,
            // Its adapter is the Linux host's (a Windows name such as "Ethernet 2" is refused,
            // offline too: B23 F2).
            errors: &[],
            notes: &[("legacy-field", "Network.ServiceIPRangeSize")],
            plan: Some(json!({
                "deployment_type": "ScalableCluster",
                "switch": {"adapter": "enp2s0", "subnet": "10.20.0.0/24"},
                "nodes": [{"address": "10.20.0.171/24"}],
                "control_plane_endpoint": "10.20.0.191",
                "service_range": {"start": "10.20.0.151", "end": "10.20.0.160", "size": 10},
            })),
        },
        Case {
            // Machines without MachineName: only the deployed one takes the host name.
            file: "v1.9-scalable-unnamed-machines.json",
            machine: 1,
            errors: &[],
            notes: &[],
            plan: Some(json!({
                "machine": {"index": 1, "name": "edge01"},
                "nodes": [{"name": "edge01-ledge", "role": "worker", "address": "192.168.30.102/24"}],
            })),
        },
        Case {
            file: "invalid-vswitch-contradicts-current-fields.json",
            machine: 0,
            errors: &[
                ("conflicting-fields", "Network.VSwitch.Name"),
                ("conflicting-fields", "Network.VSwitch.AdapterName"),
            ],
            notes: &[],
            plan: None,
        },
        Case {
            // Unknown keys in the network sections are warned about, near-typos or not.
            file: "v1.16-single-unknown-network-keys.json",
            machine: 0,
            errors: &[],
            notes: &[
                ("misspelt-key", "Networking"),
                ("misspelt-key", "Network.Offline"),
                ("misspelt-key", "Network.Ip4Gateway"),
                ("misspelt-key", "Network.ProxySettings"),
                ("misspelt-key", "Edgenet.Distro"),
                ("misspelt-key", "Edgenet.Bogus"),
                ("misspelt-key", "Machines[0].NetworkConnection.Adaptor"),
                ("misspelt-key", "Machines[0].NetworkConnection.Speed"),
            ],
            plan: Some(json!({"deployment_type": "SingleMachineCluster", "distribution": "k3s"})),
        },
        Case {
            // The vm runtime, spelt in another case; its image is checked by deploy (and filled
            // in by `lab up`).
            file: "v1.16-edgenet-vm-runtime-any-case.json",
            machine: 0,
            errors: &[],
            notes: &[],
            plan: Some(json!({"node_runtime": "vm", "distribution": "k3s"})),
        },
        Case {
            file: "v1.16-edgenet-vm-node-sizes.json",
            machine: 0,
            errors: &[],
            notes: &[],
            plan: Some(json!({
                "node_runtime": "vm",
                "vm_image": {
                    "image": "/var/cache/edgenet/guest/disk.qcow2",
                    "kernel": "/var/cache/edgenet/guest/vmlinuz",
                    "initrd": "/var/cache/edgenet/guest/initrd.img",
                    "windows_image": "/var/lib/images/windows-server-2022-cloudbase.qcow2"
                },
            })),
        },
        Case {
            file: "invalid-edgenet-vm-sizes-and-images.json",
            machine: 0,
            errors: &[
                ("vm-size", "Machines[0].LinuxNode.CpuCount"),
                ("vm-size", "Machines[0].LinuxNode.MemoryInMB"),
                ("vm-size", "Machines[0].LinuxNode.DataSizeInGB"),
                ("vm-size", "Machines[0].WindowsNode.CpuCount"),
                ("vm-size", "Machines[0].WindowsNode.MemoryInMB"),
                ("vm-size", "Machines[0].WindowsNode.DataSizeInGB"),
                ("vm-image", "Machines[0].WindowsNode"),
                ("vm-image", "Edgenet.VmImage"),
                ("vm-image", "Edgenet.VmInitrd"),
            ],
            notes: &[],
            plan: None,
        },
        Case {
            // AksEdgeDeploy's user config with the deployment config inline: read in place.
            file: "v1.1-aksedgedeploy-inline-offline-k8s.json",
            machine: 0,
            errors: &[],
            notes: &[
                ("legacy-field", "AksEdgeConfig"),
                ("legacy-field", "AksEdgeProduct"),
            ],
            plan: Some({
                let mut p = single(
                    "192.168.0.0/24",
                    json!([{"role": "control-plane", "address": "192.168.0.2/24"}]),
                    json!({"start": "192.168.0.4", "end": "192.168.0.11", "size": 8}),
                    "k8s",
                    "calico",
                );
                p["switch"]["outbound"] = json!("offline");
                p
            }),
        },
        Case {
            file: "invalid-aksedgedeploy-inline-bad-address.json",
            machine: 0,
            errors: &[(
                "invalid-ipv4",
                "AksEdgeConfig.Machines[0].LinuxNode.Ip4Address",
            )],
            notes: &[],
            plan: None,
        },
        Case {
            file: "invalid-not-a-config-package-json.json",
            machine: 0,
            errors: &[("not-a-config", "")],
            notes: &[],
            plan: None,
        },
    ]
}

/// Every object key of `expected` is in `actual` with an equal value (arrays element-wise).
fn assert_subset(actual: &Value, expected: &Value, at: &str) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (k, v) in e {
                let Some(av) = a.get(k) else {
                    panic!("{at}.{k} is missing from {actual:#}");
                };
                assert_subset(av, v, &format!("{at}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(e)) => {
            assert_eq!(a.len(), e.len(), "{at}: {actual:#} vs {expected:#}");
            for (i, (av, ev)) in a.iter().zip(e).enumerate() {
                assert_subset(av, ev, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(actual, expected, "{at}"),
    }
}

/// Whether `path` names a place that exists in the file (`""` is the whole file).
fn exists(source: &Value, path: &str) -> bool {
    if path.is_empty() {
        return true;
    }
    let mut v = source;
    for part in path.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let Some(next) = v.get(key) else { return false };
        v = match index {
            Some(i) => match next.get(i) {
                Some(x) => x,
                None => return false,
            },
            None => next,
        };
    }
    true
}

fn has(findings: &[Finding], code: &str, path: &str) -> bool {
    findings
        .iter()
        .any(|f| f.code.as_str() == code && f.path == path)
}

/// Findings point at what the user wrote, never at a path that is not in the file. The exact
/// rule: the path exists; or it names a field the file left out where it belongs: the steps
/// after its nearest written ancestor are keys (never an index: an element the file does not
/// have), only one such step unless it is a `required-field` (which may name a whole missing
/// section, `Network.ControlPlaneEndpointIp`).
fn assert_paths_written(file: &str, source: &Value, findings: &[Finding]) {
    for f in findings {
        let steps: Vec<&str> = if f.path.is_empty() {
            vec![]
        } else {
            f.path.split('.').collect()
        };
        let written = (0..=steps.len())
            .rev()
            .find(|&n| exists(source, &steps[..n].join(".")))
            .unwrap_or(0);
        let missing = &steps[written..];
        let ok = missing.is_empty()
            || (missing.iter().all(|s| !s.contains('['))
                && (missing.len() == 1 || f.code.as_str() == "required-field"));
        assert!(
            ok,
            "{file}: {} points at {:?}, which is not in the file: {}",
            f.code, f.path, f.message
        );
    }
}

/// Every fixture with each key removed in turn (one level into every object and the first
/// machine): the findings still point at paths the file has.
#[test]
fn findings_of_mutated_files_point_at_written_paths() {
    let mut checked = 0;
    for case in cases() {
        let bytes = std::fs::read(format!("{}/{}", corpus_dir(), case.file)).unwrap();
        let Ok(loaded) = load(&bytes) else { continue };
        let mut variants = Vec::new();
        let Value::Object(root) = &loaded.source else {
            continue;
        };
        for (k, v) in root {
            let mut w = loaded.source.clone();
            w.as_object_mut().unwrap().remove(k);
            variants.push(w);
            if let Value::Object(inner) = v {
                for k2 in inner.keys() {
                    let mut w = loaded.source.clone();
                    w[k].as_object_mut().unwrap().remove(k2);
                    variants.push(w);
                }
            }
            if let Some(Value::Object(m)) = v.as_array().and_then(|a| a.first()) {
                for k2 in m.keys() {
                    let mut w = loaded.source.clone();
                    w[k][0].as_object_mut().unwrap().remove(k2);
                    variants.push(w);
                }
            }
        }
        for w in variants {
            let text = serde_json::to_vec(&w).unwrap();
            let Ok(l) = load(&text) else { continue };
            for machine in [None, Some(0)] {
                let mut ctx = Context::offline("--offline-check", "edge01");
                ctx.machine = machine;
                let findings = check(&l, &ctx);
                assert_paths_written(case.file, &l.source, &findings);
                checked += 1;
            }
        }
    }
    assert!(checked > 200, "only {checked} variants");
}

#[test]
fn the_corpus_is_large_and_every_file_has_an_expectation() {
    let mut files: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".json"))
        .collect();
    files.sort();
    let cases = cases();
    let named: Vec<&str> = cases.iter().map(|c| c.file).collect();
    for f in &files {
        assert!(named.contains(&f.as_str()), "{f} has no expectation");
    }
    let valid = cases.iter().filter(|c| c.errors.is_empty()).count();
    assert!(valid >= 15, "only {valid} valid real-shaped files");
}

#[test]
fn every_file_gets_its_verdict_findings_and_plan() {
    for case in cases() {
        let bytes = std::fs::read(format!("{}/{}", corpus_dir(), case.file)).unwrap();
        let loaded = load(&bytes).unwrap_or_else(|e| panic!("{}: {e}", case.file));
        let mut ctx = Context::offline("--offline-check", "edge01");
        ctx.machine = Some(case.machine);
        let findings = check(&loaded, &ctx);
        let errors: Vec<(&str, &str)> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| (f.code.as_str(), f.path.as_str()))
            .collect();
        assert_eq!(errors, case.errors, "{}: errors {findings:#?}", case.file);
        for (code, path) in case.notes {
            assert!(
                has(&findings, code, path),
                "{}: no {code} at {path:?} in {findings:#?}",
                case.file
            );
        }
        assert_paths_written(case.file, &loaded.source, &findings);
        if let Some(expected) = &case.plan {
            let plan = plan::build(&loaded.config, &ctx)
                .unwrap_or_else(|e| panic!("{}: no plan: {e}", case.file));
            let actual = serde_json::to_value(&plan).unwrap();
            assert_subset(&actual, expected, case.file);
        }
    }
}
