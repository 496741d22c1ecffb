//! QEMU processes of `vm` nodes: started daemonized with a pidfile, a QMP socket and a guest
//! agent socket in the node's directory; the node's disk as a copy-on-write overlay; its
//! cloud-init seed as a `cidata` ISO; and whether KVM really runs a guest here.
//!
//! QEMU's only network is the tap it is given (`-netdev tap`): never user-mode networking.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgenet_core::mac::MacAddr;

use crate::error::HostError;

pub const QEMU: &str = "qemu-system-x86_64";

/// The files of one VM in its directory.
#[derive(Debug, Clone)]
pub struct VmFiles {
    pub dir: PathBuf,
}

impl VmFiles {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        VmFiles { dir: dir.into() }
    }
    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }
    pub fn qmp(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }
    pub fn agent(&self) -> PathBuf {
        self.dir.join("agent.sock")
    }
    pub fn console(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    pub fn disk(&self) -> PathBuf {
        self.dir.join("disk.qcow2")
    }
    pub fn seed(&self) -> PathBuf {
        self.dir.join("seed.iso")
    }
    pub fn seed_dir(&self) -> PathBuf {
        self.dir.join("seed")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// `KVM` / `TCG`, as messages name them.
    pub fn label(self) -> &'static str {
        match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
        }
    }

    /// `kvm` / `tcg` (what [`Accel::as_str`] writes); `None` for anything else.
    pub fn parse(s: &str) -> Option<Accel> {
        match s {
            "kvm" => Some(Accel::Kvm),
            "tcg" => Some(Accel::Tcg),
            _ => None,
        }
    }
}

/// The accelerator a running QEMU was started with, read from its command line in /proc
/// (`-machine …,accel=X`, `-accel X` or `-enable-kvm`); `None` when it cannot be read or names
/// none (QEMU then picks its default, which edgenet never relies on).
pub fn running_accel(pid: u32) -> Option<Accel> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).to_string())
        .collect();
    accel_of_args(&args)
}

/// The accelerator QEMU's arguments `args` ask for (see [`running_accel`]); the last one wins,
/// as in QEMU.
pub fn accel_of_args(args: &[String]) -> Option<Accel> {
    let mut accel = None;
    for (i, a) in args.iter().enumerate() {
        let value = args.get(i + 1).map(String::as_str).unwrap_or("");
        match a.as_str() {
            "-machine" | "-M" => {
                if let Some(v) = value.split(',').find_map(|opt| opt.strip_prefix("accel=")) {
                    // `accel=kvm:tcg` (a fallback list): the first is what QEMU tries.
                    accel = Accel::parse(v.split(':').next().unwrap_or(v)).or(accel);
                }
            }
            "-accel" => {
                let v = value.split(',').next().unwrap_or("");
                accel = Accel::parse(v.strip_prefix("accel=").unwrap_or(v)).or(accel);
            }
            "-enable-kvm" => accel = Some(Accel::Kvm),
            _ => {}
        }
    }
    accel
}

/// How to start one VM.
#[derive(Debug, Clone)]
pub struct VmSpec<'a> {
    pub name: &'a str,
    pub files: &'a VmFiles,
    pub accel: Accel,
    pub cpus: u32,
    pub memory_mb: u32,
    pub kernel: Option<&'a Path>,
    pub initrd: Option<&'a Path>,
    pub tap: &'a str,
    pub mac: MacAddr,
}

fn run(cmd: &mut Command, what: &str) -> Result<(), HostError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HostError::new(format!("run {what}"), "", e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(HostError::new(
        format!("run {what}"),
        "",
        io::Error::other({
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if stderr.is_empty() {
                // Killed while it daemonized, say: nothing on stderr to quote.
                format!("{}, with nothing on stderr (was it killed?)", out.status)
            } else {
                format!("{}: {stderr}", out.status)
            }
        }),
    ))
}

/// A value inside a QEMU option list (`-drive file=...,if=...`): a comma is doubled, else
/// QEMU would read what follows it as further options.
pub fn opt_escape(value: &str) -> String {
    value.replace(',', ",,")
}

