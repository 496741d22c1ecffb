//! What the `vm` runtime's check rules need from the host (`edgenet_core::validate::VmHost`):
//! the image files the config names (kind, size, first bytes), the CPUs this process may run
//! on, and the memory of the machine. Reads only.

use std::io::Read;
use std::path::Path;

use edgenet_core::config::Config;
use edgenet_core::validate::{FileFacts, VmHost};

/// Reads the host for the image fields of `config`; `state_dir` is where the VMs' sockets go.
pub fn read(config: &Config, state_dir: &Path, id_len: usize) -> VmHost {
    let e = &config.edgenet;
    let files = [&e.vm_image, &e.vm_kernel, &e.vm_initrd, &e.windows_vm_image]
        .into_iter()
        .flatten()
        .filter(|p| p.starts_with('/'))
        .map(|p| (p.clone(), file(Path::new(p))))
        .collect();
    VmHost {
        cpus: std::thread::available_parallelism()
            .ok()
            .map(|n| n.get() as u32),
        memory_mb: memory_mb(),
        files,
        state_dir: Some(state_dir.display().to_string()),
        id_len,
    }
}

/// What is at `path`: its size and first 4 KiB when it is a regular file (symlinks followed).
pub fn file(path: &Path) -> FileFacts {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FileFacts::Missing,
        Err(e) => return FileFacts::Unreadable(e.to_string()),
    };
    if let Some(what) = crate::small_file::file_kind(&meta) {
        return FileFacts::NotAFile(what.into());
    }
    let mut head = Vec::with_capacity(4096);
    match std::fs::File::open(path).and_then(|f| f.take(4096).read_to_end(&mut head)) {
        Ok(_) => FileFacts::File {
            size: meta.len(),
            head,
        },
        Err(e) => FileFacts::Unreadable(e.to_string()),
    }
}

fn memory_mb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_for_what_they_are() {
        assert_eq!(file(Path::new("/nonexistent/x")), FileFacts::Missing);
        assert!(matches!(file(Path::new("/etc")), FileFacts::NotAFile(w) if w == "a directory"));
        match file(Path::new("/etc/passwd")) {
            FileFacts::File { size, head } => {
                assert!(size > 0);
                assert!(head.starts_with(b"root:"));
            }
            other => panic!("{other:?}"),
        }
        assert!(memory_mb().is_some_and(|m| m > 0));
    }
}
