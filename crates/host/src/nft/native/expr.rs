//! The kernel's side of the subset: nf_tables expressions as the kernel holds them, with their
//! netlink form, and the anonymous sets rules look up. The encoder builds these from JSON, the
//! decoder reads them from dumps; a decoded rule is only trusted when encoding its JSON gives
//! back exactly what the kernel holds.

use super::wire::{Attr, Msg};

pub const NFPROTO_IPV4: u8 = 2;
pub const NFPROTO_BRIDGE: u8 = 7;

pub const NFT_REG_VERDICT: u32 = 0;
pub const NFT_REG_1: u32 = 1;

pub const NFT_META_PROTOCOL: u32 = 1;
pub const NFT_META_IIFNAME: u32 = 6;
pub const NFT_META_OIFNAME: u32 = 7;
pub const NFT_META_PKTTYPE: u32 = 19;
/// `PACKET_HOST` (linux/if_packet.h): unicast to this host, which for a frame the bridge
/// forwards is what `br_netfilter` shows the `ip` hooks too.
pub const PACKET_HOST: u8 = 0;
pub const NFT_META_L4PROTO: u32 = 16;

pub const NFT_CT_STATE: u32 = 0;
pub const NFT_CT_DIRECTION: u32 = 1;
pub const NFT_CT_STATUS: u32 = 2;

/// `fib daddr type`: result `NFT_FIB_RESULT_ADDRTYPE`, flag `NFTA_FIB_F_DADDR`.
pub const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
pub const NFTA_FIB_F_DADDR: u32 = 1 << 1;
pub const RTN_LOCAL: u32 = 2;

pub const NFT_NAT_DNAT: u32 = 1;
pub const NF_NAT_RANGE_MAP_IPS: u32 = 1;
pub const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;
pub const NFT_REG_2: u32 = 2;

pub const NFT_CMP_EQ: u32 = 0;
pub const NFT_CMP_NEQ: u32 = 1;

pub const NFT_PAYLOAD_LL: u32 = 0;
pub const NFT_PAYLOAD_NETWORK: u32 = 1;
pub const NFT_PAYLOAD_TRANSPORT: u32 = 2;

pub const NFT_LOOKUP_F_INV: u32 = 1;

pub const NF_DROP: i32 = 0;
pub const NF_ACCEPT: i32 = 1;
pub const NFT_RETURN: i32 = -5;

pub const NFT_SET_ANONYMOUS: u32 = 0x1;
pub const NFT_SET_CONSTANT: u32 = 0x2;
pub const NFT_SET_INTERVAL: u32 = 0x4;
pub const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;
/// Not a kernel flag: marks the start of an interval that runs to the end of the key space,
/// which nft tags in the element's userdata (`NFTNL_SET_ELEM_F_INTERVAL_OPEN`).
pub const ELEM_OPEN: u32 = 0x8000_0000;
/// That userdata: `NFTNL_UDATA_SET_ELEM_FLAGS` = `NFTNL_SET_ELEM_F_INTERVAL_OPEN`.
pub const ELEM_OPEN_UDATA: [u8; 6] = [1, 4, 1, 0, 0, 0];