/// The arguments QEMU gets (without the program name).
pub fn args(spec: &VmSpec<'_>) -> Vec<String> {
    let f = spec.files;
    let p = |p: PathBuf| p.display().to_string();
    // Paths inside option lists; `-serial file:` and `-pidfile` take theirs verbatim.
    let o = |path: PathBuf| opt_escape(&path.display().to_string());
    let mut a: Vec<String> = vec![
        "-name".into(),
        spec.name.into(),
        "-machine".into(),
        format!("q35,accel={}", spec.accel.as_str()),
        "-smp".into(),
        spec.cpus.to_string(),
        "-m".into(),
        spec.memory_mb.to_string(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
        "-serial".into(),
        format!("file:{}", p(f.console())),
        "-drive".into(),
        format!("file={},if=virtio,format=qcow2", o(f.disk())),
        "-drive".into(),
        format!("file={},if=virtio,format=raw,readonly=on", o(f.seed())),
        // The tap edgenet made and put on the switch; QEMU never makes a network of its own.
        "-netdev".into(),
        format!("tap,id=n0,ifname={},script=no,downscript=no", spec.tap),
        "-device".into(),
        format!("virtio-net-pci,netdev=n0,mac={}", spec.mac),
        "-chardev".into(),
        format!("socket,id=qga0,path={},server=on,wait=off", o(f.agent())),
        "-device".into(),
        "virtio-serial".into(),
        "-device".into(),
        "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0".into(),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", o(f.qmp())),
        "-pidfile".into(),
        p(f.pidfile()),
        "-daemonize".into(),
    ];
    if let Some(k) = spec.kernel {
        a.extend(["-kernel".into(), k.display().to_string()]);
        a.extend(["-append".into(), "console=ttyS0 quiet".into()]);
    }
    if let Some(i) = spec.initrd {
        a.extend(["-initrd".into(), i.display().to_string()]);
    }
    a
}

/// Starts the VM; returns once QEMU has daemonized (its sockets exist) with its PID.
pub fn start(spec: &VmSpec<'_>) -> Result<u32, HostError> {
    let f = spec.files;
    for stale in [f.pidfile(), f.qmp(), f.agent()] {
        let _ = std::fs::remove_file(stale);
    }
    run(Command::new(QEMU).args(args(spec)), QEMU)?;
    running_pid(f).ok_or_else(|| {
        HostError::new(
            "start VM",
            spec.name,
            io::Error::other(format!(
                "{QEMU} daemonized but {} names no live QEMU",
                f.pidfile().display()
            )),
        )
    })
}

/// The PID of this VM's QEMU: the pidfile's PID if that process is alive and is this VM's
/// QEMU (its command line names this pidfile), else a QEMU found in /proc whose command line
/// names this pidfile (the pidfile was deleted, or holds another process's PID). A reused PID
/// or another QEMU is never taken for it.
pub fn running_pid(files: &VmFiles) -> Option<u32> {
    let pidfile = files.pidfile().display().to_string();
    std::fs::read_to_string(files.pidfile())
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .filter(|pid| qemu_with_pidfile(*pid, &pidfile))
        .or_else(|| find_qemu_with_pidfile(&pidfile))
}

/// Whether `pid` is a live (not zombie) QEMU started with `-pidfile <pidfile>`.
pub fn qemu_with_pidfile(pid: u32, pidfile: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_qemu = args.first().is_some_and(|a0| {
        Path::new(std::ffi::OsStr::from_bytes(a0))
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("qemu-system-"))
    });
    let ours = args
        .windows(2)
        .any(|w| w[0] == b"-pidfile" && w[1] == pidfile.as_bytes());
    // A zombie (killed, not yet reaped) counts as dead.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = state
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    is_qemu && ours && !zombie
}

/// A QEMU in /proc started with `-pidfile <pidfile>`.
pub fn find_qemu_with_pidfile(pidfile: &str) -> Option<u32> {
    crate::procfs::pids().find(|pid| qemu_with_pidfile(*pid, pidfile))
}

