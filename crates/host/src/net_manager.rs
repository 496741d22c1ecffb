//! Which network manager configures a link: NetworkManager, systemd-networkd, ifupdown, or a
//! DHCP client started by hand. An external switch takes the adapter's configuration away to
//! its bridge; a manager that still owns the adapter would put it back (or renew a lease on
//! it) and fight edgenet, so deploy has to know.
//!
//! Every place read is a path in [`ManagerPaths`], so tests can point them at a directory of
//! their own.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// Where each manager keeps what tells that it owns a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerPaths {
    /// NetworkManager's run directory: `devices/<ifindex>` says `managed=true`.
    pub network_manager: PathBuf,
    /// systemd-networkd's run directory: `links/<ifindex>` has `ADMIN_STATE=`.
    pub networkd: PathBuf,
    /// ifupdown's configuration (with its `source` and `source-directory` includes).
    pub ifupdown: PathBuf,
    /// procfs, for DHCP clients running by themselves.
    pub proc: PathBuf,
    /// Whether NetworkManager, networkd and ifupdown are asked at all: they configure the
    /// host's own network namespace (their files name links by index there), so not in
    /// another one unless the paths were given on purpose.
    pub system_managers: bool,
}

impl Default for ManagerPaths {
    fn default() -> Self {
        ManagerPaths {
            network_manager: "/run/NetworkManager".into(),
            networkd: "/run/systemd/netif".into(),
            ifupdown: "/etc/network/interfaces".into(),
            proc: "/proc".into(),
            system_managers: true,
        }
    }
}

/// Whether the calling thread is in the host's network namespace (that of PID 1).
pub fn in_host_netns(proc: &Path) -> bool {
    match (
        fs::read_link(proc.join("thread-self/ns/net")),
        fs::read_link(proc.join("1/ns/net")),
    ) {
        (Ok(a), Ok(b)) => a == b,
        // Cannot tell (no procfs, no permission): assume the host's, and ask.
        _ => true,
    }
}

/// Who configures a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manager {
    NetworkManager,
    /// With the `.network` file that matched the link, when networkd says.
    Networkd {
        network_file: Option<String>,
    },
    /// With the `iface` line and the file it is in.
    Ifupdown {
        stanza: String,
        file: PathBuf,
    },
    /// A DHCP client process bound to the link (`udhcpc`, `dhclient`, `dhcpcd`).
    DhcpClient {
        program: String,
        pid: u32,
        command: String,
    },
}

impl Manager {
    pub fn name(&self) -> &'static str {
        match self {
            Manager::NetworkManager => "NetworkManager",
            Manager::Networkd { .. } => "systemd-networkd",
            Manager::Ifupdown { .. } => "ifupdown",
            Manager::DhcpClient { .. } => "a DHCP client",
        }
    }
}

/// The managers that configure link `ifname` (index `ifindex`), most specific first; empty
/// when nothing but the kernel and the operator does.
pub fn managers_of(paths: &ManagerPaths, ifname: &str, ifindex: u32) -> Vec<Manager> {
    let mut out = Vec::new();
    if paths.system_managers {
        if network_manager_manages(&paths.network_manager, ifindex) {
            out.push(Manager::NetworkManager);
        }
        if let Some(m) = networkd_manages(&paths.networkd, ifindex) {
            out.push(m);
        }
        if let Some(m) = ifupdown_manages(&paths.ifupdown, ifname) {
            out.push(m);
        }
    }
    out.extend(dhcp_clients(&paths.proc, ifname));
    out
}

fn network_manager_manages(dir: &Path, ifindex: u32) -> bool {
    let Ok(text) = fs::read_to_string(dir.join("devices").join(ifindex.to_string())) else {
        return false;
    };
    text.lines().any(|l| {
        l.trim()
            .replace(' ', "")
            .eq_ignore_ascii_case("managed=true")
    })
}

fn networkd_manages(dir: &Path, ifindex: u32) -> Option<Manager> {
    let text = fs::read_to_string(dir.join("links").join(ifindex.to_string())).ok()?;
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .map(|v| v.trim().to_string())
    };
    match value("ADMIN_STATE").as_deref() {
        None | Some("") | Some("unmanaged") => None,
        Some(_) => Some(Manager::Networkd {
            network_file: value("NETWORK_FILE").filter(|f| !f.is_empty()),
        }),
    }
}

