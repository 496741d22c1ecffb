//! nfnetlink on the wire: a NETLINK_NETFILTER socket in the calling thread's namespace,
//! nf_tables messages with their attributes (built and parsed here, from the kernel's uapi
//! `linux/netfilter/nf_tables.h` and `nfnetlink.h`), batches and dumps.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub const NFNL_MSG_BATCH_END: u16 = 0x11;

pub const NFT_MSG_NEWTABLE: u16 = 0;
pub const NFT_MSG_GETTABLE: u16 = 1;
pub const NFT_MSG_DELTABLE: u16 = 2;
pub const NFT_MSG_NEWCHAIN: u16 = 3;
pub const NFT_MSG_GETCHAIN: u16 = 4;
pub const NFT_MSG_NEWRULE: u16 = 6;
pub const NFT_MSG_GETRULE: u16 = 7;
pub const NFT_MSG_NEWSET: u16 = 9;
pub const NFT_MSG_GETSET: u16 = 10;
pub const NFT_MSG_NEWSETELEM: u16 = 12;
pub const NFT_MSG_GETSETELEM: u16 = 13;
pub const NFT_MSG_GETGEN: u16 = 16;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
pub const NLM_F_DUMP: u16 = 0x300;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;
const NETLINK_NETFILTER: i32 = 12;

/// One message being built: netlink header, nfgenmsg, attributes.
pub struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    pub fn new(msg_type: u16, flags: u16, family: u8, res_id: u16) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&msg_type.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // seq, set when queued
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.push(family);
        buf.push(0); // NFNETLINK_V0
        buf.extend_from_slice(&res_id.to_be_bytes());
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    /// An nf_tables request (`NFT_MSG_*`).
    pub fn nft(msg: u16, flags: u16, family: u8) -> Msg {
        Msg::new(
            (NFNL_SUBSYS_NFTABLES << 8) | msg,
            NLM_F_REQUEST | flags,
            family,
            0,
        )
    }

    pub fn bytes(&mut self, kind: u16, data: &[u8]) -> &mut Self {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    pub fn str(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut data = Vec::with_capacity(s.len() + 1);
        data.extend_from_slice(s.as_bytes());
        data.push(0);
        self.bytes(kind, &data)
    }

    pub fn u32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.bytes(kind, &v.to_be_bytes())
    }

    pub fn begin(&mut self, kind: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    pub fn end(&mut self) -> &mut Self {
        let start = self.nests.pop().expect("end() after begin()");
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// The attributes' bytes (after the netlink header and nfgenmsg), for decoder tests.
    #[cfg(test)]
    pub fn attr_bytes(self) -> Vec<u8> {
        self.finish(0)[20..].to_vec()
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        debug_assert!(self.nests.is_empty());
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// An attribute read from a message: its type (without the nested flag) and payload.
#[derive(Debug, Clone, Copy)]
pub struct Attr<'a> {
    pub kind: u16,
    pub data: &'a [u8],
}

impl<'a> Attr<'a> {
    pub fn u32(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.data.get(..4)?.try_into().ok()?))
    }
    pub fn u64(&self) -> Option<u64> {
        Some(u64::from_be_bytes(self.data.get(..8)?.try_into().ok()?))
    }
    pub fn str(&self) -> Option<&'a str> {
        let d = self.data.strip_suffix(&[0]).unwrap_or(self.data);
        std::str::from_utf8(d).ok()
    }
    pub fn nested(&self) -> Vec<Attr<'a>> {
        attrs(self.data)
    }
}

/// The attributes in `data` (a message's payload after nfgenmsg, or a nest).
pub fn attrs(mut data: &[u8]) -> Vec<Attr<'_>> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let kind = u16::from_ne_bytes([data[2], data[3]]) & 0x3fff;
        if len < 4 || len > data.len() {
            break;
        }
        out.push(Attr {
            kind,
            data: &data[4..len],
        });
        let next = (len + 3) & !3;
        data = &data[next.min(data.len())..];
    }
    out
}

/// A message received: its nf_tables message type, the nfgenmsg family and the attributes'
/// bytes.
#[derive(Debug, Clone)]
pub struct Reply {
    pub family: u8,
    pub payload: Vec<u8>,
}

impl Reply {
    pub fn attrs(&self) -> Vec<Attr<'_>> {
        attrs(&self.payload)
    }
}

/// A received netlink message: type, flags, sequence number, body after the netlink header.
type Raw = (u16, u16, u32, Vec<u8>);

