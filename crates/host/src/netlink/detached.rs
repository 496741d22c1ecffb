//! Deleting a link group without waiting for the kernel's final freeing.
//!
//! `ip link del group N` (one RTM_DELLINK) takes the links out of the kernel's view under RTNL:
//! `unregister_netdevice_many_notify` unlists each link (its name and index are free, dumps no
//! longer show it, its sysfs directory is gone) and sends its RTM_DELLINK notification to
//! RTNLGRP_LINK. Only then, after `rtnl_unlock`, does the sender's own context run
//! `netdev_run_todo`: an `rcu_barrier` and the wait for the last references, 20-40 ms before
//! the kernel acks the request. Nothing of the deployment is left to see or to clash with by
//! then (a new link of the same name can be made at once), so the caller need not wait for it.
//!
//! [`Netlink::delete_group_detached`] therefore has a short-lived child process send the
//! request and wait for the ack, while the caller watches the link notifications and returns
//! as soon as every link the group held is announced deleted, or with the ack if it comes
//! first (a refusal is immediate: the kernel checks every link before deleting any). The child
//! does nothing else: between `fork` and `_exit` it only makes raw system calls (async-signal
//! safe), with all signals blocked and in a session of its own, and it holds no file of the
//! caller's (no lock, no output pipe a caller waits to see closed). Killing it once the
//! request is sent changes nothing: the kernel finishes the deletion in the sender's context,
//! uninterruptibly, and the process dies after.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use super::socket::{read_ack, request_bytes};
use super::{HostError, Netlink};

/// The command name (`comm`) of a child finishing a deletion: what `ps` shows and what a tool
/// that waits for a namespace's processes (the lab's teardown) knows to wait for, since it
/// exits on its own within tens of milliseconds.
pub const DELETING_PROCESS_NAME: &str = "edgenet-unlink";

/// [`DELETING_PROCESS_NAME`] NUL-terminated, as PR_SET_NAME takes it (at most 16 bytes).
const CHILD_NAME: [u8; 16] = {
    let name = DELETING_PROCESS_NAME.as_bytes();
    assert!(
        name.len() < 16,
        "the kernel keeps 15 bytes of a command name"
    );
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < name.len() {
        out[i] = name[i];
        i += 1;
    }
    out
};

/// Children still finishing a deletion, reaped once they have exited.
static FINISHING: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

/// Sequence number of the child's one request.
const SEQ: u32 = 1;

