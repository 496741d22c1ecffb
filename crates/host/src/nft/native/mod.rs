//! nf_tables over netlink from our own process, for the tables edgenet writes: the same JSON in
//! and out as libnftables (`nft -j`), without loading it.
//!
//! The subset (everything edgenet's firewall builders make): `add`/`create`/`delete table` in
//! the `ip` and `bridge` families; `add chain` of a base chain (type, hook, numeric priority,
//! policy); `add rule` with a comment and the expressions of [`rules`] (meta iifname/oifname,
//! ip/ether/arp/tcp/udp payload matches with `==`/`!=` on a value or prefix, `!=` on an
//! anonymous set of addresses, prefixes and ranges or of ether types, `ct state`/`ct status in
//! …`, `ct direction`, `fib daddr type local`, `meta pkttype host`, accept/drop/return,
//! masquerade, notrack, `dnat to addr:port`), each encoded exactly as nft 1.0 encodes it (implicit dependencies, anonymous
//! set flags, key types, userdata and interval elements included), so `nft list` prints a
//! natively written table as it prints one nft wrote. A document with anything else is not
//! written here ([`apply`] returns `None`) and the caller hands it to libnftables.
//!
//! Reading: a ruleset (or one table) is decoded only when every `edgenet_` table of `ip` or
//! `bridge` family read holds base chains, anonymous sets and rules the decoder turns back
//! into JSON that encodes to exactly the kernel's expressions and sets. Other tools' tables
//! (`ip`, `ip6`, `inet`, `bridge`) are decoded by [`foreign`] in a whole-ruleset read, in the
//! forms iptables-nft and plain nft rulesets use (Docker, ufw, Debian's `inet filter`). Anything
//! else (a rule added by hand in a form we do not write, a named set, an object, an expression
//! [`foreign`] does not know) makes the read return `None`, and libnftables reads it instead.
//! A table list is one `NFT_MSG_GETTABLE` dump. The listing's `metainfo` item carries only `json_schema_version`:
//! nft's version and release name are the library's to say, and no caller reads them.
//!
//! Writes are one nfnetlink batch (one transaction); a kernel error is reported as
//! libnftables words it (`Error: Could not process rule: File exists`), so callers that match
//! on those texts see no difference.

mod expr;
mod foreign;
mod rules;
mod wire;

pub(super) use wire::owned_tables;

use serde_json::{json, Value};

use expr::{AnonSet, KExpr, SetRef, NFPROTO_BRIDGE, NFPROTO_IPV4};
use wire::*;

/// The tables decoded here: edgenet's.
const OWN_PREFIX: &str = "edgenet_";

/// What a native call could not do: the kernel's errors for commands of the document, or an
/// I/O error on the socket.
#[derive(Debug)]
pub enum NativeError {
    /// `(index, errno)`: errno answering command `index` of the document.
    Kernel(Vec<(usize, i32)>),
    Io(std::io::Error),
}