/// A NETLINK_NETFILTER socket, opened in the calling thread's network namespace.
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl std::os::fd::AsRawFd for Socket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl Socket {
    pub fn open() -> io::Result<Socket> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Large dumps (many rules) and batch acknowledgements: a generous receive buffer.
        let size: libc::c_int = 1 << 20;
        // SAFETY: setsockopt with a valid int; failure only leaves the default size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &size as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            );
        }
        // Never hang on an answer that does not come: every request here is answered at once.
        let timeout = libc::timeval {
            tv_sec: 10,
            tv_usec: 0,
        };
        // SAFETY: setsockopt with a valid timeval.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &timeout as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
        }
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(1);
        Ok(Socket {
            fd,
            seq,
            // Filled by `recv` only as far as the kernel writes: a zeroed buffer would touch
            // (fault in) all of its pages on every open, which costs more than the answers.
            buf: Vec::with_capacity(1 << 16),
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&self, data: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl zeroed = the kernel; data is a valid buffer.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                data.as_ptr() as *const libc::c_void,
                data.len(),
                0,
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One datagram's messages.
    fn recv(&mut self) -> io::Result<Vec<Raw>> {
        self.buf.clear();
        let n = loop {
            // SAFETY: recv into our own buffer's spare capacity, at most its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr() as *mut libc::c_void,
                    self.buf.capacity(),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            break n as usize;
        };
        // SAFETY: the kernel wrote the first `n` bytes (n <= capacity).
        unsafe { self.buf.set_len(n) };
        let mut out = Vec::new();
        let mut data = &self.buf[..];
        while data.len() >= 16 {
            let len = u32::from_ne_bytes(data[0..4].try_into().unwrap()) as usize;
            if len < 16 || len > data.len() {
                break;
            }
            let kind = u16::from_ne_bytes([data[4], data[5]]);
            let flags = u16::from_ne_bytes([data[6], data[7]]);
            let seq = u32::from_ne_bytes(data[8..12].try_into().unwrap());
            out.push((kind, flags, seq, data[16..len].to_vec()));
            data = &data[((len + 3) & !3).min(data.len())..];
        }
        Ok(out)
    }

    /// A dump request; every reply message of the dump. `Err(EINTR)` when the ruleset changed
    /// during the dump (the caller retries).
    pub fn dump(&mut self, msg: Msg) -> io::Result<Vec<Reply>> {
        let seq = self.next_seq();
        self.send(&msg.finish(seq))?;
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            for (kind, flags, s, body) in self.recv()? {
                if s != seq {
                    continue;
                }
                if flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match kind {
                    NLMSG_DONE => {
                        return if interrupted {
                            Err(io::Error::from_raw_os_error(libc::EINTR))
                        } else {
                            Ok(out)
                        };
                    }
                    NLMSG_ERROR => {
                        let errno = error_code(&body);
                        if errno != 0 {
                            return Err(io::Error::from_raw_os_error(errno));
                        }
                    }
                    _ if body.len() >= 4 => out.push(Reply {
                        family: body[0],
                        payload: body[4..].to_vec(),
                    }),
                    _ => {}
                }
            }
        }
    }

    /// A request answered by one message (`NFT_MSG_GETGEN`).
    pub fn get(&mut self, msg: Msg) -> io::Result<Reply> {
        let seq = self.next_seq();
        self.send(&msg.finish(seq))?;
        loop {
            for (kind, _, s, body) in self.recv()? {
                if s != seq {
                    continue;
                }
                if kind == NLMSG_ERROR {
                    return Err(io::Error::from_raw_os_error(error_code(&body).max(1)));
                }
                if body.len() >= 4 {
                    return Ok(Reply {
                        family: body[0],
                        payload: body[4..].to_vec(),
                    });
                }
            }
        }
    }

    /// Sends `msgs` as one nfnetlink batch (one nf_tables transaction). Returns the kernel's
    /// errors with the index of the message each answers (empty: the transaction was
    /// committed).
    ///
    /// Only the last message asks for an acknowledgement: nfnetlink goes on through the whole
    /// batch after an error and reports every failing message whether it asked or not, in
    /// batch order, after the commit or abort (`nfnetlink_rcv_batch`: `NLM_F_ACK || err`). So
    /// the last message's answer marks the end of the errors, and a committed batch costs one
    /// read instead of one per message. Refusals of the batch as a whole (no permission, no
    /// memory, a failed commit) answer the batch header, as before.
    pub fn batch(&mut self, msgs: Vec<Msg>) -> io::Result<Vec<(usize, i32)>> {
        let mut data = Vec::new();
        let begin_seq = self.next_seq();
        let begin = Msg::new(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        data.extend(begin.finish(begin_seq));
        let mut seqs = Vec::with_capacity(msgs.len());
        let last = msgs.len().checked_sub(1);
        for (i, mut m) in msgs.into_iter().enumerate() {
            let seq = self.next_seq();
            if Some(i) == last {
                let flags = u16::from_ne_bytes([m.buf[6], m.buf[7]]) | NLM_F_ACK;
                m.buf[6..8].copy_from_slice(&flags.to_ne_bytes());
            }
            data.extend(m.finish(seq));
            seqs.push(seq);
        }
        let end_seq = self.next_seq();
        let end = Msg::new(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        data.extend(end.finish(end_seq));
        // The kernel takes a batch as one message, refused when larger than the send buffer
        // (as nft does, raise it for a big one).
        if data.len() > 64 * 1024 {
            let size = libc::c_int::try_from(data.len() + 64 * 1024).unwrap_or(libc::c_int::MAX);
            // SAFETY: setsockopt with a valid int; on failure the send reports the problem.
            unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_SNDBUFFORCE,
                    &size as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as u32,
                );
            }
        }
        self.send(&data)?;
        // Answered once the last message's acknowledgement (or error) has come.
        let mut pending: Option<u32> = seqs.last().copied();
        let mut errors = Vec::new();
        while pending.is_some() {
            let got = self.recv()?;
            for (kind, _, seq, body) in got {
                if kind != NLMSG_ERROR {
                    continue;
                }
                let errno = error_code(&body);
                if seq == begin_seq || seq == end_seq {
                    // The batch itself was refused (e.g. EPERM): nothing was applied.
                    if errno != 0 {
                        errors.push((0, errno));
                        return Ok(errors);
                    }
                    continue;
                }
                if pending == Some(seq) {
                    pending = None;
                }
                if errno != 0 {
                    if let Some(i) = seqs.iter().position(|s| *s == seq) {
                        errors.push((i, errno));
                    }
                }
            }
        }
        Ok(errors)
    }
}

