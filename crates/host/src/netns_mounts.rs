//! Whether the network namespaces this process mounts under `/run/netns` outlive it.
//!
//! A namespace stays alive after its last process only through its bind mount. Made in the
//! host's mount namespace (or one whose `/run/netns` is a shared peer of the host's), the mount
//! is the host's. Made in a mount namespace of its own whose mounts do not propagate back (what
//! `ip netns exec` sets up: `unshare(CLONE_NEWNS)` and `/` made a recursive slave), the mount
//! dies with that namespace when the process exits: a deploy would report nodes that are gone a
//! moment later.

use std::path::Path;

use crate::netns::NETNS_RUN_DIR;

/// `Some(why)` when mounts made under `/run/netns` here would not reach the host's mount
/// namespace; `None` when they do, or when that cannot be told.
pub fn mounts_stay_private() -> Option<String> {
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    let read = |pid: &str| std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok();
    let dir = Path::new(NETNS_RUN_DIR);
    let ours = ns("self")?;
    // PID 1's namespace (the usual case) is settled without reading any mount table: a
    // Kubernetes host has hundreds of mounts, and this runs on every deploy.
    let init = match ns("1") {
        Some(init) if init == ours => return None,
        Some(_) => Init::Elsewhere(read("1").and_then(|info| covering_mount(&info, dir))),
        None => Init::Unknown,
    };
    // The kernel names the mount holding /run/netns in two calls; this process's mountinfo
    // (every mount of the namespace: a lab of 255 machines has 500+ namespace mounts) is
    // read only on a kernel without them.
    let here = mount_of(dir).or_else(|| covering_mount(&read("self")?, dir))?;
    stays_private(&here, &init).then(|| format!(
        "this process runs in a mount namespace of its own ({}) whose mounts under {NETNS_RUN_DIR} do not reach the host's, as under `ip netns exec` or `unshare -m`: the node namespaces it made would vanish when it exits",
        ours.display()
    ))
}

/// What is known of PID 1's mount namespace, when it is not this process's.
enum Init {
    /// Another one, with its mount holding `/run/netns` (if its mounts could be read).
    Elsewhere(Option<Mount>),
    /// It cannot be read (a sandbox, another PID namespace).
    Unknown,
}

fn stays_private(here: &Mount, init: &Init) -> bool {
    match init {
        // Only a peer of PID 1's mount shares what is mounted on it.
        Init::Elsewhere(there) => {
            here.shared.is_none() || here.shared != there.as_ref().and_then(|m| m.shared)
        }
        // A mount that only receives from a master gives nothing back (`ip netns exec` makes
        // every mount one); `/run/netns` is made a shared mount point of its own by `ip netns`
        // and edgenet alike, so a copy of it that is not shared is another namespace's
        // (`unshare -m` makes every mount private).
        Init::Unknown => {
            here.shared.is_none()
                && (here.master.is_some() || Path::new(&here.point) == Path::new(NETNS_RUN_DIR))
        }
    }
}

#[derive(Debug, PartialEq)]
struct Mount {
    point: String,
    /// The peer group (`shared:N`): mounts in one group propagate to each other.
    shared: Option<u64>,
    /// The peer group it receives from (`master:N`) without giving back.
    master: Option<u64>,
}

/// The mount that holds `path` in this process's mount namespace, as the kernel resolves the
/// path: `statx` names the mount (`STATX_MNT_ID_UNIQUE`) and `statmount` gives its mount point
/// and peer groups — the fields `/proc/self/mountinfo` prints, without printing every other
/// mount of the namespace (~1.4 ms of kernel time at 580 mounts on a 2-vCPU machine, against
/// two system calls). A path that does not exist is held by the mount of its nearest parent
/// that does. `None` when the kernel has no `statmount` (before Linux 6.8) or refuses it (a
/// seccomp filter): the caller reads mountinfo instead.
fn mount_of(path: &Path) -> Option<Mount> {
    let mut at = path;
    let id = loop {
        match mount_id(at) {
            Ok(id) => break id?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => at = at.parent()?,
            Err(_) => return None,
        }
    };
    statmount(id)
}

