//! A client of the QEMU guest agent (qemu-ga in the guest, reached over a virtio-serial port
//! that QEMU exposes as a Unix socket on the host): run a command in the guest with its exit
//! status and output, and read the guest's interfaces.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::error::HostError;
use crate::json_lines::JsonLines;

pub struct GuestAgent {
    wire: JsonLines,
    /// Held while connected: QEMU serves one client of the socket at a time, so edgenet's own
    /// clients take turns (see [`GuestAgent::connect_waiting`]).
    _turn: std::fs::File,
}

/// A `guest-exec` that did not give a status: `pid` is the guest's PID of the command when the
/// guest had started it (a power-off or reboot then cuts the connection after it was asked).
#[derive(Debug)]
pub struct ExecFailure {
    pub pid: Option<i64>,
    pub error: HostError,
}

/// The most stdin `guest-exec` is given (its JSON request, base64, stays under the agent's
/// 64 MiB message limit).
pub const MAX_INPUT: usize = 32 << 20;

/// What a command run in the guest did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestOutput {
    /// The exit code, or 128 + the signal that ended it.
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The agent cut the output (qemu-ga keeps at most 16 MiB of each stream).
    pub truncated: bool,
}

/// One guest interface as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GuestInterface {
    pub name: String,
    pub mac: Option<String>,
    /// `ADDR/PREFIX`, IPv4 only.
    pub ipv4: Vec<String>,
}

impl GuestAgent {
    /// Connects and synchronises (guest-sync with a fresh id): fails within `timeout` while
    /// no agent answers (the guest is still booting, or has no agent).
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, HostError> {
        Self::connect_waiting(path, timeout, timeout)
    }

    /// [`GuestAgent::connect`], first waiting up to `busy` while another edgenet command uses
    /// the socket; an error of kind `ResourceBusy` when it is still in use then.
    pub fn connect_waiting(
        path: &Path,
        timeout: Duration,
        busy: Duration,
    ) -> Result<Self, HostError> {
        let what = path.display().to_string();
        let turn = take_turn(path, busy)
            .and_then(|turn| wait_unheld(path, busy).map(|()| turn))
            .map_err(|e| HostError::new("connect to the guest agent", &what, e))?;
        let mut ga = GuestAgent {
            wire: JsonLines::connect(path, timeout, "the guest agent")?,
            _turn: turn,
        };
        let id = u64::from(std::process::id()) << 20 | u64::from(rand_u16());
        // A reply of an earlier client may still be queued: read until ours.
        ga.send("guest-sync", Some(json!({ "id": id })))?;
        let deadline = Instant::now() + timeout;
        loop {
            let reply = ga.read()?;
            if reply.get("return").and_then(Value::as_u64) == Some(id) {
                return Ok(ga);
            }
            if Instant::now() > deadline {
                return Err(ga.bad("no reply to guest-sync"));
            }
        }
    }

    /// Nothing listens on the agent's socket: QEMU is not running (a booting guest's QEMU
    /// accepts the connection and only the agent is silent). Not worth waiting for.
    pub fn qemu_gone(e: &HostError) -> bool {
        matches!(
            e.io_error().kind(),
            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
        )
    }

    /// Whether the VM whose agent listens on `socket` is paused, as its QMP socket (beside it)
    /// says: a paused guest's agent never answers, which is not "still booting".
    pub fn vm_paused(socket: &Path) -> bool {
        let Some(dir) = socket.parent() else {
            return false;
        };
        crate::qmp::Qmp::connect(&dir.join("qmp.sock"), Duration::from_secs(1))
            .and_then(|mut q| q.status())
            .is_ok_and(|s| s == "paused")
    }

    fn bad(&self, why: &str) -> HostError {
        self.wire.bad(why)
    }

    fn send(&mut self, command: &str, arguments: Option<Value>) -> Result<(), HostError> {
        self.wire.send(command, arguments)
    }

    fn read(&mut self) -> Result<Value, HostError> {
        self.wire.read()
    }

    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, HostError> {
        self.send(command, arguments)?;
        let reply = self.read()?;
        self.wire
            .returned(command, &reply)
            .unwrap_or_else(|| Err(self.bad("a reply with neither return nor error")))
    }

    /// Runs `path args…` in the guest with `env` (`NAME=value`), waits at most `timeout`
    /// for it to end, and returns its status and output.
    pub fn exec(
        &mut self,
        path: &str,
        args: &[String],
        env: &[String],
        timeout: Duration,
    ) -> Result<GuestOutput, HostError> {
        self.exec_with(path, args, env, None, timeout, None)
            .map_err(|f| f.error)
    }