impl Netlink {
    /// [`Netlink::delete_group`] that returns once the kernel has announced every link of the
    /// group deleted, not once it has freed them (see the module's notes). Falls back to the
    /// plain request when the group is empty or the child cannot be started, or when the child
    /// died before the kernel answered it.
    pub fn delete_group_detached(&mut self, group: u32) -> Result<bool, HostError> {
        reap_finished();
        if group == 0 {
            return self.delete_group(group);
        }
        let object = format!("group {group}");
        let fail = |e: io::Error| HostError::new("delete links of", &object, e);
        // Subscribed before the dump: a deletion after it cannot go unseen.
        let watch = route_socket(libc::RTMGRP_LINK as u32).map_err(fail)?;
        let mut members: Vec<i32> = self
            .links()?
            .into_iter()
            .filter(|l| l.group == group)
            .map(|l| l.index as i32)
            .collect();
        if members.is_empty() {
            return self.delete_group(group);
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::Group(group));
        let request = request_bytes(
            RouteNetlinkMessage::DelLink(msg),
            NLM_F_REQUEST | NLM_F_ACK,
            SEQ,
        );
        let sender = route_socket(0).map_err(fail)?;
        let (ack_rx, ack_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| fail(io::Error::from(e)))?;
        let Some(pid) = spawn_sender(&sender, &ack_tx, &request) else {
            return self.delete_group(group);
        };
        drop((sender, ack_tx));
        FINISHING
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pid);
        tracing::debug!(
            pid,
            links = members.len(),
            "netlink: delete links of group {group} (detached)"
        );
        let mut watching = true;
        let mut buf = vec![0u8; super::socket::RECV_BUFFER];
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: if watching { watch.as_raw_fd() } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: ack_rx.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: two valid pollfd entries we own; a negative fd is ignored by poll.
            if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(fail(e));
            }
            if fds[0].revents != 0 {
                match recv(watch.as_raw_fd(), &mut buf, libc::MSG_DONTWAIT) {
                    Ok(n) => {
                        deleted_links(&buf[..n], &mut members);
                        if members.is_empty() {
                            reap_finished();
                            return Ok(true);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // Notifications lost (ENOBUFS): the ack decides.
                    Err(e) => {
                        tracing::debug!("netlink: link notifications: {e}; waiting for the ack");
                        watching = false;
                    }
                }
            }
            if fds[1].revents != 0 {
                let n = match read(ack_rx.as_raw_fd(), &mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => 0,
                };
                if n == 0 {
                    // The child died before the kernel answered: ask again, and wait this time
                    // (what it deleted is gone, and an empty group answers at once).
                    tracing::debug!("netlink: the deleting process gave no answer; deleting here");
                    return self.delete_group(group);
                }
                reap_finished();
                return match read_ack(&buf[..n], SEQ) {
                    Ok(()) => Ok(true),
                    Err(f) if f.errno() == Some(libc::ENODEV) => Ok(false),
                    Err(f) => Err(f.into_host("delete links of", &object)),
                };
            }
        }
    }
}

/// How many deleting children are still in the kernel's final wait (those that have exited
/// are reaped): what `remove` left to finish behind it.
pub fn deletions_finishing() -> usize {
    reap_finished();
    FINISHING.lock().unwrap_or_else(|p| p.into_inner()).len()
}

/// Reaps the deleting children that have exited (they are not waited for).
fn reap_finished() {
    let mut pids = FINISHING.lock().unwrap_or_else(|p| p.into_inner());
    pids.retain(|&pid| {
        let mut status = 0;
        // SAFETY: `pid` is a child of ours that nothing else waits for.
        unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) == 0 }
    });
}

/// Takes the links announced deleted in one datagram of notifications out of `members`.
/// A bridge port's removal is an RTM_DELLINK too, of family AF_BRIDGE: the link lives on.
fn deleted_links(datagram: &[u8], members: &mut Vec<i32>) {
    let mut rest = datagram;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(rest[4..6].try_into().unwrap());
        if len < 16 || len > rest.len() {
            break;
        }
        // ifinfomsg: family (u8), pad, type (u16), index (i32), ...
        if kind == libc::RTM_DELLINK && len >= 16 + 8 && rest[16] == libc::AF_UNSPEC as u8 {
            let index = i32::from_ne_bytes(rest[20..24].try_into().unwrap());
            members.retain(|&m| m != index);
        }
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or(&[]);
    }
}

