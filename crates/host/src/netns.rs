//! Named network namespaces exactly as `ip netns` makes them, so `ip netns list`, `ip -n NAME`
//! and `ip netns exec` see edgenet's nodes.
//!
//! A named namespace is a bind mount of a namespace file onto `/run/netns/NAME`, and
//! `/run/netns` is a shared mount point so that the bind mounts propagate to every mount
//! namespace (iproute2 does the same). Only the *network* namespace of a thread is ever
//! switched here: `ip netns exec` would also put the command in a slave mount namespace where
//! namespaces it creates stay invisible to everybody else (see NOTES.md).

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

use crate::error::HostError;

/// Where `ip netns` keeps named network namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Serialises the one-time "make /run/netns a shared mount point" step between threads of
/// this process, so two concurrent creates do not stack two bind mounts.
static RUN_DIR_SETUP: Mutex<()> = Mutex::new(());

/// The calling thread's own network namespace file.
const OWN_NETNS: &str = "/proc/thread-self/ns/net";

/// An open network namespace: holding the file keeps the namespace alive.
#[derive(Debug)]
pub struct NetNs {
    /// The name (`ip netns` name) or path it was opened by, for messages.
    label: String,
    path: PathBuf,
    file: Arc<NsFile>,
}

/// A namespace file and its identity, asked of the kernel once (an `fstat`, no path).
#[derive(Debug)]
struct NsFile {
    file: File,
    id: OnceLock<(u64, u64)>,
}

impl NsFile {
    fn new(file: File) -> Arc<Self> {
        Arc::new(NsFile {
            file,
            id: OnceLock::new(),
        })
    }

    fn id(&self, label: &str) -> Result<(u64, u64), HostError> {
        if let Some(id) = self.id.get() {
            return Ok(*id);
        }
        let meta = self
            .file
            .metadata()
            .map_err(|e| HostError::new("stat netns", label, e))?;
        Ok(*self.id.get_or_init(|| (meta.dev(), meta.ino())))
    }
}

thread_local! {
    /// The calling thread's network namespace, once asked: a handle on it (to come back to
    /// after a visit) and its identity, so that neither costs a walk of
    /// `/proc/thread-self/ns/net` (and an nsfs dentry and inode made and freed) again. Every
    /// move of a thread between network namespaces goes through this module ([`NetNs::run`],
    /// [`create`], [`enter_for_good`], [`unshare_thread`]), which keeps it up to date; `None`
    /// until first asked, and while [`create`] has the thread in a namespace not named yet.
    static HERE: RefCell<Option<Arc<NsFile>>> = const { RefCell::new(None) };
}

/// The calling thread's network namespace (see [`HERE`]).
fn here() -> Result<Arc<NsFile>, HostError> {
    here_io().map_err(|e| HostError::new("open netns", OWN_NETNS, e))
}

fn here_io() -> io::Result<Arc<NsFile>> {
    if let Some(ns) = HERE.with_borrow(|h| h.clone()) {
        // A move behind this module's back would leave a wrong answer here: debug builds (the
        // tests) check every answer against the kernel.
        #[cfg(debug_assertions)]
        if let (Ok(now), Ok(kept)) = (std::fs::metadata(OWN_NETNS), ns.id(OWN_NETNS)) {
            assert_eq!(
                (now.dev(), now.ino()),
                kept,
                "the thread changed network namespace without edgenet_host::netns"
            );
        }
        return Ok(ns);
    }
    let ns = NsFile::new(File::open(OWN_NETNS)?);
    HERE.set(Some(Arc::clone(&ns)));
    Ok(ns)
}

impl NetNs {
    /// Opens the named namespace `/run/netns/NAME`.
    pub fn open(name: &str) -> Result<Self, HostError> {
        check_name(name, "open netns")?;
        Self::open_labelled(name.to_string(), Path::new(NETNS_RUN_DIR).join(name))
    }

