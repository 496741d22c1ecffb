//! Older schema versions, mapped onto current fields: the service range kept in `Network`
//! (and given by its end), `Network.VSwitch{Name,Type,AdapterName}`, and the 2022 preview form
//! (`DeployOptions`, `LinuxVm`, `WindowsVm`). Every finding names the path the file wrote.

use std::net::Ipv4Addr;

use serde_json::Value;

use super::load::{node_mtu, read_node};
use super::reader::{Obj, Reader};
use super::{Config, DeploymentType, Distribution, Machine, NetworkPlugin, Node};
use crate::finding::{Code, Finding};

/// One value of the service range and where the file wrote it.
#[derive(Debug, Clone, Copy)]
struct At<T> {
    value: T,
    init: bool,
}

/// The service range as written in `Init` (current) and `Network` (before 1.5).
#[derive(Default)]
pub(super) struct ServiceRange {
    start: Vec<(At<Ipv4Addr>, String)>,
    size: Vec<(At<u32>, String)>,
    end: Vec<(At<Ipv4Addr>, String)>,
}

impl ServiceRange {
    pub fn read(&mut self, r: &mut Reader, obj: &Obj<'_>, init: bool) {
        if let Some(v) = r.ipv4(obj, "ServiceIPRangeStart") {
            self.start
                .push((At { value: v, init }, obj.at("ServiceIPRangeStart")));
        }
        let size_words = format_args!(
            "a whole number from 0 to {}",
            crate::validate::addresses::MAX_SERVICE_RANGE
        );
        if let Some(v) = r.uint_in(obj, "ServiceIPRangeSize", size_words) {
            self.size
                .push((At { value: v, init }, obj.at("ServiceIPRangeSize")));
        }
        if let Some(v) = r.ipv4(obj, "ServiceIPRangeEnd") {
            self.end
                .push((At { value: v, init }, obj.at("ServiceIPRangeEnd")));
        }
    }

    /// Sets `Init.ServiceIPRange{Start,Size}` from wherever the file wrote them; a range given
    /// twice must agree, and an end must agree with the size.
    ///
    /// A single-machine preview file keeps its size alone (Start and End are warned about and
    /// dropped), as AKS Edge Essentials' upgrade of the preview form does; elsewhere a size of
    /// 0 beside Start and End is the preview template's "not set", and the End gives the size.
    pub fn apply(mut self, r: &mut Reader, config: &mut Config, single_preview: bool) {
        if single_preview {
            for (_, path) in self.start.drain(..).chain(self.end.drain(..)) {
                r.findings.push(
                    Finding::warning(
                        Code::IgnoredField,
                        &path,
                        format!("{path} is ignored on a single-machine cluster (its service IPs follow the node subnet; only ServiceIPRangeSize counts)"),
                    )
                    .hint(format!("remove {path}")),
                );
            }
        }
        let start = one(r, &self.start, "ServiceIPRangeStart");
        let mut size = one(r, &self.size, "ServiceIPRangeSize");
        let end = one(r, &self.end, "ServiceIPRangeEnd");
        if let (Some((0, size_path)), Some((end_v, end_path)), Some(_)) = (&size, &end, &start) {
            r.findings.push(
                Finding::notice(
                    Code::LegacyField,
                    size_path,
                    format!("{size_path} is 0 beside {end_path} ({end_v}): read as not set (the preview template's value), the end gives the size"),
                )
                .hint(format!("remove {size_path}")),
            );
            size = None;
        }
        config.init.service_ip_range_start = start.as_ref().map(|(v, _)| *v);
        config.init.service_ip_range_size = size.as_ref().map(|(v, _)| *v);
        let Some((end, end_path)) = end else { return };
        let Some((start, start_path)) = start else {
            r.findings.push(
                Finding::warning(
                    Code::IgnoredField,
                    &end_path,
                    format!("{end_path} is {end}, but no ServiceIPRangeStart is given; the end is ignored"),
                )
                .hint("give ServiceIPRangeStart and ServiceIPRangeSize instead"),
            );
            return;
        };
        let Some(count) = u32::from(end)
            .checked_sub(u32::from(start))
            .map(|d| d.saturating_add(1))
        else {
            r.invalid(
                &end_path,
                Finding::error(
                    Code::ServiceRangeSize,
                    &end_path,
                    format!("{end_path} is {end}, before {start_path} ({start})"),
                )
                .hint("the end is the last service IP: at or after the start"),
            );
            return;
        };
        match size {
            Some((size, size_path)) if size != count => r.invalid(
                &end_path,
                Finding::error(
                    Code::ConflictingFields,
                    &end_path,
                    format!("{end_path} is {end}, which makes {count} service IPs from {start}, but {size_path} is {size}"),
                )
                .hint(format!("drop {end_path}, or make it agree with {size_path}")),
            ),
            Some((_, size_path)) => r.findings.push(
                Finding::notice(
                    Code::LegacyField,
                    &end_path,
                    format!("{end_path} is {end}, which agrees with {size_path} ({start} to {end})"),
                )
                .hint(format!("remove {end_path}: the size says it")),
            ),
            None => {
                config.init.service_ip_range_size = Some(count);
                r.alias("Init.ServiceIPRangeSize", end_path.clone());
                r.findings.push(
                    Finding::notice(
                        Code::LegacyField,
                        &end_path,
                        format!("{end_path} is {end}: read as Init.ServiceIPRangeSize {count} ({start} to {end})"),
                    )
                    .hint(format!("write Init.ServiceIPRangeSize: {count} instead")),
                );
            }
        }
    }
}

