//! Rule expressions: nftables JSON ⇄ kernel expressions, for the subset edgenet writes (see
//! [`super`]). [`encode`] is what `nft -j -f` would send; [`decode`] reads a rule back into the
//! JSON `nft -j list` prints, and is only trusted when encoding its result gives back exactly
//! the kernel's expressions ([`super::ruleset`] checks).

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::expr::*;

type Unsupported = String;

/// How a payload field is read and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ipv4,
    Mac,
    EtherType,
    Port,
}

/// Which header the network base of a bridge rule means, set by nft's implicit dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L3 {
    Ip,
    Arp,
}

struct Field {
    protocol: &'static str,
    field: &'static str,
    base: u32,
    offset: u32,
    len: u32,
    kind: Kind,
    l3: Option<L3>,
    /// The layer 4 protocol a transport-header field implies (`meta l4proto`).
    l4: Option<u8>,
    /// nft's payload template (protocol description id, field index), kept in a set's userdata.
    typeof_: (u32, u32),
}

const FIELDS: &[Field] = &[
    Field {
        protocol: "ip",
        field: "saddr",
        base: NFT_PAYLOAD_NETWORK,
        offset: 12,
        len: 4,
        kind: Kind::Ipv4,
        l3: Some(L3::Ip),
        l4: None,
        typeof_: (12, 11),
    },
    Field {
        protocol: "ip",
        field: "daddr",
        base: NFT_PAYLOAD_NETWORK,
        offset: 16,
        len: 4,
        kind: Kind::Ipv4,
        l3: Some(L3::Ip),
        l4: None,
        typeof_: (12, 12),
    },
    Field {
        protocol: "ether",
        field: "daddr",
        base: NFT_PAYLOAD_LL,
        offset: 0,
        len: 6,
        kind: Kind::Mac,
        l3: None,
        l4: None,
        typeof_: (17, 1),
    },
    Field {
        protocol: "ether",
        field: "saddr",
        base: NFT_PAYLOAD_LL,
        offset: 6,
        len: 6,
        kind: Kind::Mac,
        l3: None,
        l4: None,
        typeof_: (17, 2),
    },
    Field {
        protocol: "ether",
        field: "type",
        base: NFT_PAYLOAD_LL,
        offset: 12,
        len: 2,
        kind: Kind::EtherType,
        l3: None,
        l4: None,
        typeof_: (17, 3),
    },
    Field {
        protocol: "arp",
        field: "saddr ether",
        base: NFT_PAYLOAD_NETWORK,
        offset: 8,
        len: 6,
        kind: Kind::Mac,
        l3: Some(L3::Arp),
        l4: None,
        typeof_: (15, 6),
    },
    Field {
        protocol: "arp",
        field: "saddr ip",
        base: NFT_PAYLOAD_NETWORK,
        offset: 14,
        len: 4,
        kind: Kind::Ipv4,
        l3: Some(L3::Arp),
        l4: None,
        typeof_: (15, 7),
    },
    Field {
        protocol: "arp",
        field: "daddr ip",
        base: NFT_PAYLOAD_NETWORK,
        offset: 24,
        len: 4,
        kind: Kind::Ipv4,
        l3: Some(L3::Arp),
        l4: None,
        typeof_: (15, 9),
    },
    Field {
        protocol: "tcp",
        field: "dport",
        base: NFT_PAYLOAD_TRANSPORT,
        offset: 2,
        len: 2,
        kind: Kind::Port,
        l3: None,
        l4: Some(6),
        typeof_: (0, 0),
    },
    Field {
        protocol: "udp",
        field: "dport",
        base: NFT_PAYLOAD_TRANSPORT,
        offset: 2,
        len: 2,
        kind: Kind::Port,
        l3: None,
        l4: Some(17),
        typeof_: (0, 0),
    },
    Field {
        protocol: "tcp",
        field: "sport",
        base: NFT_PAYLOAD_TRANSPORT,
        offset: 0,
        len: 2,
        kind: Kind::Port,
        l3: None,
        l4: Some(6),
        typeof_: (0, 0),
    },
    Field {
        protocol: "udp",
        field: "sport",
        base: NFT_PAYLOAD_TRANSPORT,
        offset: 0,
        len: 2,
        kind: Kind::Port,
        l3: None,
        l4: Some(17),
        typeof_: (0, 0),
    },
];

