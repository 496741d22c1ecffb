//! Reading back the files edgenet keeps (state, node files, VM seeds): all small, all regular
//! files it wrote itself. Anything else in their place — a FIFO (opening it would hang), a
//! link to a device (the read would never end), something far larger than edgenet writes —
//! is said, not read.

use std::io::{self, Read};
use std::path::Path;

/// The contents of `path`, or `None` when it does not exist; an error when it is not a regular
/// file or holds more than `cap` bytes.
pub fn read(path: &Path, cap: u64) -> io::Result<Option<Vec<u8>>> {
    // Looked at before it is opened: opening a FIFO would block.
    let size = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return Err(io::Error::other("not a regular file")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let file = match std::fs::File::open(path) {
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
