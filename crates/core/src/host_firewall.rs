//! Host firewalls that drop edgenet's traffic (issue 8): Docker, ufw, firewalld, a plain
//! iptables-nft firewall or any table with a base chain that drops.
//!
//! nftables runs every base chain of a hook, and a drop in any of them is final: an accept in
//! edgenet's own table cannot override Docker's `FORWARD` policy drop. So edgenet reads the
//! whole ruleset (`nft -j list ruleset`, which shows iptables-nft rules too) and walks each
//! filter, route and nat base chain of the other tables on the hooks the switch's packets pass
//! (prerouting, forward, input, output, postrouting; netdev ingress/egress on the uplink or the
//! bridge) for those packets, the way the kernel would: following jumps, gotos and returns,
//! down to a verdict or the policy.
//!
//! A match the walk cannot evaluate (an address set, a mark, a rate limit, an unknown xt match)
//! makes the verdict unknown: a drop it guards is a possible one, an accept it guards is not
//! counted on. A certain drop is one the listed rules really reach for such a packet; the
//! report names the chain, the rule (as `nft list` prints it) and the fix.
//!
//! Pure: the listing comes in as JSON, the findings go out as data.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use serde::Serialize;
use serde_json::{json, Value};

pub use crate::host_facts::HostFirewall;

/// Which tool made the table, for the fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallTool {
    Docker,
    Ufw,
    Firewalld,
    /// A table iptables-nft manages (`ip filter` with `FORWARD`, ...), not Docker's or ufw's.
    Iptables,
    Other,
}

impl FirewallTool {
    pub fn as_str(self) -> &'static str {
        match self {
            FirewallTool::Docker => "Docker",
            FirewallTool::Ufw => "ufw",
            FirewallTool::Firewalld => "firewalld",
            FirewallTool::Iptables => "iptables",
            FirewallTool::Other => "another firewall",
        }
    }
}

/// A packet the switch must see through: interfaces by name, addresses, conntrack state, and
/// the hook it is judged at (`forward`, or `input` for the host's own services).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub what: &'static str,
    /// `ip` for the `ip`/`inet` hooks, `bridge` for the bridge family's.
    pub family: &'static str,
    /// `forward` or `input` (every flow passes `prerouting` first).
    pub hook: &'static str,
    pub iif: String,
    pub oif: String,
    pub saddr: Option<Ipv4Addr>,
    pub daddr: Option<Ipv4Addr>,
    /// `new`, `established`, or `untracked` (node↔node on an internal switch: edgenet's
    /// table keeps those frames out of conntrack).
    pub ct_state: &'static str,
    /// Masqueraded on the uplink: its addresses on that side are the host's, unknown here.
    pub natted: bool,
}

/// The flow of the replies to the nodes' own connections, from outside through the uplink.
pub const REPLIES_TO_NODES: &str = "replies to the nodes";

/// Stands for "some other interface" when the uplink is not known: matches no name, only `!=`.
pub const OTHER_IF: &str = "\u{0}uplink";
/// Stands for a node's bridge port (its name is only known after deploy).
pub const NODE_PORT: &str = "\u{0}node port";

/// What edgenet's switch needs from the host's firewall, as far as it is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwitchTraffic {
    pub bridge: String,
    /// The nodes reach out through the host (internal switch with outbound NAT).
    pub nat: bool,
    /// External switch: the adapter is a port of the bridge, the nodes sit on the LAN.
    pub external: bool,
    /// bridge-nf-call-iptables: bridged IPv4 frames pass the `ip` hooks too.
    pub bridged: bool,
    /// A node's address (the walk evaluates address matches with it).
    pub node: Option<Ipv4Addr>,
    /// The host's address on the switch (DNS, a proxy on the host).
    pub host: Option<Ipv4Addr>,
    /// The interface of the host's default route and its gateway (where the nodes' traffic
    /// goes on a NAT switch); for an external switch the gateway is a LAN address.
    pub uplink: Option<String>,
    /// Where the nodes' traffic goes past the switch: the gateway, and for a NAT switch also
    /// [`INTERNET`] (a reply-drop like Docker's documented `-i eth0 ! -s <gateway> -j DROP`
    /// spares the gateway only).
    pub outside: Vec<Ipv4Addr>,
}

/// Stands for "an address on the internet" in the walk (nothing is ever sent to it).
pub const INTERNET: Ipv4Addr = Ipv4Addr::new(9, 9, 9, 9);

/// What `plan`'s switch needs, with the uplink and gateway the host layer read.
pub fn plan_traffic(plan: &crate::plan::Plan, fw: &HostFirewall) -> SwitchTraffic {
    use crate::plan::{Outbound, SwitchKind};
    let external = plan.switch.kind == SwitchKind::External;
    SwitchTraffic {
        bridge: plan.switch.name.clone(),
        nat: plan.switch.outbound == Outbound::Nat,
        external,
        bridged: fw.bridge_nf_call_iptables,
        node: plan.nodes.first().map(|n| n.address.addr()),
        host: plan.switch.host_address.map(|a| a.addr()),
        uplink: if external {
            plan.switch.adapter.clone()
        } else {
            fw.uplink.clone()
        },
        outside: if external {
            vec![plan.switch.gateway]
        } else {
            fw.gateway.into_iter().chain([INTERNET]).collect()
        },
    }
}

/// The subnet a fix may open for `plan`: a NAT switch's own; `None` (bridged frames only)
/// otherwise.
pub fn fix_subnet(plan: &crate::plan::Plan) -> Option<String> {
    (plan.switch.outbound == crate::plan::Outbound::Nat)
        .then(|| plan.switch.subnet.trunc().to_string())
}

/// The accept rules (nft syntax, what follows `insert rule <chain>`) that let the switch's
/// traffic through a forward chain that drops it: `status`/`check` propose them as the fix, and
/// `render` writes them into its host firewall file, so both agree. None relies on conntrack
/// state for frames within the switch: an internal switch's own table keeps them untracked.
/// `subnet` as [`fix_subnet`] gives it.
pub fn forward_accept_rules(bridge: &str, subnet: Option<&str>) -> Vec<String> {
    match subnet {
        Some(s) => vec![
            format!("iifname \"{bridge}\" ip saddr {s} accept"),
            format!("oifname \"{bridge}\" ip daddr {s} ct state established,related accept"),
        ],
        None => vec![format!("iifname \"{bridge}\" oifname \"{bridge}\" accept")],
    }
}

/// The packets an edgenet switch must see through the host's hooks.
pub fn switch_flows(t: &SwitchTraffic) -> Vec<Flow> {
    let bridge = t.bridge.as_str();
    let uplink = t.uplink.clone().unwrap_or_else(|| OTHER_IF.into());
    let flow = |what, family, hook, iif: &str, oif: &str, saddr, daddr, ct_state| Flow {
        what,
        family,
        hook,
        iif: iif.into(),
        oif: oif.into(),
        saddr,
        daddr,
        ct_state,
        natted: false,
    };
    let mut flows = Vec::new();
    // Where bridged traffic from a node goes: another node, or (external) the LAN.
    let peers: Vec<Option<Ipv4Addr>> = if t.external && !t.outside.is_empty() {
        t.outside.iter().copied().map(Some).collect()
    } else if t.external {
        vec![None]
    } else {
        vec![t.node]
    };
    let outside: Vec<Option<Ipv4Addr>> = if t.outside.is_empty() {
        vec![None]
    } else {
        t.outside.iter().copied().map(Some).collect()
    };
    // An internal switch's own table notracks the frames between its nodes.
    let (there, back) = if t.external {
        ("new", "established")
    } else {
        ("untracked", "untracked")
    };
    for &peer in &peers {
        if t.bridged {
            flows.push(flow(
                "frames within the switch",
                "ip",
                "forward",
                bridge,
                bridge,
                t.node,
                peer,
                there,
            ));
            flows.push(flow(
                "replies within the switch",
                "ip",
                "forward",
                bridge,
                bridge,
                peer,
                t.node,
                back,
            ));
        }
    }
    for &far in &outside {
        if t.nat {
            let start = flows.len();
            flows.push(flow(
                "connections the nodes open to the outside",
                "ip",
                "forward",
                bridge,
                &uplink,
                t.node,
                far,
                "new",
            ));
            flows.push(flow(
                REPLIES_TO_NODES,
                "ip",
                "forward",
                &uplink,
                bridge,
                far,
                t.node,
                "established",
            ));
            for f in &mut flows[start..] {
                f.natted = true;
            }
        }
    }
    if !t.bridge.is_empty() {
        if let Some(host) = t.host {
            flows.push(flow(
                "connections the nodes open to the host (DNS, proxy)",
                "ip",
                "input",
                bridge,
                "",
                t.node,
                Some(host),
                "new",
            ));
            // The host's answers (DNS, proxy) leave through its output hook.
            flows.push(flow(
                "the host's replies to the nodes (DNS, proxy)",
                "ip",
                "output",
                "",
                bridge,
                Some(host),
                t.node,
                "established",
            ));
        }
    }
    // The bridge family's forward hook sees every frame between two ports of the switch.
    let (other_port, what) = if t.external {
        (
            t.uplink.clone().unwrap_or_else(|| OTHER_IF.into()),
            "frames between the nodes and the LAN",
        )
    } else {
        (NODE_PORT.to_string(), "frames between the nodes")
    };
    for &peer in &peers {
        flows.push(flow(
            what,
            "bridge",
            "forward",
            NODE_PORT,
            &other_port,
            t.node,
            peer,
            "new",
        ));
        flows.push(flow(
            what,
            "bridge",
            "forward",
            &other_port,
            NODE_PORT,
            peer,
            t.node,
            "established",
        ));
    }
    flows
}

/// A base chain of another table that drops (or may drop) one of the switch's packets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForwardDrop {
    pub family: String,
    pub table: String,
    /// The base chain (its hook in `hook`).
    pub chain: String,
    pub hook: String,
    /// Where the packet is dropped: `policy drop`, or the chain and rule that drops it.
    pub reason: String,
    /// Which of the switch's packets.
    pub flow: String,
    pub tool: FirewallTool,
    /// `false`: a rule edgenet cannot evaluate may drop it (`reason` names the rule).
    pub certain: bool,
    /// Every flow this chain drops (this one's included): an iptables fix names the rules
    /// those need and no rule that is still there (B20 D9).
    #[serde(skip)]
    pub chain_flows: Vec<String>,
}