const ETHER_TYPES: &[(&str, u16)] = &[
    ("ip", 0x0800),
    ("arp", 0x0806),
    ("ip6", 0x86dd),
    ("vlan", 0x8100),
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
const CT_STATES: &[(&str, u32)] = &[
    ("invalid", 1),
    ("established", 2),
    ("related", 4),
    ("new", 8),
    ("untracked", 64),
];
const IFNAMSIZ: usize = 16;
/// nft's type ids for a set's key (`enum datatypes`).
const TYPE_IPADDR: u32 = 7;
const TYPE_ETHERTYPE: u32 = 10;
/// `EXPR_PAYLOAD` in a set's typeof userdata.
const EXPR_PAYLOAD: u8 = 7;

/// A rule's expressions and the anonymous sets they look up, in the order nft creates them.
pub struct Encoded {
    pub exprs: Vec<KExpr>,
    pub sets: Vec<AnonSet>,
}

/// `family`: the table's (`ip` or `bridge`).
pub fn encode(family: u8, exprs: &[Value]) -> Result<Encoded, Unsupported> {
    let mut out = Encoded {
        exprs: Vec::new(),
        sets: Vec::new(),
    };
    let mut deps: Vec<L3> = Vec::new();
    let mut l4: Option<u8> = None;
    for e in exprs {
        let (kind, body) = single(e).ok_or_else(|| format!("expression {e}"))?;
        match (kind, body) {
            ("accept", Value::Null) => out.exprs.push(KExpr::Verdict(NF_ACCEPT)),
            ("drop", Value::Null) => out.exprs.push(KExpr::Verdict(NF_DROP)),
            ("return", Value::Null) => out.exprs.push(KExpr::Verdict(NFT_RETURN)),
            ("masquerade", Value::Null) => out.exprs.push(KExpr::Masq),
            ("notrack", Value::Null) if family == NFPROTO_IPV4 => out.exprs.push(KExpr::Notrack),
            ("dnat", Value::Object(d)) if family == NFPROTO_IPV4 && d.len() == 2 => {
                let addr: Ipv4Addr = d
                    .get("addr")
                    .and_then(Value::as_str)
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| format!("dnat {e}"))?;
                let port = d
                    .get("port")
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| format!("dnat {e}"))?;
                out.exprs.extend(dnat(addr, port));
            }
            ("match", Value::Object(m)) if m.len() == 3 => {
                let op = m.get("op").and_then(Value::as_str).unwrap_or("");
                let (left, right) = (&m["left"], &m["right"]);
                encode_match(family, op, left, right, &mut deps, &mut l4, &mut out)
                    .ok_or_else(|| format!("match {e}"))?;
            }
            _ => return Err(format!("expression {e}")),
        }
    }
    Ok(out)
}

fn single(v: &Value) -> Option<(&str, &Value)> {
    let o = v.as_object()?;
    (o.len() == 1).then(|| o.iter().next().map(|(k, v)| (k.as_str(), v)))?
}

fn cmp_op(op: &str) -> Option<u32> {
    match op {
        "==" => Some(NFT_CMP_EQ),
        "!=" => Some(NFT_CMP_NEQ),
        _ => None,
    }
}

