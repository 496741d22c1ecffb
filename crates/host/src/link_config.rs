//! The layer-3 configuration of one link — its addresses (IPv4 and IPv6, every flag, label
//! and lifetime), the routes through it (every table, both families, every attribute) and the
//! policy rules that name it — moved exactly from one link to another.
//!
//! The external switch moves the host's configuration from the adapter to the bridge and, on
//! remove, back. The kernel's own messages are copied with only the link changed, so nothing
//! the kernel reports is lost on the way (`onlink`, `src`, `mtu lock`, `noprefixroute`,
//! labels, DHCP lifetimes, ...). A move always takes the links *as they are now*: nothing is
//! remembered between runs, so a rerun after a crash, a reboot or a DHCP renewal moves what is
//! there, and a move never deletes anything from the link it moves to.

use std::net::IpAddr;

use netlink_packet_core::{
    Emitable, Parseable, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHopFlags,
    RouteProtocol, RouteScope,
};
use netlink_packet_route::rule::{RuleAttribute, RuleFlags, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::HostError;
use crate::netlink::Netlink;

/// Routes the kernel refused on a link: their index in the configuration, and why.
type Refused = Vec<(usize, String)>;

/// What routes put on a link went beside (see [`LinkConfig::beside`] and
/// [`LinkConfig::beside_hops`]): routes, then hops.
type Beside = (Vec<String>, Vec<String>);

/// USER_HZ (`sysconf(_SC_CLK_TCK)`): route lifetimes are dumped in clock ticks and set in
/// seconds.
fn clock_ticks_per_second() -> u32 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u32::try_from(t).ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// What is on (or names) one link, as the kernel lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkConfig {
    /// In the kernel's order (an IPv4 primary before its secondaries).
    pub addresses: Vec<AddressMessage>,
    /// Routes through the link, except those the kernel makes and deletes by itself with an
    /// address (`proto kernel`: subnet, local, broadcast and multicast routes).
    pub routes: Vec<RouteMessage>,
    /// Rules with `iif` or `oif` naming the link.
    pub rules: Vec<RuleMessage>,
    /// After a move: routes the kernel refused on the destination (a gateway not on-link
    /// there, a nexthop object, ...), each with why; they stay where they were.
    pub skipped: Vec<String>,
    /// After a move or a put-back: what the routes went beside — routes of other interfaces
    /// (a VPN's, a second uplink's, an administrator's blackhole) to the same destination,
    /// table and metric, which stay as they are (see [`Netlink::apply_link_config`]).
    pub beside: Vec<String>,
    /// After a move: the hops through other interfaces of an IPv6 multipath route whose hop
    /// through the link moved (IPv6 keeps the routes of one destination, table and metric as
    /// hops of one route): they stay as they are, and the moved hop is one beside them.
    pub beside_hops: Vec<String>,
}

/// A [`LinkConfig`] kept in the state: the kernel's messages as they were dumped (hex), so a
/// configuration that is gone from every link (a bridge deleted by hand) can be put back
/// exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedLinkConfig {
    /// The link the messages name (its index then).
    pub link: String,
    pub index: u32,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub routes: Vec<String>,
    #[serde(default)]
    pub rules: Vec<String>,
}

fn to_hex(m: &impl Emitable) -> String {
    let mut buf = vec![0u8; m.buffer_len()];
    m.emit(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

impl SavedLinkConfig {
    pub fn save(config: &LinkConfig, link: &str, index: u32) -> SavedLinkConfig {
        SavedLinkConfig {
            link: link.to_string(),
            index,
            addresses: config.addresses.iter().map(to_hex).collect(),
            routes: config.routes.iter().map(to_hex).collect(),
            rules: config.rules.iter().map(to_hex).collect(),
        }
    }

    /// The messages back; one that does not parse (a state edited by hand) is skipped.
    pub fn load(&self) -> LinkConfig {
        fn each<T>(v: &[String], parse: impl Fn(&[u8]) -> Option<T>) -> Vec<T> {
            v.iter()
                .filter_map(|h| from_hex(h).and_then(|b| parse(&b)))
                .collect()
        }
        LinkConfig {
            addresses: each(&self.addresses, |b| AddressMessage::parse(b).ok()),
            routes: each(&self.routes, |b| RouteMessage::parse(b).ok()),
            rules: each(&self.rules, |b| RuleMessage::parse(b).ok()),
            skipped: Vec::new(),
            beside: Vec::new(),
            beside_hops: Vec::new(),
        }
    }
}

impl LinkConfig {
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty() && self.routes.is_empty() && self.rules.is_empty()
    }

    /// The skipped routes as warnings naming what to do.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// What the routes went beside (see [`LinkConfig::beside`]), one line each.
    pub fn beside(&self) -> &[String] {
        &self.beside
    }

    /// The other interfaces' hops of the IPv6 multipath routes a hop moved out of (see
    /// [`LinkConfig::beside_hops`]), one line each.
    pub fn beside_hops(&self) -> &[String] {
        &self.beside_hops
    }

    /// One line per item, like `ip` prints them (for reports and drift).
    pub fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self.addresses.iter().map(describe_address).collect();
        out.extend(self.routes.iter().map(describe_route));
        out.extend(self.rules.iter().map(describe_rule));
        out
    }

    /// The addresses, as `ADDR/PREFIX`.
    pub fn address_strings(&self) -> Vec<String> {
        self.addresses.iter().filter_map(address_string).collect()
    }
}

