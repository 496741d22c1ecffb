//! Reading back the files edgenet keeps (state, node files, VM seeds): all small, all regular
//! files it wrote itself. Anything else in their place — a FIFO (opening it would hang), a
//! link to a device (the read would never end), something far larger than edgenet writes —
//! is said, not read.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use edgenet_host::small_file::file_kind;

/// The contents of `path`, or `None` when it does not exist; an error when it is not a regular
/// file or holds more than `cap` bytes.
pub fn read(path: &Path, cap: u64) -> io::Result<Option<Vec<u8>>> {
    use std::os::unix::fs::OpenOptionsExt;
    // Looked at before it is opened (opening a FIFO would block), without following a link.
    let size = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => m.len(),
        Ok(m) => {
            return Err(io::Error::other(format!(
                "not a regular file ({})",
                file_kind(&m).unwrap_or("not a file")
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // Neither a link nor a FIFO put there since the look: never followed, never waited on.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // Sized from the stat (one read instead of one per doubling); a file that grew since is
    // still read to its end, up to the cap.
    let mut bytes = Vec::with_capacity(size.min(cap) as usize + 1);
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(io::Error::other(format!(
            "larger than {} KiB, more than edgenet ever writes there",
            cap >> 10
        )));
    }
    Ok(Some(bytes))
}

/// What is at `path` when it is there but not a regular file (looked at without following a
/// link or opening it): `Some("a directory")`, …; `None` for a regular file or nothing.
pub fn odd(path: &Path) -> Option<&'static str> {
    std::fs::symlink_metadata(path)
        .ok()
        .and_then(|m| file_kind(&m))
}

/// What a sweep ([`sweep_node_dirs`], [`sweep_node_dir`], [`sweep_vm_dir`]) did: the paths it deleted (a directory emptied and deleted stands
/// for what was in it), one line per directory it left because something edgenet does not
/// write is in it (naming what and why), and what failed.
#[derive(Debug, Default)]
pub struct Swept {
    pub removed: Vec<PathBuf>,
    pub left: Vec<String>,
    pub errors: Vec<String>,
}

/// The layouts of the directories edgenet writes under a state directory (B26 F6): only these
/// names, with what edgenet could have put there, are ever deleted; a directory is deleted
/// only once it is empty, and one that holds anything else is left as it is, said.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    /// `nodes/`: one directory per node.
    Nodes,
    /// `nodes/<node>/`: the node's files (see [`crate::node::files`]).
    Node,
    /// `vm/`: the accelerator probe's files and one directory per VM, `<node>-<id>`.
    Vms,
    /// `vm/` of a state directory that records no deployment: the probe's files alone.
    VmsOfNoDeployment,
    /// `vm/<node>-<id>/`: the files of [`edgenet_host::qemu::VmFiles`] and the launch spec.
    Vm,
    /// `vm/<node>-<id>/seed/`: the cloud-init seed's files.
    Seed,
}

/// What an entry of a [`Layout`] directory is.
enum Entry {
    /// A file of edgenet's, deleted.
    Own,
    /// A directory of edgenet's layout: swept in turn.
    Dir(Layout),
    /// Not edgenet's (a name it does not write there, or not what it writes): left, with why.
    Foreign(&'static str),
}

/// The `nodes/` and `vm/` directories of `state_dir`, swept: edgenet's files in them deleted,
/// every directory emptied so deleted, anything else left where it is (never a recursive
/// delete: a mistyped `--state-dir` or a file an operator put beside the node's files loses
/// nothing). A VM directory whose QEMU still runs is left whole. `vm_dirs`: the VM
/// directories (`vm/<node>-<id>`) are the deployment's, swept too; without it (no deployment
/// recorded: they are a lost deployment's VMs, whose disks may hold what their guests wrote)
/// they are left, said.
pub fn sweep_node_dirs(state_dir: &Path, vm_dirs: bool, out: &mut Swept) {
    let vms = if vm_dirs {
        Layout::Vms
    } else {
        Layout::VmsOfNoDeployment
    };
    for (name, layout) in [("nodes", Layout::Nodes), ("vm", vms)] {
        let path = state_dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {
                sweep(&path, layout, out);
            }
            Ok(m) => out.left.push(format!(
                "{}: {}, not the directory edgenet writes there: left as it is",
                path.display(),
                file_kind(&m).unwrap_or("a file")
            )),
            Err(_) => {}
        }
    }
}

/// `nodes/<node>` alone (a node no longer planned, or a refused first deploy's), swept as
/// [`sweep_node_dirs`] sweeps it.
pub fn sweep_node_dir(dir: &Path, out: &mut Swept) {
    if std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        sweep(dir, Layout::Node, out);
    }
}