/// `NFT_TABLE_F_OWNER`: only the netlink socket that made the table may change or delete it.
pub const NFT_TABLE_F_OWNER: u32 = 2;
/// `NFTA_TABLE_FLAGS`, `NFTA_TABLE_OWNER` (the owning socket's port id).
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_TABLE_OWNER: u16 = 7;

/// The tables of the calling thread's namespace that another socket owns: (nfproto family,
/// name, owner port id when the kernel says it). One `NFT_MSG_GETTABLE` dump; read before any
/// listing through libnftables, whose 1.0.6 JSON printer breaks (or aborts the process) on an
/// owned table.
pub fn owned_tables() -> io::Result<Vec<(u8, String, Option<u32>)>> {
    let mut sock = Socket::open()?;
    let mut tries = 0;
    let tables = loop {
        match sock.dump(Msg::nft(NFT_MSG_GETTABLE, NLM_F_DUMP, 0)) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) && tries < 10 => tries += 1,
            other => break other?,
        }
    };
    Ok(tables
        .iter()
        .filter_map(|t| {
            let a = t.attrs();
            let get = |k: u16| a.iter().find(|x| x.kind == k);
            let flags = get(NFTA_TABLE_FLAGS).and_then(|x| x.u32()).unwrap_or(0);
            (flags & NFT_TABLE_F_OWNER != 0).then(|| {
                let name = get(1).and_then(|x| x.str()).unwrap_or("").to_string();
                (t.family, name, get(NFTA_TABLE_OWNER).and_then(|x| x.u32()))
            })
        })
        .collect())
}

/// The (positive) errno of an NLMSG_ERROR body; 0 for an acknowledgement.
fn error_code(body: &[u8]) -> i32 {
    body.get(..4)
        .map(|b| -i32::from_ne_bytes(b.try_into().unwrap()))
        .unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_nested_and_read_back() {
        let mut m = Msg::nft(NFT_MSG_NEWTABLE, NLM_F_CREATE, 7);
        m.str(1, "edgenet_x").u32(2, 5);
        m.begin(4).bytes(1, &[1, 2, 3]).u32(2, 0xfffffff6).end();
        let buf = m.finish(9);
        assert_eq!(buf.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize,
            buf.len()
        );
        assert_eq!(
            u16::from_ne_bytes([buf[4], buf[5]]),
            (10 << 8) | NFT_MSG_NEWTABLE
        );
        assert_eq!(u32::from_ne_bytes(buf[8..12].try_into().unwrap()), 9);
        assert_eq!(buf[16], 7, "nfgenmsg family");
        let a = attrs(&buf[20..]);
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].str(), Some("edgenet_x"));
        assert_eq!(a[1].u32(), Some(5));
        let nest = a[2].nested();
        assert_eq!(a[2].kind, 4, "the nested flag is not part of the type");
        assert_eq!(nest[0].data, &[1, 2, 3]);
        assert_eq!(nest[1].u32().map(|v| v as i32), Some(-10));
    }

    #[test]
    fn truncated_attributes_end_the_list() {
        // A length beyond the buffer: nothing is read past it.
        let data = [8u8, 0, 1, 0, 1, 2, 3, 4, 200, 0, 2, 0];
        let a = attrs(&data);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].u32(), Some(0x01020304));
    }
}