/// The `-pidfile` argument of a live QEMU process, if it has one.
pub fn qemu_pidfile_arg(pid: u32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let a0 = String::from_utf8_lossy(args.first()?);
    if !Path::new(a0.as_ref())
        .file_name()?
        .to_string_lossy()
        .starts_with("qemu-system-")
    {
        return None;
    }
    args.windows(2)
        .find(|w| w[0] == b"-pidfile")
        .map(|w| String::from_utf8_lossy(w[1]).to_string())
}

/// Waits until the process `pid` is gone.
pub fn wait_gone(files: &VmFiles, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if running_pid(files).is_none() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    running_pid(files).is_none()
}

/// Kills the VM's QEMU (the PID of its pidfile, checked to be that QEMU).
pub fn kill(files: &VmFiles) -> Result<bool, HostError> {
    let Some(pid) = running_pid(files) else {
        return Ok(false);
    };
    // A PID just checked to be this VM's QEMU.
    if let Err(e) = sigkill(pid) {
        return Err(HostError::new("kill QEMU", pid.to_string(), e.into()));
    }
    wait_gone(files, Duration::from_secs(5));
    Ok(true)
}

/// The node's disk: a qcow2 overlay of `base` (qcow2 or raw, detected), `size_gb` large.
pub fn create_overlay(base: &Path, overlay: &Path, size_gb: u32) -> Result<(), HostError> {
    let format = image_format(base)?;
    run(
        Command::new("qemu-img").args([
            "create".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            "-b".as_ref(),
            base.as_os_str(),
            "-F".as_ref(),
            format.as_ref(),
            overlay.as_os_str(),
            format!("{size_gb}G").as_ref(),
        ]),
        "qemu-img create",
    )
}

/// The virtual size of an image, in bytes.
pub fn image_size(path: &Path) -> Result<u64, HostError> {
    let info = image_info(path)?;
    Ok(info
        .get("virtual-size")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0))
}

/// The backing file of an overlay, as `qemu-img info` names it (`None`: none).
pub fn backing_file(path: &Path) -> Result<Option<PathBuf>, HostError> {
    let info = image_info(path)?;
    Ok(info
        .get("full-backing-filename")
        .or_else(|| info.get("backing-filename"))
        .and_then(serde_json::Value::as_str)
        .map(PathBuf::from))
}

/// `qcow2` or `raw` (what `qemu-img info` detects).
pub fn image_format(path: &Path) -> Result<String, HostError> {
    let info = image_info(path)?;
    Ok(info
        .get("format")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("raw")
        .to_string())
}

fn image_info(path: &Path) -> Result<serde_json::Value, HostError> {
    let out = Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HostError::new("run qemu-img info", path.display().to_string(), e))?;
    if !out.status.success() {
        return Err(HostError::new(
            "read image",
            path.display().to_string(),
            io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        HostError::new(
            "read image",
            path.display().to_string(),
            io::Error::other(e),
        )
    })
}

/// Grows the overlay to `size_gb` (never shrinks: that would cut the guest's filesystem).
pub fn grow(overlay: &Path, size_gb: u32) -> Result<bool, HostError> {
    let want = u64::from(size_gb) << 30;
    if image_size(overlay)? >= want {
        return Ok(false);
    }
    run(
        Command::new("qemu-img")
            .args(["resize", "-q"])
            .arg(overlay)
            .arg(format!("{size_gb}G")),
        "qemu-img resize",
    )?;
    Ok(true)
}

/// Writes the NoCloud seed volume: an ISO 9660 image labelled `cidata` with the files of
/// `dir` (meta-data, user-data, network-config).
pub fn make_seed_iso(dir: &Path, out: &Path) -> Result<(), HostError> {
    let tmp = out.with_extension("iso.tmp");
    run(
        Command::new("genisoimage")
            .args(["-quiet", "-volid", "cidata", "-joliet", "-rock", "-output"])
            .arg(&tmp)
            .arg(dir),
        "genisoimage",
    )?;
    std::fs::rename(&tmp, out)
        .map_err(|e| HostError::new("write seed", out.display().to_string(), e))
}