/// The single value of a field written in `Init` and/or `Network`: the two must agree.
fn one<T: Copy + PartialEq + std::fmt::Display>(
    r: &mut Reader,
    found: &[(At<T>, String)],
    key: &str,
) -> Option<(T, String)> {
    let canon = format!("Init.{key}");
    match found {
        [] => None,
        [(a, path)] => {
            // An end is reported with what it means, in `ServiceRange::apply`.
            if !a.init && key != "ServiceIPRangeEnd" {
                r.alias(canon.clone(), path.clone());
                r.findings.push(
                    Finding::notice(
                        Code::LegacyField,
                        path,
                        format!(
                            "{path} is the older place of the range (preview releases); read as {canon}"
                        ),
                    )
                    .hint(format!("move it to {canon}")),
                );
            }
            Some((a.value, path.clone()))
        }
        [(a, init_path), (b, net_path), ..] => {
            if a.value != b.value {
                r.invalid(
                    net_path,
                    Finding::error(
                        Code::ConflictingFields,
                        net_path,
                        format!("{net_path} is {}, but {init_path} is {}", b.value, a.value),
                    )
                    .hint(format!(
                        "remove {net_path}: {init_path} is the current place"
                    )),
                );
            } else {
                r.findings.push(
                    Finding::notice(
                        Code::LegacyField,
                        net_path,
                        format!("{net_path} (the range's older place) repeats {init_path}"),
                    )
                    .hint(format!("remove {net_path}")),
                );
            }
            Some((a.value, init_path.clone()))
        }
    }
}