/// The unique id of the mount `path` is on (`Ok(None)`: the kernel has no unique mount ids).
fn mount_id(path: &Path) -> std::io::Result<Option<u64>> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statx fills the zeroed struct it is given; the path is NUL-terminated.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            0,
            libc::STATX_MNT_ID_UNIQUE,
            &mut stx,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((stx.stx_mask & libc::STATX_MNT_ID_UNIQUE != 0).then_some(stx.stx_mnt_id))
}

/// `statmount(2)` of mount `id` (its unique id): mount point, shared and master peer groups.
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
))]
fn statmount(id: u64) -> Option<Mount> {
    // include/uapi/linux/mount.h: `struct mnt_id_req` (version 0) and the fixed part of
    // `struct statmount`, whose strings follow it (offsets counted from its end, byte 512).
    const SYS_STATMOUNT: libc::c_long = 457;
    const STATMOUNT_MNT_BASIC: u64 = 0x2;
    const STATMOUNT_MNT_POINT: u64 = 0x10;
    const MS_SHARED: u64 = 1 << 20;
    const MS_SLAVE: u64 = 1 << 19;
    const STRINGS: usize = 512;
    #[repr(C)]
    struct MntIdReq {
        size: u32,
        spare: u32,
        mnt_id: u64,
        param: u64,
    }
    let req = MntIdReq {
        size: std::mem::size_of::<MntIdReq>() as u32,
        spare: 0,
        mnt_id: id,
        param: STATMOUNT_MNT_BASIC | STATMOUNT_MNT_POINT,
    };
    // 8-byte aligned; room for the mount point (PATH_MAX) after the fixed part.
    let mut buf = vec![0u64; (STRINGS + 4096 + 8) / 8];
    let len = buf.len() * 8;
    // SAFETY: the kernel writes at most `len` bytes into `buf` and reads `req`.
    let r = unsafe {
        libc::syscall(
            SYS_STATMOUNT,
            &req as *const MntIdReq,
            buf.as_mut_ptr(),
            len,
            0u32,
        )
    };
    if r != 0 {
        return None;
    }
    let bytes: &[u8] =
        // SAFETY: the same allocation seen as bytes.
        unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), len) };
    let u32_at = |o: usize| u32::from_ne_bytes(bytes[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_ne_bytes(bytes[o..o + 8].try_into().unwrap());
    let (size, mask) = (u32_at(0) as usize, u64_at(8));
    let want = STATMOUNT_MNT_BASIC | STATMOUNT_MNT_POINT;
    if mask & want != want || size > len {
        return None;
    }
    let (propagation, peer_group, master) = (u64_at(72), u64_at(80), u64_at(88));
    let start = STRINGS + u32_at(108) as usize;
    let point = bytes.get(start..size)?;
    let point = &point[..point.iter().position(|b| *b == 0)?];
    Some(Mount {
        point: String::from_utf8_lossy(point).into_owned(),
        shared: (propagation & MS_SHARED != 0 && peer_group != 0).then_some(peer_group),
        master: (propagation & MS_SLAVE != 0 && master != 0).then_some(master),
    })
}

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
fn statmount(_id: u64) -> Option<Mount> {
    None
}

/// The mount that holds `path` in a `/proc/PID/mountinfo` text: the last of those with the
/// longest mount point that is `path` or one of its parents (a later mount hides an earlier one
/// on the same point).
fn covering_mount(mountinfo: &str, path: &Path) -> Option<Mount> {
    let mut best: Option<Mount> = None;
    for line in mountinfo.lines() {
        let mut fields = line.split(' ');
        let Some(point) = fields.nth(4) else { continue };
        let point = point.replace("\\040", " ");
        if !path.starts_with(&point) {
            continue;
        }
        // After the mount options: optional fields up to "-".
        let optional: Vec<&str> = fields.skip(1).take_while(|f| *f != "-").collect();
        let group = |tag: &str| {
            optional
                .iter()
                .find_map(|f| f.strip_prefix(tag)?.parse().ok())
        };
        if best.as_ref().is_none_or(|b| point.len() >= b.point.len()) {
            best = Some(Mount {
                shared: group("shared:"),
                master: group("master:"),
                point,
            });
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
25 22 0:23 / /run rw,nosuid,nodev shared:12 - tmpfs tmpfs rw
300 25 0:23 /netns /run/netns rw,nosuid,nodev shared:140 - tmpfs tmpfs rw
301 300 0:4 net:[4026532400] /run/netns/a rw shared:141 - nsfs nsfs rw
";
    /// The same mounts as `ip netns exec` leaves them in its namespace: slaves of the host's.
    const SLAVE: &str = "\
522 521 254:1 / / rw,relatime master:1 - ext4 /dev/vda rw
525 522 0:23 / /run rw,nosuid,nodev master:12 - tmpfs tmpfs rw
600 525 0:23 /netns /run/netns rw,nosuid,nodev master:140 - tmpfs tmpfs rw
";

    #[test]
    fn the_mount_holding_run_netns_is_found_with_its_peer_group() {
        let dir = Path::new(NETNS_RUN_DIR);
        let host = covering_mount(HOST, dir).unwrap();
        assert_eq!(host.point, "/run/netns");
        assert_eq!(host.shared, Some(140));
        let slave = covering_mount(SLAVE, dir).unwrap();
        assert_eq!(slave.point, "/run/netns");
        assert_eq!(slave.shared, None, "a slave only receives");
        assert_eq!(slave.master, Some(140));
        // No mount of its own: the one of /run holds it.
        let without: String = HOST.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert_eq!(covering_mount(&without, dir).unwrap().point, "/run");
        // A later mount on the same point hides the earlier one.
        let over = format!("{HOST}302 25 0:99 / /run/netns rw master:7 - tmpfs tmpfs rw\n");
        assert_eq!(covering_mount(&over, dir).unwrap().shared, None);
    }

    #[test]
    fn a_copy_that_does_not_share_with_the_host_is_refused() {
        let dir = Path::new(NETNS_RUN_DIR);
        let host = covering_mount(HOST, dir).unwrap();
        let slave = covering_mount(SLAVE, dir).unwrap();
        let private = covering_mount(
            "522 521 254:1 / / rw - ext4 /dev/vda rw\n600 522 0:23 /netns /run/netns rw - tmpfs tmpfs rw\n",
            dir,
        )
        .unwrap();
        // PID 1's namespace readable: only a peer of its mount shares.
        let init = Init::Elsewhere(Some(covering_mount(HOST, dir).unwrap()));
        assert!(!stays_private(&host, &init), "a peer (shared:140)");
        assert!(stays_private(&slave, &init));
        assert!(stays_private(&private, &init));
        // Unreadable: slaves and a private /run/netns mount point are refused.
        assert!(!stays_private(&host, &Init::Unknown));
        assert!(stays_private(&slave, &Init::Unknown));
        assert!(stays_private(&private, &Init::Unknown));
        // No /run/netns mount point yet and / private (a fresh host): cannot be told.
        let fresh = covering_mount("22 1 254:1 / / rw - ext4 /dev/vda rw\n", dir).unwrap();
        assert!(!stays_private(&fresh, &Init::Unknown));
    }

    /// The kernel's answer is the one mountinfo gives: the same mount point and peer groups
    /// (shared and slave mounts alike: `/run/netns` is shared here, and under `ip netns exec`
    /// every mount is a slave, which the CLI's mount_namespace test runs through).
    #[test]
    fn the_kernel_names_the_mount_mountinfo_names() {
        let paths = [
            "/",
            "/proc",
            "/proc/sys",
            "/run",
            NETNS_RUN_DIR,
            "/run/netns/d3-not-a-namespace",
            "/sys/fs/cgroup",
        ];
        for path in paths.map(Path::new) {
            let Some(kernel) = mount_of(path) else {
                eprintln!("skipped: no statmount on this kernel (before 6.8) or refused");
                return;
            };
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            assert_eq!(
                Some(kernel),
                covering_mount(&info, path),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn in_the_hosts_own_mount_namespace_nothing_is_said() {
        // The tests run in the machine's mount namespace (or cannot read PID 1's).
        let ours = std::fs::read_link("/proc/self/ns/mnt").ok();
        let init = std::fs::read_link("/proc/1/ns/mnt").ok();
        if ours.is_some() && ours == init {
            assert_eq!(mounts_stay_private(), None);
        } else {
            eprintln!("skipped: not in PID 1's mount namespace (or cannot read it)");
        }
    }
}