/// Whether KVM really runs a guest here (an open /dev/kvm is not enough: on some hosts a KVM
/// guest never runs, or runs real mode but never gets a Linux kernel going). With `kernel`
/// (the guest's own kernel), boots it under KVM and waits for its first line on the serial
/// console; without one, boots a one-sector guest that writes to QEMU's debug-exit port. KVM
/// works when that happens within `timeout`.
pub fn kvm_works(scratch: &Path, kernel: Option<&Path>, timeout: Duration) -> bool {
    kill_leftover_probe(scratch);
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return false;
    }
    match kernel {
        Some(kernel) => kvm_boots_kernel(scratch, kernel, timeout),
        None => kvm_runs_real_mode(scratch, timeout),
    }
}

/// The probe's QEMU: its pidfile in `scratch` (so a later run finds a probe left by a run that
/// was killed), and SIGKILL when edgenet dies (so it never outlives the probe).
fn probe_command(scratch: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(QEMU);
    cmd.arg("-pidfile").arg(probe_pidfile(scratch));
    // SAFETY: prctl(2) only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn probe_pidfile(scratch: &Path) -> PathBuf {
    scratch.join("kvm-probe.pid")
}

/// Kills a KVM probe an earlier run left in `scratch` (a QEMU proven to be it: its command
/// line names the probe's pidfile); `true` when there was one.
pub fn kill_leftover_probe(scratch: &Path) -> bool {
    let pidfile = probe_pidfile(scratch);
    let path = pidfile.display().to_string();
    let mut killed = false;
    while let Some(pid) = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .filter(|pid| qemu_with_pidfile(*pid, &path))
        .or_else(|| find_qemu_with_pidfile(&path))
    {
        // A QEMU whose command line names this probe's pidfile.
        let _ = sigkill(pid);
        killed = true;
        let deadline = Instant::now() + Duration::from_secs(2);
        while qemu_with_pidfile(pid, &path) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if qemu_with_pidfile(pid, &path) {
            break;
        }
    }
    let _ = std::fs::remove_file(&pidfile);
    killed
}

