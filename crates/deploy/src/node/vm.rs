//! The `vm` runtime: each node is a QEMU virtual machine (KVM when a guest really runs under
//! it, TCG otherwise) whose virtio NIC, with the node's MAC, sits on a persistent tap that is
//! a port of the switch. The guest configures itself from a cloud-init NoCloud seed edgenet
//! writes ([`super::seed`]); `node exec`/`node addr` and `status` read it through the QEMU
//! guest agent; QEMU itself is controlled over QMP.
//!
//! Per node, `<state dir>/vm/<node>-<id>/` holds the disk overlay, the seed, the pidfile, the
//! QMP and agent sockets and the serial console log; `remove` deletes it with the VM.

use std::path::{Path, PathBuf};
use std::time::Duration;

use edgenet_core::plan::{NodeKind, NodePlan, Plan};
use edgenet_host::guest_agent::GuestAgent;
use edgenet_host::qemu::{self, Accel, VmFiles, VmSpec};
use edgenet_host::qmp::Qmp;
use edgenet_host::tap;

use super::seed::{self, SeedFile};
use super::{NodeLive, NodeRef, NodeRuntime, NodeSpec, VmLive};
use crate::error::{io_err, DeployError};
use crate::journal::{Journal, Ownership};
use crate::kernel::Kernel;
use crate::names::NODE_IFNAME;
use crate::state::ObjectKind;

/// AKS Edge Essentials' defaults for a Linux node.
pub const DEFAULT_CPUS: u32 = 4;
pub const DEFAULT_MEMORY_MB: u32 = 4096;
pub const DEFAULT_DATA_GB: u32 = 10;

/// How long after QEMU's start a guest agent that does not answer is taken for a guest still
/// booting (a notice) rather than a problem (drift): edgenet's test guest answers within ~10 s
/// under TCG, a cloud image's first boot under TCG can take a minute or more.
pub const BOOT_GRACE: Duration = Duration::from_secs(120);

/// How long `node exec` and `node addr` wait for the guest agent socket while another
/// edgenet command uses it.
pub const BUSY_WAIT: Duration = Duration::from_secs(30);

