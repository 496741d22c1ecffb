//! Rule group 3: subnet sanity — no host bits, and room for every fixed address.

use super::{Code, Finding};
use crate::addressing::{highest_internal_suffix, widest_prefix_for};
use crate::config::Config;

pub(super) fn check(config: &Config, out: &mut Vec<Finding>) {
    if config.is_scalable() {
        if let Some(p) = config.network.ip4_prefix_length {
            // AKS EE's schema accepts 1–31; a /31 LAN (RFC 3021) has no room for the gateway,
            // the control-plane endpoint and a node, so it is refused as too small.
            if !(1..=31).contains(&p) {
                out.push(
                    Finding::error(
                        Code::InvalidCidr,
                        "Network.Ip4PrefixLength",
                        format!("Network.Ip4PrefixLength is {p}; expected 1 to 31"),
                    )
                    .hint("use the LAN's prefix length, e.g. 24"),
                );
            } else if p > 30 {
                out.push(
                    Finding::error(
                        Code::SubnetTooSmall,
                        "Network.Ip4PrefixLength",
                        format!("Network.Ip4PrefixLength is {p}: a /{p} LAN holds 2 addresses, too few for the gateway, the control-plane endpoint and a node"),
                    )
                    .hint("use the LAN's real prefix length, e.g. 24 (at most 29 for gateway, endpoint, a node and the network and broadcast addresses)"),
                );
            }
        }
        return;
    }
    let Some(net) = config.network.ip4_address_prefix else {
        return;
    };
    let path = "Network.Ip4AddressPrefix";
    if net.addr() != net.network() {
        out.push(
            Finding::error(
                Code::PrefixHostBits,
                path,
                format!("{path} is {net}, which has host bits set"),
            )
            .hint(format!("write the network address: \"{}\"", net.trunc())),
        );
    }
    if let Some(why) = super::addresses::non_unicast_reason(net.network()) {
        out.push(
            Finding::error(
                Code::AddressNotUnicast,
                path,
                format!("{path} is {net}, {why}"),
            )
            .hint("use a private range such as 192.168.0.0/24"),
        );
    }
    let windows = config.machines.iter().any(|m| m.windows_node.is_some());
    let size = config
        .init
        .service_ip_range_size
        .unwrap_or(0)
        .min(super::addresses::MAX_SERVICE_RANGE);
    let highest = highest_internal_suffix(windows, size);
    let needed = widest_prefix_for(highest);
    if net.prefix_len() > needed {
        let what = match (windows, size) {
            (false, 0) => "the host (.1) and the Linux node (.2)".to_string(),
            (true, 0) => "the host (.1), the Linux node (.2) and the Windows node (.3)".to_string(),
            (_, n) => format!("the host, the nodes and {n} service IPs (up to .{highest})"),
        };
        out.push(
            Finding::error(
                Code::SubnetTooSmall,
                path,
                format!("{path} is {net}, too small for {what}"),
            )
            .hint(format!(
                "use a /{needed} or larger, e.g. \"{}/{needed}\"",
                net.trunc().network()
            )),
        );
    }
}