const DEPLOY_OPTIONS_KEYS: &[&str] = &[
    "SingleMachineCluster",
    "NetworkPlugin",
    "NodeType",
    "ControlPlane",
    "JoinCluster",
];
const DEPLOY_OPTIONS_ACCEPTED: &[&str] = &[
    "TimeoutSeconds",
    "Headless",
    "ServerTLSBootstrap",
    "ClusterJoinToken",
    "DiscoveryTokenHash",
    "CertificateKey",
    "ClusterId",
];
/// The 2022 preview form (SchemaVersion ≤ 1.1): `DeployOptions{SingleMachineCluster,
/// NetworkPlugin, NodeType, ControlPlane, JoinCluster}`, `LinuxVm`, `WindowsVm`. Current fields
/// written in the same file win; a preview field that contradicts one is an error.
/// Returns whether the file has the preview form (and it described the machine).
pub(super) fn preview(
    r: &mut Reader,
    root: &Obj<'_>,
    wrote_type: bool,
    config: &mut Config,
) -> bool {
    // AksEdgeDeploy's wrapper (aide-userconfig.json) is not the deployment config: it names one.
    if let Some(Value::String(file)) = root.get("AksEdgeConfigFile") {
        if root.key("Machines").is_none() && root.key("DeployOptions").is_none() {
            let path = root.at("AksEdgeConfigFile");
            r.invalid(
                &path,
                Finding::error(
                    Code::WrongFile,
                    &path,
                    format!("this is an AksEdgeDeploy user config (aide-userconfig.json); its deployment config is {file:?}"),
                )
                .hint(format!("give edgenet that file: edgenet check -c {file}")),
            );
        }
    }
    product_distribution(r, root, config);
    let opts = r.object(root, "DeployOptions");
    let linux_vm = r.object(root, "LinuxVm");
    let windows_vm = r.object(root, "WindowsVm");
    if opts.is_none() && linux_vm.is_none() && windows_vm.is_none() {
        return false;
    }
    let mut mapped: Vec<String> = Vec::new();
    let mut node_type = None;
    if let Some(opts) = &opts {
        r.check_keys(opts, DEPLOY_OPTIONS_KEYS, DEPLOY_OPTIONS_ACCEPTED);
        if let Some(single) = r.bool(opts, "SingleMachineCluster") {
            let path = opts.at("SingleMachineCluster");
            let implied = if single {
                DeploymentType::SingleMachineCluster
            } else {
                DeploymentType::ScalableCluster
            };
            if !wrote_type {
                config.deployment_type = implied;
                r.alias("DeploymentType", path.clone());
                mapped.push(format!("{path} → DeploymentType {}", implied.as_str()));
            } else if config.deployment_type != implied {
                conflict(
                    r,
                    &path,
                    &single.to_string(),
                    "DeploymentType",
                    config.deployment_type.as_str(),
                );
            }
        }
        let plugin = r.enumeration(
            opts,
            "NetworkPlugin",
            &[
                ("flannel", NetworkPlugin::Flannel),
                ("calico", NetworkPlugin::Calico),
            ],
        );
        if let Some(plugin) = plugin {
            let path = opts.at("NetworkPlugin");
            match config.network.network_plugin {
                None => {
                    config.network.network_plugin = Some(plugin);
                    r.alias("Network.NetworkPlugin", path.clone());
                    mapped.push(format!("{path} → Network.NetworkPlugin"));
                }
                Some(p) if p != plugin => {
                    let current = r.written("Network.NetworkPlugin");
                    conflict(r, &path, plugin.as_str(), &current, p.as_str());
                }
                Some(_) => {}
            }
        }
        node_type = r.enumeration(
            opts,
            "NodeType",
            &[
                ("Linux", (true, false)),
                ("Windows", (false, true)),
                ("LinuxAndWindows", (true, true)),
            ],
        );
        if opts.get("JoinCluster").is_some()
            && r.bool(opts, "JoinCluster") == Some(true)
            && !config.join
        {
            config.join = true;
            r.alias("Join", opts.at("JoinCluster"));
            mapped.push(format!("{} → Join", opts.at("JoinCluster")));
        }
    }
    // The preview described one machine: the VMs become Machines[0] unless Machines is written.
    if !config.machines_implied {
        for vm in [&linux_vm, &windows_vm].into_iter().flatten() {
            r.findings.push(
                Finding::warning(
                    Code::IgnoredField,
                    &vm.path,
                    format!("{} is the preview form of a Machines[] node; it is ignored because Machines is written", vm.path),
                )
                .hint(format!("remove {}", vm.path)),
            );
        }
        return false;
    }
    let (linux, windows) = node_type.unwrap_or((true, windows_vm.is_some()));
    let mut machine = Machine::default();
    for (vm, key, wanted) in [
        (&linux_vm, "LinuxNode", linux),
        (&windows_vm, "WindowsNode", windows),
    ] {
        let node = match vm {
            Some(vm) => {
                let obj = Obj::new(vm.path.clone(), format!("Machines[0].{key}"), vm.map);
                r.alias(format!("Machines[0].{key}"), vm.path.clone());
                mapped.push(format!("{} → Machines[0].{key}", vm.path));
                let node = read_node(r, &obj);
                node_mtu(r, &obj, "Machines[0]", &mut machine);
                if !wanted {
                    r.findings.push(
                        Finding::warning(
                            Code::IgnoredField,
                            &vm.path,
                            format!("{} is ignored: the node type does not include it", vm.path),
                        )
                        .hint(format!(
                            "remove {}, or set DeployOptions.NodeType to LinuxAndWindows",
                            vm.path
                        )),
                    );
                    continue;
                }
                node
            }
            None if wanted => {
                // A field of the node the file left out belongs in the preview's VM object.
                let vm_key = if key == "LinuxNode" {
                    "LinuxVm"
                } else {
                    "WindowsVm"
                };
                r.alias(format!("Machines[0].{key}"), root.at(vm_key));
                Node::default()
            }
            None => {
                // The node type left this node out: findings about it point at the type.
                if let Some(opts) = &opts {
                    if opts.key("NodeType").is_some() {
                        r.alias(format!("Machines[0].{key}"), opts.at("NodeType"));
                    }
                }
                continue;
            }
        };
        if key == "LinuxNode" {
            machine.linux_node = Some(node);
        } else {
            machine.windows_node = Some(node);
        }
    }
    if let Some(opts) = &opts {
        // The preview's ControlPlane was the role of a machine joining a cluster; a machine
        // that creates the cluster always ran it.
        if let Some(cp) = r.bool(opts, "ControlPlane").filter(|_| config.join) {
            if let Some(node) = &mut machine.linux_node {
                node.control_plane = Some(cp);
                r.alias(
                    "Machines[0].LinuxNode.ControlPlane",
                    opts.at("ControlPlane"),
                );
            }
        }
        if machine.linux_node.is_none() && machine.windows_node.is_none() {
            r.alias("Machines[0]", opts.at("NodeType"));
        }
    }
    if let Some(vm) = linux_vm.as_ref().or(windows_vm.as_ref()) {
        r.alias("Machines[0]", vm.path.clone());
        r.alias("Machines", vm.path.clone());
    }
    config.machines = vec![machine];
    config.machines_implied = false;
    config.machines_empty = false;
    r.findings.push(
        Finding::notice(
            Code::LegacyField,
            "",
            if mapped.is_empty() {
                "the file has the 2022 preview form (schema 1.1 and before), read as the current one".to_string()
            } else {
                format!(
                    "the file has the 2022 preview form (schema 1.1 and before), read as the current one: {}",
                    mapped.join(", ")
                )
            },
        )
        .hint("New-AksEdgeConfig of a current release writes the current form"),
    );
    true
}