/// Boots `kernel` under KVM (no disk, no network: it panics at once for want of a root) and
/// watches the serial console for the kernel's banner.
fn kvm_boots_kernel(scratch: &Path, kernel: &Path, timeout: Duration) -> bool {
    let console = scratch.join("kvm-probe.console");
    let _ = std::fs::remove_file(&console);
    let child = probe_command(scratch)
        .args([
            "-machine",
            "pc,accel=kvm",
            "-m",
            "128",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-net",
            "none",
            "-no-reboot",
            "-serial",
        ])
        .arg(format!("file:{}", console.display()))
        .arg("-kernel")
        .arg(kernel)
        .args(["-append", "console=ttyS0 panic=-1"])
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    let deadline = Instant::now() + timeout;
    let booted = loop {
        let seen = std::fs::read(&console)
            .map(|b| String::from_utf8_lossy(&b).contains("Linux version"))
            .unwrap_or(false);
        if seen {
            break true;
        }
        match child.try_wait() {
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&console);
    let _ = std::fs::remove_file(probe_pidfile(scratch));
    booted
}

fn kvm_runs_real_mode(scratch: &Path, timeout: Duration) -> bool {
    // mov al,1; out 0xf4,al; hlt — then the boot signature.
    let mut sector = vec![0u8; 512];
    sector[..5].copy_from_slice(&[0xb0, 0x01, 0xe6, 0xf4, 0xf4]);
    sector[510] = 0x55;
    sector[511] = 0xaa;
    let image = scratch.join("kvm-probe.img");
    if std::fs::write(&image, &sector).is_err() {
        return false;
    }
    let child = probe_command(scratch)
        .args([
            "-machine",
            "pc,accel=kvm",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
        ])
        .args([
            "-net",
            "none",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-drive",
        ])
        .arg(format!(
            "file={},format=raw,if=floppy",
            opt_escape(&image.display().to_string())
        ))
        .spawn();
    let Ok(mut child) = child else {
        let _ = std::fs::remove_file(&image);
        return false;
    };
    let deadline = Instant::now() + timeout;
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let _ = std::fs::remove_file(&image);
    let _ = std::fs::remove_file(probe_pidfile(scratch));
    // isa-debug-exit exits with (value << 1) | 1.
    code == Some(3)
}

/// SIGKILL to `pid` (callers check first that it is the QEMU they mean).
fn sigkill(pid: u32) -> nix::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| nix::errno::Errno::ESRCH)?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_in_paths_inside_option_lists_are_doubled() {
        let files = VmFiles::new("/tmp/a,b/state/vm/n-1");
        let spec = VmSpec {
            name: "n",
            files: &files,
            accel: Accel::Tcg,
            cpus: 1,
            memory_mb: 256,
            kernel: Some(Path::new("/img/k,1")),
            initrd: None,
            tap: "en1l",
            mac: "02:00:00:00:00:01".parse().unwrap(),
        };
        let a = args(&spec);
        let after = |flag: &str, prefix: &str| {
            a.windows(2)
                .filter(|w| w[0] == flag && w[1].starts_with(prefix))
                .map(|w| w[1].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            after("-drive", "file="),
            vec![
                "file=/tmp/a,,b/state/vm/n-1/disk.qcow2,if=virtio,format=qcow2",
                "file=/tmp/a,,b/state/vm/n-1/seed.iso,if=virtio,format=raw,readonly=on",
            ]
        );
        assert_eq!(
            after("-chardev", "socket"),
            vec!["socket,id=qga0,path=/tmp/a,,b/state/vm/n-1/agent.sock,server=on,wait=off"]
        );
        assert_eq!(
            after("-qmp", "unix:"),
            vec!["unix:/tmp/a,,b/state/vm/n-1/qmp.sock,server=on,wait=off"]
        );
        // Verbatim where QEMU takes the whole value as the path.
        assert_eq!(
            after("-serial", "file:"),
            vec!["file:/tmp/a,b/state/vm/n-1/console.log"]
        );
        assert_eq!(
            after("-pidfile", "/"),
            vec!["/tmp/a,b/state/vm/n-1/qemu.pid"]
        );
        assert_eq!(after("-kernel", "/"), vec!["/img/k,1"]);
    }

    #[test]
    fn the_accelerator_is_read_back_from_qemu_s_arguments() {
        let files = VmFiles::new("/tmp/v/n-1");
        for accel in [Accel::Kvm, Accel::Tcg] {
            let spec = VmSpec {
                name: "n",
                files: &files,
                accel,
                cpus: 1,
                memory_mb: 256,
                kernel: None,
                initrd: None,
                tap: "en1l",
                mac: "02:00:00:00:00:01".parse().unwrap(),
            };
            let mut a = vec![QEMU.to_string()];
            a.extend(args(&spec));
            assert_eq!(accel_of_args(&a), Some(accel));
        }
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            accel_of_args(&v(&["qemu", "-accel", "kvm", "-m", "1"])),
            Some(Accel::Kvm)
        );
        assert_eq!(
            accel_of_args(&v(&["qemu", "-enable-kvm"])),
            Some(Accel::Kvm)
        );
        assert_eq!(
            accel_of_args(&v(&["qemu", "-machine", "q35,accel=tcg:kvm"])),
            Some(Accel::Tcg)
        );
        assert_eq!(accel_of_args(&v(&["qemu", "-machine", "q35"])), None);
        assert_eq!(running_accel(std::process::id()), None);
    }

    #[test]
    fn a_process_is_taken_for_a_vm_s_qemu_only_with_its_pidfile() {
        // This test process is no QEMU, whatever its arguments.
        let me = std::process::id();
        assert!(!qemu_with_pidfile(me, "/nonexistent/qemu.pid"));
        assert_eq!(qemu_pidfile_arg(me), None);
        assert_eq!(find_qemu_with_pidfile("/nonexistent/f11a/qemu.pid"), None);
        // A pidfile naming a process that is not this VM's QEMU is ignored.
        let dir = std::env::temp_dir().join(format!("edgenet-qemu-pid-{me}"));
        std::fs::create_dir_all(&dir).unwrap();
        let files = VmFiles::new(&dir);
        std::fs::write(files.pidfile(), me.to_string()).unwrap();
        assert_eq!(running_pid(&files), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