    /// Opens a namespace by path, e.g. `/proc/PID/ns/net` (the lab runs a deploy "inside a
    /// machine" this way) or a bind-mounted namespace file anywhere.
    pub fn open_path(path: &Path) -> Result<Self, HostError> {
        Self::open_labelled(path.display().to_string(), path.to_path_buf())
    }

    /// The calling thread's own network namespace (e.g. to create a veth peer back in it
    /// from a handle opened elsewhere): the handle the thread keeps on it, shared.
    pub fn current() -> Result<Self, HostError> {
        Ok(NetNs {
            label: OWN_NETNS.to_string(),
            path: PathBuf::from(OWN_NETNS),
            file: here()?,
        })
    }

    fn open_labelled(label: String, path: PathBuf) -> Result<Self, HostError> {
        let file = File::open(&path).map_err(|e| HostError::new("open netns", &label, e))?;
        if !is_netns(&file) {
            return Err(HostError::new(
                "open netns",
                &label,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a network namespace", path.display()),
                ),
            ));
        }
        Ok(NetNs {
            label,
            path,
            file: NsFile::new(file),
        })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Identity of the namespace (device, inode): equal for two handles on one namespace.
    pub fn id(&self) -> Result<(u64, u64), HostError> {
        self.file.id(&self.label)
    }

    /// Runs `f` with the calling thread inside this namespace and puts the thread back into
    /// the namespace it was in afterwards, also when `f` panics (netavark does the same).
    /// Netlink handles and sockets opened by `f` belong to this namespace for their whole
    /// life. Switching the calling thread costs two `setns`; a thread of its own used to cost
    /// a clone, a stack, a malloc arena and their page faults on every visit.
    pub fn run<T, F>(&self, f: F) -> Result<T, HostError>
    where
        F: FnOnce() -> T,
    {
        let _back = Visit::enter(&self.file, &self.label)?;
        Ok(f())
    }
}

/// The calling thread inside another network namespace; dropping it puts the thread back.
struct Visit {
    home: Arc<NsFile>,
}

impl Visit {
    /// Enters `target`, remembering the thread's own namespace.
    fn enter(target: &Arc<NsFile>, label: &str) -> Result<Self, HostError> {
        let home = Self::home(label)?;
        setns(target.file.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| HostError::new("enter netns", label, e.into()))?;
        HERE.set(Some(Arc::clone(target)));
        Ok(Visit { home })
    }

    /// The calling thread's namespace, to come back to.
    fn home(label: &str) -> Result<Arc<NsFile>, HostError> {
        here_io().map_err(|e| HostError::new("open own netns to visit", label, e))
    }
}

impl Drop for Visit {
    fn drop(&mut self) {
        if let Err(e) = setns(self.home.file.as_fd(), CloneFlags::CLONE_NEWNET) {
            // Going on would apply the rest of the run in the wrong namespace.
            eprintln!("edgenet: cannot return to the thread's own network namespace: {e}");
            std::process::abort();
        }
        HERE.set(Some(Arc::clone(&self.home)));
    }
}

/// Moves the calling thread into `ns` for good (no way back kept): for a thread of one's own,
/// or a process before it starts any thread.
pub fn enter_for_good(ns: &NetNs) -> Result<(), HostError> {
    setns(ns.file.file.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| HostError::new("enter netns", &ns.label, e.into()))?;
    HERE.set(Some(Arc::clone(&ns.file)));
    Ok(())
}

/// Moves the calling thread into a new network namespace of its own, for good (`unshare`): it
/// goes away with the thread unless something else holds it.
pub fn unshare_thread() -> Result<(), HostError> {
    HERE.set(None);
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| HostError::new("unshare netns", "", e.into()))
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.file.as_fd()
    }
}