/// A single-machine cluster in the preview form: AKS Edge Essentials' upgrade of the preview
/// form (AksEdgeDeploy's `UpgradeJsonFormat`) keeps only the service range size, the plugin,
/// `InternetDisabled` and the proxy, so the static LAN fields of the preview template are
/// ignored there (warnings), where a current-form file writing them is refused.
pub(super) fn drop_single_machine_statics(r: &mut Reader, config: &mut Config) {
    let ignored = |r: &mut Reader, canon: &str| {
        let path = r.written(canon);
        r.findings.push(
            Finding::warning(
                Code::IgnoredField,
                &path,
                format!("{path} is ignored on a single-machine cluster (the preview template's static field; the node subnet decides it)"),
            )
            .hint(format!("remove {path}, or set DeployOptions.SingleMachineCluster to false for a multi-machine cluster")),
        );
    };
    let n = &mut config.network;
    if n.control_plane_endpoint_ip.take().is_some() {
        ignored(r, "Network.ControlPlaneEndpointIp");
    }
    if n.ip4_gateway_address.take().is_some() {
        ignored(r, "Network.Ip4GatewayAddress");
    }
    if n.ip4_prefix_length.take().is_some() {
        ignored(r, "Network.Ip4PrefixLength");
    }
    if config.init.service_ip_range_start.take().is_some() {
        ignored(r, "Init.ServiceIPRangeStart");
    }
    for (i, m) in config.machines.iter_mut().enumerate() {
        for (key, node) in [
            ("LinuxNode", &mut m.linux_node),
            ("WindowsNode", &mut m.windows_node),
        ] {
            if let Some(node) = node {
                if node.ip4_address.take().is_some() {
                    ignored(r, &format!("Machines[{i}].{key}.Ip4Address"));
                }
            }
        }
    }
}