impl fmt::Display for ForwardDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.certain { "drops" } else { "may drop" };
        write!(
            f,
            "{} table {} {} chain {} ({} hook) {verb} {} ({})",
            self.tool.as_str(),
            self.family,
            self.table,
            self.chain,
            self.hook,
            self.flow,
            self.reason
        )
    }
}

impl ForwardDrop {
    /// The exact commands that let the switch's traffic through — and nothing more: `subnet`
    /// is the NAT switch's subnet (its nodes' traffic only); without it (external or offline
    /// switch) only frames bridged within the switch (in and out on the switch), never the
    /// LAN routed through the host.
    pub fn fix(&self, bridge: &str, subnet: Option<&str>) -> String {
        let (f, t, c) = (&self.family, &self.table, &self.chain);
        if self.tool == FirewallTool::Iptables {
            return iptables_fix(t, c, &self.hook, bridge, subnet, &self.chain_flows);
        }
        let nft = |rules: &[String]| {
            let cmds: Vec<String> = rules
                .iter()
                .map(|r| format!("nft insert rule {f} {t} {c} {r}"))
                .collect();
            format!(
                "{} (and the same in the file your firewall loads at boot)",
                cmds.join(" && ")
            )
        };
        if f == "netdev" {
            return format!(
                "edit chain netdev {t} {c} ({} hook of its device) so that it lets through the switch {bridge}'s traffic: the nodes' connections and their replies (on the switch's bridge with the nodes' own addresses, on the uplink masqueraded to this host's) (and the same in the file your firewall loads at boot)",
                self.hook
            );
        }
        match (self.hook.as_str(), subnet) {
            ("output", _) => return nft(&[format!("oifname \"{bridge}\" accept")]),
            ("prerouting", Some(s)) if f != "bridge" => {
                return nft(&[
                    format!("iifname \"{bridge}\" ip saddr {s} accept"),
                    format!("ip daddr {s} accept"),
                ])
            }
            ("prerouting", None) if f != "bridge" => {
                return nft(&[format!("iifname \"{bridge}\" accept")])
            }
            ("postrouting", Some(s)) if f != "bridge" => {
                return nft(&[
                    format!("iifname \"{bridge}\" ip saddr {s} accept"),
                    format!("oifname \"{bridge}\" ip daddr {s} accept"),
                ])
            }
            _ => {}
        }
        if self.hook == "input" {
            return match self.tool {
                FirewallTool::Ufw => format!("ufw allow in on {bridge}"),
                FirewallTool::Firewalld => format!(
                    "firewall-cmd --permanent --zone=$(firewall-cmd --get-zone-of-interface={bridge}) --add-service=dns && firewall-cmd --reload"
                ),
                _ => format!(
                    "nft insert rule {f} {t} {c} iifname \"{bridge}\" accept (and the same in the file your firewall loads at boot)"
                ),
            };
        }
        if f == "bridge" {
            return format!(
                "nft insert rule bridge {t} {c} ibrname \"{bridge}\" accept (and the same in the file your firewall loads at boot)"
            );
        }
        match (self.tool, subnet) {
            (FirewallTool::Docker, Some(s)) => format!(
                "iptables -I DOCKER-USER -i {bridge} -s {s} -j ACCEPT && iptables -I DOCKER-USER -o {bridge} -d {s} -j ACCEPT (edgenet deploy adds exactly these, marked, and remove takes them out)"
            ),
            (FirewallTool::Docker, None) => format!(
                "iptables -I DOCKER-USER -i {bridge} -o {bridge} -j ACCEPT (edgenet deploy adds exactly this, marked, and remove takes it out)"
            ),
            (FirewallTool::Ufw, Some(s)) => format!(
                "ufw route allow in on {bridge} from {s} && ufw route allow out on {bridge} to {s}"
            ),
            (FirewallTool::Ufw, None) => {
                format!("ufw route allow in on {bridge} out on {bridge}")
            }
            (FirewallTool::Firewalld, Some(_)) => format!(
                "firewall-cmd --permanent --zone=trusted --add-interface={bridge} && firewall-cmd --reload"
            ),
            (FirewallTool::Firewalld, None) => format!(
                "firewall-cmd --permanent --zone=$(firewall-cmd --get-zone-of-interface={bridge}) --add-forward && firewall-cmd --reload"
            ),
            (FirewallTool::Other | FirewallTool::Iptables, _) => {
                nft(&forward_accept_rules(bridge, subnet))
            }
        }
    }
}

/// Docker's chain for rules of one's own, evaluated first in its `FORWARD` chain.
pub const DOCKER_USER: &str = "DOCKER-USER";

/// Whether the `iptables -S` line `line` is one of edgenet's own rules: `mark` is one
/// deployment's (`edgenet:<id>`), or `None` for any deployment's rule that names `bridge`.
fn is_own(line: &str, mark: Option<&str>, bridge: &str) -> bool {
    let words: Vec<&str> = line
        .split_whitespace()
        .map(|w| w.trim_matches('"'))
        .collect();
    let marked = words
        .windows(2)
        .any(|w| w[0] == "--comment" && mark.map_or(w[1].starts_with("edgenet:"), |m| w[1] == m));
    marked
        && (mark.is_some()
            || words
                .windows(2)
                .any(|w| (w[0] == "-i" || w[0] == "-o") && w[1] == bridge))
}

/// The first rule of another tool or user that comes before one of edgenet's own in
/// `DOCKER-USER` (`lines` as `iptables -S` prints them), with its position (1-based), or
/// `None` when edgenet's rules are at the top (or absent).
pub fn foreign_above_own(
    lines: &[String],
    mark: Option<&str>,
    bridge: &str,
) -> Option<(usize, String)> {
    let last_own = lines.iter().rposition(|l| is_own(l, mark, bridge))?;
    lines[..last_own]
        .iter()
        .enumerate()
        .find(|(_, l)| !is_own(l, mark, bridge))
        .map(|(i, l)| (i + 1, l.clone()))
}

/// Whether an `iptables -S` rule applies to the switch's traffic by its interfaces: it names
/// no interface (all traffic), a negated one (`! -i up0`), or the switch (`-i`/`-o` it, or a
/// `+` wildcard covering it). Such a rule is aimed at the switch too, and deploy does not put
/// its accepts above it; one naming only other interfaces (Docker's documented `-i <ext> ! -s
/// <net> -j DROP`) is about other traffic.
pub fn aimed_at_switch(line: &str, bridge: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut named_other = false;
    for (i, w) in words.iter().enumerate() {
        if *w != "-i" && *w != "-o" {
            continue;
        }
        if i > 0 && words[i - 1] == "!" {
            return true;
        }
        let Some(dev) = words.get(i + 1) else {
            return true;
        };
        let covers = match dev.strip_suffix('+') {
            Some(prefix) => bridge.starts_with(prefix),
            None => *dev == bridge,
        };
        if covers {
            return true;
        }
        named_other = true;
    }
    !named_other
}

/// Whether `ruleset` has, in `ip filter DOCKER-USER`, a rule that neither accepts nor returns
/// above an accepting one, or such a rule while none of edgenet's is there yet: only then is
/// the chain worth reading with `iptables -S` (edgenet's accepts may be present but below a
/// user's rule, or a first deploy would put them above one that is aimed at the switch).
/// edgenet's rules carry a comment (`edgenet:<id>`), which the listing shows as a rule comment
/// or, from iptables-nft, as an `xt` comment match without its text: a rule with either counts
/// as edgenet's here. Pure and cheap: most Docker hosts have only `RETURN` there, or
/// edgenet's accepts first.
pub fn docker_user_out_of_order(ruleset: &Value) -> bool {
    let Some(items) = ruleset["nftables"].as_array() else {
        return false;
    };
    let mut other_before = false;
    let own = items.iter().any(|item| {
        let r = &item["rule"];
        r["family"] == "ip"
            && r["table"] == "filter"
            && r["chain"] == DOCKER_USER
            && (r["comment"]
                .as_str()
                .is_some_and(|c| c.starts_with("edgenet:"))
                || r["expr"].as_array().is_some_and(|e| {
                    e.iter()
                        .any(|x| x["xt"]["type"] == "match" && x["xt"]["name"] == "comment")
                }))
    });
    for item in items {
        let r = &item["rule"];
        if r["family"] != "ip" || r["table"] != "filter" || r["chain"] != DOCKER_USER {
            continue;
        }
        let verdict = r["expr"]
            .as_array()
            .and_then(|e| e.last())
            .and_then(Value::as_object)
            .and_then(|o| o.keys().next().cloned())
            .unwrap_or_default();
        match verdict.as_str() {
            "accept" if other_before => return true,
            "accept" | "return" | "counter" => {}
            _ if !own => return true,
            _ => other_before = true,
        }
    }
    false
}

/// For a Docker drop in `DOCKER-USER` while none of edgenet's rules for `bridge` is there yet
/// (a first deploy): the first rule there that drops or rejects and applies to `bridge`'s
/// traffic too ([`aimed_at_switch`]), with its position (1-based). Deploy would insert its
/// accepts above it, overriding a decision about the switch that a later deploy leaves above
/// them and refuses ([`docker_user_below_words`]): so a first deploy refuses it as well.
/// `None` when the chain was not read or holds no such rule.
pub fn docker_user_drop_before_first_deploy(
    fw: &HostFirewall,
    drop: &ForwardDrop,
    bridge: &str,
) -> Option<(usize, String)> {
    let docker_forward =
        drop.tool == FirewallTool::Docker && drop.hook == "forward" && drop.family != "bridge";
    if !docker_forward || !drop.reason.ends_with(&format!("(chain {DOCKER_USER})")) {
        return None;
    }
    let lines = fw.docker_user.as_deref()?;
    if lines.iter().any(|l| is_own(l, None, bridge)) {
        return None;
    }
    let drops = |l: &str| {
        l.split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w[0] == "-j" && matches!(w[1], "DROP" | "REJECT"))
    };
    lines
        .iter()
        .enumerate()
        .find(|(_, l)| drops(l) && aimed_at_switch(l, bridge))
        .map(|(i, l)| (i + 1, l.clone()))
}

