//! The control-plane VIP and the LoadBalancer range: kube-vip (static pod for kubeadm, DaemonSet
//! with RBAC for K3s), the kube-vip cloud provider's `kubevip` ConfigMap, or MetalLB's pool.
//! Kubernetes objects come from k8s-openapi's typed models.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, Container, EnvVar, EnvVarSource, HostAlias,
    HostPathVolumeSource, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectFieldSelector, Pod, PodSpec, PodTemplateSpec, SecurityContext, ServiceAccount,
    Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use edgenet_core::plan::Plan;

use crate::model::metallb::{self, IpAddressPool, IpAddressPoolSpec, L2Advertisement};
use crate::yaml::to_yaml;
use crate::{has_vip, service_range_text, LbProvider, RenderOptions, API_PORT};

const NAMESPACE: &str = "kube-system";
const NAME: &str = "kube-vip";

/// What kube-vip does on this cluster: hold the VIP, announce LoadBalancer IPs, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubeVipRole {
    pub control_plane: bool,
    pub services: bool,
}

/// `None`: kube-vip has nothing to do (single machine, no VIP, and no range it serves).
pub fn kube_vip_role(plan: &Plan, opts: &RenderOptions) -> Option<KubeVipRole> {
    let role = KubeVipRole {
        control_plane: has_vip(plan),
        services: opts.lb == LbProvider::KubeVip && service_range_text(plan).is_some(),
    };
    (role.control_plane || role.services).then_some(role)
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn kube_vip_env(plan: &Plan, opts: &RenderOptions, role: KubeVipRole, in_pod: bool) -> Vec<EnvVar> {
    let mut vars = vec![
        env("vip_arp", "true"),
        env("port", API_PORT.to_string()),
        env("vip_interface", opts.node_interface.clone()),
        env("vip_subnet", "32"),
        env("cp_enable", role.control_plane.to_string()),
        env("cp_namespace", NAMESPACE),
        env("svc_enable", role.services.to_string()),
        env("vip_leaderelection", "true"),
        env("vip_leaseduration", "15"),
        env("vip_renewdeadline", "10"),
        env("vip_retryperiod", "2"),
    ];
    if role.control_plane {
        vars.push(env("address", plan.control_plane_endpoint.to_string()));
    }
    if in_pod {
        vars.push(EnvVar {
            name: "vip_nodename".to_string(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "spec.nodeName".to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    vars
}

fn kube_vip_container(
    plan: &Plan,
    opts: &RenderOptions,
    role: KubeVipRole,
    in_pod: bool,
) -> Container {
    Container {
        name: NAME.to_string(),
        image: Some(opts.kube_vip_image.clone()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        args: Some(vec!["manager".to_string()]),
        env: Some(kube_vip_env(plan, opts, role, in_pod)),
        security_context: Some(SecurityContext {
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_ADMIN".into(), "NET_RAW".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Binds the cluster role `role` to the service account `account` in kube-system.
fn role_binding(binding: &str, role: &str, account: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(binding, None),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_string()),
            kind: "ClusterRole".to_string(),
            name: role.to_string(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_string(),
            name: account.to_string(),
            namespace: Some(NAMESPACE.to_string()),
            ..Default::default()
        }]),
    }
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_string(),
            "edgenet".to_string(),
        )])),
        ..Default::default()
    }
}

/// kubeadm: the static pod `/etc/kubernetes/manifests/kube-vip.yaml`, present before
/// `kubeadm init` so the VIP answers when kubeadm waits for it. During `init` only
/// `super-admin.conf` has rights (Kubernetes ≥ 1.29), so the first node mounts that one.
pub fn kube_vip_static_pod(
    plan: &Plan,
    opts: &RenderOptions,
    role: KubeVipRole,
    first: bool,
) -> Pod {
    let kubeconfig = if first {
        "/etc/kubernetes/super-admin.conf"
    } else {
        "/etc/kubernetes/admin.conf"
    };
    let mut container = kube_vip_container(plan, opts, role, false);
    container
        .env
        .get_or_insert_with(Vec::new)
        .push(env("k8s_config_file", "/etc/kubernetes/admin.conf"));
    container.volume_mounts = Some(vec![VolumeMount {
        name: "kubeconfig".to_string(),
        mount_path: "/etc/kubernetes/admin.conf".to_string(),
        ..Default::default()
    }]);
    Pod {
        metadata: meta(NAME, Some(NAMESPACE)),
        spec: Some(PodSpec {
            host_network: Some(true),
            host_aliases: Some(vec![HostAlias {
                hostnames: Some(vec!["kubernetes".to_string()]),
                ip: "127.0.0.1".to_string(),
            }]),
            containers: vec![container],
            volumes: Some(vec![Volume {
                name: "kubeconfig".to_string(),
                host_path: Some(HostPathVolumeSource {
                    path: kubeconfig.to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// K3s: ServiceAccount, ClusterRole, ClusterRoleBinding and the DaemonSet on control-plane nodes,
/// as documents of one server manifest.
pub fn kube_vip_daemonset_documents(
    plan: &Plan,
    opts: &RenderOptions,
    role: KubeVipRole,
) -> Vec<String> {
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let account = ServiceAccount {
        metadata: meta(NAME, Some(NAMESPACE)),
        ..Default::default()
    };
    let cluster_role = ClusterRole {
        metadata: meta("system:kube-vip-role", None),
        rules: Some(vec![
            rule(&[""], &["services/status"], &["update"]),
            rule(
                &[""],
                &["services", "endpoints"],
                &["list", "get", "watch", "update"],
            ),
            rule(
                &[""],
                &["nodes"],
                &["list", "get", "watch", "update", "patch"],
            ),
            rule(
                &["coordination.k8s.io"],
                &["leases"],
                &["list", "get", "watch", "update", "create"],
            ),
            rule(
                &["discovery.k8s.io"],
                &["endpointslices"],
                &["list", "get", "watch", "update"],
            ),
            rule(&[""], &["pods"], &["list"]),
        ]),
        ..Default::default()
    };
    let binding = role_binding("system:kube-vip-binding", "system:kube-vip-role", NAME);
    let labels = BTreeMap::from([("app.kubernetes.io/name".to_string(), NAME.to_string())]);
    let control_plane_term = |key: &str| NodeSelectorTerm {
        match_expressions: Some(vec![NodeSelectorRequirement {
            key: key.to_string(),
            operator: "Exists".to_string(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let daemonset = DaemonSet {
        metadata: meta(NAME, Some(NAMESPACE)),
        spec: DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(NAME.to_string()),
                    host_network: Some(true),
                    affinity: Some(Affinity {
                        node_affinity: Some(NodeAffinity {
                            required_during_scheduling_ignored_during_execution: Some(
                                NodeSelector {
                                    node_selector_terms: vec![
                                        control_plane_term("node-role.kubernetes.io/control-plane"),
                                        control_plane_term("node-role.kubernetes.io/master"),
                                    ],
                                },
                            ),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    tolerations: Some(vec![
                        Toleration {
                            effect: Some("NoSchedule".to_string()),
                            operator: Some("Exists".to_string()),
                            ..Default::default()
                        },
                        Toleration {
                            effect: Some("NoExecute".to_string()),
                            operator: Some("Exists".to_string()),
                            ..Default::default()
                        },
                    ]),
                    containers: vec![kube_vip_container(plan, opts, role, true)],
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    };
    vec![
        to_yaml(&account),
        to_yaml(&cluster_role),
        to_yaml(&binding),
        to_yaml(&daemonset),
    ]
}

/// The kube-vip cloud provider's ConfigMap: `range-global` = the service range.
pub fn kubevip_configmap(range: &str) -> ConfigMap {
    ConfigMap {
        metadata: meta("kubevip", Some(NAMESPACE)),
        data: Some(BTreeMap::from([(
            "range-global".to_string(),
            range.to_string(),
        )])),
        ..Default::default()
    }
}

/// MetalLB's pool of the service range and its L2 advertisement on the node interface.
pub fn metallb_documents(range: &str, opts: &RenderOptions) -> Vec<String> {
    let pool = IpAddressPool {
        api_version: metallb::API_VERSION.to_string(),
        kind: "IPAddressPool".to_string(),
        metadata: metallb::Metadata {
            name: "edgenet-service-range".to_string(),
            namespace: metallb::NAMESPACE.to_string(),
        },
        spec: IpAddressPoolSpec {
            addresses: vec![range.to_string()],
            auto_assign: true,
            avoid_buggy_ips: false,
        },
    };
    let advertisement = L2Advertisement {
        api_version: metallb::API_VERSION.to_string(),
        kind: "L2Advertisement".to_string(),
        metadata: metallb::Metadata {
            name: "edgenet-l2".to_string(),
            namespace: metallb::NAMESPACE.to_string(),
        },
        spec: metallb::L2AdvertisementSpec {
            ip_address_pools: vec!["edgenet-service-range".to_string()],
            interfaces: vec![opts.node_interface.clone()],
        },
    };
    vec![to_yaml(&pool), to_yaml(&advertisement)]
}

/// The kube-vip cloud provider: it reads the `kubevip` ConfigMap and gives LoadBalancer
/// services their addresses, which kube-vip (`svc_enable`) then announces.
pub fn kube_vip_cloud_provider_documents(opts: &RenderOptions) -> Vec<String> {
    let name = "kube-vip-cloud-controller";
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let account = ServiceAccount {
        metadata: meta(name, Some(NAMESPACE)),
        ..Default::default()
    };
    let role = ClusterRole {
        metadata: meta("system:kube-vip-cloud-controller-role", None),
        rules: Some(vec![
            rule(
                &["coordination.k8s.io"],
                &["leases"],
                &["get", "create", "update", "list"],
            ),
            rule(
                &[""],
                &["configmaps", "endpoints", "events", "services/status"],
                &["*"],
            ),
            rule(
                &[""],
                &["nodes", "services"],
                &["list", "get", "watch", "update"],
            ),
        ]),
        ..Default::default()
    };
    let binding = role_binding(
        "system:kube-vip-cloud-controller-binding",
        "system:kube-vip-cloud-controller-role",
        name,
    );
    let labels = BTreeMap::from([(
        "app.kubernetes.io/name".to_string(),
        "kube-vip-cloud-provider".to_string(),
    )]);
    let toleration = |key: &str| Toleration {
        key: Some(key.to_string()),
        effect: Some("NoSchedule".to_string()),
        operator: Some("Exists".to_string()),
        ..Default::default()
    };
    let deployment = Deployment {
        metadata: meta("kube-vip-cloud-provider", Some(NAMESPACE)),
        spec: DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(name.to_string()),
                    // A Linux image: never scheduled on a Windows node.
                    node_selector: Some(
                        [("kubernetes.io/os".to_string(), "linux".to_string())].into(),
                    ),
                    tolerations: Some(vec![
                        toleration("node-role.kubernetes.io/control-plane"),
                        toleration("node-role.kubernetes.io/master"),
                    ]),
                    containers: vec![Container {
                        name: "kube-vip-cloud-provider".to_string(),
                        image: Some(opts.kube_vip_cloud_provider_image.clone()),
                        command: Some(vec![
                            "/kube-vip-cloud-provider".to_string(),
                            format!("--leader-elect-resource-name={name}"),
                        ]),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    };
    vec![
        to_yaml(&account),
        to_yaml(&role),
        to_yaml(&binding),
        to_yaml(&deployment),
    ]
}

/// The LoadBalancer objects for the service range: none when the range is empty.
pub fn lb_documents(plan: &Plan, opts: &RenderOptions) -> Vec<String> {
    match (service_range_text(plan), opts.lb) {
        (None, _) => Vec::new(),
        (Some(range), LbProvider::KubeVip) => {
            let mut docs = vec![to_yaml(&kubevip_configmap(&range))];
            docs.extend(kube_vip_cloud_provider_documents(opts));
            docs
        }
        (Some(range), LbProvider::Metallb) => metallb_documents(&range, opts),
    }
}