impl NativeError {
    /// The text libnftables prints for it (one error per refused command), so callers that read
    /// "File exists" or "No such file or directory" see no difference.
    pub fn text(&self) -> String {
        match self {
            NativeError::Kernel(errors) => errors
                .iter()
                .map(|(_, errno)| {
                    format!(
                        "internal:0:0-0: Error: Could not process rule: {}",
                        nix::errno::Errno::from_raw(*errno).desc()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n\n"),
            NativeError::Io(e) => format!("Error: netlink: {e}"),
        }
    }
}

impl From<std::io::Error> for NativeError {
    fn from(e: std::io::Error) -> Self {
        NativeError::Io(e)
    }
}

fn family_id(name: &str) -> Option<u8> {
    match name {
        "ip" => Some(NFPROTO_IPV4),
        "bridge" => Some(NFPROTO_BRIDGE),
        _ => None,
    }
}

fn family_name(id: u8) -> Option<&'static str> {
    match id {
        NFPROTO_IPV4 => Some("ip"),
        NFPROTO_BRIDGE => Some("bridge"),
        _ => None,
    }
}

const HOOKS: &[&str] = &["prerouting", "input", "forward", "output", "postrouting"];
const CHAIN_TYPES: &[&str] = &["filter", "nat", "route"];

// --- writing -------------------------------------------------------------------------------

/// The batch for `document`, each message with the index of the command it comes from;
/// `Err(why)` when a command is outside the subset.
fn encode_document(document: &Value) -> Result<Vec<(Msg, usize)>, String> {
    let cmds = document
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("no nftables array")?;
    let mut msgs = Vec::new();
    let mut set_id = 0u32;
    for (index, cmd) in cmds.iter().enumerate() {
        let (verb, object) = one(cmd).ok_or_else(|| format!("command {cmd}"))?;
        let (kind, body) = one(object).ok_or_else(|| format!("command {cmd}"))?;
        let body = body.as_object().ok_or_else(|| format!("command {cmd}"))?;
        let s = |k: &str| body.get(k).and_then(Value::as_str);
        let keys_are = |keys: &[&str]| body.keys().all(|k| keys.contains(&k.as_str()));
        let unsupported = || format!("command {cmd}");
        let family = s("family").and_then(family_id).ok_or_else(unsupported)?;
        match (verb, kind) {
            ("add" | "create" | "delete", "table") if keys_are(&["family", "name"]) => {
                let name = s("name").ok_or_else(unsupported)?;
                let m = match verb {
                    "delete" => {
                        let mut m = Msg::nft(NFT_MSG_DELTABLE, 0, family);
                        m.str(1, name);
                        m
                    }
                    _ => {
                        let excl = if verb == "create" { NLM_F_EXCL } else { 0 };
                        let mut m = Msg::nft(NFT_MSG_NEWTABLE, NLM_F_CREATE | excl, family);
                        m.str(1, name).u32(2, 0);
                        m
                    }
                };
                msgs.push((m, index));
            }
            ("add", "chain")
                if keys_are(&["family", "table", "name", "type", "hook", "prio", "policy"])
                    && body.len() == 7 =>
            {
                let table = s("table").ok_or_else(unsupported)?;
                let name = s("name").ok_or_else(unsupported)?;
                let kind = s("type")
                    .filter(|t| CHAIN_TYPES.contains(t))
                    .ok_or_else(unsupported)?;
                let hook = s("hook")
                    .and_then(|h| HOOKS.iter().position(|x| *x == h))
                    .ok_or_else(unsupported)?;
                let prio = body
                    .get("prio")
                    .and_then(Value::as_i64)
                    .and_then(|p| i32::try_from(p).ok())
                    .ok_or_else(unsupported)?;
                let policy = match s("policy") {
                    Some("accept") => 1,
                    Some("drop") => 0,
                    _ => return Err(unsupported()),
                };
                let mut m = Msg::nft(NFT_MSG_NEWCHAIN, NLM_F_CREATE, family);
                m.str(1, table).str(3, name).str(7, kind).u32(5, policy);
                m.begin(4).u32(1, hook as u32).u32(2, prio as u32).end();
                msgs.push((m, index));
            }
            ("add", "rule") if keys_are(&["family", "table", "chain", "comment", "expr"]) => {
                let table = s("table").ok_or_else(unsupported)?;
                let chain = s("chain").ok_or_else(unsupported)?;
                let exprs = body
                    .get("expr")
                    .and_then(Value::as_array)
                    .ok_or_else(unsupported)?;
                let comment = match body.get("comment") {
                    None => None,
                    Some(Value::String(c)) if !c.is_empty() && c.len() < 128 => Some(c.as_str()),
                    Some(_) => return Err(unsupported()),
                };
                let enc = rules::encode(family, exprs)?;
                let mut ids = Vec::new();
                for set in &enc.sets {
                    set_id += 1;
                    ids.push(set_id);
                    msgs.push((new_set(family, table, set, set_id), index));
                    msgs.push((new_elements(family, table, set, set_id), index));
                }
                let names = |r: &SetRef| match r {
                    SetRef::Index(i) => ("__set%d".to_string(), ids.get(*i).copied()),
                    SetRef::Name(n) => (n.clone(), None),
                };
                let mut m = Msg::nft(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, family);
                m.str(1, table).str(2, chain);
                m.begin(4);
                for e in &enc.exprs {
                    e.put(&mut m, &names);
                }
                m.end();
                if let Some(c) = comment {
                    m.bytes(7, &comment_udata(c));
                }
                msgs.push((m, index));
            }
            _ => return Err(unsupported()),
        }
    }
    Ok(msgs)
}

fn one(v: &Value) -> Option<(&str, &Value)> {
    let o = v.as_object()?;
    (o.len() == 1).then(|| o.iter().next().map(|(k, v)| (k.as_str(), v)))?
}

/// A rule comment as nft keeps it in the rule's userdata (`NFTNL_UDATA_RULE_COMMENT`).
fn comment_udata(c: &str) -> Vec<u8> {
    let mut u = vec![0, (c.len() + 1) as u8];
    u.extend_from_slice(c.as_bytes());
    u.push(0);
    u
}

fn new_set(family: u8, table: &str, set: &AnonSet, id: u32) -> Msg {
    let mut m = Msg::nft(NFT_MSG_NEWSET, NLM_F_CREATE, family);
    m.str(1, table)
        .str(2, "__set%d")
        .u32(3, set.flags)
        .u32(4, set.key_type)
        .u32(5, set.key_len)
        .u32(10, id);
    m.begin(9).u32(1, set.size).end();
    m.bytes(13, &set.userdata);
    m
}

fn new_elements(family: u8, table: &str, set: &AnonSet, id: u32) -> Msg {
    let mut m = Msg::nft(NFT_MSG_NEWSETELEM, NLM_F_CREATE, family);
    m.str(1, table).str(2, "__set%d").u32(4, id);
    m.begin(3);
    for (key, flags) in &set.elements {
        m.begin(1);
        if *flags & !expr::ELEM_OPEN != 0 {
            m.u32(3, *flags & !expr::ELEM_OPEN);
        }
        m.begin(1).bytes(1, key).end();
        if *flags & expr::ELEM_OPEN != 0 {
            m.bytes(6, &expr::ELEM_OPEN_UDATA);
        }
        m.end();
    }
    m.end();
    m
}

/// Writes `document` as one transaction; `None` when it is outside the subset (logged at
/// debug; the caller writes it through libnftables).
pub fn apply(document: &Value) -> Option<Result<(), NativeError>> {
    let msgs = match encode_document(document) {
        Ok(m) => m,
        Err(why) => {
            tracing::debug!("nftables: native netlink does not write {why}; libnftables will");
            return None;
        }
    };
    // Without a netfilter netlink socket at all (no nfnetlink), libnftables reports best.
    let mut sock = match Socket::open() {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("nftables: no native netlink socket ({e}); libnftables will write");
            return None;
        }
    };
    Some((|| {
        let (msgs, index): (Vec<Msg>, Vec<usize>) = msgs.into_iter().unzip();
        let errors = sock.batch(msgs)?;
        if errors.is_empty() {
            return Ok(());
        }
        // One error per command, as libnftables reports them.
        let mut by_command: Vec<(usize, i32)> = Vec::new();
        for (i, errno) in errors {
            let command = index.get(i).copied().unwrap_or(0);
            if !by_command.iter().any(|(c, _)| *c == command) {
                by_command.push((command, errno));
            }
        }
        Err(NativeError::Kernel(by_command))
    })())
}

/// The tables of the namespace, as (family, name) with their raw attributes.
fn tables(sock: &mut Socket) -> std::io::Result<Vec<Reply>> {
    retry(|| sock.dump(Msg::nft(NFT_MSG_GETTABLE, NLM_F_DUMP, 0)))
}

fn retry<T>(mut f: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut tries = 0;
    loop {
        match f() {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) && tries < 10 => tries += 1,
            other => return other,
        }
    }
}