/// Schema 1.0 named the distribution at the top level (`KubernetesDistribution`), and
/// AksEdgeDeploy's user config names the product ("AKS Edge Essentials - K8s"); later the
/// installer alone chose it.
pub(super) fn product_distribution(r: &mut Reader, root: &Obj<'_>, config: &mut Config) {
    let mut distro = r.enumeration(
        root,
        "KubernetesDistribution",
        &[("k3s", Distribution::K3s), ("k8s", Distribution::K8s)],
    );
    let mut key = "KubernetesDistribution";
    if distro.is_none() {
        if let Some(Value::String(product)) = root.get("AksEdgeProduct") {
            let p = product.to_ascii_lowercase();
            key = "AksEdgeProduct";
            distro = if p.contains("k8s") {
                Some(Distribution::K8s)
            } else if p.contains("k3s") {
                Some(Distribution::K3s)
            } else {
                None
            };
        }
    }
    if let Some(distro) = distro {
        let path = root.at(key);
        match config.edgenet.distribution {
            None => {
                config.edgenet.distribution = Some(distro);
                r.alias("Edgenet.Distribution", path.clone());
                r.findings.push(
                    Finding::notice(
                        Code::LegacyField,
                        &path,
                        format!(
                            "{path} ({}) is read as Edgenet.Distribution {}",
                            if key == "AksEdgeProduct" {
                                "AksEdgeDeploy's product name"
                            } else {
                                "schema 1.0"
                            },
                            distro.as_str()
                        ),
                    )
                    .hint("current files leave the distribution to Network.NetworkPlugin"),
                );
            }
            Some(d) if d != distro => {
                let current = r.written("Edgenet.Distribution");
                conflict(r, &path, distro.as_str(), &current, d.as_str());
            }
            Some(_) => {}
        }
    }
}

fn conflict(r: &mut Reader, path: &str, value: &str, other: &str, other_value: &str) {
    r.invalid(
        path,
        Finding::error(
            Code::ConflictingFields,
            path,
            format!("{path} is {value}, but {other} is {other_value}"),
        )
        .hint(format!("remove {path}: {other} is the current field")),
    );
}

/// An older field whose value the current field contradicts: both paths named, nothing read
/// from the older one.
fn conflict_both(r: &mut Reader, path: &str, value: &str, current: &str, current_value: &str) {
    r.invalid(
        path,
        Finding::error(
            Code::ConflictingFields,
            path,
            format!("{path} is {value:?}, but {current} is {current_value:?}"),
        )
        .hint(format!(
            "remove {path} (the schema 1.1 form): {current} is the current field"
        )),
    );
}

