//! Rule group 11: the switch name is a Linux interface name, and an external switch's adapter
//! can be bridged.

use ipnet::Ipv4Net;

use super::{Code, Context, Finding};
use crate::config::Config;
use crate::ifname::interface_name_problem;

/// `invalid-name` when `adapter`, machine `i`'s AdapterName, is no Linux interface name;
/// whether it was.
fn invalid_adapter_name(i: usize, adapter: &str, out: &mut Vec<Finding>) -> bool {
    let Some(problem) = adapter_name_problem(adapter) else {
        return false;
    };
    let path = format!("Machines[{i}].NetworkConnection.AdapterName");
    out.push(
        Finding::error(
            Code::InvalidName,
            &path,
            format!(
                "{path} is {}, which is not a valid Linux interface name ({problem})",
                super::excerpt(adapter)
            ),
        )
        .hint(
            "a Windows adapter name such as \"Ethernet 2\" or \"vEthernet (Ethernet)\" must become the Linux name of the wired adapter: list them with `ip -br link` (e.g. eth0, enp3s0)",
        ),
    );
    true
}

pub(super) fn check(config: &Config, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    if let Some(name) = &config.edgenet.switch_name {
        if let Some(problem) = interface_name_problem(name) {
            out.push(
                Finding::error(
                    Code::SwitchName,
                    "Edgenet.SwitchName",
                    format!("Edgenet.SwitchName is {}: {problem}", super::excerpt(name)),
                )
                .hint("use at most 15 letters, digits, '-' or '_', e.g. \"aksedgesw-ext\""),
            );
        }
    }
    switch_name_in_use(config, ctx, out);
    if !config.is_scalable() {
        return;
    }
    // Whether a name can be a Linux interface name does not depend on the host (B23 F2): the
    // offline check, run before the file goes to the site, says it of every machine; with the
    // host read, of this machine (said in place of "no such interface", and of the kernel's
    // words for such a name).
    if ctx.facts().is_none() {
        for (i, m) in config.machines.iter().enumerate() {
            if let Some(adapter) = m.adapter_name.as_deref() {
                invalid_adapter_name(i, adapter, out);
            }
        }
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
    if invalid_adapter_name(i, adapter, out) {
        return;
    }
    let switch = config.switch_name();
    let named = adapter;
    // The name now belongs to another NIC while the deployment's adapter (found by its MAC)
    // has another name (names swapped at boot): deploying would move the switch to the other
    // NIC, maybe another LAN. Refused, naming both.
    if let Some((_, now)) = ctx
        .deployed_adapters
        .iter()
        .find(|(was, now)| was == named && now != named)
    {
        if facts.link(named).is_some() {
            out.push(
                Finding::error(
                    Code::AdapterRenamed,
                    &path,
                    format!(
                        "{path} is {}: this deployment's adapter, taken under that name, is called {now:?} now (found by its MAC), and {} is another interface",
                        super::excerpt(named),
                        super::excerpt(named)
                    ),
                )
                .hint(format!(
                    "set {path} to {now:?} to keep the deployment's adapter, or run `edgenet remove` first to move the switch to {named:?}"
                )),
            );
            return;
        }
    }
    let adapter = ctx.adapter_now(named);
    if adapter != named {
        out.push(
            Finding::warning(
                Code::AdapterRenamed,
                &path,
                format!(
                    "{path} is {}, which this host does not have; this deployment's adapter is called {adapter:?} now (found by the MAC it had when the deployment took it): deploy keeps it",
                    super::excerpt(named)
                ),
            )
            .hint(format!("set {path} to {adapter:?}")),
        );
    }
    let Some(link) = facts.link(adapter) else {
        if let Some((_, names)) = ctx.ambiguous_adapters.iter().find(|(was, _)| was == named) {
            out.push(
                Finding::error(
                    Code::AdapterMissing,
                    &path,
                    format!(
                        "{path} is {}, which this host does not have, and the MAC this deployment's adapter had is on {} interfaces now: {}",
                        super::excerpt(named),
                        names.len(),
                        names.join(", ")
                    ),
                )
                .hint("set it to the one that connects this host to the LAN"),
            );
            return;
        }
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
                format!(
                    "{path} is {}, but this host has no such interface",
                    super::excerpt(adapter)
                ),
            )
            .hint(if wired.is_empty() {
                "name one of this host's wired adapters (see `ip link`)".to_string()
            } else {
                format!("wired adapters here: {}", wired.join(", "))
            }),
        );
        return;
    };
    // Only an Ethernet link can be a bridge port that carries the LAN: not the loopback, not a
    // layer-3 device (tun, WireGuard, ...) without a MAC.
    let zero_mac = link.mac.as_deref() == Some("00:00:00:00:00:00");
    if adapter == "lo" || link.mac.is_none() || zero_mac {
        let what = if adapter == "lo" || zero_mac {
            "the loopback interface".to_string()
        } else {
            match link.kind.as_deref() {
                Some(kind) => format!("a {kind} interface without an Ethernet address"),
                None => "an interface without an Ethernet address".to_string(),
            }
        };
        out.push(
            Finding::error(
                Code::AdapterNotEthernet,
                &path,
                format!("{path} is {}, {what}, which cannot be the port of {switch}", super::excerpt(adapter)),
            )
            .hint("name the wired (Ethernet) adapter that connects this host to the LAN (see `ip link`)"),
        );
        return;
    }
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
            // The switch of another edgenet deployment (two deployments' adapters swapped):
            // its name is no way out (that deploy would refuse the bridge); its remove is.
            let mark = facts
                .link(master)
                .and_then(|b| b.alias.as_deref())
                .filter(|a| a.starts_with("edgenet:") && ctx.own_mark.as_deref() != Some(*a));
            let finding = match mark {
                Some(mark) => Finding::error(
                    Code::AdapterEnslaved,
                    &path,
                    format!(
                        "{path} is {adapter:?}, already a port of {master:?}, the switch of another edgenet deployment ({}){}",
                        mark.trim_start_matches("edgenet:"),
                        own_words(ctx)
                    ),
                )
                .hint(format!(
                    "name this deployment's own adapter, or free {adapter:?} first: `edgenet remove` with that deployment's --state-dir"
                )),
                None => Finding::error(Code::AdapterEnslaved, &path, format!("{path} is {adapter:?}, already a port of {master:?}"))
                    .hint(format!("set Edgenet.SwitchName to {master:?} to use that bridge, or release the adapter from it")),
            };
            out.push(finding);
        }
    }
    if let Some(lan) = super::checked_lan(config) {
        // Deployed, the adapter's addresses are on the switch it is a port of.
        let on_switch = link.master.as_deref() == Some(switch);
        let held: Vec<Ipv4Net> = facts
            .addresses
            .iter()
            .filter(|a| a.link == adapter || (on_switch && a.link == switch))
            .map(|a| a.address)
            .collect();
        if let Some(what) = lan_mismatch(adapter, &held, lan) {
            // A warning, not an error: two IP subnets on one wire is a legal (if rare) set-up
            // edgenet cannot see, and a boot deploy after a DHCP renumbering must still bring
            // the switch up rather than retry forever; deploy and status say it every run.
            let gw_path = "Network.Ip4GatewayAddress";
            out.push(
                Finding::warning(
                    Code::LanMismatch,
                    gw_path,
                    format!(
                        "{what}, but the config's LAN is {lan} ({gw_path} {}, Network.Ip4PrefixLength {}): the nodes would get addresses their gateway may not answer on",
                        config.network.ip4_gateway_address.map_or(String::new(), |g| g.to_string()),
                        lan.prefix_len()
                    ),
                )
                .hint(format!(
                    "put the adapter's LAN in the config ({gw_path}, Ip4PrefixLength, ControlPlaneEndpointIp, Init.ServiceIPRangeStart and the nodes' Ip4Address in {}), or name the adapter that is on {lan} in {path}; a site renumbered by DHCP needs the new addresses too; ignore this only if {lan} shares this wire on purpose",
                    held[0].trunc()
                )),
            );
        }
    }
}