fn table_key(r: &Reply) -> (u8, String) {
    let name = r
        .attrs()
        .iter()
        .find(|a| a.kind == 1)
        .and_then(|a| a.str())
        .unwrap_or("")
        .to_string();
    (r.family, name)
}

/// Deletes the tables among `tables` that exist, in one transaction; whether each existed.
/// Families other than `ip`/`bridge` are not handled here (`None`).
pub fn delete_tables(tables_: &[(&str, &str)]) -> Option<Result<Vec<bool>, NativeError>> {
    let ids: Vec<u8> = tables_
        .iter()
        .map(|(f, _)| family_id(f))
        .collect::<Option<_>>()?;
    Some((|| {
        let mut sock = Socket::open()?;
        let live: Vec<(u8, String)> = tables(&mut sock)?.iter().map(table_key).collect();
        let existed: Vec<bool> = tables_
            .iter()
            .zip(&ids)
            .map(|((_, n), f)| live.iter().any(|(lf, ln)| lf == f && ln == n))
            .collect();
        let msgs: Vec<Msg> = tables_
            .iter()
            .zip(&ids)
            .zip(&existed)
            .filter(|(_, e)| **e)
            .map(|(((_, name), f), _)| {
                let mut m = Msg::nft(NFT_MSG_DELTABLE, 0, *f);
                m.str(1, name);
                m
            })
            .collect();
        if !msgs.is_empty() {
            let errors = sock.batch(msgs)?;
            if !errors.is_empty() {
                return Err(NativeError::Kernel(errors));
            }
        }
        Ok(existed)
    })())
}

// --- reading -------------------------------------------------------------------------------

/// Reads the ruleset (`only`: just that table) as `nft -j list ruleset` (`list table`) prints
/// it. `Ok(None)`: a table the decoder does not take; libnftables must read.
/// For `only`, `Ok(Some(None))` means the table does not exist.
pub fn list(only: Option<(&str, &str)>) -> Result<Option<Option<Value>>, std::io::Error> {
    list_scoped(only, false)
}

/// [`list`] of the whole ruleset for the host-firewall walk: the elements of other tools'
/// plain port sets are not read ([`foreign::Set::elidable`]), nor the rules of their chains
/// that no base chain reaches ([`foreign::reachable_rules`]); a listing where something was
/// left out says so in its `metainfo` (`"edgenet_scope": "walk"`).
pub fn list_for_walk() -> Result<Option<Option<Value>>, std::io::Error> {
    list_scoped(None, true)
}

