//! Other tools' tables (Docker's and ufw's iptables-nft tables, Debian's `inet filter`, a
//! hand-written one), read into the JSON `nft -j list ruleset` (libnftables 1.0.6) prints for
//! them, so the host-firewall walk does not need libnftables loaded on every real host.
//!
//! Decoded: tables of the `ip`, `ip6`, `inet` and `bridge` families without flags or comment;
//! base and regular chains; rules with a comment and these expressions: `meta
//! iifname/oifname/l4proto/nfproto`, IPv4 and IPv6 addresses and prefixes, TCP/UDP ports (with
//! the implicit `meta l4proto`, and iptables-nft's 4-byte `--sport --dport` load), `ct
//! state/status` flags, `ct direction`, anonymous sets of interfaces, protocols, states, IPv4
//! addresses or intervals and ports, anonymous verdict maps, verdicts (jump and goto too),
//! `counter`, `limit` (packets), `log` (a prefix), `masquerade`, `notrack` and iptables-nft's
//! xtables matches and targets (printed by name, as libnftables prints them).
//!
//! Strict by design: every expression form is decoded only in the exact shape nft (or
//! iptables-nft) writes and libnftables prints, registers, lengths and attributes included.
//! Anything else — a named set or map, an object, a flowtable, a table or chain with flags,
//! device or comment, `fib`, `reject`, an ICMP header field, an expression or an operator not
//! listed above — makes the table (and so the whole listing) undecodable: `Err(why)`, and
//! libnftables lists the ruleset as before. Nothing is ever dropped or approximated;
//! `tests/nft_foreign.rs` compares the two listings of real rulesets item for item.

use std::net::Ipv4Addr;

use serde_json::{json, Map, Value};

use super::expr::{AnonSet, ELEM_OPEN, ELEM_OPEN_UDATA, NFPROTO_BRIDGE, NFPROTO_IPV4};
use super::rules::decode_bits;
use super::wire::{Attr, Reply};

pub const NFPROTO_INET: u8 = 1;
pub const NFPROTO_IPV6: u8 = 10;

/// The families whose foreign tables are decoded here.
pub fn family_name(id: u8) -> Option<&'static str> {
    match id {
        NFPROTO_IPV4 => Some("ip"),
        NFPROTO_IPV6 => Some("ip6"),
        NFPROTO_INET => Some("inet"),
        NFPROTO_BRIDGE => Some("bridge"),
        _ => None,
    }
}

type Why = String;

fn get<'a>(a: &[Attr<'a>], k: u16) -> Option<Attr<'a>> {
    a.iter().find(|x| x.kind == k).copied()
}

/// One foreign table: its item, its chains', its rules' (chains in dump order, rules chain by
/// chain), as libnftables orders them.
pub fn read_table(
    t: &Reply,
    chains: &[&Reply],
    sets: &[Set],
    rules: &[&Reply],
) -> Result<Vec<Value>, Why> {
    let fname = family_name(t.family).ok_or("family")?;
    let attrs = t.attrs();
    // name, flags, use, handle; no userdata (comment) or owner.
    if !attrs.iter().all(|a| [1, 2, 3, 4].contains(&a.kind)) {
        return Err("table attributes".into());
    }
    let name = get(&attrs, 1).and_then(|a| a.str()).ok_or("table name")?;
    if get(&attrs, 2).and_then(|a| a.u32()).unwrap_or(0) != 0 {
        return Err("table flags".into());
    }
    let handle = get(&attrs, 4).and_then(|a| a.u64()).ok_or("table handle")?;
    let table_use = get(&attrs, 3).and_then(|a| a.u32()).unwrap_or(0);
    // The use count covers chains, named sets, objects and flowtables (not anonymous sets):
    // equal to the chains, there is nothing else that would be listed.
    if table_use as usize != chains.len() {
        return Err(format!("sets or objects (use {table_use})"));
    }
    let mut items = vec![json!({"table": {"family": fname, "name": name, "handle": handle}})];
    let mut names = Vec::with_capacity(chains.len());
    for c in chains {
        let a = c.attrs();
        // table, handle, name, hook, policy, use, type, counters, flags, id.
        if !a
            .iter()
            .all(|x| [1, 2, 3, 4, 5, 6, 7, 8, 10, 11].contains(&x.kind))
        {
            return Err("chain attributes".into());
        }
        let cname = get(&a, 3).and_then(|x| x.str()).ok_or("chain name")?;
        let chandle = get(&a, 2).and_then(|x| x.u64()).ok_or("chain handle")?;
        let flags = get(&a, 10).and_then(|x| x.u32()).unwrap_or(0);
        let mut chain = Map::new();
        chain.insert("family".into(), json!(fname));
        chain.insert("table".into(), json!(name));
        chain.insert("name".into(), json!(cname));
        chain.insert("handle".into(), json!(chandle));
        match get(&a, 4) {
            None if flags == 0 => {}
            Some(hook) if flags == 1 => {
                let hook = hook.nested();
                if hook.iter().any(|x| x.kind > 2) {
                    return Err(format!("chain {cname}: device"));
                }
                let num = get(&hook, 1).and_then(|x| x.u32()).ok_or("hook")?;
                let prio = get(&hook, 2).and_then(|x| x.u32()).ok_or("prio")?;
                let hook = ["prerouting", "input", "forward", "output", "postrouting"]
                    .get(num as usize)
                    .ok_or_else(|| format!("chain {cname}: hook {num}"))?;
                let kind = get(&a, 7)
                    .and_then(|x| x.str())
                    .filter(|k| ["filter", "nat", "route"].contains(k))
                    .ok_or_else(|| format!("chain {cname}: type"))?;
                let policy = match get(&a, 5).and_then(|x| x.u32()) {
                    Some(1) => "accept",
                    Some(0) => "drop",
                    _ => return Err(format!("chain {cname}: policy")),
                };
                chain.insert("type".into(), json!(kind));
                chain.insert("hook".into(), json!(hook));
                chain.insert("prio".into(), json!(prio as i32));
                chain.insert("policy".into(), json!(policy));
            }
            _ => return Err(format!("chain {cname}: flags {flags}")),
        }
        names.push(cname);
        items.push(json!({ "chain": chain }));
    }
    let mut by_chain: Vec<Vec<Value>> = vec![Vec::new(); names.len()];
    for r in rules {
        let a = r.attrs();
        // table, chain, handle, expressions, position, userdata (a comment), id.
        if !a.iter().all(|x| [1, 2, 3, 4, 6, 7, 8].contains(&x.kind)) {
            return Err("rule attributes".into());
        }
        let chain = get(&a, 2).and_then(|x| x.str()).ok_or("rule chain")?;
        let handle = get(&a, 3).and_then(|x| x.u64()).ok_or("rule handle")?;
        let ci = names
            .iter()
            .position(|c| *c == chain)
            .ok_or_else(|| format!("rule {handle} in unknown chain {chain}"))?;
        let comment = match get(&a, 7) {
            None => None,
            Some(u) => Some(
                super::parse_comment(u.data)
                    .ok_or_else(|| format!("rule {handle}: userdata other than a comment"))?,
            ),
        };
        let exprs = get(&a, 4).map(|x| x.nested()).unwrap_or_default();
        let exprs =
            decode(t.family, &exprs, sets).map_err(|why| format!("rule {handle}: {why}"))?;
        by_chain[ci].push(super::rule_item(fname, name, chain, handle, comment, exprs));
    }
    items.extend(by_chain.into_iter().flatten());
    Ok(items)
}

