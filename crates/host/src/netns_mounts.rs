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
    // Asked of the kernel for this one mount (Linux 6.8+): a mount table is read only where
    // it cannot be (in a container this process's own has dozens of lines, ~0.3 ms to print).
    let here = match covering_mount_here(dir) {
        Some(here) => here,
        None => covering_mount(&read("self")?, dir)?,
    };
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

/// `statmount(2)`'s number: one for every architecture (new system calls share one table).
const SYS_STATMOUNT: libc::c_long = 457;
/// `statmount` request bits: the mount's id, propagation, peer group and master; its mount point.
const STATMOUNT_MNT_BASIC: u64 = 0x2;
const STATMOUNT_MNT_POINT: u64 = 0x10;
/// `struct mnt_id_req` as Linux 6.8 has it (`size`, spare, `mnt_id`, `param`).
const MNT_ID_REQ_SIZE_VER0: u32 = 24;
/// Where `struct statmount`'s strings begin (its fixed part is 512 bytes in every version).
const STATMOUNT_STR: usize = 512;
const MS_SLAVE: u64 = 1 << 19;
const MS_SHARED: u64 = 1 << 20;

/// The mount holding `path` in this process's mount namespace, as [`covering_mount`] finds it
/// in `/proc/self/mountinfo`, asked of the kernel instead: `statx` names the mount under the
/// path (or under its nearest existing parent), `statmount` gives its peer group, master and
/// mount point. `None` where the kernel cannot tell (before Linux 6.8, a seccomp filter).
fn covering_mount_here(path: &Path) -> Option<Mount> {
    use std::os::unix::ffi::OsStrExt;
    let mut at = path;
    let mnt_id = loop {
        let c = std::ffi::CString::new(at.as_os_str().as_bytes()).ok()?;
        // SAFETY: an all-zero statx is a valid value for the kernel to fill.
        let mut stx: libc::statx = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a NUL-terminated path, `stx` ours to fill.
        let rc = unsafe {
            libc::statx(
                libc::AT_FDCWD,
                c.as_ptr(),
                libc::AT_STATX_DONT_SYNC,
                libc::STATX_MNT_ID_UNIQUE,
                &mut stx,
            )
        };
        if rc == 0 {
            if stx.stx_mask & libc::STATX_MNT_ID_UNIQUE == 0 {
                return None;
            }
            break stx.stx_mnt_id;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOENT) {
            return None;
        }
        at = at.parent()?;
    };
    let request: [u64; 3] = [
        u64::from(MNT_ID_REQ_SIZE_VER0),
        mnt_id,
        STATMOUNT_MNT_BASIC | STATMOUNT_MNT_POINT,
    ];
    let mut buf = vec![0u64; 1024];
    let bytes = buf.len() * 8;
    // SAFETY: `request` is a `struct mnt_id_req` of the size it says; `buf` is writable for
    // `bytes` bytes and 8-aligned as `struct statmount` needs.
    let rc = unsafe {
        libc::syscall(
            SYS_STATMOUNT,
            request.as_ptr(),
            buf.as_mut_ptr(),
            bytes,
            0u32,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: `buf` is `bytes` long and initialised (zeroes, then what the kernel wrote).
    let all = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), bytes) };
    let u64_at = |o: usize| u64::from_ne_bytes(all[o..o + 8].try_into().expect("8 bytes"));
    let u32_at = |o: usize| u32::from_ne_bytes(all[o..o + 4].try_into().expect("4 bytes"));
    let mask = u64_at(8);
    if mask & (STATMOUNT_MNT_BASIC | STATMOUNT_MNT_POINT)
        != STATMOUNT_MNT_BASIC | STATMOUNT_MNT_POINT
    {
        return None;
    }
    let (propagation, peer_group, master) = (u64_at(72), u64_at(80), u64_at(88));
    let all = &all[..(u32_at(0) as usize).min(bytes)];
    let start = STATMOUNT_STR.checked_add(u32_at(108) as usize)?;
    let text = all.get(start..)?;
    let point = &text[..text.iter().position(|b| *b == 0)?];
    Some(Mount {
        point: String::from_utf8_lossy(point).into_owned(),
        shared: (propagation & MS_SHARED != 0).then_some(peer_group),
        master: (propagation & MS_SLAVE != 0).then_some(master),
    })
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

    /// The kernel's answer for one mount is the mount table's: for `/run/netns` (or the mount
    /// under it), `/`, `/proc`, a path that does not exist, and a mount point with a space in
    /// its name, in a mount namespace of the test's own with a shared, a slave and a private
    /// mount (a thread of its own: `unshare` is per thread).
    #[test]
    fn statmount_says_what_mountinfo_says() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let check = |path: &Path| {
            let info = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
            let Some(asked) = covering_mount_here(path) else {
                eprintln!("skipped: no statmount here");
                return;
            };
            assert_eq!(
                Some(asked),
                covering_mount(&info, path),
                "{}",
                path.display()
            );
        };
        check(Path::new(NETNS_RUN_DIR));
        check(Path::new("/"));
        check(Path::new("/proc"));
        check(Path::new("/run/netns/r3-no-such-namespace/deeper"));
        std::thread::spawn(move || {
            use nix::mount::{mount, MsFlags};
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
            let none: Option<&str> = None;
            mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let spaced = dir.path().join("a b");
            let (shared, slave) = (dir.path().join("shared"), spaced.join("slave"));
            std::fs::create_dir_all(&shared).unwrap();
            std::fs::create_dir_all(&spaced).unwrap();
            for at in [&shared, &spaced] {
                mount(Some("tmpfs"), at, Some("tmpfs"), MsFlags::empty(), none).unwrap();
            }
            std::fs::create_dir_all(&slave).unwrap();
            mount(none, &shared, none, MsFlags::MS_SHARED, none).unwrap();
            // A bind of a shared mount is its peer; made a slave, it receives from that group.
            mount(Some(&shared), &slave, none, MsFlags::MS_BIND, none).unwrap();
            mount(none, &slave, none, MsFlags::MS_SLAVE, none).unwrap();
            let info = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
            for path in [&shared, &spaced, &slave, &slave.join("x")] {
                let Some(asked) = covering_mount_here(path) else {
                    eprintln!("skipped: no statmount here");
                    return;
                };
                assert_eq!(
                    Some(&asked),
                    covering_mount(&info, path).as_ref(),
                    "{}",
                    path.display()
                );
                assert_eq!(
                    asked.point,
                    path.display().to_string().trim_end_matches("/x")
                );
            }
            let peer = covering_mount_here(&shared).unwrap();
            assert!(peer.shared.is_some() && peer.master.is_none(), "{peer:?}");
            let receiver = covering_mount_here(&slave).unwrap();
            assert_eq!((receiver.shared, receiver.master), (None, peer.shared));
            let private = covering_mount_here(&spaced).unwrap();
            assert_eq!((private.shared, private.master), (None, None));
            for at in [&slave, &spaced, &shared] {
                nix::mount::umount2(at, nix::mount::MntFlags::MNT_DETACH).unwrap();
            }
        })
        .join()
        .unwrap();
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