/// The descriptions (see [`LinkConfig::describe`]) of the items of `recorded` that `live` has
/// something newer in place of, so they are not put back over it: an address when `live` has
/// another of the same family and scope (a renewed lease), a route when `live` has one to the
/// same destination, table and metric (a new gateway), and a default route when `live` has a
/// default route of the same family and table that is not one of the recorded, whatever its
/// metric (a DHCP client's `metric 100`, a new router): a second default route beside it would
/// win over it. (A recorded default route gone beside another recorded one is still missing.)
/// `live` is the one link's configuration: a default route through another interface never
/// counts. Rules are never superseded.
pub fn superseded(recorded: &LinkConfig, live: &LinkConfig) -> Vec<String> {
    let have = live.describe();
    let address_kind = |a: &AddressMessage| (a.header.family, u8::from(a.header.scope));
    let mut out: Vec<String> = recorded
        .addresses
        .iter()
        .filter(|a| {
            live.addresses
                .iter()
                .any(|l| address_kind(l) == address_kind(a))
        })
        .map(describe_address)
        .filter(|d| !have.contains(d))
        .collect();
    let recorded_routes: Vec<String> = recorded.routes.iter().map(describe_route).collect();
    out.extend(
        recorded
            .routes
            .iter()
            .filter(|r| {
                live.routes.iter().any(|l| route_key(l) == route_key(r))
                    || (is_default(r)
                        && live.routes.iter().any(|l| {
                            newer_default(l, r) && !recorded_routes.contains(&describe_route(l))
                        }))
            })
            .map(describe_route)
            .filter(|d| !have.contains(d)),
    );
    out
}

fn is_default(r: &RouteMessage) -> bool {
    r.header.destination_prefix_length == 0
}

/// Whether `live` is a default route in the slot of the recorded default route `r`: its
/// family and table, any metric (see [`superseded`]).
fn newer_default(live: &RouteMessage, r: &RouteMessage) -> bool {
    let (key, recorded_key) = (route_key(live), route_key(r));
    is_default(live) && (key.0, key.3) == (recorded_key.0, recorded_key.3)
}

/// A route's family, destination, table and metric: what makes two routes the same slot.
fn route_key(r: &RouteMessage) -> (AddressFamily, Option<IpAddr>, u8, u32, Option<u32>) {
    let mut key = (
        r.header.address_family,
        None,
        r.header.destination_prefix_length,
        u32::from(r.header.table),
        None,
    );
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(d) => key.1 = route_address(d),
            RouteAttribute::Table(t) => key.3 = *t,
            RouteAttribute::Priority(p) => key.4 = Some(*p),
            _ => {}
        }
    }
    key
}

impl Netlink {
    /// The configuration on link `name` now. A missing link has no addresses or routes, but
    /// rules can still name it.
    pub fn link_config(&mut self, name: &str) -> Result<LinkConfig, HostError> {
        let index = match self.link_index(name) {
            Ok(i) => Some(i),
            Err(e) if e.errno() == Some(libc::ENODEV) => None,
            Err(e) => return Err(e),
        };
        let mut config = LinkConfig::default();
        if let Some(index) = index {
            let addresses = self
                .address_messages(AddressFamily::Unspec, Some(index))
                .map_err(|f| f.into_host("dump addresses of", name))?;
            // IPv6 link-local addresses belong to the link (the kernel makes them from its
            // MAC); every IPv4 address and every wider IPv6 one is the host's.
            config.addresses = addresses
                .into_iter()
                .filter(|a| match a.header.family {
                    AddressFamily::Inet => true,
                    AddressFamily::Inet6 => a.header.scope == AddressScope::Universe,
                    _ => false,
                })
                .collect();
            let routes = self
                .route_messages(AddressFamily::Unspec)
                .map_err(|f| f.into_host("dump routes of", name))?;
            config.routes = routes
                .into_iter()
                .filter(|r| {
                    r.header.protocol != RouteProtocol::Kernel
                        && !r.header.flags.contains(RouteFlags::Cloned)
                        && matches!(
                            r.header.address_family,
                            AddressFamily::Inet | AddressFamily::Inet6
                        )
                        && route_uses(r, index)
                })
                .collect();
        }
        let rules = self
            .rule_messages()
            .map_err(|f| f.into_host("dump rules naming", name))?;
        config.rules = rules
            .into_iter()
            .filter(|r| {
                r.attributes.iter().any(
                    |a| matches!(a, RuleAttribute::Iifname(n) | RuleAttribute::Oifname(n) if n == name),
                )
            })
            .collect();
        Ok(config)
    }