/// `Network.VSwitch{Name,Type,AdapterName}` (schema 1.1 and before).
pub(super) fn apply(r: &mut Reader, config: &mut Config) {
    let Some(vswitch) = config.network.legacy_vswitch.clone() else {
        return;
    };
    let at = |key: &str| format!("{}.{key}", vswitch.path);
    let mut mapped = Vec::new();
    if let (Some(name), Some(current)) = (&vswitch.name, &config.edgenet.switch_name) {
        if name != current {
            let current_path = r.written("Edgenet.SwitchName");
            conflict_both(r, &at("Name"), name, &current_path, current);
        }
    }
    if let Some(adapter) = &vswitch.adapter_name {
        for (i, m) in config.machines.iter().enumerate() {
            match &m.adapter_name {
                Some(current) if current != adapter => {
                    let current_path =
                        r.written(&format!("Machines[{i}].NetworkConnection.AdapterName"));
                    conflict_both(r, &at("AdapterName"), adapter, &current_path, current);
                }
                _ => {}
            }
        }
    }
    if let Some(name) = &vswitch.name {
        if config.edgenet.switch_name.is_none() {
            if crate::ifname::interface_name_problem(name).is_none() {
                config.edgenet.switch_name = Some(name.clone());
                r.alias("Edgenet.SwitchName", at("Name"));
                mapped.push("Name → Edgenet.SwitchName");
            } else {
                r.findings.push(
                    Finding::notice(
                        Code::LegacyField,
                        at("Name"),
                        format!("the Hyper-V switch name {name:?} is not a Linux interface name; the default bridge name is used"),
                    )
                    .hint("set Edgenet.SwitchName to choose another bridge name"),
                );
            }
        }
    }
    if let (Some(_), false) = (&vswitch.adapter_name, config.is_scalable()) {
        // A single machine's internal switch has no adapter: say so once, here, rather than
        // mapping it to a field that is then ignored.
        r.findings.push(
            Finding::warning(
                Code::IgnoredField,
                at("AdapterName"),
                format!(
                    "{} is ignored on a single-machine cluster: its internal switch has no adapter",
                    at("AdapterName")
                ),
            )
            .hint(format!("remove {}", at("AdapterName"))),
        );
    } else if let Some(adapter) = &vswitch.adapter_name {
        let mut used = false;
        for (i, m) in config.machines.iter_mut().enumerate() {
            if m.adapter_name.is_none() {
                m.adapter_name = Some(adapter.clone());
                r.alias(
                    format!("Machines[{i}].NetworkConnection.AdapterName"),
                    at("AdapterName"),
                );
                used = true;
            }
        }
        if used {
            mapped.push("AdapterName → Machines[].NetworkConnection.AdapterName");
        }
    } else {
        // Machines from the preview form (not written as Machines): their adapter belongs in
        // VSwitch.AdapterName, where a finding about it points.
        for i in 0..config.machines.len() {
            let canon = format!("Machines[{i}].NetworkConnection.AdapterName");
            if config.machines[i].adapter_name.is_none()
                && r.written(&format!("Machines[{i}]")) != format!("Machines[{i}]")
            {
                r.alias(canon, at("AdapterName"));
            }
        }
    }
    if let Some(kind) = &vswitch.kind {
        let expected = match config.deployment_type {
            DeploymentType::SingleMachineCluster => "internal",
            DeploymentType::ScalableCluster => "external",
        };
        if !kind.eq_ignore_ascii_case(expected) {
            r.findings.push(
                Finding::warning(
                    Code::LegacyField,
                    at("Type"),
                    format!(
                        "{} is {kind:?}, but a {} uses an {expected} switch; the type is ignored",
                        at("Type"),
                        config.deployment_type.as_str()
                    ),
                )
                .hint(format!(
                    "remove {}; the deployment type decides the switch",
                    at("Type")
                )),
            );
        }
    }
    if !mapped.is_empty() {
        r.findings.push(
            Finding::notice(
                Code::LegacyField,
                &vswitch.path,
                format!(
                    "{} (schema 1.1 and before) read as current fields ({})",
                    vswitch.path,
                    mapped.join(", ")
                ),
            )
            .hint("move the values to the current fields when convenient"),
        );
    }
}