/// The rules of the chains a walk from the table's base chains can reach (by jump, goto or a
/// verdict map), in their order; whether any rule was left out. The host-firewall walk never
/// visits the others, and decoding them is most of a big ruleset's memory.
pub fn reachable_rules<'r>(
    chains: &[&Reply],
    rules: &[&'r Reply],
    sets: &[Set],
) -> (Vec<&'r Reply>, bool) {
    let chain_of = |r: &Reply| get(&r.attrs(), 2).and_then(|a| a.str()).map(String::from);
    let mut by_chain: std::collections::HashMap<String, Vec<&Reply>> = Default::default();
    for r in rules {
        if let Some(c) = chain_of(r) {
            by_chain.entry(c).or_default().push(r);
        }
    }
    let mut reached: Vec<String> = chains
        .iter()
        .filter(|c| get(&c.attrs(), 4).is_some())
        .filter_map(|c| get(&c.attrs(), 3).and_then(|a| a.str()).map(String::from))
        .collect();
    let mut i = 0;
    while i < reached.len() {
        let chain = reached[i].clone();
        i += 1;
        for r in by_chain.get(&chain).into_iter().flatten() {
            for target in jump_targets(r, sets) {
                if !reached.contains(&target) {
                    reached.push(target);
                }
            }
        }
    }
    let kept: Vec<&Reply> = rules
        .iter()
        .copied()
        .filter(|r| chain_of(r).is_some_and(|c| reached.contains(&c)))
        .collect();
    let omitted = kept.len() != rules.len();
    (kept, omitted)
}

/// The chains a rule jumps or goes to: immediate verdicts, and the verdicts of an anonymous
/// verdict map it looks up.
fn jump_targets(r: &Reply, sets: &[Set]) -> Vec<String> {
    let a = r.attrs();
    let mut out = Vec::new();
    let Some(exprs) = get(&a, 4) else {
        return out;
    };
    for elem in exprs.nested() {
        let Some(e) = E::parse(&elem) else {
            continue;
        };
        match e.name {
            "immediate" => {
                let chain = get(&e.data, 2)
                    .map(|d| d.nested())
                    .and_then(|d| get(&d, 2).map(|v| v.nested()))
                    .and_then(|v| get(&v, 2).and_then(|c| c.str()).map(String::from));
                out.extend(chain);
            }
            "lookup" => {
                let name = get(&e.data, 1).and_then(|a| a.str());
                let set = sets.iter().find(|s| Some(s.name.as_str()) == name);
                for (_, _, v) in set.map(|s| &s.elements[..]).unwrap_or_default() {
                    let target = v
                        .as_ref()
                        .and_then(|v| v.as_object())
                        .and_then(|o| o.values().next())
                        .and_then(|b| b["target"].as_str());
                    out.extend(target.map(String::from));
                }
            }
            _ => {}
        }
    }
    out
}

const SET_ANONYMOUS: u32 = 0x1;
const SET_CONSTANT: u32 = 0x2;
const SET_INTERVAL: u32 = 0x4;
const SET_MAP: u32 = 0x8;
/// `NFT_DATA_VERDICT`: a map's data type for verdicts.
const DATA_VERDICT: u32 = 0xffff_ff00;

/// An anonymous set (or verdict map) of a foreign table, as a rule's `{ … }` makes it.
#[derive(Debug, Clone)]
pub struct Set {
    pub name: String,
    flags: u32,
    key_len: u32,
    /// `NFTA_SET_KEY_TYPE` (nft's datatype: 13 for ports).
    key_type: u32,
    /// (key, flags with [`ELEM_OPEN`], verdict of a map element).
    elements: Vec<(Vec<u8>, u32, Option<Value>)>,
    /// Elements not read (see [`Set::elidable`]): listed as [`ELIDED`].
    pub elided: bool,
}

/// What a port set whose elements were not read lists as its one element.
pub const ELIDED: &str = "…";

/// nft's `inet_service` datatype (a port).
const TYPE_INET_SERVICE: u32 = 13;

