//! The state directory's lock: an exclusive `flock` on the directory itself (the real
//! exclusion) and on its `lock` file (which names the holder), through
//! [`edgenet_host::lock`], edgenet's one lock implementation.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use edgenet_host::lock::{self, LockError};

use super::store::{create_private_dir, StateDir, StateError};

impl StateDir {
    /// Takes the exclusive lock, creating the directory if needed, waiting up to `timeout` for
    /// another holder. `purpose` (e.g. `edgenet deploy`) is written into the lock file with the
    /// PID, so whoever waits can say who holds it.
    pub fn lock(&self, purpose: &str, timeout: Duration) -> Result<StateLock, StateError> {
        let dir_err = |source| StateError::Dir {
            path: self.path().to_path_buf(),
            source,
        };
        create_private_dir(self.path()).map_err(dir_err)?;
        let lock_path = self.lock_file();
        let start = Instant::now();
        // Whether another holder made this run wait: what it read of the host before is old.
        let mut waited = false;
        let mut take = |f: &File| match lock::exclusive(f, start, Duration::ZERO) {
            Err(LockError::Busy { .. }) => {
                waited = true;
                lock::exclusive(f, start, timeout)
            }
            taken => taken,
        };
        // The directory itself is the lock: deleting the lock file (by hand, or a cleanup
        // script) while a run holds it must not let a second run in. A waiter that wins the
        // lock on a directory that is no longer at the path (remove deletes an empty one) starts
        // over on the new one.
        let dir_lock = loop {
            let dir = File::open(self.path()).map_err(dir_err)?;
            match take(&dir) {
                Ok(()) => {}
                Err(LockError::Busy { waited }) => {
                    let holder = OpenOptions::new()
                        .read(true)
                        .open(&lock_path)
                        .map(|mut f| read_holder(&mut f))
                        .unwrap_or_else(|_| {
                            "another process (its lock file was deleted)".to_string()
                        });
                    return Err(StateError::Locked {
                        path: self.path().to_path_buf(),
                        holder,
                        waited,
                    });
                }
                Err(LockError::Io(source)) => return Err(dir_err(source)),
            }
            if same_file(&dir, self.path()) {
                break dir;
            }
            create_private_dir(self.path()).map_err(dir_err)?;
        };
        // `remove` deletes the lock file at the very end (zero residue), so a waiter may win
        // the lock on a file that is no longer at `lock_path`: it then starts over on the new
        // one, and two runs never both believe they hold "the" lock.
        let mut file = loop {
            // No truncate on open: the file may belong to the current holder until we have it.
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
                .map_err(dir_err)?;
            match take(&file) {
                Ok(()) => {}
                Err(LockError::Busy { waited }) => {
                    return Err(StateError::Locked {
                        path: self.path().to_path_buf(),
                        holder: read_holder(&mut file),
                        waited,
                    });
                }
                Err(LockError::Io(source)) => return Err(dir_err(source)),
            }
            if same_file(&file, &lock_path) {
                break file;
            }
            create_private_dir(self.path()).map_err(dir_err)?;
        };
        let who = format!("{} {}\n", std::process::id(), purpose);
        // Informational only: failing to write it must not fail the deploy.
        let _ = file
            .set_len(0)
            .and_then(|()| file.write_all(who.as_bytes()));
        let lock = StateLock {
            dir: self.clone(),
            file,
            dir_lock,
            waited,
            files: Default::default(),
        };
        lock.remove_stale_temp_files();
        Ok(lock)
    }
}

impl StateDir {
    /// Who holds the lock right now (`edgenet remove (pid 1234)`), without taking it; `None`
    /// when nobody does (or the directory is not there).
    pub fn holder(&self) -> Option<String> {
        let dir = File::open(self.path()).ok()?;
        if !lock::is_held(&dir) {
            return None;
        }
        Some(
            OpenOptions::new()
                .read(true)
                .open(self.lock_file())
                .map(|mut f| read_holder(&mut f))
                .unwrap_or_else(|_| "another process".to_string()),
        )
    }
}

/// Whether the open lock `file` is still the one at `path`.
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// `edgenet deploy (pid 1234)` from the lock file's `PID PURPOSE` line.
fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = io::Seek::rewind(file).and_then(|_| file.read_to_string(&mut text));
    match text.trim().split_once(' ') {
        Some((pid, purpose)) if pid.parse::<u32>().is_ok() => format!("{purpose} (pid {pid})"),
        None if text.trim().parse::<u32>().is_ok() => format!("pid {}", text.trim()),
        _ => "another process (it did not write its PID into the lock file)".to_string(),
    }
}

/// The held lock; the only way to load and save the state. Released on drop.
#[derive(Debug)]
pub struct StateLock {
    pub(super) dir: StateDir,
    file: File,
    /// The flock on the state directory, the real exclusion (the lock file's flock is kept
    /// for older edgenet versions and tools that look at it).
    dir_lock: File,
    /// Whether taking it had to wait for another holder.
    waited: bool,
    /// What this lock knows of the files it writes (see [`super::store`]).
    pub(super) files: std::sync::Mutex<super::store::Files>,
}

impl StateLock {
    /// Whether another run held the lock when this one asked for it: everything read before
    /// (host facts, the plan) may be out of date and must be read again.
    pub fn waited(&self) -> bool {
        self.waited
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Clear the PID so a stale one is never reported; the lock itself goes with the file.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
        let _ = self.dir_lock.unlock();
    }
}
