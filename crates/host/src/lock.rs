//! edgenet's one lock implementation: an advisory `flock` on a file or directory, taken
//! exclusively with a bounded wait (the deployment state directory, the lab directory), or
//! waited for without being taken (a reader that must not act while a run holds it).

use std::fs::{File, TryLockError};
use std::io;
use std::time::{Duration, Instant};

/// How often a waiter tries again.
const RETRY: Duration = Duration::from_millis(50);

/// Why a lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another holder kept it for the whole wait (measured from the caller's `start`).
    Busy {
        waited: Duration,
    },
    Io(io::Error),
}

/// Takes an exclusive `flock` on `file`, trying again until `timeout` has passed since
/// `start` (a zero timeout: one try). Released when the file is closed or unlocked.
pub fn exclusive(file: &File, start: Instant, timeout: Duration) -> Result<(), LockError> {
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {
                let waited = start.elapsed();
                if waited >= timeout {
                    return Err(LockError::Busy { waited });
                }
                std::thread::sleep((timeout - waited).min(RETRY));
            }
            Err(TryLockError::Error(e)) => return Err(LockError::Io(e)),
        }
    }
}

/// Waits (up to `timeout`) until nobody holds `file` exclusively, without keeping any lock;
/// returns whether somebody held it meanwhile.
pub fn wait_until_free(file: &File, timeout: Duration) -> bool {
    let start = Instant::now();
    let mut held = false;
    loop {
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                return held;
            }
            Err(TryLockError::WouldBlock) if start.elapsed() < timeout => {
                held = true;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => return held,
        }
    }
}

/// Where edgenet keeps what outlives one run but not a reboot (see
/// [`network_namespace_key`]).
pub const RUN_DIR: &str = "/run/edgenet";

/// The calling thread's network namespace.
const OWN_NETNS: &str = "/proc/thread-self/ns/net";

/// A name for the calling thread's network namespace, from its inode (`netns-DEV-INO`): files
/// about the namespace under [`RUN_DIR`] carry it.
pub fn network_namespace_key() -> io::Result<String> {
    let (dev, ino) = crate::netns::current_id_io()?;
    Ok(format!("netns-{dev}-{ino}"))
}

/// The cookie of the calling thread's network namespace (`SO_NETNS_COOKIE` of a socket made
/// in it, Linux ≥ 5.14): unlike its inode, never given to another namespace until the next
/// boot. `None` on an older kernel.
pub fn network_namespace_cookie() -> Option<u64> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain socket(2); the descriptor is owned (and closed) at once.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a new descriptor of ours.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: the option's value is a u64, `len` its size.
    let got = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&raw mut cookie).cast(),
            &mut len,
        )
    };
    (got == 0 && len as usize == std::mem::size_of::<u64>()).then_some(cookie)
}

/// `SO_NETNS_COOKIE` (asm-generic/socket.h; x86, arm and the others that use it).
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The first line of a note of [`write_namespace_note`]: the namespace's cookie.
const COOKIE_LINE: &str = "netns-cookie ";

/// Where the note `suffix` about the calling thread's network namespace is kept:
/// `/run/edgenet/netns-DEV-INO.<suffix>` (see [`network_namespace_key`]).
pub fn namespace_note_path(suffix: &str) -> io::Result<std::path::PathBuf> {
    Ok(std::path::Path::new(RUN_DIR).join(format!("{}.{suffix}", network_namespace_key()?)))
}

/// Writes `body` as a note about the calling thread's network namespace at `path` (from
/// [`namespace_note_path`]), headed by the namespace's cookie, so that
/// [`read_namespace_note`] tells it from a note a deleted namespace left under the same inode.
pub fn write_namespace_note(path: &std::path::Path, body: &str) -> io::Result<()> {
    std::fs::create_dir_all(RUN_DIR)?;
    let text = match network_namespace_cookie() {
        Some(cookie) => format!("{COOKIE_LINE}{cookie}\n{body}"),
        None => body.to_string(),
    };
    std::fs::write(path, text)
}

/// The body of the note at `path` when it is this namespace's (written by
/// [`write_namespace_note`] in the calling thread's namespace): `None` when there is none, or
/// when it is another namespace's — one that had the same inode and was deleted without its
/// note, or one without the cookie edgenet writes — which is deleted then, never taken as
/// this namespace's. On a kernel without namespace cookies a note has no cookie line and is
/// taken as it is.
pub fn read_namespace_note(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let cookie = network_namespace_cookie();
    let body = match (text.split_once('\n'), cookie) {
        (Some((first, body)), Some(cookie))
            if first.strip_prefix(COOKIE_LINE) == Some(cookie.to_string().as_str()) =>
        {
            Some(body)
        }
        (_, None) if !text.starts_with(COOKIE_LINE) => Some(text.as_str()),
        _ => None,
    };
    match body {
        Some(body) => Some(body.to_string()),
        None => {
            tracing::debug!(
                "{}: a note of another network namespace (same inode, cookie not {cookie:?}): deleted",
                path.display()
            );
            let _ = std::fs::remove_file(path);
            None
        }
    }
}