/// `vm/<node>-<id>` alone, once its QEMU is stopped, swept as [`sweep_node_dirs`] sweeps it.
pub fn sweep_vm_dir(dir: &Path, out: &mut Swept) {
    if std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        sweep(dir, Layout::Vm, out);
    }
}

/// Sweeps `dir` (of `layout`); `true` when it was emptied and deleted.
fn sweep(dir: &Path, layout: Layout, out: &mut Swept) -> bool {
    // A VM directory whose QEMU still runs is the VM's (its disk, its sockets): left whole.
    if layout == Layout::Vm {
        let files = edgenet_host::qemu::VmFiles::new(dir);
        if let Some(pid) = edgenet_host::qemu::running_pid(&files) {
            out.left.push(format!(
                "{}: its QEMU (pid {pid}) still runs, so its files stay; stop it (`kill {pid}`), then run remove again",
                dir.display()
            ));
            return false;
        }
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            out.errors.push(format!("{}: {e}", dir.display()));
            return false;
        }
    };
    let mut foreign: Vec<(String, &'static str)> = Vec::new();
    let mut kept = false;
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        match classify(layout, &name, &path, &meta) {
            Entry::Own => match std::fs::remove_file(&path) {
                Ok(()) => removed.push(path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    out.errors.push(format!("{}: {e}", path.display()));
                    kept = true;
                }
            },
            Entry::Dir(sub) => {
                let before = out.removed.len();
                if sweep(&path, sub, out) {
                    // The directory stands for what was in it.
                    out.removed.truncate(before);
                    removed.push(path);
                } else {
                    kept = true;
                }
            }
            // A lost deployment's VM whose QEMU still runs (B27 F14): said with its `kill`, so
            // that nobody deletes a live guest's disk on the word of the line below.
            Entry::Foreign(_)
                if layout == Layout::VmsOfNoDeployment
                    && meta.is_dir()
                    && is_vm_dir_name(&name)
                    && qemu_running_in(&path, out) =>
            {
                kept = true;
            }
            Entry::Foreign(why) => {
                let shown = if meta.is_dir() {
                    format!("{name}/")
                } else {
                    name
                };
                foreign.push((shown, why));
            }
        }
    }
    out.removed.extend(removed);
    if !foreign.is_empty() {
        foreign.sort();
        out.left.push(left_line(dir, &foreign));
        return false;
    }
    if kept {
        return false;
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        // Something appeared meanwhile: left, as anything not edgenet's is.
        Err(e) => {
            out.errors.push(format!("{}: {e}", dir.display()));
            false
        }
    }
}

/// Whether the QEMU of VM directory `dir` runs; if so, said in `left` with how to stop it.
fn qemu_running_in(dir: &Path, out: &mut Swept) -> bool {
    let Some(pid) = edgenet_host::qemu::running_pid(&edgenet_host::qemu::VmFiles::new(dir)) else {
        return false;
    };
    out.left.push(format!(
        "{}: a VM's directory of a deployment this state directory no longer records, and its QEMU (pid {pid}) still runs: its disk is in use; stop it (`kill {pid}`) before deleting anything there",
        dir.display()
    ));
    true
}

/// How many entries of a directory a `left` line names.
const NAMED: usize = 5;