/// Creates the named namespace `/run/netns/NAME` (as `ip netns add NAME`); `EEXIST` when a
/// namespace of that name exists. A stale placeholder file left by an interrupted create is
/// replaced, so a second attempt converges (a name belongs to one deployment, which holds
/// its state lock, so such a file is never another creator's work in progress).
pub fn create(name: &str) -> Result<(), HostError> {
    let op = "create netns";
    check_name(name, op)?;
    ensure_run_dir().map_err(|e| HostError::new(op, name, e))?;
    let path = Path::new(NETNS_RUN_DIR).join(name);
    let placeholder = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o000)
            .open(&path)
    };
    match placeholder() {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if exists(name) {
                return Err(HostError::new(op, name, e));
            }
            std::fs::remove_file(&path).map_err(|e| HostError::new(op, name, e))?;
            placeholder().map_err(|e| HostError::new(op, name, e))?;
        }
        Err(e) => return Err(HostError::new(op, name, e)),
    }
    // unshare() moves only the calling thread: it makes the namespace, pins it with the bind
    // mount and goes back to its own (the visit's drop), leaving the mount as its only holder.
    let made = Visit::home(name).and_then(|home| {
        let visit = Visit { home };
        // In a namespace with no handle yet: asked meanwhile, the kernel answers (the visit's
        // drop names the thread's own again).
        HERE.set(None);
        let made = unshare(CloneFlags::CLONE_NEWNET).and_then(|()| {
            mount(
                Some("/proc/thread-self/ns/net"),
                &path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        });
        drop(visit);
        made.map_err(|e| HostError::new(op, name, e.into()))
    });
    let outcome = match made {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let _ = std::fs::remove_file(&path);
    Err(outcome)
}

/// Deletes the named namespace (as `ip netns del NAME`). Returns whether anything was there;
/// a missing namespace is fine. The namespace itself lives on while a process or an open
/// handle still uses it; its links go away with it.
pub fn delete(name: &str) -> Result<bool, HostError> {
    let op = "delete netns";
    check_name(name, op)?;
    let path = Path::new(NETNS_RUN_DIR).join(name);
    match umount2(&path, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point (a stale placeholder); ENOENT: nothing there.
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(HostError::new(op, name, e.into())),
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(HostError::new(op, name, e)),
    }
}

/// Gives the named namespace `from` the name `to`, in place: the namespace, its links and
/// whatever runs in it stay (a bind mount under the new name, then the old one goes).
/// `EEXIST` when `to` is a live namespace already.
pub fn rename(from: &str, to: &str) -> Result<(), HostError> {
    let op = "rename netns";
    let object = format!("{from} to {to}");
    check_name(from, op)?;
    check_name(to, op)?;
    if !exists(from) {
        return Err(HostError::new(
            op,
            object,
            io::Error::from_raw_os_error(libc::ENOENT),
        ));
    }
    if exists(to) {
        return Err(HostError::new(
            op,
            object,
            io::Error::from_raw_os_error(libc::EEXIST),
        ));
    }
    let (src, dst) = (
        Path::new(NETNS_RUN_DIR).join(from),
        Path::new(NETNS_RUN_DIR).join(to),
    );
    // A stale placeholder of an interrupted create or rename is replaced.
    let _ = std::fs::remove_file(&dst);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(&dst)
        .map_err(|e| HostError::new(op, &object, e))?;
    if let Err(e) = mount(
        Some(&src),
        &dst,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        let _ = std::fs::remove_file(&dst);
        return Err(HostError::new(op, object, e.into()));
    }
    delete(from).map(|_| ())
}

/// Whether `/run/netns/NAME` is a live network namespace (not a stale placeholder file).
pub fn exists(name: &str) -> bool {
    if check_name(name, "").is_err() {
        return false;
    }
    File::open(Path::new(NETNS_RUN_DIR).join(name))
        .map(|f| is_netns(&f))
        .unwrap_or(false)
}

/// Whether `/run/netns/NAME` is a stale placeholder: a plain file with no namespace mounted
/// on it, as a create interrupted between making the file and mounting the namespace leaves.
/// [`delete`] removes it.
pub fn is_placeholder(name: &str) -> bool {
    if check_name(name, "").is_err() {
        return false;
    }
    let path = Path::new(NETNS_RUN_DIR).join(name);
    std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file()) && !exists(name)
}