/// An `iface IFNAME inet|inet6 METHOD` stanza whose method configures addresses (anything but
/// `manual`), in the file or its includes.
fn ifupdown_manages(file: &Path, ifname: &str) -> Option<Manager> {
    let mut files = vec![file.to_path_buf()];
    let mut seen = 0;
    while seen < files.len() && seen < 64 {
        let path = files[seen].clone();
        seen += 1;
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let base = path.parent().unwrap_or(Path::new("/"));
        for line in logical_lines(&text) {
            let line = line.as_str();
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["iface", name, "inet" | "inet6", method, ..]
                    if *name == ifname && *method != "manual" =>
                {
                    return Some(Manager::Ifupdown {
                        stanza: words.join(" "),
                        file: path,
                    });
                }
                ["source", pattern] => files.extend(expand(base, pattern)),
                ["source-directory", dir] => {
                    let dir = base.join(dir);
                    let mut names: Vec<PathBuf> = fs::read_dir(&dir)
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|e| e.path())
                        // ifupdown's run-parts rule: letters, digits, `_` and `-` only.
                        .filter(|p| {
                            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                                n.chars()
                                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                            })
                        })
                        .collect();
                    names.sort();
                    files.extend(names);
                }
                _ => {}
            }
        }
    }
    None
}

/// interfaces(5) lines: a line ending in `\` continues on the next one.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A `source` pattern: a path, or a directory followed by a `*` wildcard in the last part.
fn expand(base: &Path, pattern: &str) -> Vec<PathBuf> {
    let path = base.join(pattern);
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    if !name.contains('*') {
        return vec![path];
    }
    let (prefix, suffix) = name.split_once('*').unwrap_or((name, ""));
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
        })
        .collect();
    out.sort();
    out
}

const DHCP_CLIENTS: &[&str] = &["udhcpc", "dhclient", "dhcpcd"];

/// DHCP client processes of this network namespace naming `ifname` on their command line.
///
/// Every process of the host is looked at (one system call each where it is in another
/// namespace), on every deploy: the kernel has no cheaper answer. Asking it first whether any
/// DHCP client socket exists in the namespace would not do: `udhcpc` holds no socket at all
/// once it has its lease (busybox closes its packet socket on entering BOUND and opens a UDP
/// one only to renew), and a bound client is the one that configured the adapter. (`dhclient`
/// keeps both its packet socket and UDP port 68 open while bound.)
pub fn dhcp_clients(proc: &Path, ifname: &str) -> Vec<Manager> {
    let own_ns = fs::read_link(proc.join("self/ns/net")).ok();
    // Outside the namespace of PID 1 (a lab machine, a container) most processes are in
    // other namespaces, and a link is cheaper to read than another process's memory: the
    // namespace is asked first there. In the host's, most processes share it: the command
    // line first. The same processes are found either way.
    let ns_first = own_ns.is_some() && fs::read_link(proc.join("1/ns/net")).ok() != own_ns;
    let own_ns = own_ns.map(|p| p.into_os_string().into_vec());
    let mut out = Vec::new();
    // The entries, and a handle on the directory to read each process's files relative to it.
    let (Ok(entries), Ok(dir)) = (fs::read_dir(proc), fs::File::open(proc)) else {
        return out;
    };
    let dirfd = dir.as_raw_fd();
    let own_pid = std::process::id();
    // Reused for every process: the paths relative to procfs and the command lines.
    let mut path = Vec::with_capacity(32);
    let mut link = [0u8; 64];
    let mut raw = Vec::with_capacity(4096);
    // A client in another network namespace configures another link of that name.
    let other_ns = |path: &mut Vec<u8>, link: &mut [u8; 64], pid: &[u8]| {
        let Some(own) = own_ns.as_deref() else {
            return false;
        };
        at(path, pid, b"/ns/net");
        // SAFETY: `path` is NUL-terminated, `link` is writable for its length.
        let n = unsafe {
            libc::readlinkat(
                dirfd,
                path.as_ptr().cast(),
                link.as_mut_ptr().cast(),
                link.len(),
            )
        };
        // Unreadable (gone, not permitted): not this namespace's, as a failed read_link was.
        n < 0 || link.get(..n as usize) != Some(own)
    };
    for e in entries.flatten() {
        let name = e.file_name().into_vec();
        let name = name.as_slice();
        if name.is_empty() || !name.iter().all(u8::is_ascii_digit) {
            continue;
        }
        let Some(pid) = std::str::from_utf8(name)
            .ok()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // This process is no DHCP client.
        if pid == own_pid && proc == Path::new("/proc") {
            continue;
        }
        if ns_first && other_ns(&mut path, &mut link, name) {
            continue;
        }
        at(&mut path, name, b"/cmdline");
        if read_at(dirfd, &path, &mut raw).is_err() {
            continue;
        }
        // Words only for a DHCP client's: the other processes cost no allocation.
        let client = |word: &&[u8]| {
            let base = word.rsplit(|b| *b == b'/').next().unwrap_or(word);
            DHCP_CLIENTS.iter().any(|c| c.as_bytes() == base)
        };
        if !raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .take(2)
            .any(|a| client(&a))
        {
            continue;
        }
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).to_string())
            .collect();
        let Some(program) = args.iter().take(2).find_map(|a| {
            let base = a.rsplit('/').next().unwrap_or(a);
            DHCP_CLIENTS.contains(&base).then(|| base.to_string())
        }) else {
            continue;
        };
        if !names_interface(&args, ifname) || (!ns_first && other_ns(&mut path, &mut link, name)) {
            continue;
        }
        out.push(Manager::DhcpClient {
            program,
            pid,
            command: args.join(" "),
        });
    }
    out.sort_by_key(|m| match m {
        Manager::DhcpClient { pid, .. } => *pid,
        _ => 0,
    });
    out
}