impl Set {
    /// The set's head; a named set, timeouts, element expressions and other data are `Err`.
    pub fn parse(r: &Reply) -> Result<Set, Why> {
        let a = r.attrs();
        // table, name, flags, key type, key len, data type, data len, desc, id, userdata,
        // handle, and the backend and element count newer kernels add.
        if !a
            .iter()
            .all(|x| [1, 2, 3, 4, 5, 6, 7, 9, 10, 13, 16, 19, 20].contains(&x.kind))
        {
            return Err("set attributes".into());
        }
        let name = get(&a, 2).and_then(|x| x.str()).ok_or("set name")?;
        let flags = get(&a, 3).and_then(|x| x.u32()).ok_or("set flags")?;
        if flags & SET_ANONYMOUS == 0 {
            return Err(format!("named set {name}"));
        }
        if flags & !(SET_ANONYMOUS | SET_CONSTANT | SET_INTERVAL | SET_MAP) != 0 {
            return Err(format!("set {name}: flags {flags:#x}"));
        }
        let data_type = get(&a, 6).and_then(|x| x.u32());
        if (flags & SET_MAP != 0) != (data_type == Some(DATA_VERDICT)) {
            return Err(format!("set {name}: a map of data other than verdicts"));
        }
        if get(&a, 9).is_some_and(|d| d.nested().iter().any(|x| x.kind != 1)) {
            return Err(format!("set {name}: description beyond its size"));
        }
        Ok(Set {
            name: name.to_string(),
            flags,
            key_len: get(&a, 5).and_then(|x| x.u32()).ok_or("set key length")?,
            key_type: get(&a, 4).and_then(|x| x.u32()).unwrap_or(0),
            elements: Vec::new(),
            elided: false,
        })
    }

    /// A plain set of ports (not a verdict map): the host-firewall walk never needs its
    /// elements (a rule for some ports does not cut the nodes off, `!=` some ports does,
    /// whichever they are), and reading them costs the kernel a lookup by name among all the
    /// table's sets per set: seconds for thousands of `tcp dport { … }` rules.
    pub fn elidable(&self) -> bool {
        self.flags & SET_MAP == 0 && self.key_type == TYPE_INET_SERVICE
    }

    /// The elements from a `NFT_MSG_GETSETELEM` dump: a key, flags, the open-interval tag
    /// and a map's verdict; anything else (timeouts, expressions, comments) is `Err`.
    pub fn add_elements(&mut self, replies: &[Reply]) -> Result<(), Why> {
        for r in replies {
            for a in r.attrs() {
                if a.kind != 3 {
                    continue;
                }
                for elem in a.nested() {
                    let attrs = elem.nested();
                    if attrs.iter().any(|x| ![1, 2, 3, 6].contains(&x.kind)) {
                        return Err(format!("set {}: element attributes", self.name));
                    }
                    let open = match get(&attrs, 6) {
                        None => 0,
                        Some(u) if u.data == ELEM_OPEN_UDATA => ELEM_OPEN,
                        Some(_) => return Err("element userdata".into()),
                    };
                    let key = get(&attrs, 1)
                        .map(|k| k.nested())
                        .filter(|k| k.len() == 1 && k[0].kind == 1)
                        .map(|k| k[0].data.to_vec())
                        .ok_or("element key")?;
                    if key.len() != self.key_len as usize {
                        return Err("element key length".into());
                    }
                    let flags = get(&attrs, 3).and_then(|x| x.u32()).unwrap_or(0);
                    if flags & !1 != 0 {
                        return Err("element flags".into());
                    }
                    let verdict = match get(&attrs, 2) {
                        None => None,
                        Some(d) => {
                            let d = d.nested();
                            let v = get(&d, 2).ok_or("element data")?.nested();
                            if d.len() != 1 {
                                return Err("element data".into());
                            }
                            Some(verdict(&v)?)
                        }
                    };
                    if verdict.is_some() != (self.flags & SET_MAP != 0 && flags & 1 == 0) {
                        return Err("element verdict".into());
                    }
                    self.elements.push((key, flags | open, verdict));
                }
            }
        }
        Ok(())
    }
}

/// A verdict (`NFTA_DATA_VERDICT`'s attributes) as libnftables prints it.
fn verdict(v: &[Attr<'_>]) -> Result<Value, Why> {
    if v.iter().any(|a| a.kind > 2) {
        return Err("verdict attributes".into());
    }
    let code = get(v, 1).and_then(|a| a.u32()).ok_or("verdict")? as i32;
    let chain = get(v, 2).and_then(|a| a.str());
    Ok(match (code, chain) {
        (1, None) => json!({"accept": null}),
        (0, None) => json!({"drop": null}),
        (-5, None) => json!({"return": null}),
        (-3, Some(c)) => json!({"jump": {"target": c}}),
        (-4, Some(c)) => json!({"goto": {"target": c}}),
        _ => return Err(format!("verdict {code}")),
    })
}

/// What a set's keys are, for printing them: the left side of the lookup says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    IfName,
    L4Proto,
    CtState,
    Ipv4,
    Port,
}

/// A lookup of `set` in a rule: `{"set": [...]}` for a match, or the map's elements for a
/// `vmap`, printed and ordered as nft does (sorted by value, host-order types by their value
/// on this little- or big-endian machine).
fn set_elements(key: Key, set: &Set, map: bool) -> Result<Vec<Value>, Why> {
    if (set.flags & SET_MAP != 0) != map {
        return Err("set or map where the other was expected".into());
    }
    if set.elided {
        return match key {
            Key::Port => Ok(vec![json!(ELIDED)]),
            _ => Err("elements not read".into()),
        };
    }
    if key == Key::Ipv4 {
        if map {
            return Err("a map of addresses".into());
        }
        let anon = AnonSet {
            flags: set.flags,
            key_type: 0,
            key_len: set.key_len,
            size: 0,
            userdata: Vec::new(),
            elements: set
                .elements
                .iter()
                .map(|(k, f, _)| (k.clone(), *f))
                .collect(),
        };
        return super::rules::decode_ipv4_set(&anon).ok_or_else(|| "address set".into());
    }
    if set.flags & SET_INTERVAL != 0 || set.elements.len() < 2 {
        return Err("interval or single-element set".into());
    }
    let host_order = matches!(key, Key::IfName | Key::CtState);
    let mut elems: Vec<&(Vec<u8>, u32, Option<Value>)> = set.elements.iter().collect();
    elems.sort_by_key(|(k, ..)| {
        let mut k = k.clone();
        if host_order && cfg!(target_endian = "little") {
            k.reverse();
        }
        k
    });
    elems
        .into_iter()
        .map(|(k, _, v)| {
            let shown = match key {
                Key::IfName if k.last() == Some(&0) => json!(ifname(k).ok_or("name")?),
                Key::L4Proto if k.len() == 1 => json!(l4_name(k[0]).ok_or("protocol")?),
                Key::CtState if k.len() == 4 => {
                    let v = u32::from_ne_bytes(k[..].try_into().map_err(|_| "state")?);
                    let name = CT_STATES.iter().find(|(_, b)| *b == v).ok_or("state")?;
                    json!(name.0)
                }
                Key::Port if k.len() == 2 => json!(u16::from_be_bytes([k[0], k[1]])),
                _ => return Err("element".into()),
            };
            Ok(match v {
                Some(v) => json!([shown, v]),
                None => shown,
            })
        })
        .collect()
}