fn list_scoped(
    only: Option<(&str, &str)>,
    walk: bool,
) -> Result<Option<Option<Value>>, std::io::Error> {
    if let Some((f, _)) = only {
        if family_id(f).is_none() {
            return Ok(None);
        }
    }
    let mut sock = Socket::open()?;
    for _ in 0..5 {
        let gen = generation(&mut sock)?;
        let read = read(&mut sock, only, walk)?;
        if generation(&mut sock)? == gen {
            LAST_GEN.with(|g| g.set(Some(gen)));
            return Ok(read);
        }
    }
    Err(std::io::Error::from_raw_os_error(libc::EAGAIN))
}

thread_local! {
    /// The generation of this thread's last consistent read ([`take_last_gen`]).
    static LAST_GEN: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// The nf_tables generation the calling thread's last [`list`] or [`list_for_walk`] read was
/// consistent at (taken: asked once per read).
pub fn take_last_gen() -> Option<u32> {
    LAST_GEN.with(|g| g.take())
}

/// `SO_NETNS_COOKIE` (asm-generic/socket.h; Linux 5.14): the network namespace's id, never
/// reused while the machine runs (an inode number is).
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
))]
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The calling thread's namespace's nf_tables generation now (one `NFT_MSG_GETGEN`), and the
/// namespace's cookie (`None` where the kernel or architecture has none).
pub fn generation_now() -> std::io::Result<(u32, Option<u64>)> {
    let mut sock = Socket::open()?;
    let gen = generation(&mut sock)?;
    Ok((gen, netns_cookie(&sock)))
}

#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
))]
fn netns_cookie(sock: &Socket) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt on our own socket into a u64 of the length given.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            &mut cookie as *mut u64 as *mut libc::c_void,
            &mut len,
        )
    };
    (r == 0 && len as usize == std::mem::size_of::<u64>()).then_some(cookie)
}

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
fn netns_cookie(_sock: &Socket) -> Option<u64> {
    None
}

fn generation(sock: &mut Socket) -> std::io::Result<u32> {
    let reply = sock.get(Msg::nft(NFT_MSG_GETGEN, 0, 0))?;
    let id = reply
        .attrs()
        .iter()
        .find(|a| a.kind == 1)
        .and_then(|a| a.u32());
    Ok(id.unwrap_or(0))
}

fn read(
    sock: &mut Socket,
    only: Option<(&str, &str)>,
    walk: bool,
) -> std::io::Result<Option<Option<Value>>> {
    let mut items = vec![json!({"metainfo": {"json_schema_version": 1}})];
    let mut elided = false;
    let mut selected = Vec::new();
    for t in tables(sock)? {
        let (family, name) = table_key(&t);
        if let Some((f, n)) = only {
            if family_name(family) != Some(f) || name != n {
                continue;
            }
        }
        let own = family_name(family).is_some() && name.starts_with(OWN_PREFIX);
        // Another tool's table: decoded by [`foreign`] in a whole-ruleset read.
        if !own && (only.is_some() || foreign::family_name(family).is_none()) {
            tracing::debug!("nftables: table {family}/{name} is not one the native reader decodes");
            return Ok(None);
        }
        selected.push(t);
    }
    if selected.is_empty() {
        return Ok(Some(only.is_none().then(|| listing(items))));
    }
    // The whole ruleset is ours: its chains, sets and rules come in one dump each (not three
    // per table); one table of a ruleset that may hold others is asked for by name.
    let everything = match only {
        None => Some(Dumps {
            chains: dump_all(sock, NFT_MSG_GETCHAIN)?,
            sets: dump_all(sock, NFT_MSG_GETSET)?,
            rules: dump_all(sock, NFT_MSG_GETRULE)?,
        }),
        Some(_) => None,
    };
    for t in &selected {
        let key = table_key(t);
        if !(family_name(key.0).is_some() && key.1.starts_with(OWN_PREFIX)) {
            let all = everything
                .as_ref()
                .expect("foreign tables only in a whole-ruleset read");
            fn of<'a>(v: &'a [Reply], key: &(u8, String)) -> Vec<&'a Reply> {
                v.iter().filter(|r| table_key(r) == *key).collect()
            }
            let sets = match foreign_sets(sock, &of(&all.sets, &key), walk)? {
                Ok(sets) => sets,
                Err(why) => {
                    tracing::debug!(
                        "nftables: table {}/{} holds a set the native reader does not decode ({why})",
                        key.0,
                        key.1
                    );
                    return Ok(None);
                }
            };
            elided |= sets.iter().any(|s| s.elided);
            let chains = of(&all.chains, &key);
            let mut rules = of(&all.rules, &key);
            if walk {
                let (reachable, omitted) = foreign::reachable_rules(&chains, &rules, &sets);
                rules = reachable;
                elided |= omitted;
            }
            match foreign::read_table(t, &chains, &sets, &rules) {
                Ok(mut table_items) => items.append(&mut table_items),
                Err(why) => {
                    tracing::debug!(
                        "nftables: table {}/{} holds what the native reader does not decode ({why})",
                        key.0,
                        key.1
                    );
                    return Ok(None);
                }
            }
            continue;
        }
        match read_table(sock, t, everything.as_ref())? {
            Ok(mut table_items) => items.append(&mut table_items),
            Err(why) => {
                let (family, name) = table_key(t);
                tracing::debug!("nftables: table {family}/{name} holds what the native reader does not decode ({why})");
                return Ok(None);
            }
        }
    }
    if elided {
        items[0]["metainfo"][WALK_SCOPE] = json!("walk");
    }
    // `nft -j list table` prints the metainfo item too.
    Ok(Some(Some(listing(items))))
}

