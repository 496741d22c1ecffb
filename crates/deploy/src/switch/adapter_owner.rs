//! One owner per link. An external switch moves the adapter's configuration to its bridge; a
//! network manager or DHCP client that still owns the adapter would renew its lease on the
//! adapter (where, as a bridge port, it cannot be used) or put the configuration back, and
//! the two would fight. So edgenet takes the adapter over only when nothing else configures
//! it; otherwise it refuses before touching anything, with the manager's own way of making
//! the bridge (a bridge with the adapter as its port is then used as it is, and the manager
//! keeps configuring it: DHCP renews on the bridge, which has the adapter's MAC, so the
//! lease stays the same).

use edgenet_core::mac::MacAddr;
use edgenet_host::net_manager::{dhcp_clients, managers_of, Manager, ManagerPaths};

use crate::error::DeployError;
use crate::kernel::Kernel;

/// Set to `1` when the adapter's manager has been told to leave it alone in a way edgenet
/// cannot see (e.g. a `.network` file with `KeepConfiguration=`); edgenet then takes it over.
pub const IGNORE_ENV: &str = "EDGENET_IGNORE_ADAPTER_MANAGER";

thread_local! {
    /// The adapter, bridge and network namespace a run found no other owner of just before it
    /// locked its state directory ([`note_cleared`]), until its deploy takes it.
    static CLEARED: std::cell::RefCell<Option<Cleared>> = const { std::cell::RefCell::new(None) };
}

type Cleared = (String, String, Option<(u64, u64)>);

/// Records that nothing else configures `adapter` (for `bridge`) in this network namespace,
/// as found a moment ago by a run about to lock its state directory and deploy: that deploy
/// then does not scan every process of the host again (see [`take_cleared`]).
pub fn note_cleared(adapter: &str, bridge: &str) {
    let here = edgenet_host::netns::current_id().ok();
    CLEARED.with(|c| *c.borrow_mut() = Some((adapter.into(), bridge.into(), here)));
}

/// Whether this thread's run found no other owner of `adapter` (for `bridge`) in this network
/// namespace just before it locked ([`note_cleared`]); the record is used up either way, so
/// each check serves one deploy.
pub fn take_cleared(adapter: &str, bridge: &str) -> bool {
    let Some((a, b, ns)) = CLEARED.with(|c| c.borrow_mut().take()) else {
        return false;
    };
    a == adapter && b == bridge && ns.is_some() && ns == edgenet_host::netns::current_id().ok()
}

/// The places read, from the environment (for tests and unusual installs) or the defaults.
pub fn paths_from_env() -> ManagerPaths {
    let mut p = ManagerPaths::default();
    let mut given = false;
    for (var, field) in [
        ("EDGENET_NM_RUN_DIR", &mut p.network_manager),
        ("EDGENET_NETWORKD_RUN_DIR", &mut p.networkd),
        ("EDGENET_IFUPDOWN_INTERFACES", &mut p.ifupdown),
    ] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            *field = v.into();
            given = true;
        }
    }
    if let Some(v) = std::env::var_os("EDGENET_PROC_DIR").filter(|v| !v.is_empty()) {
        p.proc = v.into();
    }
    p.system_managers = given || edgenet_host::net_manager::in_host_netns(&p.proc);
    p
}