    /// Moves everything on `from` to `to` (see the module documentation) and returns what was
    /// moved, as it now is on `to`. Each item is put on `to` before it is taken off `from`, so
    /// the host stays reachable; a route goes on `to` beside whatever holds its destination
    /// (see [`Netlink::apply_link_config`]) and only the very route through `from` (its device,
    /// gateway, type, protocol) is deleted. Nothing is ever deleted from `to`, nor from any
    /// other link. Rerunning it after an interruption finishes the move.
    pub fn move_link_config(&mut self, from: &str, to: &str) -> Result<LinkConfig, HostError> {
        if from == to {
            return Err(HostError::new(
                "move addresses and routes",
                format!("from {from} to itself"),
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a link cannot be its own destination",
                ),
            ));
        }
        let have = self.link_config(from)?;
        let to_index = self.link_index(to)?;
        let from_index = self.link_index(from).ok();
        let mut moved = translate(&have, from, to, to_index, from_index);
        // IPv6 keeps each hop of a multipath route as a route of its own (siblings): only the
        // hops through `from` are added on `to` and deleted, so a sibling through another
        // device (a VPN's default route of the same metric) is never touched.
        for r in &mut moved.routes {
            only_hops_through(r, to_index);
        }
        let (refused, (beside, hops)) = self.add_link_config(&moved, to, from_index)?;
        moved.beside = beside;
        moved.beside_hops = hops;
        // Off `from`: routes (those not already replaced in place), rules, then addresses,
        // IPv4 secondaries before their primary (deleting a primary takes its secondaries).
        // A route the kernel refused on `to` stays on `from`.
        for (i, r) in have.routes.iter().enumerate() {
            if refused.iter().any(|(j, _)| *j == i) {
                continue;
            }
            let mut del = r.clone();
            strip_route_output(&mut del);
            if let Some(from_index) = from_index {
                only_hops_through(&mut del, from_index);
            }
            match self.ack_request(
                RouteNetlinkMessage::DelRoute(del),
                NLM_F_REQUEST | NLM_F_ACK,
            ) {
                Ok(_) => {}
                Err(f) if matches!(f.errno(), Some(libc::ESRCH | libc::ENOENT | libc::ENODEV)) => {}
                Err(f) => return Err(f.into_host("delete route", &describe_route(r))),
            }
        }
        for r in &have.rules {
            let mut del = r.clone();
            strip_rule_output(&mut del);
            match self.ack_request(RouteNetlinkMessage::DelRule(del), NLM_F_REQUEST | NLM_F_ACK) {
                Ok(_) => {}
                Err(f) if matches!(f.errno(), Some(libc::ENOENT | libc::ESRCH)) => {}
                Err(f) => return Err(f.into_host("delete", &describe_rule(r))),
            }
        }
        for a in have.addresses.iter().rev() {
            let mut del = a.clone();
            del.attributes
                .retain(|x| matches!(x, AddressAttribute::Local(_) | AddressAttribute::Address(_)));
            match self.ack_request(
                RouteNetlinkMessage::DelAddress(del),
                NLM_F_REQUEST | NLM_F_ACK,
            ) {
                Ok(_) => {}
                Err(f) if matches!(f.errno(), Some(libc::EADDRNOTAVAIL | libc::ENODEV)) => {}
                Err(f) => {
                    return Err(f.into_host(&format!("delete {} from", describe_address(a)), from))
                }
            }
        }
        let mut i = 0;
        moved.routes.retain(|_| {
            i += 1;
            !refused.iter().any(|(j, _)| *j == i - 1)
        });
        moved.skipped = refused
            .into_iter()
            .map(|(j, why)| {
                format!(
                    "route {} left on {from}: {why}",
                    describe_route(&have.routes[j])
                )
            })
            .collect();
        Ok(moved)
    }

    /// Puts a saved configuration back on the link it was saved from (`saved.link`, which may
    /// have a new index since); returns what was put back.
    pub fn apply_saved(&mut self, saved: &SavedLinkConfig) -> Result<LinkConfig, HostError> {
        let index = self.link_index(&saved.link)?;
        let config = saved.load();
        let mut config = translate(&config, &saved.link, &saved.link, index, Some(saved.index));
        let (refused, (beside, _)) = self.add_link_config(&config, &saved.link, None)?;
        config.beside = beside;
        // What the kernel refused is not claimed put back: it is listed as skipped.
        config.skipped = refused
            .iter()
            .map(|(j, why)| format!("route {}: {why}", describe_route(&config.routes[*j])))
            .collect();
        let mut i = 0;
        config.routes.retain(|_| {
            i += 1;
            !refused.iter().any(|(j, _)| *j == i - 1)
        });
        Ok(config)
    }

    /// Puts on `link` each item of `saved` (renamed from the link it was saved from) whose
    /// description (see [`LinkConfig::describe`]) is not in `present`, one at a time: returns
    /// what went on, and what the kernel refused, each with why.
    pub fn apply_saved_onto(
        &mut self,
        saved: &SavedLinkConfig,
        link: &str,
        present: &[String],
    ) -> Result<(Vec<String>, Vec<String>), HostError> {
        let index = self.link_index(link)?;
        let config = translate(&saved.load(), &saved.link, link, index, Some(saved.index));
        let mut items: Vec<(String, LinkConfig)> = Vec::new();
        let v4 = config
            .addresses
            .iter()
            .filter(|a| a.header.family == AddressFamily::Inet);
        let v6 = config
            .addresses
            .iter()
            .rev()
            .filter(|a| a.header.family != AddressFamily::Inet);
        for a in v4.chain(v6) {
            items.push((
                describe_address(a),
                LinkConfig {
                    addresses: vec![a.clone()],
                    ..LinkConfig::default()
                },
            ));
        }
        let mut routes: Vec<&RouteMessage> = config.routes.iter().collect();
        routes.sort_by_key(|r| std::cmp::Reverse(u8::from(r.header.scope)));
        for r in routes {
            items.push((
                describe_route(r),
                LinkConfig {
                    routes: vec![r.clone()],
                    ..LinkConfig::default()
                },
            ));
        }
        for r in &config.rules {
            items.push((
                describe_rule(r),
                LinkConfig {
                    rules: vec![r.clone()],
                    ..LinkConfig::default()
                },
            ));
        }
        let (mut done, mut refused) = (Vec::new(), Vec::new());
        for (what, item) in items {
            if present.contains(&what) {
                continue;
            }
            match self.add_link_config(&item, link, None) {
                Ok((r, (beside, _))) if r.is_empty() => done.push(match beside.as_slice() {
                    [] => what,
                    b => format!(
                        "{what} (beside {}, not edgenet's: left as it is)",
                        b.join("; ")
                    ),
                }),
                Ok((r, _)) => {
                    refused.extend(r.into_iter().map(|(_, why)| format!("{what}: {why}")))
                }
                Err(e) => refused.push(format!("{what}: {e}")),
            }
        }
        Ok((done, refused))
    }

    /// Puts `config` (already naming `link`) on `link`; what is there already is left as it
    /// is. Used by a move, and after a link was released from a bridge to put back anything
    /// the kernel dropped meanwhile.
    /// A route is *added beside* the routes that hold its destination, table and metric
    /// (`ip route append`): one through another interface (a VPN, a second uplink) or of
    /// another type (an administrator's blackhole) is never replaced; the kernel keeps using
    /// whichever came first. An identical route there already counts as put on.
    /// Returns the routes the kernel refused as such (by their index in `config.routes`, with
    /// why): they are skipped rather than failing the whole move.
    pub fn apply_link_config(
        &mut self,
        config: &LinkConfig,
        link: &str,
    ) -> Result<Vec<(usize, String)>, HostError> {
        Ok(self.add_link_config(config, link, None)?.0)
    }

    /// [`Netlink::apply_link_config`], also returning what the routes went beside: one line
    /// per route of another interface or type in the slot (destination, table, metric) of a
    /// route put on `link`, but those through link `moving_from` (whose routes move to `link`),
    /// and one per hop through another interface of an IPv6 multipath route through either.
    fn add_link_config(
        &mut self,
        config: &LinkConfig,
        link: &str,
        moving_from: Option<u32>,
    ) -> Result<(Refused, Beside), HostError> {
        // The kernel appends IPv4 addresses (primary, then secondaries) and puts each new IPv6
        // address first: adding them in dump order, IPv6 reversed, keeps the order.
        let v4 = config
            .addresses
            .iter()
            .filter(|a| a.header.family == AddressFamily::Inet);
        let v6 = config
            .addresses
            .iter()
            .rev()
            .filter(|a| a.header.family != AddressFamily::Inet);
        for a in v4.chain(v6) {
            self.ack_request(
                RouteNetlinkMessage::NewAddress(a.clone()),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            )
            .map_err(|f| f.into_host(&format!("add {} to", describe_address(a)), link))?;
        }
        let beside = if config.routes.is_empty() {
            Default::default()
        } else {
            self.routes_beside(&config.routes, link, moving_from)?
        };
        // Routes a gateway depends on (host and link scope) before routes through gateways.
        let mut routes: Vec<(usize, &RouteMessage)> = config.routes.iter().enumerate().collect();
        routes.sort_by_key(|(_, r)| std::cmp::Reverse(u8::from(r.header.scope)));
        let mut refused = Vec::new();
        for (i, r) in routes {
            // Never NLM_F_REPLACE: it takes the first route of the slot, whatever its device.
            match self.ack_request(
                RouteNetlinkMessage::NewRoute(r.clone()),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
            ) {
                Ok(_) => {}
                // The very same route is there already (a rerun after an interruption).
                Err(f) if f.errno() == Some(libc::EEXIST) => {}
                // The route itself does not fit the link (a gateway not on-link there, a
                // nexthop object, a hop through another device): skipped, said so.
                Err(f)
                    if matches!(
                        f.errno(),
                        Some(libc::EINVAL | libc::EHOSTUNREACH | libc::ENETUNREACH)
                    ) =>
                {
                    let e = f.into_host("add route", &describe_route(r));
                    let why = e.to_string();
                    let hint = if r
                        .attributes
                        .iter()
                        .any(|a| matches!(a, RouteAttribute::NhId(_)))
                    {
                        format!("it uses a nexthop object; make one on {link} (`ip nexthop replace id N via GW dev {link}`) and the route with it")
                    } else {
                        format!("add it on {link} by hand if it is still needed")
                    };
                    tracing::debug!("{why}; {hint}");
                    refused.push((
                        i,
                        format!("the kernel refuses it on {link} ({why}); {hint}"),
                    ));
                }
                Err(f) => return Err(f.into_host("add route", &describe_route(r))),
            }
        }
        for r in &config.rules {
            match self.ack_request(
                RouteNetlinkMessage::NewRule(r.clone()),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            ) {
                Ok(_) => {}
                Err(f) if f.errno() == Some(libc::EEXIST) => {}
                Err(f) => return Err(f.into_host("add", &describe_rule(r))),
            }
        }
        Ok((refused, beside))
    }

    /// The routes not through `link` that hold the slot (family, destination, table, metric,
    /// TOS) of one of `routes`, as `ip route` lists them with their device: what `routes` go
    /// beside on `link`, left as they are; and the hops through other devices of an IPv6
    /// multipath route in such a slot through `link` or `moving_from`, each as a route of its
    /// own.
    fn routes_beside(
        &mut self,
        routes: &[RouteMessage],
        link: &str,
        moving_from: Option<u32>,
    ) -> Result<Beside, HostError> {
        let index = self.link_index(link)?;
        let live = self
            .route_messages(AddressFamily::Unspec)
            .map_err(|f| f.into_host("dump routes beside", link))?;
        let names = self.link_names()?;
        let slot = |r: &RouteMessage| (route_key(r), r.header.tos);
        let (mut out, mut hops): Beside = Default::default();
        for l in live.iter().filter(|l| {
            l.header.protocol != RouteProtocol::Kernel
                && !l.header.flags.contains(RouteFlags::Cloned)
                && routes.iter().any(|r| slot(r) == slot(l))
        }) {
            let ours = |i: u32| i == index || moving_from == Some(i);
            if !route_uses(l, index) && !moving_from.is_some_and(|from| route_uses(l, from)) {
                let line = describe_foreign_route(l, &names);
                if !out.contains(&line) {
                    out.push(line);
                }
            } else if l.header.address_family == AddressFamily::Inet6 {
                for hop in l.attributes.iter().flat_map(|a| match a {
                    RouteAttribute::MultiPath(hops) => hops.as_slice(),
                    _ => &[],
                }) {
                    if ours(hop.interface_index) {
                        continue;
                    }
                    let mut one = l.clone();
                    one.attributes.retain(|a| {
                        !matches!(
                            a,
                            RouteAttribute::MultiPath(_)
                                | RouteAttribute::Oif(_)
                                | RouteAttribute::Gateway(_)
                        )
                    });
                    one.attributes
                        .push(RouteAttribute::Oif(hop.interface_index));
                    one.attributes.extend(
                        hop.attributes
                            .iter()
                            .filter(|a| matches!(a, RouteAttribute::Gateway(_)))
                            .cloned(),
                    );
                    let line = describe_foreign_route(&one, &names);
                    if !hops.contains(&line) {
                        hops.push(line);
                    }
                }
            }
        }
        Ok((out, hops))
    }
}