/// Every table of the namespace as (family, name): one `NFT_MSG_GETTABLE` dump, nothing of
/// their contents.
pub fn table_names() -> std::io::Result<Vec<(String, String)>> {
    let mut sock = Socket::open()?;
    Ok(tables(&mut sock)?
        .iter()
        .filter_map(|t| {
            let family = match t.family {
                foreign::NFPROTO_INET => "inet",
                NFPROTO_IPV4 => "ip",
                3 => "arp",
                NFPROTO_NETDEV => "netdev",
                NFPROTO_BRIDGE => "bridge",
                foreign::NFPROTO_IPV6 => "ip6",
                _ => return None,
            };
            Some((family.to_string(), table_key(t).1))
        })
        .collect())
}

/// The `metainfo` key of a listing made for the walk ([`list_for_walk`]).
pub const WALK_SCOPE: &str = "edgenet_scope";

/// `NFPROTO_NETDEV` (linux/netfilter.h).
const NFPROTO_NETDEV: u8 = 5;

/// The devices of every netdev base chain: `(table, chain, devices)`. libnftables 1.0.6's JSON
/// leaves a netdev chain's device out, and the host-firewall walk needs it (which packets the
/// chain sees).
pub fn netdev_chain_devices() -> std::io::Result<Vec<(String, String, Vec<String>)>> {
    let mut sock = Socket::open()?;
    let chains = retry(|| sock.dump(Msg::nft(NFT_MSG_GETCHAIN, NLM_F_DUMP, NFPROTO_NETDEV)))?;
    let mut out = Vec::new();
    for c in chains.iter().filter(|c| c.family == NFPROTO_NETDEV) {
        let a = c.attrs();
        let text = |k: u16| a.iter().find(|x| x.kind == k).and_then(|x| x.str());
        let (Some(table), Some(name)) = (text(1), text(3)) else {
            continue;
        };
        // NFTA_CHAIN_HOOK: NFTA_HOOK_DEV (3), or NFTA_HOOK_DEVS (4) of NFTA_DEVICE_NAME (1).
        let Some(hook) = a.iter().find(|x| x.kind == 4) else {
            continue;
        };
        let mut devices = Vec::new();
        for h in hook.nested() {
            match h.kind {
                3 => devices.extend(h.str().map(String::from)),
                4 => devices.extend(
                    h.nested()
                        .iter()
                        .filter(|d| d.kind == 1)
                        .filter_map(|d| d.str().map(String::from)),
                ),
                _ => {}
            }
        }
        out.push((table.to_string(), name.to_string(), devices));
    }
    Ok(out)
}

/// `{"nftables": items}` without `json!`, which would copy every item (twice the ruleset in
/// memory at once).
fn listing(items: Vec<Value>) -> Value {
    let mut root = serde_json::Map::new();
    root.insert("nftables".into(), Value::Array(items));
    Value::Object(root)
}

/// The anonymous sets of a foreign table with their elements (one dump each); a named set
/// (listed as an item of its own, not decoded here) is `Err`.
fn foreign_sets(
    sock: &mut Socket,
    sets: &[&Reply],
    walk: bool,
) -> std::io::Result<Result<Vec<foreign::Set>, String>> {
    let mut out = Vec::with_capacity(sets.len());
    for r in sets {
        let mut set = match foreign::Set::parse(r) {
            Ok(s) => s,
            Err(why) => return Ok(Err(why)),
        };
        if walk && set.elidable() {
            set.elided = true;
            out.push(set);
            continue;
        }
        let (family, table) = table_key(r);
        let replies = retry(|| {
            let mut m = Msg::nft(NFT_MSG_GETSETELEM, NLM_F_DUMP, family);
            m.str(1, &table).str(2, &set.name);
            sock.dump(m)
        })?;
        if let Err(why) = set.add_elements(&replies) {
            return Ok(Err(why));
        }
        out.push(set);
    }
    Ok(Ok(out))
}