/// The identity (device, inode) of the calling thread's network namespace.
pub fn current_id() -> Result<(u64, u64), HostError> {
    here()?.id(OWN_NETNS)
}

/// [`current_id`] with the bare OS error.
pub(crate) fn current_id_io() -> io::Result<(u64, u64)> {
    here_io()?
        .id(OWN_NETNS)
        .map_err(|e| io::Error::new(e.io_error().kind(), e.to_string()))
}

/// Where the network namespace with identity `id` can be entered, if it is still alive and
/// reachable: a name under `/run/netns`, or PID 1's (the host's own). `None` when neither holds
/// it (gone with a reboot, or held only by a process).
pub fn find_by_id(id: (u64, u64)) -> Option<PathBuf> {
    let same = |path: &Path| {
        File::open(path)
            .ok()
            .filter(is_netns)
            .and_then(|f| f.metadata().ok())
            .is_some_and(|m| (m.dev(), m.ino()) == id)
    };
    let host = Path::new("/proc/1/ns/net");
    if same(host) {
        return Some(host.to_path_buf());
    }
    list()
        .ok()?
        .into_iter()
        .map(|name| Path::new(NETNS_RUN_DIR).join(name))
        .find(|path| same(path))
}

/// Names under `/run/netns`, sorted, as `ip netns list` shows them (stale placeholders
/// included: check with [`exists`]).
pub fn list() -> Result<Vec<String>, HostError> {
    let entries = match std::fs::read_dir(NETNS_RUN_DIR) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(HostError::new("list netns in", NETNS_RUN_DIR, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| HostError::new("list netns in", NETNS_RUN_DIR, e))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Runs `f` with the calling thread in the named namespace; see [`NetNs::run`].
pub fn run_in<T, F>(name: &str, f: F) -> Result<T, HostError>
where
    F: FnOnce() -> T,
{
    NetNs::open(name)?.run(f)
}

/// iproute2's rule: a plain file name.
fn check_name(name: &str, op: &str) -> Result<(), HostError> {
    let bad =
        name.is_empty() || name == "." || name == ".." || name.contains('/') || name.len() > 255;
    if bad {
        return Err(HostError::new(
            op,
            name,
            io::Error::new(io::ErrorKind::InvalidInput, "invalid netns name"),
        ));
    }
    Ok(())
}

fn is_netns(file: &File) -> bool {
    fstatfs(file.as_fd())
        .map(|s| s.filesystem_type() == NSFS_MAGIC)
        .unwrap_or(false)
}

/// Creates `/run/netns` and makes it a shared mount point, bind-mounting it onto itself
/// first when it is not a mount point yet (iproute2's `netns_add` does the same), so named
/// namespaces propagate to all mount namespaces that share it.
fn ensure_run_dir() -> io::Result<()> {
    let _guard = RUN_DIR_SETUP.lock().unwrap_or_else(|p| p.into_inner());
    match std::fs::create_dir(NETNS_RUN_DIR) {
        Ok(()) => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(NETNS_RUN_DIR, std::fs::Permissions::from_mode(0o755))?;
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let shared = || {
        mount(
            None::<&str>,
            NETNS_RUN_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => {
            mount(
                Some(NETNS_RUN_DIR),
                NETNS_RUN_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            shared()?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_plain_file_names_are_refused() {
        for bad in ["", ".", "..", "a/b", "../etc"] {
            let e = check_name(bad, "create netns").unwrap_err();
            assert_eq!(e.io_error().kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(!exists(bad));
        }
        assert!(check_name("m1-ledge", "create netns").is_ok());
    }

    #[test]
    fn a_regular_file_is_not_a_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("placeholder");
        std::fs::write(&path, b"").unwrap();
        let e = NetNs::open_path(&path).unwrap_err();
        assert!(e.to_string().contains("is not a network namespace"), "{e}");
    }
}