/// The words of [`docker_user_drop_before_first_deploy`] for the rule `rule` at position `pos`.
pub fn docker_user_drop_words(pos: usize, rule: &str, bridge: &str) -> String {
    format!(
        "`{rule}` (rule {pos} of {DOCKER_USER}) applies to {bridge}'s traffic too, so edgenet \
         does not put its ACCEPT rules for {bridge} above it: if the nodes should get through, \
         delete it (after a deploy it may go back below edgenet's rules)"
    )
}

/// For a Docker drop in `DOCKER-USER` while edgenet's accepts for `bridge` are there but
/// below another rule: what the operator should know and do, in the words `status`,
/// `deploy`, `check` and `doctor` all use (adding the accepts again would not help). `None`
/// when the chain was not read or edgenet's rules are on top.
pub fn docker_user_below(fw: &HostFirewall, drop: &ForwardDrop, bridge: &str) -> Option<String> {
    let docker_forward =
        drop.tool == FirewallTool::Docker && drop.hook == "forward" && drop.family != "bridge";
    if !docker_forward || !drop.reason.ends_with(&format!("(chain {DOCKER_USER})")) {
        return None;
    }
    let (pos, rule) = foreign_above_own(fw.docker_user.as_deref()?, None, bridge)?;
    Some(docker_user_below_words(pos, &rule, bridge))
}

/// The words of [`docker_user_below`] for the rule `rule` at position `pos`.
pub fn docker_user_below_words(pos: usize, rule: &str, bridge: &str) -> String {
    if aimed_at_switch(rule, bridge) {
        format!(
            "edgenet's ACCEPT rules for {bridge} are present in {DOCKER_USER} but below `{rule}` \
             (rule {pos} of the chain), which applies to {bridge}'s traffic too, so edgenet \
             leaves it above them: if the nodes should get through, delete it or insert it \
             again below edgenet's rules"
        )
    } else {
        format!(
            "edgenet's ACCEPT rules for {bridge} are present in {DOCKER_USER} but below `{rule}` \
             (rule {pos} of the chain); run `edgenet deploy`, which moves its own rules back \
             above it (that rule stays)"
        )
    }
}

/// The fix in iptables' own syntax for a chain iptables-nft manages (an `nft` rule there makes
/// `iptables -S`, `iptables-save` and netfilter-persistent fail on the chain).
fn iptables_fix(
    table: &str,
    chain: &str,
    hook: &str,
    bridge: &str,
    subnet: Option<&str>,
    chain_flows: &[String],
) -> String {
    let ipt = if table == "filter" {
        format!("iptables -I {chain}")
    } else {
        format!("iptables -t {table} -I {chain}")
    };
    let rules: Vec<String> = match (hook, subnet) {
        ("input", _) => vec![format!("-i {bridge} -j ACCEPT")],
        ("output", _) => vec![format!("-o {bridge} -j ACCEPT")],
        ("prerouting", Some(s)) => vec![
            format!("-i {bridge} -s {s} -j ACCEPT"),
            format!("-d {s} -j ACCEPT"),
        ],
        ("prerouting", None) => vec![format!("-i {bridge} -j ACCEPT")],
        (_, Some(s)) => {
            // The replies come in on the uplink (the second rule); every other flow leaves a
            // node through the switch (the first). Only what is dropped: a rule still there
            // is not given again. Unknown flows (none listed): both.
            let replies = |f: &String| f.starts_with(REPLIES_TO_NODES);
            let need_in = chain_flows.is_empty() || chain_flows.iter().any(|f| !replies(f));
            let need_out = chain_flows.is_empty() || chain_flows.iter().any(replies);
            let mut rules = Vec::new();
            if need_in {
                rules.push(format!("-i {bridge} -s {s} -j ACCEPT"));
            }
            if need_out {
                rules.push(format!(
                    "-o {bridge} -d {s} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
                ));
            }
            rules
        }
        (_, None) => vec![format!("-i {bridge} -o {bridge} -j ACCEPT")],
    };
    let cmds: Vec<String> = rules.iter().map(|r| format!("{ipt} {r}")).collect();
    format!(
        "{} (iptables-nft manages this chain: do not add nft rules to it; save with iptables-save where your firewall restores it at boot)",
        cmds.join(" && ")
    )
}

/// Families whose hooks see the switch's IPv4 packets.
const IPV4_FAMILIES: [&str; 2] = ["ip", "inet"];

/// Layer-4 protocols each flow is walked with: a rule dropping only one of them (ICMP, say)
/// still breaks the nodes.
const PROTOCOLS: [&str; 3] = ["tcp", "udp", "icmp"];

/// The hooks a flow passes, in order (besides netdev's, which depend on the device).
fn hooks_of(flow_hook: &str) -> &'static [&'static str] {
    match flow_hook {
        "forward" => &["prerouting", "forward", "postrouting"],
        "input" => &["prerouting", "input"],
        "output" => &["output", "postrouting"],
        _ => &[],
    }
}