/// How long `remove` waits for a guest to power off after the power button before QEMU is
/// told to quit (`EDGENET_VM_STOP_TIMEOUT`, seconds).
pub fn stop_timeout() -> Duration {
    let secs = std::env::var("EDGENET_VM_STOP_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}

/// The guest image, checked to exist (paths from `Edgenet.VmImage`/`VmKernel`/`VmInitrd`).
#[derive(Debug, Clone)]
pub struct Image {
    pub disk: PathBuf,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    /// A Windows node's disk (`Edgenet.WindowsVmImage`), booted from its own boot loader.
    pub windows_disk: Option<PathBuf>,
}

impl Image {
    /// Checks the plan's image fields and the tools the runtime needs; changes nothing.
    pub fn from_plan(plan: &Plan) -> Result<Image, DeployError> {
        let v = &plan.vm_image;
        let check = |field: &str, value: &Option<String>, required: bool| {
            let Some(p) = value else {
                if required {
                    return Err(DeployError::Unsupported(format!(
                        "Edgenet.{field} is not set: the \"vm\" node runtime needs a base disk image \
                         (qcow2 or raw, e.g. a Debian or Ubuntu cloud image); or build edgenet's test \
                         guest with scripts/build-guest-image.sh and set Edgenet.VmImage, VmKernel and \
                         VmInitrd to its disk.qcow2, vmlinuz and initrd.img"
                    )));
                }
                return Ok(None);
            };
            let path = PathBuf::from(p);
            if !path.is_absolute() || !path.is_file() {
                return Err(DeployError::Unsupported(format!(
                    "Edgenet.{field} is {p:?}, which is not {}: give the absolute path of an existing file",
                    if path.is_absolute() { "an existing file" } else { "an absolute path" }
                )));
            }
            Ok(Some(path))
        };
        let linux = plan.nodes.iter().any(|n| n.kind == NodeKind::Linux);
        let disk = check("VmImage", &v.image, linux)?.unwrap_or_default();
        let kernel = check("VmKernel", &v.kernel, false)?;
        let initrd = check("VmInitrd", &v.initrd, false)?;
        let windows = plan.nodes.iter().any(|n| n.kind == NodeKind::Windows);
        let windows_disk = check("WindowsVmImage", &v.windows_image, windows)?;
        if initrd.is_some() && kernel.is_none() {
            return Err(DeployError::Unsupported(
                "Edgenet.VmInitrd is set without Edgenet.VmKernel: an initrd is booted with its kernel; set both or neither".into(),
            ));
        }
        for (tool, package) in [
            (qemu::QEMU, "qemu-system-x86"),
            ("qemu-img", "qemu-utils"),
            ("genisoimage", "genisoimage"),
        ] {
            if !on_path(tool) {
                return Err(DeployError::Unsupported(format!(
                    "the \"vm\" node runtime needs {tool}, which is not installed: install the Debian package {package} (scripts/deps.sh installs everything)"
                )));
            }
        }
        for (name, size) in plan.nodes.iter().map(|n| (n.name.as_str(), n.size)) {
            if size.cpu_count == Some(0) || size.memory_in_mb.is_some_and(|m| m < 64) {
                return Err(DeployError::Unsupported(format!(
                    "node {name}: CpuCount must be at least 1 and MemoryInMB at least 64"
                )));
            }
        }
        Ok(Image {
            disk,
            kernel,
            initrd,
            windows_disk,
        })
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// A VM's directory: `<state dir>/vm/<guest>` (also its state record's name).
pub fn vm_dir(state_dir: &Path, guest: &str) -> PathBuf {
    state_dir.join("vm").join(guest)
}

pub struct VmRuntime {
    pub state_dir: PathBuf,
    pub image: Option<Image>,
    pub plan: Plan,
}

impl VmRuntime {
    /// KVM when a guest really runs under it here, TCG otherwise; probed once per state
    /// directory (`EDGENET_VM_ACCEL=kvm|tcg` decides instead).
    pub fn accel(&self) -> Accel {
        match std::env::var("EDGENET_VM_ACCEL").as_deref() {
            Ok("kvm") => return Accel::Kvm,
            Ok("tcg") => return Accel::Tcg,
            _ => {}
        }
        let cache = self.state_dir.join("vm").join("accel");
        match std::fs::read_to_string(&cache).as_deref().map(str::trim) {
            Ok("kvm") => return Accel::Kvm,
            Ok("tcg") => return Accel::Tcg,
            _ => {}
        }
        // The guest's own kernel when it has one: a real-mode probe passes on hosts where a
        // Linux guest never boots under KVM.
        let kernel = self.image.as_ref().and_then(|i| i.kernel.as_deref());
        let accel = if qemu::kvm_works(&self.state_dir.join("vm"), kernel, Duration::from_secs(3)) {
            Accel::Kvm
        } else {
            Accel::Tcg
        };
        let _ = std::fs::write(&cache, accel.as_str());
        accel
    }

    fn rendered_files(&self, node: &NodePlan) -> Vec<SeedFile> {
        // `edgenet render`'s files for this node (K3s/kubeadm configuration), so a cloud
        // image boots with them in place. A plan render refuses is simply left out.
        match edgenet_render::render(&self.plan, &edgenet_render::RenderOptions::default()) {
            Ok(r) => r
                .files
                .into_iter()
                .filter(|f| f.node == node.name)
                .map(|f| SeedFile {
                    path: f.path,
                    content: f.contents,
                    mode: f.mode,
                    append: false,
                })
                .collect(),
            Err(e) => {
                tracing::debug!("no rendered files for {}: {e}", node.name);
                Vec::new()
            }
        }
    }

    fn ensure_tap(
        &self,
        nl: &mut dyn Kernel,
        node: &NodeSpec<'_>,
        own: &Ownership,
        j: &mut dyn Journal,
    ) -> Result<(), DeployError> {
        let name = node.host_link.as_str();
        match nl.link(name)? {
            None => {
                j.will_create(ObjectKind::Tap, name, None)?;
                tap::create(name)?;
                nl.set_group(name, own.group)?;
                nl.set_alias(name, &own.alias)?;
                nl.set_mtu(name, node.mtu)?;
                j.created(ObjectKind::Tap, name, None)?;
                j.changed(format!(
                    "created tap {name} for {} (MTU {})",
                    node.plan.name, node.mtu
                ));
            }
            Some(link) if !own.owns(&link) || link.kind.as_deref() != Some("tun") => {
                return Err(DeployError::Foreign {
                    what: "interface",
                    name: name.to_string(),
                    hint: format!(
                        "it is not a tap carrying this deployment's mark ({}); delete it if it is left over",
                        own.alias
                    ),
                });
            }
            Some(link) => {
                if link.mtu != node.mtu {
                    nl.set_mtu(name, node.mtu)?;
                    j.changed(format!("set MTU {} on {name} (was {})", node.mtu, link.mtu));
                }
            }
        }
        super::join_switch(nl, name, node.switch, j)?;
        j.step("node-link")?;
        Ok(())
    }
}

impl NodeRuntime for VmRuntime {
    fn ensure(
        &self,
        nl: &mut dyn Kernel,
        node: &NodeSpec<'_>,
        own: &Ownership,
        j: &mut dyn Journal,
    ) -> Result<(), DeployError> {
        let mut image = match &self.image {
            Some(i) => i.clone(),
            None => Image::from_plan(&self.plan)?,
        };
        if node.plan.kind == NodeKind::Windows {
            // Never the Linux image (nor its kernel) for a Windows node.
            image = Image {
                disk: image.windows_disk.clone().unwrap_or_default(),
                kernel: None,
                initrd: None,
                windows_disk: None,
            };
        }
        self.ensure_tap(nl, node, own, j)?;

        let dir = vm_dir(&self.state_dir, &node.guest);
        let record = dir.display().to_string();
        let files = VmFiles::new(&dir);
        j.will_create(ObjectKind::Vm, &record, None)?;
        std::fs::create_dir_all(files.seed_dir()).map_err(io_err("create", &dir))?;
        {
            use std::os::unix::fs::PermissionsExt;
            // The seed carries the proxy (maybe with credentials) and rendered secrets.
            for d in [dir.parent().unwrap_or(&dir), dir.as_path()] {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                    .map_err(io_err("protect", d))?;
            }
        }
        let size_gb = node.plan.size.data_size_in_gb.unwrap_or(DEFAULT_DATA_GB);
        if !files.disk().exists() {
            let base_gb = qemu::image_size(&image.disk)?.div_ceil(1 << 30) as u32;
            qemu::create_overlay(&image.disk, &files.disk(), size_gb.max(base_gb))?;
            j.changed(format!(
                "created {}'s disk ({} GB overlay of {})",
                node.plan.name,
                size_gb.max(base_gb),
                image.disk.display()
            ));
        } else if qemu::grow(&files.disk(), size_gb)? {
            j.changed(format!("grew {}'s disk to {size_gb} GB", node.plan.name));
        }

        let extra = self.rendered_files(node.plan);
        let seed = seed::build(
            node.plan,
            node.mac,
            node.mtu,
            &seed::guest_files(&self.plan, node.plan, extra),
        );
        let mut seed_changed = !files.seed().exists();
        for (name, content) in seed.files() {
            let path = files.seed_dir().join(name);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(content) {
                std::fs::write(&path, content).map_err(io_err("write", &path))?;
                seed_changed = true;
            }
        }
        if seed_changed {
            qemu::make_seed_iso(&files.seed_dir(), &files.seed())?;
        }
        j.step("node-seed")?;

        let running = qemu::running_pid(&files).is_some();
        if running && seed_changed {
            j.changed(format!(
                "wrote {}'s new cloud-init seed: the running guest applies it at its next boot",
                node.plan.name
            ));
        }
        if !running {
            let accel = self.accel();
            let spec = VmSpec {
                name: &node.plan.name,
                files: &files,
                accel,
                cpus: node.plan.size.cpu_count.unwrap_or(DEFAULT_CPUS),
                memory_mb: node.plan.size.memory_in_mb.unwrap_or(DEFAULT_MEMORY_MB),
                kernel: image.kernel.as_deref(),
                initrd: image.initrd.as_deref(),
                tap: &node.host_link,
                mac: node.mac,
            };
            let pid = qemu::start(&spec)?;
            j.changed(format!(
                "started VM {} (QEMU pid {pid}, {})",
                node.plan.name,
                accel.as_str().to_uppercase()
            ));
        }
        j.created(ObjectKind::Vm, &record, None)?;
        j.step("node-vm")?;
        Ok(())
    }

    fn remove(&self, _k: &mut dyn Kernel, node: &NodeRef<'_>) -> Result<bool, DeployError> {
        stop(&vm_dir(&self.state_dir, node.guest))
    }

    fn live(&self, nl: &mut dyn Kernel, node: &NodeRef<'_>) -> Result<NodeLive, DeployError> {
        let files = VmFiles::new(vm_dir(&self.state_dir, node.guest));
        let mut live = NodeLive {
            name: node.name.to_string(),
            netns: node.guest.to_string(),
            present: false,
            up: false,
            addresses: Vec::new(),
            mac: None,
            mtu: None,
            gateway: None,
            on_switch: nl
                .link(node.host_link)?
                .is_some_and(|l| l.master.as_deref() == Some(node.switch)),
            vm: None,
        };
        let Some(pid) = qemu::running_pid(&files) else {
            live.vm = Some(VmLive {
                pid: None,
                run_state: "not running".into(),
                agent: false,
                agent_state: "-".into(),
                uptime: None,
                seed_pending: false,
            });
            return Ok(live);
        };
        let run_state = if edgenet_host::guest_agent::socket_held(&files.qmp()) {
            Err(edgenet_host::HostError::new(
                "connect to QMP",
                files.qmp().display().to_string(),
                std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    "another client holds it (QEMU serves one at a time)",
                ),
            ))
        } else {
            Qmp::connect(&files.qmp(), Duration::from_secs(2))
        }
        .and_then(|mut q| q.status())
        .unwrap_or_else(|e| match e.io_error().kind() {
            // QEMU serves one QMP client at a time: another one holds the socket.
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                format!("busy (another client holds its QMP socket: {e})")
            }
            _ => format!("unknown ({e})"),
        });
        live.present = run_state == "running";
        let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let started = modified(files.pidfile());
        let uptime = started.and_then(|t| t.elapsed().ok());
        let seed_pending = matches!((modified(files.seed()), started), (Some(s), Some(q)) if s > q);
        let mut vm = VmLive {
            pid: Some(pid),
            run_state,
            agent: false,
            agent_state: "not answering".into(),
            uptime: uptime.map(|u| u.as_secs()),
            seed_pending,
        };
        // status waits less than `node exec` for a busy socket: it only reads.
        let connected = GuestAgent::connect_waiting(
            &files.agent(),
            Duration::from_millis(1500),
            Duration::from_secs(5),
        );
        if let Err(e) = &connected {
            if e.io_error().kind() == std::io::ErrorKind::ResourceBusy {
                vm.agent_state = "busy".into();
            } else if uptime.is_some_and(|u| u < BOOT_GRACE) && live.present {
                vm.agent_state = "booting".into();
            }
        }
        if let Ok(mut ga) = connected {
            vm.agent = true;
            vm.agent_state = "up".into();
            if let Ok(ifaces) = ga.interfaces() {
                if let Some(eth0) = ifaces.into_iter().find(|i| i.name == NODE_IFNAME) {
                    live.up = true;
                    live.mac = eth0.mac;
                    live.addresses = eth0.ipv4;
                }
            }
            let read = ga.exec(
                "cat",
                &[
                    format!("/sys/class/net/{NODE_IFNAME}/mtu"),
                    "/proc/net/route".into(),
                ],
                &["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()],
                Duration::from_secs(10),
            );
            if let Ok(out) = read {
                let text = String::from_utf8_lossy(&out.stdout);
                let mut lines = text.lines();
                live.mtu = lines.next().and_then(|l| l.trim().parse().ok());
                live.gateway = lines.find_map(default_gateway);
            }
        }
        live.vm = Some(vm);
        Ok(live)
    }
}

/// The gateway of a `/proc/net/route` line of the default route (little-endian hex).
fn default_gateway(line: &str) -> Option<String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 3 || f[1] != "00000000" || f[2] == "00000000" {
        return None;
    }
    let g = u32::from_str_radix(f[2], 16).ok()?;
    Some(std::net::Ipv4Addr::from(g.to_le_bytes()).to_string())
}

/// Stops the VM of `dir` and deletes the directory: the power button over QMP, then `quit`
/// after [`stop_timeout`], then (a QEMU that answers nothing) SIGKILL of the pidfile's QEMU.
/// `Ok(false)` when there was nothing left.
pub fn stop(dir: &Path) -> Result<bool, DeployError> {
    let files = VmFiles::new(dir);
    let existed = dir.exists();
    if qemu::running_pid(&files).is_some() {
        let stopped = Qmp::connect(&files.qmp(), Duration::from_secs(2)).is_ok_and(|mut q| {
            (q.powerdown().is_ok() && qemu::wait_gone(&files, stop_timeout()))
                || (q.quit().is_ok() && qemu::wait_gone(&files, Duration::from_secs(5)))
        });
        if !stopped {
            qemu::kill(&files)?;
        }
    }
    // Only a directory that is a VM's (edgenet's files in it) is deleted.
    if existed && dir.parent().and_then(Path::file_name) == Some("vm".as_ref()) {
        std::fs::remove_dir_all(dir).map_err(io_err("delete", dir))?;
    }
    Ok(existed)
}

/// Connects to a node's guest agent, waiting up to `wait` for it to come up; the error says
/// what to do while it is not up yet.
pub fn agent(state_dir: &Path, guest: &str, wait: Duration) -> Result<GuestAgent, String> {
    let files = VmFiles::new(vm_dir(state_dir, guest));
    if qemu::running_pid(&files).is_none() {
        return Err("its VM is not running (run `edgenet deploy` to start it again)".into());
    }
    let deadline = std::time::Instant::now() + wait;
    loop {
        match GuestAgent::connect_waiting(&files.agent(), Duration::from_secs(2), BUSY_WAIT) {
            Ok(ga) => return Ok(ga),
            Err(e) if e.io_error().kind() == std::io::ErrorKind::ResourceBusy => {
                return Err(format!(
                    "its guest agent socket is busy ({e}): another edgenet command (e.g. a long `node exec`) is using it; try again when it ends"
                ))
            }
            Err(e) if std::time::Instant::now() >= deadline => {
                return Err(format!(
                    "its guest agent does not answer ({e}): the guest is still booting, its image has no qemu-guest-agent, or a program other than edgenet holds the socket; --wait SECONDS waits for it"
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_route_gateway_reads_little_endian_hex() {
        let line = "eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0";
        assert_eq!(super::default_gateway(line).as_deref(), Some("192.168.0.1"));
        assert_eq!(
            super::default_gateway("eth0\t0000A8C0\t00000000\t0001"),
            None
        );
    }
}