/// A match or verdict map on `left` by the lookup `e` (the expression after the load).
fn lookup(left: Value, key: Key, e: &E, sets: &[Set]) -> Result<Value, Why> {
    let name = get(&e.data, 1).and_then(|a| a.str()).ok_or("lookup set")?;
    let set = sets
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| format!("lookup of set {name}, which is not an anonymous one"))?;
    let flags = e.u(5).unwrap_or(0);
    match e.u(3) {
        None => {
            let op = match flags {
                0 => "==",
                1 => "!=",
                _ => return Err("lookup flags".into()),
            };
            let elems = set_elements(key, set, false)?;
            Ok(matches(op, left, json!({"set": elems})))
        }
        Some(0) if flags == 0 => {
            let elems = set_elements(key, set, true)?;
            Ok(json!({"vmap": {"key": left, "data": {"set": elems}}}))
        }
        Some(_) => Err("lookup into a data register".into()),
    }
}

/// One expression of a dump: its name and its data attributes.
struct E<'a> {
    name: &'a str,
    data: Vec<Attr<'a>>,
}

impl<'a> E<'a> {
    fn parse(elem: &Attr<'a>) -> Option<E<'a>> {
        let a = elem.nested();
        if a.iter().any(|x| x.kind > 2) {
            return None;
        }
        Some(E {
            name: get(&a, 1)?.str()?,
            data: get(&a, 2).map(|d| d.nested()).unwrap_or_default(),
        })
    }
    fn u(&self, k: u16) -> Option<u32> {
        get(&self.data, k).and_then(|a| a.u32())
    }
    fn u64(&self, k: u16) -> Option<u64> {
        get(&self.data, k).and_then(|a| a.u64())
    }
    fn known(&self, allowed: &[u16]) -> bool {
        self.data.iter().all(|a| allowed.contains(&a.kind))
    }
    /// An `NFTA_DATA_VALUE` nested in attribute `k`.
    fn value(&self, k: u16) -> Option<&'a [u8]> {
        let nest = get(&self.data, k)?.nested();
        if nest.len() != 1 {
            return None;
        }
        let v = get(&nest, 1)?;
        Some(v.data)
    }
    /// `meta load KEY => reg 1`: the key.
    fn meta_load(&self) -> Option<u32> {
        (self.name == "meta" && self.known(&[1, 2]) && self.u(1)? == 1).then_some(())?;
        self.u(2)
    }
    /// `cmp OP reg 1 DATA` with `==` or `!=`.
    fn cmp(&self) -> Option<(&'static str, &'a [u8])> {
        if self.name != "cmp" || !self.known(&[1, 2, 3]) || self.u(1)? != 1 {
            return None;
        }
        let op = match self.u(2)? {
            0 => "==",
            1 => "!=",
            _ => return None,
        };
        Some((op, self.value(3)?))
    }
    /// `lookup reg 1 set NAME [dreg 0]`.
    fn is_lookup(&self) -> bool {
        self.name == "lookup" && self.known(&[1, 2, 3, 5]) && self.u(2) == Some(1)
    }
    /// `payload load LEN @ BASE + OFFSET => reg 1`.
    fn payload(&self) -> Option<(u32, u32, u32)> {
        (self.name == "payload" && self.known(&[1, 2, 3, 4]) && self.u(1)? == 1).then_some(())?;
        Some((self.u(2)?, self.u(3)?, self.u(4)?))
    }
    /// `bitwise reg 1 = (reg 1 & MASK) ^ XOR` over LEN bytes: (len, mask, xor).
    fn bitwise(&self) -> Option<(u32, &'a [u8], &'a [u8])> {
        if self.name != "bitwise"
            || !self.known(&[1, 2, 3, 4, 5, 6])
            || self.u(1)? != 1
            || self.u(2)? != 1
            || self.u(6).unwrap_or(0) != 0
        {
            return None;
        }
        Some((self.u(3)?, self.value(4)?, self.value(5)?))
    }
}

const IFNAMSIZ: usize = 16;
const META_IIFNAME: u32 = 6;
const META_OIFNAME: u32 = 7;
const META_NFPROTO: u32 = 15;
const META_L4PROTO: u32 = 16;
const BASE_NETWORK: u32 = 1;
const BASE_TRANSPORT: u32 = 2;

/// The name nft prints for protocol `p` in `meta l4proto`: the one `getprotobynumber`
/// gives (`/etc/protocols`), as nft looks it up. Unnamed: not decoded (nft prints a number).
/// Looked up once per number (the lookup reads the file) and under a lock (it is not
/// reentrant).
fn l4_name(p: u8) -> Option<String> {
    static NAMES: std::sync::Mutex<Vec<(u8, Option<String>)>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, n)) = names.iter().find(|(q, _)| *q == p) {
        return n.clone();
    }
    // SAFETY: the entry returned points into libc's static storage, read (copied) at once
    // while the lock is held.
    let name = unsafe {
        let entry = libc::getprotobynumber(i32::from(p));
        if entry.is_null() || (*entry).p_name.is_null() {
            None
        } else {
            std::ffi::CStr::from_ptr((*entry).p_name)
                .to_str()
                .ok()
                .map(str::to_string)
        }
    };
    names.push((p, name.clone()));
    name
}

