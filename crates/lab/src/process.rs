//! Processes: the lab's long-running services and its short, bounded probe commands.
//!
//! Services are started inside a namespace by the host layer's `command_in` (the child
//! switches only its network namespace: no `ip netns exec`, whose private mount namespace
//! would hide namespaces, see NOTES.md), in their own process group so a Ctrl-C at the
//! terminal of `lab up` does not take them down, with output appended to a log file.
//! They are stopped by recorded PID only, after checking the PID still is the same process.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use edgenet_host::exec::{command_in, BindMount, ExecOptions};
use edgenet_host::netlink::DELETING_PROCESS_NAME;
use edgenet_host::netns::NetNs;

use crate::error::LabError;
use crate::state::ServiceRecord;

/// How long a stopped service gets to exit after SIGTERM before SIGKILL, and after SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);
const KILL_GRACE: Duration = Duration::from_secs(2);
/// Poll interval while waiting for a process to go away (no portable event for a process
/// that is not our child).
const EXIT_POLL: Duration = Duration::from_millis(5);

/// Starts `argv` in `netns` as service `name`, stdout and stderr appended to `log`.
///
/// The child writes its own pid to `pid_file` before it execs the daemon (a spawn whose
/// pid file cannot be written fails): so a `lab up` killed between the spawn and the
/// recording of the service in the lab's state leaves a record `down` can find
/// ([`recover_unrecorded`]) — there is never a daemon of the lab that no file names.
pub(crate) fn spawn_service(
    name: &str,
    netns: &str,
    argv: &[String],
    log: &Path,
    resolv_conf: Option<&Path>,
    pid_file: &Path,
) -> Result<ServiceRecord, LabError> {
    let spawn_err = |source| LabError::Spawn {
        service: name.to_string(),
        netns: netns.to_string(),
        source,
    };
    let (program, args) = argv
        .split_first()
        .expect("service command lines are never empty");
    let ns = NetNs::open(netns).map_err(|e| LabError::host(netns, e))?;
    let opts = ExecOptions {
        binds: resolv_conf
            .map(|r| vec![BindMount::new(r, "/etc/resolv.conf")])
            .unwrap_or_default(),
        ..ExecOptions::default()
    };
    let mut cmd = command_in(&ns, program, &opts).map_err(|e| LabError::host(netns, e))?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| LabError::io("open service log", log, e))?;
    let err = out
        .try_clone()
        .map_err(|e| LabError::io("open service log", log, e))?;
    let pid_path = std::ffi::CString::new(pid_file.as_os_str().as_encoded_bytes())
        .map_err(|e| spawn_err(std::io::Error::other(e)))?;
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        // SAFETY: runs in the forked child before exec; only raw system calls on data
        // prepared above and a stack buffer (no allocation, no locks): async-signal-safe.
        unsafe {
            cmd.pre_exec(move || write_own_pid(&pid_path));
        }
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let child = cmd.spawn().map_err(spawn_err)?;
    let pid = child.id();
    // The Child handle is dropped without waiting: the process is reaped by pid in
    // `stop_service` (std's Child neither kills nor waits on drop).
    drop(child);
    let start_time = start_time(pid).ok_or_else(|| {
        spawn_err(std::io::Error::other(format!(
            "pid {pid} vanished right after start"
        )))
    })?;
    Ok(ServiceRecord {
        name: name.to_string(),
        netns: netns.to_string(),
        pid,
        start_time,
        program: program.clone(),
        log: log.to_path_buf(),
    })
}

/// In the child before exec: writes `PID\n` to `path` (created or truncated).
fn write_own_pid(path: &std::ffi::CStr) -> std::io::Result<()> {
    use nix::libc;
    let mut buf = [0u8; 16];
    let mut pid = std::process::id();
    let mut at = buf.len() - 1;
    buf[at] = b'\n';
    loop {
        at -= 1;
        buf[at] = b'0' + (pid % 10) as u8;
        pid /= 10;
        if pid == 0 {
            break;
        }
    }
    // SAFETY: plain system calls on a NUL-terminated path and a stack buffer.
    unsafe {
        let fd = libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let bytes = &buf[at..];
        let written = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if written != bytes.len() as isize {
            return Err(err);
        }
    }
    Ok(())
}

