//! Rule group 13: the `vm` node runtime — node sizes QEMU can start and a guest boots in, the
//! guest image fields (absolute paths, an initrd only with its kernel, a separate image for a
//! Windows node), and, with the host read ([`VmHost`]), the image files themselves, the
//! host's CPUs and memory, and the length of the VM's Unix socket paths.
//!
//! Pure: the host layer reads the files and the host into [`VmHost`]; nothing here does I/O.

use super::{Code, Context, Finding};
use crate::config::{Config, Node, NodeRuntime};
pub use crate::host_facts::{FileFacts, VmHost};

/// More vCPUs than this need x2APIC and interrupt remapping, which edgenet's `q35` machine
/// does not set up: QEMU refuses them.
pub const MAX_CPUS: u32 = 255;
/// The smallest memory edgenet's test guest boots in with room to spare (measured under TCG:
/// 96 MB reaches its init, 64 MB never prints a line). Cloud images want 512 MB or more.
pub const MIN_MEMORY_MB: u32 = 128;
/// 4 TiB: more than any host edgenet runs on; the host check compares with the real memory.
pub const MAX_MEMORY_MB: u32 = 4 << 20;
/// 64 TiB: a size `qemu-img` creates for a qcow2 overlay with its default cluster size
/// (it refuses sizes in the petabytes).
pub const MAX_DATA_GB: u32 = 64 << 10;
/// A Unix socket path (sun_path) holds at most 107 bytes and its NUL.
pub const MAX_SOCKET_PATH: usize = 107;
/// A raw disk image is a whole number of 512-byte sectors, and smaller than 1 MiB holds no
/// bootable system: anything else (a text file, a wrong path) is refused.
pub const MIN_RAW_IMAGE: u64 = 1 << 20;
/// The first bytes of a qcow2 image.
pub const QCOW2_MAGIC: &[u8; 4] = b"QFI\xfb";

