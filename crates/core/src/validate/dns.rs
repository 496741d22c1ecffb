//! Rule group 8: DNS servers a node can really use.

use super::addresses::non_unicast_reason;
use super::{Code, Context, Finding};
use crate::config::Config;

pub(super) fn check(config: &Config, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let path = "Network.DnsServers";
    if let Some(servers) = &config.network.dns_servers {
        too_many(path, servers.len(), "", out);
        for (i, ip) in servers.iter().enumerate() {
            let at = format!("{path}[{i}]");
            // Listed twice: the resolver asks it twice and the entry takes one of the 3 slots.
            if let Some(first) = servers[..i].iter().position(|s| s == ip) {
                out.push(
                    Finding::warning(
                        Code::DnsDuplicate,
                        &at,
                        format!("{at} is {ip}, already listed as {path}[{first}]"),
                    )
                    .hint(format!("remove {at}")),
                );
            }
            if ip.is_loopback() {
                out.push(
                    Finding::error(Code::DnsLoopback, &at, format!("{at} is {ip}, a loopback resolver the nodes cannot reach"))
                        .hint("name the upstream servers (with systemd-resolved: the ones in /run/systemd/resolve/resolv.conf), or leave DnsServers out to use them automatically"),
                );
            } else if let Some(why) = non_unicast_reason(*ip) {
                out.push(
                    Finding::error(Code::AddressNotUnicast, &at, format!("{at} is {ip}, {why}"))
                        .hint("use the unicast address of a DNS server"),
                );
            }
        }
        return;
    }
    let Some(facts) = ctx.facts() else { return };
    let dns = &facts.dns;
    if dns.servers.is_empty() {
        if config.network.internet_disabled {
            return;
        }
        let why = dns
            .problem
            .clone()
            .unwrap_or_else(|| "the host has no usable DNS server".into());
        out.push(
            Finding::error(
                Code::DnsNotFound,
                path,
                format!("Network.DnsServers is not set and {why}"),
            )
            .hint("set Network.DnsServers, e.g. [\"192.168.1.1\"]"),
        );
    } else if dns.servers.len() > MAXNS {
        too_many(
            path,
            dns.servers.len(),
            &format!(
                " (not set: the host's from {})",
                dns.source.as_deref().unwrap_or("the host")
            ),
            out,
        );
    } else if !dns.loopback_skipped.is_empty() {
        let skipped: Vec<String> = dns
            .loopback_skipped
            .iter()
            .map(|ip| ip.to_string())
            .collect();
        let servers: Vec<String> = dns.servers.iter().map(|ip| ip.to_string()).collect();
        out.push(Finding::notice(
            Code::DnsLoopback,
            path,
            format!(
                "the host resolves through {} (loopback); nodes get its upstream servers {} from {}",
                skipped.join(", "),
                servers.join(", "),
                dns.source.as_deref().unwrap_or("the host")
            ),
        ));
    }
}

/// glibc's resolver reads at most this many `nameserver` lines (`MAXNS` in resolv.h).
pub const MAXNS: usize = 3;

fn too_many(path: &str, count: usize, whose: &str, out: &mut Vec<Finding>) {
    if count > MAXNS {
        out.push(
            Finding::warning(
                Code::DnsTooMany,
                path,
                format!("{path} has {count} servers{whose}; the nodes' resolver (glibc) uses only the first {MAXNS}"),
            )
            .hint(format!("keep the {MAXNS} most reliable servers, first the one to try first")),
        );
    }
}