/// `PID<tail>` and a NUL in `path`.
fn at(path: &mut Vec<u8>, pid: &[u8], tail: &[u8]) {
    path.clear();
    path.extend_from_slice(pid);
    path.extend_from_slice(tail);
    path.push(0);
}

/// Reads the whole file at `path` (NUL-terminated, relative to `dirfd`) into `buf`.
fn read_at(dirfd: std::os::fd::RawFd, path: &[u8], buf: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    buf.clear();
    // SAFETY: `path` is NUL-terminated; the descriptor is owned by the File from here on.
    let fd = unsafe {
        libc::openat(
            dirfd,
            path.as_ptr().cast(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut file = unsafe { fs::File::from_raw_fd(fd) };
    file.read_to_end(buf).map(|_| ())
}

/// `-i IF`, `-iIF`, `--interface IF`, `--interface=IF`, or IF as a word of its own (dhclient,
/// dhcpcd take the interface as an argument).
fn names_interface(args: &[String], ifname: &str) -> bool {
    args.iter().enumerate().skip(1).any(|(i, a)| {
        a == ifname
            || a.strip_prefix("-i") == Some(ifname)
            || a.strip_prefix("--interface=") == Some(ifname)
            || (matches!(a.as_str(), "-i" | "--interface")
                && args.get(i + 1).map(String::as_str) == Some(ifname))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &Path) -> ManagerPaths {
        ManagerPaths {
            network_manager: dir.join("nm"),
            networkd: dir.join("netif"),
            ifupdown: dir.join("interfaces"),
            proc: dir.join("proc"),
            system_managers: true,
        }
    }

    #[test]
    fn ifupdown_continuation_lines_are_joined() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        fs::write(
            &p.ifupdown,
            "auto up0\niface up0 \\\n  inet static\n  address 10.0.0.2/24\n",
        )
        .unwrap();
        assert_eq!(
            managers_of(&p, "up0", 7),
            vec![Manager::Ifupdown {
                stanza: "iface up0 inet static".into(),
                file: p.ifupdown.clone(),
            }]
        );
    }

    #[test]
    fn each_manager_is_recognised_from_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        assert!(managers_of(&p, "up0", 7).is_empty());

        fs::create_dir_all(p.network_manager.join("devices")).unwrap();
        fs::write(
            p.network_manager.join("devices/7"),
            "[device]\nmanaged=true\n",
        )
        .unwrap();
        fs::write(
            p.network_manager.join("devices/8"),
            "[device]\nmanaged=false\n",
        )
        .unwrap();
        assert_eq!(managers_of(&p, "up0", 7), vec![Manager::NetworkManager]);
        assert!(managers_of(&p, "up1", 8).is_empty());

        fs::create_dir_all(p.networkd.join("links")).unwrap();
        fs::write(
            p.networkd.join("links/9"),
            "ADMIN_STATE=configured\nNETWORK_FILE=/etc/systemd/network/up2.network\n",
        )
        .unwrap();
        fs::write(p.networkd.join("links/8"), "ADMIN_STATE=unmanaged\n").unwrap();
        assert_eq!(
            managers_of(&p, "up2", 9),
            vec![Manager::Networkd {
                network_file: Some("/etc/systemd/network/up2.network".into())
            }]
        );
        assert!(managers_of(&p, "up1", 8).is_empty());

        fs::create_dir_all(dir.path().join("interfaces.d")).unwrap();
        fs::write(
            &p.ifupdown,
            "auto lo\niface lo inet loopback\niface up1 inet manual\nsource interfaces.d/*\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("interfaces.d/up3"),
            "allow-hotplug up3\niface up3 inet dhcp\n",
        )
        .unwrap();
        assert!(
            managers_of(&p, "up1", 8).is_empty(),
            "manual configures nothing"
        );
        assert_eq!(
            managers_of(&p, "up3", 10),
            vec![Manager::Ifupdown {
                stanza: "iface up3 inet dhcp".into(),
                file: dir.path().join("interfaces.d/up3"),
            }]
        );
    }

    /// A /proc of processes: pid → (command line words, network namespace link).
    fn fake_proc(dir: &Path, own: &str, init: &str, procs: &[(u32, &str, &str)]) {
        use std::os::unix::fs::symlink;
        for (name, ns) in [("self", own), ("1", init)] {
            fs::create_dir_all(dir.join(name).join("ns")).unwrap();
            symlink(ns, dir.join(name).join("ns/net")).unwrap();
        }
        for (pid, cmdline, ns) in procs {
            let p = dir.join(pid.to_string());
            fs::create_dir_all(p.join("ns")).unwrap();
            fs::write(p.join("cmdline"), cmdline.replace(' ', "\0")).unwrap();
            symlink(ns, p.join("ns/net")).unwrap();
        }
    }

    /// The same clients are found whichever is asked first (the namespace outside PID 1's,
    /// the command line inside it): only those of this namespace naming the link.
    #[test]
    fn dhcp_clients_of_this_namespace_are_found_inside_and_outside_pid_1s() {
        let procs = [
            (10, "udhcpc -f -i up0", "net:[7]"),
            (11, "sh /sbin/udhcpc -i up0", "net:[7]"),
            (12, "udhcpc -i up0", "net:[9]"),
            (13, "dhclient up1", "net:[7]"),
            (14, "sleep 100", "net:[7]"),
            (15, "busybox udhcpc -i up0", "net:[1]"),
        ];
        let pids = |dir: &Path| -> Vec<u32> {
            dhcp_clients(dir, "up0")
                .into_iter()
                .map(|m| match m {
                    Manager::DhcpClient { pid, .. } => pid,
                    _ => 0,
                })
                .collect()
        };
        // A namespace of its own (a lab machine).
        let outside = tempfile::tempdir().unwrap();
        fake_proc(outside.path(), "net:[7]", "net:[1]", &procs);
        assert_eq!(pids(outside.path()), vec![10, 11]);
        // PID 1's namespace.
        let inside = tempfile::tempdir().unwrap();
        fake_proc(inside.path(), "net:[7]", "net:[7]", &procs);
        assert_eq!(pids(inside.path()), vec![10, 11]);
        let Manager::DhcpClient {
            program, command, ..
        } = &dhcp_clients(inside.path(), "up0")[1]
        else {
            panic!("a DHCP client");
        };
        assert_eq!(
            (program.as_str(), command.as_str()),
            ("udhcpc", "sh /sbin/udhcpc -i up0")
        );
    }

    #[test]
    fn a_dhcp_client_is_found_by_its_interface_argument() {
        let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert!(names_interface(&args("udhcpc -f -i up0 -s x"), "up0"));
        assert!(names_interface(&args("udhcpc -iup0"), "up0"));
        assert!(names_interface(&args("dhclient -4 up0"), "up0"));
        assert!(names_interface(&args("dhcpcd --interface=up0"), "up0"));
        assert!(!names_interface(&args("udhcpc -i up01"), "up0"));
        assert!(
            !names_interface(&args("up0"), "up0"),
            "the program is not an argument"
        );
    }
}