/// A route of another interface as `ip route` shows it: its type when not unicast, and its
/// device(s).
fn describe_foreign_route(
    r: &RouteMessage,
    names: &std::collections::HashMap<u32, String>,
) -> String {
    use netlink_packet_route::route::RouteType;
    let mut s = String::new();
    let kind = match r.header.kind {
        RouteType::BlackHole => Some("blackhole"),
        RouteType::Unreachable => Some("unreachable"),
        RouteType::Prohibit => Some("prohibit"),
        RouteType::Throw => Some("throw"),
        _ => None,
    };
    if let Some(k) = kind {
        s.push_str(k);
        s.push(' ');
    }
    s.push_str(&describe_route(r));
    let mut devices: Vec<String> = Vec::new();
    for a in &r.attributes {
        match a {
            RouteAttribute::Oif(i) => {
                devices.push(names.get(i).cloned().unwrap_or_else(|| format!("if{i}")))
            }
            RouteAttribute::MultiPath(hops) => devices.extend(hops.iter().map(|h| {
                names
                    .get(&h.interface_index)
                    .cloned()
                    .unwrap_or_else(|| format!("if{}", h.interface_index))
            })),
            _ => {}
        }
    }
    if !devices.is_empty() {
        s.push_str(&format!(" dev {}", devices.join(",")));
    }
    s
}