/// Why `name` cannot be a Linux interface name (at most 15 bytes; no space, `/` or `:`).
pub fn adapter_name_problem(name: &str) -> Option<String> {
    interface_name_problem(name).map(|p| {
        if name.len() > crate::ifname::MAX_IFNAME && name.contains(' ') {
            format!("{p}, and it contains spaces")
        } else {
            p
        }
    })
}

/// Says how `adapter` is off the LAN `lan` when this host holds addresses on it (`held`: on the
/// adapter, or on the switch it is a port of) and none of them is in `lan`; `None` when one is,
/// or when it holds none (DHCP not done yet, or a host without an address there: nothing to
/// compare).
pub fn lan_mismatch(adapter: &str, held: &[Ipv4Net], lan: Ipv4Net) -> Option<String> {
    let overlaps = |a: &Ipv4Net| a.trunc().contains(&lan.network()) || lan.contains(&a.addr());
    if held.is_empty() || held.iter().any(overlaps) {
        return None;
    }
    let list: Vec<String> = held
        .iter()
        .map(|a| format!("{a} (on {})", a.trunc()))
        .collect();
    Some(format!(
        "the adapter {adapter:?} is on another subnet: this host's address there is {}",
        list.join(", ")
    ))
}

/// The switch's name is already taken on this host by something deploy would refuse: an
/// interface that is not a bridge (`lo`, the adapter itself…), or a bridge edgenet did not make
/// (except, on an external switch, the user's bridge that already holds the adapter: deploy
/// uses that one as it is).
fn switch_name_in_use(config: &Config, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let Some(facts) = ctx.facts() else { return };
    let switch = config.switch_name();
    let Some(link) = facts.link(switch) else {
        return;
    };
    let path = "Edgenet.SwitchName";
    let shown = super::excerpt(switch);
    if link.kind.as_deref() != Some("bridge") {
        let what = match (link.name.as_str(), link.kind.as_deref()) {
            ("lo", _) => "the loopback interface".to_string(),
            (_, Some(kind)) => format!("a {kind} interface"),
            (_, None) => "a network device".to_string(),
        };
        out.push(
            Finding::error(
                Code::SwitchName,
                path,
                format!("the switch name {shown} is already {what} on this host, not a bridge"),
            )
            .hint("set Edgenet.SwitchName to a name no interface has (see `ip link`)"),
        );
        return;
    }
    if let Some(mark) = link.alias.as_deref().filter(|a| a.starts_with("edgenet:")) {
        if ctx.own_mark.as_deref() != Some(mark) {
            out.push(
                Finding::error(
                    Code::SwitchName,
                    path,
                    format!(
                        "the switch name {shown} is already the bridge of another edgenet deployment (mark {}: one beside this one with its own state directory, or one whose state directory is gone){}",
                        super::excerpt(mark),
                        own_words(ctx)
                    ),
                )
                .hint(match mark.strip_prefix("edgenet:").filter(|id| {
                    id.len() == 6 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                }) {
                    // An external switch's bridge holds the host's adapter (a port without
                    // the mark) and the host's addresses and routes: `remove --orphan` leaves
                    // it, so the way out is by hand.
                    Some(id) if !foreign_ports(facts, switch, mark).is_empty() => {
                        let ports = foreign_ports(facts, switch, mark);
                        let port = ports[0];
                        format!(
                            "run `edgenet remove` with that deployment's --state-dir; if that deployment is gone, the bridge holds {} (an external switch: the host's addresses and routes are on the bridge, which `edgenet remove --orphan {id}` leaves): move the addresses and routes back to {port} (`ip addr add … dev {port}`, `ip route add … dev {port}`), set `net.ipv6.conf.{port}.disable_ipv6` back to 0, then `ip link del {switch}` and `edgenet remove --orphan {id}` for the rest of it; or set Edgenet.SwitchName to another name",
                            ports.join(", ")
                        )
                    }
                    Some(id) => format!(
                        "run `edgenet remove` with that deployment's --state-dir, or if that deployment is gone `edgenet remove --orphan {id}` (everything carrying its mark here: the bridge, its veths, tables and node namespaces), or set Edgenet.SwitchName to another name"
                    ),
                    None => format!(
                        "run `edgenet remove` with that deployment's --state-dir, or delete the bridge if that deployment is gone (`ip link del {switch}`), or set Edgenet.SwitchName to another name"
                    ),
                }),
            );
        }
        return;
    }
    if ctx.own_unmarked_switch.as_deref() == Some(switch) {
        return;
    }
    if config.is_scalable() {
        let adapter = ctx
            .this_machine(config)
            .and_then(|i| config.machines[i].adapter_name.as_deref());
        if adapter
            .and_then(|a| facts.link(ctx.adapter_now(a)))
            .and_then(|a| a.master.as_deref())
            == Some(switch)
        {
            return;
        }
    }
    out.push(
        Finding::error(
            Code::SwitchName,
            path,
            format!("the switch name {shown} is already a bridge on this host that edgenet did not create"),
        )
        // Never "delete it": a bridge edgenet did not make is another tool's (docker0, virbr0).
        .hint("set Edgenet.SwitchName to a name no interface has (see `ip link`)"),
    );
}

/// Which deployment the state directory holds, for a refusal naming another deployment's
/// object: with two deployments' state directories or configs swapped, the ids tell which.
fn own_words(ctx: &Context<'_>) -> String {
    match ctx
        .own_mark
        .as_deref()
        .and_then(|m| m.strip_prefix("edgenet:"))
    {
        Some(id) => format!("; this state directory holds deployment {id}"),
        None => "; this state directory holds no deployment".to_string(),
    }
}

/// The ports of bridge `switch` that do not carry its mark `mark` (the host's adapter of an
/// external switch).
fn foreign_ports<'a>(
    facts: &'a crate::host_facts::HostFacts,
    switch: &str,
    mark: &str,
) -> Vec<&'a str> {
    facts
        .links
        .iter()
        .filter(|l| l.master.as_deref() == Some(switch) && l.alias.as_deref() != Some(mark))
        .map(|l| l.name.as_str())
        .collect()
}
