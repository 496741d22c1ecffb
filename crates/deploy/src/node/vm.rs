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
use super::vm_launch::{self, LaunchSpec};
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

/// The accelerator a deploy would start a VM with, when that is known without the probe:
/// `EDGENET_VM_ACCEL=kvm|tcg`, else the probe's answer cached in `<state dir>/vm/accel`.
/// `None`: the next deploy probes (`status` runs no probe).
pub fn chosen_accel(state_dir: &Path) -> Option<Accel> {
    if let Some(accel) = std::env::var("EDGENET_VM_ACCEL")
        .ok()
        .and_then(|v| Accel::parse(&v))
    {
        return Some(accel);
    }
    std::fs::read_to_string(state_dir.join("vm").join("accel"))
        .ok()
        .and_then(|v| Accel::parse(v.trim()))
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
        if let Some(accel) = chosen_accel(&self.state_dir) {
            return accel;
        }
        let cache = self.state_dir.join("vm").join("accel");
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
    ) -> Result<bool, DeployError> {
        let name = node.host_link.as_str();
        let mut created = false;
        match nl.link(name)? {
            None => {
                created = true;
                j.will_make(ObjectKind::Tap, name, None)?;
                tap::create(name)?;
                nl.set_group(name, own.group)?;
                nl.set_port_alias(name, &own.alias)?;
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
        super::join_switch(nl, name, node.switch, node.hairpin, j, false)?;
        j.step("node-link")?;
        Ok(created)
    }

    /// Differences between the plan and a running guest's network that deploy cannot repair
    /// (changed from inside the guest), each with its remedy. Empty when the guest agent does
    /// not answer (nothing can be read).
    fn guest_drift(&self, nl: &mut dyn Kernel, node: &NodeSpec<'_>) -> Vec<String> {
        let Ok(live) = self.live(
            nl,
            &NodeRef {
                name: &node.plan.name,
                guest: &node.guest,
                host_link: &node.host_link,
                switch: node.switch,
            },
        ) else {
            return Vec::new();
        };
        if !live.up {
            return Vec::new();
        }
        let mut what = Vec::new();
        if !live.addresses.contains(&node.plan.address.to_string()) {
            what.push(format!("lacks its address {}", node.plan.address));
        }
        if live.gateway.as_deref() != Some(node.plan.gateway.to_string().as_str()) {
            what.push(format!("has no default route via {}", node.plan.gateway));
        }
        if live.mtu.is_some_and(|m| m != node.mtu) {
            what.push(format!(
                "has MTU {} instead of {}",
                live.mtu.unwrap_or(0),
                node.mtu
            ));
        }
        what.into_iter()
            .map(|w| {
                format!(
                    "node {}: inside the guest, {NODE_IFNAME} {w} (changed inside the running guest, which deploy does not touch): reboot the node to re-apply its seed (`edgenet node exec --node-type {} -- reboot`)",
                    node.plan.name,
                    node.plan.kind.as_str()
                )
            })
            .collect()
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
        let name = node.plan.name.as_str();
        let dir = vm_dir(&self.state_dir, &node.guest);
        let record = dir.display().to_string();
        let files = VmFiles::new(&dir);

        // What would lose the guest's disk is refused before anything changes.
        let size_gb = node.plan.size.data_size_in_gb.unwrap_or(DEFAULT_DATA_GB);
        let base_gb = qemu::image_size(&image.disk)?.div_ceil(1 << 30) as u32;
        let want_gb = size_gb.max(base_gb);
        let disk_existed = files.disk().exists();
        let mut grow_to = None;
        if disk_existed {
            refuse_new_image(&files, &image, name)?;
            let now = qemu::image_size(&files.disk())?;
            if u64::from(want_gb) << 30 < now {
                return Err(DeployError::Unsupported(format!(
                    "node {name}: DataSizeInGB is {size_gb}, but its disk already has {} GB: edgenet never shrinks a node's disk (that would cut the guest's filesystem); set DataSizeInGB to {} or more, or run `edgenet remove` and deploy again for a new, empty disk",
                    now.div_ceil(1 << 30),
                    now.div_ceil(1 << 30)
                )));
            }
            grow_to = (u64::from(want_gb) << 30 > now).then_some(want_gb);
        }

        let tap_created = self.ensure_tap(nl, node, own, j)?;

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
        if !files.disk().exists() {
            qemu::create_overlay(&image.disk, &files.disk(), want_gb)?;
            j.changed(format!(
                "created {name}'s disk ({want_gb} GB overlay of {})",
                image.disk.display()
            ));
        }

        let extra = self.rendered_files(node.plan);
        let seed = seed::build(
            node.plan,
            node.mac,
            node.mtu,
            &seed::guest_files(&self.plan, node.plan, extra),
        );
        let mut seed_changed = !files.seed().exists();
        for (file, content) in seed.files() {
            let path = files.seed_dir().join(file);
            if super::files::read_back(&path).ok().as_deref() != Some(content) {
                // Not written through a link or into a FIFO left in its place.
                if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.file_type().is_file()) {
                    std::fs::remove_file(&path).map_err(io_err("replace", &path))?;
                }
                std::fs::write(&path, content).map_err(io_err("write", &path))?;
                seed_changed = true;
            }
        }
        if seed_changed {
            // A new file (renamed over the old one): a running QEMU keeps reading the old
            // one, so a changed seed restarts the VM below (the launch spec holds its id).
            qemu::make_seed_iso(&files.seed_dir(), &files.seed())?;
        }
        j.step("node-seed")?;

        // Chosen on every deploy (the probe runs once per state directory): a running VM
        // started under another accelerator restarts under this one.
        let accel = self.accel();
        let planned = LaunchSpec {
            accel: Some(accel.as_str().to_string()),
            mac: node.mac.to_string(),
            tap: node.host_link.clone(),
            cpus: node.plan.size.cpu_count.unwrap_or(DEFAULT_CPUS),
            memory_mb: node.plan.size.memory_in_mb.unwrap_or(DEFAULT_MEMORY_MB),
            kernel: image.kernel.as_ref().map(|p| p.display().to_string()),
            initrd: image.initrd.as_ref().map(|p| p.display().to_string()),
            disk_gb: want_gb,
            mtu: node.mtu,
            seed: vm_launch::instance_id(&seed.meta_data),
        };
        let pid = qemu::running_pid(&files);
        let mut running = pid.is_some();
        if let Some(pid) = pid {
            // QEMU writes its pidfile once: one deleted or overwritten since is written again.
            let recorded = std::fs::read_to_string(files.pidfile()).unwrap_or_default();
            if recorded.trim() != pid.to_string() && LaunchSpec::load(&dir).is_some() {
                std::fs::write(files.pidfile(), format!("{pid}\n"))
                    .map_err(io_err("write", &files.pidfile()))?;
            }
        }
        if running {
            let why = restart_reasons(nl, &files, &planned, grow_to, tap_created, name, j)?;
            if !why.is_empty() {
                let forced = shutdown(&files, name, stop_timeout())?.unwrap_or(false);
                j.changed(format!(
                    "restarted VM {name}: {}{}",
                    why.join("; "),
                    if forced {
                        " (the guest did not power off by itself: QEMU was stopped by force)"
                    } else {
                        ""
                    }
                ));
                running = false;
            } else if LaunchSpec::load(&dir).as_ref() != Some(&planned) {
                // The same spec, recorded without what an older edgenet did not record (the
                // accelerator, read from QEMU's command line): recorded whole now.
                planned.save(&dir)?;
            }
        }
        if !running {
            if let Some(gb) = grow_to {
                // Only while QEMU is stopped: it holds the image's write lock.
                qemu::grow(&files.disk(), gb)?;
                j.changed(format!("grew {name}'s disk to {gb} GB"));
            }
            let spec = VmSpec {
                name,
                files: &files,
                accel,
                cpus: planned.cpus,
                memory_mb: planned.memory_mb,
                kernel: image.kernel.as_deref(),
                initrd: image.initrd.as_deref(),
                tap: &node.host_link,
                mac: node.mac,
            };
            // Recorded before QEMU starts: a deploy interrupted once QEMU runs leaves the spec
            // of that QEMU, and the next deploy adopts it instead of restarting it. (A QEMU
            // that then fails to start leaves a spec no QEMU runs with: never compared.)
            planned.save(&dir)?;
            let pid = qemu::start(&spec)?;
            j.step("node-vm-started")?;
            j.changed(format!(
                "started VM {name} (QEMU pid {pid}, {})",
                accel.label()
            ));
        } else {
            // What deploy cannot change in a running guest is said, not hidden.
            for warning in self.guest_drift(nl, node) {
                j.changed(format!("warning: {warning}"));
            }
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
            lo_down: false,
            vm: None,
        };
        let Some(pid) = qemu::running_pid(&files) else {
            live.vm = Some(VmLive {
                pid: None,
                accel: None,
                run_state: "not running".into(),
                agent: false,
                agent_state: "-".into(),
                uptime: None,
                seed_pending: false,
            });
            return Ok(live);
        };
        let mut run_state = if edgenet_host::guest_agent::socket_held(&files.qmp()) {
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
        // A tap without carrier under a running QEMU: its NIC is bound to a deleted tap (the
        // tap was made again), so the guest is cut off; deploy restarts it. A tap that is not
        // there at all (deleted, or its network namespace made anew) is said as missing.
        if run_state == "running" {
            match nl.link(node.host_link)? {
                None => {
                    run_state = format!(
                        "running, but its tap {} is missing (deleted, or the network namespace was made anew): the guest is cut off from the switch",
                        node.host_link
                    )
                }
                Some(l) if !l.lower_up => {
                    run_state = format!(
                        "running, but its tap {} has no carrier (QEMU's NIC is not bound to it)",
                        node.host_link
                    )
                }
                Some(_) => {}
            }
        }
        live.present = run_state == "running";
        let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let started = modified(files.pidfile());
        let uptime = started.and_then(|t| t.elapsed().ok());
        let seed_pending = matches!((modified(files.seed()), started), (Some(s), Some(q)) if s > q);
        let mut vm = VmLive {
            pid: Some(pid),
            accel: qemu::running_accel(pid),
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

/// Why a running VM must restart to match `planned` (empty: it matches). A paused VM whose
/// spec matches is resumed here.
fn restart_reasons(
    nl: &mut dyn Kernel,
    files: &VmFiles,
    planned: &LaunchSpec,
    grow_to: Option<u32>,
    tap_created: bool,
    name: &str,
    j: &mut dyn Journal,
) -> Result<Vec<String>, DeployError> {
    let mut why = match LaunchSpec::load(&files.dir) {
        Some(mut old) => {
            // A spec of an edgenet that did not record the accelerator: the QEMU's own
            // command line says which it runs with (unreadable: not compared).
            if old.accel.is_none() {
                old.accel = qemu::running_pid(files)
                    .and_then(qemu::running_accel)
                    .map(|a| a.as_str().to_string());
            }
            old.changes_to(planned)
        }
        None if !files.pidfile().exists() => vec![format!(
            "its files in {} were deleted while it ran",
            files.dir.display()
        )],
        None if files.dir.join("launch.json").exists() => vec![format!(
            "its launch spec {} cannot be read",
            files.dir.join("launch.json").display()
        )],
        None => vec![format!(
            "its launch spec {} is missing (deleted, or the VM was started by an edgenet older than launch specs), so what it runs with is not known",
            files.dir.join("launch.json").display()
        )],
    };
    if let Some(gb) = grow_to {
        if !why.iter().any(|w| w.starts_with("disk size")) {
            why.push(format!("its disk grows to {gb} GB"));
        }
    }
    let tap = planned.tap.as_str();
    if tap_created {
        why.push(format!(
            "its tap {tap} was made again (QEMU's NIC was bound to the deleted one)"
        ));
    } else if !nl.link(tap)?.is_some_and(|l| l.lower_up) {
        why.push(format!(
            "its tap {tap} has no carrier (QEMU's NIC is not bound to it)"
        ));
    }
    if !why.is_empty() {
        return Ok(why);
    }
    match Qmp::connect(&files.qmp(), Duration::from_secs(2)) {
        Ok(mut q) => match q.status() {
            Ok(state) => match state.as_str() {
                "paused" | "prelaunch" => {
                    q.cont()?;
                    j.changed(format!("resumed VM {name} (it was {state})"));
                }
                "shutdown" | "internal-error" | "guest-panicked" | "io-error" | "watchdog" => {
                    why.push(format!("its run state is {state}"));
                }
                _ => {}
            },
            Err(e) => tracing::warn!("VM {name}: QMP query-status failed: {e}"),
        },
        Err(e) => {
            tracing::warn!("VM {name}: QMP does not answer ({e}); its run state is not checked")
        }
    }
    Ok(why)
}

/// An existing disk is an overlay of the image it was made from: booting another image would
/// need a new disk, so a changed `Edgenet.VmImage` is refused instead of discarding this one.
fn refuse_new_image(files: &VmFiles, image: &Image, name: &str) -> Result<(), DeployError> {
    let Some(backing) = qemu::backing_file(&files.disk())? else {
        return Ok(());
    };
    let same = backing == image.disk
        || std::fs::canonicalize(&backing).ok() == std::fs::canonicalize(&image.disk).ok();
    if same {
        return Ok(());
    }
    Err(DeployError::Unsupported(format!(
        "Edgenet.VmImage is {}, but node {name}'s disk is an overlay of {}: a new image needs a new disk, and edgenet never discards a node's disk on its own; set VmImage back, or run `edgenet remove` and deploy again to start the node from the new image (its disk is lost)",
        image.disk.display(),
        backing.display()
    )))
}

/// Notes of `remove` about VMs that had to be forced to stop (drained by [`take_notes`]).
static NOTES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// What the VM stops so far said (e.g. `forced quit`), for `remove`'s report.
pub fn take_notes() -> Vec<String> {
    std::mem::take(&mut *NOTES.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Stops the QEMU of `files` (found by its pidfile or, without one, by its command line):
/// the power button over QMP and up to `timeout` for the guest to power off, then QMP
/// `quit`, then SIGKILL. `None`: it was not running; `Some(forced)`: stopped, `forced` when
/// the guest did not power off by itself. An error when QEMU still runs after all that.
pub fn shutdown(
    files: &VmFiles,
    name: &str,
    timeout: Duration,
) -> Result<Option<bool>, DeployError> {
    let Some(pid) = qemu::running_pid(files) else {
        return Ok(None);
    };
    let mut forced = true;
    let gone = match Qmp::connect(&files.qmp(), Duration::from_secs(2)) {
        Ok(mut q) => {
            // A paused (or crashed) guest cannot handle the power button: no wait for it.
            let state = q.status().unwrap_or_default();
            if state != "running" {
                note(format!(
                    "VM {name} is {state:?}, so it cannot power off by itself: told QEMU (pid {pid}) to quit"
                ));
                q.quit().is_ok() && qemu::wait_gone(files, Duration::from_secs(5))
            } else if q.powerdown().is_ok() && {
                waiting(name, pid, timeout);
                qemu::wait_gone(files, timeout)
            } {
                forced = false;
                true
            } else {
                note(format!(
                    "VM {name} did not power off within {} s: forced QEMU (pid {pid}) to quit",
                    timeout.as_secs()
                ));
                q.quit().is_ok() && qemu::wait_gone(files, Duration::from_secs(5))
            }
        }
        Err(e) => {
            note(format!(
                "VM {name}: QMP does not answer ({e}): killed its QEMU (pid {pid})"
            ));
            false
        }
    };
    if !gone {
        qemu::kill(files)?;
    }
    if let Some(pid) = qemu::running_pid(files) {
        return Err(DeployError::Unsupported(format!(
            "VM {name}'s QEMU (pid {pid}) still runs after QMP quit and SIGKILL"
        )));
    }
    Ok(Some(forced))
}

/// Says that a stop waits for the guest: on a terminal a person sees why nothing happens for a
/// while; logs get it at -v.
fn waiting(name: &str, pid: u32, timeout: Duration) {
    let text = format!(
        "waiting up to {} s for VM {name} (QEMU pid {pid}) to power off",
        timeout.as_secs()
    );
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("edgenet: {text}");
    } else {
        tracing::info!("{text}");
    }
}

fn note(text: String) {
    tracing::warn!("{text}");
    NOTES.lock().unwrap_or_else(|e| e.into_inner()).push(text);
}

/// Stops the VM of `dir` ([`shutdown`]) and deletes the directory. `Ok(false)` when there was
/// nothing left (no directory and no QEMU).
pub fn stop(dir: &Path) -> Result<bool, DeployError> {
    let files = VmFiles::new(dir);
    let existed = dir.exists();
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stopped = shutdown(&files, &name, stop_timeout())?;
    // Only edgenet's files of a VM's directory are deleted, and the directory once empty:
    // anything else someone put there stays (`remove` names it in `left`, B26 F6).
    if existed && dir.parent().and_then(Path::file_name) == Some("vm".as_ref()) {
        let mut swept = crate::own_files::Swept::default();
        crate::own_files::sweep_vm_dir(dir, &mut swept);
        for line in &swept.left {
            tracing::info!("left {line}");
        }
        if let Some(e) = swept.errors.into_iter().next() {
            return Err(DeployError::Unsupported(format!(
                "deleting VM {name}'s files: {e}"
            )));
        }
    }
    Ok(existed || stopped.is_some())
}

/// Moves a VM's directory to its new name (the machine was renamed), its disk with it. Its
/// QEMU (whose command line names the old paths) is stopped first; deploy starts it again.
pub fn move_vm(from: &Path, to: &Path) -> Result<(), DeployError> {
    let name = from
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    shutdown(&VmFiles::new(from), &name, stop_timeout())?;
    std::fs::rename(from, to).map_err(io_err("rename", from))
}

/// Connects to a node's guest agent, waiting up to `wait` for it to come up; the error says
/// what to do while it is not up yet.
pub fn agent(state_dir: &Path, guest: &str, wait: Duration) -> Result<GuestAgent, String> {
    let files = VmFiles::new(vm_dir(state_dir, guest));
    if qemu::running_pid(&files).is_none() {
        return Err("its VM is not running (run `edgenet deploy` to start it again)".into());
    }
    // A paused VM's agent never answers: say so rather than "still booting".
    if let Ok(state) =
        Qmp::connect(&files.qmp(), Duration::from_secs(2)).and_then(|mut q| q.status())
    {
        if state == "paused" {
            return Err("its VM is paused (run `edgenet deploy` to resume it)".into());
        }
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