/// An IPv6 multipath route cut down to its hops through link `index` (IPv4 multipath routes
/// are one route, moved whole with the other hops as they are).
fn only_hops_through(r: &mut RouteMessage, index: u32) {
    if r.header.address_family != AddressFamily::Inet6 {
        return;
    }
    for a in &mut r.attributes {
        if let RouteAttribute::MultiPath(hops) = a {
            if hops.iter().any(|h| h.interface_index == index) {
                hops.retain(|h| h.interface_index == index);
            }
        }
    }
}

fn route_uses(r: &RouteMessage, index: u32) -> bool {
    r.attributes.iter().any(|a| match a {
        RouteAttribute::Oif(i) => *i == index,
        RouteAttribute::MultiPath(hops) => hops.iter().any(|h| h.interface_index == index),
        _ => false,
    })
}

/// `config` of link `from` as it will be on link `to` (index `to_index`): the kernel's
/// messages with the link, labels and interface names changed, and the fields the kernel only
/// reports (never accepts) taken out.
fn translate(
    config: &LinkConfig,
    from: &str,
    to: &str,
    to_index: u32,
    from_link_index: Option<u32>,
) -> LinkConfig {
    // Only the hops of a multipath route through `from` move; hops through other devices
    // stay as they are.
    let from_index_of = |r: &RouteMessage| {
        from_link_index.or_else(|| {
            r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            })
        })
    };
    let addresses = config
        .addresses
        .iter()
        .map(|a| {
            let mut a = a.clone();
            a.header.index = to_index;
            for attr in &mut a.attributes {
                // `up0:1` becomes `br0:1`; a label that would not fit (IFNAMSIZ) stays as it
                // is (the kernel takes any label), and so comes back unchanged.
                if let AddressAttribute::Label(label) = attr {
                    if let Some(rest) = label.strip_prefix(from) {
                        let renamed = format!("{to}{rest}");
                        if renamed.len() < libc::IFNAMSIZ {
                            *label = renamed;
                        }
                    }
                }
            }
            a
        })
        .collect();
    let routes = config
        .routes
        .iter()
        .map(|r| {
            let from_index = from_index_of(r);
            let mut r = r.clone();
            strip_route_output(&mut r);
            for attr in &mut r.attributes {
                match attr {
                    RouteAttribute::Oif(i) => *i = to_index,
                    RouteAttribute::MultiPath(hops) => {
                        for h in hops {
                            if Some(h.interface_index) == from_index || from_index.is_none() {
                                h.interface_index = to_index;
                            }
                        }
                    }
                    _ => {}
                }
            }
            r
        })
        .collect();
    let rules = config
        .rules
        .iter()
        .map(|r| {
            let mut r = r.clone();
            strip_rule_output(&mut r);
            for attr in &mut r.attributes {
                match attr {
                    RuleAttribute::Iifname(n) | RuleAttribute::Oifname(n) if n == from => {
                        *n = to.to_string()
                    }
                    _ => {}
                }
            }
            r
        })
        .collect();
    LinkConfig {
        addresses,
        routes,
        rules,
        skipped: Vec::new(),
        beside: Vec::new(),
        beside_hops: Vec::new(),
    }
}

