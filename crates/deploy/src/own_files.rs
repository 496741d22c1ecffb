//! Reading back the files edgenet keeps (state, node files, VM seeds): all small, all regular
//! files it wrote itself. Anything else in their place — a FIFO (opening it would hang), a
//! link to a device (the read would never end), something far larger than edgenet writes —
//! is said, not read.

use std::io::{self, Read};
use std::path::Path;

/// The contents of `path`, or `None` when it does not exist; an error when it is not a regular
/// file or holds more than `cap` bytes.
pub fn read(path: &Path, cap: u64) -> io::Result<Option<Vec<u8>>> {
    use std::os::unix::fs::OpenOptionsExt;
    // Looked at before it is opened (opening a FIFO would block), without following a link.
    let size = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => m.len(),
        Ok(m) => {
            return Err(io::Error::other(format!(
                "not a regular file ({})",
                what_it_is(&m.file_type())
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // Neither a link nor a FIFO put there since the look: never followed, never waited on.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // Sized from the stat (one read instead of one per doubling); a file that grew since is
    // still read to its end, up to the cap.
    let mut bytes = Vec::with_capacity(size.min(cap) as usize + 1);
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(io::Error::other(format!(
            "larger than {} KiB, more than edgenet ever writes there",
            cap >> 10
        )));
    }
    Ok(Some(bytes))
}

/// What a file that is not a regular file is, in words (`a directory`, `a FIFO`, …).
pub fn what_it_is(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "a regular file"
    }
}

/// What is at `path` when it is there but not a regular file (looked at without following a
/// link or opening it): `Some("a directory")`, …; `None` for a regular file or nothing.
pub fn odd(path: &Path) -> Option<&'static str> {
    std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| !m.is_file())
        .map(|m| what_it_is(&m.file_type()))
}
