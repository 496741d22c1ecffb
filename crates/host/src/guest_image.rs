//! edgenet's small test guest for `vm` nodes (Debian's cloud kernel, busybox and
//! qemu-guest-agent in an initramfs that applies the NoCloud seed), built by
//! scripts/build-guest-image.sh, which is part of the binary so that `lab up` builds it on a
//! fresh machine. Built once and cached.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::HostError;

const SCRIPT: &str = include_str!("../../../scripts/build-guest-image.sh");

/// Where the guest is cached: `EDGENET_GUEST_DIR`, else /var/cache/edgenet/guest.
pub fn default_dir() -> PathBuf {
    std::env::var_os("EDGENET_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/edgenet/guest"))
}

/// The guest's files in `dir`.
pub struct GuestImage {
    pub disk: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// Builds the guest into `dir` unless it is there already (the script keeps a version stamp).
pub fn ensure(dir: &Path) -> Result<GuestImage, HostError> {
    let err =
        |e: io::Error| HostError::new("build the test guest in", dir.display().to_string(), e);
    let mut child = Command::new("bash")
        .args(["-s", "--"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(err)?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(SCRIPT.as_bytes())
        .map_err(err)?;
    let out = child.wait_with_output().map_err(err)?;
    if !out.status.success() {
        return Err(err(io::Error::other(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )));
    }
    Ok(GuestImage {
        disk: dir.join("disk.qcow2"),
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
    })
}