/// A service whose child wrote its pid file (see [`spawn_service`]) but that the lab's state
/// does not name (its `lab up` was killed in between): a record of it when the process is
/// provably ours — the pid from a file only the lab and its children write, a process with
/// that pid running, and its stdout open on a log file in the lab's `logs` directory.
/// Anything else (no such process, a reused pid) gives `None`: never a stranger's process.
pub(crate) fn recover_unrecorded(
    name: &str,
    pid_file: &Path,
    logs: &Path,
) -> Option<ServiceRecord> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // Start time first: `stop_service` signals only a process with this very start time.
    let start_time = start_time(pid)?;
    let stdout = std::fs::read_link(format!("/proc/{pid}/fd/1")).ok()?;
    if stdout.parent() != Some(logs) {
        return None;
    }
    Some(ServiceRecord {
        name: name.to_string(),
        netns: "(not recorded)".into(),
        pid,
        start_time,
        program: command_name(pid),
        log: stdout,
    })
}

/// Field 22 of `/proc/PID/stat` (start time), `None` when there is no such process.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid).and_then(|(_, fields)| fields.get(18).and_then(|f| f.parse().ok()))
}

/// (state, fields after the state) of `/proc/PID/stat`; the command name may contain spaces
/// and parentheses, so parsing starts after its last `)`.
fn stat_fields(pid: u32) -> Option<(char, Vec<String>)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut parts = rest.split_whitespace();
    let state = parts.next()?.chars().next()?;
    Some((state, parts.map(str::to_string).collect()))
}

/// Whether the recorded process is still running: same PID, same start time, not a zombie.
pub(crate) fn is_running(record: &ServiceRecord) -> bool {
    exit_status(record).is_none()
}

/// `None` while the recorded process runs; once it is gone, how it ended (known when it was
/// our child and is reaped here). Only a zombie with the recorded start time is reaped, so
/// the exit status of another child of ours that got a reused PID is never taken.
pub(crate) fn exit_status(record: &ServiceRecord) -> Option<String> {
    let Some((state, fields)) = stat_fields(record.pid) else {
        return Some("exited".into());
    };
    if fields.get(18).and_then(|f| f.parse().ok()) != Some(record.start_time) {
        return Some("exited (its pid now belongs to another process)".into());
    }
    if state != 'Z' {
        return None;
    }
    // A zombie keeps its PID until reaped, so this is still the recorded process. ECHILD
    // (the zombie of a lab re-opened by another process) is left to its parent.
    match waitpid(Pid::from_raw(record.pid as i32), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(format!("exit code {code}")),
        Ok(WaitStatus::Signaled(_, sig, _)) => Some(format!("killed by {sig}")),
        _ => Some("exited".into()),
    }
}

/// Stops a recorded service: SIGTERM, then SIGKILL after a grace period, waiting (bounded)
/// until it is gone. A process whose start time differs is not ours any more and is left
/// alone; one that is already gone is fine.
pub(crate) fn stop_service(record: &ServiceRecord) -> Result<(), LabError> {
    let stop_err = |reason: String| LabError::Stop {
        service: record.name.clone(),
        pid: record.pid,
        reason,
    };
    let pid = Pid::from_raw(record.pid as i32);
    for (signal, grace) in [(Signal::SIGTERM, TERM_GRACE), (Signal::SIGKILL, KILL_GRACE)] {
        if !is_running(record) {
            return Ok(());
        }
        match kill(pid, signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(stop_err(format!("send {signal}: {e}"))),
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !is_running(record) {
                return Ok(());
            }
            std::thread::sleep(EXIT_POLL);
        }
    }
    if is_running(record) {
        Err(stop_err(format!(
            "still running {:?} after SIGKILL",
            TERM_GRACE + KILL_GRACE
        )))
    } else {
        Ok(())
    }
}

/// Every process's network namespace: namespace identity (device, inode) → the PIDs in it,
/// from one pass over `/proc` (to report what keeps a deleted lab namespace alive; see
/// [`command_name`]).
pub(crate) fn processes_by_netns() -> HashMap<(u64, u64), Vec<u32>> {
    let mut found: HashMap<(u64, u64), Vec<u32>> = HashMap::new();
    for pid in edgenet_host::procfs::pids() {
        let Ok(meta) = std::fs::metadata(format!("/proc/{pid}/ns/net")) else {
            continue;
        };
        use std::os::unix::fs::MetadataExt;
        found.entry((meta.dev(), meta.ino())).or_default().push(pid);
    }
    found
}