/// A dump of `msg` objects of one table.
fn dump_in(sock: &mut Socket, msg: u16, family: u8, table: &str) -> std::io::Result<Vec<Reply>> {
    retry(|| {
        let mut m = Msg::nft(msg, NLM_F_DUMP, family);
        m.str(1, table);
        sock.dump(m)
    })
}

/// A dump of every `msg` object of every table (family `NFPROTO_UNSPEC`, no table named).
fn dump_all(sock: &mut Socket, msg: u16) -> std::io::Result<Vec<Reply>> {
    retry(|| sock.dump(Msg::nft(msg, NLM_F_DUMP, 0)))
}

/// Chains, sets and rules of every table, from [`dump_all`].
struct Dumps {
    chains: Vec<Reply>,
    sets: Vec<Reply>,
    rules: Vec<Reply>,
}

/// The objects of table `t` among `all` (in their dump order), or dumped for it alone.
fn objects_of<'a>(
    sock: &mut Socket,
    all: Option<&'a [Reply]>,
    msg: u16,
    key: &(u8, String),
) -> std::io::Result<Vec<std::borrow::Cow<'a, Reply>>> {
    Ok(match all {
        Some(all) => all
            .iter()
            .filter(|r| table_key(r) == *key)
            .map(std::borrow::Cow::Borrowed)
            .collect(),
        None => dump_in(sock, msg, key.0, &key.1)?
            .into_iter()
            .map(std::borrow::Cow::Owned)
            .collect(),
    })
}

/// `NFT_TABLE_F_DORMANT` (linux/netfilter/nf_tables.h): the table's chains are unhooked.
const NFT_TABLE_F_DORMANT: u32 = 1;

