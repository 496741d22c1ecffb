//! Persistent tap devices (a `vm` node's link to the switch). The kernel makes taps only
//! through `/dev/net/tun` (TUNSETIFF), not netlink; once made persistent the tap outlives the
//! file and QEMU attaches to it by name, so a QEMU that dies leaves the tap (on the switch,
//! with its mark) for the next deploy. Everything else about it (MTU, alias, group, master)
//! goes through [`crate::netlink`].

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;

use crate::error::HostError;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

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
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        // `ifr_flags` is a short; both flags fit in it.
        flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes a struct ifreq, which IfReq lays out (name, flags,
    // padding to its full size); the fd is open for the call's duration.
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
        return Err(err(io::Error::last_os_error()));
    }
    // SAFETY: TUNSETPERSIST takes an integer argument.
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETPERSIST, 1 as libc::c_ulong) } < 0 {
        return Err(err(io::Error::last_os_error()));
    }
    Ok(())
}