/// Route flags the kernel reports but refuses on input (`linkdown`, `dead`, offload marks),
/// and the cache info, whose lifetime becomes `expires` (seconds) as the kernel takes it.
fn strip_route_output(r: &mut RouteMessage) {
    let keep = RouteFlags::Onlink | RouteFlags::Pervasive;
    r.header.flags &= keep;
    let mut expires = None;
    r.attributes.retain(|a| match a {
        RouteAttribute::CacheInfo(ci) => {
            if ci.expires > 0 {
                expires = Some(ci.expires.div_ceil(clock_ticks_per_second()));
            }
            false
        }
        RouteAttribute::Expires(_) => false,
        _ => true,
    });
    if let (Some(secs), AddressFamily::Inet6) = (expires, r.header.address_family) {
        r.attributes.push(RouteAttribute::Expires(secs));
    }
    for a in &mut r.attributes {
        if let RouteAttribute::MultiPath(hops) = a {
            for h in hops {
                h.flags &= RouteNextHopFlags::Onlink | RouteNextHopFlags::Pervasive;
            }
        }
    }
}

/// Rule flags that only say whether the named interface exists right now.
fn strip_rule_output(r: &mut RuleMessage) {
    r.header.flags &= !(RuleFlags::IifDetached | RuleFlags::OifDetached | RuleFlags::Unresolved);
}

