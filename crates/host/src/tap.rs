//! Persistent tap devices (a `vm` node's link to the switch). The kernel makes taps only
//! through `/dev/net/tun` (TUNSETIFF), not netlink; once made persistent the tap outlives the
//! file and QEMU attaches to it by name, so a QEMU that dies leaves the tap (on the switch,
//! with its mark) for the next deploy. Everything else about it (MTU, alias, group, master)
//! goes through [`crate::netlink`].

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;

use crate::error::HostError;

// TUNSETIFF takes a `struct ifreq` (libc's layout); TUNSETPERSIST an integer.
nix::ioctl_write_ptr_bad!(tun_set_iff, libc::TUNSETIFF, libc::ifreq);
nix::ioctl_write_int_bad!(tun_set_persist, libc::TUNSETPERSIST);

/// Creates the persistent tap `name` in the calling thread's network namespace.
pub fn create(name: &str) -> Result<(), HostError> {
    let err = |e: io::Error| HostError::new("create tap", name, e);
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(err(io::Error::from_raw_os_error(libc::EINVAL)));
    }
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(err)?;
    // SAFETY: ifreq is plain old data; all zeroes is a valid (empty) request.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // `ifr_flags` is a short; both flags fit in it.
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: the fd is open for the call; the request is a whole ifreq with a NUL-terminated
    // name (shorter than IFNAMSIZ, checked above).
    unsafe { tun_set_iff(tun.as_raw_fd(), &req) }.map_err(|e| err(e.into()))?;
    // SAFETY: the same fd; TUNSETPERSIST reads only its integer argument.
    unsafe { tun_set_persist(tun.as_raw_fd(), 1) }.map_err(|e| err(e.into()))?;
    Ok(())
}
