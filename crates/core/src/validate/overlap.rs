//! Rule group 5: the switch subnet, service range and control-plane endpoint stay clear of the
//! distribution's pod and service CIDRs, and an internal subnet clear of the host's networks.

use ipnet::Ipv4Net;

use super::{resolve_subnet, Code, Context, Finding, ResolvedSubnet};
use crate::addressing::{self, overlaps, range_end};
use crate::config::Config;

pub(super) fn check(config: &Config, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let ranges = config.distribution().ranges();
    let distro = config.distribution().as_str();
    let clash = |out: &mut Vec<Finding>, path: &str, what: String, net: Ipv4Net| {
        for (name, reserved) in ranges.reserved() {
            if overlaps(net, reserved) {
                out.push(
                    Finding::error(
                        Code::OverlapsKubernetes,
                        path,
                        format!("{what} overlaps the {distro} {name} {reserved}"),
                    )
                    .hint(format!("choose addresses outside {reserved}")),
                );
            }
        }
    };

    if config.is_scalable() {
        if let Some(lan) = super::checked_lan(config) {
            let path = if config.network.ip4_prefix_length.is_some() {
                "Network.Ip4PrefixLength"
            } else {
                "Network.Ip4GatewayAddress"
            };
            clash(out, path, format!("the LAN {lan}"), lan);
        }
        if let Some(ip) = config.network.control_plane_endpoint_ip {
            clash(
                out,
                "Network.ControlPlaneEndpointIp",
                format!("Network.ControlPlaneEndpointIp {ip}"),
                Ipv4Net::from(ip),
            );
        }
        host_addresses(config, ctx, out);
        let size = config.init.service_ip_range_size.unwrap_or(0);
        if let (Some(start), Some(end)) = (
            config.init.service_ip_range_start,
            config
                .init
                .service_ip_range_start
                .and_then(|s| range_end(s, size)),
        ) {
            for net in ipnet::Ipv4Subnets::new(start, end, 0) {
                clash(
                    out,
                    "Init.ServiceIPRangeStart",
                    format!("the service range {start}–{end}"),
                    net,
                );
            }
        }
        return;
    }

    let path = "Network.Ip4AddressPrefix";
    match resolve_subnet(config, ctx) {
        ResolvedSubnet::Configured(net) => {
            clash(out, path, format!("{path} {net}"), net);
            if let Some(facts) = ctx.facts() {
                for (taken, on) in addressing::host_taken_networks(facts, config.switch_name()) {
                    if overlaps(net, taken) {
                        out.push(
                            Finding::error(Code::OverlapsHostNetwork, path, format!("{path} {net} overlaps {taken} on {on}"))
                                .hint("choose a subnet this host does not use, or leave Ip4AddressPrefix out to pick a free one"),
                        );
                    }
                }
            }
        }
        ResolvedSubnet::NoneFree => out.push(
            Finding::error(
                Code::NoFreeSubnet,
                path,
                "no free /24 is left in 192.168.0.0/16, 172.16.0.0/12 or 10.0.0.0/8 on this host",
            )
            .hint("set Network.Ip4AddressPrefix to a subnet this host does not route"),
        ),
        // Kept from the first deploy: another link that took an address in it since (a new
        // network after a reboot, another deployment's bridge that chose it at the same time)
        // makes two connected routes, and the host's packets to the nodes (the NAT's replies
        // too) take whichever came first: refused, as a configured subnet would be, rather
        // than a deploy that says it is done while the nodes are cut off.
        ResolvedSubnet::Automatic(net) if ctx.deployed_subnet == Some(net) => {
            let Some(facts) = ctx.facts() else { return };
            // This deployment's own bridges (the switch under another name, which the deploy
            // retires first) are not another link.
            let own = |link: &str| {
                link == config.switch_name()
                    || ctx.own_unmarked_switch.as_deref() == Some(link)
                    || facts.link(link).is_some_and(|l| {
                        l.alias.is_some() && l.alias.as_deref() == ctx.own_mark.as_deref()
                    })
            };
            // What makes a second connected route for the subnet: an address with a prefix
            // (not a lone /32, e.g. on `lo`) on a link that is up (a down link's routes are
            // gone; it is checked again when the next deploy runs).
            let routes_into = |a: &&crate::host_facts::HostAddress| {
                a.address.prefix_len() < 32
                    && net.contains(&a.address.addr())
                    && facts.link(&a.link).is_none_or(|l| l.up)
            };
            for a in facts
                .addresses
                .iter()
                .filter(|a| !own(&a.link))
                .filter(routes_into)
            {
                out.push(
                    Finding::error(
                        Code::OverlapsHostNetwork,
                        path,
                        format!(
                            "the switch's subnet {net} (chosen at the first deploy) is also used by {} on {}: the host would reach the nodes through {} instead",
                            a.address, a.link, a.link
                        ),
                    )
                    .hint(format!("move {} to another subnet, or move the nodes: `edgenet remove`, then deploy again to pick a free subnet (or set Network.Ip4AddressPrefix)", a.link)),
                );
            }
        }
        ResolvedSubnet::Automatic(_) | ResolvedSubnet::AutomaticUnchecked(_) => {}
    }
}

/// A node address, the control-plane endpoint or a service IP that this host already has: the
/// deploy's gratuitous ARP (or kube-vip's) would take it away from the host on the LAN.
fn host_addresses(config: &Config, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let Some(facts) = ctx.facts() else { return };
    let on_host = |ip: std::net::Ipv4Addr| {
        facts
            .addresses
            .iter()
            .find(|a| a.address.addr() == ip)
            .map(|a| a.link.clone())
    };
    use super::addresses::ClaimAt;
    let mut claims: Vec<(ClaimAt, std::net::Ipv4Addr)> = super::addresses::scalable_claims(config)
        .into_iter()
        .map(|c| (c.at, c.ip))
        .collect();
    let size = config.init.service_ip_range_size.unwrap_or(0);
    if let Some(start) = config.init.service_ip_range_start {
        if size <= super::addresses::MAX_SERVICE_RANGE {
            let first = u32::from(start);
            for i in 0..size {
                let Some(ip) = first.checked_add(i) else {
                    break;
                };
                claims.push((ClaimAt::Path("Init.ServiceIPRangeStart"), ip.into()));
            }
        }
    }
    for (at, ip) in claims {
        if let Some(link) = on_host(ip) {
            let path = at.to_string();
            let what = if path == "Init.ServiceIPRangeStart" {
                format!("the service range {path}+{size} contains {ip}")
            } else {
                format!("{path} is {ip}")
            };
            out.push(
                Finding::error(
                    Code::AddressIsHost,
                    &path,
                    format!("{what}, an address of this host (on {link})"),
                )
                .hint(format!(
                    "choose a free LAN address: announcing {ip} for a node would take it away from {link}"
                )),
            );
        }
    }
}