fn encode_match(
    family: u8,
    op: &str,
    left: &Value,
    right: &Value,
    deps: &mut Vec<L3>,
    l4: &mut Option<u8>,
    out: &mut Encoded,
) -> Option<()> {
    let (lkind, lbody) = single(left)?;
    let lbody = lbody.as_object()?;
    match lkind {
        "meta" if lbody.len() == 1 && lbody.get("key")? == "pkttype" => {
            // Only `== host` (unicast to a host address, or bridged between two ports), in
            // the `ip` table (the form checked against nft).
            if family != NFPROTO_IPV4 || op != "==" || right != "host" {
                return None;
            }
            out.exprs.push(KExpr::Meta {
                key: NFT_META_PKTTYPE,
                dreg: NFT_REG_1,
            });
            out.exprs.push(KExpr::Cmp {
                sreg: NFT_REG_1,
                op: NFT_CMP_EQ,
                data: vec![PACKET_HOST],
            });
        }
        "meta" if lbody.len() == 1 => {
            let key = match lbody.get("key")?.as_str()? {
                "iifname" => NFT_META_IIFNAME,
                "oifname" => NFT_META_OIFNAME,
                _ => return None,
            };
            let name = right.as_str()?;
            // Wildcards and escapes are nft syntax this encoder does not speak.
            if name.is_empty() || name.len() >= IFNAMSIZ || name.contains(['*', '\\']) {
                return None;
            }
            let mut data = name.as_bytes().to_vec();
            data.resize(IFNAMSIZ, 0);
            out.exprs.push(KExpr::Meta {
                key,
                dreg: NFT_REG_1,
            });
            out.exprs.push(KExpr::Cmp {
                sreg: NFT_REG_1,
                op: cmp_op(op)?,
                data,
            });
        }
        "ct" if lbody.len() == 1 && op == "in" => {
            let (key, table) = match lbody.get("key")?.as_str()? {
                "state" => (NFT_CT_STATE, CT_STATES),
                "status" => (NFT_CT_STATUS, CT_STATUS),
                _ => return None,
            };
            let names: Vec<&str> = match right {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) if !a.is_empty() => {
                    a.iter().map(Value::as_str).collect::<Option<_>>()?
                }
                _ => return None,
            };
            let mut mask = 0u32;
            for n in &names {
                mask |= table.iter().find(|(s, _)| s == n)?.1;
            }
            // nft lists the flags in bit order, one of them as a plain string.
            if decode_bits(table, mask)? != *right {
                return None;
            }
            out.exprs.push(KExpr::Ct {
                key,
                dreg: NFT_REG_1,
            });
            out.exprs.push(KExpr::Bitwise {
                sreg: NFT_REG_1,
                dreg: NFT_REG_1,
                len: 4,
                mask: mask.to_ne_bytes().to_vec(),
                xor: vec![0; 4],
            });
            out.exprs.push(KExpr::Cmp {
                sreg: NFT_REG_1,
                op: NFT_CMP_NEQ,
                data: vec![0; 4],
            });
        }
        "ct" if lbody.len() == 1 && lbody.get("key")?.as_str()? == "direction" => {
            let dir: u8 = match right.as_str()? {
                "original" => 0,
                "reply" => 1,
                _ => return None,
            };
            out.exprs.push(KExpr::Ct {
                key: NFT_CT_DIRECTION,
                dreg: NFT_REG_1,
            });
            out.exprs.push(KExpr::Cmp {
                sreg: NFT_REG_1,
                op: cmp_op(op)?,
                data: vec![dir],
            });
        }
        "fib" if family == NFPROTO_IPV4 && lbody.len() == 2 && op == "==" => {
            if lbody.get("result")? != "type"
                || lbody.get("flags")? != &json!(["daddr"])
                || right != "local"
            {
                return None;
            }
            out.exprs.push(fib_daddr_type());
            out.exprs.push(KExpr::Cmp {
                sreg: NFT_REG_1,
                op: NFT_CMP_EQ,
                data: RTN_LOCAL.to_ne_bytes().to_vec(),
            });
        }
        "payload" if lbody.len() == 2 => {
            let protocol = lbody.get("protocol")?.as_str()?;
            let name = lbody.get("field")?.as_str()?;
            let field = FIELDS
                .iter()
                .find(|f| f.protocol == protocol && f.field == name)?;
            if let Some(proto) = field.l4 {
                if family != NFPROTO_IPV4 {
                    return None;
                }
                match l4 {
                    Some(seen) if *seen != proto => return None,
                    Some(_) => {}
                    None => {
                        *l4 = Some(proto);
                        out.exprs.extend(l4_dependency(proto));
                    }
                }
            }
            match (family, field.l3) {
                (NFPROTO_IPV4, Some(L3::Ip) | None) if field.l4.is_some() || field.l3.is_some() => {
                }
                (NFPROTO_BRIDGE, l3) => {
                    if let Some(l3) = l3 {
                        if let Some(seen) = deps.first() {
                            if *seen != l3 {
                                return None;
                            }
                        } else {
                            deps.push(l3);
                            out.exprs.extend(dependency(l3));
                        }
                    }
                }
                _ => return None,
            }
            let load = |len: u32| KExpr::Payload {
                dreg: NFT_REG_1,
                base: field.base,
                offset: field.offset,
                len,
            };
            match right {
                Value::Object(o) if o.contains_key("set") => {
                    if op != "!=" || o.len() != 1 {
                        return None;
                    }
                    let set = encode_set(field, o["set"].as_array()?)?;
                    out.exprs.push(load(field.len));
                    out.exprs.push(KExpr::Lookup {
                        sreg: NFT_REG_1,
                        set: SetRef::Index(out.sets.len()),
                        flags: NFT_LOOKUP_F_INV,
                    });
                    out.sets.push(set);
                }
                Value::Object(o) if o.contains_key("prefix") && field.kind == Kind::Ipv4 => {
                    let (net, len) = prefix(right)?;
                    if len == 0 || len >= 32 || u32::from(net) & !prefix_mask(len) != 0 {
                        return None;
                    }
                    // A byte-aligned prefix loads only its bytes; any other is masked.
                    if len % 8 == 0 {
                        let bytes = len / 8;
                        out.exprs.push(load(bytes));
                        out.exprs.push(KExpr::Cmp {
                            sreg: NFT_REG_1,
                            op: cmp_op(op)?,
                            data: net.octets()[..bytes as usize].to_vec(),
                        });
                    } else {
                        out.exprs.push(load(4));
                        out.exprs.push(KExpr::Bitwise {
                            sreg: NFT_REG_1,
                            dreg: NFT_REG_1,
                            len: 4,
                            mask: prefix_mask(len).to_be_bytes().to_vec(),
                            xor: vec![0; 4],
                        });
                        out.exprs.push(KExpr::Cmp {
                            sreg: NFT_REG_1,
                            op: cmp_op(op)?,
                            data: net.octets().to_vec(),
                        });
                    }
                }
                Value::Number(n) if field.kind == Kind::Port => {
                    let port = u16::try_from(n.as_u64()?).ok()?;
                    out.exprs.push(load(field.len));
                    out.exprs.push(KExpr::Cmp {
                        sreg: NFT_REG_1,
                        op: cmp_op(op)?,
                        data: port.to_be_bytes().to_vec(),
                    });
                }
                Value::String(s) => {
                    let data = value_bytes(field.kind, s)?;
                    out.exprs.push(load(field.len));
                    out.exprs.push(KExpr::Cmp {
                        sreg: NFT_REG_1,
                        op: cmp_op(op)?,
                        data,
                    });
                }
                _ => return None,
            }
        }
        _ => return None,
    }
    Some(())
}

/// The implicit `meta l4proto` match nft puts before a transport-header field.
fn l4_dependency(proto: u8) -> [KExpr; 2] {
    [
        KExpr::Meta {
            key: NFT_META_L4PROTO,
            dreg: NFT_REG_1,
        },
        KExpr::Cmp {
            sreg: NFT_REG_1,
            op: NFT_CMP_EQ,
            data: vec![proto],
        },
    ]
}

fn fib_daddr_type() -> KExpr {
    KExpr::Fib {
        result: NFT_FIB_RESULT_ADDRTYPE,
        flags: NFTA_FIB_F_DADDR,
        dreg: NFT_REG_1,
    }
}

