//! Small files named on the command line or found on the host (a resolver file, a token, a
//! unit file, a manifest): read only when they are regular files, and only up to a cap, so a
//! FIFO does not block and `/dev/zero` or a huge file does not cost memory.

use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a small file could not be read, in words that follow its path (`<path> <why>`).
#[derive(Debug)]
pub enum SmallFileError {
    /// It does not exist (a dangling link included).
    Missing,
    /// It exists but is not a regular file (a directory, a FIFO, a device such as /dev/zero,
    /// a socket): named, never read.
    NotRegular(&'static str),
    /// More than the cap (the cap in bytes).
    TooLarge(u64),
    /// Another read error (permissions, I/O, not UTF-8).
    Other(io::Error),
}

impl std::fmt::Display for SmallFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SmallFileError::Missing => f.write_str("does not exist"),
            SmallFileError::NotRegular(kind) => write!(f, "is not a regular file (it is {kind})"),
            SmallFileError::TooLarge(max) => write!(
                f,
                "is more than {max} bytes; edgenet reads no more of it (is this the right file?)"
            ),
            SmallFileError::Other(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

impl SmallFileError {
    /// The error as an `io::Error` of the matching kind (for callers that report those).
    pub fn into_io(self) -> io::Error {
        match self {
            SmallFileError::Missing => io::Error::from(io::ErrorKind::NotFound),
            SmallFileError::Other(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
        }
    }
}

/// What a path is, in words, when it is not a regular file (`None` for a regular file); a
/// symbolic link when `meta` is of the link itself (`symlink_metadata`).
pub fn file_kind(meta: &std::fs::Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_symlink() {
        Some("a symbolic link")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a file")
    }
}

/// The text of the regular file at `path` (links followed), at most `max` bytes. Opened
/// without blocking (a FIFO's open would wait for a writer) and checked with `fstat` on the
/// open file, so what is read is what was checked; read with a cap, so a file that grows
/// meanwhile is still refused.
pub fn read(path: &Path, max: u64) -> Result<String, SmallFileError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => SmallFileError::Missing,
            _ => SmallFileError::Other(e),
        })?;
    let meta = file.metadata().map_err(SmallFileError::Other)?;
    if let Some(kind) = file_kind(&meta) {
        return Err(SmallFileError::NotRegular(kind));
    }
    if meta.len() > max {
        return Err(SmallFileError::TooLarge(max));
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(SmallFileError::Other)?;
    if bytes.len() as u64 > max {
        return Err(SmallFileError::TooLarge(max));
    }
    String::from_utf8(bytes).map_err(|_| {
        SmallFileError::Other(io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_named_not_opened_for_ever() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = read(&fifo, 1024).unwrap_err();
        assert_eq!(err.to_string(), "is not a regular file (it is a FIFO)");
    }

    #[test]
    fn a_device_is_refused_and_a_large_file_is_not_read() {
        let err = read(Path::new("/dev/zero"), 1024).unwrap_err();
        assert_eq!(
            err.to_string(),
            "is not a regular file (it is a character device)"
        );
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'#'; 1025]).unwrap();
        assert!(matches!(
            read(&big, 1024),
            Err(SmallFileError::TooLarge(1024))
        ));
        std::fs::write(&big, b"nameserver 192.0.2.1\n").unwrap();
        assert_eq!(read(&big, 1024).unwrap(), "nameserver 192.0.2.1\n");
        assert!(matches!(
            read(&dir.path().join("none"), 1024),
            Err(SmallFileError::Missing)
        ));
    }
}