fn address_string(a: &AddressMessage) -> Option<String> {
    let ip = a
        .attributes
        .iter()
        .find_map(|x| match x {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        })
        .or_else(|| {
            a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        })?;
    Some(format!("{ip}/{}", a.header.prefix_len))
}

fn describe_address(a: &AddressMessage) -> String {
    format!(
        "address {}",
        address_string(a).unwrap_or_else(|| "?".into())
    )
}

fn route_address(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

fn describe_route(r: &RouteMessage) -> String {
    let mut dst = None;
    let mut via = None;
    let mut table = u32::from(r.header.table);
    let mut metric = None;
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = route_address(d),
            RouteAttribute::Gateway(g) => via = route_address(g),
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Priority(p) => metric = Some(*p),
            _ => {}
        }
    }
    let mut s = match dst {
        Some(d) => format!("{d}/{}", r.header.destination_prefix_length),
        None => "default".into(),
    };
    if r.header.address_family == AddressFamily::Inet6 && dst.is_none() {
        s = "default (IPv6)".into();
    }
    if let Some(g) = via {
        s.push_str(&format!(" via {g}"));
    }
    if let Some(m) = metric {
        s.push_str(&format!(" metric {m}"));
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        s.push_str(&format!(" table {table}"));
    }
    if r.header.scope == RouteScope::Link && via.is_none() {
        s.push_str(" scope link");
    }
    s
}

