//! The processes in `/proc`, for the few places that look for one (a QEMU by its pidfile, the
//! holder of a netlink socket, the processes in a network namespace).

/// The PIDs in `/proc` (none when it cannot be read).
pub fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
}