/// Refuses to take `adapter` over for bridge `bridge` while something else configures it.
/// An adapter that is already a bridge port (ours from an earlier deploy, or a bridge the
/// manager made) is not taken over again, so it is not asked about.
pub fn ensure_sole_owner(
    nl: &mut dyn Kernel,
    adapter: &str,
    bridge: &str,
    paths: &ManagerPaths,
) -> Result<(), DeployError> {
    if std::env::var(IGNORE_ENV).is_ok_and(|v| v == "1") {
        return Ok(());
    }
    let Some(link) = nl.link(adapter)? else {
        return Ok(()); // deploy reports a missing adapter itself
    };
    if let Some(master) = link.master.as_deref() {
        // A port is not taken over again; but a DHCP client on it renews a lease nobody can
        // use (the bridge takes every frame) and fights the switch: the same refusal.
        let clients = dhcp_clients(&paths.proc, adapter);
        let Some(Manager::DhcpClient { pid, command, .. }) = clients.first() else {
            return Ok(());
        };
        return Err(DeployError::AdapterManaged {
            message: format!(
                "{} configures {adapter}, a port of {master}: its address and lease renewals on the port are unreachable, and it fights the switch. Nothing was changed",
                describe(&clients[0])
            ),
            fix: format!(
                "stop it (`kill {pid}`) and start it on the bridge instead: `{}` (the bridge has {adapter}'s MAC, so the lease stays the same); then run `edgenet deploy` again",
                on_bridge(command, adapter, master)
            ),
        });
    }
    let managers = managers_of(paths, adapter, link.index);
    let Some(first) = managers.first() else {
        return Ok(());
    };
    let config = nl.link_config(adapter)?;
    let addresses = config.address_strings();
    let ipv4 = match first {
        Manager::NetworkManager => nm_ipv4(&config, &host_dns_from_env()),
        _ => String::new(),
    };
    Err(DeployError::AdapterManaged {
        message: format!(
            "{} configures {adapter}{}; as the port of {bridge} the adapter cannot keep its configuration, and two owners would fight over it. Nothing was changed",
            describe(first),
            if managers.len() > 1 {
                format!(
                    " (and {})",
                    managers[1..]
                        .iter()
                        .map(describe)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                String::new()
            }
        ),
        fix: fix(first, adapter, bridge, link.mac, &addresses, &ipv4),
    })
}

/// The host's DNS servers for a NetworkManager recipe: the resolver files deploy reads
/// (`EDGENET_RESOLV_CONF`, `EDGENET_UPSTREAM_RESOLV_CONF`, else the system's), loopback
/// resolvers set aside (systemd-resolved's upstream list followed).
fn host_dns_from_env() -> Vec<std::net::Ipv4Addr> {
    let path = |var: &str, default: &str| {
        std::path::PathBuf::from(
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.into()),
        )
    };
    edgenet_host::resolv::read_host_dns(
        &path("EDGENET_RESOLV_CONF", edgenet_host::resolv::ETC_RESOLV_CONF),
        &path(
            "EDGENET_UPSTREAM_RESOLV_CONF",
            edgenet_host::resolv::SYSTEMD_RESOLV_CONF,
        ),
    )
    .servers
}

/// The `ipv4.*` settings of NetworkManager's bridge connection that keep the adapter's IPv4
/// addressing (B23 F12): `ipv4.method manual` with its addresses, default gateway and the
/// host's DNS servers when every IPv4 address on it is permanent (configured statically: a
/// bridge on `auto` would move the host to DHCP and lose its address); `auto` when one is
/// dynamic (a lease) or it has none.
fn nm_ipv4(config: &edgenet_host::link_config::LinkConfig, dns: &[std::net::Ipv4Addr]) -> String {
    use netlink_packet_route::address::AddressAttribute;
    use netlink_packet_route::route::{RouteAddress, RouteAttribute};
    use netlink_packet_route::AddressFamily;
    let v4: Vec<_> = config
        .addresses
        .iter()
        .filter(|a| a.header.family == AddressFamily::Inet)
        .collect();
    let dynamic = v4.iter().any(|a| {
        a.attributes
            .iter()
            .any(|x| matches!(x, AddressAttribute::CacheInfo(ci) if ci.ifa_valid != u32::MAX))
    });
    if v4.is_empty() || dynamic {
        return "ipv4.method auto".into();
    }
    let addresses: Vec<String> = v4
        .iter()
        .filter_map(|a| {
            let ip = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })?;
            Some(format!("{ip}/{}", a.header.prefix_len))
        })
        .collect();
    let gateway = config.routes.iter().find_map(|r| {
        if r.header.address_family != AddressFamily::Inet || r.header.destination_prefix_length != 0
        {
            return None;
        }
        let mut table = u32::from(r.header.table);
        let mut via = None;
        for x in &r.attributes {
            match x {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => via = Some(*g),
                _ => {}
            }
        }
        via.filter(|_| table == 254)
    });
    let mut out = format!("ipv4.method manual ipv4.addresses {}", addresses.join(","));
    if let Some(g) = gateway {
        out.push_str(&format!(" ipv4.gateway {g}"));
    }
    if !dns.is_empty() {
        let dns: Vec<String> = dns.iter().map(|d| d.to_string()).collect();
        out.push_str(&format!(" ipv4.dns {}", dns.join(",")));
    }
    out
}

