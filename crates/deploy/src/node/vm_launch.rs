//! A `vm` node's launch spec: everything QEMU cannot change while it runs (the NIC's MAC and
//! tap, CPUs, memory, kernel, initrd, the disk's size, the guest NIC's MTU, the seed the
//! guest booted from and the accelerator). Recorded in the VM's directory just before QEMU
//! starts (so the QEMU of a deploy interrupted right after is adopted, not restarted); a deploy
//! whose planned spec differs restarts the VM, and says why. Pure apart from
//! [`LaunchSpec::load`]/`save`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{io_err, DeployError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub mac: String,
    pub tap: String,
    pub cpus: u32,
    pub memory_mb: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd: Option<String>,
    /// The disk's size (GB) the VM was started with.
    pub disk_gb: u32,
    /// The MTU the seed gives the guest's NIC.
    pub mtu: u32,
    /// The seed's NoCloud instance id (a hash of its content).
    pub seed: String,
    /// `kvm` or `tcg`. `None` in a spec written by an edgenet before 2026-12 (no such field):
    /// the deploy that reads it takes the accelerator from QEMU's command line in /proc
    /// ([`edgenet_host::qemu::running_accel`]), and when that cannot be read either, the
    /// accelerator is not compared (no restart for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accel: Option<String>,
}

const FILE: &str = "launch.json";

impl LaunchSpec {
    /// The spec recorded in `dir` when its QEMU was started (`None`: never recorded).
    pub fn load(dir: &Path) -> Option<LaunchSpec> {
        let text = std::fs::read_to_string(dir.join(FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn save(&self, dir: &Path) -> Result<(), DeployError> {
        let path = dir.join(FILE);
        let tmp = dir.join("launch.json.tmp");
        let text = serde_json::to_string_pretty(self).expect("serialises");
        std::fs::write(&tmp, text).map_err(io_err("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err("write", &path))
    }

    /// Why a VM started with `self` must restart to run as `planned`, one reason per field
    /// (empty: nothing that needs a restart changed).
    pub fn changes_to(&self, planned: &LaunchSpec) -> Vec<String> {
        let mut why = Vec::new();
        let mut field = |name: &str, old: String, new: String| {
            if old != new {
                why.push(format!("{name} changed from {old} to {new}"));
            }
        };
        let path = |p: &Option<String>| p.clone().unwrap_or_else(|| "none".into());
        field("MAC", self.mac.clone(), planned.mac.clone());
        field("tap", self.tap.clone(), planned.tap.clone());
        field("CpuCount", self.cpus.to_string(), planned.cpus.to_string());
        field(
            "MemoryInMB",
            self.memory_mb.to_string(),
            planned.memory_mb.to_string(),
        );
        field("VmKernel", path(&self.kernel), path(&planned.kernel));
        field("VmInitrd", path(&self.initrd), path(&planned.initrd));
        field(
            "disk size (GB)",
            self.disk_gb.to_string(),
            planned.disk_gb.to_string(),
        );
        field("MTU", self.mtu.to_string(), planned.mtu.to_string());
        if self.seed != planned.seed {
            why.push("its cloud-init seed changed (network, DNS, proxy or files)".into());
        }
        // Unknown on either side: not a reason (see the field).
        if let (Some(old), Some(new)) = (&self.accel, &planned.accel) {
            if old != new {
                why.push(format!(
                    "accelerator changed from {} to {}",
                    old.to_uppercase(),
                    new.to_uppercase()
                ));
            }
        }
        why
    }
}

/// The instance id of a seed's `meta-data` (changes with the seed's content).
pub fn instance_id(meta_data: &str) -> String {
    meta_data
        .lines()
        .find_map(|l| l.strip_prefix("instance-id:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| meta_data.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LaunchSpec {
        LaunchSpec {
            mac: "02:11:22:33:44:55".into(),
            tap: "en1234l".into(),
            cpus: 1,
            memory_mb: 256,
            kernel: Some("/k".into()),
            initrd: None,
            disk_gb: 2,
            mtu: 1500,
            seed: "n-00ff".into(),
            accel: Some("tcg".into()),
        }
    }

    #[test]
    fn the_same_spec_needs_no_restart() {
        assert!(spec().changes_to(&spec()).is_empty());
    }

    #[test]
    fn every_field_qemu_cannot_change_live_is_a_reason_to_restart() {
        let old = spec();
        let mut new = spec();
        new.mac = "02:11:22:33:44:66".into();
        new.cpus = 2;
        new.memory_mb = 384;
        new.disk_gb = 3;
        new.mtu = 1400;
        new.initrd = Some("/i".into());
        new.seed = "n-0100".into();
        new.accel = Some("kvm".into());
        let why = old.changes_to(&new);
        assert_eq!(
            why,
            vec![
                "MAC changed from 02:11:22:33:44:55 to 02:11:22:33:44:66",
                "CpuCount changed from 1 to 2",
                "MemoryInMB changed from 256 to 384",
                "VmInitrd changed from none to /i",
                "disk size (GB) changed from 2 to 3",
                "MTU changed from 1500 to 1400",
                "its cloud-init seed changed (network, DNS, proxy or files)",
                "accelerator changed from TCG to KVM",
            ]
        );
    }

    #[test]
    fn a_spec_of_the_previous_build_without_accelerator_is_read_and_compares_without_it() {
        let dir = std::env::temp_dir().join(format!("edgenet-launch-old-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // launch.json as the build before this field wrote it.
        std::fs::write(
            dir.join(FILE),
            r#"{"mac":"02:11:22:33:44:55","tap":"en1234l","cpus":1,"memory_mb":256,"kernel":"/k","disk_gb":2,"mtu":1500,"seed":"n-00ff"}"#,
        )
        .unwrap();
        let old = LaunchSpec::load(&dir).expect("read");
        assert_eq!(old.accel, None);
        assert!(old.changes_to(&spec()).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_spec_round_trips_through_its_file() {
        let dir = std::env::temp_dir().join(format!("edgenet-launch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(LaunchSpec::load(&dir), None);
        spec().save(&dir).unwrap();
        assert_eq!(LaunchSpec::load(&dir), Some(spec()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_instance_id_is_read_from_meta_data() {
        assert_eq!(
            instance_id("instance-id: n-00ab\nlocal-hostname: n\n"),
            "n-00ab"
        );
    }
}