fn matches(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

/// An interface name as a cmp holds it: NUL-terminated (exact) or not (a `*` wildcard).
fn ifname(data: &[u8]) -> Option<String> {
    if data.is_empty() || data.len() > IFNAMSIZ {
        return None;
    }
    let (name, wildcard) = match data.iter().position(|b| *b == 0) {
        Some(end) => {
            // Only NULs after the name.
            if data[end..].iter().any(|b| *b != 0) {
                return None;
            }
            (&data[..end], false)
        }
        // A wildcard's prefix is shorter than a full name.
        None if data.len() < IFNAMSIZ => (data, true),
        None => return None,
    };
    let name = std::str::from_utf8(name).ok()?;
    // Characters nft escapes or quotes differently, and an empty name: not decoded.
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@:+".contains(&b))
    {
        return None;
    }
    Some(if wildcard {
        format!("{name}*")
    } else {
        name.to_string()
    })
}

fn prefix_of_mask(mask: &[u8]) -> Option<u32> {
    let bits: u32 = mask.iter().map(|b| b.count_ones()).sum();
    let want: Vec<u8> = (0..mask.len())
        .map(|i| {
            let left = bits.saturating_sub(8 * i as u32).min(8);
            if left == 0 {
                0
            } else {
                0xffu8 << (8 - left)
            }
        })
        .collect();
    (want == mask).then_some(bits)
}

const CT_STATES: &[(&str, u32)] = &[
    ("invalid", 1),
    ("established", 2),
    ("related", 4),
    ("new", 8),
    ("untracked", 64),
];
const CT_STATUS: &[(&str, u32)] = &[
    ("expected", 1),
    ("seen-reply", 2),
    ("assured", 4),
    ("confirmed", 8),
    ("snat", 0x10),
    ("dnat", 0x20),
    ("dying", 0x200),
];

fn time_unit(seconds: u64) -> Option<&'static str> {
    Some(match seconds {
        1 => "second",
        60 => "minute",
        3600 => "hour",
        86400 => "day",
        604800 => "week",
        _ => return None,
    })
}

/// The network header a payload load reads, as nft knows it at that point of the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L3 {
    V4,
    V6,
    Unknown,
}

impl L3 {
    /// The address field a load of `len` bytes at `offset` reads (the whole address, or the
    /// bytes of a prefix): (protocol, field, address width).
    fn field(self, offset: u32, len: u32) -> Option<(&'static str, &'static str, usize)> {
        let (protocol, width, saddr, daddr) = match self {
            L3::V4 => ("ip", 4, 12, 16),
            L3::V6 => ("ip6", 16, 8, 24),
            L3::Unknown => return None,
        };
        if len == 0 || len as usize > width {
            return None;
        }
        let field = match offset {
            o if o == saddr => "saddr",
            o if o == daddr => "daddr",
            _ => return None,
        };
        Some((protocol, field, width))
    }
}

/// An address as nft prints it (`inet_ntop`). IPv6 addresses whose first 80 bits are zero
/// (IPv4-compatible and -mapped forms, which glibc and Rust write differently) are not shown.
fn show_addr(a: &[u8]) -> Option<String> {
    match a.len() {
        4 => Some(Ipv4Addr::from(<[u8; 4]>::try_from(a).ok()?).to_string()),
        16 if a[..10].iter().any(|b| *b != 0) => {
            Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(a).ok()?).to_string())
        }
        _ => None,
    }
}

/// Whether a transport-header load follows among the rule's matches: nft then hides the
/// `meta l4proto` before it as that field's dependency.
fn transport_read_later(rest: &[E]) -> bool {
    for e in rest {
        match e.name {
            "payload" => {
                if e.payload().is_some_and(|(base, ..)| base == BASE_TRANSPORT) {
                    return true;
                }
            }
            "cmp" | "bitwise" | "meta" | "ct" | "lookup" => {}
            _ => return false,
        }
    }
    false
}