fn describe_rule(r: &RuleMessage) -> String {
    let mut s = "rule".to_string();
    for a in &r.attributes {
        match a {
            RuleAttribute::Priority(p) => s.push_str(&format!(" pref {p}")),
            RuleAttribute::Iifname(n) => s.push_str(&format!(" iif {n}")),
            RuleAttribute::Oifname(n) => s.push_str(&format!(" oif {n}")),
            RuleAttribute::Table(t) => s.push_str(&format!(" lookup {t}")),
            _ => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_configuration_loads_back_the_same_messages() {
        let mut a = AddressMessage::default();
        a.header.family = AddressFamily::Inet;
        a.header.index = 7;
        a.header.prefix_len = 24;
        a.attributes
            .push(AddressAttribute::Local("198.18.0.11".parse().unwrap()));
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet;
        r.attributes.push(RouteAttribute::Oif(7));
        let config = LinkConfig {
            addresses: vec![a],
            routes: vec![r],
            rules: vec![],
            skipped: vec![],
            beside: vec![],
            beside_hops: vec![],
        };
        let saved = SavedLinkConfig::save(&config, "br0", 7);
        let text = serde_json::to_string(&saved).unwrap();
        let back: SavedLinkConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back.load(), config);
    }

    #[test]
    fn translation_renames_labels_and_interfaces_and_drops_output_only_fields() {
        let mut a = AddressMessage::default();
        a.header.index = 7;
        a.attributes.push(AddressAttribute::Label("up0:1".into()));
        let mut r = RouteMessage::default();
        r.header.flags = RouteFlags::Onlink | RouteFlags::Linkdown;
        r.attributes.push(RouteAttribute::Oif(7));
        let mut rule = RuleMessage::default();
        rule.header.flags = RuleFlags::IifDetached;
        rule.attributes.push(RuleAttribute::Iifname("up0".into()));
        rule.attributes.push(RuleAttribute::Oifname("other".into()));
        let config = LinkConfig {
            addresses: vec![a],
            routes: vec![r],
            rules: vec![rule],
            skipped: vec![],
            beside: vec![],
            beside_hops: vec![],
        };
        let t = translate(&config, "up0", "br0", 9, Some(7));
        assert_eq!(t.addresses[0].header.index, 9);
        assert_eq!(
            t.addresses[0].attributes,
            vec![AddressAttribute::Label("br0:1".into())]
        );
        assert_eq!(t.routes[0].header.flags, RouteFlags::Onlink);
        assert_eq!(t.routes[0].attributes, vec![RouteAttribute::Oif(9)]);
        assert_eq!(t.rules[0].header.flags, RuleFlags::empty());
        assert_eq!(
            t.rules[0].attributes,
            vec![
                RuleAttribute::Iifname("br0".into()),
                RuleAttribute::Oifname("other".into())
            ]
        );
    }

    fn v4_address(ip: &str, scope: AddressScope) -> AddressMessage {
        let mut a = AddressMessage::default();
        a.header.family = AddressFamily::Inet;
        a.header.prefix_len = 24;
        a.header.scope = scope;
        a.attributes
            .push(AddressAttribute::Local(ip.parse().unwrap()));
        a
    }

    fn default_via(gateway: &str, table: u32) -> RouteMessage {
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet;
        r.header.table = RouteHeader::RT_TABLE_MAIN;
        r.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(
                gateway.parse().unwrap(),
            )));
        r.attributes.push(RouteAttribute::Table(table));
        r
    }

    #[test]
    fn only_what_the_link_has_newer_in_place_of_is_superseded() {
        let recorded = LinkConfig {
            addresses: vec![v4_address("198.18.0.11", AddressScope::Universe)],
            routes: vec![
                default_via("198.18.0.1", 254),
                default_via("198.18.0.1", 100),
            ],
            ..LinkConfig::default()
        };
        // Everything gone (a bridge set down flushes its routes): nothing is superseded.
        assert!(superseded(&recorded, &LinkConfig::default()).is_empty());
        // A renewed lease with a new address and gateway: the recorded ones are superseded;
        // the route in table 100 is not (nothing took its place).
        let live = LinkConfig {
            addresses: vec![v4_address("198.18.0.12", AddressScope::Universe)],
            routes: vec![default_via("198.18.0.2", 254)],
            ..LinkConfig::default()
        };
        assert_eq!(
            superseded(&recorded, &live),
            ["address 198.18.0.11/24", "default via 198.18.0.1"]
        );
        // An address of another scope takes no global address's place.
        let live = LinkConfig {
            addresses: vec![v4_address("127.0.0.9", AddressScope::Host)],
            ..LinkConfig::default()
        };
        assert!(superseded(&recorded, &live).is_empty());
        // What is there as recorded is present, not superseded.
        assert!(superseded(&recorded, &recorded).is_empty());
    }

    fn with_metric(mut r: RouteMessage, metric: u32) -> RouteMessage {
        r.attributes.push(RouteAttribute::Priority(metric));
        r
    }

    /// B21 N2: a default route of another metric on the link (a DHCP client's `metric 100`, a
    /// new router) is the newer one; a recorded one beside another recorded one is not.
    #[test]
    fn a_default_route_of_another_metric_takes_the_recorded_ones_place() {
        let recorded = LinkConfig {
            routes: vec![default_via("198.18.0.1", 254)],
            ..LinkConfig::default()
        };
        let live = LinkConfig {
            routes: vec![with_metric(default_via("198.18.0.254", 254), 100)],
            ..LinkConfig::default()
        };
        assert_eq!(superseded(&recorded, &live), ["default via 198.18.0.1"]);
        // The same gateway from a DHCP client, metric 100.
        let live = LinkConfig {
            routes: vec![with_metric(default_via("198.18.0.1", 254), 100)],
            ..LinkConfig::default()
        };
        assert_eq!(superseded(&recorded, &live), ["default via 198.18.0.1"]);
        // Another table's default route takes no place in the main table.
        let live = LinkConfig {
            routes: vec![with_metric(default_via("198.18.0.254", 100), 100)],
            ..LinkConfig::default()
        };
        assert!(superseded(&recorded, &live).is_empty());
        // Two recorded default routes (a fallback of metric 200): the one still there is not
        // newer than the one that went.
        let recorded = LinkConfig {
            routes: vec![
                default_via("198.18.0.1", 254),
                with_metric(default_via("198.18.0.2", 254), 200),
            ],
            ..LinkConfig::default()
        };
        let live = LinkConfig {
            routes: vec![with_metric(default_via("198.18.0.2", 254), 200)],
            ..LinkConfig::default()
        };
        assert!(superseded(&recorded, &live).is_empty());
    }
}