    /// [`GuestAgent::exec`] with `input` as the command's stdin, returning early (error kind
    /// `Interrupted`, with the guest PID) once `stop` is set.
    pub fn exec_with(
        &mut self,
        path: &str,
        args: &[String],
        env: &[String],
        input: Option<&[u8]>,
        timeout: Duration,
        stop: Option<&std::sync::atomic::AtomicBool>,
    ) -> Result<GuestOutput, ExecFailure> {
        let not_started = |error| ExecFailure { pid: None, error };
        if let Some(data) = input {
            if data.len() > MAX_INPUT {
                return Err(not_started(HostError::new(
                    "run in the guest",
                    path,
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "stdin is {} bytes; the guest agent takes at most {MAX_INPUT}",
                            data.len()
                        ),
                    ),
                )));
            }
        }
        // Megabytes of input or output take the agent a while (base64, under TCG): the
        // answer to guest-exec with its input, and a status with its output.
        self.wire.set_timeout(Duration::from_secs(120));
        let pid = self.spawn(path, args, env, input).map_err(not_started)?;
        let lost = |error| ExecFailure {
            pid: Some(pid),
            error,
        };
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(20);
        loop {
            if let Some(out) = self.exec_status(pid).map_err(lost)? {
                return Ok(out);
            }
            if stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed)) {
                return Err(lost(HostError::new(
                    "run in the guest",
                    path,
                    io::Error::from(io::ErrorKind::Interrupted),
                )));
            }
            if Instant::now() > deadline {
                return Err(lost(HostError::new(
                    "run in the guest",
                    path,
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("still running after {timeout:?}"),
                    ),
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Starts `path args…` in the guest (with `input` on its standard input) and returns
    /// its guest PID without waiting; [`Self::exec_status`] tells when it has ended.
    pub fn spawn(
        &mut self,
        path: &str,
        args: &[String],
        env: &[String],
        input: Option<&[u8]>,
    ) -> Result<i64, HostError> {
        let mut arguments =
            json!({ "path": path, "arg": args, "env": env, "capture-output": true });
        if let Some(input) = input {
            arguments["input-data"] =
                json!(base64::engine::general_purpose::STANDARD.encode(input));
        }
        let started = self.execute("guest-exec", Some(arguments))?;
        started
            .get("pid")
            .and_then(Value::as_i64)
            .ok_or_else(|| self.bad("guest-exec returned no pid"))
    }

    /// What a command [`Self::spawn`]ed did, once it has ended (`None` while it runs).
    pub fn exec_status(&mut self, pid: i64) -> Result<Option<GuestOutput>, HostError> {
        let st = self.execute("guest-exec-status", Some(json!({ "pid": pid })))?;
        if st.get("exited").and_then(Value::as_bool) != Some(true) {
            return Ok(None);
        }
        let data = |key: &str| {
            st.get(key)
                .and_then(Value::as_str)
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .unwrap_or_default()
        };
        let code = match (
            st.get("exitcode").and_then(Value::as_i64),
            st.get("signal").and_then(Value::as_i64),
        ) {
            (Some(c), _) => c as i32,
            (None, Some(s)) => 128 + s as i32,
            (None, None) => -1,
        };
        let cut = |key: &str| st.get(key).and_then(Value::as_bool) == Some(true);
        Ok(Some(GuestOutput {
            code,
            stdout: data("out-data"),
            stderr: data("err-data"),
            truncated: cut("out-truncated") || cut("err-truncated"),
        }))
    }

    /// The guest's interfaces, with their MACs and IPv4 addresses.
    pub fn interfaces(&mut self) -> Result<Vec<GuestInterface>, HostError> {
        let r = self.execute("guest-network-get-interfaces", None)?;
        let list = r.as_array().cloned().unwrap_or_default();
        Ok(list
            .iter()
            .map(|i| GuestInterface {
                name: i
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                mac: i
                    .get("hardware-address")
                    .and_then(Value::as_str)
                    .map(String::from),
                ipv4: i
                    .get("ip-addresses")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter(|x| {
                                x.get("ip-address-type").and_then(Value::as_str) == Some("ipv4")
                            })
                            .filter_map(|x| {
                                Some(format!(
                                    "{}/{}",
                                    x.get("ip-address")?.as_str()?,
                                    x.get("prefix")?.as_u64()?
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect())
    }
}

fn rand_u16() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (t ^ (t >> 16)) as u16
}

/// Takes this process's turn at the agent socket `path`: an exclusive lock on `<path>.lock`
/// (next to it, in the VM's directory), waiting up to `wait` while another edgenet command
/// holds it.
pub fn take_turn(path: &Path, wait: Duration) -> io::Result<std::fs::File> {
    let lock = path.with_extension("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!(
                        "busy: another edgenet command has used the socket for over {wait:?} (QEMU serves one client at a time)"
                    ),
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Whether a client QEMU has accepted is connected to the Unix socket `path`: in
/// /proc/net/unix an accepted connection carries the listener's path, state 03 (connected)
/// and an inode (a queued, not yet accepted one has inode 0). QEMU serves one client at a
/// time, so while one is there nobody else is answered.
pub fn socket_held(path: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
        return false;
    };
    let want = path.to_string_lossy();
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 8 && f[7] == want && f[5] == "03" && f[6] != "0"
    })
}

/// Waits up to `wait` for no client to hold `path` (with edgenet's turn taken, it is a
/// program other than edgenet, or an edgenet command that just ended).
fn wait_unheld(path: &Path, wait: Duration) -> io::Result<()> {
    let deadline = Instant::now() + wait;
    while socket_held(path) {
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "busy: a program other than edgenet has held the socket for over {wait:?} (QEMU serves one client at a time; `ss -xp` shows it)"
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn an_accepted_client_holds_a_socket_and_a_queued_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(!socket_held(&path));
        let _queued = UnixStream::connect(&path).unwrap();
        assert!(!socket_held(&path), "queued, not accepted");
        let (_accepted, _) = listener.accept().unwrap();
        assert!(socket_held(&path));
        let e = wait_unheld(&path, Duration::from_millis(200)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ResourceBusy);
    }

    #[test]
    fn edgenet_clients_take_turns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let first = take_turn(&path, Duration::from_millis(10)).unwrap();
        let e = take_turn(&path, Duration::from_millis(200)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ResourceBusy);
        assert!(e.to_string().contains("busy"), "{e}");
        drop(first);
        take_turn(&path, Duration::from_millis(10)).unwrap();
    }
}
