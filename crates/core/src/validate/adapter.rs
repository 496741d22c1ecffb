//! Rule group 11: the switch name is a Linux interface name, and an external switch's adapter
//! can be bridged.

use super::{Code, Context, Finding};
use crate::config::Config;

/// Linux `IFNAMSIZ - 1`.
pub const MAX_IFNAME: usize = 15;

/// Why `name` cannot be a Linux interface name, if it cannot.
pub fn interface_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("it is empty".into())
    } else if name.len() > MAX_IFNAME {
        Some(format!(
            "it is {} bytes; Linux allows at most {MAX_IFNAME}",
            name.len()
        ))
    } else if name == "." || name == ".." {
        Some("it is a path component".into())
    } else {
        name.chars()
            .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
            .map(|c| format!("{c:?} is not allowed"))
    }
}

pub(super) fn check(config: &Config, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    if let Some(name) = &config.edgenet.switch_name {
        if let Some(problem) = interface_name_problem(name) {
            out.push(
                Finding::error(
                    Code::SwitchName,
                    "Edgenet.SwitchName",
                    format!("Edgenet.SwitchName is {name:?}: {problem}"),
                )
                .hint("use at most 15 letters, digits, '-' or '_', e.g. \"aksedgesw-ext\""),
            );
        }
    }
    if !config.is_scalable() {
        return;
    }
    let Some(i) = ctx.this_machine(config) else {
        return;
    };
    let (Some(facts), Some(adapter)) = (ctx.facts(), config.machines[i].adapter_name.as_deref())
    else {
        return;
    };
    let path = format!("Machines[{i}].NetworkConnection.AdapterName");
    let switch = config.switch_name();
    let Some(link) = facts.link(adapter) else {
        let wired: Vec<&str> = facts
            .links
            .iter()
            .filter(|l| l.kind.is_none() && !l.wireless && l.name != "lo" && l.mac.is_some())
            .map(|l| l.name.as_str())
            .collect();
        out.push(
            Finding::error(
                Code::AdapterMissing,
                &path,
                format!("{path} is {adapter:?}, but this host has no such interface"),
            )
            .hint(if wired.is_empty() {
                "name one of this host's wired adapters (see `ip link`)".to_string()
            } else {
                format!("wired adapters here: {}", wired.join(", "))
            }),
        );
        return;
    };
    if link.wireless {
        out.push(
            Finding::error(Code::AdapterWireless, &path, format!("{path} is {adapter:?}, a wireless station interface, which Linux cannot bridge"))
                .hint("use a wired adapter (Ethernet) for the external switch"),
        );
    }
    if !link.up {
        out.push(
            Finding::error(
                Code::AdapterDown,
                &path,
                format!("{path} is {adapter:?}, which is down"),
            )
            .hint(format!(
                "bring it up (`ip link set {adapter} up`) and connect it to the LAN"
            )),
        );
    } else if !link.lower_up {
        out.push(
            Finding::warning(
                Code::AdapterDown,
                &path,
                format!("{path} is {adapter:?}, which has no carrier"),
            )
            .hint("check the cable or the switch port"),
        );
    }
    if let Some(master) = &link.master {
        if master != switch {
            out.push(
                Finding::error(Code::AdapterEnslaved, &path, format!("{path} is {adapter:?}, already a port of {master:?}"))
                    .hint(format!("set Edgenet.SwitchName to {master:?} to use that bridge, or release the adapter from it")),
            );
        }
    }
}
