//! edgenet's one lock implementation: an advisory `flock` on a file or directory, taken
//! exclusively with a bounded wait (the deployment state directory, the lab directory), or
//! waited for without being taken (a reader that must not act while a run holds it).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often a waiter tries again.
const RETRY: Duration = Duration::from_millis(50);

/// Why a lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another holder kept it for the whole wait (measured from the caller's `start`).
    Busy {
        waited: Duration,
    },
    Io(io::Error),
}

/// Takes an exclusive `flock` on `file`, trying again until `timeout` has passed since
/// `start` (a zero timeout: one try). Released when the file is closed or unlocked.
pub fn exclusive(file: &File, start: Instant, timeout: Duration) -> Result<(), LockError> {
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {
                let waited = start.elapsed();
                if waited >= timeout {
                    return Err(LockError::Busy { waited });
                }
                std::thread::sleep((timeout - waited).min(RETRY));
            }
            Err(TryLockError::Error(e)) => return Err(LockError::Io(e)),
        }
    }
}

/// Waits (up to `timeout`) until nobody holds `file` exclusively, without keeping any lock;
/// returns whether somebody held it meanwhile.
pub fn wait_until_free(file: &File, timeout: Duration) -> bool {
    let start = Instant::now();
    let mut held = false;
    loop {
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                return held;
            }
            Err(TryLockError::WouldBlock) if start.elapsed() < timeout => {
                held = true;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => return held,
        }
    }
}

/// Where the per-network-namespace locks are.
pub const RUN_DIR: &str = "/run/edgenet";

/// The lock file of the calling thread's network namespace, keyed by the namespace's inode (two
/// names of one namespace, or two state directories deploying into it, share it).
pub fn network_namespace_lock_path() -> io::Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::metadata("/proc/thread-self/ns/net")?;
    Ok(PathBuf::from(RUN_DIR).join(format!("netns-{}-{}.lock", ns.dev(), ns.ino())))
}

/// Takes the exclusive lock of the calling thread's network namespace (see
/// [`network_namespace_lock_path`]), waiting up to `timeout`: what deploys in one namespace
/// choose from what they see there (the automatic subnet) is chosen one at a time. The PID is
/// written into it for whoever waits. Released when the file is dropped.
pub fn network_namespace(timeout: Duration) -> Result<(File, PathBuf), LockError> {
    let path = network_namespace_lock_path().map_err(LockError::Io)?;
    std::fs::create_dir_all(RUN_DIR).map_err(LockError::Io)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(LockError::Io)?;
    exclusive(&file, Instant::now(), timeout)?;
    let _ = file
        .set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok((file, path))
}

/// Whether somebody holds `file` exclusively right now (one try, nothing kept).
pub fn is_held(file: &File) -> bool {
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_then_gives_up_and_a_waiter_sees_it_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = File::create(&path).unwrap();
        exclusive(&first, Instant::now(), Duration::ZERO).unwrap();
        let second = File::open(&path).unwrap();
        let start = Instant::now();
        match exclusive(&second, start, Duration::from_millis(120)) {
            Err(LockError::Busy { waited }) => assert!(waited >= Duration::from_millis(120)),
            other => panic!("{other:?}"),
        }
        assert!(wait_until_free(&second, Duration::from_millis(60)));
        assert!(is_held(&second));
        first.unlock().unwrap();
        assert!(!is_held(&second));
        assert!(!wait_until_free(&second, Duration::from_millis(60)));
        exclusive(&second, Instant::now(), Duration::ZERO).unwrap();
    }
}