/// Deletes the notes about the network namespace whose file (`/run/netns/NAME`, or an open
/// handle's) has device `dev` and inode `ino` (see [`crate::netns::NetNs::id`]): what deletes a
/// namespace calls it first (the inode may be given to the next namespace). Returns how many
/// went.
pub fn forget_namespace_notes(dev: u64, ino: u64) -> usize {
    let prefix = format!("netns-{dev}-{ino}.");
    let Ok(entries) = std::fs::read_dir(RUN_DIR) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// The inode of the initial PID namespace (`PROC_PID_INIT_INO`).
const INITIAL_PID_NS_INO: u64 = 0xEFFF_FFFC;

/// Deletes the notes under [`RUN_DIR`] of network namespaces that are gone (B26 N1: a note of a
/// namespace deleted without an edgenet run in it stayed until the reboot). A namespace is
/// alive while a process (any thread) is in it, a file of it is open, or it is bind-mounted
/// (in any mount namespace); the note of an inode that none of these names is of a namespace
/// that no longer exists, and goes (a later namespace given that inode would have found it
/// another namespace's and deleted it itself). Not done from a PID namespace other than the
/// initial one: it does not see every process. A namespace kept alive only by a socket made in
/// it is not seen: its note goes too, and what it was evidence of (forwarding's value before an
/// edgenet deployment there) is then unknown, which leaves forwarding on, as without a note.
/// Returns how many notes went.
pub fn forget_notes_of_gone_namespaces() -> usize {
    use std::collections::BTreeSet;
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(RUN_DIR) else {
        return 0;
    };
    let notes: Vec<(std::path::PathBuf, (u64, u64))> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let (key, _) = name.strip_prefix("netns-")?.split_once('.')?;
            let (dev, ino) = key.split_once('-')?;
            Some((e.path(), (dev.parse().ok()?, ino.parse().ok()?)))
        })
        .collect();
    let own = crate::netns::current_id_io().ok();
    let mut unseen: BTreeSet<(u64, u64)> = notes
        .iter()
        .map(|(_, id)| *id)
        .filter(|id| Some(*id) != own)
        .collect();
    if unseen.is_empty() {
        return 0;
    }
    let in_initial_pid_ns =
        std::fs::metadata("/proc/self/ns/pid").is_ok_and(|m| m.ino() == INITIAL_PID_NS_INO);
    if !in_initial_pid_ns {
        return 0;
    }
    let Some(own) = own else {
        return 0;
    };
    // Namespace files are all on nsfs: one device; a bind mount shows as `net:[INO]`.
    let nsfs_dev = own.0;
    let seen = |ino: u64, unseen: &mut BTreeSet<(u64, u64)>| {
        unseen.remove(&(nsfs_dev, ino));
        unseen.is_empty()
    };
    let mounted = |mountinfo: &str, unseen: &mut BTreeSet<(u64, u64)>| -> bool {
        for line in mountinfo.lines() {
            let Some(ino) = line
                .split_whitespace()
                .nth(3)
                .and_then(|root| root.strip_prefix("net:["))
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|i| i.parse().ok())
            else {
                continue;
            };
            if seen(ino, unseen) {
                return true;
            }
        }
        false
    };
    // The cheap looks first: this mount namespace's bind mounts (/run/netns), each process.
    if mounted(
        &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
        &mut unseen,
    ) {
        return 0;
    }
    let pids: Vec<u32> = crate::procfs::pids().collect();
    for pid in &pids {
        if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) {
            if m.dev() == nsfs_dev && seen(m.ino(), &mut unseen) {
                return 0;
            }
        }
    }
    // Then threads in other namespaces, open namespace files, other mount namespaces' mounts.
    let own_mnt = std::fs::metadata("/proc/self/ns/mnt").map(|m| m.ino()).ok();
    let mut mount_namespaces = BTreeSet::new();
    for pid in &pids {
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(m) = std::fs::metadata(task.path().join("ns/net")) {
                if m.dev() == nsfs_dev && seen(m.ino(), &mut unseen) {
                    return 0;
                }
            }
        }
        for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let ino = std::fs::read_link(fd.path()).ok().and_then(|t| {
                t.to_str()?
                    .strip_prefix("net:[")?
                    .strip_suffix(']')?
                    .parse()
                    .ok()
            });
            if let Some(ino) = ino {
                if seen(ino, &mut unseen) {
                    return 0;
                }
            }
        }
        let mnt = std::fs::metadata(format!("/proc/{pid}/ns/mnt"))
            .map(|m| m.ino())
            .ok();
        if mnt.is_some() && mnt != own_mnt && mount_namespaces.insert(mnt) {
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
            if mounted(&info, &mut unseen) {
                return 0;
            }
        }
    }
    notes
        .iter()
        .filter(|(_, id)| unseen.contains(id))
        .filter(|(path, _)| {
            tracing::debug!(
                "{}: a note of a network namespace that is gone: deleted",
                path.display()
            );
            std::fs::remove_file(path).is_ok()
        })
        .count()
}

