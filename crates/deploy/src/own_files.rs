//! Reading back the files edgenet keeps (state, node files, VM seeds): all small, all regular
//! files it wrote itself. Anything else in their place — a FIFO (opening it would hang), a
//! link to a device (the read would never end), something far larger than edgenet writes —
//! is said, not read.

use std::io::{self, Read};
use std::path::Path;

use edgenet_host::small_file::file_kind;

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
                file_kind(&m).unwrap_or("not a file")
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

/// What is at `path` when it is there but not a regular file (looked at without following a
/// link or opening it): `Some("a directory")`, …; `None` for a regular file or nothing.
pub fn odd(path: &Path) -> Option<&'static str> {
    std::fs::symlink_metadata(path)
        .ok()
        .and_then(|m| file_kind(&m))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn what_is_in_the_place_of_an_own_file_is_said_as_the_host_layer_says_it() {
        // One word per kind, as `edgenet_host::small_file` says it for any small file.
        assert_eq!(
            super::odd(Path::new("/dev/null")),
            Some("a character device")
        );
        assert_eq!(super::odd(Path::new("/")), Some("a directory"));
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        assert_eq!(super::odd(&link), Some("a symbolic link"));
        let err = super::read(&link, 1024).unwrap_err().to_string();
        assert_eq!(err, "not a regular file (a symbolic link)");
        std::fs::write(dir.path().join("file"), "{}").unwrap();
        assert_eq!(super::odd(&dir.path().join("file")), None);
    }
}