/// `remove` deletes the bridge of an external switch it made: a DHCP client started on that
/// bridge (as deploy's advice says) would lose its link and keep running on nothing, and the
/// adapter would come back without a client. Refuses, changing nothing, naming the client and
/// what to do; `remove --force` skips this.
pub fn ensure_no_client_on_bridge(
    state: &crate::state::DeploymentState,
    paths: &ManagerPaths,
) -> Result<(), DeployError> {
    for record in state.objects.iter().filter_map(super::AdapterRecord::of) {
        let (adapter, bridge) = (record.adapter.name.as_str(), record.bridge.as_str());
        let clients = dhcp_clients(&paths.proc, bridge);
        let Some(Manager::DhcpClient { pid, command, .. }) = clients.first() else {
            continue;
        };
        return Err(DeployError::AdapterManaged {
            message: format!(
                "{} configures {bridge}, the bridge remove is about to delete (it gives {adapter} its configuration back); the client would keep running on a link that is gone. Nothing was changed",
                describe(&clients[0])
            ),
            fix: format!(
                "stop it (`kill {pid}`), run `edgenet remove`, then start it on the adapter again: `{}`; or `edgenet remove --force` to remove anyway",
                on_bridge(command, bridge, adapter)
            ),
        });
    }
    Ok(())
}

/// The manager as messages name it.
pub fn describe(m: &Manager) -> String {
    match m {
        Manager::NetworkManager => "NetworkManager".into(),
        Manager::Networkd { network_file } => match network_file {
            Some(f) => format!("systemd-networkd ({f})"),
            None => "systemd-networkd".into(),
        },
        Manager::Ifupdown { stanza, file } => {
            format!("ifupdown (`{stanza}` in {})", file.display())
        }
        Manager::DhcpClient { program, pid, .. } => {
            format!("the DHCP client {program} (pid {pid})")
        }
    }
}