/// One expression of a rule, as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KExpr {
    Meta {
        key: u32,
        dreg: u32,
    },
    Cmp {
        sreg: u32,
        op: u32,
        data: Vec<u8>,
    },
    Payload {
        dreg: u32,
        base: u32,
        offset: u32,
        len: u32,
    },
    Bitwise {
        sreg: u32,
        dreg: u32,
        len: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    Ct {
        key: u32,
        dreg: u32,
    },
    /// `set`: the index of the rule's set (encoder) or the set's name (decoder), compared by
    /// content, not by name.
    Lookup {
        sreg: u32,
        set: SetRef,
        flags: u32,
    },
    Verdict(i32),
    Masq,
    /// `notrack`: the packet skips conntrack (no attributes; only in a chain before
    /// conntrack's priority).
    Notrack,
    Fib {
        result: u32,
        flags: u32,
        dreg: u32,
    },
    /// An immediate value loaded into a data register (a NAT target).
    Data {
        dreg: u32,
        data: Vec<u8>,
    },
    Nat {
        kind: u32,
        family: u32,
        reg_addr: u32,
        reg_proto: u32,
        flags: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetRef {
    Index(usize),
    Name(String),
}

/// An anonymous constant set as nft makes it for a rule's `{ … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonSet {
    pub flags: u32,
    pub key_type: u32,
    pub key_len: u32,
    pub size: u32,
    pub userdata: Vec<u8>,
    /// (key, flags) in the order nft sends them.
    pub elements: Vec<(Vec<u8>, u32)>,
}

// Attribute numbers (linux/netfilter/nf_tables.h).
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;

impl KExpr {
    pub fn put(&self, m: &mut Msg, set_names: &dyn Fn(&SetRef) -> (String, Option<u32>)) {
        m.begin(NFTA_LIST_ELEM);
        let name = match self {
            KExpr::Meta { .. } => "meta",
            KExpr::Cmp { .. } => "cmp",
            KExpr::Payload { .. } => "payload",
            KExpr::Bitwise { .. } => "bitwise",
            KExpr::Ct { .. } => "ct",
            KExpr::Lookup { .. } => "lookup",
            KExpr::Verdict(_) | KExpr::Data { .. } => "immediate",
            KExpr::Masq => "masq",
            KExpr::Notrack => "notrack",
            KExpr::Fib { .. } => "fib",
            KExpr::Nat { .. } => "nat",
        };
        m.str(NFTA_EXPR_NAME, name);
        if *self == KExpr::Notrack {
            // No data at all, as nft sends it (and the kernel dumps it).
            m.end();
            return;
        }
        m.begin(NFTA_EXPR_DATA);
        match self {
            KExpr::Meta { key, dreg } => {
                m.u32(2, *key).u32(1, *dreg);
            }
            KExpr::Cmp { sreg, op, data } => {
                m.u32(1, *sreg).u32(2, *op);
                m.begin(3).bytes(NFTA_DATA_VALUE, data).end();
            }
            KExpr::Payload {
                dreg,
                base,
                offset,
                len,
            } => {
                m.u32(1, *dreg).u32(2, *base).u32(3, *offset).u32(4, *len);
            }
            KExpr::Bitwise {
                sreg,
                dreg,
                len,
                mask,
                xor,
            } => {
                m.u32(1, *sreg).u32(2, *dreg).u32(3, *len);
                m.begin(4).bytes(NFTA_DATA_VALUE, mask).end();
                m.begin(5).bytes(NFTA_DATA_VALUE, xor).end();
            }
            KExpr::Ct { key, dreg } => {
                m.u32(2, *key).u32(1, *dreg);
            }
            KExpr::Lookup { sreg, set, flags } => {
                let (name, id) = set_names(set);
                m.u32(2, *sreg).str(1, &name);
                if let Some(id) = id {
                    m.u32(4, id);
                }
                m.u32(5, *flags);
            }
            KExpr::Verdict(code) => {
                m.u32(1, NFT_REG_VERDICT);
                m.begin(2)
                    .begin(NFTA_DATA_VERDICT)
                    .u32(NFTA_VERDICT_CODE, *code as u32)
                    .end()
                    .end();
            }
            KExpr::Masq | KExpr::Notrack => {}
            KExpr::Fib {
                result,
                flags,
                dreg,
            } => {
                m.u32(1, *dreg).u32(2, *result).u32(3, *flags);
            }
            KExpr::Data { dreg, data } => {
                m.u32(1, *dreg);
                m.begin(2).bytes(NFTA_DATA_VALUE, data).end();
            }
            KExpr::Nat {
                kind,
                family,
                reg_addr,
                reg_proto,
                flags,
            } => {
                m.u32(1, *kind)
                    .u32(2, *family)
                    .u32(3, *reg_addr)
                    .u32(5, *reg_proto)
                    .u32(7, *flags);
            }
        }
        m.end().end();
    }

    /// One expression from a dump; `None` for anything outside the subset.
    pub fn parse(elem: &Attr) -> Option<KExpr> {
        let attrs = elem.nested();
        let name = attrs.iter().find(|a| a.kind == NFTA_EXPR_NAME)?.str()?;
        let data = attrs
            .iter()
            .find(|a| a.kind == NFTA_EXPR_DATA)
            .map(|a| a.nested())
            .unwrap_or_default();
        let get = |k: u16| data.iter().find(|a| a.kind == k);
        let u = |k: u16| get(k).and_then(|a| a.u32());
        let value = |k: u16| {
            let nest = get(k)?.nested();
            Some(
                nest.iter()
                    .find(|a| a.kind == NFTA_DATA_VALUE)?
                    .data
                    .to_vec(),
            )
        };
        let known = |allowed: &[u16]| data.iter().all(|a| allowed.contains(&a.kind));
        Some(match name {
            "meta" if known(&[1, 2]) => KExpr::Meta {
                key: u(2)?,
                dreg: u(1)?,
            },
            "cmp" if known(&[1, 2, 3]) => KExpr::Cmp {
                sreg: u(1)?,
                op: u(2)?,
                data: value(3)?,
            },
            "payload" if known(&[1, 2, 3, 4]) => KExpr::Payload {
                dreg: u(1)?,
                base: u(2)?,
                offset: u(3)?,
                len: u(4)?,
            },
            // NFTA_BITWISE_OP (6) is dumped by newer kernels; only the boolean form (0).
            "bitwise" if known(&[1, 2, 3, 4, 5, 6]) && u(6).unwrap_or(0) == 0 => KExpr::Bitwise {
                sreg: u(1)?,
                dreg: u(2)?,
                len: u(3)?,
                mask: value(4)?,
                xor: value(5)?,
            },
            "ct" if known(&[1, 2]) => KExpr::Ct {
                key: u(2)?,
                dreg: u(1)?,
            },
            "lookup" if known(&[1, 2, 5]) => KExpr::Lookup {
                sreg: u(2)?,
                set: SetRef::Name(get(1)?.str()?.to_string()),
                flags: u(5).unwrap_or(0),
            },
            "immediate" if known(&[1, 2]) && u(1)? == NFT_REG_VERDICT => {
                let d = get(2)?.nested();
                let v = d.iter().find(|a| a.kind == NFTA_DATA_VERDICT)?.nested();
                if v.iter().any(|a| a.kind != NFTA_VERDICT_CODE) {
                    return None; // jump/goto carry a chain
                }
                KExpr::Verdict(v.first()?.u32()? as i32)
            }
            "immediate" if known(&[1, 2]) => KExpr::Data {
                dreg: u(1)?,
                data: value(2)?,
            },
            "masq" if data.is_empty() => KExpr::Masq,
            "notrack" if data.is_empty() => KExpr::Notrack,
            "fib" if known(&[1, 2, 3]) => KExpr::Fib {
                result: u(2)?,
                flags: u(3)?,
                dreg: u(1)?,
            },
            // The kernel dumps the range's max registers too: the min ones again, for a single
            // address and port.
            "nat"
                if known(&[1, 2, 3, 4, 5, 6, 7])
                    && u(4).is_none_or(|r| Some(r) == u(3))
                    && u(6).is_none_or(|r| Some(r) == u(5)) =>
            {
                KExpr::Nat {
                    kind: u(1)?,
                    family: u(2)?,
                    reg_addr: u(3)?,
                    reg_proto: u(5)?,
                    // The kernel adds NF_NAT_RANGE_MAP_IPS itself when an address register is
                    // given; nft does not send it.
                    flags: u(7)? & !NF_NAT_RANGE_MAP_IPS,
                }
            }
            _ => return None,
        })
    }
}
