//! The preview form `Network.VSwitch{Name,Type,AdapterName}`, mapped onto current fields.

use super::reader::Reader;
use super::{Config, DeploymentType};
use crate::validate::{Code, Finding};

pub(super) fn apply(r: &mut Reader, config: &mut Config) {
    let Some(vswitch) = config.network.legacy_vswitch.clone() else {
        return;
    };
    let mut mapped = Vec::new();
    if let Some(name) = &vswitch.name {
        if config.edgenet.switch_name.is_none() {
            if crate::validate::interface_name_problem(name).is_none() {
                config.edgenet.switch_name = Some(name.clone());
                mapped.push("Name → Edgenet.SwitchName");
            } else {
                r.findings.push(
                    Finding::notice(
                        Code::LegacyField,
                        "Network.VSwitch.Name",
                        format!("the Hyper-V switch name {name:?} is not a Linux interface name; the default bridge name is used"),
                    )
                    .hint("set Edgenet.SwitchName to choose another bridge name"),
                );
            }
        }
    }
    if let Some(adapter) = &vswitch.adapter_name {
        let mut used = false;
        for m in &mut config.machines {
            if m.adapter_name.is_none() {
                m.adapter_name = Some(adapter.clone());
                used = true;
            }
        }
        if used {
            mapped.push("AdapterName → Machines[].NetworkConnection.AdapterName");
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
                    "Network.VSwitch.Type",
                    format!(
                        "Network.VSwitch.Type is {kind:?}, but a {} uses an {expected} switch; the type is ignored",
                        config.deployment_type.as_str()
                    ),
                )
                .hint("remove Network.VSwitch.Type; the deployment type decides the switch"),
            );
        }
    }
    if !mapped.is_empty() {
        r.findings.push(
            Finding::notice(
                Code::LegacyField,
                "Network.VSwitch",
                format!(
                    "preview form Network.VSwitch read as current fields ({})",
                    mapped.join(", ")
                ),
            )
            .hint("move the values to the current fields when convenient"),
        );
    }
}