/// The manager's own recipe for the bridge; edgenet then uses that bridge as it is.
fn fix(
    m: &Manager,
    adapter: &str,
    bridge: &str,
    mac: Option<MacAddr>,
    addresses: &[String],
    nm_ipv4: &str,
) -> String {
    let mac = mac
        .map(|m| m.to_string())
        .unwrap_or_else(|| "<MAC of the adapter>".into());
    let then = "then run `edgenet deploy` again: it uses a bridge that has the adapter as its port as it is";
    match m {
        Manager::NetworkManager => format!(
            "let NetworkManager own the bridge, with {adapter} as its port and {adapter}'s addressing on it:\n  \
             nmcli connection add type bridge ifname {bridge} con-name {bridge} bridge.stp no bridge.mac-address {mac} {nm_ipv4}\n  \
             nmcli connection add type bridge-slave ifname {adapter} master {bridge}\n  \
             nmcli connection up {bridge}\n\
             ({}); {then}",
            if nm_ipv4.starts_with("ipv4.method manual") {
                format!("{adapter}'s addresses are static: the bridge keeps them, its gateway and DNS")
            } else {
                format!("{adapter} has no static IPv4 address: the bridge asks DHCP with {adapter}'s MAC, so a lease stays the same")
            }
        ),
        Manager::Networkd { network_file } => format!(
            "let systemd-networkd own the bridge: write /etc/systemd/network/50-{bridge}.netdev:\n  \
             [NetDev]\n  Name={bridge}\n  Kind=bridge\n  MACAddress={mac}\n\
             change the [Network] section of {} to only `Bridge={bridge}`, move its addressing (DHCP=, Address=, Gateway=) to /etc/systemd/network/50-{bridge}.network with [Match] Name={bridge}, \
             run `networkctl reload`; {then}",
            network_file.as_deref().unwrap_or("the adapter's .network file")
        ),
        Manager::Ifupdown { stanza, file } => format!(
            "let ifupdown own the bridge (package bridge-utils): in {} replace `{stanza}` by\n  \
             iface {adapter} inet manual\n  \
             auto {bridge}\n  \
             iface {bridge} {}\n      bridge_ports {adapter}\n      bridge_stp off\n      hwaddress ether {mac}\n\
             (with the address lines of {adapter}'s stanza), then switch over in one go: over SSH `ifdown {adapter}` drops your session before `ifup {bridge}` runs, so run both detached,              `systemd-run --unit=edgenet-ifswitch sh -c 'ifdown {adapter} && ifup {bridge}'` (or `nohup sh -c 'ifdown {adapter} && ifup {bridge}' >/dev/null 2>&1 &`); {then}",
            file.display(),
            stanza
                .split_whitespace()
                .skip(2)
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Manager::DhcpClient { pid, command, .. } => format!(
            "stop the client on {adapter} (`kill {pid}`; its address{} stays until the lease ends), run `edgenet deploy`, then start the client on the bridge instead: `{}`. \
             The bridge has {adapter}'s MAC, so the DHCP server renews the same lease. Before `edgenet remove`, stop it again and start it on {adapter} afterwards",
            if addresses.is_empty() { String::new() } else { format!(" {}", addresses.join(", ")) },
            on_bridge(command, adapter, bridge),
        ),
    }
}

/// The client's command line with the adapter replaced by the bridge.
fn on_bridge(command: &str, adapter: &str, bridge: &str) -> String {
    let words: Vec<String> = command
        .split(' ')
        .map(|w| {
            if w == adapter {
                bridge.to_string()
            } else if w.strip_prefix("-i") == Some(adapter) {
                format!("-i{bridge}")
            } else if w.strip_prefix("--interface=") == Some(adapter) {
                format!("--interface={bridge}")
            } else {
                w.to_string()
            }
        })
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A check made just before the lock serves the one deploy of the same adapter and bridge
    /// in the same network namespace that follows it on this thread, and no other.
    #[test]
    fn a_check_before_the_lock_serves_one_deploy_of_the_same_adapter() {
        std::thread::spawn(|| {
            assert!(!take_cleared("up0", "br0"), "nothing noted");
            note_cleared("up0", "br0");
            assert!(take_cleared("up0", "br0"));
            assert!(!take_cleared("up0", "br0"), "used up");
            note_cleared("up0", "br0");
            assert!(!take_cleared("up1", "br0"), "another adapter");
            assert!(!take_cleared("up0", "br0"), "used up by the other");
            note_cleared("up0", "br0");
            assert!(!take_cleared("up0", "br1"), "another bridge");
            note_cleared("up0", "br0");
            std::thread::spawn(|| assert!(!take_cleared("up0", "br0"), "another thread"))
                .join()
                .unwrap();
            // Another network namespace (this thread's own, gone with it).
            edgenet_host::netns::unshare_thread().unwrap();
            assert!(!take_cleared("up0", "br0"), "another network namespace");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_client_fix_names_the_same_command_on_the_bridge() {
        let m = Manager::DhcpClient {
            program: "udhcpc".into(),
            pid: 42,
            command: "udhcpc -f -i up0 -s /x".into(),
        };
        let text = fix(&m, "up0", "br0", None, &["198.18.0.50/24".into()], "");
        assert!(text.contains("kill 42"), "{text}");
        assert!(text.contains("`udhcpc -f -i br0 -s /x`"), "{text}");
        assert!(text.contains("198.18.0.50/24"), "{text}");
        let m = Manager::Ifupdown {
            stanza: "iface up0 inet static".into(),
            file: "/etc/network/interfaces".into(),
        };
        let text = fix(&m, "up0", "br0", None, &[], "");
        assert!(text.contains("over SSH"), "{text}");
        assert!(
            text.contains("systemd-run --unit=edgenet-ifswitch sh -c 'ifdown up0 && ifup br0'"),
            "{text}"
        );
    }

    #[test]
    fn the_ifupdown_fix_keeps_the_method() {
        let m = Manager::Ifupdown {
            stanza: "iface up0 inet dhcp".into(),
            file: "/etc/network/interfaces".into(),
        };
        let text = fix(&m, "up0", "br0", None, &[], "");
        assert!(text.contains("iface br0 inet dhcp"), "{text}");
        assert!(text.contains("bridge_ports up0"), "{text}");
    }
}
