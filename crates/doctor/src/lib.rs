//! `edgenet doctor`: what a person would check by hand, from inside each node and on the host,
//! one line per check with PASS/WARN/FAIL and the fix. Probes go through edgenet-host; the
//! judging of what they saw ([`firewall`], [`rendered`]) is pure.
//!
//! Checks that need the path off the switch are not run (SKIP, naming the cause) when that
//! path is already known to be broken — a missing default route or a host firewall dropping
//! forwarded traffic — so one fault gives one FAIL with its fix.

pub mod firewall;
mod inside;
pub mod rendered;
mod report;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use edgenet_core::mac::MacAddr;
use edgenet_core::plan::{NodeKind, NodePlan, Outbound, Plan, SwitchKind};
use edgenet_host::netlink::Netlink;
use edgenet_host::probes;

use inside::Inside;

pub use report::{Check, Report, Status, DOCTOR_SCHEMA};

/// The node's interface inside its namespace.
pub const NODE_IFNAME: &str = "eth0";

/// A deployed node and where its files are.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    pub plan: NodePlan,
    pub netns: String,
    pub resolv_conf: PathBuf,
    pub proxy_env: PathBuf,
    /// The MAC it should have (static, or the one generated at deploy).
    pub mac: Option<MacAddr>,
    /// A `vm` node: its QEMU guest agent's socket, through which every check runs inside
    /// the guest (`netns` is then the guest's name); `None`: a netns node.
    pub guest_agent: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// A name every DNS server must resolve; `None`: any answer counts.
    pub probe_name: Option<String>,
    /// A URL for the egress check; `None`: not run.
    pub probe_url: Option<String>,
    /// `render --out DIR` to compare with the plan instead of the node's own files (`/`).
    pub rendered_root: Option<PathBuf>,
    pub timeout: Duration,
    /// The nftables table deploy made (NAT and the switch's rules); `None`: not checked.
    pub edgenet_table: Option<String>,
    /// How long to wait for a VM node's guest agent that does not answer yet.
    pub guest_agent_wait: Duration,
    /// How edgenet's tables differ from the plan (one line per table, as `status` says it):
    /// a table that is loaded but different fails `edgenet-firewall` too.
    pub edgenet_table_drift: Vec<String>,
    /// On an external switch, what of the host's configuration recorded for the adapter (its
    /// addresses, its default and other routes) the host lacks now; `None`: not checked.
    pub host_config_missing: Option<Vec<String>>,
    /// On an external switch, its adapter when it is up without carrier (nothing on the
    /// wire): what a gateway that does not answer points at.
    pub adapter_without_carrier: Option<String>,
}

impl Default for DoctorOptions {
    fn default() -> Self {
        DoctorOptions {
            probe_name: None,
            probe_url: None,
            rendered_root: None,
            timeout: Duration::from_secs(2),
            edgenet_table: None,
            guest_agent_wait: Duration::from_secs(0),
            edgenet_table_drift: Vec::new(),
            host_config_missing: None,
            adapter_without_carrier: None,
        }
    }
}

/// Runs every check of this machine.
pub fn doctor(plan: &Plan, nodes: &[NodeHandle], opts: &DoctorOptions) -> Report {
    let mut checks = host_checks(plan, opts);
    let failed = |name: &str| {
        checks
            .iter()
            .any(|c| c.check == name && c.status == Status::Fail)
    };
    // Why the host does not pass the nodes' traffic on, if it does not: the checks that
    // need it are skipped naming this, so the one fault is one FAIL.
    let switch_mtu_wrong = failed("bridge-mtu");
    let host_blocker = if failed("ip-forward") {
        Some("the host does not forward IPv4 (see ip-forward)")
    } else if checks.iter().any(|c| {
        c.check == "edgenet-firewall"
            && c.status == Status::Fail
            && c.fix.as_deref() != Some(DRIFT_FIX)
    }) {
        Some("edgenet's nftables table (NAT) is missing or dormant (see edgenet-firewall)")
    } else if failed("host-firewall") {
        Some("the host firewall drops forwarded traffic (see host-firewall)")
    } else {
        None
    };
    // The switch's bridge lost the host's configuration (set down by hand): every node's path
    // through it is the same fault, said once by `uplink`.
    let switch_blocker = failed("uplink")
        .then_some("the switch's bridge lost the host's configuration (see uplink)");
    checks.push(duplicate_addresses(plan, nodes, opts));
    let mut endpoint_done = false;
    for node in nodes {
        let inside = Inside::enter(node, opts.guest_agent_wait);
        let mut node_checks = node_checks(
            plan,
            node,
            inside.as_ref(),
            opts,
            host_blocker,
            switch_blocker,
            switch_mtu_wrong,
        );
        if let (false, NodeKind::Linux, Ok(inside)) = (endpoint_done, node.plan.kind, &inside) {
            node_checks.push(endpoint_check(plan, node, inside, opts, &node_checks));
            endpoint_done = true;
        }
        checks.extend(node_checks);
    }
    Report::new(&plan.machine.name, checks)
}

