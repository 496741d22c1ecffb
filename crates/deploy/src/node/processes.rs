//! Processes that run inside a node's network namespace (K3s or the kubelet from the rendered
//! units, anything started with `ip netns exec`). `remove` deletes the namespace's name, but a
//! namespace lives on as long as a process is in it: without links, invisible to `ip netns`,
//! and a new deploy makes a new namespace of the same name beside it (B23 F16). Found by
//! comparing each process's `/proc/PID/ns/net` with the namespace's (device, inode).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One process: its id and command line (shortened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProcess {
    pub pid: u32,
    pub command: String,
}

/// The longest command line shown.
const SHOWN: usize = 60;

/// (device, inode) of the named namespace `/run/netns/NAME`, when it is there.
pub fn netns_identity(name: &str) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(Path::new(edgenet_host::netns::NETNS_RUN_DIR).join(name)).ok()?;
    Some((meta.dev(), meta.ino()))
}

/// For each of `namespaces` (name, identity), the processes in it (this process excluded),
/// read from `proc`; namespaces without any are left out.
pub fn processes_in(
    proc: &Path,
    namespaces: &[(String, (u64, u64))],
) -> Vec<(String, Vec<NodeProcess>)> {
    if namespaces.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    let mut found: Vec<(String, Vec<NodeProcess>)> = Vec::new();
    let Ok(dir) = std::fs::read_dir(proc) else {
        return found;
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| *p != me)
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let Ok(meta) = std::fs::metadata(proc.join(pid.to_string()).join("ns/net")) else {
            continue;
        };
        let id = (meta.dev(), meta.ino());
        let Some((name, _)) = namespaces.iter().find(|(_, n)| *n == id) else {
            continue;
        };
        let process = NodeProcess {
            pid,
            command: command_of(proc, pid),
        };
        match found.iter_mut().find(|(n, _)| n == name) {
            Some((_, list)) => list.push(process),
            None => found.push((name.clone(), vec![process])),
        }
    }
    found
}

/// `/proc/PID/cmdline` with its NULs as spaces, shortened; the `comm` name for a kernel thread
/// or a process that is gone meanwhile.
fn command_of(proc: &Path, pid: u32) -> String {
    let dir = proc.join(pid.to_string());
    let line = std::fs::read(dir.join("cmdline"))
        .ok()
        .map(|b| {
            String::from_utf8_lossy(&b)
                .split('\0')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|l| !l.is_empty())
        .or_else(|| {
            std::fs::read_to_string(dir.join("comm"))
                .ok()
                .map(|c| c.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let line: String = line.chars().filter(|c| !c.is_control()).collect();
    if line.chars().count() > SHOWN {
        format!("{}…", line.chars().take(SHOWN).collect::<String>())
    } else {
        line
    }
}

/// The processes as one phrase: `sleep 600 (pid 12), k3s server (pid 34)`.
pub fn listed(processes: &[NodeProcess]) -> String {
    processes
        .iter()
        .map(|p| format!("{} (pid {})", p.command, p.pid))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What remove and status say of a node namespace with processes in it, with the fix.
pub fn still_running(namespace: &str, processes: &[NodeProcess], removed: bool) -> String {
    let first = processes.first().map(|p| p.pid).unwrap_or(0);
    if removed {
        format!(
            "network namespace {namespace}: its name is gone, but the namespace lives on without links while {} run{} in it: {} — stop {} (`systemctl stop k3s` or the unit that started it; `kill {first}`), otherwise it keeps running cut off, and a new deploy makes another namespace of that name beside it",
            if processes.len() == 1 { "a process" } else { "processes" },
            if processes.len() == 1 { "s" } else { "" },
            listed(processes),
            if processes.len() == 1 { "it" } else { "them" },
        )
    } else {
        format!(
            "network namespace {namespace}: {} in it: {} — `edgenet remove` leaves {} running in the namespace cut off from every link: stop {} first (`systemctl stop k3s` or the unit that started it)",
            if processes.len() == 1 { "a process runs" } else { "processes run" },
            listed(processes),
            if processes.len() == 1 { "it" } else { "them" },
            if processes.len() == 1 { "it" } else { "them" },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_in_a_namespace_is_found_by_its_namespace_identity() {
        // This test's own namespace: every process of the test is in it, except this one.
        let meta = std::fs::metadata("/proc/self/ns/net").unwrap();
        let id = (meta.dev(), meta.ino());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        // Until its exec is through, the child's command line is not yet `sleep 30`.
        let cmdline = format!("/proc/{}/cmdline", child.id());
        let started = std::time::Instant::now();
        while std::fs::read(&cmdline).unwrap_or_default() != b"sleep\x0030\x00" {
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let found = processes_in(Path::new("/proc"), &[("here".into(), id)]);
        let _ = child.kill();
        let _ = child.wait();
        let (_, list) = found.iter().find(|(n, _)| n == "here").expect("found");
        assert!(
            list.iter()
                .any(|p| p.pid == child.id() && p.command == "sleep 30"),
            "{list:?}"
        );
        assert!(list.iter().all(|p| p.pid != std::process::id()));
        assert!(processes_in(Path::new("/proc"), &[("x".into(), (0, 0))]).is_empty());
    }
}