fn read_table(
    sock: &mut Socket,
    t: &Reply,
    everything: Option<&Dumps>,
) -> std::io::Result<Result<Vec<Value>, String>> {
    let key = table_key(t);
    let (family, name) = key.clone();
    let fname = family_name(family).expect("checked");
    let attrs = t.attrs();
    let get = |k: u16| attrs.iter().find(|a| a.kind == k);
    // Flags and a comment are printed; edgenet sets none. `dormant` (someone switched the table
    // off by hand) is read here: libnftables 1.0.6 frees a dormant table's flags before printing
    // them, so its JSON of such a table is garbage or broken, and the deploy that must repair it
    // needs to see it.
    let flags = get(2).and_then(|a| a.u32()).unwrap_or(0);
    if flags & !NFT_TABLE_F_DORMANT != 0 || get(6).is_some() || get(7).is_some() {
        return Ok(Err("table flags or comment".to_string()));
    }
    let Some(handle) = get(4).and_then(|a| a.u64()) else {
        return Ok(Err("table without handle".to_string()));
    };
    let table_use = get(3).and_then(|a| a.u32()).unwrap_or(0);
    let mut table = json!({"family": fname, "name": name, "handle": handle});
    if flags & NFT_TABLE_F_DORMANT != 0 {
        table["flags"] = json!("dormant");
    }
    let mut items = vec![json!({ "table": table })];

    let chains = objects_of(
        sock,
        everything.map(|e| &e.chains[..]),
        NFT_MSG_GETCHAIN,
        &key,
    )?;
    let sets = objects_of(sock, everything.map(|e| &e.sets[..]), NFT_MSG_GETSET, &key)?;
    // The table's use count covers chains, named sets, objects and flowtables (not anonymous
    // sets): equal to the chains seen, there is nothing else (which would be listed) in it.
    if table_use as usize != chains.len() {
        return Ok(Err(format!(
            "use count {table_use}, {} chains and {} sets",
            chains.len(),
            sets.len()
        )));
    }
    let mut chain_names = Vec::new();
    for c in &chains {
        let a = c.attrs();
        let get = |k: u16| a.iter().find(|x| x.kind == k);
        // Only base chains without flags beyond "base", devices or comments.
        let known = a
            .iter()
            .all(|x| [1, 2, 3, 4, 5, 6, 7, 8, 10].contains(&x.kind));
        let flags_ok = get(10).and_then(|x| x.u32()).unwrap_or(1) == 1;
        let (Some(cname), Some(handle), Some(hook), Some(kind), Some(policy)) = (
            get(3).and_then(|x| x.str()),
            get(2).and_then(|x| x.u64()),
            get(4).map(|x| x.nested()),
            get(7).and_then(|x| x.str()),
            get(5).and_then(|x| x.u32()),
        ) else {
            return Ok(Err("a chain that is not a plain base chain".to_string()));
        };
        let hooknum = hook.iter().find(|x| x.kind == 1).and_then(|x| x.u32());
        let prio = hook.iter().find(|x| x.kind == 2).and_then(|x| x.u32());
        let (Some(hooknum), Some(prio)) = (hooknum, prio) else {
            return Ok(Err("chain hook without number or priority".to_string()));
        };
        if !known || !flags_ok || hook.iter().any(|x| x.kind > 2) || !CHAIN_TYPES.contains(&kind) {
            return Ok(Err(format!(
                "chain {cname}: flags, device or type not handled"
            )));
        }
        let Some(hook) = HOOKS.get(hooknum as usize) else {
            return Ok(Err(format!("chain {cname}: hook {hooknum}")));
        };
        let policy = match policy {
            1 => "accept",
            0 => "drop",
            _ => return Ok(Err(format!("chain {cname} policy {policy}"))),
        };
        chain_names.push(cname.to_string());
        items.push(json!({"chain": {
            "family": fname, "table": name, "name": cname, "handle": handle,
            "type": kind, "hook": hook, "prio": prio as i32, "policy": policy,
        }}));
    }

    let mut anon: Vec<(String, AnonSet)> = Vec::new();
    for s in &sets {
        let a = s.attrs();
        let get = |k: u16| a.iter().find(|x| x.kind == k);
        // table, name, flags, key type, key len, handle, desc, id, userdata, and the backend and
        // element count newer kernels add; nothing else.
        if !a
            .iter()
            .all(|x| [1, 2, 3, 4, 5, 9, 10, 13, 16, 19, 20].contains(&x.kind))
        {
            let kinds: Vec<u16> = a.iter().map(|x| x.kind).collect();
            return Ok(Err(format!("set attributes {kinds:?}")));
        }
        let (Some(sname), Some(flags), Some(key_type), Some(key_len)) = (
            get(2).and_then(|x| x.str()),
            get(3).and_then(|x| x.u32()),
            get(4).and_then(|x| x.u32()),
            get(5).and_then(|x| x.u32()),
        ) else {
            return Ok(Err("set without name, flags or key".to_string()));
        };
        if flags & expr::NFT_SET_ANONYMOUS == 0 {
            return Ok(Err(format!("named set {sname}"))); // named sets are listed items
        }
        let desc = get(9).map(|x| x.nested()).unwrap_or_default();
        if desc.iter().any(|x| x.kind != 1) {
            return Ok(Err(format!("set {sname}: description beyond its size")));
        }
        let size = desc
            .iter()
            .find(|x| x.kind == 1)
            .and_then(|x| x.u32())
            .unwrap_or(0);
        let userdata = get(13).map(|x| x.data.to_vec()).unwrap_or_default();
        let Some(elements) = set_elements(sock, family, &name, sname)? else {
            return Ok(Err(format!("elements of set {sname}")));
        };
        anon.push((
            sname.to_string(),
            AnonSet {
                flags,
                key_type,
                key_len,
                size,
                userdata,
                elements,
            },
        ));
    }
    let lookup = |n: &str| anon.iter().find(|(s, _)| s == n).map(|(_, s)| s.clone());

    let rules = objects_of(
        sock,
        everything.map(|e| &e.rules[..]),
        NFT_MSG_GETRULE,
        &key,
    )?;
    // nft prints rules chain by chain, in chain order.
    let mut by_chain: Vec<Vec<Value>> = vec![Vec::new(); chain_names.len()];
    for r in &rules {
        let a = r.attrs();
        let get = |k: u16| a.iter().find(|x| x.kind == k);
        if !a.iter().all(|x| [1, 2, 3, 4, 6, 7].contains(&x.kind)) {
            return Ok(Err("rule attributes not handled".to_string()));
        }
        let (Some(chain), Some(handle)) =
            (get(2).and_then(|x| x.str()), get(3).and_then(|x| x.u64()))
        else {
            return Ok(Err("rule without chain or handle".to_string()));
        };
        let Some(ci) = chain_names.iter().position(|c| c == chain) else {
            return Ok(Err(format!("rule {handle} in unknown chain {chain}")));
        };
        let comment = match get(7) {
            None => None,
            Some(u) => match parse_comment(u.data) {
                Some(c) => Some(c),
                None => return Ok(Err(format!("rule {handle}: userdata other than a comment"))),
            },
        };
        let kexprs: Option<Vec<KExpr>> = get(4)
            .map(|x| x.nested())
            .unwrap_or_default()
            .iter()
            .map(KExpr::parse)
            .collect();
        let Some(kexprs) = kexprs else {
            return Ok(Err(format!(
                "rule {handle}: an expression outside the subset"
            )));
        };
        let Some(json_exprs) = rules::decode(family, &kexprs, &lookup) else {
            return Ok(Err(format!(
                "rule {handle}: expressions not in the encoder's form"
            )));
        };
        // Trust the decoding only if it encodes back to exactly what the kernel holds.
        let Ok(again) = rules::encode(family, &json_exprs) else {
            return Ok(Err(format!("rule {handle}: decoded form does not encode")));
        };
        if !same_rule(&again, &kexprs, &lookup) {
            return Ok(Err(format!(
                "rule {handle}: decoded form encodes differently"
            )));
        }
        by_chain[ci].push(rule_item(fname, &name, chain, handle, comment, json_exprs));
    }
    items.extend(by_chain.into_iter().flatten());
    Ok(Ok(items))
}