fn host_checks(plan: &Plan, opts: &DoctorOptions) -> Vec<Check> {
    let mut out = Vec::new();
    if plan.switch.outbound == Outbound::Nat {
        out.push(match edgenet_host::sysctl::read("net.ipv4.ip_forward") {
            Ok(v) if v == "1" => Check::pass(
                "host",
                "ip-forward",
                "net.ipv4.ip_forward = 1 (NAT for the nodes)",
            ),
            Ok(v) => Check::fail(
                "host",
                "ip-forward",
                format!("net.ipv4.ip_forward = {v}: the host does not route the nodes' traffic"),
                "edgenet deploy (sets it), or sysctl -w net.ipv4.ip_forward=1",
            ),
            Err(e) => Check::fail("host", "ip-forward", e.to_string(), "run doctor as root"),
        });
    }
    // The host's own uplink rides the external switch: a bridge set down by hand takes the
    // default route with it, and nothing else here would notice.
    if let (Some(missing), Some(adapter)) = (&opts.host_config_missing, &plan.switch.adapter) {
        let bridge = &plan.switch.name;
        out.push(if missing.is_empty() {
            Check::pass(
                "host",
                "uplink",
                format!("the host's addresses and routes recorded for {adapter} are in place"),
            )
        } else {
            Check::fail(
                "host",
                "uplink",
                format!(
                    "the host lacks {} (recorded when {adapter}'s configuration moved to {bridge}; a bridge set down loses its routes): it may have lost its uplink",
                    missing.join(", ")
                ),
                "edgenet deploy (puts them back on the bridge)",
            )
        });
    }
    let bridge_nf = edgenet_host::sysctl::read("net.bridge.bridge-nf-call-iptables").ok();
    out.push(match bridge_nf.as_deref() {
        Some("1") => Check::pass(
            "host",
            "bridge-nf",
            "bridge-nf-call-iptables = 1, as kube-proxy and the CNI need (bridged traffic also meets the host's iptables: see host-firewall)",
        ),
        Some(v) => Check::warn(
            "host",
            "bridge-nf",
            format!("bridge-nf-call-iptables = {v}: kube-proxy's rules miss bridged pod traffic"),
        )
        .fix("sysctl -w net.bridge.bridge-nf-call-iptables=1 (and in /etc/sysctl.d/ to keep it)"),
        None => Check::warn(
            "host",
            "bridge-nf",
            "br_netfilter is not loaded: Kubernetes needs bridge-nf-call-iptables = 1",
        )
        .fix("modprobe br_netfilter && echo br_netfilter > /etc/modules-load.d/k8s.conf; sysctl -w net.bridge.bridge-nf-call-iptables=1"),
    });
    if let Some(mtu) = plan.switch.mtu {
        let links = Netlink::open()
            .and_then(|mut nl| nl.links())
            .map_err(|e| e.to_string());
        let seen = links.map(|links| {
            let bridge = links.iter().find(|l| l.name == plan.switch.name).cloned();
            // A Linux bridge takes the smallest MTU of its ports: name the ports below the plan.
            let small: Vec<String> = links
                .iter()
                .filter(|l| l.master.as_deref() == Some(plan.switch.name.as_str()) && l.mtu < mtu)
                .map(|l| format!("port {} has MTU {}", l.name, l.mtu))
                .collect();
            bridge.map(|b| (b, small))
        });
        out.push(match seen {
            Ok(Some((link, small))) if link.mtu == mtu && small.is_empty() => Check::pass(
                "host",
                "bridge-mtu",
                format!("{} and its ports have MTU {mtu}", plan.switch.name),
            ),
            Ok(Some((link, small))) => Check::fail(
                "host",
                "bridge-mtu",
                format!(
                    "{} has MTU {}, the plan says {mtu}{}",
                    plan.switch.name,
                    link.mtu,
                    if small.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " ({}; a bridge takes its smallest port's MTU)",
                            small.join(", ")
                        )
                    }
                ),
                format!("edgenet deploy (repairs drift), or ip link set <port> mtu {mtu}"),
            ),
            Ok(None) => Check::fail(
                "host",
                "bridge-mtu",
                format!("the switch {} does not exist", plan.switch.name),
                "edgenet deploy",
            ),
            Err(e) => Check::skip("host", "bridge-mtu", format!("not read: {e}")),
        });
    }
    let mut blockers = Vec::new();
    let mut unread = Vec::new();
    let host_fw = edgenet_host::facts::host_firewall();
    // NAT and the switch's own rules live in edgenet's table; without it nothing leaves.
    if let (Some(table), SwitchKind::Internal) = (&opts.edgenet_table, plan.switch.kind) {
        let owned = opts
            .edgenet_table_drift
            .iter()
            .find(|d| d.contains("owned by another process"));
        out.push(match (&host_fw.ruleset, &host_fw.problem) {
            (Some(ruleset), _) => edgenet_table_check(ruleset, table, &opts.edgenet_table_drift),
            // Unreadable because another process owns one of edgenet's tables: say whose.
            (None, Some(_)) if owned.is_some() => Check::fail(
                "host",
                "edgenet-firewall",
                owned.cloned().unwrap_or_default(),
                "stop the process that owns the table, then edgenet deploy",
            ),
            (None, Some(e)) => Check::skip("host", "edgenet-firewall", format!("nft: {e}")),
            (None, None) => Check::skip("host", "edgenet-firewall", "nft is not installed"),
        });
    }
    match &host_fw.problem {
        None => blockers.extend(firewall::forward_blockers(&host_fw, plan)),
        Some(e) => unread.push(format!("nft: {e}")),
    }
    match probes::iptables_legacy_filter() {
        Ok(Some(save)) => blockers.extend(firewall::legacy_blockers(&save, &plan.switch.name)),
        Ok(None) => {}
        Err(e) => unread.push(format!("iptables-legacy-save: {e}")),
    }
    out.push(if blockers.is_empty() && !unread.is_empty() {
        Check::skip(
            "host",
            "host-firewall",
            format!("the host's firewall was not read ({})", unread.join("; ")),
        )
    } else {
        firewall::check(plan, &blockers, bridge_nf.as_deref())
    });
    out
}