/// `dnat to ADDR:PORT` as nft writes it: the address and port in registers 1 and 2.
fn dnat(addr: Ipv4Addr, port: u16) -> [KExpr; 3] {
    [
        KExpr::Data {
            dreg: NFT_REG_1,
            data: addr.octets().to_vec(),
        },
        KExpr::Data {
            dreg: NFT_REG_2,
            data: port.to_be_bytes().to_vec(),
        },
        KExpr::Nat {
            kind: NFT_NAT_DNAT,
            family: u32::from(NFPROTO_IPV4),
            reg_addr: NFT_REG_1,
            reg_proto: NFT_REG_2,
            flags: NF_NAT_RANGE_PROTO_SPECIFIED,
        },
    ]
}

/// The implicit match nft puts before a network-header field in a bridge table.
fn dependency(l3: L3) -> [KExpr; 2] {
    match l3 {
        L3::Ip => [
            KExpr::Meta {
                key: NFT_META_PROTOCOL,
                dreg: NFT_REG_1,
            },
            KExpr::Cmp {
                sreg: NFT_REG_1,
                op: NFT_CMP_EQ,
                data: 0x0800u16.to_be_bytes().to_vec(),
            },
        ],
        L3::Arp => [
            KExpr::Payload {
                dreg: NFT_REG_1,
                base: NFT_PAYLOAD_LL,
                offset: 12,
                len: 2,
            },
            KExpr::Cmp {
                sreg: NFT_REG_1,
                op: NFT_CMP_EQ,
                data: 0x0806u16.to_be_bytes().to_vec(),
            },
        ],
    }
}

fn prefix_mask(len: u32) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

fn prefix(v: &Value) -> Option<(Ipv4Addr, u32)> {
    let p = v.get("prefix")?.as_object()?;
    if p.len() != 2 {
        return None;
    }
    let addr: Ipv4Addr = p.get("addr")?.as_str()?.parse().ok()?;
    let len = u32::try_from(p.get("len")?.as_u64()?).ok()?;
    Some((addr, len))
}

fn value_bytes(kind: Kind, s: &str) -> Option<Vec<u8>> {
    match kind {
        Kind::Ipv4 => Some(s.parse::<Ipv4Addr>().ok()?.octets().to_vec()),
        Kind::Mac => {
            let parts: Vec<u8> = s
                .split(':')
                .map(|p| (p.len() == 2).then(|| u8::from_str_radix(p, 16).ok())?)
                .collect::<Option<_>>()?;
            // nft prints lower-case hex: only that form round-trips.
            (parts.len() == 6 && s == s.to_lowercase()).then_some(parts)
        }
        Kind::EtherType => {
            let v = ETHER_TYPES.iter().find(|(n, _)| *n == s)?.1;
            Some(v.to_be_bytes().to_vec())
        }
        Kind::Port => None,
    }
}

fn encode_set(field: &Field, elems: &[Value]) -> Option<AnonSet> {
    // nft turns a one-element set into a plain match (and lists it so): not this encoder's.
    if elems.len() < 2 {
        return None;
    }
    let mut userdata = vec![0, 4, 2, 0, 0, 0]; // key byte order: big endian
    let (desc, tmpl) = field.typeof_;
    let typeof_ = {
        let mut t = vec![0, 4, EXPR_PAYLOAD, 0, 0, 0, 1, 12, 0, 4];
        t.extend(desc.to_le_bytes());
        t.extend([1, 4]);
        t.extend(tmpl.to_le_bytes());
        t
    };
    match field.kind {
        Kind::EtherType => {
            let mut elements = Vec::new();
            for e in elems {
                let k = value_bytes(Kind::EtherType, e.as_str()?)?;
                if elements.iter().any(|(x, _)| *x == k) {
                    return None;
                }
                elements.push((k, 0));
            }
            userdata.extend([3, typeof_.len() as u8]);
            userdata.extend(typeof_);
            Some(AnonSet {
                flags: NFT_SET_ANONYMOUS | NFT_SET_CONSTANT,
                key_type: TYPE_ETHERTYPE,
                key_len: 2,
                size: elements.len() as u32,
                userdata,
                elements,
            })
        }
        Kind::Ipv4 => {
            let mut ranges: Vec<(u32, u32)> = Vec::new();
            let mut interval = false;
            for e in elems {
                let r = match e {
                    Value::String(s) => {
                        let a = u32::from(s.parse::<Ipv4Addr>().ok()?);
                        (a, a)
                    }
                    Value::Object(o) if o.contains_key("prefix") => {
                        interval = true;
                        let (net, len) = prefix(e)?;
                        let net = u32::from(net);
                        if len == 0 || len > 32 || net & !prefix_mask(len) != 0 {
                            return None;
                        }
                        (net, net | !prefix_mask(len))
                    }
                    Value::Object(o) if o.len() == 1 && o.contains_key("range") => {
                        interval = true;
                        let r = o["range"].as_array()?;
                        let a = u32::from(r.first()?.as_str()?.parse::<Ipv4Addr>().ok()?);
                        let b = u32::from(r.get(1)?.as_str()?.parse::<Ipv4Addr>().ok()?);
                        if r.len() != 2 || a >= b {
                            return None;
                        }
                        (a, b)
                    }
                    _ => return None,
                };
                ranges.push(r);
            }
            // nft lists a set sorted and merged: only documents already in that form
            // round-trip (edgenet's builders write them so).
            if ranges
                .windows(2)
                .any(|w| w[1].0 <= w[0].1.saturating_add(1))
            {
                return None;
            }
            let mut elements = Vec::new();
            let flags;
            if interval {
                flags = NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | NFT_SET_INTERVAL;
                userdata.extend([2, 4, 1, 0, 0, 0]); // merge adjacent elements
                if ranges[0].0 != 0 {
                    elements.push((vec![0; 4], NFT_SET_ELEM_INTERVAL_END));
                }
                for (a, b) in &ranges {
                    let open = if *b == u32::MAX { ELEM_OPEN } else { 0 };
                    elements.push((a.to_be_bytes().to_vec(), open));
                    if *b != u32::MAX {
                        elements.push(((b + 1).to_be_bytes().to_vec(), NFT_SET_ELEM_INTERVAL_END));
                    }
                }
            } else {
                flags = NFT_SET_ANONYMOUS | NFT_SET_CONSTANT;
                elements = ranges
                    .iter()
                    .map(|(a, _)| (a.to_be_bytes().to_vec(), 0))
                    .collect();
            }
            userdata.extend([3, typeof_.len() as u8]);
            userdata.extend(typeof_);
            Some(AnonSet {
                flags,
                key_type: TYPE_IPADDR,
                key_len: 4,
                size: elements.len() as u32,
                userdata,
                elements,
            })
        }
        Kind::Mac | Kind::Port => None,
    }
}