fn parse_comment(u: &[u8]) -> Option<String> {
    // Exactly one TLV: NFTNL_UDATA_RULE_COMMENT, NUL-terminated.
    let (&kind, rest) = u.split_first()?;
    let (&len, rest) = rest.split_first()?;
    if kind != 0 || rest.len() != len as usize {
        return None;
    }
    let s = rest.strip_suffix(&[0])?;
    String::from_utf8(s.to_vec()).ok()
}

fn same_rule(
    enc: &rules::Encoded,
    kernel: &[KExpr],
    lookup: &dyn Fn(&str) -> Option<AnonSet>,
) -> bool {
    enc.exprs.len() == kernel.len()
        && enc.exprs.iter().zip(kernel).all(|(a, b)| match (a, b) {
            (
                KExpr::Lookup {
                    sreg: s1,
                    set: SetRef::Index(i),
                    flags: f1,
                },
                KExpr::Lookup {
                    sreg: s2,
                    set: SetRef::Name(n),
                    flags: f2,
                },
            ) => {
                s1 == s2
                    && f1 == f2
                    && match (enc.sets.get(*i), lookup(n)) {
                        (Some(want), Some(have)) => same_set(want, &have),
                        _ => false,
                    }
            }
            _ => a == b,
        })
}

fn same_set(a: &AnonSet, b: &AnonSet) -> bool {
    let sorted = |s: &AnonSet| {
        let mut e = s.elements.clone();
        e.sort();
        e
    };
    a.flags == b.flags
        && a.key_type == b.key_type
        && a.key_len == b.key_len
        && a.size == b.size
        && a.userdata == b.userdata
        && sorted(a) == sorted(b)
}

/// A set's elements: key and flags.
type Elements = Vec<(Vec<u8>, u32)>;

fn set_elements(
    sock: &mut Socket,
    family: u8,
    table: &str,
    set: &str,
) -> std::io::Result<Option<Elements>> {
    let replies = retry(|| {
        let mut m = Msg::nft(NFT_MSG_GETSETELEM, NLM_F_DUMP, family);
        m.str(1, table).str(2, set);
        sock.dump(m)
    })?;
    let mut out = Vec::new();
    for r in &replies {
        for a in r.attrs() {
            if a.kind != 3 {
                continue;
            }
            for elem in a.nested() {
                let attrs = elem.nested();
                // Key, flags and the open-interval tag; data, timeouts, expressions are not ours.
                if attrs.iter().any(|x| ![1, 3, 6].contains(&x.kind)) {
                    return Ok(None);
                }
                let open = match attrs.iter().find(|x| x.kind == 6) {
                    None => 0,
                    Some(u) if u.data == expr::ELEM_OPEN_UDATA => expr::ELEM_OPEN,
                    Some(_) => return Ok(None),
                };
                let Some(key) = attrs
                    .iter()
                    .find(|x| x.kind == 1)
                    .and_then(|k| k.nested().into_iter().find(|v| v.kind == 1))
                else {
                    return Ok(None);
                };
                let flags = attrs
                    .iter()
                    .find(|x| x.kind == 3)
                    .and_then(|x| x.u32())
                    .unwrap_or(0);
                if flags & expr::ELEM_OPEN != 0 {
                    return Ok(None);
                }
                out.push((key.data.to_vec(), flags | open));
            }
        }
    }
    Ok(Some(out))
}

/// A rule as `nft -j list` prints it (its keys in that order).
pub(super) fn rule_item(
    family: &str,
    table: &str,
    chain: &str,
    handle: impl serde::Serialize,
    comment: Option<String>,
    exprs: Vec<Value>,
) -> Value {
    let mut rule = serde_json::Map::new();
    rule.insert("family".into(), json!(family));
    rule.insert("table".into(), json!(table));
    rule.insert("chain".into(), json!(chain));
    rule.insert("handle".into(), json!(handle));
    if let Some(c) = comment {
        rule.insert("comment".into(), json!(c));
    }
    rule.insert("expr".into(), Value::Array(exprs));
    json!({ "rule": rule })
}