/// The devices of a netdev chain (`"dev"`: one name or a list).
fn chain_devices(chain: &Value) -> Vec<&str> {
    match &chain["dev"] {
        Value::String(d) => vec![d.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// `flow` as a base chain of `family` on `hook` sees it, or `None` if the chain never sees it.
fn flow_at_hook(flow: &Flow, family: &str, hook: &str, chain: &Value) -> Option<Flow> {
    let mut f = flow.clone();
    if family == "netdev" {
        // Frames bridged within the switch never pass the bridge device's own hooks.
        if flow.iif == flow.oif {
            return None;
        }
        let devices = chain_devices(chain);
        match hook {
            "ingress" if devices.contains(&flow.iif.as_str()) => {
                // Before routing and conntrack; a NATed reply is still addressed to the host.
                f.oif = String::new();
                f.ct_state = "invalid";
                if f.natted && flow.ct_state == "established" {
                    f.daddr = None;
                }
            }
            "egress" if devices.contains(&flow.oif.as_str()) => {
                f.iif = String::new();
                if f.natted && flow.ct_state == "new" {
                    f.saddr = None;
                }
            }
            _ => return None,
        }
        return Some(f);
    }
    let family_fits = match flow.family {
        "bridge" => family == "bridge",
        _ => IPV4_FAMILIES.contains(&family),
    };
    if !family_fits || !hooks_of(flow.hook).contains(&hook) {
        return None;
    }
    // Before routing the output interface is not known yet.
    if hook == "prerouting" {
        f.oif = String::new();
    }
    Some(f)
}

/// A base chain iptables-nft made: a table of iptables' (`filter`, `nat`, ...) whose base chain
/// is named after its hook (`FORWARD` on forward). `iptables` must keep managing it: an `nft`
/// rule in it makes the chain unreadable to iptables.
fn is_iptables_chain(family: &str, table: &str, chain: &str, hook: &str) -> bool {
    matches!(family, "ip" | "ip6")
        && matches!(table, "filter" | "nat" | "mangle" | "raw" | "security")
        && !hook.is_empty()
        && chain == hook.to_ascii_uppercase()
}

/// Every filter base chain outside edgenet's own tables (names starting with `skip_prefix`)
/// that drops, or may drop, one of `flows`; at most one finding per chain and flow.
pub fn forward_drops(ruleset: &Value, flows: &[Flow], skip_prefix: &str) -> Vec<ForwardDrop> {
    let Some(items) = ruleset.get("nftables").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut chains: HashMap<(String, String, String), &Value> = HashMap::new();
    let mut rules: HashMap<(String, String, String), Vec<&Value>> = HashMap::new();
    let key = |o: &Value, name: &str| {
        (
            o["family"].as_str().unwrap_or("").to_string(),
            o["table"].as_str().unwrap_or("").to_string(),
            o[name].as_str().unwrap_or("").to_string(),
        )
    };
    let mut order = Vec::new();
    for item in items {
        if let Some(c) = item.get("chain") {
            let k = key(c, "name");
            order.push(k.clone());
            chains.insert(k, c);
        } else if let Some(r) = item.get("rule") {
            rules.entry(key(r, "chain")).or_default().push(r);
        }
    }
    let tables_with = |family: &str, table: &str, pred: &dyn Fn(&str) -> bool| {
        chains
            .keys()
            .any(|(f, t, c)| f == family && t == table && pred(c))
    };
    let mut out = Vec::new();
    for k in &order {
        let chain = chains[k];
        let (family, table, name) = k;
        let hook = chain["hook"].as_str().unwrap_or("");
        let kind = chain["type"].as_str().unwrap_or("");
        // `route` chains are output filters; a `nat` chain's drop is as final as a filter's.
        if table.starts_with(skip_prefix) || !matches!(kind, "filter" | "route" | "nat") {
            continue;
        }
        let tool = if table == "firewalld" {
            FirewallTool::Firewalld
        } else if tables_with(family, table, &|c| c == "DOCKER-USER") {
            FirewallTool::Docker
        } else if tables_with(family, table, &|c| c.starts_with("ufw-")) {
            FirewallTool::Ufw
        } else if is_iptables_chain(family, table, name, hook) {
            FirewallTool::Iptables
        } else {
            FirewallTool::Other
        };
        for flow in flows {
            let Some(flow) = flow_at_hook(flow, family, hook, chain) else {
                continue;
            };
            // NAT chains see only the first packet of a connection (never an untracked one).
            if kind == "nat" && flow.ct_state != "new" {
                continue;
            }
            let mut found: Option<(String, bool)> = None;
            let mut dropped_protocols = Vec::new();
            for proto in PROTOCOLS {
                let walk = Walk {
                    family,
                    table,
                    rules: &rules,
                    flow: &flow,
                    proto,
                    passed_accept: Default::default(),
                    walked: Default::default(),
                };
                let verdict = walk.chain(name, 0);
                let (reason, certain) = match verdict {
                    Verdict::Accept => continue,
                    Verdict::Drop(why) => (why, true),
                    Verdict::Unknown(why) => (
                        format!("edgenet cannot evaluate rule `{why}`, which may drop it"),
                        false,
                    ),
                    Verdict::Continue(unknown) => match (chain["policy"].as_str(), unknown) {
                        (Some("drop"), _) => ("policy drop".to_string(), true),
                        (_, Some(why)) => (
                            format!("edgenet cannot evaluate rule `{why}`, which may drop it"),
                            false,
                        ),
                        _ => continue,
                    },
                };
                // A drop after an accept that could not be evaluated is only a possible one.
                let (reason, certain) = match walk.passed_accept.borrow().as_deref() {
                    Some(why) if certain => (
                        format!("{reason}, unless rule `{why}` (which edgenet cannot evaluate) accepts it first"),
                        false,
                    ),
                    _ => (reason, certain),
                };
                dropped_protocols.push(proto);
                if found.as_ref().is_none_or(|(_, c)| !c && certain) {
                    found = Some((reason, certain));
                }
            }
            let Some((reason, certain)) = found else {
                continue;
            };
            let what = if dropped_protocols.len() == PROTOCOLS.len() {
                flow.what.to_string()
            } else {
                format!("{} ({} only)", flow.what, dropped_protocols.join(", "))
            };
            if out.iter().any(|d: &ForwardDrop| {
                d.family == *family && d.table == *table && d.chain == *name && d.flow == what
            }) {
                continue;
            }
            out.push(ForwardDrop {
                family: family.clone(),
                table: table.clone(),
                chain: name.clone(),
                hook: hook.to_string(),
                reason,
                flow: what,
                tool,
                certain,
                chain_flows: Vec::new(),
            });
        }
    }
    let same_chain = |a: &ForwardDrop, b: &ForwardDrop| {
        a.family == b.family && a.table == b.table && a.chain == b.chain
    };
    let all = out.clone();
    for d in &mut out {
        d.chain_flows = all
            .iter()
            .filter(|o| same_chain(o, d))
            .map(|o| o.flow.clone())
            .collect();
    }
    out
}

#[derive(Clone)]
enum Verdict {
    Accept,
    Drop(String),
    /// A rule edgenet cannot evaluate ends the walk with a drop if it matches.
    Unknown(String),
    /// Fell off the end of the chain, or `return`; with the first rule passed over that might
    /// have dropped (could not be evaluated).
    Continue(Option<String>),
}

struct Walk<'a> {
    family: &'a str,
    table: &'a str,
    rules: &'a HashMap<(String, String, String), Vec<&'a Value>>,
    flow: &'a Flow,
    proto: &'a str,
    /// An accept the walk passed over because a match of its rule could not be evaluated: a
    /// drop reached after it is then only a possible one (the packet may have been accepted).
    passed_accept: std::cell::RefCell<Option<String>>,
    /// Each chain's verdict for this packet, once walked: a jump evaluates its target from the
    /// start with the same packet, so it is walked once, however many rules jump to it (chains
    /// that each jump several ways into the next would otherwise cost fan-out^depth walks).
    walked: std::cell::RefCell<HashMap<String, Verdict>>,
}

#[cfg(test)]
thread_local! {
    /// Chains walked on this thread (tests count the walk's work with it).
    static CHAIN_WALKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Chains nest at most this deep (the kernel's limit is 16 jumps).
const MAX_DEPTH: usize = 16;

/// What a match evaluates to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hit {
    Yes,
    No,
    Unknown,
}

impl Walk<'_> {
    fn chain(&self, name: &str, depth: usize) -> Verdict {
        if depth > MAX_DEPTH {
            return Verdict::Continue(None);
        }
        if let Some(verdict) = self.walked.borrow().get(name) {
            return verdict.clone();
        }
        let verdict = self.walk_chain(name, depth);
        self.walked
            .borrow_mut()
            .insert(name.to_string(), verdict.clone());
        verdict
    }

    /// [`Walk::chain`] walked: its rules in order until one decides.
    fn walk_chain(&self, name: &str, depth: usize) -> Verdict {
        #[cfg(test)]
        CHAIN_WALKS.with(|n| n.set(n.get() + 1));
        let key = (
            self.family.to_string(),
            self.table.to_string(),
            name.to_string(),
        );
        // The first rule that might have dropped but could not be evaluated.
        let mut maybe: Option<String> = None;
        for rule in self.rules.get(&key).into_iter().flatten() {
            let Some(exprs) = rule["expr"].as_array() else {
                continue;
            };
            let text = || format!("{} (chain {name})", rule_text(exprs));
            // Whether an earlier match of this rule could not be evaluated.
            let mut unsure = false;
            let mut verdict: Option<Verdict> = None;
            for e in exprs {
                let Some((kind, body)) = e.as_object().and_then(|o| o.iter().next()) else {
                    break;
                };
                let hit = match kind.as_str() {
                    "match" => self.matches(body),
                    // iptables-nft's targets: REJECT ends the packet like `reject`; the NAT
                    // targets let it through as nft's own `masquerade`/`dnat` do.
                    "xt" if body["type"] == "target" => match body["name"].as_str().unwrap_or("") {
                        "REJECT" => {
                            verdict = Some(Verdict::Drop(text()));
                            break;
                        }
                        "MASQUERADE" | "SNAT" | "DNAT" | "REDIRECT" => {
                            verdict = Some(Verdict::Accept);
                            break;
                        }
                        // Targets that only mark, log or count go on to the next rule.
                        "LOG" | "NFLOG" | "MARK" | "CONNMARK" | "TCPMSS" | "CT" | "CHECKSUM" => {
                            Hit::Yes
                        }
                        _ => Hit::Unknown,
                    },
                    "xt" => self.xt(body, exprs),
                    // Statements that do not decide anything. Rate and quota matches (`limit`,
                    // `quota`, `ct count`, xt `limit`/`hashlimit`/`recent`) depend on the
                    // traffic so far: they fall to the unknown case below.
                    "counter" | "log" | "comment" | "mangle" | "meta" | "ct" => Hit::Yes,
                    "accept" | "masquerade" | "snat" | "dnat" => {
                        verdict = Some(Verdict::Accept);
                        break;
                    }
                    "drop" | "reject" => {
                        verdict = Some(Verdict::Drop(text()));
                        break;
                    }
                    "return" => {
                        verdict = Some(Verdict::Continue(None));
                        break;
                    }
                    "jump" | "goto" => {
                        let target = body["target"].as_str().unwrap_or("");
                        verdict = Some(match self.chain(target, depth + 1) {
                            Verdict::Continue(m) if kind == "jump" => {
                                maybe = maybe.or(m);
                                break;
                            }
                            // goto: a return in the target returns from this chain too.
                            v => v,
                        });
                        break;
                    }
                    "vmap" => {
                        verdict = Some(self.vmap(body, depth, &text));
                        break;
                    }
                    // Anything else (queues, sets of verdicts by map name, ...): cannot tell.
                    _ => Hit::Unknown,
                };
                match hit {
                    Hit::Yes => {}
                    Hit::No => break,
                    Hit::Unknown => unsure = true,
                }
            }
            let Some(verdict) = verdict else { continue };
            match verdict {
                // A rule we could not fully read: its accept is not counted on, its drop may be.
                Verdict::Accept if unsure => {
                    self.passed_accept.borrow_mut().get_or_insert_with(text);
                }
                Verdict::Drop(_) | Verdict::Unknown(_) if unsure => {
                    maybe = maybe.or_else(|| Some(text()));
                }
                Verdict::Continue(m) if unsure => maybe = maybe.or(m),
                Verdict::Accept => {
                    return match maybe {
                        Some(why) => Verdict::Unknown(why),
                        None => Verdict::Accept,
                    }
                }
                Verdict::Continue(m) => return Verdict::Continue(maybe.or(m)),
                v => return v,
            }
        }
        Verdict::Continue(maybe)
    }

    /// A verdict map: the key is looked up, a matching element's verdict is taken.
    fn vmap(&self, body: &Value, depth: usize, text: &dyn Fn() -> String) -> Verdict {
        let Some(elems) = body["data"].get("set").and_then(Value::as_array) else {
            return Verdict::Unknown(text());
        };
        for el in elems {
            let Some([k, v]) = el.as_array().map(Vec::as_slice) else {
                return Verdict::Unknown(text());
            };
            let m = json!({"op": "==", "left": body["key"], "right": k});
            match self.matches(&m) {
                Hit::No => continue,
                Hit::Unknown => return Verdict::Unknown(text()),
                Hit::Yes => {}
            }
            let Some((kind, target)) = v.as_object().and_then(|o| o.iter().next()) else {
                return Verdict::Unknown(text());
            };
            return match kind.as_str() {
                "accept" => Verdict::Accept,
                "drop" | "reject" => Verdict::Drop(text()),
                "return" => Verdict::Continue(None),
                "jump" | "goto" => {
                    match self.chain(target["target"].as_str().unwrap_or(""), depth + 1) {
                        Verdict::Continue(m) if kind == "jump" => Verdict::Continue(m),
                        v => v,
                    }
                }
                _ => Verdict::Unknown(text()),
            };
        }
        Verdict::Continue(None)
    }

    /// iptables-nft's matches that `nft -j` shows only by name. `conntrack`/`state`: read as
    /// the usual `RELATED,ESTABLISHED` accept and `INVALID` drop (the states are not listed);
    /// `physdev` as `--physdev-is-bridged` on a bridged flow; `comment` decides nothing.
    fn xt(&self, body: &Value, exprs: &[Value]) -> Hit {
        let accepts = exprs.iter().any(|e| e.get("accept").is_some());
        match body["name"].as_str().unwrap_or("") {
            "comment" => Hit::Yes,
            _ if body["type"] == "target" => Hit::Unknown,
            "conntrack" | "state" if accepts => {
                if self.flow.ct_state == "established" {
                    Hit::Yes
                } else {
                    Hit::No
                }
            }
            "conntrack" | "state" => Hit::No,
            "physdev" if self.flow.iif == self.flow.oif => Hit::Yes,
            "physdev" => Hit::No,
            // `-m tcp`/`-m udp`/`-m icmp` (`! --dport 22`, ...) never match another protocol's
            // packet; for their own protocol the ports are not shown, so: unknown.
            name @ ("tcp" | "udp" | "icmp") if name != self.proto => Hit::No,
            _ => Hit::Unknown,
        }
    }

    /// Whether a match holds for the flow, for what edgenet can evaluate.
    fn matches(&self, m: &Value) -> Hit {
        let Some(op) = m["op"].as_str() else {
            return Hit::Unknown;
        };
        let Some((lk, lv)) = m["left"].as_object().and_then(|l| l.iter().next()) else {
            return Hit::Unknown;
        };
        let right = &m["right"];
        let field = lv
            .get("key")
            .or_else(|| lv.get("field"))
            .and_then(Value::as_str);
        let protocol = lv.get("protocol").and_then(Value::as_str);
        let hit = match (lk.as_str(), protocol, field) {
            // By index: nft prints the interface's name. No interface (the output hook's
            // input one): the load fails and the rule does not match, `!=` or not.
            ("meta", _, Some("iif")) if self.flow.iif.is_empty() => return Hit::No,
            ("meta", _, Some("oif")) if self.flow.oif.is_empty() => return Hit::No,
            ("meta", _, Some("iif")) => exact_name_in(&self.flow.iif, right),
            ("meta", _, Some("oif")) => exact_name_in(&self.flow.oif, right),
            ("meta", _, Some("iifname")) => name_in(&self.flow.iif, right),
            ("meta", _, Some("oifname")) => name_in(&self.flow.oif, right),
            ("meta", _, Some("nfproto")) => word_in("ipv4", right),
            ("meta", _, Some("l4proto")) | ("payload", Some("ip"), Some("protocol")) => {
                word_in(self.proto, right)
            }
            ("meta", _, Some("protocol")) | ("payload", Some("ether"), Some("type")) => {
                word_in("ip", right)
            }
            ("payload", Some("ip"), Some("saddr")) => addr_in(self.flow.saddr, right),
            ("payload", Some("ip"), Some("daddr")) => addr_in(self.flow.daddr, right),
            // Any IPv6 header match: the switch's packets are IPv4.
            ("payload", Some("ip6"), _) => Some(false),
            // A port: the nodes use every port, so a rule for some ports does not cut them
            // off, but `!=` some ports matches most of their traffic (only packets of that
            // protocol have the field).
            ("payload", Some(p @ ("tcp" | "udp" | "th")), Some("dport" | "sport")) => {
                let carries = if p == "th" {
                    self.proto != "icmp"
                } else {
                    self.proto == p
                };
                return match op {
                    _ if !carries => Hit::No,
                    "!=" => Hit::Yes,
                    "==" | "in" => Hit::No,
                    _ => Hit::Unknown,
                };
            }
            ("payload", Some("tcp" | "udp"), _) => Some(self.proto == protocol.unwrap_or("")),
            ("payload", Some("icmp"), _) => Some(self.proto == "icmp"),
            ("ct", _, Some("state")) => word_in(self.flow.ct_state, right),
            // The switch's flows are never destination-NATed by the host (firewalld accepts
            // `ct status dnat` before its reject).
            ("ct", _, Some("status")) if right == "dnat" => Some(false),
            _ => None,
        };
        let Some(hit) = hit else { return Hit::Unknown };
        let yes = match op {
            "==" | "in" => hit,
            "!=" => !hit,
            _ => return Hit::Unknown,
        };
        if yes {
            Hit::Yes
        } else {
            Hit::No
        }
    }
}

/// A word (`ipv4`, `tcp`, `established`) against a right-hand side: a word or a set of them.
fn word_in(word: &str, right: &Value) -> Option<bool> {
    match right {
        Value::String(s) => Some(s == word),
        Value::Array(a) => Some(a.iter().any(|v| v.as_str() == Some(word))),
        Value::Object(o) => Some(
            o.get("set")?
                .as_array()?
                .iter()
                .any(|v| v.as_str() == Some(word)),
        ),
        _ => None,
    }
}

/// An address against an nft right-hand side: an address, a prefix, a range, or a set of them.
fn addr_in(addr: Option<Ipv4Addr>, right: &Value) -> Option<bool> {
    let addr = addr?;
    let one = |v: &Value| -> Option<bool> {
        match v {
            Value::String(s) => {
                if s.starts_with('@') {
                    return None;
                }
                Some(s.parse::<Ipv4Addr>().ok()? == addr)
            }
            Value::Object(o) => {
                if let Some(p) = o.get("prefix") {
                    let net = ipnet::Ipv4Net::new(
                        p["addr"].as_str()?.parse().ok()?,
                        u8::try_from(p["len"].as_u64()?).ok()?,
                    )
                    .ok()?;
                    Some(net.contains(&addr))
                } else if let Some(r) = o.get("range").and_then(Value::as_array) {
                    let lo: Ipv4Addr = r.first()?.as_str()?.parse().ok()?;
                    let hi: Ipv4Addr = r.get(1)?.as_str()?.parse().ok()?;
                    Some(lo <= addr && addr <= hi)
                } else {
                    None
                }
            }
            _ => None,
        }
    };
    match right {
        Value::Object(o) if o.contains_key("set") => o
            .get("set")?
            .as_array()?
            .iter()
            .map(one)
            .try_fold(false, |acc, x| x.map(|x| acc || x)),
        v => one(v),
    }
}

/// An interface name against an nft right-hand side: a name (`br*` wildcards) or a set of them.
fn name_in(name: &str, right: &Value) -> Option<bool> {
    let placeholder = name.starts_with('\u{0}');
    let one = |pat: &str| match pat.strip_suffix('*') {
        Some(prefix) if !pat.ends_with("\\*") => name.starts_with(prefix) && !placeholder,
        _ => pat == name,
    };
    match right {
        Value::String(s) if s.starts_with('@') => None,
        Value::String(s) => Some(one(s)),
        Value::Object(o) => o
            .get("set")?
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(one))
            .try_fold(false, |acc, x| x.map(|x| acc || x)),
        _ => None,
    }
}

/// An interface index (printed as its name) against a name or a set of names: no wildcards.
fn exact_name_in(name: &str, right: &Value) -> Option<bool> {
    match right {
        Value::String(s) if s.starts_with('@') || s.ends_with('*') => None,
        Value::String(s) => Some(s == name),
        Value::Object(o) => o
            .get("set")?
            .as_array()?
            .iter()
            .map(|v| v.as_str().filter(|s| !s.ends_with('*')).map(|s| s == name))
            .try_fold(false, |acc, x| x.map(|x| acc || x)),
        _ => None,
    }
}

/// A rule as `nft list` prints it (for what the walk reads; anything else by its keyword).
fn rule_text(exprs: &[Value]) -> String {
    exprs
        .iter()
        .filter_map(|e| {
            let (kind, body) = e.as_object()?.iter().next()?;
            Some(match kind.as_str() {
                "match" => {
                    let (left, quoted) = left_text(&body["left"]);
                    let op = match body["op"].as_str() {
                        Some("==") | Some("in") | None => String::new(),
                        Some(op) => format!("{op} "),
                    };
                    format!("{left} {op}{}", value_text(&body["right"], quoted))
                }
                "counter" => return None,
                // iptables-nft's REJECT is what `nft list` prints as `reject`.
                "xt" if body["type"] == "target" && body["name"] == "REJECT" => {
                    "reject".to_string()
                }
                "xt" => format!(
                    "xt {} \"{}\"",
                    body["type"].as_str().unwrap_or("match"),
                    body["name"].as_str().unwrap_or("?")
                ),
                "quota" => format!(
                    "quota {}{} {}",
                    if body["inv"] == true { "over " } else { "" },
                    body["val"],
                    body["val_unit"].as_str().unwrap_or("bytes")
                ),
                "ct count" => format!(
                    "ct count {}{}",
                    if body["inv"] == true { "over " } else { "" },
                    body["val"]
                ),
                "jump" | "goto" => format!("{kind} {}", body["target"].as_str().unwrap_or("?")),
                "reject" => match (body["type"].as_str(), body["expr"].as_str()) {
                    (Some(t), Some(x)) => format!("reject with {t} {x}"),
                    (Some("tcp reset"), None) => "reject with tcp reset".to_string(),
                    _ => "reject".to_string(),
                },
                "limit" => format!(
                    "limit rate {}{}/{}",
                    if body["inv"] == true { "over " } else { "" },
                    body["rate"],
                    body["per"].as_str().unwrap_or("second")
                ),
                "log" => match body["prefix"].as_str() {
                    Some(p) => format!("log prefix \"{p}\""),
                    None => "log".to_string(),
                },
                "vmap" => {
                    let (key, quoted) = left_text(&body["key"]);
                    let elems: Vec<String> = body["data"]["set"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|el| {
                                    let [k, v] = el.as_array()?.as_slice() else {
                                        return None;
                                    };
                                    let (verdict, target) = v.as_object()?.iter().next()?;
                                    let target = target["target"]
                                        .as_str()
                                        .map(|t| format!(" {t}"))
                                        .unwrap_or_default();
                                    Some(format!("{} : {verdict}{target}", value_text(k, quoted)))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    format!("{key} vmap {{ {} }}", elems.join(", "))
                }
                _ => kind.clone(),
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The left side of a match as nft prints it, and whether its values are quoted names.
fn left_text(left: &Value) -> (String, bool) {
    let Some((kind, body)) = left.as_object().and_then(|l| l.iter().next()) else {
        return (left.to_string(), false);
    };
    let key = body.get("key").and_then(Value::as_str).unwrap_or("");
    match kind.as_str() {
        "meta" => {
            let names = matches!(key, "iifname" | "oifname" | "ibrname" | "obrname");
            let bare = names || matches!(key, "iif" | "oif" | "iifgroup" | "oifgroup");
            let text = if bare {
                key.to_string()
            } else {
                format!("meta {key}")
            };
            (text, names)
        }
        "payload" => match (body["protocol"].as_str(), body["field"].as_str()) {
            (Some(p), Some(f)) => (format!("{p} {f}"), false),
            _ => (
                format!(
                    "@{},{},{}",
                    body["base"].as_str().unwrap_or("?"),
                    body["offset"],
                    body["len"]
                ),
                false,
            ),
        },
        "ct" => match body["dir"].as_str() {
            Some(dir) => (format!("ct {dir} {key}"), false),
            None => (format!("ct {key}"), false),
        },
        other => (other.to_string(), false),
    }
}

/// A right-hand value as nft prints it: a name quoted, a prefix `a/n`, a range `a-b`, a set
/// `{ a, b }`, flags `a,b`.
fn value_text(v: &Value, quoted: bool) -> String {
    match v {
        Value::String(s) if quoted && !s.starts_with('@') => format!("\"{s}\""),
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .map(|x| value_text(x, quoted))
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(o) => {
            if let Some(p) = o.get("prefix") {
                format!("{}/{}", p["addr"].as_str().unwrap_or("?"), p["len"])
            } else if let Some([lo, hi]) =
                o.get("range").and_then(Value::as_array).map(Vec::as_slice)
            {
                format!("{}-{}", value_text(lo, quoted), value_text(hi, quoted))
            } else if let Some(set) = o.get("set").and_then(Value::as_array) {
                let items: Vec<String> = set.iter().map(|x| value_text(x, quoted)).collect();
                format!("{{ {} }}", items.join(", "))
            } else {
                v.to_string()
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(table: &str, name: &str, policy: Option<&str>) -> Value {
        let mut c = json!({"family": "ip", "table": table, "name": name});
        if let Some(p) = policy {
            c["type"] = json!("filter");
            c["hook"] = json!("forward");
            c["prio"] = json!(0);
            c["policy"] = json!(p);
        }
        json!({ "chain": c })
    }

    fn rule(table: &str, chain: &str, expr: Value) -> Value {
        json!({"rule": {"family": "ip", "table": table, "chain": chain, "expr": expr}})
    }

    fn iif(name: &str) -> Value {
        json!({"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": name}})
    }
    fn oif(name: &str) -> Value {
        json!({"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": name}})
    }

    /// Docker's shape: FORWARD policy drop, jump DOCKER-USER (which returns), docker0 rules.
    fn docker(user: Vec<Value>) -> Value {
        let mut items = vec![
            chain("filter", "DOCKER-USER", None),
            chain("filter", "FORWARD", Some("drop")),
            rule(
                "filter",
                "FORWARD",
                json!([{"counter": null}, {"jump": {"target": "DOCKER-USER"}}]),
            ),
            rule(
                "filter",
                "FORWARD",
                json!([oif("docker0"), {"xt": {"type": "match", "name": "conntrack"}}, {"accept": null}]),
            ),
            rule(
                "filter",
                "FORWARD",
                json!([iif("docker0"), {"accept": null}]),
            ),
        ];
        items.extend(user);
        items.push(rule(
            "filter",
            "DOCKER-USER",
            json!([{"counter": null}, {"return": null}]),
        ));
        json!({ "nftables": items })
    }

    fn nat(bridge: &str, bridged: bool) -> Vec<Flow> {
        switch_flows(&SwitchTraffic {
            bridge: bridge.into(),
            nat: true,
            bridged,
            node: Some("192.168.0.2".parse().unwrap()),
            uplink: Some("up0".into()),
            outside: vec!["198.18.0.1".parse().unwrap(), INTERNET],
            ..Default::default()
        })
    }

    fn ip_forward_drops(doc: &Value, flows: &[Flow]) -> Vec<ForwardDrop> {
        forward_drops(doc, flows, "edgenet_")
            .into_iter()
            .filter(|d| d.hook == "forward" && d.family != "bridge")
            .collect()
    }

    fn addr(op: &str, field: &str, right: Value) -> Value {
        json!({"match": {"op": op, "left": {"payload": {"protocol": "ip", "field": field}}, "right": right}})
    }

    #[test]
    fn frames_between_the_nodes_of_an_internal_switch_are_untracked() {
        // edgenet's table notracks them: a forward filter that accepts by conntrack state
        // alone (new from the switch, then established) drops them.
        let doc = json!({"nftables": [
            chain("filter", "FORWARD", Some("drop")),
            rule("filter", "FORWARD", json!([{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}])),
            rule("filter", "FORWARD", json!([iif("br9"), {"match": {"op": "==", "left": {"ct": {"key": "state"}}, "right": "new"}}, {"accept": null}])),
        ]});
        let flows = nat("br9", true);
        let within: Vec<_> = flows
            .iter()
            .filter(|f| f.what.contains("within the switch"))
            .collect();
        assert_eq!(within.len(), 2);
        assert!(within.iter().all(|f| f.ct_state == "untracked"));
        let drops = ip_forward_drops(&doc, &flows);
        let what: Vec<_> = drops.iter().map(|d| d.flow.as_str()).collect();
        assert_eq!(
            what,
            ["frames within the switch", "replies within the switch"],
            "{drops:#?}"
        );
        // An accept by interface, as edgenet's own rules and fixes are, lets them through.
        let mut fixed = doc.clone();
        fixed["nftables"].as_array_mut().unwrap().push(rule(
            "filter",
            "FORWARD",
            json!([iif("br9"), {"accept": null}]),
        ));
        assert!(ip_forward_drops(&fixed, &flows).is_empty());
    }

    #[test]
    fn docker_policy_drop_is_found_and_docker_user_accepts_fix_it() {
        let flows = nat("aksedgesw-int", true);
        let drops = ip_forward_drops(&docker(vec![]), &flows);
        assert_eq!(drops.len(), 4, "{drops:#?}");
        assert!(drops
            .iter()
            .all(|d| d.tool == FirewallTool::Docker && d.reason == "policy drop" && d.certain));
        assert!(drops[0]
            .fix("aksedgesw-int", Some("192.168.0.0/24"))
            .contains("DOCKER-USER -i aksedgesw-int -s 192.168.0.0/24"));

        // edgenet's narrow rules: the subnet's traffic in and out.
        let fixed = docker(vec![
            rule(
                "filter",
                "DOCKER-USER",
                json!([iif("aksedgesw-int"), addr("==", "saddr", json!({"prefix": {"addr": "192.168.0.0", "len": 24}})), {"xt": {"type": "match", "name": "comment"}}, {"counter": null}, {"accept": null}]),
            ),
            rule(
                "filter",
                "DOCKER-USER",
                json!([oif("aksedgesw-int"), addr("==", "daddr", json!({"prefix": {"addr": "192.168.0.0", "len": 24}})), {"accept": null}]),
            ),
        ]);
        assert_eq!(ip_forward_drops(&fixed, &flows), vec![]);
        // Only the inbound half: replies still die at the policy.
        let half = docker(vec![rule(
            "filter",
            "DOCKER-USER",
            json!([iif("aksedgesw-int"), {"accept": null}]),
        )]);
        let drops = ip_forward_drops(&half, &flows);
        assert_eq!(drops.len(), 1);
        assert_eq!(drops[0].flow, "replies to the nodes");
    }

    /// The retest's rulesets (issue 8): each drops the nodes' traffic, and the walker says so.
    #[test]
    fn address_uplink_vmap_icmp_and_reply_drops_are_found() {
        let flows = nat("aksedgesw-int", false);
        let t = |expr: Value| {
            json!({"nftables": [
                chain("t", "f", Some("accept")),
                rule("t", "f", expr),
            ]})
        };
        let cases = [
            (
                "saddr prefix",
                json!([addr("==", "saddr", json!({"prefix": {"addr": "192.168.0.0", "len": 16}})), {"drop": null}]),
                "connections the nodes open to the outside",
            ),
            (
                "daddr negated",
                json!([addr("!=", "daddr", json!({"prefix": {"addr": "192.168.0.0", "len": 16}})), {"drop": null}]),
                "connections the nodes open to the outside",
            ),
            (
                "uplink",
                json!([oif("up0"), {"drop": null}]),
                "connections the nodes open to the outside",
            ),
            (
                "vmap",
                json!([{"vmap": {"key": {"meta": {"key": "iifname"}}, "data": {"set": [["aksedgesw-int", {"drop": null}]]}}}]),
                "connections the nodes open to the outside",
            ),
            (
                "icmp only",
                json!([{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "icmp"}}, {"drop": null}]),
                "connections the nodes open to the outside (icmp only)",
            ),
            // Docker's documented "only from the gateway" rule drops the replies from others.
            (
                "docker !-s",
                json!([iif("up0"), addr("!=", "saddr", json!("198.18.0.1")), {"drop": null}]),
                "replies to the nodes",
            ),
        ];
        for (what, expr, flow) in cases {
            let drops = ip_forward_drops(&t(expr), &flows);
            assert!(
                drops.iter().any(|d| d.flow == flow && d.certain),
                "{what}: {drops:#?}"
            );
        }
        // A rule for another interface, subnet or protocol is not a drop.
        for expr in [
            json!([oif("eth9"), {"drop": null}]),
            json!([addr("==", "saddr", json!({"prefix": {"addr": "10.0.0.0", "len": 8}})), {"drop": null}]),
            json!([{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 25}}, {"drop": null}]),
        ] {
            assert_eq!(ip_forward_drops(&t(expr.clone()), &flows), vec![], "{expr}");
        }
    }

    #[test]
    fn input_bridge_and_unreadable_drops_are_reported() {
        let mut traffic = SwitchTraffic {
            bridge: "aksedgesw-int".into(),
            nat: true,
            node: Some("192.168.0.2".parse().unwrap()),
            host: Some("192.168.0.1".parse().unwrap()),
            ..Default::default()
        };
        let input = json!({"nftables": [
            {"chain": {"family": "inet", "table": "t", "name": "in", "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
        ]});
        let drops = forward_drops(&input, &switch_flows(&traffic), "edgenet_");
        assert!(
            drops
                .iter()
                .any(|d| d.hook == "input" && d.flow.contains("host")),
            "{drops:#?}"
        );

        traffic.external = true;
        traffic.nat = false;
        traffic.uplink = Some("eth0".into());
        let bridge = json!({"nftables": [
            {"chain": {"family": "bridge", "table": "t", "name": "f", "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
        ]});
        let drops = forward_drops(&bridge, &switch_flows(&traffic), "edgenet_");
        assert!(
            drops
                .iter()
                .any(|d| d.family == "bridge" && d.flow.contains("LAN")),
            "{drops:#?}"
        );

        // A set lookup cannot be evaluated: a warning naming the rule, not silence.
        let set = json!({"nftables": [
            chain("t", "f", Some("accept")),
            rule("t", "f", json!([addr("==", "saddr", json!("@blocked")), {"drop": null}])),
        ]});
        let drops = ip_forward_drops(&set, &nat("aksedgesw-int", false));
        assert!(
            !drops.is_empty() && drops.iter().all(|d| !d.certain),
            "{drops:#?}"
        );
        assert!(drops[0].reason.contains("@blocked"), "{}", drops[0].reason);
    }

    #[test]
    fn ufw_conntrack_accepts_replies_and_a_final_drop_rule_counts() {
        // iptables-nft's conntrack match as `nft -j` shows it: by name only.
        let doc = json!({"nftables": [
            chain("filter", "FORWARD", Some("drop")),
            chain("filter", "ufw-before-forward", None),
            chain("filter", "ufw-user-forward", None),
            rule("filter", "FORWARD", json!([{"jump": {"target": "ufw-before-forward"}}])),
            rule("filter", "ufw-before-forward", json!([{"xt": {"type": "match", "name": "conntrack"}}, {"counter": null}, {"accept": null}])),
            rule("filter", "ufw-before-forward", json!([{"jump": {"target": "ufw-user-forward"}}])),
        ]});
        let flows = nat("br9", false);
        let drops = ip_forward_drops(&doc, &flows);
        assert_eq!(drops.len(), 1, "{drops:#?}");
        assert_eq!(drops[0].flow, "connections the nodes open to the outside");
        assert_eq!(drops[0].tool, FirewallTool::Ufw);
        assert!(drops[0]
            .fix("br9", Some("192.168.0.0/24"))
            .contains("ufw route allow in on br9 from 192.168.0.0/24"));

        // A chain with policy accept that ends in an unconditional reject (firewalld's shape).
        let fw = json!({"nftables": [
            {"chain": {"family": "inet", "table": "firewalld", "name": "filter_FORWARD", "type": "filter", "hook": "forward", "prio": 10, "policy": "accept"}},
            {"rule": {"family": "inet", "table": "firewalld", "chain": "filter_FORWARD", "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}},
            {"rule": {"family": "inet", "table": "firewalld", "chain": "filter_FORWARD", "expr": [iif("lo"), {"accept": null}]}},
            {"rule": {"family": "inet", "table": "firewalld", "chain": "filter_FORWARD", "expr": [{"reject": {"type": "icmpx", "expr": "admin-prohibited"}}]}},
        ]});
        let drops = ip_forward_drops(&fw, &flows);
        assert_eq!(drops.len(), 1);
        assert_eq!(drops[0].tool, FirewallTool::Firewalld);
        assert!(drops[0].reason.contains("reject"), "{}", drops[0].reason);
    }

    /// B17b D1: iptables' `-j REJECT` is an xt target in the listing; it drops like `reject`
    /// (it was read as a rule that decides nothing). A LOG target goes on to the next rule.
    #[test]
    fn an_iptables_reject_target_is_a_drop_and_a_log_target_is_not() {
        let xt_target = |name: &str| json!({"xt": {"type": "target", "name": name}});
        let doc = json!({"nftables": [
            chain("filter", "FORWARD", Some("accept")),
            rule("filter", "FORWARD", json!([iif("br9"), {"counter": null}, xt_target("LOG")])),
            rule("filter", "FORWARD", json!([iif("br9"), {"counter": null}, xt_target("REJECT")])),
        ]});
        let flows = nat("br9", false);
        let drops = ip_forward_drops(&doc, &flows);
        assert!(!drops.is_empty(), "{drops:#?}");
        assert!(drops.iter().all(|d| d.certain), "{drops:#?}");
        // As `nft list` prints iptables-nft's REJECT (B18b 7).
        assert!(
            drops[0].reason.contains("iifname \"br9\" reject"),
            "{}",
            drops[0].reason
        );
        // Without the REJECT rule the LOG rule alone drops nothing.
        let log_only = json!({"nftables": [
            chain("filter", "FORWARD", Some("accept")),
            rule("filter", "FORWARD", json!([iif("br9"), {"counter": null}, xt_target("LOG")])),
        ]});
        assert!(ip_forward_drops(&log_only, &flows).is_empty());
    }

    /// B18b 1: chains that each jump several ways into the next cost fan-out^depth walks
    /// (check, deploy and status ran for minutes at depth 13); each chain is walked once per
    /// packet now, and the verdict is the same.
    #[test]
    fn a_chain_jumped_to_many_times_is_walked_once_per_packet() {
        let walks = |depth: usize| {
            let mut items = vec![chain("filter", "FORWARD", Some("drop"))];
            let mut from = "FORWARD".to_string();
            for level in 0..depth {
                let to = format!("c{level}");
                items.push(chain("filter", &to, None));
                for _ in 0..4 {
                    items.push(rule(
                        "filter",
                        &from,
                        json!([{"counter": null}, {"jump": {"target": to}}]),
                    ));
                }
                from = to;
            }
            items.push(rule("filter", &from, json!([{"counter": null}])));
            let doc = json!({ "nftables": items });
            CHAIN_WALKS.with(|n| n.set(0));
            let drops = ip_forward_drops(&doc, &nat("br9", false));
            assert!(
                !drops.is_empty() && drops.iter().all(|d| d.certain),
                "{drops:#?}"
            );
            CHAIN_WALKS.with(|n| n.get())
        };
        let one = walks(0);
        assert_eq!(walks(9), 10 * one);
    }

    /// B17b D2: an accept whose match edgenet cannot evaluate (a named set, `meta pkttype`, an
    /// iprange) before a policy drop: the drop is only a possible one (a warning), not a
    /// certain one that refuses the deploy.
    #[test]
    fn a_drop_after_an_accept_edgenet_cannot_evaluate_is_only_possible() {
        let named_set = json!({"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "@switches"}});
        let pkttype = json!({"match": {"op": "==", "left": {"meta": {"key": "pkttype"}}, "right": "unicast"}});
        for unknown in [named_set, pkttype] {
            let doc = json!({"nftables": [
                chain("filter", "FORWARD", Some("drop")),
                rule("filter", "FORWARD", json!([unknown.clone(), {"accept": null}])),
            ]});
            let drops = ip_forward_drops(&doc, &nat("br9", false));
            assert!(!drops.is_empty(), "{unknown}");
            assert!(drops.iter().all(|d| !d.certain), "{drops:#?}");
            assert!(
                drops[0].reason.contains("unless rule"),
                "{}",
                drops[0].reason
            );
        }
        // A drop the walk reads fully stays certain.
        let doc = json!({"nftables": [
            chain("filter", "FORWARD", Some("drop")),
            rule("filter", "FORWARD", json!([iif("other0"), {"accept": null}])),
        ]});
        let drops = ip_forward_drops(&doc, &nat("br9", false));
        assert!(
            !drops.is_empty() && drops.iter().all(|d| d.certain),
            "{drops:#?}"
        );
    }

    #[test]
    fn our_own_tables_and_other_interfaces_are_not_drops() {
        let doc = json!({"nftables": [
            chain("edgenet_abc", "forward", Some("drop")),
            chain("t", "fwd", Some("accept")),
            // Wildcards and negation are evaluated.
            rule("t", "fwd", json!([{"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "br*"}}, {"drop": null}])),
        ]});
        let bridged = |b: &str| {
            switch_flows(&SwitchTraffic {
                bridge: b.into(),
                bridged: true,
                ..Default::default()
            })
        };
        assert_eq!(ip_forward_drops(&doc, &bridged("br0")), vec![]);
        let drops = ip_forward_drops(&doc, &bridged("xbr0"));
        assert_eq!(drops.len(), 2);
        assert_eq!(drops[0].tool, FirewallTool::Other);
        assert!(drops[0]
            .fix("xbr0", None)
            .starts_with("nft insert rule ip t fwd iifname \"xbr0\" oifname \"xbr0\" accept"));
    }

    fn base(family: &str, table: &str, name: &str, kind: &str, hook: &str, policy: &str) -> Value {
        json!({"chain": {"family": family, "table": table, "name": name, "type": kind, "hook": hook, "prio": 0, "policy": policy}})
    }

    fn rule_in(family: &str, table: &str, chain: &str, expr: Value) -> Value {
        json!({"rule": {"family": family, "table": table, "chain": chain, "expr": expr}})
    }

    /// B17b D3: `tcp dport != 22 drop` drops all TCP but port 22 (it was read as a rule for
    /// some ports only); `tcp dport 22 drop` is one, and a UDP packet has no TCP port.
    #[test]
    fn a_negated_port_match_drops_nearly_all_of_that_protocol() {
        let port = |op: &str, proto: &str, port: u64| json!({"match": {"op": op, "left": {"payload": {"protocol": proto, "field": "dport"}}, "right": port}});
        let doc = |expr: Value| json!({"nftables": [chain("t", "f", Some("accept")), rule("t", "f", expr)]});
        let flows = nat("aksedgesw-int", false);
        let drops = ip_forward_drops(&doc(json!([port("!=", "tcp", 22), {"drop": null}])), &flows);
        assert!(!drops.is_empty(), "tcp dport != 22 drop is not reported");
        assert!(
            drops
                .iter()
                .all(|d| d.certain && d.flow.ends_with("(tcp only)")),
            "{drops:#?}"
        );
        assert!(
            drops[0].reason.starts_with("tcp dport != 22 drop"),
            "{}",
            drops[0].reason
        );
        let drops = ip_forward_drops(&doc(json!([port("!=", "udp", 53), {"drop": null}])), &flows);
        assert!(
            !drops.is_empty() && drops.iter().all(|d| d.flow.ends_with("(udp only)")),
            "{drops:#?}"
        );
        assert_eq!(
            ip_forward_drops(&doc(json!([port("==", "tcp", 22), {"drop": null}])), &flows),
            vec![]
        );
    }

    /// D7: iptables-nft's `-p tcp -m tcp ! --dport 22 -j REJECT` as older iptables writes it
    /// (an `xt` match `tcp`, its protocol match not shown): only TCP is dropped, said so, as
    /// for the native `tcp dport != 22`.
    #[test]
    fn an_xt_protocol_match_drops_only_its_protocol() {
        let doc = |expr: Value| json!({"nftables": [chain("t", "f", Some("accept")), rule("t", "f", expr)]});
        let flows = nat("aksedgesw-int", false);
        let reject = json!({"xt": {"type": "target", "name": "REJECT"}});
        for name in ["tcp", "udp"] {
            let drops = ip_forward_drops(
                &doc(json!([{"xt": {"type": "match", "name": name}}, reject])),
                &flows,
            );
            assert!(!drops.is_empty(), "{name}");
            assert!(
                drops
                    .iter()
                    .all(|d| d.flow.ends_with(&format!("({name} only)"))),
                "{drops:#?}"
            );
        }
    }

    /// B17b D3: a rate or quota match decides by the traffic so far: the verdict is unknown (a
    /// warning), never "always matches" (`limit … accept` before a policy drop was a pass).
    #[test]
    fn rate_and_quota_matches_make_the_verdict_unknown() {
        let limit = json!({"limit": {"rate": 1, "burst": 5, "per": "second"}});
        let xt = |name: &str| json!({"xt": {"type": "match", "name": name}});
        for stateful in [
            limit.clone(),
            json!({"quota": {"val": 100, "val_unit": "mbytes"}}),
            json!({"ct count": {"val": 10}}),
            xt("limit"),
            xt("hashlimit"),
            xt("recent"),
        ] {
            let doc = json!({"nftables": [
                chain("t", "f", Some("drop")),
                rule("t", "f", json!([iif("aksedgesw-int"), stateful.clone(), {"accept": null}])),
                rule("t", "f", json!([oif("aksedgesw-int"), {"accept": null}])),
            ]});
            let drops = ip_forward_drops(&doc, &nat("aksedgesw-int", false));
            assert!(!drops.is_empty(), "{stateful}: silence");
            assert!(drops.iter().all(|d| !d.certain), "{stateful}: {drops:#?}");
        }
        // A limited drop: may drop.
        let doc = json!({"nftables": [
            chain("t", "f", Some("accept")),
            rule("t", "f", json!([iif("aksedgesw-int"), {"limit": {"rate": 10, "burst": 5, "per": "second", "inv": true}}, {"drop": null}])),
        ]});
        let drops = ip_forward_drops(&doc, &nat("aksedgesw-int", false));
        assert!(
            !drops.is_empty() && drops.iter().all(|d| !d.certain),
            "{drops:#?}"
        );
        assert!(
            drops[0].reason.contains("limit rate over 10/second drop"),
            "{}",
            drops[0].reason
        );
        // Quoted with their values, as `nft list` prints them (B18b 7).
        for (stateful, text) in [
            (
                json!({"quota": {"val": 100, "val_unit": "mbytes", "inv": true}}),
                "quota over 100 mbytes drop",
            ),
            (
                json!({"ct count": {"val": 100, "inv": true}}),
                "ct count over 100 drop",
            ),
        ] {
            let doc = json!({"nftables": [
                chain("t", "f", Some("accept")),
                rule("t", "f", json!([iif("aksedgesw-int"), stateful, {"drop": null}])),
            ]});
            let drops = ip_forward_drops(&doc, &nat("aksedgesw-int", false));
            assert!(
                drops.first().is_some_and(|d| d.reason.contains(text)),
                "{text}: {drops:#?}"
            );
        }
    }

    fn nat_with_host() -> Vec<Flow> {
        switch_flows(&SwitchTraffic {
            bridge: "aksedgesw-int".into(),
            nat: true,
            node: Some("192.168.0.2".parse().unwrap()),
            host: Some("192.168.0.1".parse().unwrap()),
            uplink: Some("up0".into()),
            outside: vec!["198.18.0.1".parse().unwrap(), INTERNET],
            ..Default::default()
        })
    }

    /// B17b D8: an output policy drop (the host's replies to the nodes), a nat prerouting drop
    /// and a netdev ingress drop on the uplink were never walked.
    #[test]
    fn output_nat_and_netdev_ingress_drops_are_found() {
        let flows = nat_with_host();
        let output = json!({"nftables": [
            base("inet", "o", "out", "filter", "output", "drop"),
            rule_in("inet", "o", "out", json!([{"match": {"op": "==", "left": {"meta": {"key": "oif"}}, "right": "lo"}}, {"accept": null}])),
        ]});
        let drops = forward_drops(&output, &flows, "edgenet_");
        assert!(
            drops
                .iter()
                .any(|d| d.hook == "output" && d.certain && d.flow.contains("host's replies")),
            "{drops:#?}"
        );
        assert!(drops[0]
            .fix("aksedgesw-int", Some("192.168.0.0/24"))
            .starts_with("nft insert rule inet o out oifname \"aksedgesw-int\" accept"));

        let nat_drop = json!({"nftables": [
            base("ip", "n", "pre", "nat", "prerouting", "accept"),
            rule_in("ip", "n", "pre", json!([iif("aksedgesw-int"), addr("!=", "daddr", json!({"prefix": {"addr": "192.168.0.0", "len": 24}})), {"drop": null}])),
        ]});
        let drops = forward_drops(&nat_drop, &flows, "edgenet_");
        assert!(
            drops.iter().any(|d| d.hook == "prerouting"
                && d.certain
                && d.flow == "connections the nodes open to the outside"),
            "{drops:#?}"
        );
        // A NAT chain never sees replies.
        assert!(
            drops.iter().all(|d| !d.flow.contains("replies")),
            "{drops:#?}"
        );
        assert_eq!(
            drops[0].reason,
            "iifname \"aksedgesw-int\" ip daddr != 192.168.0.0/24 drop (chain pre)"
        );

        let netdev = |dev: &str| {
            json!({"nftables": [
                {"chain": {"family": "netdev", "table": "d", "name": "in", "type": "filter", "hook": "ingress", "prio": 0, "dev": dev, "policy": "drop"}},
                rule_in("netdev", "d", "in", json!([{"match": {"op": "==", "left": {"ct": {"key": "state"}}, "right": "established"}}, {"accept": null}])),
            ]})
        };
        let drops = forward_drops(&netdev("up0"), &flows, "edgenet_");
        assert!(
            drops.iter().any(|d| d.family == "netdev"
                && d.hook == "ingress"
                && d.certain
                && d.flow == "replies to the nodes"),
            "{drops:#?}"
        );
        assert_eq!(forward_drops(&netdev("eth9"), &flows, "edgenet_"), vec![]);
    }

    /// B17b D8: findings name the rule in nft's syntax, not JSON.
    #[test]
    fn rules_are_shown_as_nft_prints_them() {
        let exprs = json!([
            iif("aksedgesw-int"),
            addr("!=", "daddr", json!({"prefix": {"addr": "10.0.0.0", "len": 8}})),
            addr("==", "saddr", json!({"set": ["10.1.0.1", {"range": ["10.2.0.1", "10.2.0.9"]}]})),
            {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
            {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
            {"counter": {"packets": 0, "bytes": 0}},
            {"reject": {"type": "icmpx", "expr": "admin-prohibited"}}
        ]);
        assert_eq!(
            rule_text(exprs.as_array().unwrap()),
            "iifname \"aksedgesw-int\" ip daddr != 10.0.0.0/8 ip saddr { 10.1.0.1, 10.2.0.1-10.2.0.9 } ct state established,related meta l4proto tcp reject with icmpx admin-prohibited"
        );
        let vmap = json!([{"vmap": {"key": {"meta": {"key": "iifname"}}, "data": {"set": [["br0", {"drop": null}], ["br1", {"jump": {"target": "x"}}]]}}}]);
        assert_eq!(
            rule_text(vmap.as_array().unwrap()),
            "iifname vmap { \"br0\" : drop, \"br1\" : jump x }"
        );
    }

    /// B17b D6: iptables-nft's own chain gets the fix in iptables syntax (an nft rule there
    /// makes the chain unreadable to iptables); a hand-made nft table keeps the nft fix.
    #[test]
    fn an_iptables_nft_chain_gets_an_iptables_fix() {
        let doc = json!({"nftables": [
            chain("filter", "FORWARD", Some("drop")),
            chain("filter", "INPUT", None),
        ]});
        let drops = ip_forward_drops(&doc, &nat("aksedgesw-int", false));
        assert!(!drops.is_empty());
        assert!(
            drops.iter().all(|d| d.tool == FirewallTool::Iptables),
            "{drops:#?}"
        );
        let fix = drops[0].fix("aksedgesw-int", Some("192.168.0.0/24"));
        assert!(
            fix.starts_with("iptables -I FORWARD -i aksedgesw-int -s 192.168.0.0/24 -j ACCEPT && iptables -I FORWARD -o aksedgesw-int -d 192.168.0.0/24 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
            "{fix}"
        );
        assert!(!fix.contains("nft insert"), "{fix}");
        // A table named otherwise, or a chain not named after its hook, is nft's.
        let doc = json!({"nftables": [chain("t", "FORWARD", Some("drop"))]});
        let drops = ip_forward_drops(&doc, &nat("aksedgesw-int", false));
        assert_eq!(drops[0].tool, FirewallTool::Other);
        assert!(drops[0]
            .fix("aksedgesw-int", Some("192.168.0.0/24"))
            .starts_with("nft insert rule ip t FORWARD"));
    }
}

#[cfg(test)]
mod docker_user_order_tests {
    use super::docker_user_out_of_order;
    use serde_json::json;

    fn rule(verdict: &str) -> serde_json::Value {
        json!({"rule": {"family": "ip", "table": "filter", "chain": "DOCKER-USER",
            "expr": [{"counter": {"packets": 0, "bytes": 0}}, {verdict: null}]}})
    }

    fn own(verdict: &str) -> serde_json::Value {
        let mut r = rule(verdict);
        r["rule"]["comment"] = json!("edgenet:0a1b2c");
        r
    }

    #[test]
    fn only_a_non_accept_above_an_accept_or_before_a_first_deploy_is_out_of_order() {
        let set = |items: Vec<serde_json::Value>| json!({ "nftables": items });
        assert!(docker_user_out_of_order(&set(vec![
            rule("drop"),
            own("accept"),
            rule("return")
        ])));
        assert!(!docker_user_out_of_order(&set(vec![
            own("accept"),
            own("accept"),
            rule("drop")
        ])));
        assert!(!docker_user_out_of_order(&set(vec![rule("return")])));
        // A drop while none of edgenet's rules is there (a first deploy): read too.
        assert!(docker_user_out_of_order(&set(vec![
            rule("drop"),
            rule("return")
        ])));
        // iptables-nft's comment match, as `nft -j` lists it (no text).
        let own = json!({"rule": {"family": "ip", "table": "filter", "chain": "DOCKER-USER",
            "expr": [{"xt": {"type": "match", "name": "comment"}}, {"accept": null}]}});
        assert!(!docker_user_out_of_order(&set(vec![
            own,
            rule("drop"),
            rule("return")
        ])));
    }
}
