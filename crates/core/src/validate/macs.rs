//! Rule group 6: static MACs are unicast, not zero, and unique on the switch.

use std::collections::HashMap;

use super::{Code, Finding};
use crate::config::Config;
use crate::mac::MacAddr;

pub(super) fn check(config: &Config, out: &mut Vec<Finding>) {
    // Scalable nodes all share the LAN; a single machine has one switch: uniqueness is
    // config-wide in both cases.
    let mut seen: HashMap<MacAddr, String> = HashMap::new();
    for (i, m) in config.machines.iter().enumerate() {
        for (key, node) in [
            ("LinuxNode", &m.linux_node),
            ("WindowsNode", &m.windows_node),
        ] {
            let Some(mac) = node.as_ref().and_then(|n| n.mac_address) else {
                continue;
            };
            let path = format!("Machines[{i}].{key}.MacAddress");
            if mac.is_zero() || mac.is_multicast() {
                let why = if mac.is_zero() {
                    "all zero"
                } else {
                    "a multicast address (lowest bit of the first octet set)"
                };
                out.push(
                    Finding::error(
                        Code::MacNotUnicast,
                        &path,
                        format!("{path} is {mac}, {why}"),
                    )
                    .hint("use a unicast MAC, e.g. a locally administered one starting with 02:"),
                );
                continue;
            }
            if let Some(first) = seen.get(&mac) {
                out.push(
                    Finding::error(
                        Code::MacDuplicate,
                        &path,
                        format!("{path} is {mac}, already used by {first}"),
                    )
                    .hint("give every node its own MAC, or leave MacAddress out to generate one"),
                );
            } else {
                seen.insert(mac, path);
            }
        }
    }
}
