//! Kernel parameters through `/proc/sys`, for the calling thread's network namespace
//! (`net.*` entries are per namespace: read or write them inside [`crate::netns::NetNs::run`]
//! to reach a node's or a lab machine's).

use std::io;
use std::path::PathBuf;

use crate::error::HostError;

const PROC_SYS: &str = "/proc/sys";

/// `net.ipv4.ip_forward` → `/proc/sys/net/ipv4/ip_forward`. A name containing `/` is taken
/// as a path below `/proc/sys` as it is, which is how sysctl(8) spells components that
/// contain dots (`net/ipv4/conf/eth0.10/forwarding`).
pub fn path_of(name: &str) -> Result<PathBuf, HostError> {
    let relative = if name.contains('/') {
        name.trim_start_matches('/').to_string()
    } else {
        name.replace('.', "/")
    };
    let bad = relative.is_empty()
        || relative
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(HostError::new(
            "find sysctl",
            name,
            io::Error::new(io::ErrorKind::InvalidInput, "not a sysctl name"),
        ));
    }
    Ok(PathBuf::from(PROC_SYS).join(relative))
}

/// The kernel's id of this boot (`kernel.random.boot_id`), read once per process: what a
/// record that is valid only until the next boot carries. `None` when it cannot be read.
pub fn boot_id() -> Option<&'static str> {
    static ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        read("kernel.random.boot_id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
    .as_deref()
}

/// The current value, without the trailing newline.
pub fn read(name: &str) -> Result<String, HostError> {
    let path = path_of(name)?;
    let text =
        std::fs::read_to_string(&path).map_err(|e| HostError::new("read sysctl", name, e))?;
    Ok(text.trim_end_matches('\n').to_string())
}

/// Writes a value (`write("net.ipv4.ip_forward", "1")`).
pub fn write(name: &str, value: &str) -> Result<(), HostError> {
    let path = path_of(name)?;
    tracing::debug!("write {} = {value:?}", path.display());
    std::fs::write(&path, format!("{value}\n"))
        .map_err(|e| HostError::new(format!("write {value:?} to sysctl"), name, e))
}

/// Sets a value only when it differs, and returns the previous one so that the caller can
/// record it and restore it on `remove`.
pub fn set(name: &str, value: &str) -> Result<String, HostError> {
    let previous = read(name)?;
    if previous.trim() != value.trim() {
        write(name, value)?;
    }
    Ok(previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_and_slashed_names_map_below_proc_sys() {
        assert_eq!(
            path_of("net.ipv4.ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            path_of("net/ipv4/conf/eth0.10/forwarding").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.10/forwarding")
        );
    }

    #[test]
    fn names_escaping_proc_sys_are_refused() {
        for bad in ["", "net..ipv4", "net/../../etc/passwd", "/"] {
            assert!(path_of(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reading_a_missing_sysctl_names_it() {
        let e = read("net.ipv4.no_such_knob_edgenet").unwrap_err();
        assert!(e.is_not_found());
        assert!(
            e.to_string().contains("net.ipv4.no_such_knob_edgenet"),
            "{e}"
        );
    }
}