/// A NETLINK_ROUTE socket of the calling thread's namespace, joined to `groups`.
fn route_socket(groups: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is ours alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_nl is valid; the family and groups are set below.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_groups = groups;
    // SAFETY: `addr` is a valid sockaddr_nl of the size given.
    let bound = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if bound < 0 {
        return Err(io::Error::last_os_error());
    }
    if groups == 0 {
        // A small, capped ack with the kernel's reason: it goes through a pipe in one write.
        for opt in [libc::NETLINK_CAP_ACK, libc::NETLINK_EXT_ACK] {
            let on: libc::c_int = 1;
            // SAFETY: setsockopt with an int option on our socket.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_NETLINK,
                    opt,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
    }
    Ok(fd)
}

fn recv(fd: RawFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: `buf` is ours and writable for its length.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is ours and writable for its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Forks the child that sends `request` on `sender` and writes the kernel's answer to `ack`;
/// `None` when fork failed.
fn spawn_sender(sender: &OwnedFd, ack: &OwnedFd, request: &[u8]) -> Option<libc::pid_t> {
    let (sock, pipe) = (sender.as_raw_fd(), ack.as_raw_fd());
    // SAFETY: sigset_t is plain data that sigfillset initialises.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both sets are ours; the child starts with every signal blocked (no handler of
    // the caller's runs in it) and the caller gets its mask back right after the fork.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    // SAFETY: the child only makes async-signal-safe calls on memory it inherited
    // (`request`, its own stack) and ends with `_exit`; see `sender_child`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the forked child, as required.
        unsafe { sender_child(sock, pipe, request) }
    }
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    (pid > 0).then_some(pid)
}

/// The child: no allocation, no lock, no Rust I/O, only raw system calls, then `_exit`.
///
/// # Safety
/// Only in the child of a `fork`, with `sock` and `pipe` open.
unsafe fn sender_child(sock: RawFd, pipe: RawFd, request: &[u8]) -> ! {
    libc::prctl(
        libc::PR_SET_NAME,
        CHILD_NAME.as_ptr() as libc::c_ulong,
        0,
        0,
        0,
    );
    // Out of the caller's session: a terminal's ^C or hangup is not for it.
    libc::setsid();
    // Every other file closed: the caller's lock, its stdout and stderr (a caller reading them
    // to their end is not held), other sockets.
    let (lo, hi) = (
        sock.min(pipe) as libc::c_uint,
        sock.max(pipe) as libc::c_uint,
    );
    let close_range = |from: libc::c_uint, to: libc::c_uint| {
        if from <= to && libc::syscall(libc::SYS_close_range, from, to, 0) != 0 {
            let mut fd = from;
            while fd <= to.min(4096) {
                libc::close(fd as libc::c_int);
                fd += 1;
            }
        }
    };
    if lo > 0 {
        close_range(0, lo - 1);
    }
    if hi > lo + 1 {
        close_range(lo + 1, hi - 1);
    }
    close_range(hi + 1, libc::c_uint::MAX);
    if libc::send(sock, request.as_ptr().cast(), request.len(), 0) == request.len() as isize {
        let mut answer = [0u8; 4096];
        loop {
            let n = libc::recv(sock, answer.as_mut_ptr().cast(), answer.len(), 0);
            if n > 0 {
                libc::write(pipe, answer.as_ptr().cast(), n as usize);
                break;
            }
            if n == 0 || *libc::__errno_location() != libc::EINTR {
                break;
            }
        }
    }
    libc::_exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, family: u8, index: i32) -> Vec<u8> {
        let mut m = vec![0u8; 32];
        m[0..4].copy_from_slice(&32u32.to_ne_bytes());
        m[4..6].copy_from_slice(&kind.to_ne_bytes());
        m[16] = family;
        m[20..24].copy_from_slice(&index.to_ne_bytes());
        m
    }

    #[test]
    fn only_a_links_own_deletion_counts_not_its_bridge_port_leaving() {
        let mut members = vec![3, 4, 5];
        let mut datagram = message(libc::RTM_DELLINK, libc::AF_BRIDGE as u8, 3);
        datagram.extend(message(libc::RTM_NEWLINK, 0, 4));
        datagram.extend(message(libc::RTM_DELLINK, 0, 5));
        deleted_links(&datagram, &mut members);
        assert_eq!(members, vec![3, 4]);
        deleted_links(&message(libc::RTM_DELLINK, 0, 3), &mut members);
        deleted_links(&message(libc::RTM_DELLINK, 0, 4), &mut members);
        assert!(members.is_empty());
    }

    #[test]
    fn a_cut_datagram_is_read_up_to_its_last_whole_message() {
        let mut members = vec![7, 8];
        let mut datagram = message(libc::RTM_DELLINK, 0, 7);
        datagram.extend(&message(libc::RTM_DELLINK, 0, 8)[..20]);
        deleted_links(&datagram, &mut members);
        assert_eq!(members, vec![8]);
    }
}