/// A rule's expressions as libnftables prints them.
pub fn decode(family: u8, raw: &[Attr<'_>], sets: &[Set]) -> Result<Vec<Value>, Why> {
    let exprs: Vec<E> = raw
        .iter()
        .map(|a| E::parse(a).ok_or_else(|| "expression attributes".to_string()))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(exprs.len());
    // The network header a payload reads: IPv4 in an `ip` table, or after `meta nfproto ipv4`
    // in an `inet` one. The transport protocol set by a `meta l4proto` dependency.
    let mut l3 = match family {
        NFPROTO_IPV4 => L3::V4,
        NFPROTO_IPV6 => L3::V6,
        _ => L3::Unknown,
    };
    let mut l4: Option<u8> = None;
    let mut i = 0;
    let unknown = |e: &E| format!("expression {} not decoded", e.name);
    while i < exprs.len() {
        let e = &exprs[i];
        let next = exprs.get(i + 1);
        let after = exprs.get(i + 2);
        match e.name {
            "counter" if e.known(&[1, 2]) => {
                out.push(json!({"counter": {
                    "packets": e.u64(2).ok_or("counter")?,
                    "bytes": e.u64(1).ok_or("counter")?,
                }}));
                i += 1;
            }
            "immediate" if e.known(&[1, 2]) && e.u(1) == Some(0) => {
                let d = get(&e.data, 2).ok_or("immediate")?.nested();
                let v = get(&d, 2).ok_or("immediate data")?.nested();
                if d.len() != 1 {
                    return Err("verdict attributes".into());
                }
                out.push(verdict(&v)?);
                i += 1;
            }
            // iptables-nft's xtables matches and targets: libnftables prints the name only.
            "match" | "target" if e.known(&[1, 2, 3]) => {
                let name = get(&e.data, 1).and_then(|a| a.str()).ok_or("xt name")?;
                out.push(json!({"xt": {"type": e.name, "name": name}}));
                i += 1;
            }
            "limit" if e.known(&[1, 2, 3, 4, 5]) => {
                // Packets per unit, not inverted, with a burst (libnftables 1.0.6 prints it).
                if e.u(4).unwrap_or(0) != 0 || e.u(5).unwrap_or(0) != 0 || e.u(3) == Some(0) {
                    return Err("limit type or flags".into());
                }
                let per = time_unit(e.u64(2).ok_or("limit unit")?).ok_or("limit unit")?;
                out.push(json!({"limit": {
                    "rate": e.u64(1).ok_or("limit rate")?,
                    "burst": e.u(3).ok_or("limit burst")?,
                    "per": per,
                }}));
                i += 1;
            }
            // `log` with at most a prefix: the default level (warn) and no flags, which
            // libnftables leaves out.
            "log" if e.known(&[2, 5, 6]) => {
                if e.u(5).unwrap_or(4) != 4 || e.u(6).unwrap_or(0) != 0 {
                    return Err("log level or flags".into());
                }
                out.push(match get(&e.data, 2) {
                    Some(p) => json!({"log": {"prefix": p.str().ok_or("log prefix")?}}),
                    None => json!({"log": null}),
                });
                i += 1;
            }
            "masq" if e.data.is_empty() => {
                out.push(json!({"masquerade": null}));
                i += 1;
            }
            "notrack" if e.data.is_empty() => {
                out.push(json!({"notrack": null}));
                i += 1;
            }
            "meta" => {
                let key = e.meta_load().ok_or_else(|| unknown(e))?;
                let left = |k: &str| json!({"meta": {"key": k}});
                if let Some(l) = next.filter(|n| n.is_lookup()) {
                    let (k, kind) = match key {
                        META_IIFNAME => ("iifname", Key::IfName),
                        META_OIFNAME => ("oifname", Key::IfName),
                        META_L4PROTO => ("l4proto", Key::L4Proto),
                        _ => return Err(format!("lookup of meta key {key}")),
                    };
                    out.push(lookup(left(k), kind, l, sets)?);
                    i += 2;
                    continue;
                }
                let (op, data) = next.and_then(E::cmp).ok_or("meta without cmp")?;
                match key {
                    META_IIFNAME | META_OIFNAME => {
                        let k = if key == META_IIFNAME {
                            "iifname"
                        } else {
                            "oifname"
                        };
                        let name = ifname(data).ok_or("interface name")?;
                        out.push(matches(op, left(k), json!(name)));
                    }
                    META_L4PROTO => {
                        let [p] = data else {
                            return Err("l4proto length".into());
                        };
                        let dependency = op == "=="
                            && family != NFPROTO_BRIDGE
                            && l4.is_none()
                            && (*p == 6 || *p == 17)
                            && transport_read_later(&exprs[i + 2..]);
                        if dependency {
                            l4 = Some(*p);
                        } else {
                            let name = l4_name(*p).ok_or("l4proto number")?;
                            out.push(matches(op, left("l4proto"), json!(name)));
                        }
                    }
                    META_NFPROTO if family == super::foreign::NFPROTO_INET => {
                        let (name, version) = match data {
                            [2] => ("ipv4", L3::V4),
                            [10] => ("ipv6", L3::V6),
                            _ => return Err("nfproto".into()),
                        };
                        let dependency = op == "=="
                            && l3 == L3::Unknown
                            && after
                                .and_then(E::payload)
                                .is_some_and(|(base, ..)| base == BASE_NETWORK);
                        if dependency {
                            l3 = version;
                        } else {
                            out.push(matches(op, left("nfproto"), json!(name)));
                        }
                    }
                    _ => return Err(format!("meta key {key}")),
                }
                i += 2;
            }
            "payload" => {
                let (base, offset, len) = e.payload().ok_or_else(|| unknown(e))?;
                match (base, offset) {
                    (BASE_NETWORK, _) if l3.field(offset, len).is_some() => {
                        let (protocol, field, width) = l3.field(offset, len).expect("checked");
                        let left = json!({"payload": {"protocol": protocol, "field": field}});
                        if let Some(l) = next.filter(|n| n.is_lookup()) {
                            if protocol != "ip" || len != 4 {
                                return Err("lookup of a partial or IPv6 address".into());
                            }
                            out.push(lookup(left, Key::Ipv4, l, sets)?);
                            i += 2;
                            continue;
                        }
                        let mut addr = vec![0u8; width];
                        let (op, plen, used) = match next.and_then(E::bitwise) {
                            Some((blen, mask, xor)) => {
                                let (op, data) =
                                    after.and_then(E::cmp).ok_or("bitwise without cmp")?;
                                let plen = prefix_of_mask(mask).ok_or("mask")?;
                                if blen != len
                                    || mask.len() != len as usize
                                    || xor.iter().any(|b| *b != 0)
                                    || xor.len() != len as usize
                                    || data.len() != len as usize
                                    || plen == 0
                                    || plen >= len * 8
                                    || data.iter().zip(mask).any(|(d, m)| d & !m != 0)
                                {
                                    return Err("masked address".into());
                                }
                                addr[..data.len()].copy_from_slice(data);
                                (op, plen, 3)
                            }
                            None => {
                                let (op, data) =
                                    next.and_then(E::cmp).ok_or("payload without cmp")?;
                                if data.len() != len as usize {
                                    return Err("address length".into());
                                }
                                addr[..data.len()].copy_from_slice(data);
                                (op, len * 8, 2)
                            }
                        };
                        let a = show_addr(&addr).ok_or("address form")?;
                        let right = if plen as usize == width * 8 {
                            json!(a)
                        } else {
                            json!({"prefix": {"addr": a, "len": plen}})
                        };
                        out.push(matches(op, left, right));
                        i += used;
                    }
                    // iptables-nft reads `--sport A --dport B` as one 4-byte load: nft
                    // prints the two ports.
                    (BASE_TRANSPORT, 0) if len == 4 && l4.is_some() => {
                        let proto = if l4 == Some(6) { "tcp" } else { "udp" };
                        let (op, data) = next.and_then(E::cmp).ok_or("payload without cmp")?;
                        let [a, b, c, d] = data else {
                            return Err("ports length".into());
                        };
                        if op != "==" {
                            return Err("ports compared with !=".into());
                        }
                        for (field, port) in [("sport", [*a, *b]), ("dport", [*c, *d])] {
                            let left = json!({"payload": {"protocol": proto, "field": field}});
                            out.push(matches(op, left, json!(u16::from_be_bytes(port))));
                        }
                        i += 2;
                    }
                    (BASE_TRANSPORT, 0 | 2) if len == 2 && l4.is_some() => {
                        let proto = if l4 == Some(6) { "tcp" } else { "udp" };
                        let field = if offset == 0 { "sport" } else { "dport" };
                        if let Some(l) = next.filter(|n| n.is_lookup()) {
                            let left = json!({"payload": {"protocol": proto, "field": field}});
                            out.push(lookup(left, Key::Port, l, sets)?);
                            i += 2;
                            continue;
                        }
                        let (op, data) = next.and_then(E::cmp).ok_or("payload without cmp")?;
                        let [a, b] = data else {
                            return Err("port length".into());
                        };
                        let left = json!({"payload": {"protocol": proto, "field": field}});
                        out.push(matches(op, left, json!(u16::from_be_bytes([*a, *b]))));
                        i += 2;
                    }
                    _ => return Err(format!("payload {base}/{offset}/{len}")),
                }
            }
            "ct" if e.known(&[1, 2]) && e.u(1) == Some(1) => {
                let key = e.u(2).ok_or("ct key")?;
                if let Some(l) = next.filter(|n| n.is_lookup()) {
                    if key != 0 {
                        return Err(format!("lookup of ct key {key}"));
                    }
                    out.push(lookup(
                        json!({"ct": {"key": "state"}}),
                        Key::CtState,
                        l,
                        sets,
                    )?);
                    i += 2;
                    continue;
                }
                match key {
                    0 | 2 => {
                        let (blen, mask, xor) = next.and_then(E::bitwise).ok_or("ct bitwise")?;
                        let (op, data) = after.and_then(E::cmp).ok_or("ct cmp")?;
                        if blen != 4
                            || xor != [0; 4]
                            || data != [0; 4]
                            || op != "!="
                            || mask.len() != 4
                        {
                            return Err("ct flags".into());
                        }
                        let mask = u32::from_ne_bytes(mask.try_into().map_err(|_| "mask")?);
                        let (name, table) = if key == 0 {
                            ("state", CT_STATES)
                        } else {
                            ("status", CT_STATUS)
                        };
                        let right = decode_bits(table, mask).ok_or("ct bits")?;
                        out.push(matches("in", json!({"ct": {"key": name}}), right));
                        i += 3;
                    }
                    1 => {
                        let (op, data) = next.and_then(E::cmp).ok_or("ct cmp")?;
                        let dir = match data {
                            [0] => "original",
                            [1] => "reply",
                            _ => return Err("ct direction".into()),
                        };
                        out.push(matches(op, json!({"ct": {"key": "direction"}}), json!(dir)));
                        i += 2;
                    }
                    _ => return Err(format!("ct key {key}")),
                }
            }
            _ => return Err(unknown(e)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::expr::KExpr;
    use super::super::wire::{attrs, Msg};
    use super::*;

    /// One piece of a rule as the kernel dumps it.
    enum P {
        K(KExpr),
        Counter(u64, u64),
        Xt(&'static str, &'static str),
        Jump(&'static str),
        Lookup,
    }

    fn meta(key: u32) -> P {
        P::K(KExpr::Meta { key, dreg: 1 })
    }
    fn cmp(op: u32, data: &[u8]) -> P {
        P::K(KExpr::Cmp {
            sreg: 1,
            op,
            data: data.to_vec(),
        })
    }
    fn payload(base: u32, offset: u32, len: u32) -> P {
        P::K(KExpr::Payload {
            dreg: 1,
            base,
            offset,
            len,
        })
    }

    fn decode_parts(family: u8, parts: Vec<P>) -> Result<Vec<Value>, Why> {
        let mut m = Msg::nft(0, 0, family);
        m.begin(4);
        let names = |_: &super::super::expr::SetRef| ("s".to_string(), None);
        for p in parts {
            match p {
                P::K(k) => k.put(&mut m, &names),
                P::Counter(bytes, packets) => {
                    m.begin(1).str(1, "counter").begin(2);
                    m.bytes(1, &bytes.to_be_bytes())
                        .bytes(2, &packets.to_be_bytes());
                    m.end().end();
                }
                P::Xt(kind, name) => {
                    m.begin(1).str(1, kind).begin(2);
                    m.str(1, name).u32(2, 0).bytes(3, &[0; 8]);
                    m.end().end();
                }
                P::Jump(chain) => {
                    m.begin(1).str(1, "immediate").begin(2).u32(1, 0);
                    m.begin(2).begin(2).u32(1, (-3i32) as u32).str(2, chain);
                    m.end().end().end().end();
                }
                P::Lookup => {
                    m.begin(1).str(1, "lookup").begin(2);
                    m.str(1, "blocklist").u32(2, 1);
                    m.end().end();
                }
            }
        }
        m.end();
        let bytes = m.attr_bytes();
        let top = attrs(&bytes);
        decode(family, &top[0].nested(), &[])
    }

    fn m(op: &str, left: Value, right: Value) -> Value {
        matches(op, left, right)
    }

    #[test]
    fn iptables_nft_rules_decode_as_libnftables_prints_them() {
        // -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        let got = decode_parts(
            NFPROTO_IPV4,
            vec![
                meta(META_OIFNAME),
                cmp(0, b"docker0\0"),
                P::Xt("match", "conntrack"),
                P::Counter(10, 2),
                P::K(KExpr::Verdict(1)),
            ],
        )
        .unwrap();
        assert_eq!(
            Value::Array(got),
            json!([
                m("==", json!({"meta": {"key": "oifname"}}), json!("docker0")),
                {"xt": {"type": "match", "name": "conntrack"}},
                {"counter": {"packets": 2, "bytes": 10}},
                {"accept": null}
            ])
        );
        // -d 172.17.0.2/32 ! -i br+ -p tcp -m tcp --dport 80 -j DOCKER: the l4proto
        // dependency sits before the address, and is hidden by the port after it.
        let got = decode_parts(
            NFPROTO_IPV4,
            vec![
                meta(META_IIFNAME),
                cmp(1, b"br"),
                meta(META_L4PROTO),
                cmp(0, &[6]),
                payload(BASE_NETWORK, 16, 4),
                cmp(0, &[172, 17, 0, 2]),
                payload(BASE_TRANSPORT, 2, 2),
                cmp(0, &80u16.to_be_bytes()),
                P::Jump("DOCKER"),
            ],
        )
        .unwrap();
        let ip = json!({"payload": {"protocol": "ip", "field": "daddr"}});
        assert_eq!(
            Value::Array(got),
            json!([
                m("!=", json!({"meta": {"key": "iifname"}}), json!("br*")),
                m("==", ip, json!("172.17.0.2")),
                m("==", json!({"payload": {"protocol": "tcp", "field": "dport"}}), json!(80)),
                {"jump": {"target": "DOCKER"}}
            ])
        );
        // -s 10.16.0.0/12 -p udp --sport 67 --dport 68: a masked prefix, one 4-byte port load.
        let got = decode_parts(
            NFPROTO_IPV4,
            vec![
                meta(META_L4PROTO),
                cmp(0, &[17]),
                payload(BASE_NETWORK, 12, 2),
                P::K(KExpr::Bitwise {
                    sreg: 1,
                    dreg: 1,
                    len: 2,
                    mask: vec![0xff, 0xf0],
                    xor: vec![0, 0],
                }),
                cmp(0, &[10, 16]),
                payload(BASE_TRANSPORT, 0, 4),
                cmp(0, &[0, 67, 0, 68]),
            ],
        )
        .unwrap();
        let udp = |f: &str| json!({"payload": {"protocol": "udp", "field": f}});
        assert_eq!(
            Value::Array(got),
            json!([
                m(
                    "==",
                    json!({"payload": {"protocol": "ip", "field": "saddr"}}),
                    json!({"prefix": {"addr": "10.16.0.0", "len": 12}})
                ),
                m("==", udp("sport"), json!(67)),
                m("==", udp("dport"), json!(68)),
            ])
        );
        // -p icmp -m icmp: the protocol is shown (nothing reads the transport header).
        let got = decode_parts(
            NFPROTO_IPV4,
            vec![meta(META_L4PROTO), cmp(0, &[1]), P::Xt("match", "icmp")],
        )
        .unwrap();
        assert_eq!(
            got[0],
            m("==", json!({"meta": {"key": "l4proto"}}), json!("icmp"))
        );
    }

    #[test]
    fn forms_not_decoded_exactly_are_refused() {
        let v4 = NFPROTO_IPV4;
        for (family, parts) in [
            // A named set: libnftables prints `@name`, which is not read here.
            (
                v4,
                vec![
                    payload(BASE_NETWORK, 12, 4),
                    P::Lookup,
                    P::K(KExpr::Verdict(0)),
                ],
            ),
            // `<` is not an operator decoded here.
            (
                v4,
                vec![payload(BASE_NETWORK, 12, 4), cmp(2, &[10, 0, 0, 1])],
            ),
            // meta mark, a protocol number /etc/protocols does not name, a port without its protocol.
            (v4, vec![meta(3), cmp(0, &[1, 0, 0, 0])]),
            (v4, vec![meta(META_L4PROTO), cmp(0, &[255])]),
            (v4, vec![payload(BASE_TRANSPORT, 2, 2), cmp(0, &[0, 80])]),
            // A mask that is not a prefix.
            (
                v4,
                vec![
                    payload(BASE_NETWORK, 12, 4),
                    P::K(KExpr::Bitwise {
                        sreg: 1,
                        dreg: 1,
                        len: 4,
                        mask: vec![0xff, 0, 0xff, 0],
                        xor: vec![0; 4],
                    }),
                    cmp(0, &[10, 0, 1, 0]),
                ],
            ),
            // An interface name with a character nft would escape.
            (v4, vec![meta(META_IIFNAME), cmp(0, b"a*b\0")]),
            // A network header read in an `inet` table without the IPv4 dependency.
            (
                NFPROTO_INET,
                vec![payload(BASE_NETWORK, 12, 4), cmp(0, &[10, 0, 0, 1])],
            ),
        ] {
            assert!(decode_parts(family, parts).is_err());
        }
    }

    #[test]
    fn set_elements_are_ordered_as_nft_orders_them() {
        let name = |n: &str| {
            let mut k = n.as_bytes().to_vec();
            k.resize(IFNAMSIZ, 0);
            k
        };
        let set = |key_len: u32, keys: Vec<Vec<u8>>, map: bool| Set {
            name: "__set0".into(),
            flags: SET_ANONYMOUS | SET_CONSTANT | if map { SET_MAP } else { 0 },
            key_len,
            key_type: 0,
            elements: keys
                .into_iter()
                .map(|k| (k, 0, map.then(|| json!({"accept": null}))))
                .collect(),
            elided: false,
        };
        // Interface names are host-order strings: on a little-endian machine the longer
        // name sorts after the shorter one whatever the first letters (nft prints "eth0"
        // before "docker0").
        let s = set(16, vec![name("docker0"), name("eth0")], true);
        let got = set_elements(Key::IfName, &s, true).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(got[0][0], "eth0");
        }
        // A set where a map is expected (and the reverse) is refused.
        assert!(set_elements(Key::IfName, &s, false).is_err());
        let states = set(
            4,
            vec![4u32.to_ne_bytes().to_vec(), 2u32.to_ne_bytes().to_vec()],
            false,
        );
        assert_eq!(
            Value::Array(set_elements(Key::CtState, &states, false).unwrap()),
            json!(["established", "related"])
        );
        let ports = set(2, vec![vec![1, 0], vec![0, 80], vec![0, 22]], false);
        assert_eq!(
            Value::Array(set_elements(Key::Port, &ports, false).unwrap()),
            json!([22, 80, 256])
        );
    }

    #[test]
    fn ipv6_prefixes_decode_and_ipv4_compatible_forms_are_refused() {
        let got = decode_parts(
            NFPROTO_IPV6,
            vec![
                payload(BASE_NETWORK, 8, 2),
                P::K(KExpr::Bitwise {
                    sreg: 1,
                    dreg: 1,
                    len: 2,
                    mask: vec![0xff, 0xc0],
                    xor: vec![0, 0],
                }),
                cmp(0, &[0xfe, 0x80]),
            ],
        )
        .unwrap();
        assert_eq!(
            got[0],
            m(
                "==",
                json!({"payload": {"protocol": "ip6", "field": "saddr"}}),
                json!({"prefix": {"addr": "fe80::", "len": 10}})
            )
        );
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12] = 10;
        assert!(decode_parts(
            NFPROTO_IPV6,
            vec![payload(BASE_NETWORK, 24, 16), cmp(0, &mapped)]
        )
        .is_err());
    }
}