/// Takes the exclusive lock of the calling thread's network namespace, waiting up to
/// `timeout`: what deploys in one namespace choose from what they see there (the automatic
/// subnet) is chosen one at a time. The lock is a `flock` on the namespace's own file
/// (`/proc/thread-self/ns/net`, the same inode for every process in it), so it needs no file
/// of its own and leaves nothing behind. Released when the returned file is dropped.
pub fn network_namespace(timeout: Duration) -> Result<File, LockError> {
    let file = File::open(OWN_NETNS).map_err(LockError::Io)?;
    exclusive(&file, Instant::now(), timeout)?;
    Ok(file)
}

/// Whether somebody holds `file` exclusively right now (one try, nothing kept).
pub fn is_held(file: &File) -> bool {
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(_)) => false,
    }
}

/// Who holds the exclusive lock of the calling thread's network namespace (see
/// [`network_namespace`]), e.g. `edgenet deploy (pid 1234)`: the lock is a `flock` on the
/// namespace's file, so the holder is read from the kernel's table of locks (`/proc/locks`,
/// pids as this process's PID namespace sees them) and its command line. `None` when it cannot
/// be told (no /proc, the holder gone meanwhile, or in a PID namespace that does not see it).
pub fn network_namespace_holder() -> Option<String> {
    let (dev, ino) = crate::netns::current_id().ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = flock_holder(&locks, dev, ino)?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    Some(format!("{} (pid {pid})", command_words(&cmdline)))
}

/// The pid of the exclusive `flock` on the file `dev`/`ino` in a `/proc/locks` text (lines like
/// `1: FLOCK  ADVISORY  WRITE 1234 00:04:4026531840 0 EOF`; waiters, `1: -> FLOCK …`, skipped).
fn flock_holder(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let file = format!(
        "{:02x}:{:02x}:{ino}",
        nix::libc::major(dev),
        nix::libc::minor(dev)
    );
    locks.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [_, "FLOCK", _, "WRITE", pid, f, ..] if *f == file => pid.parse().ok(),
            _ => None,
        }
    })
}

/// A holder's command in a few words: its program's name and the edgenet command it runs
/// (`edgenet deploy`), or the program alone.
fn command_words(cmdline: &[u8]) -> String {
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let Some(program) = args.first() else {
        return "a process".to_string();
    };
    let name = program.rsplit('/').next().unwrap_or(program).to_string();
    match args[1..]
        .iter()
        .find(|a| matches!(a.as_str(), "deploy" | "remove" | "lab"))
    {
        Some(command) => format!("{name} {command}"),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_network_namespace_lock_excludes_a_second_holder_in_the_same_namespace() {
        let first = network_namespace(Duration::ZERO).unwrap();
        // Another open of the namespace's file (another process would do the same).
        let second = File::open(OWN_NETNS).unwrap();
        assert!(is_held(&second));
        assert!(matches!(
            network_namespace(Duration::from_millis(60)),
            Err(LockError::Busy { .. })
        ));
        drop(first);
        assert!(!is_held(&second));
        assert!(network_namespace_key().unwrap().starts_with("netns-"));
    }

    #[test]
    fn a_second_holder_waits_then_gives_up_and_a_waiter_sees_it_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = File::create(&path).unwrap();
        exclusive(&first, Instant::now(), Duration::ZERO).unwrap();
        let second = File::open(&path).unwrap();
        let start = Instant::now();
        match exclusive(&second, start, Duration::from_millis(120)) {
            Err(LockError::Busy { waited }) => assert!(waited >= Duration::from_millis(120)),
            other => panic!("{other:?}"),
        }
        assert!(wait_until_free(&second, Duration::from_millis(60)));
        assert!(is_held(&second));
        first.unlock().unwrap();
        assert!(!is_held(&second));
        assert!(!wait_until_free(&second, Duration::from_millis(60)));
        exclusive(&second, Instant::now(), Duration::ZERO).unwrap();
    }
}