/// Whether `pid` is a child of `edgenet remove` finishing a link deletion
/// ([`DELETING_PROCESS_NAME`]) that exits within `grace`. Any other process: `false` at once.
pub(crate) fn wait_for_deleting_child(pid: u32, grace: Duration) -> bool {
    if command_name(pid) != DELETING_PROCESS_NAME {
        return false;
    }
    let start = Instant::now();
    // Not our child: its /proc entry going (or turning into a zombie's) is its exit.
    while Path::new(&format!("/proc/{pid}/ns/net")).exists() {
        if start.elapsed() > grace {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// A process's command name (`/proc/PID/comm`), empty when it is gone.
pub(crate) fn command_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Runs a short command with a hard time limit; killed when it overruns. Its output is
/// collected by reader threads, so the wait is event-driven (pipe closed = process done).
pub(crate) fn run_bounded(
    mut cmd: Command,
    label: &str,
    netns: &str,
    timeout: Duration,
) -> Result<Output, LabError> {
    let cmd_err = |reason: String| LabError::Command {
        command: label.to_string(),
        netns: netns.to_string(),
        reason,
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| cmd_err(e.to_string()))?;
    let (tx, rx) = mpsc::channel();
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .enumerate()
    .map(|(which, mut pipe)| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send((which, buf));
        })
    })
    .collect();
    drop(tx);
    let deadline = Instant::now() + timeout;
    let mut outputs = [Vec::new(), Vec::new()];
    let mut done = 0;
    while done < readers.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((which, buf)) => {
                outputs[which] = buf;
                done += 1;
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(cmd_err(format!("no result within {timeout:?}; killed")));
            }
        }
    }
    for reader in readers {
        let _ = reader.join();
    }
    // Both pipes closed: the process has exited or is about to.
    let status = child.wait().map_err(|e| cmd_err(e.to_string()))?;
    let [stdout, stderr] = outputs;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// The last lines of a log, for error messages.
pub(crate) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(5);
    lines[start..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_pid_is_not_taken_for_the_recorded_process() {
        let me = std::process::id();
        let ours = ServiceRecord {
            name: "self".into(),
            netns: "none".into(),
            pid: me,
            start_time: start_time(me).unwrap(),
            program: "test".into(),
            log: "/dev/null".into(),
        };
        assert!(is_running(&ours));
        let reused = ServiceRecord {
            start_time: ours.start_time + 1,
            ..ours.clone()
        };
        assert!(!is_running(&reused));
        // Stopping a record whose start time does not match sends nothing (we are alive).
        stop_service(&reused).unwrap();
        assert!(is_running(&ours));
    }

    fn record_of(child: &std::process::Child) -> ServiceRecord {
        ServiceRecord {
            name: "t".into(),
            netns: "none".into(),
            pid: child.id(),
            start_time: start_time(child.id()).unwrap(),
            program: "t".into(),
            log: "/dev/null".into(),
        }
    }

    #[test]
    #[allow(
        clippy::zombie_processes,
        reason = "reaping it by pid is what is tested"
    )]
    fn an_exited_child_is_reaped_and_reports_how_it_ended() {
        let child = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let record = record_of(&child);
        let deadline = Instant::now() + Duration::from_secs(5);
        let how = loop {
            if let Some(how) = exit_status(&record) {
                break how;
            }
            assert!(Instant::now() < deadline, "sh did not exit");
            std::thread::sleep(EXIT_POLL);
        };
        assert_eq!(how, "exit code 3");
        assert!(!std::path::Path::new(&format!("/proc/{}", record.pid)).exists());
    }

    #[test]
    #[allow(
        clippy::zombie_processes,
        reason = "reaping it by pid is what is tested"
    )]
    fn a_running_service_is_stopped_and_gone() {
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let record = record_of(&child);
        assert!(is_running(&record));
        stop_service(&record).unwrap();
        assert!(!is_running(&record));
        assert!(
            !std::path::Path::new(&format!("/proc/{}", record.pid)).exists(),
            "reaped"
        );
    }

    #[test]
    fn a_command_that_overruns_is_killed() {
        let started = Instant::now();
        let mut sleep = Command::new("sleep");
        sleep.arg("5");
        let e = run_bounded(sleep, "sleep", "test", Duration::from_millis(200)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(e.to_string().contains("killed"), "{e}");
        let mut echo = Command::new("echo");
        echo.arg("hi");
        let out = run_bounded(echo, "echo", "test", Duration::from_secs(5)).unwrap();
        assert_eq!(out.stdout, b"hi\n");
    }
}