/// The config's image fields: (JSON path, value, what it must be).
fn image_fields(config: &Config) -> Vec<(&'static str, &str, ImageKind)> {
    let e = &config.edgenet;
    [
        ("Edgenet.VmImage", &e.vm_image, ImageKind::Disk),
        ("Edgenet.VmKernel", &e.vm_kernel, ImageKind::Kernel),
        ("Edgenet.VmInitrd", &e.vm_initrd, ImageKind::Initrd),
        (
            "Edgenet.WindowsVmImage",
            &e.windows_vm_image,
            ImageKind::Disk,
        ),
    ]
    .into_iter()
    .filter_map(|(p, v, k)| v.as_deref().map(|v| (p, v, k)))
    .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ImageKind {
    Disk,
    Kernel,
    Initrd,
}

fn nodes(config: &Config) -> impl Iterator<Item = (usize, &'static str, &Node)> {
    config.machines.iter().enumerate().flat_map(|(i, m)| {
        [
            ("LinuxNode", &m.linux_node),
            ("WindowsNode", &m.windows_node),
        ]
        .into_iter()
        .filter_map(move |(k, n)| n.as_ref().map(|n| (i, k, n)))
    })
}

pub(super) fn check(config: &Config, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    if config.edgenet.node_runtime != NodeRuntime::Vm {
        return;
    }
    sizes(config, ctx, out);
    image_paths(config, out);
    if let Some(host) = &ctx.vm_host {
        image_files(config, host, out);
        socket_paths(config, ctx, host, out);
    }
}

fn sizes(config: &Config, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let host = ctx.vm_host.as_ref();
    for (i, key, node) in nodes(config) {
        let at = |field: &str| format!("Machines[{i}].{key}.{field}");
        if let Some(n) = node.cpu_count {
            let path = at("CpuCount");
            if n == 0 || n > MAX_CPUS {
                out.push(
                    Finding::error(
                        Code::VmSize,
                        &path,
                        format!("{path} is {n}; a vm node has 1 to {MAX_CPUS} virtual CPUs"),
                    )
                    .hint(format!(
                        "set CpuCount to 1 to {MAX_CPUS} (leave it out for 4)"
                    )),
                );
            } else if let Some(cpus) = host.and_then(|h| h.cpus).filter(|c| n > *c) {
                // QEMU runs it (vCPUs are threads), but the node is no faster than with
                // `cpus`, and the config may be meant for a bigger machine: a warning.
                out.push(
                    Finding::warning(
                        Code::VmSize,
                        &path,
                        format!("{path} is {n}, more than the {cpus} CPUs of this host: the virtual CPUs share them"),
                    )
                    .hint(format!("set CpuCount to at most {cpus}")),
                );
            }
        }
        if let Some(mb) = node.memory_in_mb {
            let path = at("MemoryInMB");
            if !(MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&mb) {
                out.push(
                    Finding::error(
                        Code::VmSize,
                        &path,
                        format!("{path} is {mb}; a vm node needs {MIN_MEMORY_MB} to {MAX_MEMORY_MB} MB (below {MIN_MEMORY_MB} the guest does not boot)"),
                    )
                    .hint("set MemoryInMB to at least 128 (edgenet's test guest), 512 or more for a cloud image; leave it out for 4096"),
                );
            } else if let Some(total) = host
                .and_then(|h| h.memory_mb)
                .filter(|t| u64::from(mb) > *t)
            {
                out.push(
                    Finding::error(
                        Code::VmSize,
                        &path,
                        format!("{path} is {mb}, more than the {total} MB of memory this host has: QEMU cannot set up the guest's memory"),
                    )
                    .hint(format!("set MemoryInMB below {total}")),
                );
            }
        }
        if let Some(gb) = node.data_size_in_gb {
            let path = at("DataSizeInGB");
            if gb == 0 || gb > MAX_DATA_GB {
                out.push(
                    Finding::error(
                        Code::VmSize,
                        &path,
                        format!("{path} is {gb}; a vm node's disk is 1 to {MAX_DATA_GB} GB"),
                    )
                    .hint(format!("set DataSizeInGB to 1 to {MAX_DATA_GB} (leave it out for 10); the disk is a sparse overlay, it takes only what the guest writes")),
                );
            }
        }
    }
}

fn image_paths(config: &Config, out: &mut Vec<Finding>) {
    let e = &config.edgenet;
    let linux = nodes(config).any(|(_, k, _)| k == "LinuxNode");
    if linux && e.vm_image.is_none() {
        out.push(
            Finding::error(
                Code::VmImage,
                "Edgenet.VmImage",
                "Edgenet.VmImage is not set: the \"vm\" node runtime needs a base disk image for the Linux node",
            )
            .hint("set it to a qcow2 or raw image (e.g. a Debian or Ubuntu cloud image), or build edgenet's test guest with scripts/build-guest-image.sh and set VmImage, VmKernel and VmInitrd to its disk.qcow2, vmlinuz and initrd.img"),
        );
    }
    if let Some((i, _, _)) = nodes(config).find(|(_, k, _)| *k == "WindowsNode") {
        if e.windows_vm_image.is_none() {
            let path = format!("Machines[{i}].WindowsNode");
            out.push(
                Finding::error(
                    Code::VmImage,
                    &path,
                    format!("{path} needs Edgenet.WindowsVmImage with the \"vm\" runtime: the Linux image (Edgenet.VmImage) cannot be booted as a Windows node"),
                )
                .hint("set Edgenet.WindowsVmImage to a Windows disk image with cloudbase-init (untested by edgenet), or remove the WindowsNode"),
            );
        }
    }
    for (path, value, _) in image_fields(config) {
        if !value.starts_with('/') {
            out.push(
                Finding::error(
                    Code::VmImage,
                    path,
                    format!(
                        "{path} is {}, which is not an absolute path",
                        super::excerpt(value)
                    ),
                )
                .hint("give the absolute path of the file (starting with /)"),
            );
        }
    }
    if e.vm_initrd.is_some() && e.vm_kernel.is_none() {
        out.push(
            Finding::error(
                Code::VmImage,
                "Edgenet.VmInitrd",
                "Edgenet.VmInitrd is set without Edgenet.VmKernel: an initrd is booted with its kernel",
            )
            .hint("set Edgenet.VmKernel too, or remove VmInitrd"),
        );
    }
}

fn image_files(config: &Config, host: &VmHost, out: &mut Vec<Finding>) {
    for (path, value, kind) in image_fields(config) {
        if !value.starts_with('/') {
            continue;
        }
        let Some(facts) = host.files.get(value) else {
            continue;
        };
        let v = super::excerpt(value);
        let problem = match facts {
            FileFacts::Missing => Some("which does not exist".to_string()),
            FileFacts::NotAFile(what) => Some(format!("which is {what}, not a file")),
            FileFacts::Unreadable(why) => Some(format!("which cannot be read ({why})")),
            FileFacts::File { size, head } => match kind {
                ImageKind::Disk => disk_problem(*size, head),
                ImageKind::Kernel => (head.get(0x202..0x206) != Some(b"HdrS"))
                    .then(|| "which is not a Linux kernel (bzImage)".to_string()),
                ImageKind::Initrd => (*size == 0).then(|| "which is empty".to_string()),
            },
        };
        if let Some(problem) = problem {
            let what = match kind {
                ImageKind::Disk => "a qcow2 or raw disk image",
                ImageKind::Kernel => "a Linux kernel (e.g. the test guest's vmlinuz)",
                ImageKind::Initrd => "the initrd of that kernel",
            };
            out.push(
                Finding::error(Code::VmImage, path, format!("{path} is {v}, {problem}"))
                    .hint(format!("give the absolute path of {what}")),
            );
        }
    }
}

/// Why a file is no disk image: a qcow2 starts with its magic; a raw image is whole sectors
/// and at least [`MIN_RAW_IMAGE`].
fn disk_problem(size: u64, head: &[u8]) -> Option<String> {
    if head.starts_with(QCOW2_MAGIC) {
        return None;
    }
    if size < MIN_RAW_IMAGE {
        return Some(format!(
            "which is no qcow2 image and, {size} bytes large, too small for a raw disk image (at least 1 MiB)"
        ));
    }
    if !size.is_multiple_of(512) {
        return Some(format!(
            "which is no qcow2 image and, {size} bytes large, no raw disk image either (not a whole number of 512-byte sectors)"
        ));
    }
    None
}

/// Each VM's QMP and agent sockets are `<state dir>/vm/<node>-<id>/agent.sock`: QEMU refuses
/// a socket path over [`MAX_SOCKET_PATH`] bytes.
fn socket_paths(config: &Config, ctx: &Context<'_>, host: &VmHost, out: &mut Vec<Finding>) {
    let Some(state_dir) = &host.state_dir else {
        return;
    };
    let Some(i) = ctx.this_machine(config) else {
        return;
    };
    let m = &config.machines[i];
    let machine = super::planned_machine_name(config, i, ctx);
    for (present, suffix) in [
        (m.linux_node.is_some() || m.linux_node_implied, "ledge"),
        (m.windows_node.is_some(), "wedge"),
    ] {
        if !present {
            continue;
        }
        let dir = state_dir.trim_end_matches('/');
        let len = format!("{dir}/vm/{machine}-{suffix}-/agent.sock").len() + host.id_len;
        if len > MAX_SOCKET_PATH {
            let over = len - MAX_SOCKET_PATH;
            let path = if m.machine_name.is_some() {
                format!("Machines[{i}].MachineName")
            } else {
                "Edgenet.MachineName".to_string()
            };
            out.push(
                Finding::error(
                    Code::VmSocketPath,
                    path,
                    format!(
                        "the guest agent socket of node {machine}-{suffix} would be {dir}/vm/{machine}-{suffix}-<id>/agent.sock, {len} bytes: a Unix socket path holds at most {MAX_SOCKET_PATH}"
                    ),
                )
                .hint(format!(
                    "shorten --state-dir ({dir}) or the machine name ({machine}) by {over} characters or more"
                )),
            );
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{validate, Context};
    use std::collections::BTreeMap;

    fn config(extra: serde_json::Value) -> Config {
        let mut v = serde_json::json!({
            "DeploymentType": "SingleMachineCluster",
            "Network": {"Ip4AddressPrefix": "192.168.77.0/24", "SkipDnsCheck": true, "DnsServers": ["10.99.0.53"]},
            "Machines": [{"LinuxNode": {"CpuCount": 1, "MemoryInMB": 256, "DataSizeInGB": 2}}],
            "Edgenet": {"NodeRuntime": "vm", "MachineName": "bka", "VmImage": "/img/disk.qcow2",
                        "VmKernel": "/img/vmlinuz", "VmInitrd": "/img/initrd.img"}
        });
        merge(&mut v, extra);
        crate::config::load(v.to_string().as_bytes())
            .expect("loads")
            .config
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn vm_findings(c: &Config, host: Option<VmHost>) -> Vec<Finding> {
        let mut ctx = Context::offline("test", "host");
        ctx.vm_host = host;
        validate(c, &ctx)
            .into_iter()
            .filter(|f| f.rule == 13)
            .collect()
    }

    fn good_host() -> VmHost {
        let mut qcow = QCOW2_MAGIC.to_vec();
        qcow.resize(1024, 0);
        let mut kernel = vec![0u8; 1024];
        kernel[0x202..0x206].copy_from_slice(b"HdrS");
        let mut files = BTreeMap::new();
        files.insert(
            "/img/disk.qcow2".into(),
            FileFacts::File {
                size: 196_624,
                head: qcow,
            },
        );
        files.insert(
            "/img/vmlinuz".into(),
            FileFacts::File {
                size: 14_190_528,
                head: kernel,
            },
        );
        files.insert(
            "/img/initrd.img".into(),
            FileFacts::File {
                size: 4_277_163,
                head: vec![0x1f, 0x8b],
            },
        );
        VmHost {
            cpus: Some(2),
            memory_mb: Some(8000),
            files,
            state_dir: Some("/var/lib/edgenet".into()),
            id_len: 6,
        }
    }

    /// The one finding `c` gives: at `path`, an error whose message names the path and `value`.
    fn one_error(found: &[Finding], path: &str, value: &str) {
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!(f.path, path, "{f:#?}");
        assert!(f.is_error(), "{f:#?}");
        assert!(f.message.contains(value), "{f:#?}");
        assert!(f.hint.is_some(), "{f:#?}");
    }

    #[test]
    fn a_good_vm_config_has_no_finding() {
        assert_eq!(
            vm_findings(&config(serde_json::json!({})), Some(good_host())),
            vec![]
        );
        assert_eq!(vm_findings(&config(serde_json::json!({})), None), vec![]);
    }

    #[test]
    fn the_netns_runtime_ignores_the_vm_fields() {
        let c = config(
            serde_json::json!({"Edgenet": {"NodeRuntime": "netns", "VmImage": "rel"},
            "Machines": [{"LinuxNode": {"CpuCount": 0}}]}),
        );
        assert_eq!(vm_findings(&c, None), vec![]);
    }

    #[test]
    fn cpu_count_is_1_to_255_and_above_the_hosts_cpus_a_warning() {
        for n in [0, 256, 999] {
            let c = config(serde_json::json!({"Machines": [{"LinuxNode": {"CpuCount": n}}]}));
            let path = "Machines[0].LinuxNode.CpuCount";
            one_error(&vm_findings(&c, None), path, &format!("{path} is {n}"));
        }
        let c = config(serde_json::json!({"Machines": [{"LinuxNode": {"CpuCount": 3}}]}));
        let f = vm_findings(&c, Some(good_host()));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, crate::validate::Severity::Warning);
        assert!(f[0].message.contains("more than the 2 CPUs"), "{f:#?}");
    }

    #[test]
    fn memory_is_at_least_what_boots_and_at_most_the_hosts() {
        for mb in [0, 1, 64, 127] {
            let c = config(serde_json::json!({"Machines": [{"LinuxNode": {"MemoryInMB": mb}}]}));
            let path = "Machines[0].LinuxNode.MemoryInMB";
            one_error(&vm_findings(&c, None), path, &format!("{path} is {mb};"));
        }
        let c =
            config(serde_json::json!({"Machines": [{"LinuxNode": {"MemoryInMB": 99_999_999}}]}));
        one_error(
            &vm_findings(&c, None),
            "Machines[0].LinuxNode.MemoryInMB",
            "99999999",
        );
        let c = config(serde_json::json!({"Machines": [{"LinuxNode": {"MemoryInMB": 9000}}]}));
        assert_eq!(
            vm_findings(&c, None),
            vec![],
            "offline: the host's memory is unknown"
        );
        one_error(
            &vm_findings(&c, Some(good_host())),
            "Machines[0].LinuxNode.MemoryInMB",
            "more than the 8000 MB",
        );
    }

    #[test]
    fn the_data_disk_is_1_gb_to_64_tb() {
        for gb in [0, 65_537, 100_000_000] {
            let c = config(serde_json::json!({"Machines": [{"LinuxNode": {"DataSizeInGB": gb}}]}));
            let path = "Machines[0].LinuxNode.DataSizeInGB";
            one_error(&vm_findings(&c, None), path, &format!("{path} is {gb};"));
        }
    }

    #[test]
    fn image_paths_are_absolute_required_and_an_initrd_needs_its_kernel() {
        let mut c = config(serde_json::json!({}));
        c.edgenet.vm_image = None;
        one_error(
            &vm_findings(&c, None),
            "Edgenet.VmImage",
            "Edgenet.VmImage is not set",
        );
        let c = config(serde_json::json!({"Edgenet": {"VmImage": "relative/disk.qcow2"}}));
        one_error(
            &vm_findings(&c, None),
            "Edgenet.VmImage",
            "\"relative/disk.qcow2\"",
        );
        let mut c = config(serde_json::json!({}));
        c.edgenet.vm_kernel = None;
        one_error(
            &vm_findings(&c, None),
            "Edgenet.VmInitrd",
            "without Edgenet.VmKernel",
        );
    }

    #[test]
    fn image_files_must_exist_and_be_images() {
        let path = "Edgenet.VmImage";
        for (facts, said) in [
            (FileFacts::Missing, "does not exist"),
            (
                FileFacts::NotAFile("a directory".into()),
                "a directory, not a file",
            ),
            (
                FileFacts::File {
                    size: 2_000,
                    head: b"root:x:0:0:root:/root:/bin/bash\n".to_vec(),
                },
                "too small for a raw disk image",
            ),
            (
                FileFacts::File {
                    size: (2 << 20) + 1,
                    head: vec![0; 64],
                },
                "not a whole number of 512-byte sectors",
            ),
        ] {
            let mut host = good_host();
            host.files.insert("/img/disk.qcow2".into(), facts);
            let f = vm_findings(&config(serde_json::json!({})), Some(host));
            one_error(&f, path, said);
            assert!(f[0].message.contains("\"/img/disk.qcow2\""), "{f:#?}");
        }
        // A raw image: whole sectors, 1 MiB or more.
        let mut host = good_host();
        host.files.insert(
            "/img/disk.qcow2".into(),
            FileFacts::File {
                size: 2 << 20,
                head: vec![0; 64],
            },
        );
        assert_eq!(
            vm_findings(&config(serde_json::json!({})), Some(host)),
            vec![]
        );
        let mut host = good_host();
        host.files.insert(
            "/img/vmlinuz".into(),
            FileFacts::File {
                size: 5,
                head: b"hello".to_vec(),
            },
        );
        one_error(
            &vm_findings(&config(serde_json::json!({})), Some(host)),
            "Edgenet.VmKernel",
            "not a Linux kernel",
        );
        let mut host = good_host();
        host.files
            .insert("/img/initrd.img".into(), FileFacts::Missing);
        one_error(
            &vm_findings(&config(serde_json::json!({})), Some(host)),
            "Edgenet.VmInitrd",
            "does not exist",
        );
    }

    #[test]
    fn a_windows_node_needs_its_own_image() {
        let c = config(serde_json::json!({"Machines": [{"WindowsNode": {"CpuCount": 1}}]}));
        one_error(
            &vm_findings(&c, None),
            "Machines[0].WindowsNode",
            "Edgenet.WindowsVmImage",
        );
        let c = config(
            serde_json::json!({"Machines": [{"WindowsNode": {"CpuCount": 1}}],
            "Edgenet": {"WindowsVmImage": "/img/windows.qcow2"}}),
        );
        assert_eq!(vm_findings(&c, None), vec![]);
    }

    #[test]
    fn socket_paths_over_the_limit_name_the_state_dir_and_the_machine_name() {
        let name = "a".repeat(57);
        let c = config(serde_json::json!({"Edgenet": {"MachineName": name}}));
        assert_eq!(
            vm_findings(&c, Some(good_host())),
            vec![],
            "the default state dir fits"
        );
        let mut host = good_host();
        host.state_dir = Some("/tmp/bk11-v-long-state-directory".into());
        let f = vm_findings(&c, Some(host));
        one_error(&f, "Edgenet.MachineName", "at most 107");
        let hint = f[0].hint.as_deref().unwrap();
        assert!(
            hint.contains("--state-dir (/tmp/bk11-v-long-state-directory)"),
            "{hint}"
        );
        assert!(hint.contains(&name), "{hint}");
    }
}