/// The `left` line of a directory that holds what edgenet does not write there.
fn left_line(dir: &Path, foreign: &[(String, &'static str)]) -> String {
    let mut named: Vec<String> = foreign
        .iter()
        .take(NAMED)
        .map(|(name, why)| format!("{name} ({why})"))
        .collect();
    if foreign.len() > NAMED {
        named.push(format!("and {} more", foreign.len() - NAMED));
    }
    format!(
        "{}: holds what edgenet did not write there: {}; edgenet deletes only its own files, so these and the directory stay (move them away, or delete them yourself if they are not needed)",
        dir.display(),
        named.join(", ")
    )
}

/// Names edgenet gives the temp files of `tempfile` (`.tmp` and six letters or digits).
fn is_tempfile_name(name: &str) -> bool {
    name.strip_prefix(".tmp")
        .is_some_and(|r| r.len() == 6 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The first bytes of a regular file (at most `n`).
fn head(path: &Path, n: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(n as u64).read_to_end(&mut bytes);
    }
    bytes
}

/// A small text file of edgenet's whose whole content passes `ok`.
fn text_is(path: &Path, ok: impl Fn(&str) -> bool) -> bool {
    read(path, 1 << 20)
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok())
        .is_some_and(|t| ok(&t))
}

/// A pidfile's content: a number (or nothing yet).
fn is_pid_text(t: &str) -> bool {
    t.trim().bytes().all(|b| b.is_ascii_digit())
}

/// `<node>-<id>`: a VM directory's name (its record's).
fn is_vm_dir_name(name: &str) -> bool {
    name.rsplit_once('-').is_some_and(|(node, id)| {
        !node.is_empty()
            && id.len() == crate::state::DeploymentId::LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

const NOT_WRITTEN: &str = "a name edgenet does not write there";
const NOT_ITS_CONTENT: &str = "not what edgenet writes under that name";

fn classify(layout: Layout, name: &str, path: &Path, meta: &std::fs::Metadata) -> Entry {
    let file = meta.is_file();
    let dir = meta.is_dir();
    let own_if = |ok: bool| {
        if ok {
            Entry::Own
        } else {
            Entry::Foreign(NOT_ITS_CONTENT)
        }
    };
    match (layout, name) {
        (Layout::Nodes, _) if dir => Entry::Dir(Layout::Node),
        (Layout::Node, crate::node::files::RESOLV_CONF | crate::node::files::HOSTS) if file => {
            own_if(head(path, 20) == b"# Written by edgenet")
        }
        (Layout::Node, crate::node::files::PROXY_ENV) if file => own_if(text_is(path, |t| {
            t.lines().all(|l| {
                l.is_empty()
                    || l.starts_with('#')
                    || l.split_once('=').is_some_and(|(k, _)| {
                    matches!(
                        k.to_ascii_lowercase().as_str(),
                        "http_proxy" | "https_proxy" | "no_proxy"
                    )
                })
            })
        })),
        (Layout::Node, n) if file && is_tempfile_name(n) => Entry::Own,
        (Layout::VmsOfNoDeployment, n) if dir && is_vm_dir_name(n) => Entry::Foreign(
            "a VM's directory, of a deployment this state directory no longer records: its disk may hold what the guest wrote",
        ),
        (Layout::VmsOfNoDeployment, _) => classify(Layout::Vms, name, path, meta),
        (Layout::Vms, "accel") if file => own_if(text_is(path, |t| {
            matches!(t.trim(), "kvm" | "tcg" | "")
        })),
        (Layout::Vms, "kvm-probe.pid") if file => own_if(text_is(path, is_pid_text)),
        (Layout::Vms, "kvm-probe.console" | "kvm-probe.img") if file => Entry::Own,
        (Layout::Vms, n) if dir && is_vm_dir_name(n) => Entry::Dir(Layout::Vm),
        (Layout::Vm, "qemu.pid") if file => own_if(text_is(path, is_pid_text)),
        (Layout::Vm, "qmp.sock" | "agent.sock") => {
            own_if(std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()))
        }
        (Layout::Vm, "disk.qcow2") if file => own_if(head(path, 4) == b"QFI\xfb"),
        (
            Layout::Vm,
            "console.log" | "seed.iso" | "seed.iso.tmp" | "launch.json" | "launch.json.tmp"
            // `guest_agent::take_turn`'s lock beside the agent socket.
            | "agent.lock",
        ) if file => Entry::Own,
        (Layout::Vm, "seed") if dir => Entry::Dir(Layout::Seed),
        (Layout::Seed, "meta-data" | "network-config" | "user-data") if file => Entry::Own,
        _ if dir || file => Entry::Foreign(NOT_WRITTEN),
        _ => Entry::Foreign(file_kind(meta).unwrap_or(NOT_WRITTEN)),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn what_is_in_the_place_of_an_own_file_is_said_as_the_host_layer_says_it() {
        // One word per kind, as `edgenet_host::small_file` says it for any small file.
        assert_eq!(
            super::odd(Path::new("/dev/null")),
            Some("a character device")
        );
        assert_eq!(super::odd(Path::new("/")), Some("a directory"));
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        assert_eq!(super::odd(&link), Some("a symbolic link"));
        let err = super::read(&link, 1024).unwrap_err().to_string();
        assert_eq!(err, "not a regular file (a symbolic link)");
        std::fs::write(dir.path().join("file"), "{}").unwrap();
        assert_eq!(super::odd(&dir.path().join("file")), None);
    }

    #[test]
    fn a_sweep_deletes_edgenets_own_layout_and_leaves_everything_else() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let write = |p: &str, b: &[u8]| {
            let p = d.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b).unwrap();
        };
        // Every file name of a VM's directory is one the sweep knows (kept in step with
        // `VmFiles`): a VM directory of edgenet's alone goes whole.
        let vm = edgenet_host::qemu::VmFiles::new(d.join("vm/n1-abc123"));
        for p in [vm.pidfile(), vm.console(), vm.seed()] {
            write(p.strip_prefix(d).unwrap().to_str().unwrap(), b"1\n");
        }
        write("vm/n1-abc123/disk.qcow2", b"QFI\xfb\0\0\0\x03");
        write("vm/n1-abc123/seed/user-data", b"#cloud-config\n");
        write("vm/n1-abc123/agent.lock", b"");
        write("vm/accel", b"tcg");
        write("nodes/n1/hosts", b"# Written by edgenet.\n");
        write("nodes/n1/proxy.env", b"");
        // Not edgenet's: a name it never writes, and its names with other content.
        write("vm/guest1/disk.qcow2", b"data\n");
        write("nodes/web/index.html", b"x\n");
        write("nodes/n2/hosts", b"127.0.0.1 mine\n");
        let mut out = super::Swept::default();
        super::sweep_node_dirs(d, true, &mut out);
        assert!(out.errors.is_empty(), "{out:?}");
        assert!(!d.join("vm/n1-abc123").exists(), "{out:?}");
        assert!(!d.join("nodes/n1").exists(), "{out:?}");
        for kept in [
            "vm/guest1/disk.qcow2",
            "nodes/web/index.html",
            "nodes/n2/hosts",
        ] {
            assert!(d.join(kept).exists(), "{kept}: {out:?}");
        }
        assert_eq!(out.left.len(), 3, "{out:?}");
        // Without a deployment, a VM's directory is a lost deployment's (its disk): left.
        write("vm/n1-abc123/console.log", b"boot\n");
        let mut out = super::Swept::default();
        super::sweep_node_dirs(d, false, &mut out);
        assert!(d.join("vm/n1-abc123/console.log").exists(), "{out:?}");
        assert!(!d.join("vm/accel").exists(), "{out:?}");
    }

    #[test]
    fn the_sweep_knows_every_file_name_of_a_vm_directory() {
        // A name added to `VmFiles` must be added to the sweep's `Layout::Vm` too, else a
        // remove leaves it (and the VM's directory) as not edgenet's.
        let vm = edgenet_host::qemu::VmFiles::new("/x");
        for p in [
            vm.pidfile(),
            vm.qmp(),
            vm.agent(),
            vm.console(),
            vm.disk(),
            vm.seed(),
            vm.seed_dir(),
        ] {
            let name = p.file_name().unwrap().to_str().unwrap();
            assert!(
                [
                    "qemu.pid",
                    "qmp.sock",
                    "agent.sock",
                    "console.log",
                    "disk.qcow2",
                    "seed.iso",
                    "seed"
                ]
                .contains(&name),
                "{name}"
            );
        }
    }
}