/// The names of the bits set in `mask` (one name, or a list as `nft -j` prints flags); `None`
/// when a bit has no name.
pub(super) fn decode_bits(table: &[(&str, u32)], mask: u32) -> Option<Value> {
    let mut names = Vec::new();
    let mut rest = mask;
    for (n, bit) in table {
        if mask & bit != 0 {
            names.push(json!(n));
            rest &= !bit;
        }
    }
    if rest != 0 || names.is_empty() {
        return None;
    }
    Some(if names.len() == 1 {
        names.pop().unwrap()
    } else {
        Value::Array(names)
    })
}

fn matches(op: u32, left: Value, right: Value) -> Option<Value> {
    let op = match op {
        NFT_CMP_EQ => "==",
        NFT_CMP_NEQ => "!=",
        _ => return None,
    };
    Some(json!({"match": {"op": op, "left": left, "right": right}}))
}

fn show(kind: Kind, data: &[u8]) -> Option<Value> {
    Some(match kind {
        Kind::Ipv4 => json!(Ipv4Addr::from(<[u8; 4]>::try_from(data).ok()?).to_string()),
        Kind::Mac if data.len() == 6 => json!(data
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")),
        Kind::EtherType => {
            let v = u16::from_be_bytes(data.try_into().ok()?);
            json!(ETHER_TYPES.iter().find(|(_, t)| *t == v)?.0)
        }
        Kind::Port => json!(u16::from_be_bytes(data.try_into().ok()?)),
        _ => return None,
    })
}

/// The JSON of a rule's expressions, as `nft -j list` prints them; `None` when they are not
/// the form [`encode`] makes. `set`: an anonymous set of the table by name.
pub fn decode(
    family: u8,
    exprs: &[KExpr],
    set: &dyn Fn(&str) -> Option<AnonSet>,
) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut l3: Option<L3> = (family == NFPROTO_IPV4).then_some(L3::Ip);
    let mut l4: Option<u8> = None;
    let reg = NFT_REG_1;
    while i < exprs.len() {
        let rest = &exprs[i..];
        match rest {
            [KExpr::Verdict(code), ..] => {
                out.push(match *code {
                    NF_ACCEPT => json!({"accept": null}),
                    NF_DROP => json!({"drop": null}),
                    NFT_RETURN => json!({"return": null}),
                    _ => return None,
                });
                i += 1;
            }
            [KExpr::Masq, ..] => {
                out.push(json!({"masquerade": null}));
                i += 1;
            }
            [KExpr::Meta { key, dreg }, KExpr::Cmp { sreg, op, data }, ..]
                if dreg == &reg
                    && sreg == &reg
                    && (*key == NFT_META_IIFNAME || *key == NFT_META_OIFNAME) =>
            {
                if data.len() != IFNAMSIZ {
                    return None;
                }
                let end = data.iter().position(|b| *b == 0)?;
                let name = std::str::from_utf8(&data[..end]).ok()?;
                let key = if *key == NFT_META_IIFNAME {
                    "iifname"
                } else {
                    "oifname"
                };
                out.push(matches(*op, json!({"meta": {"key": key}}), json!(name))?);
                i += 2;
            }
            [KExpr::Ct { key, dreg }, KExpr::Bitwise {
                sreg,
                dreg: d2,
                len: 4,
                mask,
                xor,
            }, KExpr::Cmp {
                sreg: s2,
                op: NFT_CMP_NEQ,
                data,
            }, ..]
                if (*key == NFT_CT_STATE || *key == NFT_CT_STATUS)
                    && [dreg, sreg, d2, s2].iter().all(|r| **r == reg)
                    && xor == &[0; 4]
                    && data == &[0; 4] =>
            {
                let mask = u32::from_ne_bytes(mask.as_slice().try_into().ok()?);
                let (name, table) = if *key == NFT_CT_STATE {
                    ("state", CT_STATES)
                } else {
                    ("status", CT_STATUS)
                };
                let right = decode_bits(table, mask)?;
                out.push(
                    json!({"match": {"op": "in", "left": {"ct": {"key": name}}, "right": right}}),
                );
                i += 3;
            }
            [KExpr::Ct { key, dreg }, KExpr::Cmp { sreg, op, data }, ..]
                if *key == NFT_CT_DIRECTION && *dreg == reg && *sreg == reg =>
            {
                let dir = match data.as_slice() {
                    [0] => "original",
                    [1] => "reply",
                    _ => return None,
                };
                out.push(matches(
                    *op,
                    json!({"ct": {"key": "direction"}}),
                    json!(dir),
                )?);
                i += 2;
            }
            [fib, KExpr::Cmp {
                sreg,
                op: NFT_CMP_EQ,
                data,
            }, ..]
                if *fib == fib_daddr_type()
                    && *sreg == reg
                    && data.as_slice() == RTN_LOCAL.to_ne_bytes() =>
            {
                out.push(json!({"match": {"op": "==",
                    "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}}));
                i += 2;
            }
            [KExpr::Meta { key, dreg }, KExpr::Cmp {
                sreg,
                op: NFT_CMP_EQ,
                data,
            }, ..]
                if family == NFPROTO_IPV4
                    && *key == NFT_META_PKTTYPE
                    && *dreg == reg
                    && *sreg == reg
                    && data.as_slice() == [PACKET_HOST] =>
            {
                out.push(json!({"match": {"op": "==",
                    "left": {"meta": {"key": "pkttype"}}, "right": "host"}}));
                i += 2;
            }
            [KExpr::Notrack, ..] if family == NFPROTO_IPV4 => {
                out.push(json!({"notrack": null}));
                i += 1;
            }
            [KExpr::Data { data: addr, .. }, KExpr::Data { data: port, .. }, KExpr::Nat { .. }, ..]
                if family == NFPROTO_IPV4 =>
            {
                let addr = Ipv4Addr::from(<[u8; 4]>::try_from(addr.as_slice()).ok()?);
                let port = u16::from_be_bytes(port.as_slice().try_into().ok()?);
                if rest[..3] != dnat(addr, port) {
                    return None;
                }
                out.push(json!({"dnat": {"addr": addr.to_string(), "port": port}}));
                i += 3;
            }
            // The implicit `meta l4proto` of a transport-header field.
            [KExpr::Meta { key, .. }, KExpr::Cmp { data, .. }, KExpr::Payload { base, .. }, ..]
                if *key == NFT_META_L4PROTO
                    && *base == NFT_PAYLOAD_TRANSPORT
                    && l4.is_none()
                    && data.len() == 1
                    && rest[..2] == l4_dependency(data[0]) =>
            {
                l4 = Some(data[0]);
                i += 2;
            }
            // The implicit dependency of a bridge rule's network-header field: shown by nft
            // only through the field that follows.
            [first, KExpr::Cmp { .. }, KExpr::Payload { base, .. }, ..]
                if family == NFPROTO_BRIDGE
                    && l3.is_none()
                    && *base == NFT_PAYLOAD_NETWORK
                    && (rest[..2] == dependency(L3::Ip) || rest[..2] == dependency(L3::Arp)) =>
            {
                let _ = first;
                l3 = Some(if rest[..2] == dependency(L3::Ip) {
                    L3::Ip
                } else {
                    L3::Arp
                });
                i += 2;
            }
            [KExpr::Payload {
                dreg,
                base,
                offset,
                len,
            }, next, ..]
                if *dreg == reg =>
            {
                let field = FIELDS.iter().find(|f| {
                    f.base == *base
                        && f.offset == *offset
                        && (f.base != NFT_PAYLOAD_NETWORK || f.l3 == l3)
                        && (f.base != NFT_PAYLOAD_TRANSPORT || f.l4 == l4)
                })?;
                let left = json!({"payload": {"protocol": field.protocol, "field": field.field}});
                match (next, exprs.get(i + 2)) {
                    (
                        KExpr::Bitwise {
                            sreg,
                            dreg: d2,
                            len: blen,
                            mask,
                            xor,
                        },
                        Some(KExpr::Cmp { sreg: s2, op, data }),
                    ) if field.kind == Kind::Ipv4
                        && [sreg, d2, s2].iter().all(|r| **r == reg)
                        && blen == len
                        && *len == 4 =>
                    {
                        if xor.iter().any(|b| *b != 0) || mask.len() != *len as usize {
                            return None;
                        }
                        let mut m = [0u8; 4];
                        m[..mask.len()].copy_from_slice(mask);
                        let m = u32::from_be_bytes(m);
                        let plen = m.leading_ones();
                        if m != prefix_mask(plen) {
                            return None;
                        }
                        let mut a = [0u8; 4];
                        a[..data.len().min(4)].copy_from_slice(&data[..data.len().min(4)]);
                        let right =
                            json!({"prefix": {"addr": Ipv4Addr::from(a).to_string(), "len": plen}});
                        out.push(matches(*op, left, right)?);
                        i += 3;
                    }
                    (KExpr::Cmp { sreg, op, data }, _) if *sreg == reg => {
                        let right = if *len == field.len {
                            show(field.kind, data)?
                        } else if field.kind == Kind::Ipv4
                            && *len < 4
                            && data.len() == *len as usize
                        {
                            let mut a = [0u8; 4];
                            a[..data.len()].copy_from_slice(data);
                            json!({"prefix": {"addr": Ipv4Addr::from(a).to_string(), "len": len * 8}})
                        } else {
                            return None;
                        };
                        out.push(matches(*op, left, right)?);
                        i += 2;
                    }
                    (
                        KExpr::Lookup {
                            sreg,
                            set: SetRef::Name(name),
                            flags: NFT_LOOKUP_F_INV,
                        },
                        _,
                    ) if *sreg == reg && *len == field.len => {
                        let s = set(name)?;
                        let right = decode_set(field, &s)?;
                        out.push(
                            json!({"match": {"op": "!=", "left": left, "right": {"set": right}}}),
                        );
                        i += 2;
                    }
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The elements of an anonymous set of IPv4 addresses (plain, or intervals as prefixes and
/// ranges) as nft prints them; the same reading as edgenet's own tables' sets.
pub fn decode_ipv4_set(s: &AnonSet) -> Option<Vec<Value>> {
    let field = FIELDS.iter().find(|f| f.kind == Kind::Ipv4)?;
    decode_set(field, s)
}

fn decode_set(field: &Field, s: &AnonSet) -> Option<Vec<Value>> {
    let mut elems = s.elements.clone();
    elems.sort();
    match field.kind {
        Kind::EtherType => elems
            .iter()
            .map(|(k, _)| show(Kind::EtherType, k))
            .collect(),
        Kind::Ipv4 if s.flags & NFT_SET_INTERVAL == 0 => {
            elems.iter().map(|(k, _)| show(Kind::Ipv4, k)).collect()
        }
        Kind::Ipv4 => {
            let mut out = Vec::new();
            let mut it = elems.iter().peekable();
            // nft's leading "everything below the first start is outside" element.
            if let Some((k, f)) = it.peek() {
                if *f == NFT_SET_ELEM_INTERVAL_END && k.iter().all(|b| *b == 0) {
                    it.next();
                }
            }
            while let Some((k, f)) = it.next() {
                if *f & !ELEM_OPEN != 0 {
                    return None;
                }
                let a = u32::from_be_bytes(k.as_slice().try_into().ok()?);
                let b = match it.peek() {
                    Some((e, NFT_SET_ELEM_INTERVAL_END)) => {
                        let e = u32::from_be_bytes(e.as_slice().try_into().ok()?);
                        it.next();
                        e.checked_sub(1)?
                    }
                    Some(_) => return None,
                    None if *f == ELEM_OPEN => u32::MAX,
                    None => return None,
                };
                if b < a {
                    return None;
                }
                let span = u64::from(b) - u64::from(a) + 1;
                let (ia, ib) = (Ipv4Addr::from(a), Ipv4Addr::from(b));
                out.push(if a == b {
                    json!(ia.to_string())
                } else if span.is_power_of_two() && u64::from(a) % span == 0 {
                    json!({"prefix": {"addr": ia.to_string(), "len": 32 - span.trailing_zeros()}})
                } else {
                    json!({"range": [ia.to_string(), ib.to_string()]})
                });
            }
            Some(out)
        }
        Kind::Mac | Kind::Port => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes `exprs`, decodes the result (its sets looked up by index) and expects `exprs`.
    fn round_trip(family: u8, exprs: Value) {
        let exprs = exprs.as_array().unwrap().clone();
        let enc = encode(family, &exprs).unwrap_or_else(|e| panic!("encode: {e}"));
        let sets = enc.sets.clone();
        let kernel: Vec<KExpr> = enc
            .exprs
            .iter()
            .map(|e| match e {
                KExpr::Lookup { sreg, set, flags } => KExpr::Lookup {
                    sreg: *sreg,
                    set: match set {
                        SetRef::Index(i) => SetRef::Name(format!("__set{i}")),
                        other => other.clone(),
                    },
                    flags: *flags,
                },
                other => other.clone(),
            })
            .collect();
        let lookup = |n: &str| {
            let i: usize = n.strip_prefix("__set")?.parse().ok()?;
            sets.get(i).cloned()
        };
        let back =
            decode(family, &kernel, &lookup).unwrap_or_else(|| panic!("no decoding of {kernel:?}"));
        assert_eq!(Value::Array(back), Value::Array(exprs));
    }

    fn m(op: &str, left: Value, right: Value) -> Value {
        json!({"match": {"op": op, "left": left, "right": right}})
    }

    #[test]
    fn every_form_the_builders_write_round_trips() {
        let ip = |f: &str| json!({"payload": {"protocol": "ip", "field": f}});
        let net = |a: &str, l: u32| json!({"prefix": {"addr": a, "len": l}});
        round_trip(
            NFPROTO_IPV4,
            json!([
                m("==", json!({"meta": {"key": "oifname"}}), json!("br0")),
                m("==", ip("daddr"), net("192.168.0.0", 24)),
                m("!=", ip("saddr"), net("10.16.0.0", 20)),
                m("in", json!({"ct": {"key": "state"}}), json!(["established", "related"])),
                {"accept": null}
            ]),
        );
        round_trip(
            NFPROTO_IPV4,
            json!([
                m("!=", ip("saddr"), net("192.168.0.0", 24)),
                m("==", json!({"fib": {"result": "type", "flags": ["daddr"]}}), json!("local")),
                m("==", json!({"payload": {"protocol": "tcp", "field": "dport"}}), json!(8080)),
                {"dnat": {"addr": "192.168.0.2", "port": 80}}
            ]),
        );
        round_trip(
            NFPROTO_IPV4,
            json!([
                m("==", json!({"meta": {"key": "oifname"}}), json!("br0")),
                m("==", ip("daddr"), json!("192.168.0.2")),
                m("==", json!({"payload": {"protocol": "udp", "field": "dport"}}), json!(53)),
                m("in", json!({"ct": {"key": "status"}}), json!("dnat")),
                {"accept": null}
            ]),
        );
        round_trip(
            NFPROTO_IPV4,
            json!([
                m("==", json!({"meta": {"key": "iifname"}}), json!("br0")),
                m("in", json!({"ct": {"key": "status"}}), json!("dnat")),
                m("==", json!({"ct": {"key": "direction"}}), json!("reply")),
                {"accept": null}
            ]),
        );
        round_trip(
            NFPROTO_IPV4,
            json!([
                m("==", json!({"meta": {"key": "iifname"}}), json!("br0")),
                m("==", ip("daddr"), net("192.168.0.0", 24)),
                m("!=", ip("daddr"), json!("192.168.0.1")),
                m("==", ip("saddr"), net("192.168.0.0", 24)),
                m("==", json!({"meta": {"key": "pkttype"}}), json!("host")),
                {"notrack": null}
            ]),
        );
        round_trip(
            NFPROTO_BRIDGE,
            json!([
                m("==", json!({"meta": {"key": "iifname"}}), json!("en1")),
                m("!=", json!({"payload": {"protocol": "arp", "field": "saddr ip"}}),
                    json!({"set": ["0.0.0.0", "192.168.0.2", {"range": ["192.168.0.4", "192.168.0.13"]}]})),
                {"drop": null}
            ]),
        );
        round_trip(
            NFPROTO_BRIDGE,
            json!([
                m("==", json!({"meta": {"key": "iifname"}}), json!("en1")),
                m("!=", ip("daddr"), json!({"set": [net("192.168.0.0", 24), "255.255.255.255"]})),
                {"drop": null}
            ]),
        );
        round_trip(
            NFPROTO_BRIDGE,
            json!([
                m("!=", json!({"payload": {"protocol": "ether", "field": "type"}}),
                    json!({"set": ["ip", "arp"]})),
                m("!=", json!({"payload": {"protocol": "ether", "field": "saddr"}}),
                    json!("02:00:00:00:00:01")),
                {"drop": null}
            ]),
        );
    }

    #[test]
    fn forms_nft_would_write_otherwise_are_refused() {
        let ip = json!({"payload": {"protocol": "ip", "field": "saddr"}});
        for bad in [
            // One-element set (nft makes it a plain match), unmerged or unsorted elements.
            json!([m("!=", ip.clone(), json!({"set": ["10.0.0.1"]}))]),
            json!([m(
                "!=",
                ip.clone(),
                json!({"set": ["10.0.0.2", "10.0.0.1"]})
            )]),
            json!([m(
                "!=",
                ip.clone(),
                json!({"set": ["10.0.0.1", "10.0.0.2"]})
            )]),
            // Host bits in a prefix, upper-case MAC, a set compared with ==.
            json!([m(
                "==",
                ip.clone(),
                json!({"prefix": {"addr": "10.0.0.1", "len": 24}})
            )]),
            json!([m(
                "==",
                ip.clone(),
                json!({"set": ["10.0.0.1", "10.0.0.3"]})
            )]),
            json!([{"counter": null}]),
            json!([m("==", json!({"meta": {"key": "iifname"}}), json!("br*"))]),
            // An address type or packet type the subset does not name.
            json!([m(
                "==",
                json!({"fib": {"result": "type", "flags": ["daddr"]}}),
                json!("unicast")
            )]),
            json!([m(
                "==",
                json!({"meta": {"key": "pkttype"}}),
                json!("broadcast")
            )]),
            json!([m("!=", json!({"meta": {"key": "pkttype"}}), json!("host"))]),
        ] {
            assert!(
                encode(NFPROTO_IPV4, bad.as_array().unwrap()).is_err(),
                "{bad}"
            );
        }
        let mac = json!([m(
            "!=",
            json!({"payload": {"protocol": "ether", "field": "saddr"}}),
            json!("02:00:00:00:00:AB")
        )]);
        assert!(encode(NFPROTO_BRIDGE, mac.as_array().unwrap()).is_err());
        // notrack and pkttype are edgenet's only in its `ip` table.
        assert!(encode(NFPROTO_BRIDGE, &[json!({"notrack": null})]).is_err());
        let pkttype = m("==", json!({"meta": {"key": "pkttype"}}), json!("host"));
        assert!(encode(NFPROTO_BRIDGE, &[pkttype]).is_err());
    }
}