/// The fix of an `edgenet-firewall` failure that is drift only: the table is there and awake,
/// so the nodes' traffic is not blocked by it (their checks run).
const DRIFT_FIX: &str = "edgenet deploy (writes it again)";

/// `edgenet-firewall`: edgenet's tables are loaded, awake (a dormant table filters and
/// translates nothing) and as the plan has them (`drift`, worked out by the caller).
fn edgenet_table_check(ruleset: &serde_json::Value, table: &str, drift: &[String]) -> Check {
    let tables: Vec<&serde_json::Value> = ruleset["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["table"]["name"].as_str() == Some(table))
        .collect();
    let present = tables
        .iter()
        .any(|o| o["table"]["family"].as_str() != Some("bridge"));
    // Any flags at all: edgenet sets none (nft 1.0.6 prints a dormant table's wrongly).
    let dormant: Vec<String> = tables
        .iter()
        .filter(|o| o["table"].get("flags").is_some())
        .map(|o| format!("{} {table}", o["table"]["family"].as_str().unwrap_or("?")))
        .collect();
    if !present {
        Check::fail(
            "host",
            "edgenet-firewall",
            format!(
                "nftables table {table} is missing: the nodes' NAT and the switch's rules are gone"
            ),
            "edgenet deploy (loads it again)",
        )
    } else if !dormant.is_empty() {
        Check::fail(
            "host",
            "edgenet-firewall",
            format!(
                "nftables table {} has table flags (dormant): it filters and translates nothing",
                dormant.join(", ")
            ),
            "edgenet deploy (writes it again, awake)",
        )
    } else if !drift.is_empty() {
        Check::fail("host", "edgenet-firewall", drift.join("; "), DRIFT_FIX)
    } else {
        Check::pass(
            "host",
            "edgenet-firewall",
            format!("nftables table {table} (NAT and the switch's rules) is loaded"),
        )
    }
}

/// ARP on the switch for every node address, the endpoint, the service range and (on an
/// internal switch, where the host is the gateway) the gateway: any answer from a MAC that is
/// not one of this machine's nodes is another device using the address.
fn duplicate_addresses(plan: &Plan, nodes: &[NodeHandle], opts: &DoctorOptions) -> Check {
    let mut targets: Vec<Ipv4Addr> = plan.nodes.iter().map(|n| n.address.addr()).collect();
    targets.push(plan.control_plane_endpoint);
    if let Some(r) = plan.service_range {
        targets.extend(r.addresses());
    }
    // The host holds the internal switch's gateway itself and does not answer its own probe;
    // on an external switch the LAN's router answers for it by design.
    let gateway = (plan.switch.kind == SwitchKind::Internal).then_some(plan.switch.gateway);
    targets.extend(gateway);
    targets.sort();
    targets.dedup();
    let answers = match edgenet_host::arp::probe(&plan.switch.name, &targets, &Default::default()) {
        Ok(a) => a,
        Err(e) => {
            return Check::skip(
                "host",
                "duplicate-address",
                format!("ARP probe on {} not run: {e}", plan.switch.name),
            )
        }
    };
    let own: Vec<(Ipv4Addr, MacAddr)> = nodes
        .iter()
        .filter_map(|n| Some((n.plan.address.addr(), n.mac?)))
        .collect();
    let own_macs: Vec<MacAddr> = own.iter().map(|(_, m)| *m).collect();
    // Other machines' nodes (scalable) are not in this plan: their MACs are unknown here.
    let other_machines = plan.switch.kind == SwitchKind::External;
    let mut conflicts = Vec::new();
    let mut unknown = Vec::new();
    let mut held = Vec::new();
    let cluster_runs = || {
        probes::tcp_connect(
            plan.control_plane_endpoint,
            edgenet_render::API_PORT,
            opts.timeout,
        )
        .is_ok()
    };
    let mut runs: Option<bool> = None;
    for a in answers {
        if Some(a.address) == gateway {
            conflicts.push(format!(
                "the gateway {} is answered by {} (the host holds it: a rogue device)",
                a.address, a.mac
            ));
            continue;
        }
        let is_node_address = plan.nodes.iter().any(|n| n.address.addr() == a.address);
        if is_node_address {
            if !own
                .iter()
                .any(|(ip, mac)| *ip == a.address && *mac == a.mac)
            {
                conflicts.push(format!("{} is answered by {}", a.address, a.mac));
            }
            continue;
        }
        // kube-vip (or MetalLB) on one of this machine's nodes holds the VIP or a service IP:
        // that is the cluster only when the answering MAC is a node's.
        if own_macs.contains(&a.mac) {
            held.push(format!("{} by {}", a.address, a.mac));
        } else if other_machines && *runs.get_or_insert_with(cluster_runs) {
            unknown.push(format!("{} by {}", a.address, a.mac));
        } else {
            conflicts.push(format!("{} is answered by {}", a.address, a.mac));
        }
    }
    if !conflicts.is_empty() {
        Check::fail(
            "host",
            "duplicate-address",
            format!("another device uses a planned address: {}", conflicts.join(", ")),
            "find the device with that MAC and free the address, or choose other addresses in the config (Ip4Address, ControlPlaneEndpointIp, ServiceIPRangeStart)",
        )
    } else if !unknown.is_empty() {
        Check::warn(
            "host",
            "duplicate-address",
            format!(
                "answered by a MAC that is none of this machine's nodes: {} ({}:6443 answers; if it is another machine's node this is the cluster's kube-vip)",
                unknown.join(", "),
                plan.control_plane_endpoint
            ),
        )
        .fix("compare the MAC with the other machines' nodes (edgenet status there); a MAC of none of them is a device using the address")
    } else if !held.is_empty() {
        Check::pass(
            "host",
            "duplicate-address",
            format!(
                "held by this machine's nodes (kube-vip/MetalLB): {}",
                held.join(", ")
            ),
        )
    } else {
        Check::pass(
            "host",
            "duplicate-address",
            format!(
                "no other device answers ARP for the {} planned address(es) on {}",
                targets.len(),
                plan.switch.name
            ),
        )
    }
}

fn node_checks(
    plan: &Plan,
    node: &NodeHandle,
    inside: Result<&Inside<'_>, &String>,
    opts: &DoctorOptions,
    host_blocker: Option<&'static str>,
    switch_blocker: Option<&'static str>,
    switch_mtu_wrong: bool,
) -> Vec<Check> {
    let n = &node.plan;
    let scope = n.name.as_str();
    let repair = "edgenet deploy (repairs drift)";
    let mut out = Vec::new();
    let inside = match inside {
        Ok(inside) => inside,
        Err(e) if e == inside::PAUSED => {
            out.push(Check::fail(
                scope,
                "guest-agent",
                format!("VM node {}: {e}", n.name),
                repair,
            ));
            return out;
        }
        Err(e) => {
            out.push(Check::fail(
                scope,
                "guest-agent",
                format!(
                    "the guest agent of VM node {} does not answer ({e}): the guest is still booting, its QEMU is not running, or its image has no qemu-guest-agent",
                    n.name
                ),
                "wait for the guest and run doctor again (doctor --wait SECONDS waits for it); edgenet status shows whether its VM runs, and <state dir>/vm/<node>-<id>/console.log its boot",
            ));
            return out;
        }
    };
    if node.guest_agent.is_some() {
        out.push(Check::pass(
            scope,
            "guest-agent",
            "the guest agent answers (checks run inside the guest)",
        ));
    }
    let seen = match inside.observe() {
        Ok(Some(seen)) => seen,
        Ok(None) => {
            out.push(Check::fail(
                scope,
                "link",
                format!("{NODE_IFNAME} is missing in {}", inside.what()),
                repair,
            ));
            return out;
        }
        Err(e) => {
            out.push(Check::fail(
                scope,
                "link",
                format!("{} cannot be read: {e}", inside.what()),
                repair,
            ));
            return out;
        }
    };
    out.push(if seen.up {
        Check::pass(scope, "link", format!("{NODE_IFNAME} is up with carrier"))
    } else {
        Check::fail(
            scope,
            "link",
            format!("{NODE_IFNAME} is down or has no carrier"),
            repair,
        )
    });
    out.push(if seen.addresses.contains(&n.address) {
        Check::pass(scope, "address", format!("{} on {NODE_IFNAME}", n.address))
    } else {
        Check::fail(
            scope,
            "address",
            format!(
                "{NODE_IFNAME} has {:?}, the plan says {}",
                seen.addresses
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>(),
                n.address
            ),
            repair,
        )
    });
    out.push(match (node.mac, seen.mac) {
        (Some(want), Some(have)) if want == have => Check::pass(scope, "mac", format!("{have}")),
        (Some(want), have) => Check::fail(
            scope,
            "mac",
            format!(
                "{NODE_IFNAME} has {}, the plan says {want}",
                have.map_or("none".into(), |m| m.to_string())
            ),
            repair,
        ),
        (None, have) => Check::skip(
            scope,
            "mac",
            format!(
                "no planned MAC recorded; {NODE_IFNAME} has {}",
                have.map_or("none".into(), |m| m.to_string())
            ),
        ),
    });
    out.push(match n.mtu {
        Some(mtu) if mtu == seen.mtu => Check::pass(scope, "mtu", format!("{mtu}")),
        Some(mtu) => Check::fail(
            scope,
            "mtu",
            format!("{NODE_IFNAME} has MTU {}, the plan says {mtu}", seen.mtu),
            repair,
        ),
        None => Check::skip(
            scope,
            "mtu",
            format!("no planned MTU; {NODE_IFNAME} has {}", seen.mtu),
        ),
    });
    let route_ok = seen.default_gateway == Some(n.gateway);
    out.push(if route_ok && !seen.cutting_off.is_empty() {
        Check::fail(
            scope,
            "default-route",
            format!(
                "default via {} dev {NODE_IFNAME}, but {} drop(s) what the node sends to its gateway or through it: the node is cut off",
                n.gateway,
                seen.cutting_off.join(", ")
            ),
            format!(
                "{repair}, or: {}",
                seen.cutting_off
                    .iter()
                    .map(|r| format!("{} ip route del {r}", inside.run_prefix()))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )
    } else if route_ok {
        Check::pass(
            scope,
            "default-route",
            format!("default via {} dev {NODE_IFNAME}", n.gateway),
        )
    } else {
        Check::fail(
            scope,
            "default-route",
            match seen.default_gateway {
                Some(gw) => format!("default via {gw}, the plan says {}", n.gateway),
                None => format!("no default route (the plan says via {})", n.gateway),
            },
            format!(
                "{repair}, or: {} ip route replace default via {} dev {NODE_IFNAME}",
                inside.run_prefix(),
                n.gateway
            ),
        )
    });
    let timeout_s = opts.timeout.as_secs().max(1) as u32;
    let gateway_ok = inside.ping(n.gateway, None, timeout_s);
    out.push(if gateway_ok {
        Check::pass(scope, "gateway", format!("{} answers ping", n.gateway))
    } else if let Some(why) = switch_blocker {
        Check::skip(
            scope,
            "gateway",
            format!("{} does not answer ping, as expected: {why}", n.gateway),
        )
    } else if !seen.cutting_off.is_empty() {
        Check::skip(
            scope,
            "gateway",
            format!(
                "{} does not answer ping, as expected: a route drops it (see default-route)",
                n.gateway
            ),
        )
    } else if let Some(adapter) = &opts.adapter_without_carrier {
        // B19 D7: the wire, not the switch: point at what status says.
        Check::fail(
            scope,
            "gateway",
            format!(
                "{} does not answer ping: adapter {adapter}, the switch's port to the LAN, has no carrier",
                n.gateway
            ),
            format!(
                "reconnect {adapter} (cable unplugged, or the switch port or device at the other end is off; `ip link show {adapter}` says NO-CARRIER, `edgenet status` names it)"
            ),
        )
    } else {
        Check::fail(
            scope,
            "gateway",
            format!("{} does not answer ping", n.gateway),
            "check the switch and the host's address on it (edgenet status)",
        )
    });
    let own_mtu_ok = n.mtu.is_none_or(|m| m == seen.mtu);
    out.push(match (n.mtu, gateway_ok) {
        (Some(_), true) if !own_mtu_ok => Check::skip(
            scope,
            "path-mtu",
            format!("not run: the node's own MTU is {} (see mtu)", seen.mtu),
        ),
        (Some(_), true) if switch_mtu_wrong => Check::skip(
            scope,
            "path-mtu",
            "not run: the switch's MTU is not the plan's (see bridge-mtu)",
        ),
        (Some(mtu), true) => match inside.ping(n.gateway, Some(mtu.saturating_sub(28)), timeout_s) {
            true => Check::pass(scope, "path-mtu", format!("a {mtu}-byte packet with DF set reaches {}", n.gateway)),
            _ => Check::fail(
                scope,
                "path-mtu",
                format!("a {mtu}-byte packet with DF set does not reach {}: a link on the path has a smaller MTU", n.gateway),
                "give the switch, the adapter and the nodes one MTU: set Machines[].NetworkConnection.Mtu to the path's (ping -M do -s SIZE finds it) and deploy",
            ),
        },
        (None, _) => Check::skip(scope, "path-mtu", "no planned MTU"),
        (_, false) => Check::skip(scope, "path-mtu", "the gateway does not answer"),
    });
    // Why traffic leaving the switch cannot be judged, if it cannot.
    let off_switch_blocker = if !route_ok {
        Some("no default route (see default-route)")
    } else if let (false, Some(why)) = (gateway_ok, switch_blocker) {
        Some(why)
    } else if !gateway_ok {
        Some("the gateway does not answer (see gateway)")
    } else if plan.switch.kind == SwitchKind::Internal && host_blocker.is_some() {
        host_blocker
    } else {
        None
    };
    let blocked = |ip: Ipv4Addr| {
        // A bridge that lost the host's configuration does not reach the switch's own subnet
        // either.
        let whole_switch = !gateway_ok && switch_blocker.is_some();
        (whole_switch || !plan.switch.subnet.contains(&ip))
            .then_some(off_switch_blocker)
            .flatten()
    };
    let offline = plan.switch.outbound == Outbound::Offline;
    // Offline, nothing beyond the switch answers by design: a server out there is a warning.
    let unreachable_offline = |ip: Ipv4Addr| offline && !plan.switch.subnet.contains(&ip);
    let offline_warning = "offline (InternetDisabled): the nodes reach only the switch and the host, so this is unreachable by design";

    if n.dns_servers.is_empty() && n.dns_source == edgenet_core::plan::DnsSource::Offline {
        out.push(Check::pass(
            scope,
            "dns",
            "no DNS server, as planned (offline without Network.DnsServers: names outside the cluster do not resolve)",
        ));
    } else if n.dns_servers.is_empty() {
        out.push(Check::warn(scope, "dns", "the node has no DNS server"));
    }
    for server in &n.dns_servers {
        let check = "dns";
        // Declared unreachable on purpose (an air-gapped site): not a failure (B21 N4).
        if n.skip_dns_check {
            out.push(Check::skip(scope, check, "not run: Network.SkipDnsCheck is true").at(server));
            continue;
        }
        if let Some(why) = blocked(*server) {
            out.push(Check::skip(scope, check, format!("not run: {why}")).at(server));
            continue;
        }
        if unreachable_offline(*server) {
            out.push(
                Check::warn(scope, check, offline_warning)
                    .fix("give the nodes a DNS server on the switch (Network.DnsServers), e.g. one on the host")
                    .at(server),
            );
            continue;
        }
        let reply = inside.dns(*server, opts.probe_name.as_deref(), opts.timeout);
        out.push(match (reply, &opts.probe_name) {
            (Ok(r), Some(name)) if r.rcode == 0 && r.answers > 0 => Check::pass(scope, check, format!("resolves {name}")),
            (Ok(r), Some(name)) => Check::fail(scope, check, format!("answers but does not resolve {name} (rcode {}, {} answers)", r.rcode, r.answers), "check the server's upstream, or give a name it knows with --probe-name"),
            (Ok(r), None) if r.rcode == 0 || r.rcode == 3 => Check::pass(scope, check, "answers (no --probe-name: any answer counts)"),
            (Ok(r), None) => Check::warn(scope, check, format!("answers with rcode {} to a query for the root", r.rcode)).fix("give a name it must resolve with --probe-name"),
            (Err(e), _) => Check::fail(scope, check, format!("no answer: {e}"), "start or fix the DNS server, or set Network.DnsServers to servers the nodes reach, and deploy"),
        }.at(server));
    }

    let want: Vec<(String, String)> = n.proxy.variables();
    let (proxy_env_at, have) = inside.proxy_env(&node.proxy_env);
    out.push(if have == want {
        Check::pass(
            scope,
            "proxy-env",
            if want.is_empty() {
                "no proxy, as planned".to_string()
            } else {
                format!("{} variables as planned", want.len())
            },
        )
    } else {
        let mut names: Vec<&str> = want
            .iter()
            .chain(have.iter())
            .map(|(k, _)| k.as_str())
            .collect();
        names.sort();
        names.dedup();
        let get = |vars: &[(String, String)], k: &str| {
            vars.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| edgenet_core::redact::redact_credentials(v))
        };
        let differ: Vec<String> = names
            .into_iter()
            .filter(|k| want.iter().find(|(n, _)| n == k) != have.iter().find(|(n, _)| n == k))
            .map(|k| {
                format!(
                    "{k} is {}, the plan says {}",
                    get(&have, k).map_or("unset".into(), |v| format!("{v:?}")),
                    get(&want, k).map_or("unset".into(), |v| format!("{v:?}"))
                )
            })
            .collect();
        Check::fail(
            scope,
            "proxy-env",
            format!(
                "{}: {}",
                proxy_env_at,
                if differ.is_empty() {
                    "the variables are in another order than planned".to_string()
                } else {
                    differ.join("; ")
                }
            ),
            repair,
        )
    });
    let mut proxies: Vec<&String> = n
        .proxy
        .http_proxy
        .iter()
        .chain(n.proxy.https_proxy.iter())
        .collect();
    proxies.dedup();
    for proxy in proxies {
        let mut check = proxy_check(scope, inside, proxy, opts, &blocked);
        if offline && check.status == Status::Fail {
            check = Check::warn(
                scope,
                "proxy",
                format!("{}; {offline_warning}", check.detail),
            );
        }
        // Which proxy, as it may be shown (no password).
        out.push(check.at(redact(proxy)));
    }

    out.push(match &opts.probe_url {
        None => Check::skip(scope, "egress", "no --probe-url given"),
        Some(url) => egress_check(plan, node, inside, url, opts, off_switch_blocker),
    });

    if n.kind == NodeKind::Linux {
        let kube = [
            ("net.ipv4.ip_forward", &seen.ip_forward),
            ("net.bridge.bridge-nf-call-iptables", &seen.bridge_nf),
        ];
        let wrong: Vec<String> = kube
            .iter()
            .filter(|(_, v)| v.as_deref() != Some("1"))
            .map(|(k, v)| format!("{k} = {}", v.as_deref().unwrap_or("absent")))
            .collect();
        out.push(if wrong.is_empty() {
            Check::pass(scope, "kube-sysctls", "ip_forward and bridge-nf-call-iptables are 1 in the node")
        } else {
            Check::warn(scope, "kube-sysctls", format!("Kubernetes needs them at 1 in the node: {}", wrong.join(", "))).fix(format!(
                "modprobe br_netfilter; {} sysctl -w net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1{}",
                inside.run_prefix(),
                match plan.distribution {
                    edgenet_core::config::Distribution::K3s => " (K3s sets them itself at start)",
                    edgenet_core::config::Distribution::K8s => " (kubeadm's preflight requires them: set them before kubeadm init/join, and in /etc/sysctl.d/)",
                }
            ))
        });
    }
    // Every node's files, Windows ones too (they lie under --rendered DIR).
    out.push(rendered_check(plan, node, inside, opts));
    out
}

/// The rendered-files check on the node's own files (`/` of the host for a netns node, the
/// guest's files for a VM node), or on `--rendered DIR`.
fn rendered_check(
    plan: &Plan,
    node: &NodeHandle,
    inside: &Inside<'_>,
    opts: &DoctorOptions,
) -> Check {
    let n = &node.plan;
    if let Some(dir) = &opts.rendered_root {
        let namespace = node.guest_agent.is_none().then(|| node_namespace(node));
        return rendered::check(plan, n, namespace.as_ref(), &dir.join(&n.name));
    }
    if node.guest_agent.is_none() {
        return rendered::check(
            plan,
            n,
            Some(&node_namespace(node)),
            std::path::Path::new("/"),
        );
    }
    // A VM node's files are in its guest (the seed wrote them): copied out to compare.
    let paths: Vec<String> =
        edgenet_render::render(plan, &edgenet_render::RenderOptions::default())
            .map(|r| {
                r.files
                    .into_iter()
                    .filter(|f| f.node == n.name && f.path.starts_with('/'))
                    .map(|f| f.path)
                    .collect()
            })
            .unwrap_or_default();
    let scratch = match tempfile_dir() {
        Ok(d) => d,
        Err(e) => {
            return Check::skip(
                &n.name,
                "rendered-files",
                format!("no scratch directory: {e}"),
            )
        }
    };
    let (root, shown) = inside.files_root(&paths, &scratch);
    let mut check = rendered::check(plan, n, None, &root);
    if let Some(shown) = shown {
        check.detail = check.detail.replace(&root.display().to_string(), &shown);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    check
}

fn node_namespace(node: &NodeHandle) -> edgenet_render::NodeNamespace {
    edgenet_render::NodeNamespace {
        netns: node.netns.clone(),
        resolv_conf: node.resolv_conf.display().to_string(),
        proxy_env: node.proxy_env.display().to_string(),
    }
}

/// A private directory for copies of a guest's files (removed by the caller).
fn tempfile_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!(
        "edgenet-doctor-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    ));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

fn proxy_check(
    scope: &str,
    inside: &Inside<'_>,
    proxy: &str,
    opts: &DoctorOptions,
    blocked: &dyn Fn(Ipv4Addr) -> Option<&'static str>,
) -> Check {
    let shown = redact(proxy);
    let Ok(url) = url::Url::parse(proxy) else {
        return Check::fail(
            scope,
            "proxy",
            format!("{shown} is not a URL"),
            "fix Network.Proxy",
        );
    };
    let port = url.port_or_known_default().unwrap_or(3128);
    let host = url.host_str().unwrap_or_default().to_string();
    let addresses = match host.parse::<Ipv4Addr>() {
        Ok(ip) => vec![ip],
        Err(_) => inside.resolve(&host, opts.timeout),
    };
    let Some(&ip) = addresses.first() else {
        return Check::fail(
            scope,
            "proxy",
            format!("the proxy's name {host} does not resolve in the node"),
            "check the node's DNS, or give the proxy by address",
        );
    };
    if let Some(why) = blocked(ip) {
        return Check::skip(scope, "proxy", format!("not run: {why}"));
    }
    match inside.tcp_connect(ip, port, opts.timeout) {
        Ok(()) => Check::pass(scope, "proxy", format!("{shown} accepts TCP ({ip}:{port})")),
        Err(e) => Check::fail(
            scope,
            "proxy",
            format!("{shown} does not accept TCP at {ip}:{port}: {e}"),
            "start the proxy, or correct Network.Proxy.Http/Https and deploy",
        ),
    }
}

fn egress_check(
    plan: &Plan,
    node: &NodeHandle,
    inside: &Inside<'_>,
    url: &str,
    opts: &DoctorOptions,
    off_switch_blocker: Option<&'static str>,
) -> Check {
    let scope = node.plan.name.as_str();
    let offline = plan.switch.outbound == Outbound::Offline;
    if !offline {
        if let Some(why) = off_switch_blocker {
            return Check::skip(scope, "egress", format!("not run: {why}"));
        }
    }
    let timeout_s = opts.timeout.as_secs().max(1) as u32 * 2;
    let result = inside.http_get(url, timeout_s);
    match (result, offline) {
        (Ok(None), false) => {
            Check::pass(scope, "egress", format!("{url} answers (direct, no proxy)"))
        }
        (Ok(None), true) => Check::fail(
            scope,
            "egress",
            format!("offline (InternetDisabled), yet {url} answers"),
            "edgenet deploy (restores the offline rules); check nothing else routes the switch",
        ),
        (Ok(Some(_)), true) => Check::pass(
            scope,
            "egress",
            format!("offline: {url} is unreachable, as planned"),
        ),
        (Ok(Some(why)), false)
            if node.plan.proxy.http_proxy.is_some() || node.plan.proxy.https_proxy.is_some() =>
        {
            Check::warn(
                scope,
                "egress",
                format!("{url} is not reachable directly ({why}); the node goes through its proxy"),
            )
        }
        (Ok(Some(why)), false) => Check::fail(
            scope,
            "egress",
            format!("{url} is not reachable: {why}"),
            "check NAT (edgenet status), the host's uplink and firewall",
        ),
        (Err(e), _) => Check::skip(
            scope,
            "egress",
            format!("curl could not run in the node: {e}"),
        ),
    }
}

fn endpoint_check(
    plan: &Plan,
    node: &NodeHandle,
    inside: &Inside<'_>,
    opts: &DoctorOptions,
    so_far: &[Check],
) -> Check {
    let scope = node.plan.name.as_str();
    let ep = plan.control_plane_endpoint;
    if !plan.switch.subnet.contains(&ep)
        || so_far
            .iter()
            .any(|c| c.check == "link" && c.status == Status::Fail)
    {
        return Check::skip(
            scope,
            "endpoint",
            "the node cannot reach the endpoint's subnet",
        );
    }
    match inside.tcp_connect(ep, edgenet_render::API_PORT, opts.timeout) {
        Ok(()) => Check::pass(scope, "endpoint", format!("{ep}:6443 answers")),
        Err(e) => Check::warn(
            scope,
            "endpoint",
            format!("nothing answers on {ep}:6443 yet ({e}): expected until Kubernetes runs"),
        ),
    }
}

/// A proxy URL as it may be shown: credentials become `user:***@`.
pub fn redact(proxy: &str) -> String {
    match url::Url::parse(proxy) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(_) => proxy.to_string(),
        Err(_) => "(not a URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ruleset(flags: Option<&str>) -> serde_json::Value {
        let mut table = json!({"family": "ip", "name": "edgenet_abc123", "handle": 1});
        if let Some(f) = flags {
            table["flags"] = json!(f);
        }
        json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": table},
            {"table": {"family": "bridge", "name": "edgenet_abc123", "handle": 2}},
        ]})
    }

    #[test]
    fn edgenet_firewall_fails_on_a_dormant_or_different_table() {
        let ok = edgenet_table_check(&ruleset(None), "edgenet_abc123", &[]);
        assert_eq!(ok.status, Status::Pass, "{}", ok.detail);
        // nft 1.0.6 prints a dormant table's flags as garbage; 1.1 as "dormant".
        for flags in ["dormant", "edgenet_abc123"] {
            let c = edgenet_table_check(&ruleset(Some(flags)), "edgenet_abc123", &[]);
            assert_eq!(c.status, Status::Fail);
            assert!(
                c.detail.contains("ip edgenet_abc123") && c.detail.contains("dormant"),
                "{}",
                c.detail
            );
        }
        let drift = ["nftables table ip edgenet_abc123 differs from the plan (x)".to_string()];
        let c = edgenet_table_check(&ruleset(None), "edgenet_abc123", &drift);
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("differs from the plan"), "{}", c.detail);
        let c = edgenet_table_check(&ruleset(None), "edgenet_000000", &[]);
        assert!(c.status == Status::Fail && c.detail.contains("missing"));
    }
}
